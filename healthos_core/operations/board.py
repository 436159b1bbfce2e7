"""The queue board and ticket times: as-of reads of the queue tickets (``docs/operations.md``).

:func:`queue_status` is ``GET /api/v1/queues``; :func:`ticket_times` feeds the queue model.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from statistics import fmean
from typing import Final

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from healthos_core.errors import InvalidInputError
from healthos_core.operations import codes as ops
from healthos_core.operations.queues import _as_utc, servers_at
from healthos_core.record.entities import Location, Task
from healthos_core.record.service import _aware_utc

__all__ = ["CURRENT_WAIT_WINDOW", "QueuePointStatus", "TicketTimes", "queue_status", "ticket_times"]

#: Task statuses of tickets that never queued (entered in error, refused, never issued).
_NOT_QUEUED: Final = ("entered-in-error", "rejected", "draft")
#: Window of "current wait": tickets whose service started in the hour before ``at``.
CURRENT_WAIT_WINDOW: Final = dt.timedelta(hours=1)


@dataclass(frozen=True, kw_only=True)
class QueuePointStatus:
    """One queue point on the queue board at a time ``at`` (``GET /api/v1/queues``).

    Attributes
    ----------
    id, name, service, facility_id : str
        The queue point (a Location) and what it serves.
    target_wait_minutes : int
        Its wait-time target.
    waiting : int
        Tickets arrived and neither started nor left at ``at``.
    in_service : int
        Tickets started and not finished at ``at``.
    servers_now : int
        Rostered servers in ``at``'s hour (:func:`servers_at`).
    current_wait_minutes : float or None
        Mean wait (arrival → service start) of tickets started in the hour before ``at``.
    longest_wait_minutes : float or None
        Longest wait so far of the tickets still waiting.
    breaching : bool
        Either wait is above the target.
    """

    id: str
    name: str
    service: str
    facility_id: str | None
    target_wait_minutes: int
    waiting: int
    in_service: int
    servers_now: int
    current_wait_minutes: float | None
    longest_wait_minutes: float | None
    breaching: bool


@dataclass(frozen=True, kw_only=True)
class TicketTimes:
    """The times of one queue ticket (all aware UTC; ``None`` until they happen)."""

    ticket_id: str
    location_id: str
    priority: str | None
    arrived_at: dt.datetime
    called_at: dt.datetime | None
    service_started_at: dt.datetime | None
    service_ended_at: dt.datetime | None
    left_without_being_seen: bool


def _minutes(delta: dt.timedelta) -> float:
    return delta.total_seconds() / 60.0


def queue_status(
    session: Session, *, at: dt.datetime, facility_id: str | None = None
) -> list[QueuePointStatus]:
    """Return every queue point's waits at ``at`` (an as-of read of the tickets' times).

    Two queries for the points and their tickets, one for the rosters. A ticket waits at
    ``at`` from its arrival until its service starts or it leaves (a ticket cancelled
    without a leaving time, or entered in error, is not counted); it is in service from
    the start until the end. ``current_wait_minutes`` is the mean arrival → start of the
    tickets started in the hour before ``at`` (the wait a patient arriving now can
    expect, as the NHS "time to be seen" statistics report it); ``breaching`` is true
    when it or the longest current wait is above the point's target.

    Parameters
    ----------
    session : Session
    at : datetime
        Aware time of the board.
    facility_id : str, optional
        Only the queue points of this facility.

    Returns
    -------
    list of QueuePointStatus
        By facility, then name.

    Raises
    ------
    InvalidInputError
        ``at`` is naive.
    """
    at = _aware_utc(at, "at")
    query = select(Location).where(Location.kind == "queue", Location.status != "inactive")
    if facility_id is not None:
        query = query.where(Location.facility_id == facility_id)
    points = list(session.scalars(query))
    if not points:
        return []
    ids = [p.id for p in points]
    since = at - CURRENT_WAIT_WINDOW
    rows = session.execute(
        select(
            Task.location_id, Task.arrived_at, Task.service_started_at, Task.service_ended_at
        ).where(
            Task.location_id.in_(ids),
            Task.code == ops.QUEUE_TICKET,
            Task.arrived_at <= at,
            Task.status.not_in(_NOT_QUEUED),
            or_(and_(Task.left_at.is_(None), Task.status != "cancelled"), Task.left_at > at),
            or_(
                Task.service_started_at.is_(None),
                Task.service_started_at > since,
                Task.service_ended_at.is_(None),
                Task.service_ended_at > at,
            ),
        )
    ).all()
    waits: dict[str, list[float]] = defaultdict(list)
    waiting: dict[str, list[float]] = defaultdict(list)
    in_service: dict[str, int] = defaultdict(int)
    for row in rows:
        arrived = _as_utc(row.arrived_at)
        started = _as_utc(row.service_started_at)
        ended = _as_utc(row.service_ended_at)
        assert arrived is not None  # noqa: S101 - arrived_at <= at in the query
        if started is None or started > at:
            waiting[row.location_id].append(_minutes(at - arrived))
            continue
        if started > since:
            waits[row.location_id].append(_minutes(started - arrived))
        if ended is None or ended > at:
            in_service[row.location_id] += 1
    servers = servers_at(session, ids, at)
    board = []
    for point in points:
        target = point.target_wait_minutes or 0
        current = fmean(waits[point.id]) if waits[point.id] else None
        longest = max(waiting[point.id]) if waiting[point.id] else None
        board.append(
            QueuePointStatus(
                id=point.id,
                name=point.name or point.id,
                service=point.service_type or "",
                facility_id=point.facility_id,
                target_wait_minutes=target,
                waiting=len(waiting[point.id]),
                in_service=in_service[point.id],
                servers_now=servers[point.id],
                current_wait_minutes=round(current, 2) if current is not None else None,
                longest_wait_minutes=round(longest, 2) if longest is not None else None,
                breaching=any(w is not None and w > target for w in (current, longest)),
            )
        )
    return sorted(board, key=lambda s: (s.facility_id or "", s.name, s.id))


def ticket_times(
    session: Session,
    *,
    location_id: str | None = None,
    since: dt.datetime,
    until: dt.datetime,
) -> list[TicketTimes]:
    """Return the times of the queue tickets that arrived in ``[since, until)``, one query.

    Tickets entered in error (or rejected, or drafts) are left out.

    The input of the queue model (arrival and service rates per hour).

    Parameters
    ----------
    session : Session
    location_id : str, optional
        One queue point; default all.
    since, until : datetime
        Aware bounds of the arrival time.

    Returns
    -------
    list of TicketTimes
        By arrival time, then id.

    Raises
    ------
    InvalidInputError
        Naive bounds, or ``until`` before ``since``.
    """
    since = _aware_utc(since, "since")
    until = _aware_utc(until, "until")
    if until < since:
        raise InvalidInputError("until must not be before since")
    query = select(
        Task.id,
        Task.location_id,
        Task.priority,
        Task.arrived_at,
        Task.called_at,
        Task.service_started_at,
        Task.service_ended_at,
        Task.left_at,
    ).where(
        Task.code == ops.QUEUE_TICKET,
        Task.status.not_in(_NOT_QUEUED),
        Task.arrived_at >= since,
        Task.arrived_at < until,
        Task.location_id.is_not(None),
    )
    if location_id is not None:
        query = query.where(Task.location_id == location_id)
    rows = session.execute(query.order_by(Task.arrived_at, Task.id)).all()
    return [
        TicketTimes(
            ticket_id=row.id,
            location_id=row.location_id,
            priority=row.priority,
            arrived_at=_as_utc(row.arrived_at),  # type: ignore[arg-type]
            called_at=_as_utc(row.called_at),
            service_started_at=_as_utc(row.service_started_at),
            service_ended_at=_as_utc(row.service_ended_at),
            left_without_being_seen=row.left_at is not None,
        )
        for row in rows
    ]
