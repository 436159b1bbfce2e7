"""Imports point one way: serving → reasoning → healthos_core (SPEC §2).

Core imports no web, CLI or ML package; reasoning and serving score with onnxruntime and
never load the training libraries (the ``train`` extra) nor ``models`` at import time, so a
serving install (``pip install 'healthos[serve]'``) runs without them (issue 12 item 6).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

#: The libraries of the ``train`` extra (pyproject): training and offline evaluation only.
TRAINING = ["sklearn", "skl2onnx", "onnx", "mlflow", "pandas"]

FORBIDDEN = {
    "healthos_core": [
        "fastapi",
        "starlette",
        "uvicorn",
        "typer",
        "rich",
        "numpy",
        "onnxruntime",
        "matplotlib",
        *TRAINING,
        "reasoning",
        "serving",
        "models",
    ],
    "reasoning": ["fastapi", "starlette", "uvicorn", *TRAINING, "serving", "models"],
    "serving": [*TRAINING, "models"],
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
