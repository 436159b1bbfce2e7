"""Operational KPIs: bed occupancy (KH03), OPD wait, ED 4-hour share (CMS111 median).

They read the census and queue data through :class:`~healthos_core.kpis.sources.KpiSources`
only; without a source they are :class:`~healthos_core.kpis.base.Unavailable` (``null``
with the reason), never estimated.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Final

from healthos_core.kpis.base import (
    BreakdownItem,
    Computation,
    KpiContext,
    KpiDefinition,
    Tally,
    Unavailable,
    day_end,
    number,
    ratio,
)
from healthos_core.kpis.sources import QueueVisitLike

__all__ = ["BED_OCCUPANCY", "ED_WAIT", "OPD_WAIT"]

OPD_SERVICE: Final = "opd_clinic"
ED_SERVICE: Final = "ed_triage"
#: The A&E four-hour standard, in minutes (NHS England).
FOUR_HOURS: Final = 240
_NO_CENSUS: Final = (
    "not available: no bed census source is wired "
    "(healthos_core.kpis.KpiSources.bed_census, e.g. healthos_core.operations.bed_census)"
)
_NO_VISITS: Final = (
    "not available: no queue ticket source is wired "
    "(healthos_core.kpis.KpiSources.queue_visits, e.g. queue_visit_source(queue_status, "
    "ticket_times))"
)


def _minutes(start: dt.datetime, end: dt.datetime) -> Decimal:
    return Decimal(str((end - start).total_seconds())) / 60


def compute_bed_occupancy(ctx: KpiContext) -> Computation:
    """Tally occupied and available (staffed) beds per facility and pool at each day's end.

    Census at 23:59:59.999999 UTC of the day (the midnight snapshot of KH03). Keys
    ``occupied``, ``available`` and ``occupied:<pool>``, ``available:<pool>``.
    """
    census = ctx.sources.bed_census
    if census is None:
        return Unavailable(_NO_CENSUS)
    out: dict[dt.date, dict[str, Tally]] = {}
    for day in ctx.days:
        tallies: dict[str, Tally] = {}
        for pool in census(ctx.session, at=day_end(day)):
            if pool.facility_id is None:
                continue
            tally = tallies.setdefault(pool.facility_id, Tally())
            tally.add("occupied", pool.occupied)
            tally.add("available", pool.available)
            tally.add(f"occupied:{pool.pool}", pool.occupied)
            tally.add(f"available:{pool.pool}", pool.available)
        out[day] = tallies
    return out


def evaluate_bed_occupancy(tally: Tally) -> tuple[float | None, list[BreakdownItem]]:
    """Occupied ÷ available overall (the value) and per pool (the breakdown)."""
    pools = sorted(k.split(":", 1)[1] for k in tally.sums if k.startswith("available:"))
    breakdown = [
        BreakdownItem(pool, ratio(tally.get(f"occupied:{pool}"), tally.get(f"available:{pool}")))
        for pool in pools
    ]
    return ratio(tally.get("occupied"), tally.get("available")), breakdown


def _visits(ctx: KpiContext) -> dict[dt.date, list[QueueVisitLike]] | Unavailable:
    """Return the visits that arrived on each day asked (one call per day)."""
    source = ctx.sources.queue_visits
    if source is None:
        return Unavailable(_NO_VISITS)
    if "visits" not in ctx.memo:
        ctx.memo["visits"] = {
            day: list(
                source(
                    ctx.session,
                    since=dt.datetime.combine(day, dt.time.min, dt.UTC),
                    until=dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, dt.UTC),
                )
            )
            for day in ctx.days
        }
    visits: dict[dt.date, list[QueueVisitLike]] = ctx.memo["visits"]
    return visits


def compute_opd_wait(ctx: KpiContext) -> Computation:
    """Tally OPD waits (arrival → service start) of visits that arrived on each day.

    Keys ``wait_minutes`` (sum), ``seen``, ``within_target`` (at or under the clinic's own
    target), ``left_without_being_seen``.
    """
    visits = _visits(ctx)
    if isinstance(visits, Unavailable):
        return visits
    out: dict[dt.date, dict[str, Tally]] = {}
    for day, day_visits in visits.items():
        tallies: dict[str, Tally] = {}
        for visit in day_visits:
            if visit.service != OPD_SERVICE:
                continue
            tally = tallies.setdefault(visit.facility_id, Tally())
            if visit.left_without_being_seen:
                tally.add("left_without_being_seen")
                continue
            started = visit.service_started_at
            if started is None:
                continue
            wait = _minutes(visit.arrived_at, started)
            tally.add("wait_minutes", wait)
            tally.add("seen")
            target = visit.target_wait_minutes
            if target is not None and wait <= target:
                tally.add("within_target")
        out[day] = tallies
    return out


def evaluate_opd_wait(tally: Tally) -> tuple[float | None, list[BreakdownItem]]:
    """Mean wait in minutes (sum of waits ÷ patients seen) and its breakdown."""
    seen = tally.get("seen")
    return ratio(tally.get("wait_minutes"), seen, 1), [
        BreakdownItem("patients seen", number(seen, 0)),
        BreakdownItem(
            "share seen within their clinic's target", ratio(tally.get("within_target"), seen)
        ),
        BreakdownItem("left without being seen", number(tally.get("left_without_being_seen"), 0)),
    ]


def compute_ed_wait(ctx: KpiContext) -> Computation:
    """Tally ED attendances that arrived on each day and their time in the department.

    Keys ``attendances`` (departed), ``within_4h`` (arrival → departure ≤ 240 min);
    samples ``admit_to_departure`` (minutes, patients with an admit decision).
    """
    visits = _visits(ctx)
    if isinstance(visits, Unavailable):
        return visits
    out: dict[dt.date, dict[str, Tally]] = {}
    for day, day_visits in visits.items():
        tallies: dict[str, Tally] = {}
        for visit in day_visits:
            if visit.service != ED_SERVICE:
                continue
            departed = visit.departed_at
            if departed is None:
                continue
            tally = tallies.setdefault(visit.facility_id, Tally())
            tally.add("attendances")
            if _minutes(visit.arrived_at, departed) <= FOUR_HOURS:
                tally.add("within_4h")
            decision = visit.admit_decision_at
            if decision is not None:
                tally.sample("admit_to_departure", float(_minutes(decision, departed)))
        out[day] = tallies
    return out


def evaluate_ed_wait(tally: Tally) -> tuple[float | None, list[BreakdownItem]]:
    """Share within 4 hours and the median admit-decision-to-departure (CMS111)."""
    attendances = tally.get("attendances")
    return ratio(tally.get("within_4h"), attendances), [
        BreakdownItem("attendances", number(attendances, 0)),
        BreakdownItem("within 4 hours", number(tally.get("within_4h"), 0)),
        BreakdownItem(
            "median admit decision to departure (minutes)",
            number(tally.median("admit_to_departure"), 1),
        ),
    ]


BED_OCCUPANCY: Final = KpiDefinition(
    key="bed_occupancy",
    label="Bed occupancy",
    unit="ratio",
    better="lower",
    formula="occupied beds ÷ available (staffed, not closed) beds, per pool and overall",
    source="NHS England KH03 bed availability and occupancy (overnight beds)",
    period="census at the end of day D (23:59:59 UTC)",
    default_target=0.85,
    compute=compute_bed_occupancy,
    evaluate=evaluate_bed_occupancy,
)
OPD_WAIT: Final = KpiDefinition(
    key="opd_wait",
    label="OPD wait",
    unit="minutes",
    better="lower",
    formula="Σ (service start − arrival) ÷ OPD patients seen, for patients arrived on day D",
    source="Mean outpatient waiting time from queue tickets (arrival to being seen)",
    period="patients who arrived on day D (UTC)",
    default_target=30.0,
    compute=compute_opd_wait,
    evaluate=evaluate_opd_wait,
)
ED_WAIT: Final = KpiDefinition(
    key="ed_wait",
    label="ED within 4 hours",
    unit="ratio",
    better="higher",
    formula="ED attendances with arrival → departure ≤ 4 h ÷ ED attendances (departed); "
    "breakdown: median admit decision → ED departure, admitted patients",
    source="NHS England A&E four-hour standard; CMS111 (Median Admit Decision Time to ED "
    "Departure Time for Admitted Patients)",
    period="attendances that arrived on day D (UTC) and have departed",
    default_target=0.95,
    compute=compute_ed_wait,
    evaluate=evaluate_ed_wait,
)
