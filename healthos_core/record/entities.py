"""Entities of the unified patient record, named as FHIR R4 names them.

Each entity keeps the FHIR logical id as its primary key (``id``), the typed
columns HealthOS reasons over, and ``resource``: the resource as it was received
(references rewritten to ``"Type/id"``), so export loses nothing. Every row knows
its facility (``facility_id``, the Organization that provided the service) where
the source says so.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from healthos_core.db import Base, FhirId, utcnow


class EncounterClass(enum.StrEnum):
    """FHIR v3 ActCode encounter classes used by HealthOS."""

    AMB = "AMB"
    EMER = "EMER"
    IMP = "IMP"
    OBSENC = "OBSENC"
    HH = "HH"
    VR = "VR"


class RecordMixin:
    """Columns every record entity has."""

    id: Mapped[FhirId]
    facility_id: Mapped[str | None] = mapped_column(String(64), index=True)
    resource: Mapped[dict[str, Any] | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r})"

    @property
    def reference(self) -> str:
        """The FHIR reference string ``"Type/id"``."""
        return f"{type(self).__name__}/{self.id}"


class CodedMixin:
    """A primary coding: system, code and display."""

    code_system: Mapped[str | None] = mapped_column(String(128))
    code: Mapped[str | None] = mapped_column(String(64), index=True)
    display: Mapped[str | None] = mapped_column(String(512))


class Organization(RecordMixin, Base):
    """A provider, payer, facility, network or region (FHIR Organization).

    ``part_of_id`` builds the hierarchy facility → network → region.
    """

    __tablename__ = "organization"
    name: Mapped[str | None] = mapped_column(String(255))
    type_code: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    part_of_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"), index=True)


class Location(RecordMixin, Base):
    """A ward, bed, ICU, clinic or queue point (FHIR Location).

    ``physical_type`` uses FHIR location-physical-type codes (``wa`` ward, ``bd`` bed,
    ``ro`` room, ``si`` site); ``kind`` is HealthOS's role for it (``ward``, ``icu``,
    ``bed``, ``clinic``, ``queue``). ``service_type`` is what a queue point serves
    (``opd_clinic``, ``ed_triage`` …) or a ward's type, which is the bed pool of its beds
    (``general_medicine``, ``icu`` …); ``target_wait_minutes`` a queue point's wait-time
    target; ``operational_status`` a bed's HL7 v2 table 0116 status (``docs/operations.md``).
    """

    __tablename__ = "location"
    name: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str | None] = mapped_column(String(32))
    physical_type: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")
    operational_status: Mapped[str | None] = mapped_column(String(16))
    part_of_id: Mapped[str | None] = mapped_column(ForeignKey("location.id"), index=True)
    managing_organization_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"))
    service_type: Mapped[str | None] = mapped_column(String(32))
    target_wait_minutes: Mapped[int | None] = mapped_column(Integer)


class Practitioner(RecordMixin, Base):
    """A clinician or other professional (FHIR Practitioner)."""

    __tablename__ = "practitioner"
    family: Mapped[str | None] = mapped_column(String(128))
    given: Mapped[str | None] = mapped_column(String(128))
    npi: Mapped[str | None] = mapped_column(String(32), index=True)
    gender: Mapped[str | None] = mapped_column(String(16))


class Patient(RecordMixin, Base):
    """A patient (FHIR Patient); identifiers (MRN, SSN, ABHA …) in :class:`PatientIdentifier`."""

    __tablename__ = "patient"
    family: Mapped[str | None] = mapped_column(String(128))
    given: Mapped[str | None] = mapped_column(String(128))
    gender: Mapped[str | None] = mapped_column(String(16))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    deceased_at: Mapped[dt.datetime | None]
    identifiers: Mapped[list[PatientIdentifier]] = relationship(
        back_populates="patient", cascade="all, delete-orphan", lazy="selectin"
    )


class PatientIdentifier(Base):
    """One business identifier of a patient (FHIR Identifier): system + value."""

    __tablename__ = "patient_identifier"
    __table_args__ = (UniqueConstraint("patient_id", "system", "value"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(
        ForeignKey("patient.id", ondelete="CASCADE"), index=True
    )
    system: Mapped[str] = mapped_column(String(255), default="")
    value: Mapped[str] = mapped_column(String(128), index=True)
    type_code: Mapped[str | None] = mapped_column(String(16))
    patient: Mapped[Patient] = relationship(back_populates="identifiers")

    def __repr__(self) -> str:
        return f"PatientIdentifier(type={self.type_code!r}, system={self.system!r})"


class Coverage(RecordMixin, Base):
    """Insurance coverage of a patient (FHIR Coverage)."""

    __tablename__ = "coverage"
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    type_code: Mapped[str | None] = mapped_column(String(64))
    payor_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"), index=True)
    payor_display: Mapped[str | None] = mapped_column(String(255))
    plan: Mapped[str | None] = mapped_column(String(128))
    subscriber_id: Mapped[str | None] = mapped_column(String(64))
    period_start: Mapped[dt.datetime | None]
    period_end: Mapped[dt.datetime | None]


class Encounter(RecordMixin, Base):
    """A contact between a patient and the hospital (FHIR Encounter).

    ``class_code`` is AMB, EMER or IMP (v3 ActCode); ``location_id`` is the current
    ward or bed; the history of locations is in ``resource['location']``.
    """

    __tablename__ = "encounter"
    __table_args__ = (Index("ix_encounter_status_class", "status", "class_code"),)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    class_code: Mapped[str] = mapped_column(String(16))
    type_code: Mapped[str | None] = mapped_column(String(64))
    type_display: Mapped[str | None] = mapped_column(String(512))
    period_start: Mapped[dt.datetime | None]
    period_end: Mapped[dt.datetime | None]
    service_provider_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"))
    practitioner_id: Mapped[str | None] = mapped_column(ForeignKey("practitioner.id"))
    location_id: Mapped[str | None] = mapped_column(ForeignKey("location.id"), index=True)
    admit_source: Mapped[str | None] = mapped_column(String(32))
    discharge_disposition: Mapped[str | None] = mapped_column(String(32))
    reason_code: Mapped[str | None] = mapped_column(String(64))
    expected_discharge_at: Mapped[dt.datetime | None]
    admit_decision_at: Mapped[dt.datetime | None]
    admit_to_pool: Mapped[str | None] = mapped_column(String(32))


class Condition(RecordMixin, CodedMixin, Base):
    """A diagnosis or problem (FHIR Condition)."""

    __tablename__ = "condition"
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    encounter_id: Mapped[str | None] = mapped_column(ForeignKey("encounter.id"), index=True)
    clinical_status: Mapped[str | None] = mapped_column(String(16))
    verification_status: Mapped[str | None] = mapped_column(String(16))
    onset_at: Mapped[dt.datetime | None]
    abatement_at: Mapped[dt.datetime | None]
    recorded_at: Mapped[dt.datetime | None]


class Observation(RecordMixin, CodedMixin, Base):
    """A measurement: vital sign, lab result, survey (FHIR Observation).

    ``value`` is numeric in ``unit`` (UCUM code); coded or text values go in
    ``value_code``/``value_string``; panel components (e.g. blood pressure) in
    ``components`` as ``[{"code", "value", "unit"}]``. ``quality_flag`` marks values
    the importer judged implausible: such rows have ``status='entered-in-error'``
    and are never used as facts.
    """

    __tablename__ = "observation"
    __table_args__ = (
        Index("ix_observation_encounter_code_time", "encounter_id", "code", "effective_at"),
    )
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    encounter_id: Mapped[str | None] = mapped_column(ForeignKey("encounter.id"))
    status: Mapped[str] = mapped_column(String(24), default="final")
    category: Mapped[str | None] = mapped_column(String(32))
    effective_at: Mapped[dt.datetime | None]
    value: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(String(32))
    value_code: Mapped[str | None] = mapped_column(String(64))
    value_string: Mapped[str | None] = mapped_column(Text)
    components: Mapped[list[Any] | None]
    quality_flag: Mapped[str | None] = mapped_column(String(64))


class Procedure(RecordMixin, CodedMixin, Base):
    """A procedure performed on a patient (FHIR Procedure); billable through the chargemaster."""

    __tablename__ = "procedure"
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    encounter_id: Mapped[str | None] = mapped_column(ForeignKey("encounter.id"), index=True)
    status: Mapped[str] = mapped_column(String(24))
    performed_start: Mapped[dt.datetime | None]
    performed_end: Mapped[dt.datetime | None]


class MedicationRequest(RecordMixin, CodedMixin, Base):
    """A medication order (FHIR MedicationRequest); code is usually RxNorm."""

    __tablename__ = "medication_request"
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    encounter_id: Mapped[str | None] = mapped_column(ForeignKey("encounter.id"), index=True)
    status: Mapped[str] = mapped_column(String(24))
    intent: Mapped[str] = mapped_column(String(24))
    authored_on: Mapped[dt.datetime | None]
    requester_id: Mapped[str | None] = mapped_column(ForeignKey("practitioner.id"))


class MedicationAdministration(RecordMixin, CodedMixin, Base):
    """A dose given to a patient (FHIR MedicationAdministration); billable."""

    __tablename__ = "medication_administration"
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    encounter_id: Mapped[str | None] = mapped_column(ForeignKey("encounter.id"), index=True)
    request_id: Mapped[str | None] = mapped_column(ForeignKey("medication_request.id"))
    status: Mapped[str] = mapped_column(String(24))
    effective_start: Mapped[dt.datetime | None]
    effective_end: Mapped[dt.datetime | None]
    dose_value: Mapped[float | None] = mapped_column(Float)
    dose_unit: Mapped[str | None] = mapped_column(String(32))


class Immunization(RecordMixin, CodedMixin, Base):
    """A vaccination (FHIR Immunization); code is CVX."""

    __tablename__ = "immunization"
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    encounter_id: Mapped[str | None] = mapped_column(ForeignKey("encounter.id"), index=True)
    status: Mapped[str] = mapped_column(String(24))
    occurrence_at: Mapped[dt.datetime | None]


class DiagnosticReport(RecordMixin, CodedMixin, Base):
    """A report grouping results (FHIR DiagnosticReport); ``result_ids`` are Observation ids."""

    __tablename__ = "diagnostic_report"
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    encounter_id: Mapped[str | None] = mapped_column(ForeignKey("encounter.id"), index=True)
    status: Mapped[str] = mapped_column(String(24))
    category: Mapped[str | None] = mapped_column(String(32))
    effective_at: Mapped[dt.datetime | None]
    issued_at: Mapped[dt.datetime | None]
    result_ids: Mapped[list[Any] | None]


class AllergyIntolerance(RecordMixin, CodedMixin, Base):
    """An allergy or intolerance (FHIR AllergyIntolerance)."""

    __tablename__ = "allergy_intolerance"
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    clinical_status: Mapped[str | None] = mapped_column(String(16))
    criticality: Mapped[str | None] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(32))
    recorded_at: Mapped[dt.datetime | None]


class Task(RecordMixin, Base):
    """A queue ticket (FHIR Task with code ``queue-ticket``): one patient waiting at a queue point.

    ``arrived_at`` is ``Task.authoredOn``; ``service_started_at``/``service_ended_at`` are
    ``Task.executionPeriod``; ``called_at`` and ``left_at`` (left without being seen) are
    HealthOS extensions (``docs/operations.md``). ``priority`` is the FHIR request
    priority (``routine``, ``urgent``, ``asap``, ``stat``).
    """

    __tablename__ = "task"
    __table_args__ = (Index("ix_task_location_arrived", "location_id", "arrived_at"),)
    status: Mapped[str] = mapped_column(String(24))
    code: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    encounter_id: Mapped[str | None] = mapped_column(ForeignKey("encounter.id"), index=True)
    location_id: Mapped[str | None] = mapped_column(ForeignKey("location.id"))
    priority: Mapped[str | None] = mapped_column(String(16))
    arrived_at: Mapped[dt.datetime | None]
    called_at: Mapped[dt.datetime | None]
    service_started_at: Mapped[dt.datetime | None]
    service_ended_at: Mapped[dt.datetime | None]
    left_at: Mapped[dt.datetime | None]


class Appointment(RecordMixin, Base):
    """A booked visit (FHIR Appointment): the patient, the clinic Location and the slot time.

    ``status`` is the FHIR appointment status (``booked``, ``arrived``, ``fulfilled``,
    ``noshow``, ``cancelled`` …).
    """

    __tablename__ = "appointment"
    __table_args__ = (Index("ix_appointment_location_start", "location_id", "start"),)
    status: Mapped[str] = mapped_column(String(24))
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    location_id: Mapped[str | None] = mapped_column(ForeignKey("location.id"))
    start: Mapped[dt.datetime | None]
    end: Mapped[dt.datetime | None]
