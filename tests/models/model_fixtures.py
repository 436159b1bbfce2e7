"""Tiny real model directories for tests: a fitted model, ONNX, manifest and training sample.

:func:`write_model_dir` fits a small ``HistGradientBoostingClassifier`` on random data,
converts it with :func:`models.training.to_onnx` and writes the files
:func:`models.training.train` writes on promotion (``model.onnx``, ``manifest.json`` in the
same shape, ``training_sample.npz``), so :class:`reasoning.inference.OnnxModel`,
:class:`~reasoning.inference.ModelStore` and :mod:`models.drift` load it like a champion::

    from tests.models.model_fixtures import write_model_dir

    def test_something(tmp_path):
        model_dir = write_model_dir(tmp_path, "deterioration", version="3")
        store = ModelStore(tmp_path)
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.training import ONNX_OPSET, TRAINING_SAMPLE, to_onnx
from reasoning.inference import MANIFEST, MODEL_FILE

#: Test metrics written to the manifest unless overridden.
DEFAULT_METRICS: dict[str, Any] = {
    "n": 60,
    "positives": 20,
    "prevalence": 0.3333,
    "auroc": 0.75,
    "auprc": 0.5,
    "brier": 0.2,
    "calibration_slope": 1.0,
    "calibration_intercept": 0.0,
    "ci": {"auroc": [0.6, 0.9]},
    "ci_level": 0.95,
    "ci_resamples": 50,
}


def random_training_data(
    n_rows: int, n_features: int, *, seed: int = 0, missing: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(X, y)``: standard-normal features with NaN holes and a learnable label.

    Parameters
    ----------
    n_rows, n_features : int
        Shape of ``X``.
    seed : int, default=0
        Random seed.
    missing : float, default=0.1
        Share of cells set to NaN.

    Returns
    -------
    X : numpy.ndarray
        Shape ``(n_rows, n_features)``, float64.
    y : numpy.ndarray
        Shape ``(n_rows,)``, int 0/1 (depends on the first feature, so both classes occur).
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features))
    y = (np.nan_to_num(X[:, 0]) + rng.normal(scale=0.5, size=n_rows) > 0).astype(int)
    X[rng.random(size=X.shape) < missing] = np.nan
    return X, y


def write_model_dir(
    models_dir: Path,
    name: str = "deterioration",
    *,
    version: str = "1",
    feature_names: Sequence[str] | None = None,
    feature_groups: Mapping[str, str] | None = None,
    n_features: int = 6,
    n_rows: int = 200,
    seed: int = 0,
    training_sample: np.ndarray | None = None,
    write_sample: bool = True,
    metrics: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    created: dt.datetime | None = None,
) -> Path:
    """Fit a tiny model and write it as ``<models_dir>/<name>/`` like a promoted champion.

    Parameters
    ----------
    models_dir : Path
        Parent directory (what settings ``models_dir`` points at); created if needed.
    name : str, default="deterioration"
        Model name (sub-directory and manifest ``name``).
    version : str, default="1"
        Manifest ``version``.
    feature_names : sequence of str, optional
        Default ``f0 … f{n_features-1}``; when given, ``n_features`` is its length.
    feature_groups : mapping of str to str, optional
        Feature → explanation group (e.g. ``deterioration.FEATURE_GROUPS``). Default:
        every feature is its own group.
    n_features : int, default=6
        Used when ``feature_names`` is not given.
    n_rows : int, default=200
        Random training rows (see :func:`random_training_data`).
    seed : int, default=0
        Seed of the data and the estimator.
    training_sample : numpy.ndarray, optional
        Written as ``training_sample.npz`` (key ``X``) instead of the training rows.
    write_sample : bool, default=True
        Write ``training_sample.npz`` at all.
    metrics : mapping, optional
        Manifest ``metrics``; default :data:`DEFAULT_METRICS`.
    run_id : str, optional
        Manifest ``run_id``; default ``"run-<name>-<version>"``.
    created : datetime, optional
        Manifest ``created`` (training time); default 2025-01-01T00:00:00Z.

    Returns
    -------
    Path
        The model directory ``<models_dir>/<name>``. The manifest is written last, as
        :func:`models.training.train` does, so a store reloading it sees a whole model.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    names = (
        list(feature_names) if feature_names is not None else [f"f{i}" for i in range(n_features)]
    )
    X, y = random_training_data(n_rows, len(names), seed=seed)
    model = HistGradientBoostingClassifier(max_iter=10, max_leaf_nodes=4, random_state=seed)
    model.fit(X, y)
    groups: dict[str, list[str]] = {}
    for feature in names:
        groups.setdefault((feature_groups or {}).get(feature, feature), []).append(feature)
    with np.errstate(all="ignore"):
        medians = np.nanmedian(X, axis=0)
    target = Path(models_dir) / name
    target.mkdir(parents=True, exist_ok=True)
    (target / MODEL_FILE).write_bytes(to_onnx(model, len(names)))
    if write_sample:
        sample = X if training_sample is None else np.asarray(training_sample, dtype=np.float64)
        np.savez_compressed(target / TRAINING_SAMPLE, X=sample)
    manifest: dict[str, Any] = {
        "name": name,
        "title": f"Test model {name}",
        "version": version,
        "run_id": run_id or f"run-{name}-{version}",
        "created": (created or dt.datetime(2025, 1, 1, tzinfo=dt.UTC)).isoformat(),
        "feature_names": names,
        "onnx": {
            "file": MODEL_FILE,
            "input": "features",
            "output": "probabilities",
            "opset": ONNX_OPSET,
        },
        "explanation": {
            "method": "baseline-shapley-permutation",
            "units": "log-odds",
            "reference": [None if np.isnan(v) else float(v) for v in medians],
            "groups": groups,
            "orders": [list(range(len(groups)))],
        },
        "estimator": {"type": "HistGradientBoostingClassifier", "max_iter": 10},
        "metrics": dict(metrics if metrics is not None else DEFAULT_METRICS),
        "n_train": n_rows,
        "n_test": 60,
        "registered_model": f"healthos-{name}",
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return target
