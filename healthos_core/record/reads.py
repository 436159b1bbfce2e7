"""Polled reads of the record as plain rows, without the ORM.

Ward tablets and EHR hooks read the same patient many times a minute. Loading the
:class:`~healthos_core.record.entities.Patient` entity (identity map, joined eager
loading, instance state) cost three times the query itself (the profile in
``bench/README.md``), so these reads select the columns they show, on a connection, and
return frozen values. They show what the entities hold: the same tables, the same column
types (aware UTC times).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select

from healthos_core.errors import NotFoundError
from healthos_core.record.entities import Patient, PatientIdentifier


@dataclass(frozen=True, slots=True)
class IdentifierRow:
    """A patient's business identifier (FHIR Identifier): system, value and type code."""

    system: str
    value: str
    type_code: str | None


@dataclass(frozen=True, slots=True)
class PatientSummary:
    """A patient's name, administrative gender, dates and identifiers (no stored resource).

    Attributes
    ----------
    id : str
        FHIR Patient id.
    family, given : str or None
        Name parts.
    gender : str or None
        FHIR administrative gender.
    birth_date : datetime.date or None
    deceased_at : datetime.datetime or None
        Aware UTC.
    identifiers : tuple of IdentifierRow
        In the order they were stored.
    """

    id: str
    family: str | None
    given: str | None
    gender: str | None
    birth_date: dt.date | None
    deceased_at: dt.datetime | None
    identifiers: tuple[IdentifierRow, ...]


_P = Patient.__table__
_I = PatientIdentifier.__table__
#: One round trip: the patient's columns, once per identifier (or once, with no
#: identifier). Built once: building a statement costs more than running it.
_SUMMARY = (
    select(
        _P.c.id,
        _P.c.family,
        _P.c.given,
        _P.c.gender,
        _P.c.birth_date,
        _P.c.deceased_at,
        _I.c.system,
        _I.c.value,
        _I.c.type_code,
    )
    .select_from(_P.outerjoin(_I, _I.c.patient_id == _P.c.id))
    .where(_P.c.id == bindparam("patient_id"))
    .order_by(_I.c.id)
)


def read_patient_summary(connection: Connection, patient_id: str) -> PatientSummary:
    """Return a patient's summary: what ``GET /api/v1/patients/{id}`` may show.

    Parameters
    ----------
    connection : sqlalchemy.Connection
        Where to read (one query).
    patient_id : str
        The patient's FHIR id.

    Returns
    -------
    PatientSummary

    Raises
    ------
    NotFoundError
        No such patient (the same message as
        :func:`healthos_core.record.service.get_patient`).
    """
    rows = connection.execute(_SUMMARY, {"patient_id": patient_id}).all()
    if not rows:
        raise NotFoundError(f"Patient/{patient_id} does not exist")
    first = rows[0]
    return PatientSummary(
        id=first.id,
        family=first.family,
        given=first.given,
        gender=first.gender,
        birth_date=first.birth_date,
        deceased_at=first.deceased_at,
        identifiers=tuple(
            IdentifierRow(system=row.system, value=row.value, type_code=row.type_code)
            for row in rows
            if row.value is not None
        ),
    )
