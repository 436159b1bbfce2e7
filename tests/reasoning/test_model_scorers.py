"""Deterioration and readmission scorers on records built with factories (both databases)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from reasoning.base import Scorer
from reasoning.clinical.model_scorers import DeteriorationScorer, ReadmissionScorer
from reasoning.features.readmission import ICD9
from reasoning.inference import ModelStore
from reasoning.suggestion import Audience, Severity
from tests.conftest import table_counts
from tests.factories import make_condition, make_encounter, make_observation, make_patient

NOW = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
ADMITTED = NOW - dt.timedelta(hours=20)


def _series(
    session: Session,
    patient_id: str,
    encounter_id: str,
    code: str,
    values: list[float],
    category: str = "laboratory",
) -> None:
    step = 18 / max(len(values) - 1, 1)
    for n, value in enumerate(values):
        make_observation(
            session,
            patient_id=patient_id,
            encounter_id=encounter_id,
            code=code,
            value=value,
            effective_at=ADMITTED + dt.timedelta(hours=1 + n * step),
            category=category,
        )


def _icu_stay(session: Session, *, sick: bool) -> tuple[str, str]:
    patient = make_patient(session, gender="male", birth_date=dt.date(1940 if sick else 1990, 1, 1))
    encounter = make_encounter(session, patient=patient, class_code="IMP", period_start=ADMITTED)
    vitals = "vital-signs"
    if sick:
        _series(session, patient.id, encounter.id, "8867-4", [104, 118, 131, 138], vitals)
        _series(session, patient.id, encounter.id, "9279-1", [24, 28, 31, 33], vitals)
        _series(session, patient.id, encounter.id, "9269-2", [12, 9, 7, 6], "survey")
        _series(session, patient.id, encounter.id, "2524-7", [3.1, 4.4, 6.0, 7.5])
        _series(session, patient.id, encounter.id, "3094-0", [48, 62, 75])
        _series(session, patient.id, encounter.id, "2160-0", [2.1, 2.8, 3.4])
        _series(session, patient.id, encounter.id, "1963-8", [17, 14, 12])
    else:
        _series(session, patient.id, encounter.id, "8867-4", [72, 70, 74, 71], vitals)
        _series(session, patient.id, encounter.id, "9279-1", [14, 15, 14, 15], vitals)
        _series(session, patient.id, encounter.id, "9269-2", [15, 15, 15, 15], "survey")
        _series(session, patient.id, encounter.id, "3094-0", [12, 11])
        _series(session, patient.id, encounter.id, "2160-0", [0.8, 0.8])
    return patient.id, encounter.id


def test_deterioration_scorer_flags_the_sick_stay_with_an_explained_basis(
    session: Session,
) -> None:
    _, sick = _icu_stay(session, sick=True)
    _, well = _icu_stay(session, sick=False)
    scorer = DeteriorationScorer()
    suggestions = scorer.score(session, as_of=NOW)
    by_subject = {s.subject: s for s in suggestions}
    assert f"Encounter/{well}" not in by_subject
    suggestion = by_subject[f"Encounter/{sick}"]
    assert suggestion.kind == "clinical.deterioration"
    assert suggestion.audience is Audience.CLINICIAN
    assert suggestion.score is not None and suggestion.score >= 0.3
    assert suggestion.severity in (Severity.WARNING, Severity.CRITICAL)
    assert suggestion.explanation.method.startswith("model:deterioration@")
    factors = {f.name: f for f in suggestion.explanation.factors}
    assert len(factors) == 5
    assert "lactate" in factors or "gcs" in factors
    if "lactate" in factors:
        assert factors["lactate"].text == "lactate 7.5 mmol/L, rising"
        assert factors["lactate"].contribution > 0
    assert f"Encounter/{sick}" in suggestion.explanation.evidence
    assert any(ref.startswith("Observation/") for ref in suggestion.explanation.evidence)
    # contributions are sorted by size, and the summary names the risk and its band
    sizes = [abs(f.contribution) for f in suggestion.explanation.factors]
    assert sizes == sorted(sizes, reverse=True)
    assert suggestion.summary.startswith(f"Deterioration risk {suggestion.score:.0%}")


def test_deterioration_scorer_needs_observations_and_a_model(
    session: Session, tmp_path: Path
) -> None:
    patient = make_patient(session)
    make_encounter(session, patient=patient, class_code="IMP", period_start=ADMITTED)
    assert DeteriorationScorer().score(session, as_of=NOW) == []
    _icu_stay(session, sick=True)
    # no model in the store: the scorer is silent rather than guessing
    assert DeteriorationScorer(store=ModelStore(tmp_path)).score(session, as_of=NOW) == []


def test_readmission_scorer_flags_a_frequent_flyer_at_discharge(session: Session) -> None:
    patient = make_patient(session, gender="female", birth_date=dt.date(1941, 5, 5))
    start = NOW - dt.timedelta(days=6)
    for n in range(4):  # four admissions in the prior year, the last ending 12 days ago
        make_encounter(
            session,
            patient=patient,
            class_code="IMP",
            status="finished",
            period_start=start - dt.timedelta(days=18 + 60 * n),
            period_end=start - dt.timedelta(days=12 + 60 * n),
        )
    for n in range(3):
        make_encounter(
            session,
            patient=patient,
            class_code="EMER",
            status="finished",
            period_start=start - dt.timedelta(days=30 + 50 * n),
            period_end=start - dt.timedelta(days=30 + 50 * n),
        )
    stay = make_encounter(
        session,
        patient=patient,
        class_code="IMP",
        status="finished",
        period_start=start,
        period_end=NOW - dt.timedelta(hours=2),
        admit_source="emd",
        discharge_disposition="snf",
    )
    for code in ("428.0", "585", "250.40", "403.91", "584.9"):
        make_condition(
            session, patient_id=patient.id, code=code, code_system=ICD9, encounter_id=stay.id
        )
    suggestions = ReadmissionScorer(bands=None).score(session, as_of=NOW)
    (suggestion,) = [s for s in suggestions if s.subject == f"Encounter/{stay.id}"]
    assert suggestion.kind == "clinical.readmission"
    assert suggestion.score is not None and suggestion.score >= 0.15
    names = [f.name for f in suggestion.explanation.factors]
    assert "prior_inpatient" in names
    prior = next(f for f in suggestion.explanation.factors if f.name == "prior_inpatient")
    assert prior.text == "4 inpatient stays in the prior year, itself a 30-day readmission"
    assert prior.contribution > 0
    assert any(ref.startswith("Condition/") for ref in suggestion.explanation.evidence)
    # a stay discharged days before as_of is no longer scored
    later = ReadmissionScorer().score(session, as_of=NOW + dt.timedelta(days=5))
    assert all(s.subject != f"Encounter/{stay.id}" for s in later)


@pytest.mark.parametrize("scorer", [DeteriorationScorer(), ReadmissionScorer()])
def test_model_scorers_do_not_write(session: Session, scorer: Scorer) -> None:
    _icu_stay(session, sick=True)
    session.commit()
    before = table_counts(session.get_bind())
    scorer.score(session, as_of=NOW)
    assert not session.new and not session.dirty and not session.deleted
    assert table_counts(session.get_bind()) == before
