"""The MLflow → ONNX pipeline on small real slices: train, parity, register, promote, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from typer.testing import CliRunner

from healthos_core.settings import Settings
from models.datasets import held_out_mask, is_test_patient
from models.evaluation.model import evaluate_model
from models.training import registered_name, tracking_uri, train
from reasoning.inference import OnnxModel
from serving.cli import app

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("training")]

PHYSIONET = "physionet-2012-icu-mortality"
UCI = "uci-diabetes-130/diabetic_data.csv.gz"


def _settings(tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path / "var", models_dir=tmp_path / "models")


def test_held_out_split_is_a_stable_function_of_the_patient() -> None:
    patients = np.array([str(n) for n in range(5000)])
    mask = held_out_mask(patients, seed=7, test_fraction=0.2)
    assert 0.18 < mask.mean() < 0.22
    assert is_test_patient("42", seed=7, test_fraction=0.2) == bool(mask[42])
    assert not np.array_equal(mask, held_out_mask(patients, seed=8, test_fraction=0.2))


def test_train_registers_promotes_and_only_promotes_no_worse_models(
    tmp_path: Path, shared_data: Path
) -> None:
    settings = _settings(tmp_path)
    data = shared_data / PHYSIONET
    first = train("deterioration", data, limit=700, n_bootstrap=20, settings=settings)
    assert first.promoted and first.reason == "no champion yet" and first.version == "1"
    assert first.parity_max_abs_diff < 1e-4
    target = tmp_path / "models" / "deterioration"
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["version"] == "1" and manifest["run_id"] == first.run_id
    assert manifest["training_data"] == {"cohorts": ["set-a"], "rows": 700}
    assert manifest["metrics"]["n"] == first.n_test and 0.5 < manifest["metrics"]["auroc"] <= 1
    assert (target / "MODEL_CARD.md").read_text().startswith("# In-hospital death")
    assert (target / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(settings))
    name = registered_name("deterioration")
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    run = client.get_run(first.run_id)
    assert run.data.metrics["test_auroc"] == pytest.approx(first.metrics["auroc"])
    assert "test_auroc_ci_low" in run.data.metrics and run.data.params["n_train"] == str(
        first.n_train
    )

    # same data, same seed: an identical model is "no worse" and is promoted
    second = train("deterioration", data, limit=700, n_bootstrap=0, settings=settings)
    assert second.version == "2" and second.promoted
    assert second.champion is not None and second.champion["version"] == "1"
    assert second.metrics["auroc"] == pytest.approx(first.metrics["auroc"])

    # demanding an improvement of 0.05 AUROC: not promoted, alias and served files unchanged
    third = train(
        "deterioration", data, limit=700, n_bootstrap=0, settings=settings, tolerance=-0.05
    )
    assert third.version == "3" and not third.promoted and third.artifacts is None
    assert "AUROC" in third.reason
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    assert OnnxModel(target).version == "2"

    # evaluation finds the same held-out stays and the same figures
    result = evaluate_model(
        "deterioration", data, directory=settings.models_dir, limit=700, n_bootstrap=0
    )
    assert result["n"] == second.n_test
    assert result["auroc"] == pytest.approx(second.metrics["auroc"], abs=1e-4)
    assert result["model"]["version"] == "2"
    assert set(result["baselines"]) == {"SAPS-I", "SOFA", "NEWS2 (worst, first 24 h)"}
    # every row of the first 800 stays: the first 700 trained it, except the held-out ones
    every = evaluate_model(
        "deterioration",
        data,
        directory=settings.models_dir,
        limit=800,
        n_bootstrap=0,
        cohort="all",
    )
    assert every["rows"] == 800 and every["trained_on"]["recorded"]
    assert every["rows_seen_in_training"] == second.n_train
    assert every["rows_never_read_in_training"] == 100


def test_readmission_pipeline_on_a_slice(tmp_path: Path, shared_data: Path) -> None:
    settings = _settings(tmp_path)
    report = train("readmission", shared_data / UCI, limit=6000, n_bootstrap=0, settings=settings)
    assert report.promoted and report.parity_max_abs_diff < 1e-4
    manifest = json.loads((tmp_path / "models" / "readmission" / "manifest.json").read_text())
    assert len(manifest["explanation"]["orders"]) == 2
    assert "inpatient stays in the prior year" in report.baselines
    card = (tmp_path / "models" / "readmission" / "MODEL_CARD.md").read_text()
    assert "### race" in card  # performance by race where the data has it


def test_cli_train_and_evaluate(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from healthos_core.settings import get_settings

    monkeypatch.setenv("HEALTHOS_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("HEALTHOS_MODELS_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        data = str(shared_data / PHYSIONET)
        trained = runner.invoke(
            app,
            [
                "train",
                "deterioration",
                "--data",
                data,
                "--limit",
                "500",
                "--bootstrap",
                "0",
                "--json",
            ],
        )
        assert trained.exit_code == 0, trained.output
        report = json.loads(trained.stdout)
        assert report["promoted"] and report["version"] == "1"
        evaluated = runner.invoke(
            app,
            [
                "evaluate",
                "deterioration",
                "--data",
                data,
                "--limit",
                "500",
                "--bootstrap",
                "0",
                "--json",
            ],
        )
        assert evaluated.exit_code == 0, evaluated.output
        result = json.loads(evaluated.stdout)
        assert {"n", "auroc", "auprc", "brier", "baselines"} <= set(result)
        assert result["auroc"] == pytest.approx(report["metrics"]["auroc"], abs=1e-4)
        bad = runner.invoke(app, ["train", "sepsis", "--data", data])
        assert bad.exit_code == 2 and "unknown model 'sepsis'" in bad.stderr
        missing = runner.invoke(app, ["evaluate", "readmission", "--data", str(tmp_path / "x")])
        assert missing.exit_code == 2 and "no such file" in missing.stderr
    finally:
        get_settings.cache_clear()
