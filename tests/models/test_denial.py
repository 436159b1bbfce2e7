"""The denial-risk models on a real slice of ``shared/data/synthea-rcm`` (first 20 bundles).

Loader shapes and labels (recomputed from the FHIR ClaimResponses, cross-checked with
``labels.csv.gz``), the split by patient, training both models into a temporary MLflow
store and models directory, and the evaluation's JSON keys.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from healthos_core.settings import Settings
from models import specs
from models.datasets import held_out_mask
from models.denial import DENIAL, DENIAL_LINE, load_denial_data
from models.evaluation.denial import evaluate_denial, rules_probability
from models.training import train
from reasoning.features import denial as features

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("training")]

LIMIT = 20


@pytest.fixture(scope="module")
def rcm() -> Path:
    path = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "synthea-rcm"
    if not path.is_dir():
        pytest.fail(f"{path} is missing: integration tests need ../shared/data beside the repo")
    return path


def test_loader_shapes_labels_and_patient_split(rcm: Path) -> None:
    data = load_denial_data(rcm, limit=LIMIT)
    claims, lines = data.claims, data.lines
    assert claims.X.shape == (len(claims.y), len(features.FEATURE_NAMES))
    assert lines.X.shape == (len(lines.y), len(features.LINE_FEATURE_NAMES))
    assert 100 < len(claims.y) < len(lines.y)
    assert set(np.unique(claims.y)) == {0, 1} and set(np.unique(lines.y)) == {0, 1}
    assert all(s.startswith("Claim/") for s in claims.subjects)
    assert len(claims.baselines["rules"]) == len(claims.y)
    assert set(lines.patients) == set(claims.patients)
    # labels recomputed from the ClaimResponses agree with the published labels
    with gzip.open(rcm / "labels.csv.gz", "rt", encoding="utf-8") as handle:
        published = {row["claim_id"]: int(row["denied"]) for row in csv.DictReader(handle)}
    ids = [s.split("/", 1)[1] for s in claims.subjects]
    assert [published[i] for i in ids] == claims.y.tolist()
    # a line of a wholly denied claim is denied
    denied = {s for s, y in zip(claims.subjects, claims.y, strict=True) if y}
    of_denied = [
        y for s, y in zip(lines.subjects, lines.y, strict=True) if s.split("#")[0] in denied
    ]
    assert of_denied and all(of_denied)
    # the split is by patient: no patient on both sides, the same for both models
    mask = held_out_mask(claims.patients, seed=DENIAL.seed, test_fraction=DENIAL.test_fraction)
    assert not set(claims.patients[mask]) & set(claims.patients[~mask])
    line_mask = held_out_mask(lines.patients, seed=DENIAL_LINE.seed, test_fraction=0.2)
    assert set(lines.patients[line_mask]) == set(claims.patients[mask])
    # the rules' calibration: denial rate per error count of the training split
    p = rules_probability(np.array([0, 0, 1, 1, 5]), np.array([0, 0, 1, 1, 1]), np.array([0, 1, 9]))
    assert p.tolist() == pytest.approx([1 / 4, 3 / 4, 2 / 3])


def test_train_both_models_and_evaluate(
    rcm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fewer boosting rounds on the slice: the pipeline, not the fit, is under test
    for spec in (DENIAL, DENIAL_LINE):
        quick = dataclasses.replace(spec, estimator={**spec.estimator, "max_iter": 40})
        monkeypatch.setitem(specs.SPECS, spec.name, quick)
    settings = Settings(var_dir=tmp_path / "var", models_dir=tmp_path / "models")
    reports = {
        name: train(name, rcm, limit=LIMIT, n_bootstrap=0, settings=settings)
        for name in ("denial", "denial_line")
    }
    for name, report in reports.items():
        assert report.promoted and report.version == "1"
        assert report.parity_max_abs_diff < 1e-4
        assert "rules" in report.baselines
        target = tmp_path / "models" / name
        manifest = json.loads((target / "manifest.json").read_text())
        assert manifest["split"]["seed"] == DENIAL.seed
        assert manifest["estimator"]["interaction_cst"] == "no_interactions"
        assert (target / "MODEL_CARD.md").is_file() and (target / "model.onnx").is_file()
    result = evaluate_denial(rcm, limit=LIMIT, n_bootstrap=10, directory=tmp_path / "models")
    assert {"n", "auroc", "auprc", "brier", "line", "rules", "initial", "model"} <= set(result)
    assert {"n", "auroc", "auprc", "brier", "rules"} <= set(result["line"])
    assert {"auroc", "auprc", "brier"} <= set(result["rules"])
    assert result["n"] == reports["denial"].n_test
    assert result["line"]["n"] == reports["denial_line"].n_test
    assert result["model"]["version"] == "1"
    json.dumps(result)
