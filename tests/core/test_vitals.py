"""A vital-sign set: one Observation per measurement, coded as the NEWS2 scorer reads them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from healthos_core import terminology as t
from healthos_core.errors import ConflictError, InvalidInputError
from healthos_core.events import EventBus, ObservationRecorded
from healthos_core.record.entities import Encounter
from healthos_core.record.vitals import record_vital_signs
from reasoning.clinical.news2_scorer import News2Scorer, latest_vital_set
from tests.conftest import table_counts
from tests.factories import T0, make_encounter

AT = T0 + dt.timedelta(hours=1)
FULL: dict[str, Any] = {
    "respiratory_rate": 22,
    "spo2": 95,
    "fio2": 28,
    "systolic_bp": 105,
    "heart_rate": 95,
    "consciousness": "C",
    "temperature": 36.0,
}


@pytest.fixture
def encounter(session: Session) -> Encounter:
    with session.begin():
        return make_encounter(session, class_code="IMP")


def test_a_full_set_publishes_one_event_per_observation_and_scores(
    session: Session, encounter: Encounter
) -> None:
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(ObservationRecorded, lambda event, _: seen.append(event.observation.id))
    with session.begin():
        observations = record_vital_signs(
            session, encounter_id=encounter.id, effective_at=AT, bus=bus, **FULL
        )
    assert seen == [o.id for o in observations]
    assert [o.code for o in observations] == [
        t.RESPIRATORY_RATE,
        t.OXYGEN_SATURATION_PULSE_OXIMETRY,
        t.INHALED_OXYGEN_CONCENTRATION,
        t.BLOOD_PRESSURE_PANEL,
        t.HEART_RATE,
        t.LEVEL_OF_RESPONSIVENESS,
        t.BODY_TEMPERATURE,
    ]
    assert all(o.patient_id == encounter.patient_id for o in observations)
    readings = latest_vital_set(observations)
    assert {k: r.value for k, r in readings.items()} == {
        "resp_rate": 22,
        "spo2": 95,
        "on_oxygen": True,
        "systolic_bp": 105,
        "pulse": 95,
        "consciousness": "C",
        "temperature": 36.0,
    }
    [suggestion] = News2Scorer().score(session)
    # RR 22 → 2, SpO2 95 on O2 (scale 1) → 1, O2 → 2, SBP 105 → 1, HR 95 → 1, C → 3, T 36 → 1
    assert suggestion.score == 11


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"spo2": 101}, "spo2=101 is outside 0-100 %"),
        ({"temperature": 98.6}, "temperature"),
        ({"heart_rate": float("nan")}, "heart_rate"),
        ({"respiratory_rate": True}, "must be a number"),
        ({"consciousness": "alert"}, "ACVPU"),
        ({"diastolic_bp": 70}, "needs systolic_bp"),
        ({}, "at least one measurement"),
    ],
)
def test_a_bad_set_writes_nothing(
    session: Session, engine: Engine, encounter: Encounter, values: dict[str, Any], message: str
) -> None:
    before = table_counts(engine)
    with pytest.raises(InvalidInputError, match=message), session.begin():
        record_vital_signs(session, encounter_id=encounter.id, effective_at=AT, **values)
    assert table_counts(engine) == before


def test_times_and_closed_encounters_are_refused(session: Session, encounter: Encounter) -> None:
    with pytest.raises(InvalidInputError, match="naive"):
        record_vital_signs(
            session, encounter_id=encounter.id, effective_at=AT.replace(tzinfo=None), spo2=97
        )
    with pytest.raises(InvalidInputError, match="before Encounter"):
        record_vital_signs(
            session, encounter_id=encounter.id, effective_at=T0 - dt.timedelta(hours=1), spo2=97
        )
    session.rollback()
    with session.begin():
        session.get(Encounter, encounter.id).status = "finished"  # type: ignore[union-attr]
    with pytest.raises(ConflictError):
        record_vital_signs(session, encounter_id=encounter.id, effective_at=AT, spo2=97)
