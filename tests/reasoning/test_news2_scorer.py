"""The NEWS2 scorer turns each inpatient's latest complete vital-sign set into a suggestion."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from healthos_core import terminology as t
from healthos_core.advisory import SuggestionRecord
from healthos_core.record import service
from healthos_core.record.entities import Encounter
from reasoning.clinical.news2_scorer import News2Scorer, latest_vital_set
from reasoning.registry import run_scorers
from reasoning.suggestion import Audience, Severity

NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


def _inpatient(session: Session, suffix: str = "1", class_code: str = "IMP") -> Encounter:
    patient = service.register_patient(
        session,
        given="Ada",
        family=f"Test{suffix}",
        gender="female",
        birth_date=dt.date(1950, 1, 1),
        id=f"p-{suffix}",
    )
    return service.admit(
        session,
        patient_id=patient.id,
        class_code=class_code,
        start=NOW - dt.timedelta(hours=10),
        id=f"e-{suffix}",
    )


def _vitals(
    session: Session,
    encounter_id: str,
    at: dt.datetime,
    *,
    rr: float,
    spo2: float,
    fio2: float,
    sbp: float,
    hr: float,
    gcs: float,
    temp: float,
    skip: str | None = None,
) -> None:
    values = {
        "rr": (t.RESPIRATORY_RATE, rr, "/min"),
        "spo2": (t.OXYGEN_SATURATION_PULSE_OXIMETRY, spo2, "%"),
        "fio2": (t.INHALED_OXYGEN_CONCENTRATION, fio2, "%"),
        "hr": (t.HEART_RATE, hr, "/min"),
        "gcs": (t.GCS_TOTAL, gcs, "{score}"),
        "temp": (t.BODY_TEMPERATURE, temp, "Cel"),
    }
    for name, (code, value, unit) in values.items():
        if name != skip:
            service.record_observation(
                session,
                encounter_id=encounter_id,
                code=code,
                value=value,
                unit=unit,
                effective_at=at,
            )
    if skip != "sbp":
        service.record_observation(
            session,
            encounter_id=encounter_id,
            code=t.BLOOD_PRESSURE_PANEL,
            value=None,
            unit=None,
            effective_at=at,
            components=[{"code": t.SYSTOLIC_BP, "value": sbp, "unit": "mm[Hg]"}],
        )


def test_news2_scorer_high_band_goes_to_clinician_as_critical(session: Session) -> None:
    encounter = _inpatient(session)
    # RR 26 (3) SpO2 92 (2) oxygen (2) SBP 104 (1) HR 112 (2) alert (0) T 38.3 (1) = 11
    _vitals(
        session,
        encounter.id,
        NOW - dt.timedelta(hours=1),
        rr=26,
        spo2=92,
        fio2=35,
        sbp=104,
        hr=112,
        gcs=15,
        temp=38.3,
    )
    [suggestion] = News2Scorer().score(session, as_of=NOW)
    assert suggestion.kind == "clinical.news2"
    assert suggestion.score == 11
    assert suggestion.band == "high"
    assert suggestion.audience is Audience.CLINICIAN
    assert suggestion.severity is Severity.CRITICAL
    assert suggestion.subject == f"Encounter/{encounter.id}"
    assert suggestion.patient_id == "p-1"
    contributions = {f.name: f.contribution for f in suggestion.explanation.factors}
    assert contributions == {
        "resp_rate": 3,
        "spo2": 2,
        "air_or_oxygen": 2,
        "systolic_bp": 1,
        "pulse": 2,
        "consciousness": 0,
        "temperature": 1,
    }
    assert sum(contributions.values()) == suggestion.score
    assert len(suggestion.explanation.evidence) == 7
    assert all(ref.startswith("Observation/") for ref in suggestion.explanation.evidence)
    assert "emergency" in suggestion.recommended_action.lower()
    assert suggestion.source.reference is not None and "RCP" in suggestion.source.reference
    assert len(suggestion.summary) <= 140


def test_news2_scorer_uses_the_latest_reading_per_parameter(session: Session) -> None:
    encounter = _inpatient(session)
    _vitals(
        session,
        encounter.id,
        NOW - dt.timedelta(hours=3),
        rr=26,
        spo2=92,
        fio2=35,
        sbp=104,
        hr=112,
        gcs=15,
        temp=38.3,
    )
    _vitals(
        session,
        encounter.id,
        NOW - dt.timedelta(hours=1),
        rr=16,
        spo2=97,
        fio2=21,
        sbp=125,
        hr=95,
        gcs=15,
        temp=37.0,
    )
    [suggestion] = News2Scorer().score(session, as_of=NOW)
    assert suggestion.score == 1  # HR 95 scores 1, all else 0
    assert suggestion.band == "low"
    assert suggestion.audience is Audience.NURSE
    assert suggestion.severity is Severity.INFO


def test_news2_scorer_single_parameter_three_is_low_medium(session: Session) -> None:
    encounter = _inpatient(session)
    _vitals(
        session,
        encounter.id,
        NOW - dt.timedelta(hours=1),
        rr=16,
        spo2=91,
        fio2=21,
        sbp=125,
        hr=80,
        gcs=15,
        temp=37.0,
    )
    [suggestion] = News2Scorer().score(session, as_of=NOW)
    assert (suggestion.score, suggestion.band) == (3, "low-medium")
    assert suggestion.severity is Severity.WARNING


def test_news2_scorer_gives_no_score_for_an_incomplete_set(session: Session) -> None:
    encounter = _inpatient(session)
    _vitals(
        session,
        encounter.id,
        NOW - dt.timedelta(hours=1),
        rr=26,
        spo2=92,
        fio2=35,
        sbp=104,
        hr=112,
        gcs=15,
        temp=38.3,
        skip="rr",
    )
    assert News2Scorer().score(session, as_of=NOW) == []


def test_news2_scorer_ignores_readings_outside_the_window(session: Session) -> None:
    encounter = _inpatient(session)
    _vitals(
        session,
        encounter.id,
        NOW - dt.timedelta(hours=9),
        rr=26,
        spo2=92,
        fio2=35,
        sbp=104,
        hr=112,
        gcs=15,
        temp=38.3,
    )
    _vitals(
        session,
        encounter.id,
        NOW - dt.timedelta(hours=1),
        rr=16,
        spo2=97,
        fio2=21,
        sbp=125,
        hr=80,
        gcs=15,
        temp=37.0,
        skip="temp",
    )
    assert News2Scorer(window_hours=4).score(session, as_of=NOW) == []
    [suggestion] = News2Scorer(window_hours=12).score(session, as_of=NOW)
    assert suggestion.score == 1  # T 38.3 carried from 8 hours earlier


def test_news2_scorer_skips_outpatients_and_finished_encounters(session: Session) -> None:
    outpatient = _inpatient(session, "amb", class_code="AMB")
    _vitals(
        session,
        outpatient.id,
        NOW - dt.timedelta(hours=1),
        rr=26,
        spo2=92,
        fio2=35,
        sbp=104,
        hr=112,
        gcs=15,
        temp=38.3,
    )
    inpatient = _inpatient(session, "imp")
    _vitals(
        session,
        inpatient.id,
        NOW - dt.timedelta(hours=1),
        rr=26,
        spo2=92,
        fio2=35,
        sbp=104,
        hr=112,
        gcs=15,
        temp=38.3,
    )
    service.discharge(session, encounter_id=inpatient.id, end=NOW - dt.timedelta(minutes=30))
    assert News2Scorer().score(session, as_of=NOW) == []


def test_news2_scorer_reads_gcs_below_15_as_not_alert(session: Session) -> None:
    encounter = _inpatient(session)
    _vitals(
        session,
        encounter.id,
        NOW - dt.timedelta(hours=1),
        rr=16,
        spo2=97,
        fio2=21,
        sbp=125,
        hr=80,
        gcs=14,
        temp=37.0,
    )
    [suggestion] = News2Scorer().score(session, as_of=NOW)
    assert suggestion.score == 3
    assert suggestion.band == "low-medium"
    consciousness = next(f for f in suggestion.explanation.factors if f.name == "consciousness")
    assert consciousness.text == "GCS 14 (not alert)"
    assert consciousness.contribution == 3


def test_run_scorers_stores_suggestions_once_and_keeps_ids_stable(session: Session) -> None:
    encounter = _inpatient(session)
    _vitals(
        session,
        encounter.id,
        NOW - dt.timedelta(hours=1),
        rr=26,
        spo2=92,
        fio2=35,
        sbp=104,
        hr=112,
        gcs=15,
        temp=38.3,
    )
    first = run_scorers(session, as_of=NOW, kind="clinical.news2")
    second = run_scorers(session, as_of=NOW, kind="clinical.news2")
    assert [s.id for s in first] == [s.id for s in second]
    assert session.scalar(select(func.count()).select_from(SuggestionRecord)) == 1


def test_run_scorers_rejects_an_unknown_kind(session: Session) -> None:
    from healthos_core.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"no scorer produces kind 'clinical\.nope'"):
        run_scorers(session, kind="clinical.nope")


def test_latest_vital_set_maps_fio2_and_panels() -> None:
    from healthos_core.record.entities import Observation

    def obs(code: str, value: float | None, minutes: int, **kw: object) -> Observation:
        return Observation(
            id=f"o{code}{minutes}",
            patient_id="p",
            encounter_id="e",
            code=code,
            value=value,
            effective_at=NOW + dt.timedelta(minutes=minutes),
            status="final",
            **kw,
        )

    readings = latest_vital_set(
        [
            obs(t.INHALED_OXYGEN_CONCENTRATION, 0.21, 0),
            obs(t.INHALED_OXYGEN_CONCENTRATION, 40, 5),
            obs(
                t.BLOOD_PRESSURE_PANEL_SYNTHEA,
                None,
                1,
                components=[
                    {"code": t.SYSTOLIC_BP, "value": 101},
                    {"code": t.DIASTOLIC_BP, "value": 60},
                ],
            ),
        ]
    )
    assert readings["on_oxygen"].value is True
    assert readings["systolic_bp"].value == 101
