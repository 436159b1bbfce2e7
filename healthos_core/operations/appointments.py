"""Appointments (FHIR Appointment): booked, arrived, fulfilled, no-show, cancelled.

Written through the one write path (:func:`healthos_core.record.write_path.write_resource`),
which publishes :class:`~healthos_core.events.AppointmentChanged`; the outbox records it with
the clinic's ``Location/<id>`` as subject (``docs/operations.md``). Nothing here commits.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from sqlalchemy.orm import Session

from healthos_core.errors import ConflictError, InvalidInputError, NotFoundError
from healthos_core.events import EventBus
from healthos_core.fhir.exporter import to_fhir
from healthos_core.fhir.refs import format_datetime
from healthos_core.operations.queues import _reference, _write_new
from healthos_core.record.entities import Appointment, Location, Patient
from healthos_core.record.service import _aware_utc, _new_id
from healthos_core.record.write_path import write_resource

__all__ = ["APPOINTMENT_STEPS", "DEFAULT_SLOT", "book_appointment", "set_appointment_status"]

#: Appointment status changes allowed (FHIR R4 appointmentstatus).
APPOINTMENT_STEPS: Final[dict[str, frozenset[str]]] = {
    "arrived": frozenset({"booked", "pending", "proposed"}),
    "fulfilled": frozenset({"booked", "arrived", "checked-in"}),
    "noshow": frozenset({"booked", "pending", "proposed"}),
    "cancelled": frozenset({"booked", "pending", "proposed"}),
}
#: Slot length of an Appointment booked without an end (FHIR needs both or neither).
DEFAULT_SLOT: Final = dt.timedelta(minutes=15)


def book_appointment(
    session: Session,
    *,
    patient_id: str,
    location_id: str,
    start: dt.datetime,
    end: dt.datetime | None = None,
    id: str | None = None,
    bus: EventBus | None = None,
) -> Appointment:
    """Book an Appointment (status ``booked``) for a patient at a clinic Location.

    Parameters
    ----------
    session : Session
    patient_id : str
        The patient (a participant).
    location_id : str
        The clinic or queue point (a participant).
    start, end : datetime
        Aware slot times; ``end`` defaults to ``start`` + :data:`DEFAULT_SLOT` (FHIR
        Appointment invariant app-2: both or neither).
    id : str, optional
        FHIR id; default a new uuid.
    bus : EventBus, optional

    Returns
    -------
    Appointment

    Raises
    ------
    NotFoundError
        Unknown patient or location.
    InvalidInputError
        Naive times, ``end`` not after ``start``, bad id.
    ConflictError
        ``id`` is taken by other content.
    """
    if session.get(Patient, patient_id) is None:
        raise NotFoundError(f"Patient/{patient_id} does not exist")
    if session.get(Location, location_id) is None:
        raise NotFoundError(f"Location/{location_id} does not exist")
    start = _aware_utc(start, "start")
    end = _aware_utc(end, "end") if end is not None else start + DEFAULT_SLOT
    if end <= start:
        raise InvalidInputError("end must be after start")
    resource = {
        "resourceType": "Appointment",
        "id": _new_id(Appointment, id),
        "status": "booked",
        "start": format_datetime(start),
        "end": format_datetime(end),
        "participant": [
            {"actor": _reference("Patient", patient_id), "status": "accepted"},
            {"actor": _reference("Location", location_id), "status": "accepted"},
        ],
    }
    appointment: Appointment = _write_new(session, Appointment, resource, bus)
    return appointment


def set_appointment_status(
    session: Session, appointment_id: str, status: str, *, bus: EventBus | None = None
) -> Appointment:
    """Set an Appointment's status: ``arrived``, ``fulfilled``, ``noshow`` or ``cancelled``.

    Raises
    ------
    NotFoundError
        Unknown appointment.
    InvalidInputError
        Unknown status.
    ConflictError
        The appointment's status does not allow it (e.g. a no-show cannot be fulfilled).
    """
    if status not in APPOINTMENT_STEPS:
        raise InvalidInputError(f"status {status!r}: use one of {list(APPOINTMENT_STEPS)}")
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFoundError(f"Appointment/{appointment_id} does not exist")
    if appointment.status not in APPOINTMENT_STEPS[status]:
        raise ConflictError(f"Appointment/{appointment_id} is {appointment.status}: not {status}")
    resource = to_fhir(appointment)
    resource["status"] = status
    return write_resource(session, Appointment, resource, bus)
