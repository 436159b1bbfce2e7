"""Claims: build from an encounter, scrub, submit, appeal, write off, correct and resubmit.

A claim moves draft → submitted → paid / partial / denied → resubmitted / appealed /
written-off; every move is recorded in its status history with the caller's subject and
role as actor. Submitting runs the scrubber first: when it finds errors, the answer is a
409 problem (``code`` ``claim-scrub-failed``) whose ``issues`` list each blocking edit
with its reason and the X12 CARC/RARC a payer would deny with, and nothing changes.

Roles: ``finance`` and ``admin`` read; ``finance`` builds, submits and acts (see
:mod:`serving.routers.billing`). Scrubbing writes nothing, so readers may scrub.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from healthos_core.billing.claims import (
    appeal_claim,
    build_claim,
    claim_history,
    correct_and_resubmit,
    list_claims,
    scrub_claim,
    submit_claim,
    write_off_claim,
)
from healthos_core.billing.entities import Claim, ClaimDiagnosis, ClaimItem
from healthos_core.errors import NotFoundError
from serving.deps import SessionDep
from serving.routers.billing import BILLING_READERS, BillingWriter
from serving.schemas.billing import (
    ClaimActionCreate,
    ClaimCorrectionCreate,
    ClaimCreate,
    ClaimPublic,
    ClaimScrubPublic,
    ClaimsPublic,
    ClaimStatusHistoriesPublic,
    ClaimStatusHistoryPublic,
    ClaimStatusName,
    ClaimSubmitCreate,
    ScrubFailedProblem,
)
from serving.schemas.common import Offset

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/claims", tags=["claims"], dependencies=BILLING_READERS)

ClaimId = Annotated[str, Path(min_length=1, max_length=64, description="Claim id")]

#: The 409 a submission gets when the scrubber blocks it.
SCRUB_BLOCKED: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ScrubFailedProblem,
        "description": "The scrubber found errors (listed in `issues`), or the claim's "
        "status does not allow this; nothing changed",
    }
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The claim's status does not allow this"}
}


# Read helpers: they belong in ``healthos_core.billing.claims`` (beside ``list_claims``);
# they live here until they move there, so the routes stay one call each.


def get_claim(session: Session, claim_id: str) -> Claim:
    """Return one claim.

    Raises
    ------
    NotFoundError
        No such claim.
    """
    claim = session.get(Claim, claim_id)
    if claim is None:
        raise NotFoundError(f"Claim/{claim_id} does not exist")
    return claim


def claims_public(session: Session, claims: Sequence[Claim]) -> list[ClaimPublic]:
    """Return the API shape of claims, their lines and diagnoses read in two queries."""
    ids = [c.id for c in claims]
    lines: dict[str, list[ClaimItem]] = defaultdict(list)
    diagnoses: dict[str, list[ClaimDiagnosis]] = defaultdict(list)
    if ids:
        for item in session.scalars(select(ClaimItem).where(ClaimItem.claim_id.in_(ids))):
            lines[item.claim_id].append(item)
        for row in session.scalars(select(ClaimDiagnosis).where(ClaimDiagnosis.claim_id.in_(ids))):
            diagnoses[row.claim_id].append(row)
    return [
        ClaimPublic.from_entity(c, lines=lines[c.id], diagnoses=diagnoses[c.id]) for c in claims
    ]


def claim_public(session: Session, claim: Claim) -> ClaimPublic:
    """Return the API shape of one claim with its lines and diagnoses."""
    session.flush()
    return claims_public(session, [claim])[0]


def find_claims(
    session: Session,
    *,
    status: str | None,
    payer_id: str | None,
    patient_id: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Claim], int]:
    """Return a page of :func:`list_claims` and the number of claims matching its filters."""
    claims = list_claims(
        session,
        status=status,
        payer_id=payer_id,
        patient_id=patient_id,
        limit=limit,
        offset=offset,
    )
    conditions: list[ColumnElement[bool]] = [Claim.billing_status.is_not(None)]  # as list_claims
    if status is not None:
        conditions.append(Claim.billing_status == status)
    if payer_id is not None:
        conditions.append(Claim.insurer_id == payer_id)
    if patient_id is not None:
        conditions.append(Claim.patient_id == patient_id)
    count = session.scalar(select(func.count()).select_from(Claim).where(*conditions))
    return claims, int(count or 0)


# --------------------------------------------------------------------------- reads


@router.get("", response_model=ClaimsPublic)
def read_claims(
    *,
    session: SessionDep,
    status: ClaimStatusName | None = None,
    payer: Annotated[str | None, Query(max_length=64, description="Payer Organization")] = None,
    patient: Annotated[
        str | None, Query(max_length=72, description='Patient id or "Patient/<id>"')
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> ClaimsPublic:
    """List claims in the revenue cycle by billing status, payer and patient, newest first."""
    claims, count = find_claims(
        session,
        status=status,
        payer_id=payer,
        patient_id=None if patient is None else patient.removeprefix("Patient/"),
        limit=limit,
        offset=offset,
    )
    return ClaimsPublic(data=claims_public(session, claims), count=count)


@router.get("/{claim_id}", response_model=ClaimPublic)
def read_claim(*, session: SessionDep, claim_id: ClaimId) -> ClaimPublic:
    """Read one claim with its lines and diagnoses."""
    return claim_public(session, get_claim(session, claim_id))


@router.get("/{claim_id}/history", response_model=ClaimStatusHistoriesPublic)
def read_claim_history(*, session: SessionDep, claim_id: ClaimId) -> ClaimStatusHistoriesPublic:
    """List a claim's status changes (who, role, when, why) in the order recorded."""
    rows = claim_history(session, claim_id)
    return ClaimStatusHistoriesPublic(
        data=[ClaimStatusHistoryPublic.from_entity(r) for r in rows], count=len(rows)
    )


@router.post("/{claim_id}/scrub", response_model=ClaimScrubPublic)
def scrub(*, session: SessionDep, claim_id: ClaimId) -> ClaimScrubPublic:
    """Run the scrubber's edits on a claim and return each issue with its reason (no write)."""
    claim = get_claim(session, claim_id)
    return ClaimScrubPublic.from_issues(claim.id, scrub_claim(session, claim))


# --------------------------------------------------------------------------- writes


@router.post(
    "",
    response_model=ClaimPublic,
    status_code=status.HTTP_201_CREATED,
    responses=_CONFLICT,
)
def create_claim(*, session: SessionDep, user: BillingWriter, body: ClaimCreate) -> ClaimPublic:
    """Build a draft claim from an encounter's billable charges (409 if none is billable)."""
    claim = build_claim(
        session,
        encounter_id=body.encounter_id,
        actor=user.subject,
        role=user.role,
        coverage_id=body.coverage_id,
        claim_type=body.claim_type,
        modifiers=body.modifiers,
    )
    return claim_public(session, claim)


@router.post("/{claim_id}/submit", response_model=ClaimPublic, responses=SCRUB_BLOCKED)
def submit(
    *,
    session: SessionDep,
    user: BillingWriter,
    claim_id: ClaimId,
    body: ClaimSubmitCreate | None = None,
) -> ClaimPublic:
    """Scrub and submit a draft claim; 409 with the issues when the scrubber blocks it."""
    body = body or ClaimSubmitCreate()
    claim = submit_claim(
        session,
        claim_id,
        actor=user.subject,
        role=user.role,
        override_edits=body.override_edits,
        reason=body.reason,
    )
    return claim_public(session, claim)


@router.post("/{claim_id}/appeal", response_model=ClaimPublic, responses=_CONFLICT)
def appeal(
    *, session: SessionDep, user: BillingWriter, claim_id: ClaimId, body: ClaimActionCreate
) -> ClaimPublic:
    """Record that a paid, partially paid or denied claim was appealed (reason required)."""
    claim = appeal_claim(session, claim_id, actor=user.subject, role=user.role, reason=body.reason)
    return claim_public(session, claim)


@router.post("/{claim_id}/write-off", response_model=ClaimPublic, responses=_CONFLICT)
def write_off(
    *, session: SessionDep, user: BillingWriter, claim_id: ClaimId, body: ClaimActionCreate
) -> ClaimPublic:
    """Write a claim off: its open payer balance goes to denial write-off (reason required)."""
    claim = write_off_claim(
        session, claim_id, actor=user.subject, role=user.role, reason=body.reason
    )
    return claim_public(session, claim)


@router.post(
    "/{claim_id}/resubmit",
    response_model=ClaimPublic,
    status_code=status.HTTP_201_CREATED,
    responses=SCRUB_BLOCKED,
)
def resubmit(
    *,
    session: SessionDep,
    user: BillingWriter,
    claim_id: ClaimId,
    body: ClaimCorrectionCreate,
) -> ClaimPublic:
    """Send a corrected claim for an adjudicated one; returns the new, submitted claim.

    A scrubber block raises ``ScrubFailedError``: 409 problem details with the ``issues``
    (added by the app's one error handler); the request's transaction is rolled back.
    """
    claim = correct_and_resubmit(
        session,
        claim_id,
        actor=user.subject,
        role=user.role,
        reason=body.reason,
        coverage_id=body.coverage_id,
        pre_auth_ref=body.pre_auth_ref,
        diagnoses=body.diagnoses,
        line_updates=body.line_changes(),
        lines=body.lines,
        override_edits=body.override_edits,
    )
    return claim_public(session, claim)
