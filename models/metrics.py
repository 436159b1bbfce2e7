"""Discrimination, calibration and subgroup metrics for binary risk models.

Every function takes the observed outcomes ``y_true`` (0/1) and the model's calibrated
probabilities ``p`` and returns plain, JSON-ready Python values (floats rounded to four
decimals, ints, ``None`` where a value is undefined), so the results can be logged to
MLflow, written to a manifest and rendered into a model card (:mod:`models.card`) as they
are.

The metrics come from scikit-learn (:func:`~sklearn.metrics.roc_auc_score`,
:func:`~sklearn.metrics.average_precision_score`, :func:`~sklearn.metrics.brier_score_loss`,
:func:`~sklearn.calibration.calibration_curve`, :class:`~sklearn.linear_model.LogisticRegression`)
and the confidence intervals from :func:`scipy.stats.bootstrap`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy.linalg import LinAlgWarning
from scipy.special import logit
from scipy.stats import DegenerateDataWarning, bootstrap
from sklearn.calibration import calibration_curve
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from healthos_core.errors import InvalidInputError

__all__ = ["CI_METRICS", "binary_metrics", "calibration_table", "subgroup_metrics"]

#: The metrics :func:`binary_metrics` gives a bootstrap interval for, in this order.
CI_METRICS: Final = ("auroc", "auprc", "brier", "calibration_slope", "calibration_intercept")

#: Probabilities are clipped to ``[EPS, 1 - EPS]`` before the logit of the recalibration fit.
EPS: Final = 1e-6

_DECIMALS: Final = 4

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _round(value: float) -> float | None:
    """Return ``value`` as a plain float rounded to four decimals, or None if not finite."""
    value = float(value)
    return round(value, _DECIMALS) if math.isfinite(value) else None


def _validate(
    y_true: npt.ArrayLike, p: npt.ArrayLike, *, both_classes: bool
) -> tuple[IntArray, FloatArray]:
    """Check and convert ``(y_true, p)``; raise :class:`InvalidInputError` when unusable."""
    y = np.asarray(y_true)
    try:
        prob = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"p must be numeric probabilities: {exc}") from exc
    if y.ndim != 1 or prob.ndim != 1:
        raise InvalidInputError(
            f"y_true and p must be one-dimensional (got shapes {y.shape} and {prob.shape})"
        )
    if y.shape[0] != prob.shape[0]:
        raise InvalidInputError(
            f"y_true and p must have the same length (got {y.shape[0]} and {prob.shape[0]})"
        )
    if y.shape[0] == 0:
        raise InvalidInputError("y_true and p are empty")
    n_nan = int(np.isnan(prob).sum())
    if n_nan:
        raise InvalidInputError(f"p contains NaN ({n_nan} of {prob.shape[0]} values)")
    if prob.min() < 0.0 or prob.max() > 1.0:
        raise InvalidInputError(
            f"p must lie in [0, 1] (found values from {prob.min():g} to {prob.max():g})"
        )
    if y.dtype.kind not in "biuf":
        raise InvalidInputError(f"y_true must be binary 0/1 (got dtype {y.dtype})")
    bad = np.unique(y[(y != 0) & (y != 1)])
    if bad.size:
        shown = ", ".join(f"{v:g}" for v in bad[:5].astype(np.float64))
        raise InvalidInputError(f"y_true must be binary 0/1 (found values {shown})")
    labels = y.astype(np.int64)
    if both_classes and labels.min() == labels.max():
        raise InvalidInputError(
            f"y_true holds only one class (all {int(labels[0])}); AUROC, AUPRC and the "
            "calibration fit need both outcomes"
        )
    return labels, prob


def _recalibration(y: IntArray, p: FloatArray) -> tuple[float, float]:
    """Fit ``y ~ a + b·logit(p)`` without penalty and return ``(b, a)``."""
    x = logit(np.clip(p, EPS, 1.0 - EPS)).reshape(-1, 1)
    # C=inf is the unpenalised fit (``penalty=None`` is deprecated since scikit-learn 1.8);
    # Newton-Cholesky solves this two-parameter problem exactly and fast.
    fit = LogisticRegression(C=np.inf, solver="newton-cholesky").fit(x, y)
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])


def _point_metrics(y: IntArray, p: FloatArray) -> FloatArray:
    """Return the :data:`CI_METRICS` of one sample, in order; NaN if it has one class."""
    if y.min() == y.max():
        return np.full(len(CI_METRICS), np.nan)
    slope, intercept = _recalibration(y, p)
    return np.array(
        [
            roc_auc_score(y, p),
            average_precision_score(y, p),
            brier_score_loss(y, p, pos_label=1),
            slope,
            intercept,
        ]
    )


def binary_metrics(
    y_true: npt.ArrayLike,
    p: npt.ArrayLike,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Measure discrimination and calibration of probabilities, with bootstrap intervals.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Observed outcomes, 0 or 1 (bools and floats 0.0/1.0 are accepted).
    p : array-like of shape (n_samples,)
        Predicted probabilities of outcome 1, in ``[0, 1]``.
    n_bootstrap : int, default=1000
        Number of bootstrap resamples for the intervals; ``0`` computes no intervals.
    seed : int, default=0
        Seed of the resampling, so intervals are reproducible.
    confidence : float, default=0.95
        Two-sided confidence level of the intervals, in ``(0, 1)``.

    Returns
    -------
    metrics : dict
        ``n`` (int), ``positives`` (int), ``prevalence``, ``auroc``, ``auprc`` (average
        precision), ``brier``, ``calibration_slope`` and ``calibration_intercept`` (floats
        rounded to 4 decimals). When ``n_bootstrap > 0`` also ``ci`` (``{metric: [low,
        high]}`` for each of :data:`CI_METRICS`; a bound is ``None`` if no resample had
        both classes), ``ci_level`` (the ``confidence``) and ``ci_resamples`` (the number
        of resamples with both classes, from which the intervals were taken).

    Raises
    ------
    InvalidInputError
        A :class:`ValueError`: the lengths differ, an input is not one-dimensional or is
        empty, ``p`` is NaN or outside ``[0, 1]``, ``y_true`` is not 0/1, only one class
        is present, ``n_bootstrap < 0`` or ``confidence`` is not in ``(0, 1)``.

    Notes
    -----
    *Calibration slope and intercept* come from logistic recalibration (Cox 1958, "Two
    further applications of a model for binary regression", Biometrika 45:562-565;
    Steyerberg, "Clinical Prediction Models", 2nd ed., Springer 2019, ch. 15): an
    unpenalised logistic regression ``y ~ a + b·logit(p)`` with ``p`` clipped to
    ``[1e-6, 1 - 1e-6]``. The slope is ``b`` (1 is ideal; below 1 the predictions are too
    extreme, i.e. over-confident) and the intercept is ``a`` from that same joint fit (0 is
    ideal). This ``a`` is not "calibration-in-the-large", which is estimated with ``b``
    fixed at 1.

    *Intervals* are percentile bootstrap intervals from :func:`scipy.stats.bootstrap`
    (``paired=True`` so each resample draws whole ``(y, p)`` pairs, ``method="percentile"``,
    ``rng=seed``). A resample that happens to contain one class only has no AUROC or
    calibration fit: the statistic returns NaN for it, and the quantiles are taken with
    :func:`numpy.nanquantile` over the remaining resamples (scipy's own quantiles would
    be NaN). With rare outcomes in small samples the intervals are therefore conditional
    on the resample containing both classes; ``ci_resamples`` reports how many did.
    Resamples whose recalibration fit does not converge (complete separation) are kept;
    their warnings are silenced.

    Examples
    --------
    >>> m = binary_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], n_bootstrap=0)
    >>> m["auroc"], m["brier"]
    (0.75, 0.1581)
    """
    y, prob = _validate(y_true, p, both_classes=True)
    if n_bootstrap < 0:
        raise InvalidInputError(f"n_bootstrap must be >= 0 (got {n_bootstrap})")
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must lie in (0, 1) (got {confidence})")

    point = _point_metrics(y, prob)
    positives = int(y.sum())
    result: dict[str, Any] = {
        "n": int(y.shape[0]),
        "positives": positives,
        "prevalence": _round(positives / y.shape[0]),
    }
    result.update({name: _round(v) for name, v in zip(CI_METRICS, point, strict=True)})
    if n_bootstrap == 0:
        return result

    with warnings.catch_warnings():
        # NaN statistics (one-class resamples) make scipy warn about a degenerate
        # distribution; separated resamples make the recalibration fit warn.
        warnings.simplefilter("ignore", DegenerateDataWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", LinAlgWarning)
        boot = bootstrap(
            (y, prob),
            _point_metrics,
            n_resamples=n_bootstrap,
            paired=True,
            vectorized=False,
            confidence_level=confidence,
            method="percentile",
            rng=seed,
        )
    distribution = np.asarray(boot.bootstrap_distribution, dtype=np.float64)
    usable = ~np.isnan(distribution).any(axis=0)
    alpha = (1.0 - confidence) / 2.0
    if usable.any():
        low, high = np.nanquantile(distribution[:, usable], [alpha, 1.0 - alpha], axis=1)
    else:
        low = high = np.full(len(CI_METRICS), np.nan)
    result["ci"] = {
        name: [_round(lo), _round(hi)] for name, lo, hi in zip(CI_METRICS, low, high, strict=True)
    }
    result["ci_level"] = _round(confidence)
    result["ci_resamples"] = int(usable.sum())
    return result


def subgroup_metrics(
    y_true: npt.ArrayLike,
    p: npt.ArrayLike,
    groups: Mapping[str, Sequence[str]],
    *,
    min_n: int = 1,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Measure performance within each level of each grouping (e.g. sex, age band, race).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Observed outcomes, 0 or 1. Unlike :func:`binary_metrics`, one class overall is
        allowed.
    p : array-like of shape (n_samples,)
        Predicted probabilities of outcome 1, in ``[0, 1]``.
    groups : mapping of str to sequence of str, each of length n_samples
        Grouping variable name → the level of every sample, e.g.
        ``{"sex": ["F", "M", ...], "age_band": ["18-44", ...]}``. Levels must be strings;
        map missing values to a label such as ``"unknown"`` first.
    min_n : int, default=1
        Levels with fewer samples are left out of the result (small-cell suppression).

    Returns
    -------
    subgroups : dict
        ``{grouping: {level: row}}``, groupings in the order given, levels sorted. Each
        row has ``n``, ``positives`` (ints), ``auroc`` and ``auprc`` (``None`` when the
        level holds one class only), ``brier``, ``mean_predicted`` and ``observed_rate``
        (floats rounded to 4 decimals).

    Raises
    ------
    InvalidInputError
        A :class:`ValueError`: ``y_true``/``p`` are invalid as in :func:`binary_metrics`
        (except that one class is allowed), a grouping's length differs from ``y_true``,
        a level is not a string, or ``min_n < 1``.

    Examples
    --------
    >>> out = subgroup_metrics([0, 1, 0, 0], [0.2, 0.7, 0.1, 0.3], {"sex": ["F", "F", "M", "M"]})
    >>> out["sex"]["M"]["auroc"] is None, out["sex"]["F"]["auroc"]
    (True, 1.0)
    """
    y, prob = _validate(y_true, p, both_classes=False)
    if min_n < 1:
        raise InvalidInputError(f"min_n must be >= 1 (got {min_n})")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for grouping, values in groups.items():
        labels = list(values)
        if len(labels) != y.shape[0]:
            raise InvalidInputError(
                f"groups[{grouping!r}] has {len(labels)} values but y_true has {y.shape[0]}"
            )
        for i, label in enumerate(labels):
            if not isinstance(label, str):
                raise InvalidInputError(
                    f"groups[{grouping!r}] must hold strings (found {type(label).__name__} "
                    f"at position {i}); map missing values to a label such as 'unknown'"
                )
        level_of = np.asarray(labels, dtype=object)
        rows: dict[str, dict[str, Any]] = {}
        for level in sorted(set(labels)):
            mask = level_of == level
            n = int(mask.sum())
            if n < min_n:
                continue
            y_l, p_l = y[mask], prob[mask]
            both = bool(y_l.min() != y_l.max())
            rows[level] = {
                "n": n,
                "positives": int(y_l.sum()),
                "auroc": _round(roc_auc_score(y_l, p_l)) if both else None,
                "auprc": _round(average_precision_score(y_l, p_l)) if both else None,
                "brier": _round(brier_score_loss(y_l, p_l, pos_label=1)),
                "mean_predicted": _round(float(p_l.mean())),
                "observed_rate": _round(float(y_l.mean())),
            }
        out[grouping] = rows
    return out


def calibration_table(
    y_true: npt.ArrayLike, p: npt.ArrayLike, *, bins: int = 10
) -> list[dict[str, Any]]:
    """Tabulate observed outcome rate against mean prediction in quantile bins.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Observed outcomes, 0 or 1.
    p : array-like of shape (n_samples,)
        Predicted probabilities of outcome 1, in ``[0, 1]``.
    bins : int, default=10
        Number of quantile bins (equal numbers of samples). Bins left empty because of
        tied predictions are dropped, so fewer rows may come back.

    Returns
    -------
    rows : list of dict
        One row per non-empty bin, in increasing order of prediction, with
        ``mean_predicted`` and ``observed`` (floats rounded to 4 decimals) and ``n`` (int).

    Raises
    ------
    InvalidInputError
        A :class:`ValueError`: ``y_true``/``p`` are invalid as in :func:`binary_metrics`
        (one class is allowed), or ``bins < 1``.

    Notes
    -----
    The observed and predicted columns are :func:`sklearn.calibration.calibration_curve`
    with ``strategy="quantile"``. That function does not return bin sizes, so ``n`` is
    counted with the same bin edges (percentiles of ``p``) and assignment
    (:func:`numpy.searchsorted` on the inner edges); the two are checked to agree.

    Examples
    --------
    >>> rows = calibration_table([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], bins=2)
    >>> rows[0]
    {'mean_predicted': 0.15, 'observed': 0.0, 'n': 2}
    >>> rows[1]
    {'mean_predicted': 0.8, 'observed': 1.0, 'n': 2}
    """
    y, prob = _validate(y_true, p, both_classes=False)
    if bins < 1:
        raise InvalidInputError(f"bins must be >= 1 (got {bins})")
    observed, predicted = calibration_curve(y, prob, n_bins=bins, strategy="quantile")
    edges = np.percentile(prob, np.linspace(0.0, 100.0, bins + 1))
    bin_of = np.searchsorted(edges[1:-1], prob)
    counts = np.bincount(bin_of, minlength=bins)
    sums = np.bincount(bin_of, weights=prob, minlength=bins)
    nonzero = counts > 0
    if nonzero.sum() != len(predicted) or not np.allclose(
        sums[nonzero] / counts[nonzero], predicted
    ):
        raise RuntimeError(  # pragma: no cover - guards against a change in scikit-learn
            "bin counts disagree with sklearn.calibration.calibration_curve"
        )
    return [
        {"mean_predicted": _round(mp), "observed": _round(ob), "n": int(n)}
        for mp, ob, n in zip(predicted, observed, counts[nonzero], strict=True)
    ]
