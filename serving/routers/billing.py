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
from pydantic import BeforeValidator, WithJsonSchema

from healthos_core.billing.ledger import ar_aging
from healthos_core.billing.reports import billing_report
from healthos_core.db import utcnow
from healthos_core.fhir.refs import parse_as_of
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


def _as_of_rule(value: object) -> object:
    """Validate ``?as_of=`` by the CLI's ``--as-of`` rule (a ValueError becomes the 422)."""
    return parse_as_of(value, name="as_of") if isinstance(value, str) else value


#: ``?as_of=``: an ISO date (the end of that day, UTC) or a date-time with its zone, parsed
#: by :func:`healthos_core.fhir.refs.parse_as_of`; anything else is a 422 naming as_of.
AsOfQuery = Annotated[
    dt.datetime | None,
    BeforeValidator(_as_of_rule),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}
    ),
    Query(
        description="An ISO date (2025-03-01: the end of that day, UTC) or a date-time with "
        "its zone (2025-03-01T12:00:00Z); default now",
    ),
]


def as_of_time(value: dt.datetime | None) -> dt.datetime | None:
    """Return a route's ``as_of`` (parsed by :data:`AsOfQuery`) as aware UTC; ``None``: now."""
    return None if value is None else value.astimezone(dt.UTC)


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
