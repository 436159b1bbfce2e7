"""API shapes of patients, cut to what the caller's role needs (minimum necessary)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from healthos_core.access import RecordView, identifier_category
from healthos_core.record.entities import Patient, PatientIdentifier
from healthos_core.record.reads import IdentifierRow, PatientSummary


class IdentifierPublic(BaseModel):
    """A business identifier (FHIR Identifier): ``system`` + ``value``, with its type code."""

    system: str
    value: str
    type: str | None = None

    @classmethod
    def from_entity(cls, identifier: PatientIdentifier | IdentifierRow) -> IdentifierPublic:
        """Build from a :class:`~healthos_core.record.entities.PatientIdentifier` or its row."""
        return cls(system=identifier.system, value=identifier.value, type=identifier.type_code)


class PatientPublic(BaseModel):
    """A patient: name, administrative gender, birth date and identifiers (MRN, member id …).

    What is shown depends on the caller's role (minimum necessary, ``docs/access.md``):
    the list and the read of a patient show the same fields to the same role.
    """

    id: str
    name: str | None = None
    family: str | None = None
    given: str | None = None
    gender: str | None = Field(default=None, description="null if the role may not see it")
    birth_date: dt.date | None = Field(default=None, description="null if the role may not see it")
    deceased_at: dt.datetime | None = Field(
        default=None, description="null if the role may not see it"
    )
    identifiers: list[IdentifierPublic] = Field(
        default=[], description="Only the identifiers the caller's role may see"
    )

    @classmethod
    def from_entity(cls, patient: Patient | PatientSummary, view: RecordView) -> PatientPublic:
        """Build from a :class:`~healthos_core.record.entities.Patient` or its summary.

        Parameters
        ----------
        patient : Patient or healthos_core.record.reads.PatientSummary
            The patient, with identifiers loaded (the entity), or its summary row.
        view : healthos_core.access.RecordView
            What the caller's role sees (:func:`healthos_core.access.record_view`).

        Returns
        -------
        PatientPublic
            With only the identifiers in ``view.identifiers``, and gender, birth date and
            date of death only if ``view.demographics``.
        """
        name = " ".join(part for part in (patient.given, patient.family) if part) or None
        shown = view.demographics
        return cls(
            id=patient.id,
            name=name,
            family=patient.family,
            given=patient.given,
            gender=patient.gender if shown else None,
            birth_date=patient.birth_date if shown else None,
            deceased_at=patient.deceased_at if shown else None,
            identifiers=[
                IdentifierPublic.from_entity(i)
                for i in patient.identifiers
                if identifier_category(i.system, i.type_code) in view.identifiers
            ],
        )


class PatientsPublic(BaseModel):
    """A page of patients; ``count`` is the number matching, ignoring the page."""

    data: list[PatientPublic]
    count: int
