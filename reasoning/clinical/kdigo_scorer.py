"""KDIGO AKI scorer: a creatinine rise in an in-progress encounter → an AKI-stage suggestion.

Reads the record, never writes it. For every in-progress inpatient or emergency
encounter it reads the patient's serum creatinine results (LOINC 2160-0, mg/dL) and
stages the latest one with :func:`reasoning.clinical.kdigo.kdigo_aki` (KDIGO 2012
Clinical Practice Guideline for AKI, section 2.1, Table 2). Stage 1 is a ``warning``,
stages 2-3 are ``critical``; stage 0 gives no suggestion.

How the rules are applied
-------------------------
* The staged value is the patient's latest creatinine at or before ``as_of``; it must lie
  within ``recent_days`` (default 7) before ``as_of``, else nothing is staged.
* As :func:`~reasoning.clinical.kdigo.kdigo_aki` defines it, the baseline is the lowest
  value in the 7 days before the latest one (so values up to 14 days before ``as_of``
  can serve), and the 48-hour rise is measured from the lowest value in the 48 h before
  it.
* When no earlier value lies within those 7 days, the baseline is the **median** of the
  patient's values from 8 to ``baseline_days`` (default 365) days before the latest (the
  "RV2" reference value of the NHS England AKI algorithm, 2014), given to
  ``kdigo_aki`` as a known baseline. Without either no stage is given (unknown is not
  "no AKI").
* Units: mg/dL (also when no unit is recorded: LOINC 2160-0 is a mass concentration);
  µmol/L values are divided by 88.4; other units are not used. Only observations with
  status ``final``, ``amended``, ``corrected`` or ``preliminary`` are read.
* Urine output and renal replacement therapy are not read (creatinine criteria only).
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from healthos_core import terminology as t
from healthos_core.record.entities import Encounter, Observation
from reasoning.base import EncounterScorer, resolve_as_of
from reasoning.clinical.errors import IncompleteScoreError, InvalidScoreInputError
from reasoning.clinical.kdigo import KdigoResult, kdigo_aki
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion

#: Observation statuses whose values are facts.
VALID_STATUSES = ("final", "amended", "corrected", "preliminary")
#: Unit (lower case) → factor to mg/dL.
UNIT_TO_MG_DL: dict[str | None, float] = {
    None: 1.0,
    "": 1.0,
    "mg/dl": 1.0,
    "umol/l": 1 / 88.4,
    "µmol/l": 1 / 88.4,
    "μmol/l": 1 / 88.4,
}
#: kdigo_aki's own window for the baseline (KDIGO: "within the prior 7 days").
BASELINE_WINDOW = dt.timedelta(days=7)

#: Stage → severity.
STAGE_SEVERITY = {1: Severity.WARNING, 2: Severity.CRITICAL, 3: Severity.CRITICAL}

_STAGE_1 = (
    "Discontinue nephrotoxic agents where possible, ensure volume status and perfusion "
    "pressure, monitor serum creatinine and urine output, avoid hyperglycaemia and consider "
    "alternatives to radiocontrast"
)
#: Stage → recommended action (KDIGO 2012, Figure 4: stage-based management).
STAGE_ACTION = {
    1: f"AKI stage 1: {_STAGE_1}.",
    2: f"AKI stage 2: {_STAGE_1}; check drug dosing, consider renal replacement therapy "
    "and ICU admission.",
    3: f"AKI stage 3: {_STAGE_1}; check drug dosing, consider renal replacement therapy "
    "and ICU admission, and avoid subclavian catheters if possible. Discuss with the "
    "renal team.",
}


@dataclass(frozen=True)
class _Creatinine:
    at: dt.datetime
    mg_dl: float
    ref: str


def creatinine_mg_dl(observation: Observation) -> float | None:
    """Return a creatinine observation's value in mg/dL, or ``None`` if it cannot be used.

    Parameters
    ----------
    observation : Observation
        A serum creatinine result (LOINC 2160-0).

    Returns
    -------
    float or None
        The value in mg/dL (µmol/L divided by 88.4); ``None`` without a value or with
        an unknown unit.
    """
    if observation.value is None:
        return None
    unit = observation.unit.strip().lower() if observation.unit is not None else None
    factor = UNIT_TO_MG_DL.get(unit)
    return observation.value * factor if factor is not None else None


class KdigoScorer(EncounterScorer):
    """KDIGO 2012 AKI stage from serum creatinine, for in-progress encounters.

    Parameters
    ----------
    recent_days : float, default=7
        The latest creatinine must be at most this many days before ``as_of``.
    baseline_days : float, default=365
        When no value lies in the 7 days before the latest, the median of the values
        from 8 to this many days before it is the baseline; 0 turns this off.
    encounter_classes : tuple of str, default=("IMP", "EMER")
        Encounter classes scored.

    Notes
    -----
    Factors: the baseline and the latest creatinine (mg/dL), the ratio latest/baseline
    and the 48-hour rise (mg/dL). A factor's contribution is the stage its criterion
    alone gives (ratio >= 1.5/2.0/3.0: 1/2/3; rise >= 0.3 mg/dL: 1; latest >= 4.0 mg/dL
    with an acute rise: 3; the baseline: 0); the stage is the highest of them.
    """

    name: ClassVar[str] = "kdigo_aki"
    kind: ClassVar[str] = "clinical.kdigo_aki"
    version: ClassVar[str] = "1.0.0"
    reference: ClassVar[str | None] = (
        "KDIGO Clinical Practice Guideline for AKI, Kidney Int Suppl 2012;2(1):1-138, "
        "section 2.1, Table 2"
    )

    def __init__(
        self,
        *,
        recent_days: float = 7,
        baseline_days: float = 365,
        encounter_classes: tuple[str, ...] = ("IMP", "EMER"),
    ) -> None:
        self.recent_days = recent_days
        self.baseline_days = baseline_days
        self.encounter_classes = encounter_classes

    def score(self, session: Session, *, as_of: dt.datetime | None = None) -> list[Suggestion]:
        """Return one AKI suggestion per in-progress encounter whose patient has AKI.

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
        lookback = dt.timedelta(days=self.recent_days) + max(
            BASELINE_WINDOW, dt.timedelta(days=self.baseline_days)
        )
        by_patient: dict[str, list[_Creatinine]] = defaultdict(list)
        for obs in session.scalars(
            select(Observation).where(
                Observation.patient_id.in_(sorted({e.patient_id for e in encounters})),
                Observation.code == t.CREATININE,
                Observation.status.in_(VALID_STATUSES),
                Observation.effective_at.is_not(None),
                Observation.effective_at <= now,
                Observation.effective_at >= now - lookback,
            )
        ):
            value = creatinine_mg_dl(obs)
            if value is not None and obs.effective_at is not None:
                by_patient[obs.patient_id].append(
                    _Creatinine(obs.effective_at, value, obs.reference)
                )
        staged: dict[str, tuple[KdigoResult, list[_Creatinine], str] | None] = {}
        suggestions = []
        for encounter in encounters:
            if encounter.patient_id not in staged:
                staged[encounter.patient_id] = self._stage(by_patient[encounter.patient_id], now)
            found = staged[encounter.patient_id]
            if found is not None:
                suggestions.append(self._suggest(encounter, *found))
        return suggestions

    def _stage(
        self, values: list[_Creatinine], now: dt.datetime
    ) -> tuple[KdigoResult, list[_Creatinine], str] | None:
        """Stage the latest value; return the result, the values used and the baseline text."""
        if not values:
            return None
        values = sorted(values, key=lambda v: (v.at, v.ref))
        latest = values[-1]
        if latest.at < now - dt.timedelta(days=self.recent_days):
            return None
        window = [v for v in values if v.at >= latest.at - BASELINE_WINDOW]
        baseline: float | None = None
        used: list[_Creatinine] = []
        baseline_text = "lowest in the 7 days before"
        if len(window) == 1 and self.baseline_days > 0:
            older = [
                v
                for v in values
                if latest.at - dt.timedelta(days=self.baseline_days)
                <= v.at
                < latest.at - BASELINE_WINDOW
            ]
            if older:
                baseline = statistics.median(v.mg_dl for v in older)
                used = older
                baseline_text = f"median of {len(older)} value{'s' * (len(older) > 1)} 8-" + (
                    f"{self.baseline_days:g} days before"
                )
        try:
            result = kdigo_aki([(v.at, v.mg_dl) for v in window], baseline=baseline)
        except (IncompleteScoreError, InvalidScoreInputError):
            return None  # no baseline, or an impossible value the importer did not flag
        if not result.aki:
            return None
        return result, [window[i] for i in result.evidence] + used, baseline_text

    def _suggest(
        self,
        encounter: Encounter,
        result: KdigoResult,
        used: list[_Creatinine],
        baseline_text: str,
    ) -> Suggestion:
        latest_at = max(v.at for v in used)
        factors = _factors(result, baseline_text)
        ratio = f", {result.ratio:.1f}× baseline {result.baseline:g}" if result.ratio else ""
        rise = f", +{result.rise_48h:.2f} in 48 h" if result.rise_48h is not None else ""
        summary = (
            f"AKI stage {result.stage} (KDIGO): creatinine {result.latest:g} mg/dL{ratio}{rise}"
        )
        if len(summary) > 140:
            summary = summary[:137] + "..."
        return Suggestion(
            kind=self.kind,
            audience=Audience.CLINICIAN,
            severity=STAGE_SEVERITY[result.stage],
            subject=encounter.reference,
            patient_id=encounter.patient_id,
            facility_id=encounter.facility_id,
            score=float(result.stage),
            band=f"stage {result.stage}",
            summary=summary,
            explanation=Explanation(
                method="rule:kdigo_aki",
                factors=factors,
                evidence=tuple(sorted({v.ref for v in used})),
            ),
            recommended_action=STAGE_ACTION[result.stage],
            source=Source(name=self.name, version=self.version, reference=self.reference),
            created_at=latest_at,
        )


def _factors(result: KdigoResult, baseline_text: str) -> tuple[Factor, ...]:
    met = set(result.criteria)
    ratio_stage = (
        3 if "ratio_3.0" in met else 2 if "ratio_2.0" in met else 1 if "ratio_1.5" in met else 0
    )
    factors = [
        Factor(
            name="latest",
            value=result.latest,
            contribution=3.0 if "scr_4.0" in met else 0.0,
            unit="mg/dL",
            text=f"creatinine {result.latest:g} mg/dL"
            + (" (>= 4.0 with an acute rise)" if "scr_4.0" in met else ""),
        ),
        Factor(
            name="baseline",
            value=result.baseline,
            contribution=0.0,
            unit="mg/dL",
            text=f"baseline {result.baseline:g} mg/dL ({baseline_text})"
            if result.baseline is not None
            else "no baseline",
        ),
    ]
    if result.ratio is not None:
        factors.append(
            Factor(
                name="ratio",
                value=round(result.ratio, 3),
                contribution=float(ratio_stage),
                unit="1",
                text=f"{result.ratio:.2f}× baseline",
            )
        )
    if result.rise_48h is not None:
        factors.append(
            Factor(
                name="rise_48h",
                value=round(result.rise_48h, 3),
                contribution=1.0 if "rise_0.3_48h" in met else 0.0,
                unit="mg/dL",
                text=f"rise {result.rise_48h:+.2f} mg/dL in 48 h",
            )
        )
    factors.sort(key=lambda f: -f.contribution)
    return tuple(factors)
