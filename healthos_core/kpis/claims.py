"""Claim KPIs (HFMA MAP Keys): initial denial rate and clean-claim rate.

Both count the one population of :func:`healthos_core.billing.reports.remitted_claims`
(initial claims with a posted response), the one ``healthos billing report`` counts, so
the KPIs and the report cannot disagree on what a denial or a clean claim is.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from healthos_core.billing.reports import RemittedClaim, remitted_claims
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

__all__ = ["CLEAN_CLAIM_RATE", "INITIAL_DENIAL_RATE", "PERIOD_DAYS"]

#: Days of remittances a claim rate of a date covers (the 30 days ending on it).
PERIOD_DAYS: Final = 30


def _claims(ctx: KpiContext) -> dict[dt.date, list[RemittedClaim]]:
    """Return the initial claims whose latest response came in the period ending each day."""
    if "remitted" not in ctx.memo:
        ctx.memo["remitted"] = {
            day: remitted_claims(
                ctx.session,
                as_of=day_end(day),
                since=day_end(day - dt.timedelta(days=PERIOD_DAYS)),
            )
            for day in ctx.days
        }
    claims: dict[dt.date, list[RemittedClaim]] = ctx.memo["remitted"]
    return claims


def compute_claim_counts(ctx: KpiContext) -> Computation:
    """Tally remitted initial claims per facility (``Claim.facility_id``) and period.

    Keys ``claims``, ``denied``, ``rejected``, ``corrected``, ``clean``.
    """
    out: dict[dt.date, dict[str, Tally]] = {}
    for day, claims in _claims(ctx).items():
        tallies: dict[str, Tally] = {}
        for claim in claims:
            if claim.facility_id is None:
                continue
            tally = tallies.setdefault(claim.facility_id, Tally())
            tally.add("claims")
            tally.add("denied", int(claim.denied))
            tally.add("rejected", int(claim.rejected))
            tally.add("corrected", int(claim.corrected))
            tally.add("clean", int(claim.clean))
        out[day] = tallies
    return out


def evaluate_denial_rate(tally: Tally) -> tuple[float | None, list[BreakdownItem]]:
    """Denied ÷ remitted initial claims."""
    return ratio(tally.get("denied"), tally.get("claims")), [
        BreakdownItem("initial claims remitted", number(tally.get("claims"), 0)),
        BreakdownItem("denied (whole claim denied or rejected)", number(tally.get("denied"), 0)),
    ]


def evaluate_clean_claim_rate(tally: Tally) -> tuple[float | None, list[BreakdownItem]]:
    """Clean ÷ remitted initial claims."""
    return ratio(tally.get("clean"), tally.get("claims")), [
        BreakdownItem("initial claims remitted", number(tally.get("claims"), 0)),
        BreakdownItem("clean", number(tally.get("clean"), 0)),
        BreakdownItem("rejected by the payer's edits", number(tally.get("rejected"), 0)),
        BreakdownItem("reworked (corrected claim)", number(tally.get("corrected"), 0)),
    ]


_PERIOD = (
    f"initial claims whose payer response was posted in the {PERIOD_DAYS} days ending on day D"
)

INITIAL_DENIAL_RATE: Final = KpiDefinition(
    key="initial_denial_rate",
    label="Initial denial rate",
    unit="ratio",
    better="lower",
    formula="initial claims denied whole or rejected ÷ initial claims remitted (CO-45 "
    "contractual reductions and partial denials are not denials)",
    source="HFMA MAP Keys, initial denial rate; healthos billing report "
    "(healthos_core.billing.reports.remitted_claims)",
    period=_PERIOD,
    default_target=0.05,
    compute=compute_claim_counts,
    evaluate=evaluate_denial_rate,
)
CLEAN_CLAIM_RATE: Final = KpiDefinition(
    key="clean_claim_rate",
    label="Clean-claim rate",
    unit="ratio",
    better="higher",
    formula="initial claims neither rejected by the payer's edits nor reworked by a "
    "corrected claim ÷ initial claims remitted",
    source="HFMA MAP Key CL-1, clean claim rate: claims that pass edits requiring no "
    "manual intervention ÷ claims accepted into the claims processing tool",
    period=_PERIOD,
    default_target=0.95,
    compute=compute_claim_counts,
    evaluate=evaluate_clean_claim_rate,
)
