"""Billing totals: A/R aging and the revenue-cycle report; the billing roles.

Every billing router (coverage, authorisations, claims, remittances, ledger, patient
accounts) uses the roles defined here:

=========== ===== ======
role        read  write
=========== ===== ======
finance     yes   yes
admin       yes   no (a finance professional acts)
others      403   403
=========== ===== ======

Writes are recorded with the caller's pseudonymous subject as the actor (and their role
where the record has a role column, as in the claim status history).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime

from healthos_core.billing.ledger import ar_aging
from healthos_core.billing.reports import billing_report
from healthos_core.db import utcnow
from serving.deps import Principal, SessionDep, require_roles
from serving.schemas.billing import ArAgingPublic, BillingReportPublic

BILLING_READ_ROLES = ("finance", "admin")
BILLING_WRITE_ROLES = ("finance",)

#: Router dependencies of every billing router: only the reading roles get in.
BILLING_READERS = [Depends(require_roles(*BILLING_READ_ROLES))]
#: Route dependencies of a write route that does not record its caller.
BILLING_WRITERS = [Depends(require_roles(*BILLING_WRITE_ROLES))]
#: A caller who may change billing data (finance); the write routes take it as ``user``.
BillingWriter = Annotated[Principal, Depends(require_roles(*BILLING_WRITE_ROLES))]

#: ``?as_of=``: an aware datetime, or a date meaning the end of that day (UTC).
AsOfQuery = Annotated[
    AwareDatetime | dt.date | None,
    Query(
        description="An aware datetime (2025-03-01T12:00:00Z) or a date (the end of that "
        "day, UTC); default now"
    ),
]


def as_of_time(value: dt.datetime | dt.date | None) -> dt.datetime | None:
    """Return ``?as_of=`` as an aware UTC datetime: a date becomes the end of that day."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    return dt.datetime.combine(value, dt.time.max, dt.UTC)


router = APIRouter(prefix="/billing", tags=["billing"], dependencies=BILLING_READERS)


@router.get("/ar-aging", response_model=ArAgingPublic)
def read_ar_aging(
    *,
    session: SessionDep,
    as_of: AsOfQuery = None,
    by: Annotated[
        Literal["payer", "patient"], Query(description="Age payer or patient balances")
    ] = "payer",
) -> ArAgingPublic:
    """A/R aging per payer (or patient) in 0-30, 31-60, 61-90, 91-120 and 120+ day buckets."""
    result = ar_aging(session, as_of=as_of_time(as_of) or utcnow(), by=by)
    return ArAgingPublic.from_result(result)


@router.get("/report", response_model=BillingReportPublic)
def read_billing_report(
    *,
    session: SessionDep,
    as_of: AsOfQuery = None,
) -> BillingReportPublic:
    """Revenue-cycle totals, A/R by bucket, initial denial rate by payer and the ledger check."""
    return BillingReportPublic.model_validate(billing_report(session, as_of=as_of_time(as_of)))
