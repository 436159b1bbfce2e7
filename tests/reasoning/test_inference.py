"""Scoring with the shipped ONNX champions: probabilities, additive explanations, the store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from reasoning.inference import (
    ModelNotAvailableError,
    ModelStore,
    OnnxModel,
    _logit,
    shipped_models_dir,
)

NAMES = ("deterioration", "readmission")


@pytest.fixture(scope="module", params=NAMES)
def model(request: pytest.FixtureRequest) -> OnnxModel:
    return OnnxModel(shipped_models_dir() / request.param)


def _sample(model: OnnxModel, rows: int = 40) -> np.ndarray:
    with np.load(model.directory / "training_sample.npz") as data:
        return np.asarray(data["X"][:rows])


def test_shipped_models_load_with_their_manifest(model: OnnxModel) -> None:
    manifest = json.loads((model.directory / "manifest.json").read_text())
    assert model.name == manifest["name"] and model.version == str(manifest["version"])
    assert len(model.feature_names) == len(manifest["feature_names"])
    assert manifest["parity_max_abs_diff"] < 1e-4
    assert (model.directory / "MODEL_CARD.md").is_file()


def test_predict_proba_gives_probabilities(model: OnnxModel) -> None:
    p = model.predict_proba(_sample(model))
    assert p.shape == (40,) and np.all((p > 0) & (p < 1))
    assert p.std() > 0.005  # not a constant


def test_explanations_add_up_to_the_model_output(model: OnnxModel) -> None:
    for row in _sample(model, 25):
        explained = model.explain(row)
        total = explained.base_logit + sum(explained.contributions.values())
        assert total == pytest.approx(float(_logit(np.array([explained.probability]))[0]), abs=1e-4)
        assert set(explained.contributions) == set(model.groups)
        assert explained.base_logit == pytest.approx(model.reference_logit, abs=1e-9)


def test_the_additive_model_explanation_does_not_depend_on_the_order() -> None:
    """For an additive model a group's share is the same whatever the order (exact Shapley)."""
    forward = OnnxModel(shipped_models_dir() / "deterioration")
    backward = OnnxModel(shipped_models_dir() / "deterioration")
    backward._orders = [order[::-1] for order in backward._orders]
    for row in _sample(forward, 10):
        a, b = forward.explain(row).contributions, backward.explain(row).contributions
        for group in a:
            assert a[group] == pytest.approx(b[group], abs=2e-4)


def test_wrong_width_is_refused(model: OnnxModel) -> None:
    with pytest.raises(ValueError, match="expected features of shape"):
        model.predict_proba(np.zeros((2, 3)))


def test_store_reload_picks_up_a_promoted_model_and_reports_broken_ones(tmp_path: Path) -> None:
    shutil.copytree(shipped_models_dir() / "deterioration", tmp_path / "deterioration")
    store = ModelStore(tmp_path)
    assert [m["name"] for m in store.describe()] == ["deterioration"]
    manifest_path = tmp_path / "deterioration" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["version"] = "99"
    manifest_path.write_text(json.dumps(manifest))
    assert store.reload()[0]["version"] == "99"
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    store.reload()
    assert "broken" in store.errors
    with pytest.raises(ModelNotAvailableError, match="no model 'readmission'"):
        store.get("readmission")
