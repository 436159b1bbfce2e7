"""LACE scorer: each inpatient stay near discharge → a 30-day readmission/death risk.

Reads the record, never writes it. For every inpatient (class ``IMP``) encounter in
progress at ``as_of`` (discharge planning: the length of stay so far) or discharged in
the ``recent_hours`` before it, the scorer assembles the four LACE inputs from the record
and computes the LACE index (van Walraven et al., CMAJ 2010;182(6):551-7, Table 3) with
:func:`reasoning.clinical.lace.lace`.

How the inputs are read
-----------------------
* **L**, length of stay in days: ``(end - period_start) / 24 h`` where ``end`` is the
  discharge time, or ``as_of`` while the patient is still in hospital (floored to
  completed days by :func:`~reasoning.clinical.lace.lace`).
* **A**, acute (emergent) admission: ``admit_source`` is ``"emd"`` (FHIR
  admit-source "From accident/emergency department"), **or** an emergency (class
  ``EMER``) encounter of the same patient started no later than the admission and ended
  (or, with no end recorded, started) within ``acute_ed_hours`` (default 24 h) before the
  admission started (an ED visit overlapping the admission also counts). Such an ED
  visit is the *index* ED visit.
* **C**, Charlson comorbidity index (:func:`~reasoning.clinical.lace.charlson_index`):
  from the patient's Condition rows carrying an ICD-10-CM or ICD-10 code (the primary
  coding, or another coding in the stored FHIR resource), recorded (``recorded_at``, else
  ``onset_at``) at or before ``as_of``; undated rows count. Rows whose verification
  status is ``entered-in-error`` or ``refuted`` are ignored. Resolved conditions count
  (Charlson is a history). Conditions coded only in another system (e.g. SNOMED CT, as
  Synthea codes them) are **not** mapped to ICD-10: no mapping is invented. How many were
  not counted is a zero-contribution factor of the explanation.
* **E**, emergency department visits: the patient's ``EMER`` encounters that started in
  the ``ed_lookback_days`` (default 183, i.e. 6 months) before the admission, not
  counting the index ED visit (it is the admission's own route in, scored by A).
  Planned, cancelled and entered-in-error encounters are never counted.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from healthos_core import terminology as t
from healthos_core.record.entities import Condition, Encounter
from reasoning.base import Scorer, resolve_as_of
from reasoning.clinical.errors import InvalidScoreInputError
from reasoning.clinical.lace import LaceResult, charlson_conditions, charlson_index, lace
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion

#: Encounter statuses that are not a real visit (never counted for A or E).
NOT_A_VISIT = ("planned", "cancelled", "entered-in-error")
#: Condition verification statuses that are not a diagnosis.
NOT_A_DIAGNOSIS = ("entered-in-error", "refuted")
#: FHIR admit-source code for an admission from the emergency department.
ADMIT_SOURCE_ED = "emd"

#: Band → severity. Every band goes to the clinician: a review list, not an alarm.
BAND_SEVERITY: dict[str, Severity] = {
    "low": Severity.INFO,
    "moderate": Severity.INFO,
    "high": Severity.WARNING,
}

#: Band → recommended action (transitional-care practice for high LACE scores).
BAND_ACTION: dict[str, str] = {
    "high": (
        "High risk of death or unplanned readmission within 30 days: plan transitional "
        "care before discharge (medication reconciliation, patient education, a discharge "
        "summary sent to the primary care provider) and book follow-up within 7 days of "
        "discharge."
    ),
    "moderate": (
        "Moderate risk of death or unplanned readmission within 30 days: reconcile "
        "medications and book a follow-up appointment (within 14 days) before discharge."
    ),
    "low": "Low risk of death or unplanned readmission within 30 days: routine discharge care.",
}

_SYSTEM_NAMES = {t.SNOMED: "SNOMED CT"}


@dataclass(frozen=True)
class CharlsonSummary:
    """The Charlson index of one patient and the Condition rows it rests on.

    Parameters
    ----------
    index : int
        Charlson comorbidity index (0-29).
    conditions : tuple of str
        Charlson conditions counted (keys of ``CHARLSON_WEIGHTS``), after the hierarchy.
    evidence : tuple of str
        ``"Condition/id"`` of the rows carrying a counted condition.
    not_counted : int
        Rows not used: no ICD-10 coding, or an invalid ICD-10 code.
    other_systems : tuple of str
        Names of the code systems of the rows with no ICD-10 coding (e.g. ``"SNOMED CT"``).
    invalid : int
        Rows (of ``not_counted``) whose ICD-10 code is malformed.
    """

    index: int
    conditions: tuple[str, ...]
    evidence: tuple[str, ...]
    not_counted: int
    other_systems: tuple[str, ...]
    invalid: int


def icd10_code(condition: Condition) -> str | None:
    """Return a condition's ICD-10(-CM) code, from its primary or any stored coding.

    Parameters
    ----------
    condition : Condition
        A Condition row.

    Returns
    -------
    str or None
        The first ICD-10-CM or ICD-10 code (as stored, e.g. ``"I21.4"``); ``None`` when
        the condition carries no ICD-10 coding (e.g. only SNOMED CT).
    """
    if condition.code_system in t.ICD10_SYSTEMS and condition.code:
        return condition.code
    resource = condition.resource or {}
    code = resource.get("code") if isinstance(resource, dict) else None
    codings = code.get("coding") if isinstance(code, dict) else None
    for coding in codings if isinstance(codings, list) else []:
        if (
            isinstance(coding, dict)
            and coding.get("system") in t.ICD10_SYSTEMS
            and isinstance(coding.get("code"), str)
        ):
            return str(coding["code"])
    return None


def patient_charlson(conditions: Iterable[Condition]) -> CharlsonSummary:
    """Charlson index (Charlson 1987; Quan 2005 ICD-10 codes) of one patient's conditions.

    Parameters
    ----------
    conditions : iterable of Condition
        The patient's valid Condition rows (already filtered by time and verification).

    Returns
    -------
    CharlsonSummary
        The index, the Charlson conditions counted, the references of the rows that
        carry them, and how many rows were not counted (coded in another system only, or
        not a valid ICD-10 code).
    """
    coded: list[tuple[Condition, str, tuple[str, ...]]] = []
    other_systems: set[str] = set()
    not_counted = invalid = 0
    for condition in conditions:
        code = icd10_code(condition)
        if code is None:
            not_counted += 1
            other_systems.add(
                _SYSTEM_NAMES.get(condition.code_system or "", condition.code_system or "uncoded")
            )
            continue
        try:
            found = charlson_conditions([code])
        except InvalidScoreInputError:
            not_counted += 1
            invalid += 1
            continue
        coded.append((condition, code, found))
    counted = charlson_conditions([code for _, code, _ in coded])
    evidence = sorted({c.reference for c, _, found in coded if set(found) & set(counted)})
    return CharlsonSummary(
        index=charlson_index([code for _, code, _ in coded]),
        conditions=counted,
        evidence=tuple(evidence),
        not_counted=not_counted,
        other_systems=tuple(sorted(other_systems)),
        invalid=invalid,
    )


class LaceScorer(Scorer):
    """LACE index (30-day death or unplanned readmission) for inpatients near discharge.

    Parameters
    ----------
    recent_hours : float, default=24
        Inpatient encounters discharged (status ``finished``) within this many hours
        before ``as_of`` are scored with their final length of stay; in-progress ones
        with the stay so far.
    acute_ed_hours : float, default=24
        An emergency (``EMER``) encounter that ended at most this many hours before the
        admission started makes the admission acute (A = 3 points).
    ed_lookback_days : float, default=183
        Emergency visits that started this many days (6 months) before the admission
        are counted for E.
    min_total : int, default=0
        LACE totals below this give no suggestion (0: every inpatient is listed).

    Notes
    -----
    Each suggestion's factors are the four LACE components with their points (Table 3
    of van Walraven et al. 2010) and, when some of the patient's conditions could not be
    used for the Charlson index, a zero-contribution factor saying how many. Bands
    (HealthOS convention): 0-4 low, 5-9 moderate, >= 10 high; high is a ``warning``,
    the others ``info``, all for the clinician.
    """

    name: ClassVar[str] = "lace"
    kind: ClassVar[str] = "clinical.lace"
    version: ClassVar[str] = "1.0.0"
    reference: ClassVar[str | None] = (
        "van Walraven et al. CMAJ 2010;182(6):551-7, Table 3 (LACE); Charlson 1987 weights, "
        "Quan 2005 ICD-10 codes"
    )

    def __init__(
        self,
        *,
        recent_hours: float = 24,
        acute_ed_hours: float = 24,
        ed_lookback_days: float = 183,
        min_total: int = 0,
    ) -> None:
        self.recent_hours = recent_hours
        self.acute_ed_hours = acute_ed_hours
        self.ed_lookback_days = ed_lookback_days
        self.min_total = min_total

    def score(self, session: Session, *, as_of: dt.datetime | None = None) -> list[Suggestion]:
        """Return one LACE suggestion per current or just-discharged inpatient stay.

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
        now = resolve_as_of(as_of)
        recent = now - dt.timedelta(hours=self.recent_hours)
        encounters = list(
            session.scalars(
                select(Encounter)
                .where(
                    Encounter.class_code == "IMP",
                    Encounter.period_start.is_not(None),
                    Encounter.period_start <= now,
                    or_(
                        Encounter.status == "in-progress",
                        and_(Encounter.status == "finished", Encounter.period_end >= recent),
                    ),
                )
                .order_by(Encounter.id)
            )
        )
        if not encounters:
            return []
        patient_ids = sorted({e.patient_id for e in encounters})
        emergency: dict[str, list[Encounter]] = defaultdict(list)
        for visit in session.scalars(
            select(Encounter).where(
                Encounter.patient_id.in_(patient_ids),
                Encounter.class_code == "EMER",
                Encounter.status.not_in(NOT_A_VISIT),
                Encounter.period_start.is_not(None),
                Encounter.period_start <= now,
            )
        ):
            emergency[visit.patient_id].append(visit)
        conditions: dict[str, list[Condition]] = defaultdict(list)
        for condition in session.scalars(
            select(Condition).where(
                Condition.patient_id.in_(patient_ids),
                or_(
                    Condition.verification_status.is_(None),
                    Condition.verification_status.not_in(NOT_A_DIAGNOSIS),
                ),
            )
        ):
            known = condition.recorded_at or condition.onset_at
            if known is None or known <= now:
                conditions[condition.patient_id].append(condition)
        charlson = {pid: patient_charlson(conditions[pid]) for pid in patient_ids}
        suggestions = []
        for encounter in encounters:
            suggestion = self._suggest(
                encounter, now, emergency[encounter.patient_id], charlson[encounter.patient_id]
            )
            if suggestion is not None:
                suggestions.append(suggestion)
        return suggestions

    def _suggest(
        self,
        encounter: Encounter,
        now: dt.datetime,
        emergency: list[Encounter],
        charlson: CharlsonSummary,
    ) -> Suggestion | None:
        start = encounter.period_start
        if start is None:  # excluded by the query; keeps the type checker informed
            return None
        discharged = encounter.period_end is not None and encounter.period_end <= now
        end = encounter.period_end if discharged and encounter.period_end else now
        los_days = max(0.0, (end - start).total_seconds() / 86400)

        acute_after = start - dt.timedelta(hours=self.acute_ed_hours)
        index_visits = sorted(
            (
                v
                for v in emergency
                if v.id != encounter.id
                and v.period_start is not None
                and v.period_start <= start
                and (v.period_end or v.period_start) >= acute_after
            ),
            key=lambda v: v.id,
        )
        from_ed = (encounter.admit_source or "").lower() == ADMIT_SOURCE_ED
        acute = from_ed or bool(index_visits)
        lookback = start - dt.timedelta(days=self.ed_lookback_days)
        index_ids = {v.id for v in index_visits}
        visits = sorted(
            (
                v
                for v in emergency
                if v.id != encounter.id
                and v.id not in index_ids
                and v.period_start is not None
                and lookback <= v.period_start < start
            ),
            key=lambda v: v.id,
        )
        result = lace(
            length_of_stay_days=min(los_days, 3650.0),
            acute_admission=acute,
            charlson_index=charlson.index,
            ed_visits_6m=len(visits),
        )
        if result.total < self.min_total:
            return None
        if from_ed:
            acute_text = "acute admission (from the emergency department)"
        elif index_visits:
            acute_text = f"acute admission (via {index_visits[0].reference})"
        else:
            acute_text = "not an acute admission"
        factors = _factors(
            result,
            los_days=los_days,
            discharged=discharged,
            acute=acute,
            acute_text=acute_text,
            charlson=charlson,
            ed_visits=len(visits),
        )
        evidence = tuple(
            sorted(
                {
                    encounter.reference,
                    *(v.reference for v in index_visits),
                    *(v.reference for v in visits),
                    *charlson.evidence,
                }
            )
        )
        c = result.components
        summary = (
            f"LACE {result.total} ({result.band} 30-day readmission/death risk): "
            f"L{c['length_of_stay']} A{c['acute_admission']} "
            f"C{c['comorbidity']} E{c['ed_visits']}"
            + (", discharged" if discharged else f", day {int(los_days) + 1} in hospital")
        )
        if charlson.not_counted:
            summary += f"; {charlson.not_counted} non-ICD-10 diagnoses not counted"
        if len(summary) > 140:
            summary = summary[:137] + "..."
        return Suggestion(
            kind=self.kind,
            audience=Audience.CLINICIAN,
            severity=BAND_SEVERITY[result.band],
            subject=encounter.reference,
            patient_id=encounter.patient_id,
            facility_id=encounter.facility_id,
            score=float(result.total),
            band=result.band,
            summary=summary,
            explanation=Explanation(method="rule:lace", factors=factors, evidence=evidence),
            recommended_action=BAND_ACTION[result.band],
            source=Source(name=self.name, version=self.version, reference=self.reference),
            created_at=end,
        )


def _factors(
    result: LaceResult,
    *,
    los_days: float,
    discharged: bool,
    acute: bool,
    acute_text: str,
    charlson: CharlsonSummary,
    ed_visits: int,
) -> tuple[Factor, ...]:
    points = result.components
    conditions = ", ".join(c.replace("_", " ") for c in charlson.conditions)
    factors = [
        Factor(
            name="length_of_stay",
            value=round(los_days, 2),
            contribution=float(points["length_of_stay"]),
            unit="d",
            text=f"length of stay {los_days:.1f} days" + ("" if discharged else " so far"),
        ),
        Factor(
            name="acute_admission",
            value="emergent" if acute else "elective",
            contribution=float(points["acute_admission"]),
            text=acute_text,
        ),
        Factor(
            name="comorbidity",
            value=float(charlson.index),
            contribution=float(points["comorbidity"]),
            text=f"Charlson index {charlson.index}" + (f" ({conditions})" if conditions else ""),
        ),
        Factor(
            name="ed_visits",
            value=float(ed_visits),
            contribution=float(points["ed_visits"]),
            text=f"{ed_visits} emergency visit{'' if ed_visits == 1 else 's'} in the 6 months "
            "before admission",
        ),
    ]
    factors.sort(key=lambda f: -f.contribution)
    if charlson.not_counted:
        parts = []
        other = charlson.not_counted - charlson.invalid
        if other:
            parts.append(f"{other} coded only in {', '.join(charlson.other_systems)}")
        if charlson.invalid:
            parts.append(f"{charlson.invalid} with an invalid ICD-10 code")
        factors.append(
            Factor(
                name="conditions_not_counted",
                value=float(charlson.not_counted),
                contribution=0.0,
                text=(
                    f"{charlson.not_counted} diagnoses not counted in the Charlson index "
                    f"({'; '.join(parts)}): no ICD-10 code, none is inferred"
                ),
            )
        )
    return tuple(factors)
