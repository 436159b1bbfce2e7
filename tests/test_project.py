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


def test_make_test_installs_debians_chromium_first_and_only_when_missing(tmp_path: Path) -> None:
    """Issue 11 item 6: a clean CI machine gets the e2e tests' browser from the Makefile."""
    plan = make("-n", "test")
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.index("/usr/bin/chromium") < plan.stdout.index("pytest")

    present = tmp_path / "chromium"
    present.write_text("#!/bin/sh\n")
    present.chmod(0o755)
    quiet = make("chromium", f"CHROMIUM={present}")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")

    missing = make("-n", "chromium", f"CHROMIUM={tmp_path / 'absent'}")
    assert missing.returncode == 0, missing.stderr
    assert "apt-get install -y -qq --no-install-recommends chromium" in missing.stdout


def test_the_e2e_tools_are_in_the_dev_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]

    def names(extra: str) -> set[str]:
        found: set[str] = set()
        for requirement in extras[extra]:
            if requirement.startswith("healthos["):  # other extras of this project
                for other in requirement.removeprefix("healthos[").rstrip("]").split(","):
                    found |= names(other)
            else:
                found.add(requirement.split(">")[0].split("=")[0].split("[")[0])
        return found

    assert {"playwright", "axe-playwright-python"} <= names("dev")


def _requirement_names(requirements: list[str]) -> set[str]:
    return {r.split(">")[0].split("<")[0].split("=")[0].split("[")[0].lower() for r in requirements}


def test_a_serving_install_carries_no_training_library() -> None:
    """Issue 12 item 6: scikit-learn, skl2onnx, onnx, MLflow, pandas only in ``[train]``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    training = {"scikit-learn", "skl2onnx", "onnx", "mlflow-skinny", "pandas"}

    assert not _requirement_names(project["dependencies"]) & training
    assert not _requirement_names(extras["serve"]) & training
    assert _requirement_names(extras["train"]) >= training
    assert "onnxruntime" in _requirement_names(project["dependencies"])
    dev = next(r for r in extras["dev"] if r.startswith("healthos["))
    assert {"serve", "train"} <= set(dev.removeprefix("healthos[").rstrip("]").split(","))
