"""The LACE scorer turns each inpatient stay near discharge into a readmission-risk suggestion.

Expected points are hand-computed from van Walraven et al., CMAJ 2010, Table 3 and the
Charlson 1987 weights with the Quan 2005 ICD-10 codes.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from healthos_core import terminology as t
from healthos_core.errors import InvalidInputError
from healthos_core.record.entities import Encounter, Patient
from reasoning.clinical.lace_scorer import LaceScorer
from reasoning.registry import available_kinds, default_scorers, run_scorers
from reasoning.suggestion import Audience, Severity, Suggestion
from tests.conftest import table_counts
from tests.factories import make_condition, make_encounter, make_patient

NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)


def _ed_visit(session: Session, patient: Patient, start: dt.datetime, **kw: object) -> Encounter:
    values: dict[str, object] = {
        "class_code": "EMER",
        "status": "finished",
        "period_start": start,
        "period_end": start + 4 * H,
    }
    values.update(kw)
    return make_encounter(session, patient=patient, **values)


def _inpatient(session: Session, patient: Patient, start: dt.datetime, **kw: object) -> Encounter:
    values: dict[str, object] = {
        "class_code": "IMP",
        "status": "in-progress",
        "period_start": start,
    }
    values.update(kw)
    return make_encounter(session, patient=patient, **values)


def _points(suggestion: Suggestion) -> dict[str, float]:
    return {f.name: f.contribution for f in suggestion.explanation.factors}


def _factor_values(suggestion: Suggestion) -> dict[str, object]:
    return {f.name: f.value for f in suggestion.explanation.factors}


def test_lace_high_for_a_discharged_acute_stay_with_comorbidity_and_ed_use(
    session: Session,
) -> None:
    patient = make_patient(session, id="p-lace")
    admitted = NOW - 6 * D
    # The ED visit that led to the admission: ended 1 h before it (A = 3, not an E visit).
    index_ed = _ed_visit(session, patient, admitted - 5 * H)
    earlier_ed = [_ed_visit(session, patient, admitted - n * D) for n in (60, 150)]
    _ed_visit(session, patient, admitted - 194 * D)  # more than 6 months before: not counted
    _ed_visit(session, patient, admitted - 20 * D, status="cancelled")  # not a visit
    stay = _inpatient(session, patient, admitted, status="finished", period_end=NOW - 2 * H)
    heart_failure = make_condition(session, patient_id=patient.id, code="I50.9")  # CHF 1
    diabetes_compl = make_condition(session, patient_id=patient.id, code="E11.22")  # 2
    make_condition(session, patient_id=patient.id, code="E11.9")  # superseded by E11.22
    ckd = make_condition(session, patient_id=patient.id, code="N18.3")  # renal 2
    make_condition(session, patient_id=patient.id, code="J44.9", verification_status="refuted")
    make_condition(session, patient_id=patient.id, code="C78.0", recorded_at=NOW + H)  # later
    make_condition(session, patient_id=patient.id, code="44054006", code_system=t.SNOMED)

    [suggestion] = LaceScorer().score(session, as_of=NOW)

    # L: 5.9 days -> 5 completed days, 4-6 -> 4; A: 3; C: 1 + 2 + 2 = 5 (>= 4) -> 5; E: 2 -> 2.
    assert suggestion.kind == "clinical.lace"
    assert suggestion.subject == stay.reference
    assert suggestion.patient_id == "p-lace"
    assert suggestion.score == 14
    assert suggestion.band == "high"
    assert suggestion.audience is Audience.CLINICIAN
    assert suggestion.severity is Severity.WARNING
    assert _points(suggestion) == {
        "length_of_stay": 4,
        "acute_admission": 3,
        "comorbidity": 5,
        "ed_visits": 2,
        "conditions_not_counted": 0,
    }
    values = _factor_values(suggestion)
    assert values["length_of_stay"] == pytest.approx(5.92, abs=0.01)
    assert values["acute_admission"] == "emergent"
    assert values["comorbidity"] == 5
    assert values["ed_visits"] == 2
    assert values["conditions_not_counted"] == 1
    factors = {f.name: f for f in suggestion.explanation.factors}
    assert factors["acute_admission"].text == f"acute admission (via {index_ed.reference})"
    assert factors["conditions_not_counted"].text is not None
    assert "1 coded only in SNOMED CT" in factors["conditions_not_counted"].text
    assert [f.name for f in suggestion.explanation.factors][:2] == ["comorbidity", "length_of_stay"]
    assert suggestion.explanation.method == "rule:lace"
    assert set(suggestion.explanation.evidence) == {
        stay.reference,
        index_ed.reference,
        *(e.reference for e in earlier_ed),
        heart_failure.reference,
        diabetes_compl.reference,
        ckd.reference,
    }
    assert "7 days" in suggestion.recommended_action
    assert "transitional care" in suggestion.recommended_action
    assert suggestion.created_at == NOW - 2 * H
    assert suggestion.source.reference is not None and "van Walraven" in suggestion.source.reference
    assert suggestion.summary.startswith("LACE 14 (high")
    assert len(suggestion.summary) <= 140


def test_lace_in_progress_stay_counts_los_so_far_and_admit_source_emd(session: Session) -> None:
    patient = make_patient(session)
    stay = _inpatient(session, patient, NOW - 2.5 * D, admit_source="emd")
    # Synthea-style SNOMED CT diagnoses: not mapped to ICD-10, so C = 0.
    make_condition(session, patient_id=patient.id, code="44054006", code_system=t.SNOMED)
    make_condition(session, patient_id=patient.id, code="38341003", code_system=t.SNOMED)

    [suggestion] = LaceScorer().score(session, as_of=NOW)

    # L: 2.5 days -> 2; A: 3 (from the ED); C: 0; E: 0 -> 5 moderate.
    assert suggestion.subject == stay.reference
    assert (suggestion.score, suggestion.band) == (5, "moderate")
    assert suggestion.severity is Severity.INFO
    assert suggestion.audience is Audience.CLINICIAN
    assert _points(suggestion) == {
        "length_of_stay": 2,
        "acute_admission": 3,
        "comorbidity": 0,
        "ed_visits": 0,
        "conditions_not_counted": 0,
    }
    factors = {f.name: f for f in suggestion.explanation.factors}
    assert factors["acute_admission"].text == "acute admission (from the emergency department)"
    assert factors["length_of_stay"].text == "length of stay 2.5 days so far"
    assert factors["conditions_not_counted"].value == 2
    assert "2 non-ICD-10 diagnoses not counted" in suggestion.summary
    assert "day 3 in hospital" in suggestion.summary
    assert suggestion.explanation.evidence == (stay.reference,)
    assert suggestion.created_at == NOW


def test_lace_low_for_an_elective_short_stay(session: Session) -> None:
    patient = make_patient(session)
    admitted = NOW - 12 * H
    # Ended 30 h before the admission: not its route in (A = 0), but an ED visit (E = 1).
    ed = _ed_visit(session, patient, admitted - 34 * H)
    stay = _inpatient(session, patient, admitted, admit_source="gp")
    mi = make_condition(session, patient_id=patient.id, code="i214")  # MI, no dot, lower case
    [suggestion] = LaceScorer().score(session, as_of=NOW)
    # L: 0.5 day -> 0; A: 0; C: 1 -> 1; E: 1 -> 1.
    assert (suggestion.score, suggestion.band, suggestion.severity) == (2, "low", Severity.INFO)
    assert _points(suggestion) == {
        "length_of_stay": 0,
        "acute_admission": 0,
        "comorbidity": 1,
        "ed_visits": 1,
    }
    assert _factor_values(suggestion)["acute_admission"] == "elective"
    assert set(suggestion.explanation.evidence) == {stay.reference, ed.reference, mi.reference}
    assert "routine" in suggestion.recommended_action


def test_lace_caps_ed_visits_at_four_points(session: Session) -> None:
    patient = make_patient(session)
    admitted = NOW - 3 * D
    for n in range(5):
        _ed_visit(session, patient, admitted - (10 + 20 * n) * D)
    _inpatient(session, patient, admitted)
    [suggestion] = LaceScorer().score(session, as_of=NOW)
    assert _factor_values(suggestion)["ed_visits"] == 5
    assert _points(suggestion)["ed_visits"] == 4
    assert suggestion.score == 3 + 0 + 0 + 4


def test_lace_reads_an_icd10_coding_stored_beside_a_snomed_primary_code(session: Session) -> None:
    patient = make_patient(session)
    _inpatient(session, patient, NOW - 1 * D)
    condition = make_condition(
        session,
        patient_id=patient.id,
        code="22298006",
        code_system=t.SNOMED,
        resource={
            "resourceType": "Condition",
            "code": {
                "coding": [
                    {"system": t.SNOMED, "code": "22298006"},
                    {"system": t.ICD10, "code": "I21.9"},
                ]
            },
        },
    )
    [suggestion] = LaceScorer().score(session, as_of=NOW)
    assert _points(suggestion)["comorbidity"] == 1
    assert condition.reference in suggestion.explanation.evidence
    assert "conditions_not_counted" not in _points(suggestion)


def test_lace_counts_a_malformed_icd10_code_as_not_counted(session: Session) -> None:
    patient = make_patient(session)
    _inpatient(session, patient, NOW - 1 * D)
    make_condition(session, patient_id=patient.id, code="not-a-code")
    [suggestion] = LaceScorer().score(session, as_of=NOW)
    factors = {f.name: f for f in suggestion.explanation.factors}
    assert factors["comorbidity"].value == 0
    assert factors["conditions_not_counted"].text is not None
    assert "1 with an invalid ICD-10 code" in factors["conditions_not_counted"].text


def test_lace_ignores_old_discharges_outpatients_and_future_admissions(session: Session) -> None:
    patient = make_patient(session)
    old = _inpatient(
        session, patient, NOW - 5 * D, status="finished", period_end=NOW - 30 * H
    )  # discharged 30 h ago: outside the default 24 h
    make_encounter(session, patient=patient, class_code="AMB", period_start=NOW - 2 * H)
    _inpatient(session, patient, NOW + 2 * H)  # admitted after as_of
    _inpatient(session, patient, NOW - 3 * D, status="entered-in-error")
    assert LaceScorer().score(session, as_of=NOW) == []
    [suggestion] = LaceScorer(recent_hours=48).score(session, as_of=NOW)
    assert suggestion.subject == old.reference
    assert _points(suggestion)["length_of_stay"] == 3  # 3.75 days -> 3


def test_lace_as_of_in_the_past_sees_a_later_discharge_as_in_progress(session: Session) -> None:
    patient = make_patient(session)
    stay = _inpatient(session, patient, NOW - 5 * D, status="finished", period_end=NOW)
    [suggestion] = LaceScorer().score(session, as_of=NOW - 3 * D)
    assert suggestion.subject == stay.reference
    assert _factor_values(suggestion)["length_of_stay"] == 2.0
    assert "so far" in (suggestion.explanation.factors[0].text or "")


def test_lace_min_total_filters_low_scores(session: Session) -> None:
    patient = make_patient(session)
    _inpatient(session, patient, NOW - 12 * H)
    assert LaceScorer(min_total=1).score(session, as_of=NOW) == []
    assert len(LaceScorer().score(session, as_of=NOW)) == 1


def test_lace_rejects_a_naive_as_of(session: Session) -> None:
    with pytest.raises(InvalidInputError, match="naive"):
        LaceScorer().score(session, as_of=dt.datetime(2026, 1, 1))


def test_lace_scorer_does_not_write(session: Session, engine: Engine) -> None:
    patient = make_patient(session)
    _ed_visit(session, patient, NOW - 3 * D - 5 * H)
    _inpatient(session, patient, NOW - 3 * D)
    make_condition(session, patient_id=patient.id, code="I50.9")
    session.commit()
    before = table_counts(engine)
    assert len(LaceScorer().score(session, as_of=NOW)) == 1
    assert not (session.new or session.dirty or session.deleted)
    session.commit()
    assert table_counts(engine) == before


def test_default_scorers_keep_news2_first_then_rules_models_and_finance(session: Session) -> None:
    scorers = default_scorers()
    assert [s.kind for s in scorers] == [
        "clinical.news2",
        "clinical.sirs",
        "clinical.kdigo_aki",
        "clinical.lace",
        "clinical.deterioration",
        "clinical.readmission",
        "finance.denial_risk",
        "finance.revenue_leakage",
        "operations.queue_bottleneck",
        "leadership.kpi_off_target",
    ]
    assert available_kinds() == sorted(s.kind for s in scorers)
    patient = make_patient(session)
    _inpatient(session, patient, NOW - 3 * D, admit_source="emd")
    [stored] = run_scorers(session, kind="clinical.lace", as_of=NOW)
    assert stored.score == 3 + 3
