"""API shapes of the finance denial worklist and the finance KPI summary (SPEC §5, §7).

Money is a decimal string with two decimals (``"1012.91"``), never a float.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from reasoning.finance.worklist import WorklistItem
from serving.schemas.suggestions import (
    FactorPublic,
    RecordedActionName,
    SeverityName,
    StatusName,
)

OutcomeName = Literal["fixed", "resubmitted", "appealed", "accepted"]
DenialReasonName = Literal[
    "eligibility",
    "authorization",
    "timely_filing",
    "coding",
    "duplicate",
    "bundling",
    "units",
    "other",
]
Money = str


class WorklistActionCreate(BaseModel):
    """What the biller did about a worklist item, and an optional note."""

    model_config = ConfigDict(extra="forbid")

    outcome: OutcomeName = Field(
        description="fixed, resubmitted or appealed (the suggestion becomes acted); "
        "accepted (the risk is accepted and the item closed: dismissed)"
    )
    note: str | None = Field(default=None, max_length=2000)


class WorklistActionPublic(BaseModel):
    """One audited action on a worklist item: who, in which role, when, outcome, note."""

    action: RecordedActionName
    outcome: OutcomeName | None = Field(
        default=None, description="None for actions taken outside the worklist"
    )
    actor: str = Field(description="Pseudonymous subject of the caller's token")
    role: str
    note: str | None = None
    at: dt.datetime


class WorklistItemPublic(BaseModel):
    """A claim on the denial worklist, with its expected loss and audit trail."""

    suggestion_id: str
    claim_id: str
    payer_id: str | None = None
    payer_name: str | None = None
    facility_id: str | None = None
    amount: Money | None = Field(default=None, examples=["1250.50"])
    currency: str | None = None
    probability: float | None = Field(default=None, description="Calibrated p(denial)")
    expected_loss: Money | None = Field(
        default=None, description="probability × amount, in cents", examples=["1012.91"]
    )
    reason: str | None = Field(default=None, description="Predicted denial reason (CARC group)")
    fix: str = Field(description="The recommended action")
    factors: list[FactorPublic] = Field(default=[], description="Top factors, largest first")
    severity: SeverityName
    summary: str
    status: StatusName
    outcome: OutcomeName | None = Field(default=None, description="Latest recorded outcome")
    created_at: dt.datetime
    actions: list[WorklistActionPublic] = Field(default=[], description="Oldest first")

    @classmethod
    def from_item(cls, item: WorklistItem) -> WorklistItemPublic:
        """Build from a :class:`~reasoning.finance.worklist.WorklistItem`."""
        return cls.model_validate(item.to_dict())


class WorklistPublic(BaseModel):
    """A page of the denial worklist, largest expected loss first; ``count`` ignores paging."""

    data: list[WorklistItemPublic]
    count: int


class LeakageGroupPublic(BaseModel):
    """Open leakage of one group: how many findings and the money at stake."""

    count: int
    amount_at_stake: Money


class PayerLeakageGroupPublic(LeakageGroupPublic):
    """Open leakage of one payer (``payer`` is its name)."""

    payer: str | None = None


class RiskGroupPublic(BaseModel):
    """Open denial risk of one group: claims, their billed total and the expected loss."""

    count: int
    billed_at_risk: Money
    expected_loss: Money


class PayerRiskGroupPublic(RiskGroupPublic):
    """Open denial risk of one payer (``payer`` is its name)."""

    payer: str | None = None


class LeakageSummaryPublic(BaseModel):
    """Open revenue leakage, in total and by kind, payer and facility."""

    count: int
    amount_at_stake: Money
    by_kind: dict[str, LeakageGroupPublic]
    by_payer: dict[str, PayerLeakageGroupPublic] = Field(
        description='Keyed by payer Organization id ("unknown" when none)'
    )
    by_facility: dict[str, LeakageGroupPublic]


class DenialRiskSummaryPublic(BaseModel):
    """Open denial risk, in total and by predicted reason, payer and facility."""

    count: int
    billed_at_risk: Money
    expected_loss: Money
    by_reason: dict[str, RiskGroupPublic]
    by_payer: dict[str, PayerRiskGroupPublic] = Field(
        description='Keyed by payer Organization id ("unknown" when none)'
    )
    by_facility: dict[str, RiskGroupPublic]


class WorkPublic(BaseModel):
    """How many suggestions of a kind are worked and open, from the audit trail."""

    open: int
    acknowledged: int
    acted: int
    dismissed: int
    worked: int = Field(description="acted + dismissed")
    unworked: int = Field(description="open + acknowledged")
    outcomes: dict[str, int] = Field(description="Audited actions by worklist outcome")


class FinanceSummaryPublic(BaseModel):
    """The finance KPIs of the command center (see ``reasoning.finance.summary``)."""

    as_of: dt.datetime
    currency: str | None = Field(description='The one currency, or "mixed", or None')
    revenue_leakage: LeakageSummaryPublic
    denial_risk: DenialRiskSummaryPublic
    work: dict[str, WorkPublic] = Field(
        description="Keyed by kind: finance.denial_risk, finance.revenue_leakage"
    )
