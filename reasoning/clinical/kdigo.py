"""KDIGO 2012 acute kidney injury (AKI) staging from serum creatinine.

Source: Kidney Disease: Improving Global Outcomes (KDIGO) Acute Kidney Injury Work Group.
KDIGO Clinical Practice Guideline for Acute Kidney Injury. *Kidney Int Suppl*
2012;2(1):1-138. Section 2.1 (Recommendations 2.1.1 and 2.1.2, Table 2).

AKI (2.1.1) is a rise in serum creatinine (SCr) of >= 0.3 mg/dL within 48 hours, or to
>= 1.5 times baseline known or presumed to have occurred within the prior 7 days (the
urine-output criterion is not used here). Stage (2.1.2, Table 2):

* stage 1: 1.5-1.9 times baseline, or a rise of >= 0.3 mg/dL;
* stage 2: 2.0-2.9 times baseline;
* stage 3: >= 3.0 times baseline, or SCr >= 4.0 mg/dL, or initiation of renal
  replacement therapy (RRT).

How the rules are applied
-------------------------
* The latest measurement is staged. Its **baseline** is the lowest SCr measured in the
  7 days (168 h, inclusive) before it, unless a baseline is given; the **48-hour rise** is
  the latest value minus the lowest value measured in the 48 h (inclusive) before it.
  Measurements after the latest one cannot exist; ones older than 7 days are ignored.
* **SCr >= 4.0 mg/dL** gives stage 3 only together with an acute rise, i.e. when the AKI
  definition (>= 0.3 mg/dL in 48 h or >= 1.5 times baseline) is also met. KDIGO write
  "increase in SCr to >= 4.0 mg/dL"; a patient with chronic kidney disease who is stable
  at 4.2 mg/dL has no AKI, while one rising from 3.6 to 4.0 mg/dL within 48 h is stage 3.
* ``on_rrt=True`` gives stage 3 whatever the creatinine values.
* Without a baseline (no earlier value in the 7 days, none given) and without RRT the
  stage cannot be decided and :class:`~reasoning.clinical.errors.IncompleteScoreError`
  is raised, rather than reporting "no AKI".
* Comparisons at the thresholds allow for float rounding (1e-9): 1.2 - 0.9 mg/dL is a
  0.3 mg/dL rise and 1.05 / 0.7 is 1.5 times baseline, as a clinician reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from reasoning.clinical.errors import (
    IncompleteScoreError,
    InvalidScoreInputError,
    check_measurement,
)

__all__ = ["CRITERIA", "KdigoResult", "kdigo_aki"]

#: Names a :attr:`KdigoResult.criteria` may contain, in this order.
CRITERIA: Final = ("rise_0.3_48h", "ratio_1.5", "ratio_2.0", "ratio_3.0", "scr_4.0", "rrt")

_WINDOW_48H: Final = timedelta(hours=48)
_WINDOW_7D: Final = timedelta(days=7)
_EPS: Final = 1e-9
_LOW, _HIGH, _UNIT = 0.01, 40.0, "mg/dL"


@dataclass(frozen=True, slots=True)
class KdigoResult:
    """A KDIGO 2012 AKI stage from serum creatinine (Kidney Int Suppl 2012, section 2.1).

    Parameters
    ----------
    stage : int
        0 (no AKI by creatinine) to 3.
    baseline : float or None
        Baseline SCr in mg/dL (given, or the lowest in the 7 days before the latest);
        ``None`` only when staged by RRT alone without any baseline.
    latest : float
        The staged (latest) SCr in mg/dL.
    peak : float
        The highest SCr in mg/dL in the 7 days up to and including the latest value.
    ratio : float or None
        ``latest / baseline``; ``None`` without a baseline.
    rise_48h : float or None
        Latest minus the lowest SCr in the 48 h before it, in mg/dL; ``None`` when no
        earlier value lies within 48 h.
    criteria : tuple of str
        The criteria met, from :data:`CRITERIA`.
    evidence : tuple of int
        Indices into the ``measurements`` given of the values used: the latest, the
        baseline (when taken from the measurements) and the 48-hour minimum, ascending.

    Attributes
    ----------
    aki : bool
        ``stage >= 1``.
    """

    stage: int
    baseline: float | None
    latest: float
    peak: float
    ratio: float | None
    rise_48h: float | None
    criteria: tuple[str, ...]
    evidence: tuple[int, ...]

    @property
    def aki(self) -> bool:
        """Whether the creatinine criteria (or RRT) define AKI.

        Returns
        -------
        bool
            ``True`` for stages 1-3.
        """
        return self.stage >= 1


def _check(measurements: object) -> list[tuple[datetime, float]]:
    if isinstance(measurements, str | bytes) or not isinstance(measurements, Sequence):
        raise InvalidScoreInputError(
            "measurements", measurements, "must be a sequence of (datetime, mg/dL) pairs"
        )
    checked: list[tuple[datetime, float]] = []
    for i, item in enumerate(measurements):
        name = f"measurements[{i}]"
        if not isinstance(item, tuple) or len(item) != 2:
            raise InvalidScoreInputError(name, item, "must be a (datetime, mg/dL) pair")
        when, value = item
        if not isinstance(when, datetime) or when.utcoffset() is None:
            raise InvalidScoreInputError(name, when, "time must be a timezone-aware datetime")
        checked.append((when, check_measurement(name, value, _LOW, _HIGH, _UNIT)))
    return checked


def kdigo_aki(
    measurements: Sequence[tuple[datetime, float]],
    *,
    baseline: float | None = None,
    on_rrt: bool = False,
) -> KdigoResult:
    """Stage AKI by KDIGO 2012 serum creatinine criteria (Kidney Int Suppl 2012;2:1-138).

    Parameters
    ----------
    measurements : sequence of (datetime, float)
        Serum creatinine results as (timezone-aware time, mg/dL), in any order. The
        latest is staged. (From µmol/L divide by 88.4.)
    baseline : float or None, default=None
        A known baseline SCr in mg/dL (0.01-40); by default the lowest value in the
        7 days before the latest.
    on_rrt : bool, default=False
        ``True`` if renal replacement therapy has been started: stage 3.

    Returns
    -------
    KdigoResult
        The stage (0-3), the values it rests on, the criteria met and the indices of
        the measurements used as evidence.

    Raises
    ------
    IncompleteScoreError
        If ``measurements`` is empty, or no baseline can be found (no earlier value in
        the 7 days and none given) and ``on_rrt`` is false.
    InvalidScoreInputError
        If a measurement is not a (timezone-aware datetime, number) pair, a value is
        outside 0.01-40 mg/dL, or ``on_rrt`` is not a bool (a ``ValueError``).

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> t0 = datetime(2024, 3, 1, 8, tzinfo=timezone.utc)
    >>> r = kdigo_aki([(t0, 1.0), (t0.replace(day=2), 2.1)])
    >>> r.stage, r.criteria
    (2, ('rise_0.3_48h', 'ratio_1.5', 'ratio_2.0'))
    """
    if not isinstance(on_rrt, bool):
        raise InvalidScoreInputError("on_rrt", on_rrt, "must be True or False")
    if baseline is not None:
        baseline = check_measurement("baseline", baseline, _LOW, _HIGH, _UNIT)
    values = _check(measurements)
    if not values:
        raise IncompleteScoreError("KDIGO AKI", ["measurements"])

    # The latest measurement; of equal times, the one given last.
    last = max(range(len(values)), key=lambda i: (values[i][0], i))
    latest_time, latest = values[last]
    earlier = [
        i
        for i, (when, _) in enumerate(values)
        if i != last and latest_time - _WINDOW_7D <= when <= latest_time
    ]
    window_48h = [i for i in earlier if values[i][0] >= latest_time - _WINDOW_48H]
    peak = max([latest, *(values[i][1] for i in earlier)])

    evidence = {last}
    base_index = min(earlier, key=lambda i: (values[i][1], i)) if earlier else None
    if baseline is None and base_index is not None:
        baseline = values[base_index][1]
        evidence.add(base_index)
    rise_48h: float | None = None
    if window_48h:
        low_index = min(window_48h, key=lambda i: (values[i][1], i))
        rise_48h = latest - values[low_index][1]
        evidence.add(low_index)
    if baseline is None and not on_rrt:
        raise IncompleteScoreError("KDIGO AKI", ["baseline"])
    ratio = latest / baseline if baseline is not None else None

    met = {
        "rise_0.3_48h": rise_48h is not None and rise_48h >= 0.3 - _EPS,
        "ratio_1.5": ratio is not None and ratio >= 1.5 - _EPS,
        "ratio_2.0": ratio is not None and ratio >= 2.0 - _EPS,
        "ratio_3.0": ratio is not None and ratio >= 3.0 - _EPS,
        "rrt": on_rrt,
    }
    aki_defined = met["rise_0.3_48h"] or met["ratio_1.5"]
    met["scr_4.0"] = aki_defined and latest >= 4.0 - _EPS
    if met["ratio_3.0"] or met["scr_4.0"] or met["rrt"]:
        stage = 3
    elif met["ratio_2.0"]:
        stage = 2
    elif aki_defined:
        stage = 1
    else:
        stage = 0
    return KdigoResult(
        stage=stage,
        baseline=baseline,
        latest=latest,
        peak=peak,
        ratio=ratio,
        rise_48h=rise_48h,
        criteria=tuple(name for name in CRITERIA if met[name]),
        evidence=tuple(sorted(evidence)),
    )
