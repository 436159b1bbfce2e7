"""Ledger KPIs: collections (cash vs expected) and net days in A/R (HFMA).

Both read :func:`healthos_core.billing.reports.daily_ledger_flows`, the ledger's flows per
facility and day that ``healthos billing report`` uses for its ``net_days_in_ar``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Final

from sqlalchemy import select

from healthos_core.billing.entities import Claim, ClaimResponse
from healthos_core.billing.remittance import AdjudicationCategory, ClaimResponseAdjudication
from healthos_core.billing.reports import (
    AR_DAYS_WINDOW,
    LedgerFlows,
    claim_facility,
    daily_ledger_flows,
)
from healthos_core.billing.reports import net_days_in_ar as ar_days
from healthos_core.kpis.base import (
    BreakdownItem,
    Computation,
    KpiContext,
    KpiDefinition,
    Tally,
    day_end,
    number,
    ratio,
)
from healthos_core.record.entities import Encounter

__all__ = ["COLLECTIONS", "COLLECTIONS_DAYS", "NET_DAYS_IN_AR"]

#: Days of cash and remittances the collections KPI of a date covers.
COLLECTIONS_DAYS: Final = 30


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _flows(ctx: KpiContext) -> dict[tuple[str | None, dt.date], LedgerFlows]:
    if "flows" not in ctx.memo:
        ctx.memo["flows"] = daily_ledger_flows(ctx.session, as_of=day_end(max(ctx.days)))
    flows: dict[tuple[str | None, dt.date], LedgerFlows] = ctx.memo["flows"]
    return flows


def _in(day: dt.date, end: dt.date, days: int) -> bool:
    return end - dt.timedelta(days=days - 1) <= day <= end


def compute_ar_days(ctx: KpiContext) -> Computation:
    """Tally net A/R at each day's end and net patient service revenue of its 90 days.

    Keys ``net_ar`` and ``net_revenue`` (see :class:`~healthos_core.billing.reports.LedgerFlows`).
    """
    out: dict[dt.date, dict[str, Tally]] = {day: {} for day in ctx.days}
    for (facility, when), flow in _flows(ctx).items():
        if facility is None:
            continue
        for day in ctx.days:
            if when > day:
                continue
            tally = out[day].setdefault(facility, Tally())
            tally.add("net_ar", flow.ar)
            if _in(when, day, AR_DAYS_WINDOW):
                tally.add("net_revenue", flow.revenue)
    return out


def evaluate_ar_days(tally: Tally) -> tuple[float | None, list[BreakdownItem]]:
    """Return net A/R ÷ (net revenue of 90 days ÷ 90) (``reports.net_days_in_ar``)."""
    net_ar, revenue = tally.get("net_ar"), tally.get("net_revenue")
    days = ar_days(net_ar, revenue)
    return number(days, 2), [
        BreakdownItem("net A/R", number(net_ar, 2)),
        BreakdownItem(
            f"net patient service revenue, last {AR_DAYS_WINDOW} days", number(revenue, 2)
        ),
        BreakdownItem(
            "average daily net patient service revenue", number(revenue / AR_DAYS_WINDOW, 2)
        ),
    ]


def _underpaid(ctx: KpiContext) -> list[tuple[str, dt.date, Decimal]]:
    """Line amounts allowed but unpaid (``underpaid``), by claim facility and response day."""
    first = min(ctx.days) - dt.timedelta(days=COLLECTIONS_DAYS - 1)
    table = ClaimResponseAdjudication.__table__
    responses = ClaimResponse.__table__
    claims = Claim.__table__
    encounters = Encounter.__table__
    rows = ctx.session.execute(
        select(claim_facility(), responses.c.created, table.c.amount)
        .select_from(
            table.join(responses, table.c.claim_response_id == responses.c.id)
            .join(claims, responses.c.claim_id == claims.c.id)
            .outerjoin(encounters, claims.c.encounter_id == encounters.c.id)
        )
        .where(
            table.c.category == AdjudicationCategory.UNDERPAID.value,
            table.c.item_sequence.is_not(None),
            responses.c.created >= dt.datetime.combine(first, dt.time.min, dt.UTC),
            responses.c.created <= day_end(max(ctx.days)),
        )
    )
    return [
        (facility, _utc(created).date(), Decimal(amount))
        for facility, created, amount in rows
        if facility is not None
    ]


def compute_collections(ctx: KpiContext) -> Computation:
    """Tally cash posted and cash expected per facility for the 30 days ending each day.

    Keys ``cash`` (net cash: payer and patient payments − refunds paid), ``payer_paid``,
    ``patient_paid``, ``underpaid`` (allowed by the contract, not paid) and
    ``patient_responsibility``.
    """
    out: dict[dt.date, dict[str, Tally]] = {day: {} for day in ctx.days}
    for (facility, when), flow in _flows(ctx).items():
        if facility is None:
            continue
        for day in ctx.days:
            if _in(when, day, COLLECTIONS_DAYS):
                tally = out[day].setdefault(facility, Tally())
                tally.add("cash", flow.cash)
                tally.add("payer_paid", flow.payer_paid)
                tally.add("patient_paid", flow.patient_paid)
                tally.add("patient_responsibility", flow.patient_responsibility)
    for facility, when, amount in _underpaid(ctx):
        for day in ctx.days:
            if _in(when, day, COLLECTIONS_DAYS):
                out[day].setdefault(facility, Tally()).add("underpaid", amount)
    return out


def evaluate_collections(tally: Tally) -> tuple[float | None, list[BreakdownItem]]:
    """Cash ÷ expected, expected = payer paid + underpaid + patient responsibility."""
    payer_expected = tally.get("payer_paid") + tally.get("underpaid")
    expected = payer_expected + tally.get("patient_responsibility")
    return ratio(tally.get("cash"), expected), [
        BreakdownItem("cash posted", number(tally.get("cash"), 2)),
        BreakdownItem("from payers", number(tally.get("payer_paid"), 2)),
        BreakdownItem("from patients", number(tally.get("patient_paid"), 2)),
        BreakdownItem("expected", number(expected, 2)),
        BreakdownItem("expected from payers (by contract)", number(payer_expected, 2)),
        BreakdownItem(
            "expected from patients (patient responsibility)",
            number(tally.get("patient_responsibility"), 2),
        ),
    ]


COLLECTIONS: Final = KpiDefinition(
    key="collections",
    label="Collections",
    unit="ratio",
    better="higher",
    formula="cash posted (payer + patient payments − refunds) ÷ expected (payer payment "
    "expected by contract = paid + underpaid, plus patient responsibility), ledger entries "
    "and payer responses of the period",
    source="HealthOS ledger (docs/billing.md); X12 835 CAS groups: CO-45 contractual, PR "
    "patient responsibility (005010X221A1)",
    period=f"the {COLLECTIONS_DAYS} days ending on day D (ledger entry and response dates, UTC)",
    default_target=0.95,
    compute=compute_collections,
    evaluate=evaluate_collections,
    money=True,
)
NET_DAYS_IN_AR: Final = KpiDefinition(
    key="net_days_in_ar",
    label="Net days in A/R",
    unit="days",
    better="lower",
    formula=f"net A/R at the end of day D ÷ (net patient service revenue of the last "
    f"{AR_DAYS_WINDOW} days ÷ {AR_DAYS_WINDOW})",
    source="HFMA MAP Keys, net days in accounts receivable",
    period=f"A/R at the end of day D; revenue of the {AR_DAYS_WINDOW} days ending on day D",
    default_target=45.0,
    compute=compute_ar_days,
    evaluate=evaluate_ar_days,
    money=True,
)
