"""Transfers: the current location moves and the FHIR location history keeps the places left."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from healthos_core.errors import ConflictError, InvalidInputError, NotFoundError
from healthos_core.fhir.exporter import to_fhir
from healthos_core.fhir.refs import format_datetime
from healthos_core.record.entities import Encounter
from healthos_core.record.movements import location_history, transfer
from tests.conftest import table_counts
from tests.factories import T0, make_encounter, make_location, make_patient

LATER = T0 + dt.timedelta(hours=3)


@pytest.fixture
def encounter(session: Session) -> Encounter:
    with session.begin():
        make_location(session, id="ward-a")
        make_location(session, id="icu-1", kind="bed")
        make_location(session, id="icu-2", kind="bed")
        return make_encounter(session, class_code="IMP", location_id="ward-a")


def test_transfer_moves_and_completes_the_place_left(
    session: Session, encounter: Encounter
) -> None:
    with session.begin():
        moved = transfer(session, encounter.id, "icu-1", LATER)
    assert moved.location_id == "icu-1"
    assert location_history(moved) == [
        {
            "location": {"reference": "Location/ward-a"},
            "status": "completed",
            "period": {"start": format_datetime(T0), "end": format_datetime(LATER)},
        },
        {
            "location": {"reference": "Location/icu-1"},
            "status": "active",
            "period": {"start": format_datetime(LATER)},
        },
    ]
    exported = to_fhir(moved)
    assert exported["location"] == location_history(moved)
    assert exported["subject"] == {"reference": f"Patient/{moved.patient_id}"}


def test_a_second_transfer_appends_to_the_history(session: Session, encounter: Encounter) -> None:
    with session.begin():
        transfer(session, encounter.id, "icu-1", LATER)
        moved = transfer(session, encounter.id, "icu-2", LATER + dt.timedelta(hours=1))
    statuses = [(e["location"]["reference"], e["status"]) for e in location_history(moved)]
    assert statuses == [
        ("Location/ward-a", "completed"),
        ("Location/icu-1", "completed"),
        ("Location/icu-2", "active"),
    ]


def test_an_imported_encounter_keeps_its_resource_and_history(session: Session) -> None:
    with session.begin():
        make_location(session, id="ward-b")
        make_location(session, id="icu-9")
        patient = make_patient(session)
        resource = {
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {"code": "IMP"},
            "subject": {"reference": f"Patient/{patient.id}"},
            "location": [{"location": {"reference": "Location/ward-b"}}],
            "reasonCode": [{"text": "pneumonia"}],
        }
        encounter = make_encounter(
            session, patient=patient, location_id="ward-b", resource=resource
        )
        transfer(session, encounter.id, "icu-9", LATER)
    assert encounter.resource is not None
    assert encounter.resource["reasonCode"] == [{"text": "pneumonia"}]
    assert [e["status"] for e in encounter.resource["location"]] == ["completed", "active"]
    assert encounter.resource["location"][0]["period"] == {"end": format_datetime(LATER)}


@pytest.mark.parametrize(
    ("location", "at", "error", "message"),
    [
        ("nowhere", LATER, NotFoundError, "Location/nowhere"),
        ("ward-a", LATER, ConflictError, "already at"),
        ("icu-1", LATER.replace(tzinfo=None), InvalidInputError, "naive"),
        ("icu-1", T0 - dt.timedelta(minutes=1), InvalidInputError, "time order"),
    ],
)
def test_transfer_refuses_before_writing(
    session: Session,
    engine: Engine,
    encounter: Encounter,
    location: str,
    at: dt.datetime,
    error: type[Exception],
    message: str,
) -> None:
    before = table_counts(engine)
    with pytest.raises(error, match=message), session.begin():
        transfer(session, encounter.id, location, at)
    assert table_counts(engine) == before
    session.expire_all()
    assert session.get(Encounter, encounter.id).location_id == "ward-a"  # type: ignore[union-attr]


def test_transfer_refuses_a_closed_or_unknown_encounter(
    session: Session, encounter: Encounter
) -> None:
    with pytest.raises(NotFoundError, match="Encounter/nope"):
        transfer(session, "nope", "icu-1", LATER)
    session.rollback()
    with session.begin():
        session.get(Encounter, encounter.id).status = "finished"  # type: ignore[union-attr]
    with pytest.raises(ConflictError, match="finished"):
        transfer(session, encounter.id, "icu-1", LATER)
