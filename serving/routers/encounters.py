"""Encounters: list (by patient, status, class) and read with observations.

Roles: listing is for ``clinician``, ``nurse``, ``finance``, ``operations`` and
``admin``; reading one encounter returns its observations (vital signs, lab
results), so it is for the clinical roles ``clinician`` and ``nurse`` and for
``admin`` only (minimum necessary: finance and operations get 403).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from healthos_core.errors import NotFoundError
from healthos_core.record.entities import Encounter, EncounterClass, Observation
from serving.deps import SessionDep, require_roles
from serving.schemas.common import Offset
from serving.schemas.encounters import EncounterDetailPublic, EncounterPublic, EncountersPublic

ENCOUNTER_LIST_ROLES = ("clinician", "nurse", "finance", "operations", "admin")
ENCOUNTER_READ_ROLES = ("clinician", "nurse", "admin")

#: FHIR R4 Encounter.status values.
EncounterStatus = Literal[
    "planned",
    "arrived",
    "triaged",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "unknown",
]

router = APIRouter(prefix="/encounters", tags=["encounters"])

EncounterId = Annotated[str, Path(min_length=1, max_length=64, description="FHIR Encounter id")]


# Read helpers: they belong in ``healthos_core.record.service`` (beside
# ``encounter_timeline``); they live here until they move there, so the routes stay one
# call each.


def find_encounters(
    session: Session,
    *,
    patient_id: str | None = None,
    status: str | None = None,
    class_code: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Encounter], int]:
    """Return a page of encounters (latest start first) and the number matching.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session.
    patient_id : str, optional
        Only this patient's encounters (``"123"`` or ``"Patient/123"``).
    status : str, optional
        FHIR Encounter.status.
    class_code : str, optional
        v3 ActCode class: ``AMB``, ``EMER``, ``IMP`` …
    limit, offset : int
        The page.

    Returns
    -------
    encounters : list of Encounter
    count : int
        Encounters matching, ignoring the page.
    """
    conditions: list[ColumnElement[bool]] = []
    if patient_id is not None:
        conditions.append(Encounter.patient_id == patient_id.removeprefix("Patient/"))
    if status is not None:
        conditions.append(Encounter.status == status)
    if class_code is not None:
        conditions.append(Encounter.class_code == class_code)
    count = session.scalar(select(func.count()).select_from(Encounter).where(*conditions))
    query = (
        select(Encounter)
        .where(*conditions)
        .order_by(Encounter.period_start.desc().nulls_last(), Encounter.id)
        .limit(limit)
        .offset(offset)
    )
    return list(session.scalars(query)), int(count or 0)


def get_encounter_with_observations(
    session: Session, encounter_id: str
) -> tuple[Encounter, Sequence[Observation]]:
    """Return an encounter and its observations (by effective time, then id).

    Observations flagged ``entered-in-error`` are included, with their status and
    ``quality_flag``, so the reader sees the record as it is.

    Raises
    ------
    NotFoundError
        If there is no encounter with this id.
    """
    encounter = session.get(Encounter, encounter_id)
    if encounter is None:
        raise NotFoundError(f"no encounter with id {encounter_id!r}")
    observations = session.scalars(
        select(Observation)
        .where(Observation.encounter_id == encounter_id)
        .order_by(Observation.effective_at.nulls_last(), Observation.id)
    ).all()
    return encounter, observations


@router.get(
    "",
    response_model=EncountersPublic,
    dependencies=[Depends(require_roles(*ENCOUNTER_LIST_ROLES))],
)
def list_encounters(
    *,
    session: SessionDep,
    patient: Annotated[
        str | None,
        Query(max_length=72, description='Patient id, or reference "Patient/<id>"'),
    ] = None,
    status: Annotated[EncounterStatus | None, Query()] = None,
    class_: Annotated[EncounterClass | None, Query(alias="class")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> EncountersPublic:
    """List encounters, latest first, by patient, status and class."""
    encounters, count = find_encounters(
        session,
        patient_id=patient,
        status=status,
        class_code=None if class_ is None else class_.value,
        limit=limit,
        offset=offset,
    )
    return EncountersPublic(
        data=[EncounterPublic.model_validate(e) for e in encounters], count=count
    )


@router.get(
    "/{encounter_id}",
    response_model=EncounterDetailPublic,
    dependencies=[Depends(require_roles(*ENCOUNTER_READ_ROLES))],
)
def read_encounter(*, session: SessionDep, encounter_id: EncounterId) -> EncounterDetailPublic:
    """Read one encounter with its observations, oldest first."""
    encounter, observations = get_encounter_with_observations(session, encounter_id)
    return EncounterDetailPublic.from_entities(encounter, observations)
