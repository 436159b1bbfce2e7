"""SIRS scorer: an in-progress encounter meeting >= 2 SIRS criteria → a suggestion.

Reads the record, never writes it. For every in-progress inpatient or emergency
encounter it takes, per SIRS measurement (temperature, heart rate, respiratory rate,
PaCO2, white cell count), the patient's latest valid observation within ``window_hours``
of the patient's newest such observation, and applies the ACCP/SCCM 1992 criteria with
:func:`reasoning.clinical.sirs.sirs` (Bone et al., Chest 1992;101(6):1644-55).

How the rules are applied
-------------------------
* Observations are the **patient's** (an ED lab drawn before admission counts), taken at
  or after ``window_hours`` before the encounter started and at or before ``as_of``;
  status ``final``, ``amended``, ``corrected`` or ``preliminary`` only
  (``entered-in-error`` and implausible values flagged by the importer are never used).
* Units are converted to those of :func:`~reasoning.clinical.sirs.sirs`: °F to °C, kPa
  to mmHg, cells/µL to 10^3/µL; a value in any other unit is not used.
* SIRS is "two or more" criteria, so a missing measurement cannot make a positive screen
  negative: a criterion with no measurement counts as **not met** and is listed as "not
  measured" (contribution 0). The count is then a lower bound; a suggestion (>= 2 met)
  never rests on a guessed value. Fewer than 2 met gives no suggestion.
* Band immature neutrophils (> 10 %) are not read (no band-count code is mapped).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from healthos_core import terminology as t
from healthos_core.record.entities import Encounter, Observation
from reasoning.base import EncounterScorer, resolve_as_of
from reasoning.clinical.errors import InvalidScoreInputError
from reasoning.clinical.sirs import SirsResult, sirs
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion

#: Observation statuses whose values are facts.
VALID_STATUSES = ("final", "amended", "corrected", "preliminary")

#: LOINC code → SIRS measurement.
MEASUREMENTS: dict[str, str] = {
    **dict.fromkeys(t.TEMPERATURE_CODES, "temperature"),
    t.HEART_RATE: "heart_rate",
    t.RESPIRATORY_RATE: "resp_rate",
    t.PACO2: "paco2",
    t.WBC: "wbc",
}

#: Values that meet no criterion, given to :func:`sirs` in place of a measurement that
#: is missing so the measured criteria can be evaluated (each criterion depends only on
#: its own measurements). Their criteria are reported as "not measured", never as facts.
_NOT_MEASURED = {"temperature": 37.0, "heart_rate": 70.0, "resp_rate": 14.0, "wbc": 8.0}

_UNITS: dict[str, dict[str | None, float | None]] = {
    # measurement → unit (lower case) → factor to the sirs() unit (None: °F, see _convert)
    "temperature": {None: 1.0, "": 1.0, "cel": 1.0, "°c": 1.0, "[degf]": None, "°f": None},
    "heart_rate": {None: 1.0, "": 1.0, "/min": 1.0, "{beats}/min": 1.0, "beats/min": 1.0},
    "resp_rate": {None: 1.0, "": 1.0, "/min": 1.0, "{breaths}/min": 1.0, "breaths/min": 1.0},
    "paco2": {None: 1.0, "": 1.0, "mm[hg]": 1.0, "mmhg": 1.0, "kpa": 7.50062},
    "wbc": {
        None: 1.0,
        "": 1.0,
        "10*3/ul": 1.0,
        "10^3/ul": 1.0,
        "10*9/l": 1.0,
        "10^9/l": 1.0,
        "k/ul": 1.0,
        "/ul": 0.001,
        "/mm3": 0.001,
    },
}

RECOMMENDED_ACTION = (
    "SIRS criteria met: look for a source of infection and assess for sepsis (NEWS2 or qSOFA, "
    "lactate, blood cultures before any antibiotics) or another cause of systemic "
    "inflammation. SIRS is a prompt for review, not a diagnosis of sepsis."
)


@dataclass(frozen=True)
class _Reading:
    value: float
    at: dt.datetime
    ref: str


def _convert(name: str, value: float, unit: str | None) -> float | None:
    key = unit.strip().lower() if unit is not None else None
    table = _UNITS[name]
    if key not in table:
        return None
    factor = table[key]
    if factor is None:  # °F
        return (value - 32.0) * 5.0 / 9.0
    return value * factor


def latest_sirs_readings(observations: list[Observation]) -> dict[str, _Reading]:
    """Latest reading per SIRS measurement, in the units of :func:`sirs`.

    Parameters
    ----------
    observations : list of Observation
        Valid observations (any order) with codes in :data:`MEASUREMENTS`.

    Returns
    -------
    dict
        Measurement (``temperature`` °C, ``heart_rate`` /min, ``resp_rate`` /min,
        ``paco2`` mmHg, ``wbc`` 10^3/µL) → latest reading. Values with no number or an
        unknown unit are skipped; of equal times the larger id wins (deterministic).
    """
    latest: dict[str, _Reading] = {}
    for obs in sorted(observations, key=lambda o: o.id):
        name = MEASUREMENTS.get(obs.code or "")
        if name is None or obs.value is None or obs.effective_at is None:
            continue
        value = _convert(name, obs.value, obs.unit)
        if value is None:
            continue
        current = latest.get(name)
        if current is None or obs.effective_at >= current.at:
            latest[name] = _Reading(value, obs.effective_at, obs.reference)
    return latest


class SirsScorer(EncounterScorer):
    """SIRS screen (ACCP/SCCM 1992) for in-progress inpatient and emergency encounters.

    Parameters
    ----------
    window_hours : float, default=24
        Readings older than this, counted back from the patient's newest SIRS reading,
        are not used.
    encounter_classes : tuple of str, default=("IMP", "EMER")
        Encounter classes scored.

    Notes
    -----
    One suggestion per encounter meeting >= 2 criteria: score = criteria met (2-4),
    band ``"positive"``, severity ``warning``, audience clinician. Each of the four
    criteria is a factor (contribution 1 if met, else 0).
    """

    name: ClassVar[str] = "sirs"
    kind: ClassVar[str] = "clinical.sirs"
    version: ClassVar[str] = "1.0.0"
    reference: ClassVar[str | None] = (
        "Bone et al. Chest 1992;101(6):1644-55 (ACCP/SCCM consensus, SIRS criteria)"
    )

    def __init__(
        self,
        *,
        window_hours: float = 24,
        encounter_classes: tuple[str, ...] = ("IMP", "EMER"),
    ) -> None:
        self.window_hours = window_hours
        self.encounter_classes = encounter_classes

    def score(self, session: Session, *, as_of: dt.datetime | None = None) -> list[Suggestion]:
        """Return one SIRS suggestion per in-progress encounter meeting >= 2 criteria.

        Parameters
        ----------
        session : Session
            Read only.
        as_of : datetime, optional
            Aware moment to score at (default: now).

        Returns
        -------
        list of Suggestion
            Ordered by encounter id.

        Raises
        ------
        InvalidInputError
            If ``as_of`` is naive.
        """
        return self._score(session, as_of=as_of, encounter_ids=None)

    def _score(
        self,
        session: Session,
        *,
        as_of: dt.datetime | None,
        encounter_ids: list[str] | None,
    ) -> list[Suggestion]:
        now = resolve_as_of(as_of)
        window = dt.timedelta(hours=self.window_hours)
        query_encounters = select(Encounter).where(
            Encounter.status == "in-progress",
            Encounter.class_code.in_(self.encounter_classes),
            or_(Encounter.period_start.is_(None), Encounter.period_start <= now),
        )
        if encounter_ids is not None:
            query_encounters = query_encounters.where(Encounter.id.in_(encounter_ids))
        encounters = list(session.scalars(query_encounters.order_by(Encounter.id)))
        if not encounters:
            return []
        starts = [e.period_start for e in encounters if e.period_start is not None]
        query = select(Observation).where(
            Observation.patient_id.in_(sorted({e.patient_id for e in encounters})),
            Observation.code.in_(sorted(MEASUREMENTS)),
            Observation.status.in_(VALID_STATUSES),
            Observation.effective_at.is_not(None),
            Observation.effective_at <= now,
        )
        if len(starts) == len(encounters):
            query = query.where(Observation.effective_at >= min(starts) - window)
        by_patient: dict[str, list[Observation]] = defaultdict(list)
        for obs in session.scalars(query):
            by_patient[obs.patient_id].append(obs)
        suggestions = []
        for encounter in encounters:
            observations = by_patient[encounter.patient_id]
            if encounter.period_start is not None:
                since = encounter.period_start - window
                observations = [
                    o for o in observations if o.effective_at and o.effective_at >= since
                ]
            if not observations:
                continue
            newest = max(o.effective_at for o in observations if o.effective_at)
            recent = [
                o for o in observations if o.effective_at and o.effective_at >= newest - window
            ]
            suggestion = self._suggest(encounter, latest_sirs_readings(recent))
            if suggestion is not None:
                suggestions.append(suggestion)
        return suggestions

    def _suggest(self, encounter: Encounter, readings: dict[str, _Reading]) -> Suggestion | None:
        if not readings:
            return None
        measured = {name: r.value for name, r in readings.items()}
        given = dict(measured)
        for name, placeholder in _NOT_MEASURED.items():
            if name == "resp_rate" and "paco2" in given:
                continue
            given.setdefault(name, placeholder)
        try:
            result = sirs(
                temperature=given["temperature"],
                heart_rate=given["heart_rate"],
                resp_rate=given.get("resp_rate"),
                paco2=given.get("paco2"),
                wbc=given["wbc"],
            )
        except InvalidScoreInputError:
            return None  # an impossible value the importer did not flag: not scored
        if not result.met:
            return None
        factors = _factors(result, readings)
        evidence = tuple(sorted({r.ref for r in readings.values()}))
        met = ", ".join(f.text or f.name for f in factors if f.contribution > 0)
        missing = [f.text or f.name for f in factors if f.value is None]
        summary = f"SIRS {result.count}/4 criteria met: {met}"
        if missing:
            summary += f"; {', '.join(missing)}"
        if len(summary) > 140:
            summary = summary[:137] + "..."
        return Suggestion(
            kind=self.kind,
            audience=Audience.CLINICIAN,
            severity=Severity.WARNING,
            subject=encounter.reference,
            patient_id=encounter.patient_id,
            facility_id=encounter.facility_id,
            score=float(result.count),
            band="positive",
            summary=summary,
            explanation=Explanation(method="rule:sirs", factors=factors, evidence=evidence),
            recommended_action=RECOMMENDED_ACTION,
            source=Source(name=self.name, version=self.version, reference=self.reference),
            created_at=max(r.at for r in readings.values()),
        )


def _factors(result: SirsResult, readings: dict[str, _Reading]) -> tuple[Factor, ...]:
    def value_of(name: str) -> float | None:
        reading = readings.get(name)
        return round(reading.value, 2) if reading else None

    temperature, heart_rate = value_of("temperature"), value_of("heart_rate")
    resp_rate, paco2, wbc = value_of("resp_rate"), value_of("paco2"), value_of("wbc")
    c = result.components
    # The respiratory criterion has two measurements: the value shown is RR (else PaCO2),
    # the text names both when both were measured.
    parts = [f"RR {resp_rate:g}/min"] if resp_rate is not None else []
    parts += [f"PaCO2 {paco2:g} mmHg"] if paco2 is not None else []
    respiratory: tuple[float | None, str | None, str] = (None, None, "RR/PaCO2 not measured")
    if resp_rate is not None:
        respiratory = (resp_rate, "/min", ", ".join(parts))
    elif paco2 is not None:
        respiratory = (paco2, "mm[Hg]", ", ".join(parts))
    rows: list[tuple[str, float | None, str | None, str]] = [
        (
            "temperature",
            temperature,
            "Cel",
            f"T {temperature:g} °C" if temperature is not None else "T not measured",
        ),
        (
            "heart_rate",
            heart_rate,
            "/min",
            f"HR {heart_rate:g}/min" if heart_rate is not None else "HR not measured",
        ),
        ("respiratory", *respiratory),
        (
            "white_cells",
            wbc,
            "10*3/uL",
            f"WBC {wbc:g} × 10^3/µL" if wbc is not None else "WBC not measured",
        ),
    ]
    factors = [
        Factor(
            name=name,
            value=value,
            contribution=float(c[name]) if value is not None else 0.0,
            unit=unit if value is not None else None,
            text=text,
        )
        for name, value, unit, text in rows
    ]
    factors.sort(key=lambda f: -f.contribution)
    return tuple(factors)
