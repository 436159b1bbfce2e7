"""The SIRS scorer flags in-progress encounters meeting >= 2 SIRS criteria (Bone et al. 1992)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from healthos_core import terminology as t
from healthos_core.errors import InvalidInputError
from healthos_core.record.entities import Encounter, Observation
from reasoning.clinical.sirs_scorer import SirsScorer
from reasoning.suggestion import Audience, Severity, Suggestion
from tests.conftest import table_counts
from tests.factories import make_encounter, make_observation, make_patient

NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)

UNITS = {
    t.BODY_TEMPERATURE: "Cel",
    t.HEART_RATE: "/min",
    t.RESPIRATORY_RATE: "/min",
    t.PACO2: "mm[Hg]",
    t.WBC: "10*3/uL",
}


def _encounter(session: Session, class_code: str = "IMP", **kw: object) -> Encounter:
    values: dict[str, object] = {
        "class_code": class_code,
        "status": "in-progress",
        "period_start": NOW - 10 * H,
    }
    values.update(kw)
    return make_encounter(session, **values)


def _obs(
    session: Session, encounter: Encounter, code: str, value: float, at: dt.datetime, **kw: object
) -> Observation:
    values: dict[str, object] = {"unit": UNITS.get(code), "encounter_id": encounter.id}
    values.update(kw)
    return make_observation(
        session, patient_id=encounter.patient_id, code=code, value=value, effective_at=at, **values
    )


def _points(suggestion: Suggestion) -> dict[str, float]:
    return {f.name: f.contribution for f in suggestion.explanation.factors}


def test_sirs_three_criteria_is_a_warning_for_the_clinician(session: Session) -> None:
    encounter = _encounter(session)
    at = NOW - 1 * H
    refs = {
        _obs(session, encounter, t.BODY_TEMPERATURE, 38.5, at).reference,  # > 38: met
        _obs(session, encounter, t.HEART_RATE, 112, at).reference,  # > 90: met
        _obs(session, encounter, t.RESPIRATORY_RATE, 18, at).reference,  # <= 20: not met
        _obs(session, encounter, t.WBC, 13.5, at).reference,  # > 12: met
    }
    [suggestion] = SirsScorer().score(session, as_of=NOW)
    assert suggestion.kind == "clinical.sirs"
    assert suggestion.subject == encounter.reference
    assert suggestion.patient_id == encounter.patient_id
    assert (suggestion.score, suggestion.band) == (3, "positive")
    assert suggestion.severity is Severity.WARNING
    assert suggestion.audience is Audience.CLINICIAN
    assert _points(suggestion) == {
        "temperature": 1,
        "heart_rate": 1,
        "respiratory": 0,
        "white_cells": 1,
    }
    values = {f.name: f.value for f in suggestion.explanation.factors}
    assert values == {
        "temperature": 38.5,
        "heart_rate": 112,
        "respiratory": 18,
        "white_cells": 13.5,
    }
    assert suggestion.explanation.factors[-1].name == "respiratory"
    assert set(suggestion.explanation.evidence) == refs
    assert suggestion.explanation.method == "rule:sirs"
    assert suggestion.summary == (
        "SIRS 3/4 criteria met: T 38.5 °C, HR 112/min, WBC 13.5 × 10^3/µL"
    )
    assert "infection" in suggestion.recommended_action
    assert suggestion.created_at == at
    assert suggestion.source.reference is not None and "Bone" in suggestion.source.reference


def test_sirs_uses_the_latest_valid_value_and_ignores_entered_in_error(session: Session) -> None:
    encounter = _encounter(session, class_code="EMER")
    _obs(session, encounter, t.BODY_TEMPERATURE, 38.9, NOW - 5 * H)  # superseded
    normal = _obs(session, encounter, t.BODY_TEMPERATURE, 37.0, NOW - 3 * H)
    _obs(
        session,
        encounter,
        t.BODY_TEMPERATURE,
        39.5,
        NOW - 1 * H,
        status="entered-in-error",
        quality_flag="implausible",
    )
    hr = _obs(session, encounter, t.HEART_RATE, 100, NOW - 2 * H)
    rr = _obs(session, encounter, t.RESPIRATORY_RATE, 24, NOW - 2 * H)
    [suggestion] = SirsScorer().score(session, as_of=NOW)
    # T 37.0 (latest valid): not met; HR 100: met; RR 24: met; WBC not measured -> 2.
    assert suggestion.score == 2
    assert _points(suggestion) == {
        "temperature": 0,
        "heart_rate": 1,
        "respiratory": 1,
        "white_cells": 0,
    }
    factors = {f.name: f for f in suggestion.explanation.factors}
    assert factors["temperature"].value == 37.0
    assert factors["white_cells"].value is None
    assert factors["white_cells"].text == "WBC not measured"
    assert suggestion.summary.endswith("; WBC not measured")
    assert set(suggestion.explanation.evidence) == {normal.reference, hr.reference, rr.reference}


def test_sirs_fewer_than_two_criteria_gives_no_suggestion(session: Session) -> None:
    encounter = _encounter(session)
    at = NOW - 1 * H
    _obs(session, encounter, t.BODY_TEMPERATURE, 38.5, at)  # met
    _obs(session, encounter, t.HEART_RATE, 90, at)  # exactly 90: not met
    _obs(session, encounter, t.RESPIRATORY_RATE, 20, at)  # exactly 20: not met
    _obs(session, encounter, t.WBC, 12.0, at)  # exactly 12: not met
    assert SirsScorer().score(session, as_of=NOW) == []


def test_sirs_paco2_meets_the_respiratory_criterion(session: Session) -> None:
    encounter = _encounter(session)
    at = NOW - 1 * H
    _obs(session, encounter, t.RESPIRATORY_RATE, 16, at)
    _obs(session, encounter, t.PACO2, 30, at)  # < 32 mmHg: met
    _obs(session, encounter, t.HEART_RATE, 95, at)  # met
    _obs(session, encounter, t.BODY_TEMPERATURE, 36.5, at)
    _obs(session, encounter, t.WBC, 3.5, at)  # < 4: met
    [suggestion] = SirsScorer().score(session, as_of=NOW)
    assert suggestion.score == 3
    respiratory = next(f for f in suggestion.explanation.factors if f.name == "respiratory")
    assert respiratory.contribution == 1
    assert respiratory.text == "RR 16/min, PaCO2 30 mmHg"


def test_sirs_converts_fahrenheit_kpa_and_cells_per_microlitre(session: Session) -> None:
    encounter = _encounter(session)
    at = NOW - 1 * H
    _obs(session, encounter, t.BODY_TEMPERATURE, 101.3, at, unit="[degF]")  # 38.5 °C
    _obs(session, encounter, t.HEART_RATE, 80, at)
    _obs(session, encounter, t.PACO2, 4.0, at, unit="kPa")  # 30.0 mmHg
    _obs(session, encounter, t.WBC, 13000, at, unit="/uL")  # 13 × 10^3/µL
    _obs(session, encounter, t.RESPIRATORY_RATE, 30, at, unit="mystery")  # unknown: unused
    [suggestion] = SirsScorer().score(session, as_of=NOW)
    values = {f.name: f.value for f in suggestion.explanation.factors}
    assert values == {
        "temperature": 38.5,
        "heart_rate": 80,
        "respiratory": 30.0,
        "white_cells": 13.0,
    }
    assert _points(suggestion) == {
        "temperature": 1,
        "heart_rate": 0,
        "respiratory": 1,
        "white_cells": 1,
    }


def test_sirs_window_is_counted_back_from_the_newest_reading(session: Session) -> None:
    encounter = _encounter(session, period_start=NOW - 40 * H)
    _obs(session, encounter, t.BODY_TEMPERATURE, 38.6, NOW - 30 * H)
    _obs(session, encounter, t.HEART_RATE, 120, NOW - 30 * H)
    _obs(session, encounter, t.RESPIRATORY_RATE, 25, NOW - 1 * H)
    assert SirsScorer().score(session, as_of=NOW) == []  # only RR within 24 h
    [suggestion] = SirsScorer(window_hours=48).score(session, as_of=NOW)
    assert suggestion.score == 3
    # as_of before the newest reading: that reading is not seen.
    assert SirsScorer(window_hours=48).score(session, as_of=NOW - 2 * H)[0].score == 2


def test_sirs_counts_the_patients_ed_labs_drawn_before_admission(session: Session) -> None:
    patient = make_patient(session)
    ed = make_encounter(
        session,
        patient=patient,
        class_code="EMER",
        status="finished",
        period_start=NOW - 8 * H,
        period_end=NOW - 5 * H,
    )
    ward = _encounter(session, patient=patient, period_start=NOW - 5 * H)
    wbc = _obs(session, ed, t.WBC, 15.2, NOW - 7 * H)
    _obs(session, ward, t.HEART_RATE, 104, NOW - 1 * H)
    [suggestion] = SirsScorer().score(session, as_of=NOW)
    assert suggestion.subject == ward.reference
    assert suggestion.score == 2
    assert wbc.reference in suggestion.explanation.evidence


def test_sirs_skips_finished_and_outpatient_encounters(session: Session) -> None:
    finished = _encounter(session, status="finished", period_end=NOW - 1 * H)
    outpatient = _encounter(session, class_code="AMB")
    for encounter in (finished, outpatient):
        _obs(session, encounter, t.BODY_TEMPERATURE, 39.0, NOW - 2 * H)
        _obs(session, encounter, t.HEART_RATE, 120, NOW - 2 * H)
    assert SirsScorer().score(session, as_of=NOW) == []


def test_sirs_rejects_a_naive_as_of(session: Session) -> None:
    with pytest.raises(InvalidInputError, match="naive"):
        SirsScorer().score(session, as_of=dt.datetime(2026, 1, 1))


def test_sirs_scorer_does_not_write(session: Session, engine: Engine) -> None:
    encounter = _encounter(session)
    _obs(session, encounter, t.BODY_TEMPERATURE, 39.0, NOW - 2 * H)
    _obs(session, encounter, t.HEART_RATE, 120, NOW - 2 * H)
    session.commit()
    before = table_counts(engine)
    assert len(SirsScorer().score(session, as_of=NOW)) == 1
    assert not (session.new or session.dirty or session.deleted)
    session.commit()
    assert table_counts(engine) == before
