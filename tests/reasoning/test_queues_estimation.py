"""Rates per queue point, weekday and local hour from tickets, and the usual profile."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from reasoning.queues import QueueInputError
from reasoning.queues.estimation import TicketLike, estimate_hourly, hourly_profile

KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30: local hours start at :30 UTC


@dataclass(frozen=True)
class Ticket:
    """The shape of healthos_core.operations.TicketTimes (contracts.md)."""

    ticket_id: str
    location_id: str
    priority: str
    arrived_at: datetime
    called_at: datetime | None
    service_started_at: datetime | None
    service_ended_at: datetime | None
    left_without_being_seen: bool


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A December 2026 local Kolkata time as aware UTC (7 and 14 December are Mondays)."""
    return datetime(2026, 12, day, hour, minute, tzinfo=KOLKATA).astimezone(UTC)


def ticket(
    n: int,
    arrived: datetime,
    wait_min: float | None,
    service_min: float | None,
    *,
    location: str = "opd-1",
    lwbs: bool = False,
) -> Ticket:
    started = None if wait_min is None else arrived + timedelta(minutes=wait_min)
    ended = (
        None if started is None or service_min is None else started + timedelta(minutes=service_min)
    )
    return Ticket(f"t{n}", location, "routine", arrived, started, started, ended, lwbs)


TICKETS: list[TicketLike] = [
    # Monday 7 December, 10:00-11:00 local: 4 arrivals, one leaves without being seen.
    ticket(1, local(7, 10, 0), 0, 15),
    ticket(2, local(7, 10, 5), 10, 15),  # in service 10:15-10:30
    ticket(3, local(7, 10, 10), 2, 15),  # 10:12-10:27: overlaps #1, then #2: 2 at once
    ticket(4, local(7, 10, 20), None, None, lwbs=True),
    # Monday 14 December, 10:00-11:00 local: 2 arrivals; one service spans into 11:00.
    ticket(5, local(14, 10, 30), 0, 15),
    ticket(6, local(14, 10, 50), 0, 20),  # 10:50-11:10: 10 min in hour 10, 10 min in 11
    # Another queue point, Tuesday 8 December 09:00 local.
    ticket(7, local(8, 9, 0), 5, 10, location="lab-1"),
]
SINCE = datetime(2026, 12, 7, tzinfo=KOLKATA)
UNTIL = datetime(2026, 12, 21, tzinfo=KOLKATA)  # two whole weeks


def test_monday_ten_oclock_rates_waits_and_servers() -> None:
    rows = estimate_hourly(TICKETS, tz=KOLKATA, since=SINCE, until=UNTIL)
    monday10 = next(r for r in rows if (r.location_id, r.weekday, r.hour) == ("opd-1", 0, 10))
    assert monday10.occurrences == 2
    assert monday10.arrivals == 6
    assert monday10.arrival_rate == pytest.approx(3.0)  # 6 arrivals over 2 hours
    # Five completed services started in hour 10, 80 minutes in all: μ = 5 / (80/60) per h.
    assert monday10.completed_services == 5
    assert monday10.service_rate == pytest.approx(5 / (80 / 60))
    assert monday10.waits == 5
    assert monday10.mean_wait_minutes == pytest.approx((0 + 10 + 2 + 0 + 0) / 5)
    assert monday10.left_without_being_seen == 1
    # Busy minutes inside hour 10: 15+15+15 (7 Dec) + 15+10 (14 Dec) = 70, over 2 hours.
    assert monday10.busy_servers == pytest.approx(70 / 60 / 2)
    assert monday10.peak_servers == 2
    monday11 = next(r for r in rows if (r.location_id, r.weekday, r.hour) == ("opd-1", 0, 11))
    assert monday11.arrivals == 0
    assert monday11.arrival_rate == 0.0
    assert monday11.busy_servers == pytest.approx(10 / 60 / 2)
    assert monday11.peak_servers == 1
    assert monday11.service_rate is None


def test_every_slot_of_the_span_is_reported_per_location() -> None:
    rows = estimate_hourly(TICKETS, tz=KOLKATA, since=SINCE, until=UNTIL)
    assert {r.location_id for r in rows} == {"opd-1", "lab-1"}
    assert len(rows) == 2 * 7 * 24
    assert all(r.occurrences == 2 for r in rows)
    lab = next(r for r in rows if (r.location_id, r.weekday, r.hour) == ("lab-1", 1, 9))
    assert lab.arrival_rate == pytest.approx(0.5)
    assert sum(r.arrivals for r in rows if r.location_id == "opd-1") == 6


def test_default_span_runs_from_first_to_last_arrival_day() -> None:
    rows = estimate_hourly(TICKETS, tz=KOLKATA)
    # 7 December to the end of 14 December: 8 days, so Monday hours occur twice.
    monday10 = next(r for r in rows if (r.location_id, r.weekday, r.hour) == ("opd-1", 0, 10))
    assert monday10.occurrences == 2
    tuesday = next(r for r in rows if (r.location_id, r.weekday, r.hour) == ("lab-1", 1, 9))
    assert tuesday.occurrences == 1
    assert estimate_hourly([], tz=KOLKATA) == []


def test_profile_pools_weekdays_and_falls_back_to_pooled_service_rate() -> None:
    rows = estimate_hourly(TICKETS, tz=KOLKATA, since=SINCE, until=UNTIL)
    mondays = hourly_profile(rows, location_id="opd-1", weekdays={0})
    assert [p.hour for p in mondays] == list(range(24))
    assert mondays[10].arrival_rate == pytest.approx(3.0)
    assert mondays[10].mean_wait_minutes == pytest.approx(12 / 5)
    # Hour 11 had no completed service: the point's pooled μ (all its completions).
    assert mondays[11].service_rate == pytest.approx(5 / (80 / 60))
    week = hourly_profile(rows, location_id="opd-1")
    assert week[10].arrival_rate == pytest.approx(6 / 14)  # 6 arrivals over 14 ten-o'clocks
    assert week[10].occurrences == 14


@pytest.mark.parametrize(
    ("bad", "name"),
    [
        (ticket(9, datetime(2026, 12, 7, 10), 0, 5), "arrived_at"),  # naive
        (ticket(9, local(7, 10), -5, 5), "service_started_at"),
        (ticket(9, local(7, 10), 0, -5), "service_ended_at"),
    ],
)
def test_bad_tickets_are_refused(bad: Ticket, name: str) -> None:
    with pytest.raises(QueueInputError) as caught:
        estimate_hourly([bad], tz=KOLKATA)
    assert caught.value.parameter == name


def test_bad_span_and_profile_arguments() -> None:
    with pytest.raises(QueueInputError, match="until"):
        estimate_hourly(TICKETS, tz=KOLKATA, since=UNTIL, until=SINCE)
    rows = estimate_hourly(TICKETS, tz=KOLKATA, since=SINCE, until=UNTIL)
    with pytest.raises(QueueInputError, match="weekdays"):
        hourly_profile(rows, location_id="opd-1", weekdays={7})
    with pytest.raises(QueueInputError, match="location_id"):
        hourly_profile(rows, location_id="nowhere")
