"""The project's own files: the Makefile's housekeeping targets and the package metadata."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_clean_var_removes_the_state_folder(tmp_path: Path) -> None:
    """Issue 9 item 9: ``make clean-var`` was declared but did nothing."""
    var = tmp_path / "var"
    (var / "mlruns" / "0").mkdir(parents=True)
    (var / "healthos.db").write_bytes(b"SQLite format 3\x00")

    result = make("clean-var", f"VAR_DIR={var}")

    assert result.returncode == 0, result.stderr
    assert not var.exists()
    assert f"removed {var}/" in result.stdout
    again = make("clean-var", f"VAR_DIR={var}")
    assert again.returncode == 0 and "nothing to remove" in again.stdout


def test_clean_var_reads_healthos_var_dir(tmp_path: Path) -> None:
    var = tmp_path / "state"
    var.mkdir()
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "clean-var"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HEALTHOS_VAR_DIR": str(var)},
    )
    assert result.returncode == 0, result.stderr
    assert not var.exists()


@pytest.mark.parametrize("folder", ["/", ".", ".."])
def test_clean_var_refuses_a_folder_it_must_never_remove(folder: str) -> None:
    result = make("clean-var", f"VAR_DIR={folder}")
    assert result.returncode != 0
    assert f"refusing to remove '{folder}'" in result.stderr
    assert (ROOT / "pyproject.toml").exists()


def test_license_is_an_spdx_expression() -> None:
    """Issue 9 item 9: a TOML-table ``project.license`` stops building in February 2027."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    assert not any(c.startswith("License ::") for c in pyproject["project"].get("classifiers", []))
    assert int(pyproject["build-system"]["requires"][0].split(">=")[1]) >= 77
