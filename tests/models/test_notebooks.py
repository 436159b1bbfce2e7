"""The retraining notebooks run top to bottom on a slice, into temporary stores only.

Each notebook is executed as nbmake executes it (``nbclient`` with the ``python3``
kernel), with ``HEALTHOS_VAR_DIR`` and ``HEALTHOS_MODELS_DIR`` in ``tmp_path``, so the
shipped champions and the repository's MLflow store are never touched; the kernel also
starts in ``tmp_path``, so nothing can land in a working-directory ``./mlruns``. Both
notebooks share one xdist group: each starts a kernel and trains, and running them side by
side on a 2-core runner only slows both.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"

# (model, data under ../shared/data, HEALTHOS_NOTEBOOK_LIMIT). The PhysioNet slice is
# 800 stays: with 600, ``cholesterol_slope`` has a single value, so some grouped CV fold
# trains on an all-NaN column and scikit-learn 1.9's HistGradientBoosting binning raises
# "window shape cannot be larger than input array shape".
CASES = [
    ("deterioration", "physionet-2012-icu-mortality", 800),
    ("readmission", "uci-diabetes-130/diabetic_data.csv.gz", 4000),
]


@pytest.mark.integration
@pytest.mark.xdist_group("notebooks")
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
@pytest.mark.parametrize(("name", "data", "limit"), CASES, ids=[c[0] for c in CASES])
def test_notebook_retrains_on_a_slice(
    name: str,
    data: str,
    limit: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    shared_data: Path,
) -> None:
    assert (shared_data / data).exists(), f"{shared_data / data} is missing"
    var_dir, models_dir = tmp_path / "var", tmp_path / "models"
    # The kernel inherits this process's environment.
    monkeypatch.setenv("HEALTHOS_VAR_DIR", str(var_dir))
    monkeypatch.setenv("HEALTHOS_MODELS_DIR", str(models_dir))
    monkeypatch.delenv("HEALTHOS_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("HEALTHOS_NOTEBOOK_LIMIT", str(limit))
    monkeypatch.setenv("HEALTHOS_NOTEBOOK_BOOTSTRAP", "20")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    # One OpenMP thread: on a shared 2-core runner HistGradientBoosting's threads spin
    # against the other xdist worker (fits measured 5-8x slower with two threads).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),
    )

    notebook = nbformat.read(NOTEBOOKS / f"retrain_{name}.ipynb", as_version=4)
    NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()

    # The notebook printed what train() did.
    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.output_type == "stream"
    )
    assert f"registered healthos-{name} v1" in printed
    assert "promoted: True" in printed

    # A manifest was written to the temporary champion directory ...
    manifest = json.loads((models_dir / name / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["name"] == name
    assert manifest["registered_model"] == f"healthos-{name}"
    assert manifest["version"] == "1"
    assert (models_dir / name / "model.onnx").is_file()
    assert (models_dir / name / "calibration.png").is_file()

    # ... and the run registered that version in the temporary MLflow store.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{(var_dir / 'mlflow.db').as_posix()}")
    versions = client.search_model_versions(f"name = 'healthos-{name}'")
    assert [str(v.version) for v in versions] == ["1"]
    assert versions[0].run_id == manifest["run_id"]
    assert str(client.get_model_version_by_alias(f"healthos-{name}", "champion").version) == "1"
    artifact_uri = client.get_run(manifest["run_id"]).info.artifact_uri
    assert artifact_uri is not None
    assert artifact_uri.startswith((var_dir / "mlartifacts").resolve().as_uri())
