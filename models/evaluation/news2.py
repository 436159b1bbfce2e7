"""Evaluate NEWS2 against in-hospital death on the PhysioNet 2012 ICU stays.

For each stay the score is the **worst (maximum) hourly NEWS2 over the first 24 hours**,
and it is compared with in-hospital death by AUROC and AUPRC, next to the SAPS-I and SOFA
scores shipped in the dataset's outcome files.

Hourly inputs
-------------
Hour ``h`` (0-23) covers minutes ``[60h, 60h + 60)`` since ICU admission. At the end of
each hour every parameter takes its last plausible value observed at or before the end
of that hour, within the stay (last observation carried forward; nothing is carried
back). The PhysioNet parameters map to NEWS2 as follows (SpO2 scale 1 throughout):

============== ==============================================================================
NEWS2 input    PhysioNet 2012
============== ==============================================================================
resp_rate      ``RespRate`` (breaths/min)
spo2           ``SaO2`` (arterial saturation, %, from blood gases; there is no pulse oximetry)
on_oxygen      ``True`` if the last ``FiO2`` > 0.21 or ``MechVent`` == 1 was ever observed;
               ``False`` if either was observed and neither condition holds; missing if
               neither has been observed yet. ``FiO2`` is a fraction; a value > 1 is read
               as a percentage and divided by 100.
systolic_bp    invasive ``SysABP`` if measured *within that hour*; otherwise the last
               ``NISysABP`` (cuff); otherwise the last ``SysABP``
pulse          ``HR`` (beats/min)
consciousness  ``GCS`` == 15 -> "A"; ``GCS`` < 15 -> "V" (any non-alert level scores 3)
temperature    ``Temp`` (°C)
============== ==============================================================================

Implausible values are dropped before anything is carried forward (see
:func:`plausible_value`): ``-1`` anywhere; ``HR`` <= 0 or > 300; ``RespRate`` <= 0 or > 80;
``SysABP``/``NISysABP`` <= 0 or > 300; ``SaO2`` <= 0 or > 100; ``Temp`` < 25 or > 45;
``GCS`` outside 3-15; ``FiO2`` <= 0 or > 1 after the percentage rule; ``MechVent`` other
than 0 or 1.

Protocols
---------
``complete``
    A true NEWS2 needs all seven parameters. Only hours where all are present (after
    carrying forward) are scored; a stay with no such hour is counted as ``excluded``.
``partial``
    Every stay. A parameter not observed so far scores 0 (:func:`news2_partial`); this is
    a research-only partial NEWS2 and is the headline result, since most stays lack an
    arterial saturation early on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, Final

from sklearn.metrics import average_precision_score, roc_auc_score

from healthos_core.datasets.physionet2012 import Stay, iter_stays, read_outcomes
from reasoning.clinical.news2 import news2, news2_partial

__all__ = [
    "HOURS",
    "HourlyInputs",
    "WorstNews2",
    "evaluate_news2",
    "hourly_inputs",
    "plausible_value",
    "worst_news2",
]

#: Length of the scoring window in hours, from ICU admission.
HOURS: Final = 24

_USED: Final = frozenset(
    {"RespRate", "SaO2", "FiO2", "MechVent", "SysABP", "NISysABP", "HR", "Temp", "GCS"}
)

# Inclusive plausible ranges after the lower-bound rule below; (low, low_inclusive, high).
_RANGES: Final[dict[str, tuple[float, bool, float]]] = {
    "HR": (0.0, False, 300.0),
    "RespRate": (0.0, False, 80.0),
    "SysABP": (0.0, False, 300.0),
    "NISysABP": (0.0, False, 300.0),
    "SaO2": (0.0, False, 100.0),
    "Temp": (25.0, True, 45.0),
    "GCS": (3.0, True, 15.0),
    "FiO2": (0.0, False, 1.0),
}


def plausible_value(parameter: str, value: float) -> float | None:
    """Return a PhysioNet 2012 value fit for NEWS2, or ``None`` if it is implausible.

    Parameters
    ----------
    parameter : str
        PhysioNet parameter name (``"HR"``, ``"RespRate"``, ``"SysABP"``, ``"NISysABP"``,
        ``"SaO2"``, ``"Temp"``, ``"GCS"``, ``"FiO2"``, ``"MechVent"``).
    value : float
        The value as written in the record file.

    Returns
    -------
    float or None
        The value (``FiO2`` > 1 converted from percent to a fraction), or ``None`` when
        it is ``-1`` or outside the plausible range: HR (0, 300] beats/min, RespRate
        (0, 80] /min, SysABP and NISysABP (0, 300] mmHg, SaO2 (0, 100] %, Temp
        [25, 45] °C, GCS [3, 15], FiO2 (0, 1] as a fraction, MechVent 0 or 1.
        Other parameters are returned unchanged unless ``-1``.

    Examples
    --------
    >>> plausible_value("FiO2", 40), plausible_value("Temp", 3.7), plausible_value("HR", -1)
    (0.4, None, None)
    """
    if value == -1:
        return None
    if parameter == "MechVent":
        return value if value in (0.0, 1.0) else None
    if parameter == "FiO2" and value > 1:
        value = value / 100
    bounds = _RANGES.get(parameter)
    if bounds is None:
        return value
    low, low_inclusive, high = bounds
    above_low = value >= low if low_inclusive else value > low
    return value if above_low and value <= high else None


@dataclass(frozen=True, slots=True)
class HourlyInputs:
    """The NEWS2 inputs of one stay at the end of one hour (``None`` = not yet observed).

    Parameters
    ----------
    hour : int
        Hour since ICU admission, covering minutes ``[60 * hour, 60 * hour + 60)``.
    resp_rate : float or None
        Breaths/min.
    spo2 : float or None
        Arterial oxygen saturation (SaO2), %.
    on_oxygen : bool or None
        Supplemental oxygen (FiO2 > 0.21 or mechanical ventilation).
    systolic_bp : float or None
        Systolic blood pressure, mmHg.
    pulse : float or None
        Heart rate, beats/min.
    consciousness : {"A", "V"} or None
        "A" for GCS 15, "V" for GCS < 15.
    temperature : float or None
        °C.
    """

    hour: int
    resp_rate: float | None
    spo2: float | None
    on_oxygen: bool | None
    systolic_bp: float | None
    pulse: float | None
    consciousness: str | None
    temperature: float | None

    @property
    def complete(self) -> bool:
        """Whether all seven NEWS2 inputs are present, so a true NEWS2 exists.

        Returns
        -------
        bool
            ``True`` if no input is ``None``.
        """
        return None not in (
            self.resp_rate,
            self.spo2,
            self.on_oxygen,
            self.systolic_bp,
            self.pulse,
            self.consciousness,
            self.temperature,
        )


@dataclass(frozen=True, slots=True)
class WorstNews2:
    """The worst hourly NEWS2 of one stay over the scoring window.

    Parameters
    ----------
    complete : int or None
        Maximum true NEWS2 over the hours with all inputs present; ``None`` if no hour
        was complete.
    partial : int
        Maximum partial NEWS2 (missing inputs score 0) over all hours; research only.
    complete_hours : int
        Number of hours with all inputs present.
    """

    complete: int | None
    partial: int
    complete_hours: int


def hourly_inputs(stay: Stay, *, hours: int = HOURS) -> list[HourlyInputs]:
    """Build the NEWS2 inputs of a stay at the end of each hour.

    Parameters
    ----------
    stay : Stay
        A PhysioNet 2012 stay from :func:`healthos_core.datasets.physionet2012.iter_stays`.
    hours : int, default=24
        Number of hours from ICU admission.

    Returns
    -------
    list of HourlyInputs
        One entry per hour ``0 .. hours - 1``, built with the mapping, plausibility and
        carry-forward rules of this module's docstring.

    Examples
    --------
    >>> from healthos_core.datasets.physionet2012 import Measurement, Stay
    >>> stay = Stay("1", "set-x", {}, (Measurement(30, "HR", 95.0),
    ...                                Measurement(70, "NISysABP", 120.0),
    ...                                Measurement(80, "SysABP", 100.0)))
    >>> [(h.pulse, h.systolic_bp) for h in hourly_inputs(stay, hours=3)]
    [(95.0, None), (95.0, 100.0), (95.0, 120.0)]
    """
    by_hour: list[list[tuple[str, float]]] = [[] for _ in range(hours)]
    end = 60 * hours
    for measurement in sorted(stay.measurements, key=attrgetter("minutes")):
        if measurement.parameter not in _USED or not 0 <= measurement.minutes < end:
            continue
        value = plausible_value(measurement.parameter, measurement.value)
        if value is not None:
            by_hour[measurement.minutes // 60].append((measurement.parameter, value))

    last: dict[str, float] = {}
    result = []
    for hour, observed in enumerate(by_hour):
        invasive_this_hour: float | None = None
        for parameter, value in observed:
            last[parameter] = value
            if parameter == "SysABP":
                invasive_this_hour = value
        systolic: float | None
        if invasive_this_hour is not None:
            systolic = invasive_this_hour
        else:
            systolic = last.get("NISysABP", last.get("SysABP"))
        fio2, mech_vent = last.get("FiO2"), last.get("MechVent")
        on_oxygen = (
            None
            if fio2 is None and mech_vent is None
            else (fio2 is not None and fio2 > 0.21) or mech_vent == 1
        )
        gcs = last.get("GCS")
        result.append(
            HourlyInputs(
                hour=hour,
                resp_rate=last.get("RespRate"),
                spo2=last.get("SaO2"),
                on_oxygen=on_oxygen,
                systolic_bp=systolic,
                pulse=last.get("HR"),
                consciousness=None if gcs is None else ("A" if gcs >= 15 else "V"),
                temperature=last.get("Temp"),
            )
        )
    return result


def worst_news2(stay: Stay, *, hours: int = HOURS) -> WorstNews2:
    """Compute the worst hourly NEWS2 of a stay, true and partial.

    Parameters
    ----------
    stay : Stay
        A PhysioNet 2012 stay.
    hours : int, default=24
        Scoring window in hours from ICU admission.

    Returns
    -------
    WorstNews2
        The maximum true NEWS2 over complete hours (or ``None``), the maximum partial
        NEWS2 over all hours (0 if nothing was observed) and the count of complete hours.

    Examples
    --------
    >>> from healthos_core.datasets.physionet2012 import Measurement, Stay
    >>> stay = Stay("1", "set-x", {}, (Measurement(10, "RespRate", 26.0),))
    >>> worst_news2(stay)
    WorstNews2(complete=None, partial=3, complete_hours=0)
    """
    complete: int | None = None
    partial = 0
    complete_hours = 0
    for inputs in hourly_inputs(stay, hours=hours):
        kwargs: dict[str, Any] = {
            "resp_rate": inputs.resp_rate,
            "spo2": inputs.spo2,
            "on_oxygen": inputs.on_oxygen,
            "systolic_bp": inputs.systolic_bp,
            "pulse": inputs.pulse,
            "consciousness": inputs.consciousness,
            "temperature": inputs.temperature,
        }
        if inputs.complete:
            total = news2(**kwargs).total
            complete_hours += 1
            complete = total if complete is None else max(complete, total)
            partial = max(partial, total)
        else:
            partial = max(partial, news2_partial(**kwargs).total)
    return WorstNews2(complete=complete, partial=partial, complete_hours=complete_hours)


def _metric(
    fn: Callable[..., Any], labels: list[bool], scores: list[float] | list[int]
) -> float | None:
    """Apply an sklearn metric, or return ``None`` when it is undefined (one class only)."""
    if len(set(labels)) < 2:
        return None
    return round(float(fn(labels, scores)), 4)


def evaluate_news2(
    data_dir: Path,
    *,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate the worst first-24-hour NEWS2 against in-hospital death on PhysioNet 2012.

    Parameters
    ----------
    data_dir : Path
        The PhysioNet 2012 directory (``set-*.tar.gz`` and ``Outcomes-*.txt``), e.g.
        ``../shared/data/physionet-2012-icu-mortality``.
    limit : int, optional
        Evaluate only the first ``limit`` stays (set-a first, in archive order).
    progress : callable, optional
        Called after each stay with the number of stays done so far, e.g. to advance a
        progress bar.

    Returns
    -------
    dict
        ``{"n", "auroc", "auprc", "complete": {"n", "excluded", "auroc", "auprc"},
        "partial": {"n", "auroc", "auprc"}, "baseline": {"saps_i_auroc", "sofa_auroc",
        "saps_i_n", "sofa_n"}, "protocol": "partial", "positives", "seconds"}``. The
        top-level ``n``/``auroc``/``auprc`` are the partial protocol's; ``positives`` is
        the number of in-hospital deaths among those ``n`` stays. Baselines are computed
        on the same stays, leaving out only stays whose SAPS-I (or SOFA) is unknown (-1).
        Floats are rounded to 4 decimals; a metric is ``None`` when the stays hold only
        one outcome class. AUROC by :func:`sklearn.metrics.roc_auc_score`, AUPRC by
        :func:`sklearn.metrics.average_precision_score`.

    Raises
    ------
    FileNotFoundError
        If the directory, its archives or its outcome files are missing.
    ValueError
        If a file is malformed or a stay has no outcome row.

    Examples
    --------
    With the shared data beside the repository::

        result = evaluate_news2(Path("../shared/data/physionet-2012-icu-mortality"), limit=300)
        result["n"]  # 300
        result["complete"]["n"] + result["complete"]["excluded"]  # 300
    """
    started = time.perf_counter()
    outcomes = read_outcomes(data_dir)
    labels: list[bool] = []
    partial_scores: list[int] = []
    complete_labels: list[bool] = []
    complete_scores: list[int] = []
    saps_labels: list[bool] = []
    saps_scores: list[int] = []
    sofa_labels: list[bool] = []
    sofa_scores: list[int] = []
    excluded = 0
    for done, stay in enumerate(iter_stays(data_dir, limit=limit), start=1):
        outcome = outcomes.get(stay.record_id)
        if outcome is None:
            raise ValueError(
                f"stay {stay.record_id} ({stay.set_name}) has no row in the Outcomes files"
            )
        died = outcome.in_hospital_death
        worst = worst_news2(stay)
        labels.append(died)
        partial_scores.append(worst.partial)
        if worst.complete is None:
            excluded += 1
        else:
            complete_labels.append(died)
            complete_scores.append(worst.complete)
        if outcome.saps_i is not None:
            saps_labels.append(died)
            saps_scores.append(outcome.saps_i)
        if outcome.sofa is not None:
            sofa_labels.append(died)
            sofa_scores.append(outcome.sofa)
        if progress is not None:
            progress(done)

    partial = {
        "n": len(labels),
        "auroc": _metric(roc_auc_score, labels, partial_scores),
        "auprc": _metric(average_precision_score, labels, partial_scores),
    }
    return {
        "n": partial["n"],
        "auroc": partial["auroc"],
        "auprc": partial["auprc"],
        "complete": {
            "n": len(complete_labels),
            "excluded": excluded,
            "auroc": _metric(roc_auc_score, complete_labels, complete_scores),
            "auprc": _metric(average_precision_score, complete_labels, complete_scores),
        },
        "partial": partial,
        "baseline": {
            "saps_i_auroc": _metric(roc_auc_score, saps_labels, saps_scores),
            "sofa_auroc": _metric(roc_auc_score, sofa_labels, sofa_scores),
            "saps_i_n": len(saps_labels),
            "sofa_n": len(sofa_labels),
        },
        "protocol": "partial",
        "positives": sum(labels),
        "seconds": round(time.perf_counter() - started, 4),
    }
