"""Imports point one way: serving → reasoning → healthos_core (SPEC §2)."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = {
    "healthos_core": [
        "fastapi",
        "starlette",
        "uvicorn",
        "sklearn",
        "onnxruntime",
        "mlflow",
        "reasoning",
        "serving",
        "models",
    ],
    "reasoning": ["fastapi", "starlette", "uvicorn", "mlflow", "serving"],
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layering_package_imports_nothing_above_it(package: str) -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        f"pkg = importlib.import_module({package!r})\n"
        "for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))\n"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    assert not loaded & set(FORBIDDEN[package]), loaded & set(FORBIDDEN[package])
