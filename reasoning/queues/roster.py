"""Roster what-if: the smallest change of servers that meets a wait target, checked by ciw.

:func:`recommend_roster_change` projects each hour of a horizon with Erlang C, hour by hour
as if each were in steady state: the stationary independent period-by-period (SIPP) method
of staffing (L. V. Green, P. J. Kolesar, J. Soares, "Improving the SIPP approach for staffing
service systems that have cyclic demands", *Operations Research* 49(4), 2001). For every hour
it finds the servers needed (:func:`~reasoning.queues.erlang.smallest_servers`); the change
is one contiguous block of extra servers, from the first to the last hour short of its need,
as many as the largest shortfall. That is the block with the fewest extra server-hours among
blocks of one size and one window that meet the target in every hour (any such block must
span every short hour and add at least the largest shortfall).

SIPP ignores the queue an hour hands to the next one, which is why
:func:`verify_by_simulation` runs the day in ``ciw`` (time-varying arrivals, the roster as a
``ciw.Schedule``) before and after the change with common random numbers, and why
:func:`smallest_change_by_simulation` searches the blocks no larger than Erlang C's for the
smallest that meets the target in simulation (SIPP is conservative when hours are short
against the service time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from reasoning.queues.erlang import erlang_c, smallest_servers
from reasoning.queues.errors import QueueInputError, check_count, check_positive
from reasoning.queues.simulation import (
    Estimate,
    Scenario,
    SimulationResult,
    run_replications,
    summarise,
    window_mean_wait,
)

__all__ = [
    "HourProjection",
    "HourRates",
    "RosterChange",
    "RosterRecommendation",
    "RosterVerification",
    "SimulatedChange",
    "recommend_roster_change",
    "smallest_change_by_simulation",
    "verify_by_simulation",
]


class HourRates(Protocol):
    """An hour of a profile (:class:`~reasoning.queues.estimation.ProfileHour` fits)."""

    @property
    def hour(self) -> int:
        """Local hour, 0 … 23."""

    @property
    def arrival_rate(self) -> float:
        """λ per hour."""

    @property
    def service_rate(self) -> float | None:
        """μ per hour per server."""


@dataclass(frozen=True)
class HourProjection:
    """One hour of the horizon, before and after the change (Erlang C, SIPP).

    Attributes
    ----------
    hour : int
    arrival_rate, service_rate : float
        Per hour.
    servers_before, servers_after, servers_needed : int
    wait_before_minutes, wait_after_minutes : float
        Erlang C W_q in minutes; ``math.inf`` when unstable or no server faces arrivals.
    utilization_before, utilization_after : float
        ρ = λ/(cμ); ``math.inf`` with arrivals and no server, 0 without arrivals.
    """

    hour: int
    arrival_rate: float
    service_rate: float
    servers_before: int
    servers_after: int
    servers_needed: int
    wait_before_minutes: float
    wait_after_minutes: float
    utilization_before: float
    utilization_after: float


@dataclass(frozen=True)
class RosterChange:
    """Add ``servers_added`` servers from ``start_hour`` to ``end_hour`` (exclusive)."""

    start_hour: int
    end_hour: int
    servers_added: int

    @property
    def server_hours(self) -> int:
        """Extra server-hours of the change."""
        return self.servers_added * (self.end_hour - self.start_hour)


@dataclass(frozen=True)
class RosterRecommendation:
    """The projected horizon and the smallest change meeting the target.

    Attributes
    ----------
    target_wait_minutes : float
    hours : tuple of HourProjection
        The horizon's hours in order.
    change : RosterChange or None
        None when the roster already meets the target in every hour.
    roster_before, roster_after : dict of int to int
        Servers per horizon hour.
    window_wait_before_minutes, window_wait_after_minutes : float
        Arrival-weighted mean Erlang C wait over the change's window (the whole horizon
        without a change), e.g. "expected wait 48 → 11 min"; ``math.inf`` if an hour is
        unstable.
    """

    target_wait_minutes: float
    hours: tuple[HourProjection, ...]
    change: RosterChange | None
    roster_before: dict[int, int]
    roster_after: dict[int, int]
    window_wait_before_minutes: float
    window_wait_after_minutes: float

    @property
    def meets_target_before(self) -> bool:
        """Whether the current roster meets the target in every hour."""
        return self.change is None


def _project(rate: float, service_rate: float, servers: int) -> tuple[float, float]:
    """(W_q in minutes, ρ) of one hour; rates per hour."""
    if rate == 0:
        return 0.0, 0.0
    if servers == 0:
        return math.inf, math.inf
    result = erlang_c(rate, service_rate, servers)
    return result.mean_wait * 60, result.utilization


def _weighted_wait(hours: Sequence[HourProjection], after: bool) -> float:
    total = sum(h.arrival_rate for h in hours)
    if total == 0:
        return 0.0
    waits = [(h.wait_after_minutes if after else h.wait_before_minutes) for h in hours]
    if any(math.isinf(w) for w, h in zip(waits, hours, strict=True) if h.arrival_rate > 0):
        return math.inf
    return sum(w * h.arrival_rate for w, h in zip(waits, hours, strict=True)) / total


def _check_horizon(horizon: Sequence[int]) -> list[int]:
    hours = list(horizon)
    if not hours:
        raise QueueInputError("horizon", horizon, "needs >= 1 hour")
    for hour in hours:
        check_count("horizon", hour, minimum=0)
        if hour > 23:
            raise QueueInputError("horizon", horizon, "hours must be 0 … 23")
    if hours != list(range(hours[0], hours[0] + len(hours))):
        raise QueueInputError("horizon", horizon, "must be consecutive hours, e.g. range(8, 18)")
    return hours


def recommend_roster_change(
    profile_hours: Sequence[HourRates],
    roster: Mapping[int, int],
    target_wait_minutes: float,
    *,
    horizon: Sequence[int],
) -> RosterRecommendation:
    """Find the smallest contiguous block of extra servers meeting a mean-wait target.

    Parameters
    ----------
    profile_hours : sequence of HourRates
        λ and μ per local hour (e.g. :func:`~reasoning.queues.estimation.hourly_profile`,
        or today's arrivals so far blended with it); every horizon hour must be present.
    roster : mapping of int to int
        Servers on duty per local hour; a missing hour has 0.
    target_wait_minutes : float
        The queue point's wait target (mean wait), minutes, ``> 0``.
    horizon : sequence of int
        The consecutive local hours to meet the target in, e.g. ``range(10, 18)``.

    Returns
    -------
    RosterRecommendation
        Per hour: servers before/after/needed and Erlang C wait before/after (minutes);
        the change (None if none is needed) and the window's mean wait before → after.

    Raises
    ------
    QueueInputError
        Naming the argument: a horizon hour missing from the profile, an hour with arrivals
        and no service rate, a negative roster entry, a target <= 0, a bad horizon.

    Notes
    -----
    Method and sources in the module docstring (SIPP, Green, Kolesar & Soares 2001; Erlang C,
    Gross et al. 2008 §2.3).
    """
    target = check_positive("target_wait_minutes", target_wait_minutes)
    hours = _check_horizon(horizon)
    by_hour = {h.hour: h for h in profile_hours}
    rates: list[tuple[int, float, float]] = []
    for hour in hours:
        if hour not in by_hour:
            raise QueueInputError("profile_hours", hour, "has no entry for this horizon hour")
        entry = by_hour[hour]
        if entry.arrival_rate > 0 and entry.service_rate is None:
            raise QueueInputError("profile_hours", hour, "has arrivals but no service rate")
        mu = entry.service_rate if entry.service_rate is not None else 1.0
        rates.append((hour, float(entry.arrival_rate), float(mu)))
    before = {hour: check_count("roster", roster.get(hour, 0), minimum=0) for hour in hours}
    needed = {
        hour: smallest_servers(lam, mu, target / 60) if lam > 0 else 0 for hour, lam, mu in rates
    }
    short = [hour for hour in hours if needed[hour] > before[hour]]
    change: RosterChange | None = None
    after = dict(before)
    if short:
        added = max(needed[hour] - before[hour] for hour in short)
        change = RosterChange(short[0], short[-1] + 1, added)
        for hour in range(change.start_hour, change.end_hour):
            after[hour] = before[hour] + added
    projections = []
    for hour, lam, mu in rates:
        wait_before, rho_before = _project(lam, mu, before[hour])
        wait_after, rho_after = _project(lam, mu, after[hour])
        projections.append(
            HourProjection(
                hour=hour,
                arrival_rate=lam,
                service_rate=mu,
                servers_before=before[hour],
                servers_after=after[hour],
                servers_needed=needed[hour],
                wait_before_minutes=wait_before,
                wait_after_minutes=wait_after,
                utilization_before=rho_before,
                utilization_after=rho_after,
            )
        )
    window = (
        [p for p in projections if change.start_hour <= p.hour < change.end_hour]
        if change
        else projections
    )
    return RosterRecommendation(
        target_wait_minutes=target,
        hours=tuple(projections),
        change=change,
        roster_before=before,
        roster_after=after,
        window_wait_before_minutes=_weighted_wait(window, after=False),
        window_wait_after_minutes=_weighted_wait(window, after=True),
    )


def _scenario(
    hours: Sequence[HourProjection], servers: tuple[int, ...], warmup_minutes: float
) -> Scenario:
    """Build the horizon as a ciw scenario in minutes: hourly λ, μ and servers.

    The warm-up runs with the current roster's first hour (``servers_before``): the queue
    already waiting when the horizon starts is the same whatever change is tried.
    """
    return Scenario(
        arrival_rates=tuple(h.arrival_rate / 60 for h in hours),
        service_rate=hours[0].service_rate / 60,
        service_rates=tuple(h.service_rate / 60 for h in hours),
        servers=servers,
        period=60.0,
        warmup=warmup_minutes,
        warmup_servers=hours[0].servers_before,
    )


@dataclass(frozen=True)
class RosterVerification:
    """The roster what-if simulated in ``ciw``, before and after, waits in minutes.

    Attributes
    ----------
    before, after : SimulationResult
        The whole horizon (``wait_by_period`` per hour), same seeds for both.
    window_wait_before, window_wait_after : Estimate
        Mean wait of patients arriving in the change's window (the horizon without a
        change), minutes, with the confidence interval.
    window : tuple of int
        ``(start_hour, end_hour)`` of that window.
    """

    before: SimulationResult
    after: SimulationResult
    window_wait_before: Estimate
    window_wait_after: Estimate
    window: tuple[int, int]


def verify_by_simulation(
    recommendation: RosterRecommendation,
    *,
    replications: int = 20,
    seed: int = 0,
    warmup_minutes: float = 0.0,
    confidence: float = 0.95,
) -> RosterVerification:
    """Simulate the horizon before and after the recommended change with ``ciw``.

    Time-varying Poisson arrivals (``ciw.dists.PoissonIntervals``, one rate per hour), the
    roster as a ``ciw.Schedule`` (servers per hour; see :mod:`~reasoning.queues.simulation`),
    exponential service;
    the unit is minutes. The point opens empty at the first horizon hour unless
    ``warmup_minutes`` simulates the first hour's arrivals with the current roster's servers
    before it (the queue already waiting, the same before and after the change).

    Parameters
    ----------
    recommendation : RosterRecommendation
        From :func:`recommend_roster_change`.
    replications : int, default=20
    seed : int, default=0
        Both scenarios use seeds ``seed … seed + replications - 1`` (common random numbers).
    warmup_minutes : float, default=0.0
    confidence : float, default=0.95

    Returns
    -------
    RosterVerification
        Simulated waits before and after, per hour and over the change's window, with
        their confidence intervals, and the share within the target.

    Raises
    ------
    QueueInputError
        If ``replications`` is not an integer >= 1 or ``warmup_minutes`` is negative.
    """
    hours = recommendation.hours
    first = hours[0].hour
    change = recommendation.change
    window = (change.start_hour, change.end_hour) if change else (first, hours[-1].hour + 1)
    low, high = (window[0] - first) * 60.0, (window[1] - first) * 60.0
    results: list[tuple[SimulationResult, Estimate]] = []
    for servers in (
        tuple(h.servers_before for h in hours),
        tuple(h.servers_after for h in hours),
    ):
        scenario = _scenario(hours, servers, warmup_minutes)
        reps = run_replications(scenario, replications=replications, seed=seed)
        result = summarise(
            scenario,
            reps,
            target_wait=recommendation.target_wait_minutes,
            seed=seed,
            confidence=confidence,
        )
        results.append((result, window_mean_wait(reps, low, high, confidence)))
    (before, window_before), (after, window_after) = results
    return RosterVerification(before, after, window_before, window_after, window)


@dataclass(frozen=True)
class SimulatedChange:
    """The smallest block of extra servers that meets the target in simulation.

    Attributes
    ----------
    change : RosterChange or None
        None when the current roster already meets the target in simulation.
    roster_after : dict of int to int
        Servers per horizon hour with the change.
    result : SimulationResult
        The simulated horizon with the change (``wait_by_period`` per hour, minutes).
    meets_target : bool
        Whether every hour's simulated mean wait is within the target (False only when
        even Erlang C's block does not meet it in simulation; it is then returned).
    candidates : int
        How many rosters were simulated.
    """

    change: RosterChange | None
    roster_after: dict[int, int]
    result: SimulationResult
    meets_target: bool
    candidates: int


def smallest_change_by_simulation(
    recommendation: RosterRecommendation,
    *,
    replications: int = 20,
    seed: int = 0,
    warmup_minutes: float = 0.0,
    confidence: float = 0.95,
    start_by_first_breach: bool = False,
) -> SimulatedChange:
    """Search, by simulation, the smallest block no larger than Erlang C's that meets the target.

    SIPP (Erlang C hour by hour) is conservative when hours are short against the service
    time, so a smaller block may do. Candidates are the current roster, then every block
    ``(start, end, k)`` inside the horizon with ``k`` up to Erlang C's ``servers_added`` and at
    most its server-hours, in increasing server-hours (then fewer servers, then earlier); the
    first whose simulated mean wait is within the target in every hour (an hour without
    patients counts as met) is returned. Erlang C's own block is the last candidate.

    Parameters
    ----------
    recommendation : RosterRecommendation
        From :func:`recommend_roster_change`.
    replications, seed, warmup_minutes, confidence
        As :func:`verify_by_simulation`; every candidate uses the same seeds.
    start_by_first_breach : bool, default=False
        Try only blocks starting no later than the first hour the current roster misses
        the target in simulation (servers added after it cannot serve the patients who
        arrived in it in time): fewer candidates, the same answer in practice; Erlang C's
        block is still the last candidate.

    Returns
    -------
    SimulatedChange

    Raises
    ------
    QueueInputError
        If ``replications`` is not an integer >= 1 or ``warmup_minutes`` is negative.
    """
    hours = recommendation.hours
    first, target = hours[0].hour, recommendation.target_wait_minutes
    before = {h.hour: h.servers_before for h in hours}
    erlang = recommendation.change
    candidates: list[RosterChange | None] = [None]
    if erlang is not None:
        blocks = [
            RosterChange(first + start, first + end, added)
            for start in range(len(hours))
            for end in range(start + 1, len(hours) + 1)
            for added in range(1, erlang.servers_added + 1)
        ]
        blocks = [b for b in blocks if b.server_hours <= erlang.server_hours and b != erlang]
        blocks.sort(key=lambda b: (b.server_hours, b.servers_added, b.start_hour))
        candidates += [*blocks, erlang]
    current: SimulatedChange | None = None
    last: SimulatedChange | None = None
    tried = 0
    for candidate in candidates:
        if (
            start_by_first_breach
            and candidate is not None
            and candidate != erlang
            and current is not None
            and candidate.start_hour > _first_breach(current.result, first, target)
        ):
            continue
        after = dict(before)
        if candidate is not None:
            for hour in range(candidate.start_hour, candidate.end_hour):
                after[hour] += candidate.servers_added
        scenario = _scenario(hours, tuple(after[h.hour] for h in hours), warmup_minutes)
        reps = run_replications(scenario, replications=replications, seed=seed)
        result = summarise(scenario, reps, target_wait=target, seed=seed, confidence=confidence)
        meets = all(math.isnan(e.mean) or e.mean <= target for e in result.wait_by_period)
        tried += 1
        found = SimulatedChange(candidate, after, result, meets, tried)
        if candidate is None:
            current = found  # the current roster: its first breach prunes the blocks
        if meets:
            return found
        last = found
    assert last is not None  # noqa: S101 - candidates always holds the current roster
    return last


def _first_breach(result: SimulationResult, first: int, target: float) -> int:
    """Return the first horizon hour whose simulated mean wait exceeds ``target`` (or the last)."""
    for index, estimate in enumerate(result.wait_by_period):
        if not math.isnan(estimate.mean) and estimate.mean > target:
            return first + index
    return first + len(result.wait_by_period) - 1
