"""The morning briefing's content, read from the live record for a UTC day (issue 11 item 5).

:func:`build_briefing` gathers what ``healthos briefing`` and ``GET /api/v1/briefing`` show
(``docs/briefing.md``): every KPI of every scope (:func:`healthos_core.kpis.compute_kpis`),
the bed census per pool, the waits by arrival hour at each queue point, cash posted and the
collections KPI over the last 30 days, and the top open suggestions per audience. Rendering
(HTML, plots, PDF) lives in :mod:`serving.briefing`; this module only reads.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from statistics import fmean
from typing import Final

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from healthos_core import operations
from healthos_core.access import AUDIENCES
from healthos_core.advisory import SuggestionRecord
from healthos_core.billing.money import ledger_currency
from healthos_core.billing.reports import daily_ledger_flows
from healthos_core.db import utcnow
from healthos_core.errors import InvalidInputError
from healthos_core.kpis import KpiReport, Tally, compute_kpis, default_sources
from healthos_core.kpis.base import KpiContext, Unavailable, day_end
from healthos_core.kpis.revenue import COLLECTIONS, COLLECTIONS_DAYS
from healthos_core.operations.beds import BedPool
from healthos_core.vocabulary import SEVERITIES, SuggestionStatus
from reasoning.finance.worklist import expected_loss

__all__ = [
    "TOP_PER_AUDIENCE",
    "Briefing",
    "BriefingSuggestion",
    "CollectionsDay",
    "QueueWaits",
    "build_briefing",
]

#: Suggestions shown per audience.
TOP_PER_AUDIENCE: Final = 5
_HOURS: Final = 24


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueWaits:
    """Waits at one queue point on day D, by hour of arrival (UTC).

    Attributes
    ----------
    location_id, name, service : str
        The queue point (a Location) and its service (``opd_clinic``, ``ed_triage``...).
    target_wait_minutes : int
        Its wait-time target.
    mean_wait_minutes : tuple of (float or None), length 24
        Mean arrival → service start, in minutes, of the tickets that arrived in each hour
        and have started (``None`` for an hour without one).
    seen : tuple of int, length 24
        Those tickets per hour.
    left_without_being_seen : int
        Tickets of the day that left before their service started.
    """

    location_id: str
    name: str
    service: str
    target_wait_minutes: int
    mean_wait_minutes: tuple[float | None, ...]
    seen: tuple[int, ...]
    left_without_being_seen: int


@dataclass(frozen=True, kw_only=True, slots=True)
class CollectionsDay:
    """One day of the collections plot (every facility together).

    Attributes
    ----------
    day : date
    cash : Decimal
        Net cash posted that day (payer and patient payments − refunds), ledger currency.
    collections : float or None
        The collections KPI for the 30 days ending that day (cash ÷ expected, 0..1), as
        :data:`healthos_core.kpis.revenue.COLLECTIONS` computes it; ``None`` without
        expected cash.
    """

    day: dt.date
    cash: Decimal
    collections: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class BriefingSuggestion:
    """One open suggestion as the briefing lists it."""

    id: str
    kind: str
    severity: str
    subject: str
    summary: str
    recommended_action: str
    score: float | None
    band: str | None
    amount_at_stake: Decimal | None
    expected_loss: Decimal | None
    currency: str | None
    facility_id: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Briefing:
    """Everything the morning briefing of a day shows.

    Attributes
    ----------
    date : date
        The UTC day D.
    at : datetime
        The census time: the end of D, or now when D is today.
    generated_at : datetime
    currency : str
        The ledger currency.
    kpis : KpiReport
        Every KPI per facility, network and region, with the day before and a week before.
    bed_pools : list of BedPool
        The bed census at ``at``.
    queue_waits : list of QueueWaits
        The waits of day D per queue point (empty without queue points).
    collections : list of CollectionsDay
        The 30 days ending on D, oldest first.
    suggestions : dict of str to list of BriefingSuggestion
        Audience → its top open suggestions, for the audiences asked (in
        :data:`healthos_core.access.AUDIENCES` order).
    open_counts : dict of str to int
        Audience → how many open suggestions it has in all.
    """

    date: dt.date
    at: dt.datetime
    generated_at: dt.datetime
    currency: str
    kpis: KpiReport
    bed_pools: list[BedPool]
    queue_waits: list[QueueWaits]
    collections: list[CollectionsDay]
    suggestions: dict[str, list[BriefingSuggestion]]
    open_counts: dict[str, int]


def build_briefing(
    session: Session,
    *,
    date: dt.date,
    audiences: Collection[str] = AUDIENCES,
    top: int = TOP_PER_AUDIENCE,
    now: dt.datetime | None = None,
) -> Briefing:
    """Read the morning briefing of the UTC day ``date`` from the live record.

    Parameters
    ----------
    session : Session
        The caller's session (read only).
    date : date
        The UTC day D; not after today.
    audiences : collection of str, default=every audience
        The audiences whose suggestions are listed (the API passes those the caller's
        role may read, :func:`healthos_core.access.readable_audiences`).
    top : int, default=5
        Suggestions per audience, 1 to 100.
    now : datetime, optional
        The current time (default :func:`healthos_core.db.utcnow`).

    Returns
    -------
    Briefing
        KPIs: :func:`~healthos_core.kpis.compute_kpis` (formulas and sources in
        ``docs/kpis.md``). Beds: :func:`~healthos_core.operations.bed_census` at the end of
        D (now, for today). Waits: :func:`~healthos_core.operations.ticket_times` of the
        tickets that arrived on D, wait = service start − arrival. Collections: daily
        cash from :func:`~healthos_core.billing.reports.daily_ledger_flows` and the
        collections KPI of each day. Suggestions: open now and created by the end of D,
        by severity (critical first), then expected loss (p × amount at stake, HFMA-style
        expected value; the finance worklist's order), then score, then newest.

    Raises
    ------
    InvalidInputError
        If ``date`` is after today, ``top`` is outside 1–100 or an audience is unknown.
    """
    now = now or utcnow()
    if date > now.date():
        raise InvalidInputError(f"date {date.isoformat()} is in the future")
    if not 1 <= top <= 100:
        raise InvalidInputError(f"top must be between 1 and 100 (got {top})")
    unknown = sorted(set(audiences) - set(AUDIENCES))
    if unknown:
        raise InvalidInputError(f"unknown audiences {unknown}; known: {', '.join(AUDIENCES)}")
    at = min(day_end(date), now)
    chosen = [a for a in AUDIENCES if a in audiences]
    counts = _open_counts(session, chosen, day_end(date))
    return Briefing(
        date=date,
        at=at,
        generated_at=now,
        currency=ledger_currency(),
        kpis=compute_kpis(session, date=date),
        bed_pools=operations.bed_census(session, at=at),
        queue_waits=_queue_waits(session, date, at),
        collections=_collections(session, date),
        suggestions={a: _top_suggestions(session, a, day_end(date), top) for a in chosen},
        open_counts={a: counts.get(a, 0) for a in chosen},
    )


def _queue_waits(session: Session, date: dt.date, at: dt.datetime) -> list[QueueWaits]:
    points = operations.queue_status(session, at=at)
    if not points:
        return []
    start = dt.datetime.combine(date, dt.time.min, dt.UTC)
    tickets = operations.ticket_times(
        session, since=start, until=min(start + dt.timedelta(days=1), at)
    )
    waits: dict[str, list[list[float]]] = defaultdict(lambda: [[] for _ in range(_HOURS)])
    left: dict[str, int] = defaultdict(int)
    for ticket in tickets:
        if ticket.service_started_at is not None:
            minutes = (ticket.service_started_at - ticket.arrived_at).total_seconds() / 60.0
            waits[ticket.location_id][ticket.arrived_at.hour].append(minutes)
        elif ticket.left_without_being_seen:
            left[ticket.location_id] += 1
    out = []
    for point in points:
        hours = waits.get(point.id, [[] for _ in range(_HOURS)])
        out.append(
            QueueWaits(
                location_id=point.id,
                name=point.name,
                service=point.service,
                target_wait_minutes=point.target_wait_minutes,
                mean_wait_minutes=tuple(round(fmean(h), 1) if h else None for h in hours),
                seen=tuple(len(h) for h in hours),
                left_without_being_seen=left.get(point.id, 0),
            )
        )
    return out


def _collections(session: Session, date: dt.date) -> list[CollectionsDay]:
    days = [date - dt.timedelta(days=n) for n in range(COLLECTIONS_DAYS - 1, -1, -1)]
    ctx = KpiContext(session=session, days=days, sources=default_sources())
    # One read of the ledger for both series: the KPI's computation memoises the flows.
    computed = COLLECTIONS.compute(ctx)
    flows = ctx.memo.get("flows") or daily_ledger_flows(session, as_of=day_end(date))
    cash: dict[dt.date, Decimal] = defaultdict(Decimal)
    for (facility, when), flow in flows.items():
        if facility is not None:
            cash[when] += flow.cash
    out = []
    for day in days:
        value: float | None = None
        if not isinstance(computed, Unavailable):
            value, _ = COLLECTIONS.evaluate(Tally.total(computed[day].values()))
        out.append(CollectionsDay(day=day, cash=cash.get(day, Decimal(0)), collections=value))
    return out


def _open_counts(session: Session, audiences: Sequence[str], until: dt.datetime) -> dict[str, int]:
    if not audiences:
        return {}
    rows = session.execute(
        select(SuggestionRecord.audience, func.count())
        .where(
            SuggestionRecord.audience.in_(audiences),
            SuggestionRecord.status == SuggestionStatus.OPEN.value,
            SuggestionRecord.created_at <= until,
        )
        .group_by(SuggestionRecord.audience)
    )
    return {audience: int(count) for audience, count in rows}


def _top_suggestions(
    session: Session, audience: str, until: dt.datetime, top: int
) -> list[BriefingSuggestion]:
    severity_rank = case(
        {name: rank for rank, name in enumerate(SEVERITIES)},
        value=SuggestionRecord.severity,
        else_=len(SEVERITIES),
    )
    loss = SuggestionRecord.score * SuggestionRecord.amount_at_stake
    records = session.scalars(
        select(SuggestionRecord)
        .where(
            SuggestionRecord.audience == audience,
            SuggestionRecord.status == SuggestionStatus.OPEN.value,
            SuggestionRecord.created_at <= until,
        )
        .order_by(
            severity_rank,
            loss.desc().nulls_last(),
            SuggestionRecord.score.desc().nulls_last(),
            SuggestionRecord.created_at.desc(),
            SuggestionRecord.id,
        )
        .limit(top)
    )
    return [
        BriefingSuggestion(
            id=r.id,
            kind=r.kind,
            severity=r.severity,
            subject=r.subject,
            summary=r.summary,
            recommended_action=r.recommended_action,
            score=r.score,
            band=r.band,
            amount_at_stake=r.amount_at_stake,
            expected_loss=expected_loss(r.score, r.amount_at_stake),
            currency=r.currency,
            facility_id=r.facility_id,
        )
        for r in records
    ]
