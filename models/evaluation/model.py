"""Evaluate the current champion of a trained model on its held-out patients.

``healthos evaluate deterioration|readmission --data PATH --json`` runs
:func:`evaluate_model`: it reads the dataset in its own layout through
:mod:`reasoning.features`, keeps the patients the champion's training held out (the
manifest's split seed: :func:`models.datasets.is_test_patient`), scores them with the
champion's ONNX file through onnxruntime, and reports AUROC, AUPRC, Brier and
calibration with bootstrap 95 % intervals, beside the dataset's published baselines on
the same rows. The readmission data's deaths and hospice discharges are excluded by the
loader itself.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from models.datasets import Progress, held_out_mask
from models.metrics import binary_metrics, subgroup_metrics
from models.specs import get_spec
from models.training import baseline_metrics
from reasoning.inference import OnnxModel, models_dir


def evaluate_model(
    name: str,
    data_path: str | Path,
    *,
    directory: Path | None = None,
    limit: int | None = None,
    n_bootstrap: int = 1000,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Measure a model's champion on the held-out patients of ``data_path``.

    Parameters
    ----------
    name : str
        ``deterioration`` or ``readmission``.
    data_path : str or Path
        The PhysioNet 2012 folder, or the UCI ``diabetic_data.csv.gz``.
    directory : Path, optional
        Models directory (default: the settings' ``models_dir``, else the shipped models).
    limit : int, optional
        First N stays/rows of the file only.
    n_bootstrap : int, default=1000
        Bootstrap resamples of the intervals.

    Returns
    -------
    dict
        ``{"n", "positives", "auroc", "auprc", "brier", "calibration_slope",
        "calibration_intercept", "ci", "baselines", "subgroups", "model", "excluded",
        "seconds"}``.

    Raises
    ------
    KeyError
        Unknown model name.
    reasoning.inference.ModelNotAvailableError
        No champion in the models directory.
    FileNotFoundError, ValueError
        Missing or malformed data.
    """
    started = time.perf_counter()
    spec = get_spec(name)
    model = OnnxModel((directory or models_dir()) / name)
    data = spec.load_data(data_path, limit=limit, progress=progress)
    if tuple(data.feature_names) != model.feature_names:
        raise ValueError(
            f"{name}: the champion's features differ from this version's feature code; "
            "retrain with `healthos train`"
        )
    split = model.manifest.get("split", {})
    mask = held_out_mask(
        data.patients,
        seed=int(split.get("seed", spec.seed)),
        test_fraction=float(split.get("test_fraction", spec.test_fraction)),
    )
    test = data.subset(mask)
    p = model.predict_proba(test.X)
    result: dict[str, Any] = binary_metrics(test.y, p, n_bootstrap=n_bootstrap, seed=spec.seed)
    result["baselines"] = baseline_metrics(test)
    result["subgroups"] = subgroup_metrics(test.y, p, test.subgroups)
    result["model"] = model.describe()
    result["held_out_patients"] = len(set(test.patients.tolist()))
    result["excluded"] = data.excluded
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result
