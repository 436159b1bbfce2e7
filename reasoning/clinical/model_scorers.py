"""Scorers backed by trained models: deterioration (ICU/inpatient) and 30-day readmission.

Each reads the record through :mod:`reasoning.features` (the same code the model was
trained with), scores through onnxruntime (:mod:`reasoning.inference`) and returns one
suggestion per encounter above the review threshold. A suggestion lists its top factors
with the value in words and a signed contribution in log-odds (contributions add up to
the model's log-odds minus that of a reference stay of training medians), the model and
version, and the record references behind them. Severity comes from calibrated risk
bands; these are review lists for clinicians, never alarms.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from healthos_core.record.entities import Encounter
from reasoning.base import EncounterScorer, resolve_as_of
from reasoning.features import deterioration, readmission
from reasoning.features.deterioration import StayInputs
from reasoning.features.readmission import AdmissionInputs
from reasoning.inference import (
    Explained,
    ModelNotAvailableError,
    ModelStore,
    OnnxModel,
    default_store,
)
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion

#: (lower bound of calibrated probability, band, severity), highest first.
Bands = tuple[tuple[float, str, Severity], ...]


def _band(probability: float, bands: Bands) -> tuple[str, Severity] | None:
    for low, band, severity in bands:
        if probability >= low:
            return band, severity
    return None


def _summary(text: str) -> str:
    return text if len(text) <= 140 else text[:137] + "..."


class _ModelScorer(EncounterScorer):
    """Common part: load the model, explain each row, build suggestions."""

    model_name: ClassVar[str]
    default_bands: ClassVar[Bands]

    def __init__(
        self,
        *,
        store: ModelStore | None = None,
        bands: Bands | None = None,
        top_factors: int = 5,
    ) -> None:
        self.store = store
        self.bands = bands or self.default_bands
        self.top_factors = top_factors

    def _model_or_none(self) -> OnnxModel | None:
        try:
            return (self.store or default_store()).get(self.model_name)
        except ModelNotAvailableError:
            return None

    def _suggestions(
        self,
        rows: Sequence[tuple[Encounter, np.ndarray, object]],
        *,
        as_of: dt.datetime,
    ) -> list[Suggestion]:
        model = self._model_or_none()
        if model is None or not rows:
            return []
        out: list[Suggestion] = []
        for encounter, vector, inputs in rows:
            explained = model.explain(vector)
            routed = _band(explained.probability, self.bands)
            if routed is None:
                continue
            band, severity = routed
            factors = self._factors(explained, vector, inputs, model.feature_names)
            evidence = self._evidence(encounter, inputs, [f.name for f in factors])
            out.append(
                Suggestion(
                    kind=self.kind,
                    audience=Audience.CLINICIAN,
                    severity=severity,
                    subject=encounter.reference,
                    patient_id=encounter.patient_id,
                    facility_id=encounter.facility_id,
                    score=round(explained.probability, 4),
                    band=band,
                    summary=_summary(
                        self._headline(explained.probability, band)
                        + ": "
                        + ", ".join(f.text or f.name for f in factors if f.contribution > 0)
                    ),
                    explanation=Explanation(
                        method=f"model:{model.name}@{model.version}",
                        factors=factors,
                        evidence=evidence,
                    ),
                    recommended_action=self._action(band),
                    source=Source(
                        name=self.name,
                        version=f"{self.version}+model.{model.version}",
                        reference=self.reference,
                    ),
                    created_at=as_of,
                )
            )
        return out

    def _factors(
        self,
        explained: Explained,
        vector: np.ndarray,
        inputs: object,
        feature_names: Sequence[str],
    ) -> tuple[Factor, ...]:
        values = dict(zip(feature_names, vector.tolist(), strict=True))
        ranked = sorted(explained.contributions.items(), key=lambda kv: -abs(kv[1]))
        factors = []
        for group, contribution in ranked[: self.top_factors]:
            value, unit, text = self._describe(group, values, inputs)
            factors.append(
                Factor(
                    name=group,
                    value=value,
                    contribution=round(contribution, 4),
                    unit=unit,
                    text=text,
                )
            )
        return tuple(factors)

    # Subclasses fill these in.
    def _describe(
        self, group: str, values: dict[str, float], inputs: object
    ) -> tuple[float | str | None, str | None, str]:
        raise NotImplementedError

    def _evidence(self, encounter: Encounter, inputs: object, groups: list[str]) -> tuple[str, ...]:
        raise NotImplementedError

    def _headline(self, probability: float, band: str) -> str:
        raise NotImplementedError

    def _action(self, band: str) -> str:
        raise NotImplementedError


def _trend(slope: float, mean: float, hours: float) -> str:
    if math.isnan(slope) or math.isnan(mean) or hours <= 0:
        return ""
    change = slope * min(hours, 24.0)
    if abs(change) < 0.1 * max(abs(mean), 1e-9):
        return ", stable"
    return ", rising" if change > 0 else ", falling"


class DeteriorationScorer(_ModelScorer):
    """Risk of in-hospital death from the first 48 h of an inpatient stay (trained model).

    Scores in-progress inpatient encounters with at least ``min_observations`` valid
    measurements in the window (admission to admission + 48 h, cut at ``as_of``).

    Parameters
    ----------
    store : ModelStore, optional
        Where the ``deterioration`` model is loaded from (default :func:`default_store`).
    bands : tuple, optional
        ``(lower probability, band, severity)`` highest first; default very high ≥ 0.5
        (critical), high ≥ 0.3 (warning), raised ≥ 0.1 (info; the training prevalence is
        14 %); below the lowest band no suggestion.
    top_factors : int, default=5
    min_observations : int, default=5
    """

    name: ClassVar[str] = "deterioration"
    kind: ClassVar[str] = "clinical.deterioration"
    version: ClassVar[str] = "1.0.0"
    reference: ClassVar[str | None] = (
        "HealthOS deterioration model (see its model card); trained on the PhysioNet/CinC "
        "Challenge 2012 (Silva et al., Comput Cardiol 2012)"
    )
    model_name: ClassVar[str] = "deterioration"
    default_bands: ClassVar[Bands] = (
        (0.5, "very high", Severity.CRITICAL),
        (0.3, "high", Severity.WARNING),
        (0.1, "raised", Severity.INFO),
    )

    def __init__(
        self,
        *,
        store: ModelStore | None = None,
        bands: Bands | None = None,
        top_factors: int = 5,
        min_observations: int = 5,
    ) -> None:
        super().__init__(store=store, bands=bands, top_factors=top_factors)
        self.min_observations = min_observations

    def score(self, session: Session, *, as_of: dt.datetime | None = None) -> list[Suggestion]:
        """Return a suggestion per in-progress inpatient stay at raised risk or above."""
        return self._score(session, as_of=as_of, encounter_ids=None)

    def _score(
        self,
        session: Session,
        *,
        as_of: dt.datetime | None,
        encounter_ids: list[str] | None,
    ) -> list[Suggestion]:
        now = resolve_as_of(as_of)
        query_encounters = select(Encounter).where(
            Encounter.status == "in-progress",
            Encounter.class_code == "IMP",
            Encounter.period_start <= now,
        )
        if encounter_ids is not None:
            query_encounters = query_encounters.where(Encounter.id.in_(encounter_ids))
        encounters = {e.id: e for e in session.scalars(query_encounters)}
        if not encounters or self._model_or_none() is None:
            return []
        rows = []
        for inputs in deterioration.from_record(session, sorted(encounters), as_of=now):
            if len(inputs.evidence()) < self.min_observations:
                continue
            encounter = encounters[inputs.subject.split("/", 1)[1]]
            rows.append((encounter, deterioration.vector(inputs), inputs))
        return self._suggestions(rows, as_of=now)

    def _describe(
        self, group: str, values: dict[str, float], inputs: object
    ) -> tuple[float | str | None, str | None, str]:
        assert isinstance(inputs, StayInputs)  # noqa: S101 - internal contract
        if group == "age":
            return values["age"], "a", f"age {values['age']:g}"
        if group == "sex":
            return inputs.sex, None, f"sex {inputs.sex or 'unknown'}"
        if group == "icu_type":
            unit = next(
                (n for loc, n in deterioration.ICU_TYPES if loc == inputs.location_id), None
            )
            return unit, None, unit or "not an ICU bed"
        for name, display, unit, _ in deterioration.VARIABLES:
            if name != group:
                continue
            if name == "mech_vent":
                on = values.get("mech_vent_count", 0.0) > 0
                return float(on), None, "mechanically ventilated" if on else "not ventilated"
            if name == "urine":
                total = values.get("urine_total", math.nan)
                if math.isnan(total):
                    return None, unit, "urine output not recorded"
                return total, unit, f"urine output {total:,.0f} {unit} so far"
            last = values.get(f"{name}_last", math.nan)
            if math.isnan(last):
                return None, unit, f"{display} not measured"
            hours = (inputs.window_end - inputs.admitted_at).total_seconds() / 3600.0
            trend = _trend(
                values.get(f"{name}_slope", math.nan), values.get(f"{name}_mean", math.nan), hours
            )
            return last, unit or None, f"{display} {last:g}{' ' + unit if unit else ''}{trend}"
        return None, None, group

    def _evidence(self, encounter: Encounter, inputs: object, groups: list[str]) -> tuple[str, ...]:
        assert isinstance(inputs, StayInputs)  # noqa: S101 - internal contract
        refs = {encounter.reference}
        for group in groups:
            points = [
                p
                for p in inputs.points.get(group, ())
                if inputs.admitted_at <= p.time <= inputs.window_end and p.reference
            ]
            if points:
                refs.add(str(max(points, key=lambda p: p.time).reference))
        return tuple(sorted(refs))

    def _headline(self, probability: float, band: str) -> str:
        return f"Deterioration risk {probability:.0%} ({band})"

    def _action(self, band: str) -> str:
        if band == "very high":
            return (
                "Senior review of this patient today: confirm the treatment plan, "
                "escalation status and the contributing results listed."
            )
        if band == "high":
            return "Review at the next ward round; check the contributing results listed."
        return "Keep on the watch list; recheck the contributing results listed."


_DISCHARGE_WORDS = {
    "home": "home",
    "alt-home": "home with home health",
    "snf": "a skilled nursing facility",
    "long": "long-term care",
    "rehab": "rehabilitation",
    "hosp": "another hospital",
    "other-hcf": "another care facility",
    "psy": "psychiatric care",
    "aadvice": "against medical advice",
}


class ReadmissionScorer(_ModelScorer):
    """Risk of readmission within 30 days, at or before discharge (trained model).

    Scores inpatient encounters in progress (discharge planning) or finished within
    ``recent_hours`` before ``as_of``.

    Parameters
    ----------
    store : ModelStore, optional
    bands : tuple, optional
        Default high ≥ 0.3 (warning), raised ≥ 0.15 (info; the training prevalence is
        11 %); below, no suggestion.
    top_factors : int, default=5
    recent_hours : float, default=24
    """

    name: ClassVar[str] = "readmission"
    kind: ClassVar[str] = "clinical.readmission"
    version: ClassVar[str] = "1.0.0"
    reference: ClassVar[str | None] = (
        "HealthOS readmission model (see its model card); trained on UCI Diabetes "
        "130-US hospitals (Strack et al., BioMed Res Int 2014)"
    )
    model_name: ClassVar[str] = "readmission"
    default_bands: ClassVar[Bands] = (
        (0.3, "high", Severity.WARNING),
        (0.15, "raised", Severity.INFO),
    )

    def __init__(
        self,
        *,
        store: ModelStore | None = None,
        bands: Bands | None = None,
        top_factors: int = 5,
        recent_hours: float = 24,
    ) -> None:
        super().__init__(store=store, bands=bands, top_factors=top_factors)
        self.recent_hours = recent_hours

    def score(self, session: Session, *, as_of: dt.datetime | None = None) -> list[Suggestion]:
        """Return a suggestion per inpatient stay at or near discharge at raised risk."""
        return self._score(session, as_of=as_of, encounter_ids=None)

    def _score(
        self,
        session: Session,
        *,
        as_of: dt.datetime | None,
        encounter_ids: list[str] | None,
    ) -> list[Suggestion]:
        now = resolve_as_of(as_of)
        since = now - dt.timedelta(hours=self.recent_hours)
        query_encounters = select(Encounter).where(
            Encounter.class_code == "IMP",
            Encounter.period_start <= now,
            or_(
                Encounter.status == "in-progress",
                (Encounter.status == "finished")
                & (Encounter.period_end >= since)
                & (Encounter.period_end <= now),
            ),
        )
        if encounter_ids is not None:
            query_encounters = query_encounters.where(Encounter.id.in_(encounter_ids))
        encounters = {e.id: e for e in session.scalars(query_encounters)}
        if not encounters or self._model_or_none() is None:
            return []
        rows = [
            (encounters[i.subject.split("/", 1)[1]], readmission.vector(i), i)
            for i in readmission.from_record(session, sorted(encounters), as_of=now)
        ]
        return self._suggestions(rows, as_of=now)

    def _describe(
        self, group: str, values: dict[str, float], inputs: object
    ) -> tuple[float | str | None, str | None, str]:
        assert isinstance(inputs, AdmissionInputs)  # noqa: S101 - internal contract
        i = inputs
        words: dict[str, tuple[float | str | None, str | None, str]] = {
            "age": (i.age, "a", f"age {i.age:g}"),
            "sex": (i.sex, None, f"sex {i.sex or 'unknown'}"),
            "length_of_stay": (i.los_days, "d", f"length of stay {i.los_days:g} days"),
            "admission": (
                i.admit_source,
                None,
                "emergency admission" if i.priority == "EM" else "planned or other admission",
            ),
            "discharge": (
                i.discharge_disposition,
                None,
                "discharge destination not yet recorded"
                if i.discharge_disposition is None
                else "discharged to "
                + _DISCHARGE_WORDS.get(i.discharge_disposition, i.discharge_disposition),
            ),
            "lab_tests": (float(i.n_lab_tests), None, f"{i.n_lab_tests} lab tests"),
            "procedures": (float(i.n_procedures), None, f"{i.n_procedures} procedures"),
            "medications": (float(i.n_medications), None, f"{i.n_medications} medicines"),
            "prior_outpatient": (
                float(i.n_outpatient_prior_year),
                None,
                f"{i.n_outpatient_prior_year} outpatient visits in the prior year",
            ),
            "prior_emergency": (
                float(i.n_emergency_prior_year),
                None,
                f"{i.n_emergency_prior_year} emergency visits in the prior year",
            ),
            "prior_inpatient": (
                float(i.n_inpatient_prior_year),
                None,
                f"{i.n_inpatient_prior_year} inpatient stays in the prior year"
                + (", itself a 30-day readmission" if i.readmission_of_recent_stay else ""),
            ),
            "diagnoses": (float(len(i.diagnoses)), None, f"{len(i.diagnoses)} diagnoses"),
            "primary_diagnosis": (
                i.diagnoses[0][1] if i.diagnoses else None,
                None,
                f"primary diagnosis {i.diagnoses[0][1]}" if i.diagnoses else "no diagnosis",
            ),
            "hba1c": (i.hba1c, None, f"HbA1c {i.hba1c or 'not measured'}"),
            "glucose": (i.glucose, None, f"glucose {i.glucose or 'not measured'}"),
            "diabetes_medicines": (
                float(len(i.diabetes_medicines)),
                None,
                f"{len(i.diabetes_medicines)} diabetes medicines"
                + (" incl. insulin" if "insulin" in i.diabetes_medicines else ""),
            ),
        }
        if group in words:
            return words[group]
        if group in readmission.COMORBIDITIES:
            present = values.get(f"comorbidity_{group}", 0.0) > 0
            label = group.replace("_", " ")
            return float(present), None, f"{label} coded" if present else f"no {label} coded"
        return None, None, group

    def _evidence(self, encounter: Encounter, inputs: object, groups: list[str]) -> tuple[str, ...]:
        assert isinstance(inputs, AdmissionInputs)  # noqa: S101 - internal contract
        return tuple(sorted({encounter.reference, *inputs.evidence}))

    def _headline(self, probability: float, band: str) -> str:
        return f"30-day readmission risk {probability:.0%} ({band})"

    def _action(self, band: str) -> str:
        if band == "high":
            return (
                "Plan transitional care before discharge: medication reconciliation, "
                "follow-up within 7 days, and a call within 48 hours of discharge."
            )
        return "Confirm a follow-up appointment and medication reconciliation at discharge."
