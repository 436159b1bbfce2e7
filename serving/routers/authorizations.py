"""Authorisations: request, decide, list (with the India TPA clock) and expire.

US prior authorisation (``prior-auth``) and the India TPA cashless flows
(``cashless-preauth``, ``discharge-auth``), whose IRDAI decision clock (1 hour, 3 hours)
each response shows: due time, breached, signed minutes remaining or overdue, measured
to the decision or, while undecided, to the time of the response.

Roles: ``finance`` and ``admin`` read; ``finance`` requests, decides and expires (see
:mod:`serving.routers.billing`). The request and the decision are recorded with the
caller's subject (``requested_by``, ``decided_by``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from healthos_core.billing.markets.india import TPA_CLOCK_KINDS, TpaClock, tpa_clock
from healthos_core.billing.payers import (
    PriorAuthorization,
    decide_authorization,
    expire_authorizations,
    request_authorization,
)
from healthos_core.db import utcnow
from healthos_core.errors import NotFoundError
from serving.deps import SessionDep
from serving.routers.billing import BILLING_READERS, BILLING_WRITERS, BillingWriter
from serving.schemas.billing import (
    AuthorizationCreate,
    AuthorizationDecision,
    AuthorizationExpire,
    AuthorizationKindName,
    AuthorizationPublic,
    AuthorizationsPublic,
    AuthorizationStatusName,
)
from serving.schemas.common import Offset

router = APIRouter(prefix="/authorizations", tags=["authorizations"], dependencies=BILLING_READERS)

AuthorizationId = Annotated[
    str, Path(min_length=1, max_length=64, description="PriorAuthorization id")
]


# Read helpers: they belong in ``healthos_core.billing.payers`` (beside
# ``find_valid_authorization``); they live here until they move there, so the routes stay
# one call each.


def clock_of(authorization: PriorAuthorization) -> TpaClock | None:
    """Return the IRDAI clock of an India cashless request now, ``None`` for other kinds."""
    if authorization.kind not in TPA_CLOCK_KINDS:
        return None
    now = max(utcnow(), authorization.requested_at)  # a request dated ahead: not started
    return tpa_clock(
        authorization.kind, authorization.requested_at, authorization.decided_at, now=now
    )


def public(authorization: PriorAuthorization) -> AuthorizationPublic:
    """Return the API shape of an authorisation with its clock."""
    return AuthorizationPublic.from_entity(authorization, clock=clock_of(authorization))


def get_authorization(session: Session, authorization_id: str) -> PriorAuthorization:
    """Return one authorisation.

    Raises
    ------
    NotFoundError
        No such authorisation.
    """
    authorization = session.get(PriorAuthorization, authorization_id)
    if authorization is None:
        raise NotFoundError(f"PriorAuthorization/{authorization_id} does not exist")
    return authorization


def find_authorizations(
    session: Session,
    *,
    patient_id: str | None = None,
    payer_id: str | None = None,
    encounter_id: str | None = None,
    kind: str | None = None,
    statuses: list[str] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[PriorAuthorization], int]:
    """Return a page of authorisations (newest request first) and the number matching."""
    conditions = []
    if patient_id is not None:
        conditions.append(PriorAuthorization.patient_id == patient_id)
    if payer_id is not None:
        conditions.append(PriorAuthorization.payer_id == payer_id)
    if encounter_id is not None:
        conditions.append(PriorAuthorization.encounter_id == encounter_id)
    if kind is not None:
        conditions.append(PriorAuthorization.kind == kind)
    if statuses:
        conditions.append(PriorAuthorization.status.in_(statuses))
    count = session.scalar(select(func.count()).select_from(PriorAuthorization).where(*conditions))
    rows = session.scalars(
        select(PriorAuthorization)
        .where(*conditions)
        .order_by(PriorAuthorization.requested_at.desc(), PriorAuthorization.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(count or 0)


@router.get("", response_model=AuthorizationsPublic)
def read_authorizations(
    *,
    session: SessionDep,
    patient: Annotated[
        str | None, Query(max_length=72, description='Patient id or "Patient/<id>"')
    ] = None,
    payer: Annotated[str | None, Query(max_length=64, description="Payer Organization")] = None,
    encounter: Annotated[str | None, Query(max_length=64)] = None,
    kind: AuthorizationKindName | None = None,
    status: Annotated[
        list[AuthorizationStatusName] | None, Query(description="Repeat for several")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> AuthorizationsPublic:
    """List authorisations with their status and, for India cashless kinds, the clock."""
    rows, count = find_authorizations(
        session,
        patient_id=None if patient is None else patient.removeprefix("Patient/"),
        payer_id=payer,
        encounter_id=encounter,
        kind=kind,
        statuses=list(status) if status else None,
        limit=limit,
        offset=offset,
    )
    return AuthorizationsPublic(data=[public(a) for a in rows], count=count)


@router.get("/{authorization_id}", response_model=AuthorizationPublic)
def read_authorization(
    *, session: SessionDep, authorization_id: AuthorizationId
) -> AuthorizationPublic:
    """Read one authorisation with its clock."""
    return public(get_authorization(session, authorization_id))


@router.post("", response_model=AuthorizationPublic, status_code=status.HTTP_201_CREATED)
def create_authorization(
    *, session: SessionDep, user: BillingWriter, body: AuthorizationCreate
) -> AuthorizationPublic:
    """Request authorisation from a payer (status ``requested``; starts an India clock)."""
    authorization = request_authorization(
        session,
        patient_id=body.patient_id,
        payer_id=body.payer_id,
        requested_by=user.subject,
        kind=body.kind,
        coverage_id=body.coverage_id,
        encounter_id=body.encounter_id,
        service_codes=body.service_codes,
        service_categories=body.service_categories,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        requested_at=body.requested_at,
        requested_amount=body.requested_amount,
        currency=body.currency,
        reference_number=body.reference_number,
        reason=body.reason,
    )
    return public(authorization)


@router.post("/expire", response_model=AuthorizationsPublic, dependencies=BILLING_WRITERS)
def expire(*, session: SessionDep, body: AuthorizationExpire | None = None) -> AuthorizationsPublic:
    """Expire authorisations whose window ended before ``as_of``; returns those expired now."""
    as_of = body.as_of if body is not None and body.as_of is not None else utcnow()
    expired = expire_authorizations(session, as_of=as_of)
    return AuthorizationsPublic(data=[public(a) for a in expired], count=len(expired))


@router.post("/{authorization_id}/decision", response_model=AuthorizationPublic)
def decide(
    *,
    session: SessionDep,
    user: BillingWriter,
    authorization_id: AuthorizationId,
    body: AuthorizationDecision,
) -> AuthorizationPublic:
    """Record the payer's decision (approved / denied) or cancel; stops an India clock."""
    authorization = decide_authorization(
        session,
        authorization_id,
        status=body.status,
        actor=user.subject,
        reference_number=body.reference_number,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        reason=body.reason,
        decided_at=body.decided_at,
        approved_amount=body.approved_amount,
    )
    return public(authorization)
