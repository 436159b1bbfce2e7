"""API shapes of patients."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from healthos_core.record.entities import Patient, PatientIdentifier


class IdentifierPublic(BaseModel):
    """A business identifier (FHIR Identifier): ``system`` + ``value``, with its type code."""

    system: str
    value: str
    type: str | None = None

    @classmethod
    def from_entity(cls, identifier: PatientIdentifier) -> IdentifierPublic:
        """Build from a :class:`~healthos_core.record.entities.PatientIdentifier`."""
        return cls(system=identifier.system, value=identifier.value, type=identifier.type_code)


class PatientPublic(BaseModel):
    """A patient: name, administrative gender, birth date and identifiers (MRN, SSN, ABHA …)."""

    id: str
    name: str | None = None
    family: str | None = None
    given: str | None = None
    gender: str | None = None
    birth_date: dt.date | None = None
    deceased_at: dt.datetime | None = None
    identifiers: list[IdentifierPublic] = []

    @classmethod
    def from_entity(cls, patient: Patient) -> PatientPublic:
        """Build from a :class:`~healthos_core.record.entities.Patient` (identifiers loaded)."""
        name = " ".join(part for part in (patient.given, patient.family) if part) or None
        return cls(
            id=patient.id,
            name=name,
            family=patient.family,
            given=patient.given,
            gender=patient.gender,
            birth_date=patient.birth_date,
            deceased_at=patient.deceased_at,
            identifiers=[IdentifierPublic.from_entity(i) for i in patient.identifiers],
        )


class PatientsPublic(BaseModel):
    """A page of patients; ``count`` is the number matching, ignoring the page."""

    data: list[PatientPublic]
    count: int
