"""Coverage: a patient's insurance, and eligibility on a service date.

Roles: ``finance`` and ``admin`` (see :mod:`serving.routers.billing`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.billing.payers import check_eligibility, coverage_order
from healthos_core.errors import NotFoundError
from healthos_core.record.entities import Coverage, Patient
from serving.deps import SessionDep
from serving.routers.billing import BILLING_READERS
from serving.schemas.billing import CoveragePublic, CoveragesPublic, EligibilityPublic

router = APIRouter(prefix="/coverage", tags=["coverage"], dependencies=BILLING_READERS)

PatientQuery = Annotated[
    str, Query(min_length=1, max_length=72, description='Patient id or "Patient/<id>"')
]


# Read helper: it belongs in ``healthos_core.billing.payers`` (beside
# ``check_eligibility``); it lives here until it moves there, so the route stays one call.


def find_coverages(session: Session, patient_id: str) -> list[tuple[Coverage, int | None]]:
    """Return a patient's coverages with their FHIR order, primary first, then latest start.

    Raises
    ------
    NotFoundError
        No such patient.
    """
    if session.get(Patient, patient_id) is None:
        raise NotFoundError(f"Patient/{patient_id} does not exist")
    coverages = session.scalars(select(Coverage).where(Coverage.patient_id == patient_id))
    ordered = [(c, coverage_order(c)) for c in coverages]
    far = dt.datetime.min.replace(tzinfo=dt.UTC)
    ordered.sort(key=lambda pair: pair[0].period_start or far, reverse=True)
    ordered.sort(key=lambda pair: pair[1] if pair[1] is not None else 1)
    return ordered


@router.get("", response_model=CoveragesPublic)
def read_coverages(*, session: SessionDep, patient: PatientQuery) -> CoveragesPublic:
    """List a patient's coverages, primary first."""
    rows = find_coverages(session, patient.removeprefix("Patient/"))
    return CoveragesPublic(
        data=[CoveragePublic.from_entity(c, order=order) for c, order in rows], count=len(rows)
    )


@router.get("/eligibility", response_model=EligibilityPublic)
def read_eligibility(
    *,
    session: SessionDep,
    patient: PatientQuery,
    on: Annotated[dt.date, Query(description="Service date")],
    payer: Annotated[
        str | None, Query(max_length=64, description="Only coverage with this payer")
    ] = None,
) -> EligibilityPublic:
    """Check whether a coverage of the patient is active on a service date (primary first)."""
    result = check_eligibility(
        session, patient_id=patient.removeprefix("Patient/"), on=on, payer_id=payer
    )
    return EligibilityPublic.from_result(result)
