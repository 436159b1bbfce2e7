"""NEWS2 scorer: each inpatient encounter's latest complete vital-sign set → a suggestion.

Reads the record, never writes it. For every in-progress inpatient or emergency
encounter it takes, per NEWS2 parameter, the latest valid observation within
``window_hours`` of the newest vital sign; if all seven parameters are present it
computes NEWS2 (RCP 2017, Chart 1) and returns a suggestion whose recommended action
is the RCP clinical response for the band (Chart 2). An incomplete set yields no
NEWS2 (an incomplete NEWS2 is not a NEWS2).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core import terminology as t
from healthos_core.record.entities import Encounter, Observation
from reasoning.base import EncounterScorer
from reasoning.clinical.news2 import News2Result, news2
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion

#: Codes read by the scorer.
VITAL_CODES = frozenset(
    {
        t.RESPIRATORY_RATE,
        t.HEART_RATE,
        *t.SPO2_CODES,
        *t.SYSTOLIC_CODES,
        *t.BP_PANEL_CODES,
        *t.TEMPERATURE_CODES,
        t.LEVEL_OF_RESPONSIVENESS,
        t.GCS_TOTAL,
        t.INHALED_OXYGEN_CONCENTRATION,
        t.INHALED_OXYGEN_FLOW_RATE,
        t.MECHANICAL_VENTILATION,
    }
)

#: band → (audience, severity). Review lists, not alarms (SPEC §1).
BAND_ROUTING: dict[str, tuple[Audience, Severity]] = {
    "low": (Audience.NURSE, Severity.INFO),
    "low-medium": (Audience.NURSE, Severity.WARNING),
    "medium": (Audience.CLINICIAN, Severity.WARNING),
    "high": (Audience.CLINICIAN, Severity.CRITICAL),
}

LABELS = {
    "resp_rate": ("RR", "/min"),
    "spo2": ("SpO2", "%"),
    "air_or_oxygen": ("O2", ""),
    "systolic_bp": ("SBP", " mmHg"),
    "pulse": ("HR", "/min"),
    "consciousness": ("ACVPU", ""),
    "temperature": ("T", " °C"),
}
UNITS = {
    "resp_rate": "/min",
    "spo2": "%",
    "systolic_bp": "mm[Hg]",
    "pulse": "/min",
    "temperature": "Cel",
}


@dataclass(frozen=True)
class _Reading:
    value: float | str | bool
    at: dt.datetime
    ref: str
    text: str | None = None


def _gcs_to_acvpu(gcs: float) -> str:
    """GCS 15 is alert; below 15 counts as not alert (scores 3 in NEWS2)."""
    return "A" if gcs >= 15 else "V"


def latest_vital_set(observations: list[Observation]) -> dict[str, _Reading]:
    """Latest reading per NEWS2 parameter from one encounter's observations.

    Parameters
    ----------
    observations : list of Observation
        Valid observations of one encounter (any order).

    Returns
    -------
    dict
        Parameter name (``resp_rate``, ``spo2``, ``on_oxygen``, ``systolic_bp``,
        ``pulse``, ``consciousness``, ``temperature``) → latest reading.
    """
    latest: dict[str, _Reading] = {}

    def offer(
        name: str, value: float | str | bool, obs: Observation, text: str | None = None
    ) -> None:
        at = obs.effective_at
        if at is None:
            return
        current = latest.get(name)
        if current is None or at >= current.at:
            latest[name] = _Reading(value, at, obs.reference, text)

    for obs in observations:
        code, value = obs.code, obs.value
        if code in t.BP_PANEL_CODES:
            for component in obs.components or []:
                if component.get("code") == t.SYSTOLIC_BP and component.get("value") is not None:
                    offer("systolic_bp", float(component["value"]), obs)
            continue
        if code == t.LEVEL_OF_RESPONSIVENESS and obs.value_code:
            offer("consciousness", obs.value_code, obs)
            continue
        if value is None:
            continue
        if code == t.RESPIRATORY_RATE:
            offer("resp_rate", value, obs)
        elif code == t.HEART_RATE:
            offer("pulse", value, obs)
        elif code in t.SPO2_CODES:
            offer("spo2", value, obs)
        elif code in t.SYSTOLIC_CODES:
            offer("systolic_bp", value, obs)
        elif code in t.TEMPERATURE_CODES:
            offer("temperature", value, obs)
        elif code == t.GCS_TOTAL:
            level = _gcs_to_acvpu(value)
            offer(
                "consciousness",
                level,
                obs,
                f"GCS {value:g} ({'alert' if level == 'A' else 'not alert'})",
            )
        elif code == t.INHALED_OXYGEN_CONCENTRATION:
            fraction = value / 100 if value > 1 else value
            offer("on_oxygen", fraction > 0.21, obs)
        elif code == t.INHALED_OXYGEN_FLOW_RATE:
            offer("on_oxygen", value > 0, obs)
        elif code == t.MECHANICAL_VENTILATION:
            offer("on_oxygen", value >= 1, obs)
    return latest


class News2Scorer(EncounterScorer):
    """NEWS2 for inpatients, from the latest complete vital-sign set.

    Parameters
    ----------
    window_hours : float, default=12
        Readings older than this, counted back from the encounter's newest vital sign,
        are not used (a NEWS2 describes one moment, not a day).
    min_total : int, default=1
        Totals below this give no suggestion (0 is routine 12-hourly monitoring).
    encounter_classes : tuple of str, default=("IMP", "EMER", "OBSENC")
        Encounter classes scored.
    """

    name: ClassVar[str] = "news2"
    kind: ClassVar[str] = "clinical.news2"
    version: ClassVar[str] = "1.0.0"
    reference: ClassVar[str | None] = "RCP NEWS2 2017, Chart 1 (scoring) and Chart 2 (response)"

    def __init__(
        self,
        *,
        window_hours: float = 12,
        min_total: int = 1,
        encounter_classes: tuple[str, ...] = ("IMP", "EMER", "OBSENC"),
    ) -> None:
        self.window_hours = window_hours
        self.min_total = min_total
        self.encounter_classes = encounter_classes

    def score(self, session: Session, *, as_of: dt.datetime | None = None) -> list[Suggestion]:
        """Return one NEWS2 suggestion per in-progress encounter with a complete set."""
        return self._score(session, as_of=as_of, encounter_ids=None)

    def _score(
        self,
        session: Session,
        *,
        as_of: dt.datetime | None,
        encounter_ids: list[str] | None,
    ) -> list[Suggestion]:
        query_encounters = select(Encounter).where(
            Encounter.status == "in-progress",
            Encounter.class_code.in_(self.encounter_classes),
        )
        if encounter_ids is not None:
            query_encounters = query_encounters.where(Encounter.id.in_(encounter_ids))
        encounters = {e.id: e for e in session.scalars(query_encounters)}
        if not encounters:
            return []
        query = select(Observation).where(
            Observation.encounter_id.in_(list(encounters)),
            Observation.code.in_(sorted(VITAL_CODES)),
            Observation.status.in_(("final", "amended", "corrected", "preliminary")),
            Observation.effective_at.is_not(None),
        )
        if as_of is not None:
            query = query.where(Observation.effective_at <= as_of)
        by_encounter: dict[str, list[Observation]] = defaultdict(list)
        for obs in session.scalars(query):
            by_encounter[obs.encounter_id or ""].append(obs)
        suggestions = []
        for encounter_id, observations in sorted(by_encounter.items()):
            newest = max(o.effective_at for o in observations if o.effective_at)
            cutoff = newest - dt.timedelta(hours=self.window_hours)
            recent = [o for o in observations if o.effective_at and o.effective_at >= cutoff]
            suggestion = self._suggest(encounters[encounter_id], latest_vital_set(recent))
            if suggestion is not None:
                suggestions.append(suggestion)
        return suggestions

    def _suggest(self, encounter: Encounter, readings: dict[str, _Reading]) -> Suggestion | None:
        needed = (
            "resp_rate",
            "spo2",
            "on_oxygen",
            "systolic_bp",
            "pulse",
            "consciousness",
            "temperature",
        )
        if any(name not in readings for name in needed):
            return None
        result = news2(
            resp_rate=float(readings["resp_rate"].value),
            spo2=float(readings["spo2"].value),
            on_oxygen=bool(readings["on_oxygen"].value),
            systolic_bp=float(readings["systolic_bp"].value),
            pulse=float(readings["pulse"].value),
            consciousness=str(readings["consciousness"].value),
            temperature=float(readings["temperature"].value),
        )
        if result.total < self.min_total:
            return None
        audience, severity = BAND_ROUTING[result.band]
        factors = _factors(result, readings)
        evidence = tuple(sorted({r.ref for r in readings.values()}))
        scored = ", ".join(f.text or f.name for f in factors if f.contribution > 0)
        summary = f"NEWS2 {result.total} ({result.band}): {scored}"
        if len(summary) > 140:
            summary = summary[:137] + "..."
        return Suggestion(
            kind=self.kind,
            audience=audience,
            severity=severity,
            subject=encounter.reference,
            patient_id=encounter.patient_id,
            facility_id=encounter.facility_id,
            score=float(result.total),
            band=result.band,
            summary=summary,
            explanation=Explanation(method="rule:news2", factors=factors, evidence=evidence),
            recommended_action=result.clinical_response,
            source=Source(name=self.name, version=self.version, reference=self.reference),
            created_at=max(r.at for r in readings.values()),
        )


def _factors(result: News2Result, readings: dict[str, _Reading]) -> tuple[Factor, ...]:
    factors = []
    for name, points in result.components.items():
        reading = readings["on_oxygen" if name == "air_or_oxygen" else name]
        label, unit = LABELS[name]
        if name == "air_or_oxygen":
            value: float | str | None = "oxygen" if reading.value else "air"
            text = f"on {value}"
        else:
            value = reading.value if isinstance(reading.value, str) else float(reading.value)
            text = f"{label} {value:g}{unit}" if isinstance(value, float) else f"{label} {value}"
            text = reading.text or text
        factors.append(
            Factor(
                name=name, value=value, contribution=float(points), unit=UNITS.get(name), text=text
            )
        )
    factors.sort(key=lambda f: -f.contribution)
    return tuple(factors)
