"""Summary statistics of a time series over a window: the building block of every feature.

A series is the valid values of one variable (one or more codes) inside a window
``[start, end]``. Each variable gives the same seven statistics, named
``<variable>_<stat>``:

========== ============================================================
``last``    latest value
``min``     smallest value
``max``     largest value
``mean``    arithmetic mean
``count``   number of values (0 when none; every other statistic is then NaN)
``slope``   least-squares slope in units per hour (NaN with fewer than two distinct times)
``since``   hours from the latest value to the end of the window
========== ============================================================

Missing statistics are ``NaN``: the tree models used here route missing values
natively (scikit-learn ``HistGradientBoostingClassifier``), and ONNX keeps that routing.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: The statistics computed per variable, in feature order.
STATS: tuple[str, ...] = ("last", "min", "max", "mean", "count", "slope", "since")


@dataclass(frozen=True, slots=True)
class Point:
    """One valid measurement: code, aware UTC time, numeric value in the code's unit.

    ``reference`` is the record's ``"Observation/<id>"`` when it came from the record.
    """

    code: str
    time: dt.datetime
    value: float
    reference: str | None = None


def series_stats(
    points: Sequence[Point], *, start: dt.datetime, end: dt.datetime
) -> tuple[float, ...]:
    """Return :data:`STATS` for the points that fall inside ``[start, end]``.

    Parameters
    ----------
    points : sequence of Point
        The variable's measurements (any order; points outside the window are ignored).
    start, end : datetime
        Aware UTC window bounds, both inclusive.

    Returns
    -------
    tuple of float
        ``(last, min, max, mean, count, slope, since)``; NaN where undefined.

    Raises
    ------
    ValueError
        If ``end`` is before ``start``.
    """
    if end < start:
        raise ValueError(f"window end {end.isoformat()} is before its start {start.isoformat()}")
    inside = sorted((p for p in points if start <= p.time <= end), key=lambda p: p.time)
    nan = math.nan
    if not inside:
        return (nan, nan, nan, nan, 0.0, nan, nan)
    hours = np.array([(p.time - start).total_seconds() / 3600.0 for p in inside])
    values = np.array([p.value for p in inside], dtype=np.float64)
    slope = nan
    centred = hours - hours.mean()
    spread = float(centred @ centred)
    if spread > 0.0:  # at least two distinct times: ordinary least squares
        slope = float(centred @ (values - values.mean())) / spread
    since = (end - inside[-1].time).total_seconds() / 3600.0
    return (
        float(values[-1]),
        float(values.min()),
        float(values.max()),
        float(values.mean()),
        float(values.size),
        slope,
        since,
    )


def age_in_years(birth_date: dt.date | None, at: dt.datetime) -> float:
    """Whole years of age at ``at`` (NaN when the birth date is unknown)."""
    if birth_date is None:
        return math.nan
    day = at.date()
    years = day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))
    return float(years)


#: Significant digits every feature value is rounded to (see :func:`round_significant`).
SIGNIFICANT_DIGITS = 6


def round_significant(values: np.ndarray, digits: int = SIGNIFICANT_DIGITS) -> np.ndarray:
    """Round to ``digits`` significant digits (NaN, ±inf and 0 unchanged).

    Models run on float32 (ONNX input) but train in float64. Six significant digits are
    well inside float32's ~7.2, so a tree threshold that lies between two distinct
    feature values still lies between them after the cast, and onnxruntime takes the
    same branches as scikit-learn (parity is checked at every training run).

    Parameters
    ----------
    values : numpy.ndarray
        Any shape, float.

    Returns
    -------
    numpy.ndarray
        Same shape, float64.
    """
    array = np.asarray(values, dtype=np.float64)
    out = array.copy()
    finite = np.isfinite(array) & (array != 0.0)
    if finite.any():
        scale = 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(array[finite]))))
        out[finite] = np.round(array[finite] * scale) / scale
    return out
