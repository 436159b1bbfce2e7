"""Evaluate the shipped denial-risk champions on the held-out patients of synthea-rcm.

``healthos evaluate denial --data DIR [--bundles DIR] --json`` runs
:func:`evaluate_denial`: the data are imported and featurised exactly as for training
(:func:`models.denial.load_denial_data`, through :mod:`reasoning.features.denial`), the
patients the champions' training held out are kept (the manifest's split seed:
:func:`models.datasets.held_out_mask`), and both champions (``denial`` and
``denial_line``, from the models directory) score them through onnxruntime.

The **rules** baseline is the scrubber: the number of error edits
:func:`healthos_core.billing.claims.scrub_claims` raises on the claim (on the line or the
whole claim for lines), each claim scrubbed as of its own submission. Its AUROC and AUPRC
use the count as the score; its **Brier** needs a probability, so the count is calibrated
on the **training** split: the observed denial rate of the training claims with that
many errors (counts of 3 and more pooled; Laplace-smoothed, ``(denied + 1) / (n + 2)``),
applied to the held-out claims.

Run ``python -m models.evaluation.denial [DATA_DIR]``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.datasets import Dataset, Progress, held_out_mask
from models.denial import DENIAL, load_denial_data
from models.metrics import binary_metrics, subgroup_metrics
from models.training import models_dir
from reasoning.inference import OnnxModel

__all__ = ["evaluate_denial", "rules_probability"]

#: Edit counts at or above this are pooled for the rules' calibration.
_POOL = 3


def rules_probability(
    train_counts: np.ndarray, train_y: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """Calibrate scrubber error counts: the training denial rate per (pooled) count.

    Parameters
    ----------
    train_counts, train_y : numpy.ndarray
        Error counts and outcomes of the training split.
    counts : numpy.ndarray
        Counts to turn into probabilities.

    Returns
    -------
    numpy.ndarray
        ``(denied + 1) / (n + 2)`` of the training rows with the same pooled count.
    """
    pooled_train = np.minimum(np.nan_to_num(train_counts), _POOL).astype(int)
    pooled = np.minimum(np.nan_to_num(counts), _POOL).astype(int)
    rate = np.empty(_POOL + 1)
    for k in range(_POOL + 1):
        mask = pooled_train == k
        rate[k] = (float(train_y[mask].sum()) + 1.0) / (float(mask.sum()) + 2.0)
    out: np.ndarray = rate[pooled]
    return out


def _split(data: Dataset, model: OnnxModel) -> np.ndarray:
    split = model.manifest.get("split", {})
    return held_out_mask(
        data.patients,
        seed=int(split.get("seed", DENIAL.seed)),
        test_fraction=float(split.get("test_fraction", DENIAL.test_fraction)),
    )


def _measure(
    data: Dataset, model: OnnxModel, n_bootstrap: int, *, detail: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    if tuple(data.feature_names) != model.feature_names:
        raise ValueError(
            f"{model.name}: the champion's features differ from this version's feature code; "
            "retrain with `healthos train`"
        )
    mask = _split(data, model)
    train, test = data.subset(~mask), data.subset(mask)
    p = model.predict_proba(test.X)
    metrics = binary_metrics(test.y, p, n_bootstrap=n_bootstrap, seed=DENIAL.seed)
    counts = test.baselines["rules"]
    rules_p = rules_probability(train.baselines["rules"], train.y, counts)
    rules = binary_metrics(test.y, counts / (1.0 + counts.max()), n_bootstrap=0)
    rules_brier = binary_metrics(test.y, rules_p, n_bootstrap=0)["brier"]
    rules_out = {
        "auroc": rules["auroc"],
        "auprc": rules["auprc"],
        "brier": rules_brier,
        "calibration": "training-split denial rate per error count (3+ pooled), Laplace",
    }
    if detail:
        initial = np.array([s == "initial" for s in test.subgroups["submission"]], dtype=bool)
        metrics["initial"] = binary_metrics(test.y[initial], p[initial], n_bootstrap=0)
        metrics["subgroups"] = subgroup_metrics(test.y, p, test.subgroups)
        metrics["held_out_patients"] = len(set(test.patients.tolist()))
        metrics["model"] = model.describe()
    return metrics, rules_out


def evaluate_denial(
    data_dir: str | Path,
    *,
    bundles: str | Path | None = None,
    limit: int | None = None,
    n_bootstrap: int = 1000,
    progress: Progress | None = None,
    directory: Path | None = None,
) -> dict[str, Any]:
    """Measure the ``denial`` and ``denial_line`` champions on the held-out patients.

    Parameters
    ----------
    data_dir : str or Path
        The ``synthea-rcm`` folder.
    bundles : str or Path, optional
        The FHIR bundles (default ``<data_dir>/../synthea-fhir-r4/bundles``).
    limit : int, optional
        First N patients' bundles only.
    n_bootstrap : int, default=1000
        Bootstrap resamples of the claim model's 95 % intervals.
    progress : callable, optional
        Called with the number of bundles imported.
    directory : Path, optional
        Models directory (default: the settings' ``models_dir``, else the shipped models).

    Returns
    -------
    dict
        JSON-ready: ``n``, ``positives``, ``auroc``, ``auprc``, ``brier``, calibration,
        ``ci``, ``initial`` (initial submissions only), ``subgroups``, ``model``,
        ``held_out_patients``; ``line`` (``n``, ``auroc``, ``auprc``, ``brier``, ...,
        ``rules``); ``rules`` (``auroc``, ``auprc``, ``brier``); ``seconds``.

    Raises
    ------
    reasoning.inference.ModelNotAvailableError
        A champion is missing from the models directory.
    ValueError
        A champion's features differ from the feature code.
    healthos_core.errors.InvalidInputError
        Missing or malformed data.
    """
    started = time.perf_counter()
    root = directory or models_dir()
    claim_model = OnnxModel(root / "denial")
    line_model = OnnxModel(root / "denial_line")
    data = load_denial_data(data_dir, limit=limit, progress=progress, bundles=bundles)
    result, rules = _measure(data.claims, claim_model, n_bootstrap, detail=True)
    line, line_rules = _measure(data.lines, line_model, 0, detail=False)
    line["rules"] = line_rules
    line["model"] = line_model.describe()
    result["line"] = line
    result["rules"] = rules
    result["seconds"] = {**data.seconds, "total": round(time.perf_counter() - started, 1)}
    return result


def main(argv: list[str] | None = None) -> int:
    """Print :func:`evaluate_denial` as JSON (``python -m models.evaluation.denial [DIR]``)."""
    args = sys.argv[1:] if argv is None else argv
    default = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "synthea-rcm"
    result = evaluate_denial(Path(args[0]) if args else default)
    print(json.dumps(result, indent=2))  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
