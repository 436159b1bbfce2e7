"""Arrival rate, service rate, servers and waits per queue point, weekday and hour, from tickets.

The queue model needs, for each queue point and local hour, λ (arrivals per hour), μ
(services per hour per server) and the servers at work. They are estimated from the queue
tickets the record keeps (``healthos_core.operations.ticket_times`` returns them as
``TicketTimes``; anything with the attributes of :class:`TicketLike` will do):

* λ for (weekday, hour) = tickets arriving in that local hour ÷ how many such hours the
  history covers (an hour with no arrival counts: it is a zero, not a gap). The maximum
  likelihood estimate of a Poisson rate is the count over the exposure (e.g. Law 2015, §6.5).
* μ = completed services ÷ their total service time (the MLE of an exponential rate), by the
  hour service started; a queue point's pooled μ is used for an hour without completions.
* busy servers = server-hours in service ÷ hours (the offered load actually carried);
  peak servers = most patients in service at once in any such hour, a floor for the servers
  on duty.
* observed mean wait = mean of service start − arrival, by arrival hour.

Weekday and hour are local to ``tz`` (clinics keep local hours; daylight saving handled by
``zoneinfo``). Weekday 0 is Monday, as :meth:`datetime.weekday`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol

from reasoning.queues.errors import QueueInputError

__all__ = [
    "HourlyEstimate",
    "ProfileHour",
    "TicketLike",
    "estimate_hourly",
    "hourly_profile",
]

_HOUR = timedelta(hours=1)
_STEP = timedelta(minutes=15)  # finest UTC offset granularity in use (e.g. +05:45)


class TicketLike(Protocol):
    """The shape of a queue ticket's times (``healthos_core.operations.TicketTimes`` fits).

    Datetimes are timezone-aware; ``None`` where the ticket did not reach that step.
    """

    @property
    def location_id(self) -> str:
        """The queue point (Location id)."""

    @property
    def priority(self) -> str | None:
        """The triage priority (FHIR ``Task.priority``), if any."""

    @property
    def arrived_at(self) -> datetime:
        """When the patient joined the queue."""

    @property
    def service_started_at(self) -> datetime | None:
        """When service started."""

    @property
    def service_ended_at(self) -> datetime | None:
        """When service ended."""

    @property
    def left_without_being_seen(self) -> bool:
        """Whether the patient left the queue before service."""


@dataclass(frozen=True)
class HourlyEstimate:
    """One queue point's rates in one local (weekday, hour) slot over the history.

    Attributes
    ----------
    location_id : str
    weekday : int
        0 = Monday … 6 = Sunday, local.
    hour : int
        0 … 23, local.
    occurrences : int
        How many such local hours the history covers (the exposure).
    arrivals : int
        Tickets that arrived in those hours.
    arrival_rate : float
        λ, arrivals per hour (``arrivals / occurrences``).
    completed_services : int
        Services started in those hours and ended.
    service_hours : float
        Their total service time, hours.
    service_rate : float or None
        μ per hour per server (``completed_services / service_hours``); None without
        completions.
    waits : int
        Tickets arriving in those hours whose service started.
    mean_wait_minutes : float or None
        Their mean wait, minutes; None without any.
    left_without_being_seen : int
        Tickets arriving in those hours that left without being seen.
    busy_servers : float
        Mean number of patients in service during those hours.
    peak_servers : int
        Most patients in service at once in any of those hours.
    """

    location_id: str
    weekday: int
    hour: int
    occurrences: int
    arrivals: int
    arrival_rate: float
    completed_services: int
    service_hours: float
    service_rate: float | None
    waits: int
    mean_wait_minutes: float | None
    left_without_being_seen: int
    busy_servers: float
    peak_servers: int


@dataclass(frozen=True)
class ProfileHour:
    """One local hour of a queue point's usual profile (pooled over chosen weekdays).

    Attributes
    ----------
    hour : int
        0 … 23, local.
    arrival_rate : float
        λ per hour.
    service_rate : float or None
        μ per hour per server; the queue point's pooled μ when this hour had no completed
        service; None when the point has none at all.
    mean_wait_minutes : float or None
        Observed mean wait of patients arriving in this hour.
    busy_servers : float
        Mean patients in service.
    peak_servers : int
        Most patients in service at once.
    occurrences : int
        Hours of history pooled.
    """

    hour: int
    arrival_rate: float
    service_rate: float | None
    mean_wait_minutes: float | None
    busy_servers: float
    peak_servers: int
    occurrences: int


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise QueueInputError(name, value, "must be a timezone-aware datetime")
    return value.astimezone(UTC)


def _slot(moment: datetime, tz: tzinfo) -> tuple[datetime, int, int]:
    """Return the local hour of ``moment``: (its start as UTC, weekday, hour)."""
    local = moment.astimezone(tz)
    start = local.replace(minute=0, second=0, microsecond=0)
    return start.astimezone(UTC), local.weekday(), local.hour


@dataclass
class _Slot:
    arrivals: int = 0
    completed: int = 0
    service_seconds: float = 0.0
    waits: int = 0
    wait_seconds: float = 0.0
    lwbs: int = 0
    busy_seconds: float = 0.0
    peak: int = 0


def estimate_hourly(
    tickets: Iterable[TicketLike],
    *,
    tz: tzinfo,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[HourlyEstimate]:
    """Estimate λ, μ, servers and the observed wait per queue point, weekday and local hour.

    Parameters
    ----------
    tickets : iterable of TicketLike
        Queue tickets with aware datetimes (see :class:`TicketLike`).
    tz : tzinfo
        The queue points' local time zone, e.g. ``ZoneInfo("Africa/Nairobi")``.
    since, until : datetime, optional
        The history's span ``[since, until)`` (aware). Defaults: local midnight of the first
        arrival's day and local midnight after the last arrival's day. Hours of the span with
        no arrival count as exposure.

    Returns
    -------
    list of HourlyEstimate
        One per (location, weekday, hour) that the span covers, for every location that has
        a ticket, sorted by location, weekday, hour.

    Raises
    ------
    QueueInputError
        If a datetime is naive, ``until <= since``, or a ticket's service ends before it
        starts or starts before the ticket arrived.
    """
    items = list(tickets)
    for ticket in items:
        _aware("arrived_at", ticket.arrived_at)
        if ticket.service_started_at is not None:
            started = _aware("service_started_at", ticket.service_started_at)
            if started < _aware("arrived_at", ticket.arrived_at):
                raise QueueInputError(
                    "service_started_at", ticket.service_started_at, "is before arrived_at"
                )
            if ticket.service_ended_at is not None and (
                _aware("service_ended_at", ticket.service_ended_at) < started
            ):
                raise QueueInputError(
                    "service_ended_at", ticket.service_ended_at, "is before service_started_at"
                )
    if not items:
        return []
    if since is None:
        first = min(t.arrived_at for t in items).astimezone(tz)
        since = first.replace(hour=0, minute=0, second=0, microsecond=0)
    if until is None:
        last = max(t.arrived_at for t in items).astimezone(tz)
        until = (last + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = _aware("since", since), _aware("until", until)
    if end <= start:
        raise QueueInputError("until", until, "must be after since")

    # Exposure: the distinct local hours in [start, end), by (weekday, hour).
    hours_seen: dict[datetime, tuple[int, int]] = {}
    moment = start
    while moment < end:
        slot_start, weekday, hour = _slot(moment, tz)
        hours_seen[slot_start] = (weekday, hour)
        moment += _STEP
    exposure: dict[tuple[int, int], int] = defaultdict(int)
    for key in hours_seen.values():
        exposure[key] += 1

    by_location: dict[str, list[TicketLike]] = defaultdict(list)
    for ticket in items:
        by_location[ticket.location_id].append(ticket)

    results: list[HourlyEstimate] = []
    for location_id in sorted(by_location):
        slots: dict[tuple[int, int], _Slot] = defaultdict(_Slot)
        peaks: dict[datetime, int] = defaultdict(int)  # per concrete local hour
        events: list[tuple[datetime, int]] = []
        for ticket in by_location[location_id]:
            arrived = ticket.arrived_at.astimezone(UTC)
            if not start <= arrived < end:
                continue
            _, weekday, hour = _slot(arrived, tz)
            slot = slots[weekday, hour]
            slot.arrivals += 1
            if ticket.left_without_being_seen and ticket.service_started_at is None:
                slot.lwbs += 1
            if ticket.service_started_at is None:
                continue
            started = ticket.service_started_at.astimezone(UTC)
            slot.waits += 1
            slot.wait_seconds += (started - arrived).total_seconds()
            if ticket.service_ended_at is None:
                continue
            ended = ticket.service_ended_at.astimezone(UTC)
            _, s_weekday, s_hour = _slot(started, tz)
            service_slot = slots[s_weekday, s_hour]
            service_slot.completed += 1
            service_slot.service_seconds += (ended - started).total_seconds()
            # Busy time split across the local hours the service spans.
            cursor = started
            while cursor < ended:
                hour_start, c_weekday, c_hour = _slot(cursor, tz)
                boundary = min(hour_start + _HOUR, ended)
                slots[c_weekday, c_hour].busy_seconds += (boundary - cursor).total_seconds()
                events.append((cursor, 0))  # probe: count in service at this hour's start
                cursor = boundary
            events.append((started, 1))
            events.append((ended, -1))
        # Sweep: ends before starts at equal times; probes after both.
        order = {-1: 0, 1: 1, 0: 2}
        in_service = 0
        for moment, delta in sorted(events, key=lambda e: (e[0], order[e[1]])):
            in_service += delta
            hour_start, _, _ = _slot(moment, tz)
            peaks[hour_start] = max(peaks[hour_start], in_service)
        for hour_start, peak in peaks.items():
            seen = hours_seen.get(hour_start)
            if seen is not None:
                slots[seen].peak = max(slots[seen].peak, peak)
        for (weekday, hour), occurrences in sorted(exposure.items()):
            slot = slots.get((weekday, hour), _Slot())
            service_hours = slot.service_seconds / 3600
            results.append(
                HourlyEstimate(
                    location_id=location_id,
                    weekday=weekday,
                    hour=hour,
                    occurrences=occurrences,
                    arrivals=slot.arrivals,
                    arrival_rate=slot.arrivals / occurrences,
                    completed_services=slot.completed,
                    service_hours=service_hours,
                    service_rate=slot.completed / service_hours if service_hours > 0 else None,
                    waits=slot.waits,
                    mean_wait_minutes=slot.wait_seconds / 60 / slot.waits if slot.waits else None,
                    left_without_being_seen=slot.lwbs,
                    busy_servers=slot.busy_seconds / 3600 / occurrences,
                    peak_servers=slot.peak,
                )
            )
    return results


def hourly_profile(
    estimates: Sequence[HourlyEstimate],
    *,
    location_id: str,
    weekdays: Collection[int] | None = None,
) -> tuple[ProfileHour, ...]:
    """Return a queue point's usual 24-hour profile, pooled over the chosen weekdays.

    Parameters
    ----------
    estimates : sequence of HourlyEstimate
        From :func:`estimate_hourly`.
    location_id : str
        The queue point.
    weekdays : collection of int, optional
        Weekdays to pool (0 = Monday); default all seven. Pass ``{day.weekday()}`` for the
        usual profile of that weekday.

    Returns
    -------
    tuple of ProfileHour
        Hours 0 … 23 in order. Pooling is exposure-weighted: λ = Σ arrivals ÷ Σ hours,
        μ = Σ completions ÷ Σ service time (the point's pooled μ for an hour without
        completions), the mean wait weighted by the waits observed.

    Raises
    ------
    QueueInputError
        If a weekday is not an integer 0 … 6, or no estimate matches the location.
    """
    chosen = set(range(7)) if weekdays is None else set(weekdays)
    if not chosen <= set(range(7)):
        raise QueueInputError("weekdays", weekdays, "must be integers 0 (Monday) to 6")
    mine = [e for e in estimates if e.location_id == location_id and e.weekday in chosen]
    if not mine:
        raise QueueInputError("location_id", location_id, "has no estimate on those weekdays")
    pooled_hours = sum(e.service_hours for e in mine)
    pooled_rate = sum(e.completed_services for e in mine) / pooled_hours if pooled_hours else None
    profile: list[ProfileHour] = []
    for hour in range(24):
        rows = [e for e in mine if e.hour == hour]
        occurrences = sum(e.occurrences for e in rows)
        service_hours = sum(e.service_hours for e in rows)
        waits = sum(e.waits for e in rows)
        wait_total = sum((e.mean_wait_minutes or 0.0) * e.waits for e in rows)
        profile.append(
            ProfileHour(
                hour=hour,
                arrival_rate=sum(e.arrivals for e in rows) / occurrences if occurrences else 0.0,
                service_rate=(
                    sum(e.completed_services for e in rows) / service_hours
                    if service_hours
                    else pooled_rate
                ),
                mean_wait_minutes=wait_total / waits if waits else None,
                busy_servers=(
                    sum(e.busy_servers * e.occurrences for e in rows) / occurrences
                    if occurrences
                    else 0.0
                ),
                peak_servers=max((e.peak_servers for e in rows), default=0),
                occurrences=occurrences,
            )
        )
    return tuple(profile)
