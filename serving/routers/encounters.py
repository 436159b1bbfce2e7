"""Encounters: list (by patient, status, class) and read with observations.

The list and the read allow the same roles and show the same encounter fields to each
(minimum necessary, :data:`healthos_core.access.RECORD_VIEWS`, ``docs/access.md``):

=========== ============================ ===================== ======================
role        encounters (list and read)   ``reason_code``       observations (read)
=========== ============================ ===================== ======================
clinician   yes                          yes                   yes
nurse       yes                          yes                   yes
finance     yes                          yes (claims need it)  null
operations  yes                          null                  null
admin       yes                          null                  null
others      403                          403                   403
=========== ============================ ===================== ======================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from healthos_core.access import RecordView, record_view
from healthos_core.errors import NotFoundError
from healthos_core.record.entities import Encounter, EncounterClass, Observation
from serving.deps import CurrentUser, SessionDep
from serving.schemas.common import Offset
from serving.schemas.encounters import EncounterDetailPublic, EncounterPublic, EncountersPublic

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


async def encounter_view(user: CurrentUser) -> RecordView:
    """Return what the caller's role sees of encounters; 403 for roles that see none."""
    return record_view(user.role, what="encounters")


EncounterView = Annotated[RecordView, Depends(encounter_view)]


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
    session: Session, encounter_id: str, *, with_observations: bool = True
) -> tuple[Encounter, Sequence[Observation]]:
    """Return an encounter and its observations (by effective time, then id).

    Observations flagged ``entered-in-error`` are included, with their status and
    ``quality_flag``, so the reader sees the record as it is. With
    ``with_observations=False`` none are read (an empty sequence).

    Raises
    ------
    NotFoundError
        If there is no encounter with this id.
    """
    encounter = session.get(Encounter, encounter_id)
    if encounter is None:
        raise NotFoundError(f"no encounter with id {encounter_id!r}")
    if not with_observations:
        return encounter, ()
    observations = session.scalars(
        select(Observation)
        .where(Observation.encounter_id == encounter_id)
        .order_by(Observation.effective_at.nulls_last(), Observation.id)
    ).all()
    return encounter, observations


@router.get("", response_model=EncountersPublic)
def list_encounters(
    *,
    session: SessionDep,
    view: EncounterView,
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
        data=[EncounterPublic.from_entity(e, view) for e in encounters], count=count
    )


@router.get("/{encounter_id}", response_model=EncounterDetailPublic)
def read_encounter(
    *, session: SessionDep, view: EncounterView, encounter_id: EncounterId
) -> EncounterDetailPublic:
    """Read one encounter; its observations, oldest first, for the clinical roles."""
    encounter, observations = get_encounter_with_observations(
        session, encounter_id, with_observations=view.observations
    )
    return EncounterDetailPublic.from_entities(encounter, observations, view)
