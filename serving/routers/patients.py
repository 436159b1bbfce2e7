"""Patients: list (with identifier search) and read.

Roles: ``clinician``, ``nurse``, ``finance`` (billing needs identity and identifiers),
``operations`` (bed and queue management) and ``admin``. ``leadership`` and
``data_scientist`` work from aggregates and de-identified data, so they get 403.
The ``patient`` role also gets 403: an API token maps only to a role, so it cannot
tell which patient is calling (see ``TODO(patient-access)``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from healthos_core.errors import InvalidInputError
from healthos_core.record.entities import Patient, PatientIdentifier
from healthos_core.record.service import get_patient
from serving.deps import SessionDep, require_roles, run_in_session
from serving.schemas.common import Offset
from serving.schemas.patients import PatientPublic, PatientsPublic

# TODO(patient-access): let the ``patient`` role read its own record once settings map a
# token to a patient id (e.g. ``api_tokens: token -> {role, patient_id}``).
PATIENT_READ_ROLES = ("clinician", "nurse", "finance", "operations", "admin")

router = APIRouter(
    prefix="/patients",
    tags=["patients"],
    dependencies=[Depends(require_roles(*PATIENT_READ_ROLES))],
)

PatientId = Annotated[str, Path(min_length=1, max_length=64, description="FHIR Patient id")]


# Read helper: it belongs in ``healthos_core.record.service`` (beside ``get_patient``);
# it lives here until it moves there, so the routes stay one call each.


def _identifier_condition(identifier: str) -> ColumnElement[bool]:
    """Parse a FHIR token search ``system|value`` (``value`` alone: any system)."""
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
    return Patient.id.in_(select(PatientIdentifier.patient_id).where(*conditions))


def find_patients(
    session: Session, *, identifier: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[Patient], int]:
    """Return a page of patients (by family name, given name, id) and the number matching.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session.
    identifier : str, optional
        FHIR token search: ``system|value``, ``|value`` (no system), ``system|`` (any
        value in the system) or ``value`` (any system).
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
        conditions.append(_identifier_condition(identifier))
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
    """List patients, optionally by identifier (MRN, SSN, ABHA …)."""
    patients, count = find_patients(session, identifier=identifier, limit=limit, offset=offset)
    return PatientsPublic(data=[PatientPublic.from_entity(p) for p in patients], count=count)


@router.get("/{patient_id}", response_model=PatientPublic)
async def read_patient(*, request: Request, patient_id: PatientId) -> PatientPublic:
    """Read one patient with identifiers (polled: one threadpool hop, ``run_in_session``)."""
    return await run_in_session(
        request, lambda session: PatientPublic.from_entity(get_patient(session, patient_id))
    )
