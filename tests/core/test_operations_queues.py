"""Queue points, rosters, queue tickets (FHIR Task) and Appointments in the record.

Writes go through the one write path (FHIR importer, ``origin="live"``) and publish
``QueueTicketChanged`` / ``AppointmentChanged`` to the outbox with the queue point as
subject; :func:`queue_status` and :func:`ticket_times` are as-of reads of the tickets'
times. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.errors import ConflictError, InvalidInputError, NotFoundError
from healthos_core.fhir.exporter import export_patient, to_fhir
from healthos_core.fhir.importer import import_document, validate_resource
from healthos_core.operations import codes as ops
from healthos_core.operations.appointments import book_appointment, set_appointment_status
from healthos_core.operations.board import queue_status, ticket_times
from healthos_core.operations.entities import QueueRoster
from healthos_core.operations.queues import (
    advance_ticket,
    create_queue_point,
    create_ticket,
    servers_at,
    set_roster,
)
from healthos_core.outbox import OutboxEvent, mark_done
from healthos_core.record.entities import Appointment, Location, Task
from healthos_core.wiring import Wiring
from tests.factories import (
    T0,
    make_encounter,
    make_organization,
    make_patient,
    make_queue_point,
    make_ticket,
)

MIN = dt.timedelta(minutes=1)


def at(minutes: int) -> dt.datetime:
    """T0 (Friday 2024-03-01 09:00 UTC) plus ``minutes``."""
    return T0 + minutes * MIN


@pytest.fixture
def org(session: Session) -> str:
    return make_organization(session, id="org-1").id


# --------------------------------------------------------------------------- write path


def test_queue_point_is_a_location_with_service_type_and_target_extension(
    session: Session, org: str
) -> None:
    point = create_queue_point(
        session,
        name="OPD Cardiology",
        service="opd_clinic",
        facility_id=org,
        target_wait_minutes=30,
        id="opd-cardio",
    )
    stored = session.get(Location, "opd-cardio", populate_existing=True)
    assert stored is not None and stored is point
    assert (stored.kind, stored.service_type, stored.target_wait_minutes) == (
        "queue",
        "opd_clinic",
        30,
    )
    assert stored.facility_id == org
    resource = to_fhir(stored)
    validate_resource(resource, label="Location")
    codings = [c for t in resource["type"] for c in t["coding"]]
    assert {"system": ops.SERVICE_TYPE_SYSTEM, "code": "opd_clinic"} in codings
    assert {"system": ops.LOCATION_KIND_SYSTEM, "code": "queue"} in codings
    (target,) = [e for e in resource["extension"] if e["url"] == ops.TARGET_WAIT_EXTENSION]
    assert target["valueDuration"]["value"] == 30 and target["valueDuration"]["code"] == "min"
    # The same content again is a repeat; other content under the id a conflict.
    again = create_queue_point(
        session,
        name="OPD Cardiology",
        service="opd_clinic",
        facility_id=org,
        target_wait_minutes=30,
        id="opd-cardio",
    )
    assert again is stored
    with pytest.raises(ConflictError):
        create_queue_point(
            session,
            name="OPD Cardiology",
            service="opd_clinic",
            facility_id=org,
            target_wait_minutes=45,
            id="opd-cardio",
        )


@pytest.mark.parametrize(
    ("field", "value", "error", "match"),
    [
        ("service", "dentistry", InvalidInputError, "service 'dentistry'"),
        ("target_wait_minutes", 0, InvalidInputError, "target_wait_minutes=0"),
        ("target_wait_minutes", 30.5, InvalidInputError, "whole number"),
        ("facility_id", "nowhere", NotFoundError, "Organization/nowhere"),
        ("name", " ", InvalidInputError, "name is required"),
    ],
)
def test_queue_point_bad_input_names_the_field(
    session: Session, org: str, field: str, value: Any, error: type[Exception], match: str
) -> None:
    values: dict[str, Any] = {
        "name": "Pharmacy",
        "service": "pharmacy",
        "facility_id": org,
        "target_wait_minutes": 20,
    }
    values[field] = value
    with pytest.raises(error, match=match):
        create_queue_point(session, **values)
    assert session.scalars(select(Location).where(Location.kind == "queue")).all() == []


def test_ticket_steps_are_task_history_read_back_as_fhir_and_queued_for_the_location(
    session: Session, org: str, live_path: Wiring
) -> None:
    point = make_queue_point(session, id="q1", facility_id=org)
    patient = make_patient(session, id="p1")
    encounter = make_encounter(session, patient=patient, id="e1")
    ticket = create_ticket(
        session,
        location_id=point.id,
        patient_id="p1",
        encounter_id=encounter.id,
        arrived_at=at(0),
        priority="urgent",
        id="t1",
    )
    assert (ticket.status, ticket.code, ticket.priority) == ("requested", "queue-ticket", "urgent")
    events = session.scalars(select(OutboxEvent)).all()
    assert [(e.event_type, e.entity_ref, e.subject) for e in events] == [
        ("QueueTicketChanged", "Task/t1", "Location/q1")
    ]
    mark_done(session, [events[0].id])
    advance_ticket(session, "t1", "called", at(12))
    advance_ticket(session, "t1", "started", at(20))
    ticket = advance_ticket(session, "t1", "finished", at(35))
    assert ticket.status == "completed"
    assert (ticket.arrived_at, ticket.called_at) == (at(0), at(12))
    assert (ticket.service_started_at, ticket.service_ended_at) == (at(20), at(35))
    assert ticket.left_at is None
    resource = to_fhir(ticket)
    validate_resource(resource, label="Task")
    assert resource["authoredOn"] == "2024-03-01T09:00:00Z"
    assert resource["executionPeriod"] == {
        "start": "2024-03-01T09:20:00Z",
        "end": "2024-03-01T09:35:00Z",
    }
    assert {"url": ops.CALLED_EXTENSION, "valueDateTime": "2024-03-01T09:12:00Z"} in resource[
        "extension"
    ]
    assert resource["location"] == {"reference": "Location/q1"}
    assert resource["for"] == {"reference": "Patient/p1"}
    assert resource["businessStatus"]["coding"][0]["code"] == "done"
    pending = session.scalars(select(OutboxEvent).where(OutboxEvent.done_at.is_(None))).all()
    assert [(e.event_type, e.subject, e.code) for e in pending] == [
        ("QueueTicketChanged", "Location/q1", "ready")  # one row while unclaimed
    ]
    # The patient's $everything gives the ticket back.
    bundle = export_patient(session, "p1")
    assert "Task/t1" in {
        f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]
    }


def test_left_without_being_seen(session: Session) -> None:
    point = make_queue_point(session)
    patient = make_patient(session)
    ticket = create_ticket(session, location_id=point.id, patient_id=patient.id, arrived_at=at(0))
    ticket = advance_ticket(session, ticket.id, "left", at(50))
    assert ticket.status == "cancelled" and ticket.left_at == at(50)
    resource = to_fhir(ticket)
    validate_resource(resource, label="Task")
    assert resource["statusReason"]["coding"][0]["code"] == "left-without-being-seen"
    (times,) = ticket_times(session, since=at(0), until=at(60))
    assert times.left_without_being_seen and times.service_started_at is None


def test_ticket_steps_refused_out_of_order(session: Session) -> None:
    point = make_queue_point(session)
    patient = make_patient(session)
    ticket = create_ticket(session, location_id=point.id, patient_id=patient.id, arrived_at=at(10))
    with pytest.raises(InvalidInputError, match="before the ticket's previous step"):
        advance_ticket(session, ticket.id, "called", at(5))
    with pytest.raises(ConflictError, match="waiting: it cannot be finished"):
        advance_ticket(session, ticket.id, "finished", at(20))
    advance_ticket(session, ticket.id, "started", at(20))
    with pytest.raises(ConflictError, match="in-service: it cannot be left"):
        advance_ticket(session, ticket.id, "left", at(25))
    with pytest.raises(InvalidInputError, match="step 'served'"):
        advance_ticket(session, ticket.id, "served", at(25))
    with pytest.raises(InvalidInputError, match="naive"):
        advance_ticket(session, ticket.id, "finished", dt.datetime(2024, 3, 1, 10))
    with pytest.raises(NotFoundError):
        advance_ticket(session, "no-such", "called", at(25))
    assert session.get(Task, ticket.id).status == "in-progress"  # type: ignore[union-attr]


def test_ticket_bad_input(session: Session) -> None:
    point = make_queue_point(session)
    ward = make_queue_point(session, kind="ward")
    patient = make_patient(session)
    other = make_encounter(session)
    with pytest.raises(InvalidInputError, match="not a queue point"):
        create_ticket(session, location_id=ward.id, patient_id=patient.id, arrived_at=at(0))
    with pytest.raises(NotFoundError, match="Location/nowhere"):
        create_ticket(session, location_id="nowhere", patient_id=patient.id, arrived_at=at(0))
    with pytest.raises(NotFoundError, match="Patient/nobody"):
        create_ticket(session, location_id=point.id, patient_id="nobody", arrived_at=at(0))
    with pytest.raises(InvalidInputError, match="another patient's"):
        create_ticket(
            session,
            location_id=point.id,
            patient_id=patient.id,
            arrived_at=at(0),
            encounter_id=other.id,
        )
    with pytest.raises(InvalidInputError, match="priority 'high'"):
        create_ticket(
            session,
            location_id=point.id,
            patient_id=patient.id,
            arrived_at=at(0),
            priority="high",
        )
    assert session.scalars(select(Task)).all() == []


def test_transaction_bundle_of_tickets_imports_live_and_a_repeat_queues_nothing(
    session: Session, live_path: Wiring
) -> None:
    point = make_queue_point(session, id="q-lab", service_type="lab_collection")
    make_patient(session, id="p2")
    task = {
        "resourceType": "Task",
        "id": "lab-1",
        "status": "in-progress",
        "intent": "order",
        "priority": "stat",
        "code": {"coding": [{"system": ops.TASK_CODE_SYSTEM, "code": ops.QUEUE_TICKET}]},
        "for": {"reference": "Patient/p2"},
        "location": {"reference": f"Location/{point.id}"},
        "authoredOn": "2024-03-01T09:00:00+01:00",
        "executionPeriod": {"start": "2024-03-01T08:30:00Z"},
        "extension": [{"url": ops.CALLED_EXTENSION, "valueDateTime": "2024-03-01T08:25:00Z"}],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": task, "request": {"method": "PUT", "url": "Task/lab-1"}}],
    }
    import_document(session, copy.deepcopy(bundle), origin="live")
    stored = session.get(Task, "lab-1")
    assert stored is not None
    assert stored.arrived_at == dt.datetime(2024, 3, 1, 8, 0, tzinfo=dt.UTC)
    assert (stored.called_at, stored.service_started_at) == (at(-35), at(-30))
    assert stored.priority == "stat" and stored.location_id == "q-lab"
    events = session.scalars(select(OutboxEvent)).all()
    assert [(e.event_type, e.subject) for e in events] == [("QueueTicketChanged", "Location/q-lab")]
    mark_done(session, [events[0].id])
    import_document(session, copy.deepcopy(bundle), origin="live")
    assert session.scalars(select(OutboxEvent).where(OutboxEvent.done_at.is_(None))).all() == []


def test_appointment_booked_arrived_fulfilled(session: Session, live_path: Wiring) -> None:
    clinic = make_queue_point(session, id="opd")
    patient = make_patient(session, id="p3")
    appointment = book_appointment(
        session, patient_id=patient.id, location_id=clinic.id, start=at(60), id="a1"
    )
    assert (appointment.status, appointment.start, appointment.end) == ("booked", at(60), at(75))
    assert appointment.location_id == "opd" and appointment.patient_id == "p3"
    validate_resource(to_fhir(appointment), label="Appointment")
    set_appointment_status(session, "a1", "arrived")
    fulfilled = set_appointment_status(session, "a1", "fulfilled")
    assert fulfilled.status == "fulfilled"
    with pytest.raises(ConflictError, match="fulfilled: not noshow"):
        set_appointment_status(session, "a1", "noshow")
    with pytest.raises(InvalidInputError, match="end must be after start"):
        book_appointment(
            session, patient_id=patient.id, location_id=clinic.id, start=at(60), end=at(60)
        )
    refs = {(e.event_type, e.subject) for e in session.scalars(select(OutboxEvent))}
    assert refs == {("AppointmentChanged", "Location/opd")}
    bundle = export_patient(session, "p3")
    assert any(e["resource"]["resourceType"] == "Appointment" for e in bundle["entry"])
    assert session.scalars(select(Appointment)).one().status == "fulfilled"


# --------------------------------------------------------------------------- rosters


def test_roster_weekly_hours_and_date_overrides(session: Session) -> None:
    point = make_queue_point(session, id="q1")
    friday = T0.weekday()
    assert friday == 4
    set_roster(
        session,
        "q1",
        weekly=[(friday, 9, 2), (friday, 10, 3), (0, 9, 5)],
        dates=[(T0.date(), 10, 1)],
    )
    assert servers_at(session, ["q1"], at(30)) == {"q1": 2}
    assert servers_at(session, ["q1"], at(60)) == {"q1": 1}  # the date override wins
    assert servers_at(session, ["q1"], at(60) + dt.timedelta(days=7)) == {"q1": 3}
    assert servers_at(session, ["q1"], at(-60)) == {"q1": 0}  # 08:00: nobody rostered
    # Replacing keeps only the new rows; a bad row changes nothing.
    set_roster(session, point.id, weekly=[(friday, 9, 4)])
    assert servers_at(session, ["q1"], at(60)) == {"q1": 0}
    with pytest.raises(InvalidInputError, match=r"weekly\[1\] repeats weekday 4 hour 9"):
        set_roster(session, "q1", weekly=[(friday, 9, 1), (friday, 9, 2)])
    with pytest.raises(InvalidInputError, match=r"weekly\[0\].hour must be 0 to 23"):
        set_roster(session, "q1", weekly=[(friday, 24, 1)])
    assert [r.servers for r in session.scalars(select(QueueRoster))] == [4]


# --------------------------------------------------------------------------- reads


@pytest.fixture
def board(session: Session, org: str) -> Location:
    """Queue point q1 (target 30 min) and its tickets around 10:00 (see the test)."""
    point = make_queue_point(session, id="q1", facility_id=org, target_wait_minutes=30)
    make_ticket(session, point, id="a", arrived=at(0), started=at(20), ended=at(40))
    make_ticket(session, point, id="b", arrived=at(10), started=at(50))
    make_ticket(session, point, id="c", arrived=at(30))
    make_ticket(session, point, id="d", arrived=at(45), called=at(55))
    make_ticket(session, point, id="e", arrived=at(5), left=at(35))
    make_ticket(session, point, id="f", arrived=at(-60), started=at(-30), ended=at(-10))
    make_ticket(session, point, id="g", arrived=at(90))
    make_ticket(session, point, id="h", arrived=at(-60), started=at(-50))
    make_ticket(session, point, id="x", arrived=at(15), status="cancelled")  # no leaving time
    make_ticket(session, point, id="y", arrived=at(15), status="entered-in-error")
    set_roster(session, "q1", weekly=[(4, 9, 2), (4, 10, 3)], dates=[(T0.date(), 10, 1)])
    other = make_organization(session, id="org-2")
    make_queue_point(session, id="q2", facility_id=other.id, name="Pharmacy")
    return point


def test_queue_status_waiting_in_service_and_waits_at_10(session: Session, board: Location) -> None:
    (status,) = queue_status(session, at=at(60), facility_id="org-1")
    # Waiting: c (30 min) and d (15 min, called but not served). In service: b and h.
    # Started in the last hour: a (20 min wait) and b (40 min): mean 30 = the target.
    assert status.id == "q1" and status.service == "opd_clinic" and status.facility_id == "org-1"
    assert (status.waiting, status.in_service, status.servers_now) == (2, 2, 1)
    assert status.current_wait_minutes == 30.0
    assert status.longest_wait_minutes == 30.0
    assert status.breaching is False  # at the target, not above it
    (later,) = queue_status(session, at=at(61), facility_id="org-1")
    assert later.longest_wait_minutes == 31.0 and later.breaching is True


def test_queue_status_is_an_as_of_read(session: Session, board: Location) -> None:
    (status,) = queue_status(
        session, at=at(30).astimezone(dt.timezone(dt.timedelta(hours=5))), facility_id="org-1"
    )
    # 09:30: waiting b (20), c (0), e (25, leaves at 09:35); in service a and h;
    # started since 08:30: a only (20 min).
    assert (status.waiting, status.in_service, status.servers_now) == (3, 2, 2)
    assert status.longest_wait_minutes == 25.0 and status.current_wait_minutes == 20.0
    all_points = queue_status(session, at=at(30))
    assert [p.id for p in all_points] == ["q1", "q2"]
    assert all_points[1].waiting == 0 and all_points[1].current_wait_minutes is None
    with pytest.raises(InvalidInputError, match="naive"):
        queue_status(session, at=dt.datetime(2024, 3, 1, 9))


def test_ticket_times_in_a_window(session: Session, board: Location) -> None:
    times = ticket_times(session, location_id="q1", since=at(0), until=at(60))
    assert [t.ticket_id for t in times] == ["a", "e", "b", "x", "c", "d"]
    a = times[0]
    assert (a.arrived_at, a.service_started_at, a.service_ended_at) == (at(0), at(20), at(40))
    assert a.location_id == "q1" and a.priority == "routine"
    assert [t.left_without_being_seen for t in times] == [False, True] + [False] * 4
    assert ticket_times(session, location_id="q2", since=at(0), until=at(60)) == []
    with pytest.raises(InvalidInputError, match="until must not be before since"):
        ticket_times(session, since=at(60), until=at(0))
