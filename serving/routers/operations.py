"""Queues and beds: queue points, rosters, queue tickets, appointments, the queue board and census.

Each route calls one function of :mod:`healthos_core.operations` in the request's one
transaction (:data:`~serving.deps.SessionDep`): tickets and appointments go through the
one write path, which publishes ``QueueTicketChanged`` / ``AppointmentChanged`` to the
outbox in the same transaction, so on any error nothing is written.

======================================================== ==============================
route                                                    roles
======================================================== ==============================
``POST /queue-points``, ``PUT /queue-points/{id}/roster`` operations, admin
``POST /queue-tickets``, ``POST /queue-tickets/{id}/…``  clinician, nurse, operations, admin
``POST /appointments``, ``POST /appointments/{id}/…``    clinician, nurse, operations, admin
``GET /queues``, ``GET /beds/census``                    operations, leadership, admin,
                                                         clinician, nurse
``PUT /beds/{id}/status``                                nurse, operations, admin
======================================================== ==============================

The rules are :mod:`healthos_core.access` (``OPERATIONS_READERS`` …); ``docs/operations.md``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status
from pydantic import BeforeValidator, WithJsonSchema

from healthos_core.access import (
    BED_STATUS_WRITERS,
    OPERATIONS_READERS,
    QUEUE_SETUP_ROLES,
    QUEUE_TICKET_WRITERS,
)
from healthos_core.fhir.refs import parse_as_of
from healthos_core.operations.appointments import book_appointment, set_appointment_status
from healthos_core.operations.beds import bed_census, set_bed_status
from healthos_core.operations.board import queue_status
from healthos_core.operations.queues import (
    advance_ticket,
    create_queue_point,
    create_ticket,
    set_roster,
)
from serving.deps import SessionDep, require_roles
from serving.schemas.operations import (
    AppointmentCreate,
    AppointmentPublic,
    AppointmentStep,
    BedCensusPublic,
    BedPoolPublic,
    BedPublic,
    BedStatusPut,
    QueueBoardPublic,
    QueuePointCreate,
    QueuePointPublic,
    QueuePointStatusPublic,
    QueueTicketCreate,
    QueueTicketPublic,
    RosterDate,
    RosterHour,
    RosterPublic,
    RosterPut,
    TicketStep,
    TicketStepCreate,
)

router = APIRouter(tags=["operations"])

QueueSetup = [Depends(require_roles(*QUEUE_SETUP_ROLES))]
TicketWriters = [Depends(require_roles(*QUEUE_TICKET_WRITERS))]
Readers = [Depends(require_roles(*OPERATIONS_READERS))]
BedWriters = [Depends(require_roles(*BED_STATUS_WRITERS))]

LocationId = Annotated[str, Path(min_length=1, max_length=64, description="A Location id")]
TicketId = Annotated[str, Path(min_length=1, max_length=64, description="A queue ticket id")]
AppointmentId = Annotated[str, Path(min_length=1, max_length=64, description="An Appointment id")]


def _at_rule(value: object) -> object:
    """Validate ``?at=`` by the one as-of rule (a ValueError becomes a 422 naming ``at``)."""
    return parse_as_of(value, name="at") if isinstance(value, str) else value


#: ``?at=``: an ISO date (the end of that day, UTC) or a date-time with its zone; default now.
AtQuery = Annotated[
    dt.datetime | None,
    BeforeValidator(_at_rule),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}
    ),
    Query(description="An ISO date (its end, UTC) or a date-time with its zone; default now"),
]
FacilityQuery = Annotated[
    str | None, Query(min_length=1, max_length=64, description="Only this facility (Organization)")
]


def _at(value: dt.datetime | None) -> dt.datetime:
    return dt.datetime.now(dt.UTC) if value is None else value.astimezone(dt.UTC)


@router.post(
    "/queue-points",
    response_model=QueuePointPublic,
    status_code=status.HTTP_201_CREATED,
    dependencies=QueueSetup,
)
def create_queue_point_route(
    *, session: SessionDep, body: QueuePointCreate, response: Response
) -> QueuePointPublic:
    """Create a queue point (a Location of kind ``queue``) with its service and wait target."""
    point = create_queue_point(
        session,
        name=body.name,
        service=body.service,
        facility_id=body.facility_id,
        target_wait_minutes=body.target_wait_minutes,
        part_of_id=body.part_of_id,
        id=body.id,
    )
    response.headers["Location"] = f"/fhir/Location/{point.id}"
    return QueuePointPublic.from_entity(point)


@router.put(
    "/queue-points/{location_id}/roster", response_model=RosterPublic, dependencies=QueueSetup
)
def put_roster(*, session: SessionDep, location_id: LocationId, body: RosterPut) -> RosterPublic:
    """Replace the queue point's roster: servers per weekday and hour, and date overrides."""
    rows = set_roster(
        session,
        location_id,
        weekly=[(h.weekday, h.hour, h.servers) for h in body.hours],
        dates=[(d.date, d.hour, d.servers) for d in body.dates],
    )
    return RosterPublic(
        queue_point_id=location_id,
        hours=[
            RosterHour(weekday=r.weekday, hour=r.hour, servers=r.servers)
            for r in rows
            if r.weekday is not None
        ],
        dates=[
            RosterDate(date=r.date, hour=r.hour, servers=r.servers)
            for r in rows
            if r.date is not None
        ],
    )


@router.post(
    "/queue-tickets",
    response_model=QueueTicketPublic,
    status_code=status.HTTP_201_CREATED,
    dependencies=TicketWriters,
)
def create_ticket_route(
    *, session: SessionDep, body: QueueTicketCreate, response: Response
) -> QueueTicketPublic:
    """Record a patient's arrival at a queue point (a FHIR Task ``queue-ticket``)."""
    ticket = create_ticket(
        session,
        location_id=body.queue_point_id,
        patient_id=body.patient_id,
        arrived_at=body.arrived_at,
        priority=body.resolved_priority,
        encounter_id=body.encounter_id,
        id=body.id,
    )
    response.headers["Location"] = f"/fhir/Task/{ticket.id}"
    return QueueTicketPublic.from_entity(ticket)


@router.post(
    "/queue-tickets/{ticket_id}/{step}",
    response_model=QueueTicketPublic,
    dependencies=TicketWriters,
)
def advance_ticket_route(
    *, session: SessionDep, ticket_id: TicketId, step: TicketStep, body: TicketStepCreate
) -> QueueTicketPublic:
    """Move a ticket on: called, (service) started, finished, or left without being seen."""
    return QueueTicketPublic.from_entity(advance_ticket(session, ticket_id, step.value, body.at))


@router.post(
    "/appointments",
    response_model=AppointmentPublic,
    status_code=status.HTTP_201_CREATED,
    dependencies=TicketWriters,
)
def create_appointment(
    *, session: SessionDep, body: AppointmentCreate, response: Response
) -> AppointmentPublic:
    """Book an Appointment (status ``booked``) for a patient at a clinic Location."""
    appointment = book_appointment(
        session,
        patient_id=body.patient_id,
        location_id=body.location_id,
        start=body.start,
        end=body.end,
        id=body.id,
    )
    response.headers["Location"] = f"/fhir/Appointment/{appointment.id}"
    return AppointmentPublic.from_entity(appointment)


@router.post(
    "/appointments/{appointment_id}/{step}",
    response_model=AppointmentPublic,
    dependencies=TicketWriters,
)
def appointment_status(
    *, session: SessionDep, appointment_id: AppointmentId, step: AppointmentStep
) -> AppointmentPublic:
    """Set the Appointment's status: arrived, fulfilled, noshow or cancelled."""
    return AppointmentPublic.from_entity(
        set_appointment_status(session, appointment_id, step.value)
    )


@router.get("/queues", response_model=QueueBoardPublic, dependencies=Readers)
def get_queues(
    *, session: SessionDep, facility: FacilityQuery = None, at: AtQuery = None
) -> QueueBoardPublic:
    """Return the queue board at ``at``: waiting, in service, servers and waits per point."""
    when = _at(at)
    board = queue_status(session, at=when, facility_id=facility)
    return QueueBoardPublic(
        at=when, queue_points=[QueuePointStatusPublic.from_status(s) for s in board]
    )


@router.get("/beds/census", response_model=BedCensusPublic, dependencies=Readers)
def get_bed_census(
    *, session: SessionDep, facility: FacilityQuery = None, at: AtQuery = None
) -> BedCensusPublic:
    """Return the bed census per pool at ``at``: 0116 statuses, occupancy, discharges."""
    when = _at(at)
    pools = bed_census(session, at=when, facility_id=facility)
    return BedCensusPublic(at=when, pools=[BedPoolPublic.from_pool(p) for p in pools])


@router.put("/beds/{location_id}/status", response_model=BedPublic, dependencies=BedWriters)
def put_bed_status(
    *, session: SessionDep, location_id: LocationId, body: BedStatusPut
) -> BedPublic:
    """Set a bed's HL7 v2 table 0116 status; 409 to mark an occupied bed unoccupied or closed."""
    return BedPublic.from_entity(set_bed_status(session, location_id, body.status))
