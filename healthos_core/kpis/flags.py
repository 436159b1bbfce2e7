"""KPIs over the stored suggestions: unbilled amount (leakage) and open clinical flags.

Read from the suggestion table (:class:`~healthos_core.advisory.SuggestionRecord`) as
stored, with each suggestion's status at the end of the day from its audit trail
(:func:`~healthos_core.suggestion_history.statuses_at`); core never imports the scorers.
"Open" is not yet worked: ``open`` or ``acknowledged``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import or_, select

from healthos_core.advisory import ACTIVE_STATUSES, SuggestionRecord
from healthos_core.kpis.base import (
    BreakdownItem,
    Computation,
    KpiContext,
    KpiDefinition,
    Tally,
    day_end,
    number,
)
from healthos_core.suggestion_history import statuses_at
from healthos_core.vocabulary import SEVERITIES

__all__ = ["OPEN_CLINICAL_FLAGS", "REVENUE_LEAKAGE_KIND", "UNBILLED_AMOUNT"]

#: Kind of the revenue-leakage scorer's suggestions (SPEC §5).
REVENUE_LEAKAGE_KIND: Final = "finance.revenue_leakage"
#: Prefix of the clinical suggestion kinds (``clinical.news2``, ``clinical.aki`` ...).
CLINICAL_PREFIX: Final = "clinical."
#: Clinical bands in display order (NEWS2 bands first); others follow alphabetically.
BANDS: Final = ("high", "medium", "low-medium", "low")


def _open_rows(ctx: KpiContext) -> dict[dt.date, list[Any]]:
    """Leakage and clinical suggestions made by each day's end and open then."""
    if "suggestions" in ctx.memo:
        cached: dict[dt.date, list[Any]] = ctx.memo["suggestions"]
        return cached
    rows = ctx.session.execute(
        select(
            SuggestionRecord.id,
            SuggestionRecord.kind,
            SuggestionRecord.facility_id,
            SuggestionRecord.band,
            SuggestionRecord.severity,
            SuggestionRecord.amount_at_stake,
            SuggestionRecord.created_at,
        ).where(
            or_(
                SuggestionRecord.kind == REVENUE_LEAKAGE_KIND,
                SuggestionRecord.kind.startswith(CLINICAL_PREFIX),
            ),
            SuggestionRecord.facility_id.is_not(None),
            SuggestionRecord.created_at <= day_end(max(ctx.days)),
        )
    ).all()
    out: dict[dt.date, list[Any]] = {}
    for day in ctx.days:
        end = day_end(day)
        made = [r for r in rows if _utc(r.created_at) <= end]
        status = statuses_at(ctx.session, [r.id for r in made], end)
        out[day] = [r for r in made if status.get(r.id, "open") in ACTIVE_STATUSES]
    ctx.memo["suggestions"] = out
    return out


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def compute_unbilled(ctx: KpiContext) -> Computation:
    """Tally open leakage findings per facility: ``count``, ``amount`` and ``amount:<band>``."""
    out: dict[dt.date, dict[str, Tally]] = {}
    for day, rows in _open_rows(ctx).items():
        tallies: dict[str, Tally] = {}
        for row in rows:
            if row.kind != REVENUE_LEAKAGE_KIND:
                continue
            tally = tallies.setdefault(row.facility_id, Tally())
            amount = Decimal(row.amount_at_stake or 0)
            tally.add("count")
            tally.add("amount", amount)
            tally.add(f"amount:{row.band or 'unknown'}", amount)
        out[day] = tallies
    return out


def evaluate_unbilled(tally: Tally) -> tuple[float | None, list[BreakdownItem]]:
    """Return the summed amount at stake, and per leakage kind."""
    kinds = sorted(k.split(":", 1)[1] for k in tally.sums if k.startswith("amount:"))
    return number(tally.get("amount"), 2), [
        BreakdownItem("open findings", number(tally.get("count"), 0)),
        *(BreakdownItem(kind, number(tally.get(f"amount:{kind}"), 2)) for kind in kinds),
    ]


def compute_clinical_flags(ctx: KpiContext) -> Computation:
    """Tally open clinical suggestions per facility: ``count``, ``band:<b>``, ``severity:<s>``."""
    out: dict[dt.date, dict[str, Tally]] = {}
    for day, rows in _open_rows(ctx).items():
        tallies: dict[str, Tally] = {}
        for row in rows:
            if not row.kind.startswith(CLINICAL_PREFIX):
                continue
            tally = tallies.setdefault(row.facility_id, Tally())
            tally.add("count")
            tally.add(f"band:{row.band or 'none'}")
            tally.add(f"severity:{row.severity}")
        out[day] = tallies
    return out


def evaluate_clinical_flags(tally: Tally) -> tuple[float | None, list[BreakdownItem]]:
    """Return the number of open flags, per band (then per severity) in the breakdown."""
    bands = [k.split(":", 1)[1] for k in tally.sums if k.startswith("band:")]
    ordered = [b for b in BANDS if b in bands] + sorted(set(bands) - set(BANDS))
    severities = [s for s in SEVERITIES if f"severity:{s}" in tally.sums]
    return number(tally.get("count"), 0), [
        *(BreakdownItem(band, number(tally.get(f"band:{band}"), 0)) for band in ordered),
        *(
            BreakdownItem(f"severity {s}", number(tally.get(f"severity:{s}"), 0))
            for s in severities
        ),
    ]


UNBILLED_AMOUNT: Final = KpiDefinition(
    key="unbilled_amount",
    label="Unbilled amount",
    unit="currency",
    better="lower",
    formula="Σ amount_at_stake of open finance.revenue_leakage suggestions (as stored)",
    source="HealthOS revenue-leakage findings (docs/finance.md): missed charges, unbilled "
    "encounters, late charges, underpayments, unworked denials",
    period="findings made by the end of day D and still open then",
    default_target=None,
    compute=compute_unbilled,
    evaluate=evaluate_unbilled,
    money=True,
)
OPEN_CLINICAL_FLAGS: Final = KpiDefinition(
    key="open_clinical_flags",
    label="Open clinical flags",
    unit="count",
    better="lower",
    formula="number of open clinical.* suggestions (not yet acted on, dismissed or "
    "resolved), by band",
    source="HealthOS clinical suggestions (docs/suggestions.md): NEWS2 (RCP 2017), "
    "SIRS, qSOFA, KDIGO AKI, deterioration and readmission models",
    period="flags raised by the end of day D and still open then",
    default_target=None,
    compute=compute_clinical_flags,
    evaluate=evaluate_clinical_flags,
)
