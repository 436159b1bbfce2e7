"""Evaluate the current champion of a trained model: held out, never seen, or every row.

``healthos evaluate deterioration|readmission --data PATH [--cohort C] --json`` runs
:func:`evaluate_model`: it reads the dataset in its own layout through
:mod:`reasoning.features`, keeps the rows of the cohort asked for, scores them with the
champion's ONNX file through onnxruntime, and reports AUROC, AUPRC, Brier and
calibration with bootstrap 95 % intervals, beside the dataset's published baselines on
the same rows. The readmission data's deaths and hospice discharges are excluded by the
loader itself.

The cohorts (:data:`COHORTS`):

``held-out`` (default)
    The patients the champion's training held out (the manifest's split seed:
    :func:`models.datasets.is_test_patient`), whatever the data.
``unseen``
    Every row the champion was not fitted on: its held-out patients and every row of a
    source it was not trained on (another hospital's file, PhysioNet's set C). This is
    external validation.
``all``
    Every row of the data. Rows the champion was fitted on make the figures optimistic;
    the output says how many there are (``rows_seen_in_training``).

Which rows the champion was fitted on (:func:`seen_in_training`): the manifest's
``training_data`` (the sources, :attr:`models.datasets.Dataset.cohorts`, and the number
of rows training read; written by :func:`models.training.train`), or for a manifest
written before that was recorded, the model spec's ``training_cohorts`` and
``n_train + n_test``; of those rows, the ones outside the held-out split.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, Final

import numpy as np

from models.datasets import Dataset, Progress, held_out_mask
from models.metrics import binary_metrics, subgroup_metrics
from models.specs import ModelSpec, get_spec
from models.training import baseline_metrics
from reasoning.inference import OnnxModel, models_dir

#: What ``--cohort`` accepts (see the module docstring).
COHORTS: Final = ("held-out", "unseen", "all")


def training_data(manifest: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    """Return the data a champion was trained on: ``{"cohorts", "rows", "recorded"}``.

    Parameters
    ----------
    manifest : dict
        The champion's ``manifest.json``.
    spec : ModelSpec
        Its model; ``spec.training_cohorts`` stands in for a manifest without
        ``training_data`` (the shipped version 1 champions).

    Returns
    -------
    dict
        ``cohorts`` (sorted list of str), ``rows`` (int: rows training read, in reading
        order, or ``None``: all of them) and ``recorded`` (bool: from the manifest).
    """
    recorded = manifest.get("training_data")
    if recorded:
        return {
            "cohorts": sorted(recorded["cohorts"]),
            "rows": int(recorded["rows"]),
            "recorded": True,
        }
    n_train, n_test = manifest.get("n_train"), manifest.get("n_test")
    return {
        "cohorts": sorted(spec.training_cohorts),
        "rows": None if n_train is None or n_test is None else int(n_train) + int(n_test),
        "recorded": False,
    }


def seen_in_training(
    data: Dataset, held_out: np.ndarray, trained_on: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Return which rows of ``data`` the champion read in training, and which it fitted on.

    Parameters
    ----------
    data : Dataset
        Rows with their cohorts, in reading order.
    held_out : numpy.ndarray
        Shape ``(n,)``, bool: the champion's held-out split.
    trained_on : dict
        :func:`training_data`.

    Returns
    -------
    read, fitted : numpy.ndarray
        Shape ``(n,)``, bool each. ``read``: the row is one of the first ``rows`` rows of
        the training cohorts (training read it); ``fitted``: read and not held out.
    """
    in_source = np.isin(np.asarray(data.cohorts, dtype=object), trained_on["cohorts"])
    read = in_source.copy()
    if trained_on["rows"] is not None:
        read &= (np.cumsum(in_source) - 1) < trained_on["rows"]
    return read, read & ~held_out


def evaluate_model(
    name: str,
    data_path: str | Path,
    *,
    cohort: str = "held-out",
    directory: Path | None = None,
    limit: int | None = None,
    n_bootstrap: int = 1000,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Measure a model's champion on a cohort of ``data_path``.

    Parameters
    ----------
    name : str
        ``deterioration`` or ``readmission``.
    data_path : str or Path
        The PhysioNet 2012 folder, or a file in the UCI ``diabetic_data.csv.gz`` layout.
    cohort : {"held-out", "unseen", "all"}, default="held-out"
        Which rows to score (:data:`COHORTS`).
    directory : Path, optional
        Models directory (default: the settings' ``models_dir``, else the shipped models).
    limit : int, optional
        First N stays/rows of the file only.
    n_bootstrap : int, default=1000
        Bootstrap resamples of the intervals.
    progress : callable, optional
        Called with the number of rows read so far.

    Returns
    -------
    dict
        ``{"n", "positives", "auroc", "auprc", "brier", "calibration_slope",
        "calibration_intercept", "ci", "baselines", "subgroups", "model", "excluded",
        "cohort", "rows", "rows_seen_in_training", "rows_held_out_in_training",
        "rows_never_read_in_training", "cohorts", "trained_on", "seconds"}``;
        ``"note"`` when ``cohort="all"`` scores rows the champion was fitted on.
        ``rows`` = ``n``; ``cohorts`` counts the scored rows per source.

    Raises
    ------
    KeyError
        Unknown model name.
    ValueError
        Unknown cohort, no row in the cohort, or missing or malformed data.
    reasoning.inference.ModelNotAvailableError
        No champion in the models directory.
    FileNotFoundError
        Missing data.
    """
    if cohort not in COHORTS:
        raise ValueError(f"unknown cohort {cohort!r}: available: {', '.join(COHORTS)}")
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
    held_out = held_out_mask(
        data.patients,
        seed=int(split.get("seed", spec.seed)),
        test_fraction=float(split.get("test_fraction", spec.test_fraction)),
    )
    trained_on = training_data(model.manifest, spec)
    read, fitted = seen_in_training(data, held_out, trained_on)
    mask = {"held-out": held_out, "unseen": ~fitted, "all": np.ones_like(held_out)}[cohort]
    if not mask.any():
        raise ValueError(f"{name}: no row of {data_path} is in the {cohort!r} cohort")
    test = data.subset(mask)
    p = model.predict_proba(test.X)
    result: dict[str, Any] = binary_metrics(test.y, p, n_bootstrap=n_bootstrap, seed=spec.seed)
    result["baselines"] = baseline_metrics(test)
    result["subgroups"] = subgroup_metrics(test.y, p, test.subgroups)
    result["model"] = model.describe()
    result["held_out_patients"] = len(set(data.patients[mask & held_out].tolist()))
    result["excluded"] = data.excluded
    result["cohort"] = cohort
    result["rows"] = int(mask.sum())
    result["rows_seen_in_training"] = int((mask & fitted).sum())
    result["rows_held_out_in_training"] = int((mask & read & held_out).sum())
    result["rows_never_read_in_training"] = int((mask & ~read).sum())
    seen_by_cohort = Counter(c for c, f in zip(test.cohorts, fitted[mask], strict=True) if f)
    result["cohorts"] = {
        source: {"rows": rows, "seen_in_training": seen_by_cohort[source]}
        for source, rows in sorted(Counter(test.cohorts).items())
    }
    result["trained_on"] = trained_on
    if cohort == "all" and result["rows_seen_in_training"]:
        result["note"] = (
            f"{result['rows_seen_in_training']:,} of these {result['rows']:,} rows trained "
            f"the champion (its training split of {', '.join(trained_on['cohorts'])}), so "
            "the figures are optimistic; `--cohort unseen` scores only the "
            f"{result['rows_held_out_in_training'] + result['rows_never_read_in_training']:,}"
            " rows it never fitted on"
        )
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result
