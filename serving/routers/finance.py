"""The finance denial worklist and the finance KPI summary (GitHub issue 5, items 3 and 5).

* ``GET /finance/worklist``: denial-risk suggestions ranked by expected loss
  (p(denial) × claim total), filtered by payer, facility and predicted reason.
* ``POST /finance/worklist/{suggestion_id}/actions``: record what was done (``fixed``,
  ``resubmitted``, ``appealed`` or ``accepted``) with a note; audited with the caller's
  pseudonymous subject, role and time (:mod:`reasoning.finance.worklist`).
* ``GET /finance/summary``: open leakage and denial risk by kind/reason, payer and
  facility, and worked-vs-open counts (:mod:`reasoning.finance.summary`).

=========== ======================= =====================
role        worklist, summary (GET)  worklist actions (POST)
=========== ======================= =====================
finance     yes                     yes
leadership  yes                     403
admin       yes                     403
others      403                     403
=========== ======================= =====================

Who may record an outcome is the suggestions rule (:mod:`healthos_core.access`): the
roles that may act on finance suggestions. ``admin``, barred from acting on suggestions,
is barred here too; the lifecycle is the advisory one (``docs/suggestions.md``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from healthos_core.access import roles_acting_for
from reasoning.finance.summary import finance_summary
from reasoning.finance.worklist import OPEN_STATUSES, record_worklist_action, worklist_page
from serving.deps import Principal, SessionDep, require_roles
from serving.routers.billing import AsOfQuery, as_of_time
from serving.schemas.common import Offset
from serving.schemas.finance import (
    DenialReasonName,
    FinanceSummaryPublic,
    WorklistActionCreate,
    WorklistItemPublic,
    WorklistPublic,
)
from serving.schemas.suggestions import StatusName

FINANCE_READ_ROLES = ("finance", "leadership", "admin")
#: The roles that may act on finance suggestions (the one rule; not admin).
FINANCE_ACT_ROLES = roles_acting_for("finance")

FinanceReader = Annotated[Principal, Depends(require_roles(*FINANCE_READ_ROLES))]
FinanceActor = Annotated[Principal, Depends(require_roles(*FINANCE_ACT_ROLES))]

router = APIRouter(prefix="/finance", tags=["finance"])

SuggestionId = Annotated[
    str, Path(min_length=1, max_length=64, description="The denial-risk suggestion's id")
]


@router.get("/worklist", response_model=WorklistPublic)
def read_worklist(
    *,
    session: SessionDep,
    user: FinanceReader,
    payer: Annotated[
        str | None,
        Query(min_length=1, max_length=255, description="Payer Organization id or name"),
    ] = None,
    facility: Annotated[
        str | None, Query(min_length=1, max_length=64, description="Facility Organization id")
    ] = None,
    reason: Annotated[
        DenialReasonName | None, Query(description="Predicted denial reason (CARC group)")
    ] = None,
    status: Annotated[
        list[StatusName] | None,
        Query(description="Repeat for several; default open and acknowledged"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> WorklistPublic:
    """List the denial worklist, largest expected loss (p(denial) × amount) first."""
    items, count = worklist_page(
        session,
        payer=payer,
        facility=facility,
        reason=reason,
        status=OPEN_STATUSES if status is None else status,
        limit=limit,
        offset=offset,
    )
    return WorklistPublic(data=[WorklistItemPublic.from_item(i) for i in items], count=count)


@router.post("/worklist/{suggestion_id}/actions", response_model=WorklistItemPublic)
def record_action(
    *,
    session: SessionDep,
    user: FinanceActor,
    suggestion_id: SuggestionId,
    body: WorklistActionCreate,
) -> WorklistItemPublic:
    """Record the outcome of working a claim (fixed, resubmitted, appealed, accepted).

    ``accepted`` closes the item (the suggestion is dismissed); the others mark it acted
    on, and later steps of the same work are recorded as notes with their outcome
    (``accepted`` after acting, or anything after ``accepted``, is 409). The response is
    the item with its audit trail.
    """
    item = record_worklist_action(
        session,
        suggestion_id,
        outcome=body.outcome,
        actor=user.subject,
        role=user.role,
        note=body.note,
    )
    return WorklistItemPublic.from_item(item)


@router.get("/summary", response_model=FinanceSummaryPublic)
def read_finance_summary(
    *, session: SessionDep, user: FinanceReader, as_of: AsOfQuery = None
) -> FinanceSummaryPublic:
    """Open leakage and denial risk by kind, payer and facility; worked-vs-open counts."""
    return FinanceSummaryPublic.model_validate(finance_summary(session, as_of=as_of_time(as_of)))
