"""Patients: list (with identifier search) and read.

Roles and what each sees (minimum necessary, 45 CFR 164.502(b); the policy is
:data:`healthos_core.access.RECORD_VIEWS`, explained in ``docs/access.md``):

=========== ================================= ===================================
role        identifiers                       gender, birth date, date of death
=========== ================================= ===================================
clinician   MRN, national health number       yes
nurse       MRN, national health number       yes
finance     MRN, payer member ids             yes (claims need them)
operations  MRN                               no
admin       MRN                               no
=========== ================================= ===================================

No role sees SSN, driver's licence or passport numbers, and an identifier search
matches only identifiers the caller's role may see (so it cannot confirm one). The
list and the read of a patient show the same fields to the same role.

``leadership`` and ``data_scientist`` work from aggregates and de-identified data, so
they get 403. The ``patient`` role also gets 403: an API token maps only to a role, so
it cannot tell which patient is calling (see ``TODO(patient-access)``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from healthos_core.access import IdentifierCategory, RecordView, record_view, visible_identifier
from healthos_core.errors import InvalidInputError
from healthos_core.record.entities import Patient, PatientIdentifier
from healthos_core.record.reads import read_patient_summary
from serving.deps import CurrentUser, SessionDep, run_on_connection
from serving.schemas.common import Offset
from serving.schemas.patients import PatientPublic, PatientsPublic

# TODO(patient-access): let the ``patient`` role read its own record once settings map a
# token to a patient id (e.g. ``api_tokens: token -> {role, patient_id}``).

router = APIRouter(prefix="/patients", tags=["patients"])


async def patient_view(user: CurrentUser) -> RecordView:
    """Return what the caller's role sees of patients; 403 for roles that see none."""
    return record_view(user.role, what="patients")


PatientView = Annotated[RecordView, Depends(patient_view)]

PatientId = Annotated[str, Path(min_length=1, max_length=64, description="FHIR Patient id")]


# Read helper: it belongs in ``healthos_core.record.service`` (beside ``get_patient``);
# it lives here until it moves there, so the routes stay one call each.


def _identifier_condition(
    identifier: str, categories: Collection[IdentifierCategory] | None
) -> ColumnElement[bool]:
    """Parse a FHIR token search ``system|value`` (``value`` alone: any system).

    With ``categories``, only identifiers in those categories match.
    """
    if "|" not in identifier:
        system, value = None, identifier
    else:
        system, value = identifier.split("|", 1)
    if not value and not system:
        raise InvalidInputError("identifier must be 'system|value', '|value', 'system|' or 'value'")
    conditions: list[ColumnElement[bool]] = []
    if system is not None:
        conditions.append(PatientIdentifier.system == system)
    if value:
        conditions.append(PatientIdentifier.value == value)
    if categories is not None:
        conditions.append(visible_identifier(categories))
    return Patient.id.in_(select(PatientIdentifier.patient_id).where(*conditions))


def find_patients(
    session: Session,
    *,
    identifier: str | None = None,
    categories: Collection[IdentifierCategory] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Patient], int]:
    """Return a page of patients (by family name, given name, id) and the number matching.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session.
    identifier : str, optional
        FHIR token search: ``system|value``, ``|value`` (no system), ``system|`` (any
        value in the system) or ``value`` (any system).
    categories : collection of IdentifierCategory, optional
        Search only identifiers in these categories (the caller's
        :attr:`~healthos_core.access.RecordView.identifiers`); ``None``: all.
    limit, offset : int
        The page.

    Returns
    -------
    patients : list of Patient
        With identifiers loaded.
    count : int
        Patients matching, ignoring the page.

    Raises
    ------
    InvalidInputError
        If ``identifier`` is just ``"|"``.
    """
    conditions: list[ColumnElement[bool]] = []
    if identifier is not None:
        conditions.append(_identifier_condition(identifier, categories))
    count = session.scalar(select(func.count()).select_from(Patient).where(*conditions))
    query = (
        select(Patient)
        .where(*conditions)
        .order_by(Patient.family.nulls_last(), Patient.given.nulls_last(), Patient.id)
        .limit(limit)
        .offset(offset)
    )
    return list(session.scalars(query)), int(count or 0)


@router.get("", response_model=PatientsPublic)
def list_patients(
    *,
    session: SessionDep,
    view: PatientView,
    identifier: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=400,
            description="FHIR token search: `system|value`, `|value`, `system|` or `value`",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> PatientsPublic:
    """List patients, optionally by an identifier the caller's role may see (MRN …)."""
    patients, count = find_patients(
        session, identifier=identifier, categories=view.identifiers, limit=limit, offset=offset
    )
    data = [PatientPublic.from_entity(p, view) for p in patients]
    return PatientsPublic(data=data, count=count)


@router.get("/{patient_id}", response_model=PatientPublic)
async def read_patient(
    *, request: Request, view: PatientView, patient_id: PatientId
) -> PatientPublic:
    """Read one patient with identifiers (polled: plain rows, one hop, ``run_on_connection``)."""
    return await run_on_connection(
        request,
        lambda connection: PatientPublic.from_entity(
            read_patient_summary(connection, patient_id), view
        ),
    )
