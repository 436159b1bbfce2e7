"""API shapes of queues and beds: queue points, rosters, tickets, appointments, the boards.

The board shapes (:class:`QueueBoardPublic`, :class:`BedCensusPublic`) are the contract
the command-center page and the KPIs read (``docs/api.md``). Bodies refuse unknown fields
and take times only as ISO 8601 strings with a zone.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from healthos_core.operations import codes as ops
from healthos_core.operations.beds import BedPool
from healthos_core.operations.board import QueuePointStatus
from healthos_core.operations.queues import QUEUE_STATE
from healthos_core.record.entities import Appointment, Location, Task
from serving.schemas.clinical import ClinicalTime, FhirId, Text
from serving.schemas.common import IsoDate, IsoDateTime

Service = Literal[
    "opd_clinic", "ed_triage", "lab_collection", "pharmacy", "imaging", "theatre", "bed_assignment"
]
Priority = Literal["routine", "urgent", "asap", "stat"]
Servers = Annotated[int, Field(ge=0, le=1000, strict=True, description="Staffed servers")]
Hour = Annotated[int, Field(ge=0, le=23, strict=True, description="Hour of day, UTC")]


class TicketStep(enum.StrEnum):
    """A queue ticket's step after arrival."""

    CALLED = "called"
    STARTED = "started"
    FINISHED = "finished"
    LEFT = "left"


class AppointmentStep(enum.StrEnum):
    """An Appointment's status change (FHIR R4 appointmentstatus)."""

    ARRIVED = "arrived"
    FULFILLED = "fulfilled"
    NOSHOW = "noshow"
    CANCELLED = "cancelled"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueuePointCreate(_Body):
    """A queue point: a Location of kind ``queue`` serving ``service``, with a wait target."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "OPD Cardiology",
                    "service": "opd_clinic",
                    "facility_id": "org-1",
                    "target_wait_minutes": 30,
                }
            ]
        },
    )

    name: Annotated[Text, Field(min_length=1, max_length=255)]
    service: Service
    facility_id: FhirId
    target_wait_minutes: int = Field(ge=1, le=1440, strict=True, description="Minutes")
    part_of_id: FhirId | None = Field(default=None, description="A Location it is part of")
    id: FhirId | None = Field(default=None, description="FHIR id; default a new uuid")


class QueuePointPublic(BaseModel):
    """A stored queue point."""

    id: str
    name: str | None
    service: str | None
    facility_id: str | None
    target_wait_minutes: int | None
    part_of_id: str | None = None

    @classmethod
    def from_entity(cls, location: Location) -> QueuePointPublic:
        """Build from a queue-point :class:`~healthos_core.record.entities.Location`."""
        return cls(
            id=location.id,
            name=location.name,
            service=location.service_type,
            facility_id=location.facility_id,
            target_wait_minutes=location.target_wait_minutes,
            part_of_id=location.part_of_id,
        )


class RosterHour(_Body):
    """Servers staffed every week on ``weekday`` (0 = Monday … 6 = Sunday) in ``hour``."""

    weekday: int = Field(ge=0, le=6, strict=True)
    hour: Hour
    servers: Servers


class RosterDate(_Body):
    """Servers staffed on one ``date`` in ``hour``, overriding the weekly pattern."""

    date: IsoDate
    hour: Hour
    servers: Servers


class RosterPut(_Body):
    """A queue point's whole roster (replaces the stored one); hours not given have 0."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "hours": [{"weekday": 0, "hour": 9, "servers": 2}],
                    "dates": [{"date": "2026-12-25", "hour": 9, "servers": 0}],
                }
            ]
        },
    )

    hours: list[RosterHour] = Field(default=[], max_length=7 * 24)
    dates: list[RosterDate] = Field(default=[], max_length=24 * 400)


class RosterPublic(BaseModel):
    """The stored roster of a queue point."""

    queue_point_id: str
    hours: list[RosterHour]
    dates: list[RosterDate]


class QueueTicketCreate(_Body):
    """A patient's arrival at a queue point; give ``priority`` or an ESI triage level."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "queue_point_id": "opd-cardio",
                    "patient_id": "pat-1",
                    "arrived_at": "2026-03-02T09:05:00Z",
                    "priority": "routine",
                }
            ]
        },
    )

    queue_point_id: FhirId
    patient_id: FhirId
    encounter_id: FhirId | None = None
    arrived_at: ClinicalTime
    priority: Priority | None = Field(default=None, description="Default routine")
    esi_level: int | None = Field(
        default=None,
        ge=1,
        le=5,
        strict=True,
        description="Emergency Severity Index 1-5, mapped to priority (1 stat, 2 asap, "
        "3 urgent, 4-5 routine)",
    )
    id: FhirId | None = Field(default=None, description="FHIR id; default a new uuid")

    @model_validator(mode="after")
    def _one_priority(self) -> QueueTicketCreate:
        if self.priority is not None and self.esi_level is not None:
            raise ValueError("give priority or esi_level, not both")
        return self

    @property
    def resolved_priority(self) -> str:
        """The FHIR priority: given, from the ESI level, or routine."""
        if self.esi_level is not None:
            return ops.ESI_PRIORITY[self.esi_level]
        return self.priority or "routine"


class TicketStepCreate(_Body):
    """When the step happened."""

    at: ClinicalTime


class QueueTicketPublic(BaseModel):
    """A queue ticket (FHIR Task ``queue-ticket``) and its times."""

    id: str
    queue_point_id: str | None
    patient_id: str
    encounter_id: str | None = None
    status: str = Field(description="FHIR Task status")
    queue_state: str = Field(
        description="waiting, called, in-service, done, left-without-being-seen"
    )
    priority: str | None
    arrived_at: dt.datetime | None
    called_at: dt.datetime | None = None
    service_started_at: dt.datetime | None = None
    service_ended_at: dt.datetime | None = None
    left_without_being_seen: bool = False

    @classmethod
    def from_entity(cls, task: Task) -> QueueTicketPublic:
        """Build from a :class:`~healthos_core.record.entities.Task`."""
        return cls(
            id=task.id,
            queue_point_id=task.location_id,
            patient_id=task.patient_id,
            encounter_id=task.encounter_id,
            status=task.status,
            queue_state=QUEUE_STATE.get(task.status, task.status),
            priority=task.priority,
            arrived_at=task.arrived_at,
            called_at=task.called_at,
            service_started_at=task.service_started_at,
            service_ended_at=task.service_ended_at,
            left_without_being_seen=task.left_at is not None,
        )


class AppointmentCreate(_Body):
    """An Appointment to book (status ``booked``) at a clinic; ``end`` default start + 15 min."""

    patient_id: FhirId
    location_id: FhirId
    start: IsoDateTime
    end: IsoDateTime | None = None
    id: FhirId | None = Field(default=None, description="FHIR id; default a new uuid")


class AppointmentPublic(BaseModel):
    """A stored Appointment."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    patient_id: str
    location_id: str | None
    status: str
    start: dt.datetime | None
    end: dt.datetime | None

    @classmethod
    def from_entity(cls, appointment: Appointment) -> AppointmentPublic:
        """Build from a :class:`~healthos_core.record.entities.Appointment`."""
        return cls.model_validate(appointment)


class QueuePointStatusPublic(BaseModel):
    """One queue point on the board (see :class:`~healthos_core.operations.QueuePointStatus`)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    service: str
    facility_id: str | None
    target_wait_minutes: int
    waiting: int
    in_service: int
    servers_now: int
    current_wait_minutes: float | None = Field(
        description="Mean wait of tickets whose service started in the last hour"
    )
    longest_wait_minutes: float | None = Field(description="Longest wait of those still waiting")
    breaching: bool

    @classmethod
    def from_status(cls, status: QueuePointStatus) -> QueuePointStatusPublic:
        """Build from the core's :class:`~healthos_core.operations.queues.QueuePointStatus`."""
        return cls.model_validate(status)


class QueueBoardPublic(BaseModel):
    """The queue board at ``at``."""

    at: dt.datetime
    queue_points: list[QueuePointStatusPublic]


class BedStatusCounts(BaseModel):
    """Beds per HL7 v2 table 0116 status."""

    occupied: int
    unoccupied: int
    housekeeping: int
    isolated: int
    closed: int


class BedPoolPublic(BaseModel):
    """One bed pool of one facility (see :class:`~healthos_core.operations.beds.BedPool`)."""

    model_config = ConfigDict(from_attributes=True)

    pool: str
    facility_id: str | None
    beds: int
    available: int = Field(description="Staffed beds: not closed")
    occupied: int
    occupancy: float | None = Field(description="occupied / available, 0..1 (KH03)")
    threshold: float
    over_threshold: bool
    by_status: BedStatusCounts
    expected_discharges_24h: int
    ed_boarding: int

    @classmethod
    def from_pool(cls, pool: BedPool) -> BedPoolPublic:
        """Build from the core's :class:`~healthos_core.operations.beds.BedPool`."""
        return cls.model_validate(pool)


class BedCensusPublic(BaseModel):
    """The bed census at ``at``."""

    at: dt.datetime
    pools: list[BedPoolPublic]


class BedStatusPut(_Body):
    """A bed's HL7 v2 table 0116 status: U unoccupied, K contaminated, I isolated, C closed.

    ``O`` (occupied) is refused (422): occupancy comes from admitting or transferring a
    patient to the bed. ``U`` or ``C`` for an occupied bed is 409.
    """

    status: Literal["O", "U", "K", "I", "C"]


class BedPublic(BaseModel):
    """A bed Location and its stored 0116 status."""

    id: str
    name: str | None
    ward_id: str | None
    status: str | None = Field(description="HL7 v2 table 0116 code")
    status_name: str | None

    @classmethod
    def from_entity(cls, bed: Location) -> BedPublic:
        """Build from a bed :class:`~healthos_core.record.entities.Location`."""
        code = bed.operational_status
        return cls(
            id=bed.id,
            name=bed.name,
            ward_id=bed.part_of_id,
            status=code,
            status_name=ops.BED_STATUS.get(code) if code else None,
        )
