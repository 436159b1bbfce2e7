"""Queue points, their rosters, queue tickets and Appointments, and the queue board.

A **queue point** is a Location of kind ``queue`` (OPD clinic, ED triage, lab collection,
pharmacy, imaging, theatre, bed assignment) with a wait-time target and a roster of
staffed servers per hour (:class:`~healthos_core.operations.entities.QueueRoster`). A
**queue ticket** is a FHIR ``Task`` with code ``queue-ticket`` (SPEC §3): one patient's
arrival, call, service start, service end, or leaving without being seen. Tickets and
Appointments are written through the one write path
(:func:`healthos_core.record.write_path.write_resource`: the FHIR importer with
``origin="live"``), which publishes :class:`~healthos_core.events.QueueTicketChanged` /
:class:`~healthos_core.events.AppointmentChanged`; the outbox records them with the
queue point's ``Location/<id>`` as subject. ``docs/operations.md`` gives the FHIR mapping.

Appointments are in :mod:`~healthos_core.operations.appointments`, the queue board
(:func:`~healthos_core.operations.board.queue_status`) in :mod:`~healthos_core.operations.board`.
Nothing here commits: the caller owns the transaction (style-anchors rule 3).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, Final, cast

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from healthos_core.errors import ConflictError, InvalidInputError, NotFoundError
from healthos_core.events import EventBus
from healthos_core.fhir.exporter import to_fhir
from healthos_core.fhir.refs import format_datetime
from healthos_core.operations import codes as ops
from healthos_core.operations.entities import QueueRoster
from healthos_core.record.entities import Appointment, Encounter, Location, Patient, Task
from healthos_core.record.service import _aware_utc, _new_id, _organization, _required_text
from healthos_core.record.write_path import write_entity, write_resource

__all__ = [
    "QUEUE_STATE",
    "TICKET_STEPS",
    "advance_ticket",
    "create_queue_point",
    "create_ticket",
    "queue_point",
    "servers_at",
    "set_roster",
]

#: The steps of a ticket after arrival: the Task status each leads to, and the statuses
#: it may come from (FHIR R4 task-status: requested → ready → in-progress → completed).
TICKET_STEPS: Final[dict[str, tuple[str, frozenset[str]]]] = {
    "called": ("ready", frozenset({"requested"})),
    "started": ("in-progress", frozenset({"requested", "ready"})),
    "finished": ("completed", frozenset({"in-progress"})),
    "left": ("cancelled", frozenset({"requested", "ready"})),
}
#: ``Task.businessStatus`` code of each Task status of a ticket.
QUEUE_STATE: Final[dict[str, str]] = {
    "requested": "waiting",
    "ready": "called",
    "in-progress": "in-service",
    "completed": "done",
    "cancelled": "left-without-being-seen",
}


# --------------------------------------------------------------------------- queue points


def queue_point(session: Session, location_id: str) -> Location:
    """Return the queue point ``location_id``.

    Raises
    ------
    NotFoundError
        No such Location.
    InvalidInputError
        The Location is not a queue point (kind ``queue``).
    """
    location = session.get(Location, location_id)
    if location is None:
        raise NotFoundError(f"Location/{location_id} does not exist")
    if location.kind != "queue":
        raise InvalidInputError(
            f"Location/{location_id} is a {location.kind or 'location'}, not a queue point"
        )
    return location


def create_queue_point(
    session: Session,
    *,
    name: str,
    service: str,
    facility_id: str,
    target_wait_minutes: int,
    part_of_id: str | None = None,
    id: str | None = None,
) -> Location:
    """Create a queue point: a Location of kind ``queue`` with its service and wait target.

    Parameters
    ----------
    session : Session
        The caller's session (flushed, not committed).
    name : str
        E.g. ``"OPD Cardiology"`` (≤255 characters).
    service : str
        One of :data:`~healthos_core.operations.codes.QUEUE_SERVICES`.
    facility_id : str
        The facility (an existing Organization): ``Location.managingOrganization``.
    target_wait_minutes : int
        The wait-time target, 1–1440 minutes (e.g. 30 for an OPD clinic; the hospital's
        own standard: HealthOS sets none).
    part_of_id : str, optional
        An existing Location it is part of (a department, a building).
    id : str, optional
        FHIR id; default a new uuid. The same content again is an idempotent repeat.

    Returns
    -------
    Location

    Raises
    ------
    InvalidInputError
        Unknown service, target out of range, bad name or id.
    NotFoundError
        Unknown facility or ``part_of_id``.
    ConflictError
        ``id`` is taken by other content.
    """
    name = _required_text(name, "name", 255)
    if service not in ops.QUEUE_SERVICES:
        raise InvalidInputError(f"service {service!r}: use one of {list(ops.QUEUE_SERVICES)}")
    if isinstance(target_wait_minutes, bool) or not isinstance(target_wait_minutes, int):
        raise InvalidInputError("target_wait_minutes must be a whole number of minutes")
    if not 1 <= target_wait_minutes <= 1440:
        raise InvalidInputError(
            f"target_wait_minutes={target_wait_minutes} is out of range: 1 to 1440 minutes"
        )
    facility = _organization(session, facility_id)
    if part_of_id is not None and session.get(Location, part_of_id) is None:
        raise NotFoundError(f"part_of Location/{part_of_id} does not exist")
    location = Location(
        id=_new_id(Location, id),
        name=name,
        kind="queue",
        status="active",
        service_type=service,
        target_wait_minutes=target_wait_minutes,
        part_of_id=part_of_id,
        managing_organization_id=facility,
        facility_id=facility,
    )
    return write_entity(session, location, None)


def set_roster(
    session: Session,
    location_id: str,
    *,
    weekly: Iterable[tuple[int, int, int]] = (),
    dates: Iterable[tuple[dt.date, int, int]] = (),
) -> list[QueueRoster]:
    """Replace a queue point's roster: staffed servers per weekday and hour, and date overrides.

    Parameters
    ----------
    session : Session
        The caller's session (flushed, not committed).
    location_id : str
        The queue point.
    weekly : iterable of (weekday, hour, servers)
        Weekday 0 (Monday) – 6, UTC hour 0–23, servers 0–1000. Hours not given have 0.
    dates : iterable of (date, hour, servers)
        Overrides of one date's hour (a holiday, an extra session).

    Returns
    -------
    list of QueueRoster
        The new rows.

    Raises
    ------
    NotFoundError, InvalidInputError
        Unknown or non-queue Location; a value out of range or an hour given twice
        (naming it). Nothing is changed.
    """
    queue_point(session, location_id)
    rows: list[QueueRoster] = []
    seen: set[tuple[Any, int]] = set()
    for index, (weekday, hour, servers) in enumerate(weekly):
        _check_slot(f"weekly[{index}]", hour, servers)
        if isinstance(weekday, bool) or not isinstance(weekday, int) or not 0 <= weekday <= 6:
            raise InvalidInputError(f"weekly[{index}].weekday must be 0 (Monday) to 6 (Sunday)")
        if (weekday, hour) in seen:
            raise InvalidInputError(f"weekly[{index}] repeats weekday {weekday} hour {hour}")
        seen.add((weekday, hour))
        rows.append(
            QueueRoster(location_id=location_id, weekday=weekday, hour=hour, servers=servers)
        )
    for index, (day, hour, servers) in enumerate(dates):
        _check_slot(f"dates[{index}]", hour, servers)
        if isinstance(day, dt.datetime) or not isinstance(day, dt.date):
            raise InvalidInputError(f"dates[{index}].date must be a date")
        if (day, hour) in seen:
            raise InvalidInputError(f"dates[{index}] repeats {day.isoformat()} hour {hour}")
        seen.add((day, hour))
        rows.append(QueueRoster(location_id=location_id, date=day, hour=hour, servers=servers))
    session.execute(delete(QueueRoster).where(QueueRoster.location_id == location_id))
    session.add_all(rows)
    session.flush()
    return rows


def _check_slot(name: str, hour: Any, servers: Any) -> None:
    if isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
        raise InvalidInputError(f"{name}.hour must be 0 to 23 (UTC)")
    if isinstance(servers, bool) or not isinstance(servers, int) or not 0 <= servers <= 1000:
        raise InvalidInputError(f"{name}.servers must be 0 to 1000")


def servers_at(session: Session, location_ids: Sequence[str], at: dt.datetime) -> dict[str, int]:
    """Return the staffed servers of each queue point in the hour holding ``at``.

    A date override of that hour wins over the weekly row; no row means 0. One query.

    Parameters
    ----------
    session : Session
    location_ids : sequence of str
        Queue points.
    at : datetime
        Aware time; its UTC weekday, date and hour select the rows.

    Returns
    -------
    dict
        ``{location id: servers}`` for every id given.
    """
    at = _aware_utc(at, "at")
    found: dict[str, int] = dict.fromkeys(location_ids, 0)
    if not location_ids:
        return found
    rows = session.execute(
        select(QueueRoster.location_id, QueueRoster.date, QueueRoster.servers).where(
            QueueRoster.location_id.in_(list(location_ids)),
            QueueRoster.hour == at.hour,
            or_(QueueRoster.weekday == at.weekday(), QueueRoster.date == at.date()),
        )
    ).all()
    for row in sorted(rows, key=lambda r: r.date is not None):  # overrides last: they win
        found[row.location_id] = row.servers
    return found


# --------------------------------------------------------------------------- tickets


def _reference(resource_type: str, resource_id: str | None) -> dict[str, str] | None:
    return {"reference": f"{resource_type}/{resource_id}"} if resource_id else None


def _state(status: str) -> dict[str, Any]:
    code = QUEUE_STATE[status]
    return {"coding": [{"system": ops.QUEUE_STATE_SYSTEM, "code": code}], "text": code}


def _write_new(
    session: Session,
    entity_type: type[Task] | type[Appointment],
    resource: dict[str, Any],
    bus: EventBus | None,
) -> Any:
    """Write a new resource; the same content again is a repeat, other content a conflict."""
    stored = cast("Task | Appointment | None", session.get(entity_type, resource["id"]))
    if stored is not None:
        mine = {k: v for k, v in resource.items() if k != "meta"}
        theirs = {k: v for k, v in to_fhir(stored).items() if k != "meta"}
        if mine == theirs:
            return stored
        raise ConflictError(
            f"{entity_type.__name__}/{resource['id']} already exists with other content: "
            "choose another id"
        )
    return write_resource(session, entity_type, resource, bus)


def create_ticket(
    session: Session,
    *,
    location_id: str,
    patient_id: str,
    arrived_at: dt.datetime,
    priority: str = "routine",
    encounter_id: str | None = None,
    id: str | None = None,
    bus: EventBus | None = None,
) -> Task:
    """Record a patient's arrival at a queue point: a new queue ticket (FHIR Task).

    Parameters
    ----------
    session : Session
        The caller's session (flushed, not committed).
    location_id : str
        The queue point (``Task.location``).
    patient_id : str
        The patient (``Task.for``).
    arrived_at : datetime
        Aware arrival time (``Task.authoredOn``).
    priority : {"routine", "urgent", "asap", "stat"}, default="routine"
        FHIR request priority; :data:`~healthos_core.operations.codes.ESI_PRIORITY` maps
        an ESI triage level to it.
    encounter_id : str, optional
        The visit (``Task.encounter``): must be the patient's.
    id : str, optional
        FHIR id; default a new uuid.
    bus : EventBus, optional
        Where :class:`~healthos_core.events.QueueTicketChanged` goes (default bus).

    Returns
    -------
    Task
        The stored ticket (status ``requested``: waiting).

    Raises
    ------
    NotFoundError
        Unknown queue point, patient or encounter.
    InvalidInputError
        Not a queue point, unknown priority, naive time, the encounter is another
        patient's, or bad id.
    ConflictError
        ``id`` is taken by other content.
    """
    queue_point(session, location_id)
    if session.get(Patient, patient_id) is None:
        raise NotFoundError(f"Patient/{patient_id} does not exist")
    if encounter_id is not None:
        encounter = session.get(Encounter, encounter_id)
        if encounter is None:
            raise NotFoundError(f"Encounter/{encounter_id} does not exist")
        if encounter.patient_id != patient_id:
            raise InvalidInputError(f"Encounter/{encounter_id} is another patient's")
    if priority not in ops.PRIORITIES:
        raise InvalidInputError(f"priority {priority!r}: use one of {list(ops.PRIORITIES)}")
    arrived_at = _aware_utc(arrived_at, "arrived_at")
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "id": _new_id(Task, id),
        "status": "requested",
        "businessStatus": _state("requested"),
        "intent": "order",
        "priority": priority,
        "code": {
            "coding": [
                {
                    "system": ops.TASK_CODE_SYSTEM,
                    "code": ops.QUEUE_TICKET,
                    "display": "Queue ticket",
                }
            ]
        },
        "for": _reference("Patient", patient_id),
        "location": _reference("Location", location_id),
        "authoredOn": format_datetime(arrived_at),
        "lastModified": format_datetime(arrived_at),
    }
    if encounter_id is not None:
        resource["encounter"] = _reference("Encounter", encounter_id)
    ticket: Task = _write_new(session, Task, resource, bus)
    return ticket


def _as_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def advance_ticket(
    session: Session, ticket_id: str, step: str, at: dt.datetime, *, bus: EventBus | None = None
) -> Task:
    """Move a queue ticket on: ``called``, ``started`` (service), ``finished`` or ``left``.

    ``called`` sets the queue-called extension (status ``ready``); ``started`` and
    ``finished`` set ``Task.executionPeriod`` start and end (``in-progress``,
    ``completed``); ``left`` (left without being seen) sets the queue-left extension and
    ``cancelled`` with that ``statusReason``. Written through the one write path, which
    publishes :class:`~healthos_core.events.QueueTicketChanged`.

    Parameters
    ----------
    session : Session
    ticket_id : str
        A queue ticket.
    step : {"called", "started", "finished", "left"}
    at : datetime
        Aware time of the step: not before the ticket's previous step.
    bus : EventBus, optional

    Returns
    -------
    Task

    Raises
    ------
    NotFoundError
        Unknown ticket.
    InvalidInputError
        Unknown step, naive time, or a time before the previous step.
    ConflictError
        The step does not follow from the ticket's state (finished or left already; left
        after service started; finished before it started).
    """
    if step not in TICKET_STEPS:
        raise InvalidInputError(f"step {step!r}: use one of {list(TICKET_STEPS)}")
    ticket = session.get(Task, ticket_id)
    if ticket is None or ticket.code != ops.QUEUE_TICKET:
        raise NotFoundError(f"queue ticket Task/{ticket_id} does not exist")
    at = _aware_utc(at, "at")
    status, allowed = TICKET_STEPS[step]
    if ticket.status not in allowed:
        raise ConflictError(
            f"Task/{ticket_id} is {QUEUE_STATE.get(ticket.status, ticket.status)}: it cannot be "
            f"{step} now"
        )
    times = [ticket.arrived_at, ticket.called_at, ticket.service_started_at]
    latest = max((t for t in (_as_utc(v) for v in times) if t is not None), default=None)
    if latest is not None and at < latest:
        raise InvalidInputError(
            f"at={format_datetime(at)} is before the ticket's previous step at "
            f"{format_datetime(latest)}: steps are recorded in time order"
        )
    resource = to_fhir(ticket)
    when = format_datetime(at)
    resource["status"] = status
    resource["businessStatus"] = _state(status)
    resource["lastModified"] = when
    if step == "called":
        resource["extension"] = [
            *[e for e in resource.get("extension") or [] if e.get("url") != ops.CALLED_EXTENSION],
            {"url": ops.CALLED_EXTENSION, "valueDateTime": when},
        ]
    elif step == "started":
        resource["executionPeriod"] = {"start": when}
    elif step == "finished":
        resource["executionPeriod"] = {**(resource.get("executionPeriod") or {}), "end": when}
    else:
        resource["extension"] = [
            *(resource.get("extension") or []),
            {"url": ops.LEFT_EXTENSION, "valueDateTime": when},
        ]
        resource["statusReason"] = {
            "coding": [{"system": ops.QUEUE_STATE_SYSTEM, "code": "left-without-being-seen"}],
            "text": "left without being seen",
        }
    return write_resource(session, Task, resource, bus)
