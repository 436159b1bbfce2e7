"""Average length of stay (OECD): inpatient days ÷ discharges."""

from __future__ import annotations

import datetime as dt
from typing import Final

from sqlalchemy import func, select

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
from healthos_core.record.entities import Encounter, EncounterClass

__all__ = ["ALOS", "PERIOD_DAYS"]

#: Days of discharges the ALOS of a date covers (the 30 days ending on it).
PERIOD_DAYS: Final = 30


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def compute_alos(ctx: KpiContext) -> Computation:
    """Tally inpatient days and discharges per facility for the 30 days ending each day.

    Inpatient stays are encounters of class ``IMP`` with both a start and an end; a stay
    is counted on its discharge day (``period_end``, UTC) and belongs to the encounter's
    facility (its ``facility_id``, else its service provider). A stay's days are its
    midnights: discharge date − admission date (a same-day stay counts 0 days).
    Keys ``days`` and ``discharges``.
    """
    first = min(ctx.days) - dt.timedelta(days=PERIOD_DAYS - 1)
    since = dt.datetime.combine(first, dt.time.min, dt.UTC)
    rows = ctx.session.execute(
        select(
            func.coalesce(Encounter.facility_id, Encounter.service_provider_id),
            Encounter.period_start,
            Encounter.period_end,
        ).where(
            Encounter.class_code == EncounterClass.IMP.value,
            Encounter.period_start.is_not(None),
            Encounter.period_end >= since,
            Encounter.period_end <= day_end(max(ctx.days)),
        )
    ).all()
    out: dict[dt.date, dict[str, Tally]] = {day: {} for day in ctx.days}
    for facility, start, end in rows:
        if facility is None or start is None or end is None:
            continue
        discharged = _utc(end).date()
        nights = max(0, (discharged - _utc(start).date()).days)
        for day in ctx.days:
            if day - dt.timedelta(days=PERIOD_DAYS - 1) <= discharged <= day:
                tally = out[day].setdefault(facility, Tally())
                tally.add("days", nights)
                tally.add("discharges")
    return out


def evaluate_alos(tally: Tally) -> tuple[float | None, list[BreakdownItem]]:
    """Inpatient days ÷ discharges (2 decimals), with both in the breakdown."""
    discharges = tally.get("discharges")
    return ratio(tally.get("days"), discharges, 2), [
        BreakdownItem("discharges", number(discharges, 0)),
        BreakdownItem("inpatient days", number(tally.get("days"), 0)),
    ]


ALOS: Final = KpiDefinition(
    key="alos",
    label="Average length of stay",
    unit="days",
    better="lower",
    formula="Σ inpatient days (discharge date − admission date) ÷ discharges, inpatient "
    "(IMP) stays discharged in the period",
    source="OECD Health Statistics, average length of stay: days stayed ÷ discharges",
    period=f"discharges in the {PERIOD_DAYS} days ending on day D (UTC)",
    default_target=None,
    compute=compute_alos,
    evaluate=evaluate_alos,
)
