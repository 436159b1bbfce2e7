"""Queue bottlenecks: which queue point breaches its wait target, now or in the coming hours.

For each queue point (a Location of kind ``queue``) :class:`QueueBottleneckScorer`

1. estimates the usual profile of today's weekday from the point's ticket history
   (``healthos_core.operations.ticket_times`` → :func:`~reasoning.queues.estimate_hourly` →
   :func:`~reasoning.queues.hourly_profile`, ``history_days`` before today, UTC hours as
   the rosters are kept);
2. blends today's arrivals so far: every coming hour's λ is the usual λ times
   ``(arrivals today + k) / (usual arrivals by now + k)`` (``k = blend_prior`` arrivals, a
   shrinkage towards the usual day so that a quiet first hour does not halve the
   afternoon; clamped to 0.25 … 4);
3. takes the roster (weekly rows, a date's rows overriding them) from the current hour
   to the end of the roster's run (the first hour with no server) or ``horizon_hours``,
   and projects each hour with Erlang C (:func:`~reasoning.queues.recommend_roster_change`,
   SIPP);
4. if the point breaches now (``queue_status``: the last hour's mean wait or the longest
   current wait above the target) or Erlang C projects a breach, simulates the horizon in
   ``ciw`` with the queue already waiting (a warm-up, below) and searches the smallest
   block of extra servers whose simulated mean wait meets the target in every hour
   (:func:`~reasoning.queues.smallest_change_by_simulation`), then simulates that change
   before and after (:func:`~reasoning.queues.verify_by_simulation`, common random
   numbers, fixed seeds: deterministic).

Warm-up for the queue already waiting: the first hour's arrivals with the current
servers, for ``60 × waiting / (λ − cμ)`` minutes when the hour is overloaded (the time a
fluid queue takes to reach today's length), 60 minutes otherwise, none when nobody waits
(at most 240 minutes). Hours with servers are taken as they are; the horizon is labelled
by clock time (UTC) and may cross midnight.

The limiting stage: the point, or a downstream point of the patient path
(:data:`DOWNSTREAM`: ED triage → bed assignment; OPD clinic → lab collection, imaging,
pharmacy) in the same facility whose utilisation now is higher.

Bed pools above their threshold come from :mod:`reasoning.operations.bed_pressure`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.operations.board import QueuePointStatus, TicketTimes, queue_status, ticket_times
from healthos_core.operations.entities import QueueRoster
from healthos_core.record.entities import Location
from reasoning.base import Scorer, resolve_as_of, subject_ids
from reasoning.operations.bed_pressure import bed_suggestions
from reasoning.queues import (
    ProfileHour,
    QueueInputError,
    RosterRecommendation,
    RosterVerification,
    SimulatedChange,
    estimate_hourly,
    hourly_profile,
    recommend_roster_change,
    smallest_change_by_simulation,
    verify_by_simulation,
)
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion

__all__ = [
    "DOWNSTREAM",
    "REFERENCE",
    "STAFF",
    "QueueBottleneckScorer",
    "QueueProjection",
    "project_queue_point",
]

KIND: Final = "operations.queue_bottleneck"
REFERENCE: Final = "Erlang C (M/M/c); ciw discrete-event simulation (Palmer et al. 2019)"
#: The servers of a queue point, by service, in words.
STAFF: Final[dict[str, str]] = {
    "opd_clinic": "clinician",
    "ed_triage": "triage nurse",
    "lab_collection": "phlebotomist",
    "pharmacy": "pharmacist",
    "imaging": "radiographer",
    "theatre": "theatre team",
    "bed_assignment": "bed manager",
}
#: The next stages of the patient path, by service (same facility).
DOWNSTREAM: Final[dict[str, tuple[str, ...]]] = {
    "ed_triage": ("bed_assignment",),
    "opd_clinic": ("lab_collection", "imaging", "pharmacy"),
    "lab_collection": ("pharmacy",),
    "imaging": ("pharmacy",),
}
_HOUR: Final = dt.timedelta(hours=1)
_MAX_WARMUP: Final = 240.0
_EVIDENCE_TICKETS: Final = 100


def _arrival(ticket: TicketTimes) -> dt.datetime:
    return ticket.arrived_at


def _still_waiting(
    history: Sequence[TicketTimes], day0: dt.datetime, at: dt.datetime
) -> list[TicketTimes]:
    """Tickets that arrived before ``day0`` and are still waiting at ``at`` (not seen, not gone).

    A patient waiting since before midnight is part of today's queue (and its evidence).
    """
    return [
        t
        for t in history
        if t.arrived_at < day0
        and not t.left_without_being_seen
        and (t.service_started_at is None or t.service_started_at > at)
        and t.service_ended_at is None
    ]


@dataclass(frozen=True)
class _Hour:
    """A horizon hour as the roster what-if reads it (index from the horizon's start)."""

    hour: int
    arrival_rate: float
    service_rate: float | None


@dataclass(frozen=True)
class QueueProjection:
    """One queue point now and over the coming hours.

    Attributes
    ----------
    status : QueuePointStatus
        The board now (waiting, current and longest wait, servers, breaching).
    hours : tuple of datetime
        UTC start of each horizon hour; the recommendation's hour ``i`` is ``hours[i]``.
    recommendation : RosterRecommendation
        Erlang C per hour (SIPP) and its block, hours indexed from the horizon's start.
    usual_arrivals_so_far : float
        Arrivals the usual profile expects today before ``at``.
    arrivals_today : int
        Tickets that arrived today before ``at``.
    arrival_factor : float
        The blend applied to the coming hours' λ.
    warmup_minutes : float
        The warm-up simulated for the queue already waiting.
    history_tickets : int
        Tickets of the history the profile rests on.
    ticket_ids_today : tuple of str
        Today's tickets and those still waiting from before midnight (arrival order).
    simulated : SimulatedChange or None
        The smallest change meeting the target in simulation (None: not simulated, the
        point neither breaches nor is projected to).
    verification : RosterVerification or None
        That change (or the current roster) simulated before and after.
    """

    status: QueuePointStatus
    hours: tuple[dt.datetime, ...]
    recommendation: RosterRecommendation
    usual_arrivals_so_far: float
    arrivals_today: int
    arrival_factor: float
    warmup_minutes: float
    history_tickets: int
    ticket_ids_today: tuple[str, ...]
    simulated: SimulatedChange | None = None
    verification: RosterVerification | None = None

    @property
    def utilization_now(self) -> float:
        """ρ = λ/(cμ) of the current hour (``inf`` with arrivals and no server)."""
        return self.recommendation.hours[0].utilization_before

    @property
    def projected_breach(self) -> bool:
        """Whether the current roster misses the target in some hour, in simulation."""
        return self.simulated is not None and self.simulated.change is not None

    def clock(self, index: int) -> str:
        """``HH:MM`` (UTC) of the horizon's hour ``index`` (may be the horizon's end)."""
        return (self.hours[0] + index * _HOUR).strftime("%H:%M")


def _roster(rows: Sequence[QueueRoster], hour: dt.datetime) -> int:
    weekly = 0
    for row in rows:
        if row.hour != hour.hour:
            continue
        if row.date is not None and row.date == hour.date():
            return row.servers
        if row.date is None and row.weekday == hour.weekday():
            weekly = row.servers
    return weekly


def _warmup(projection_hour: object, waiting: int) -> float:
    """Minutes of warm-up that build about ``waiting`` patients (module docstring)."""
    if waiting <= 0:
        return 0.0
    lam = float(getattr(projection_hour, "arrival_rate", 0.0))
    mu = float(getattr(projection_hour, "service_rate", 0.0))
    capacity = int(getattr(projection_hour, "servers_before", 0)) * mu
    if lam > capacity:
        return min(_MAX_WARMUP, 60.0 * waiting / (lam - capacity))
    return 60.0


def project_queue_point(
    status: QueuePointStatus,
    *,
    history: Sequence[TicketTimes],
    today: Sequence[TicketTimes],
    roster: Sequence[QueueRoster],
    at: dt.datetime,
    history_days: int = 28,
    horizon_hours: int = 8,
    blend_prior: float = 5.0,
    simulate: bool = True,
    replications: int = 10,
    search_replications: int = 8,
    seed: int = 20261207,
) -> QueueProjection | None:
    """Project a queue point's waits over the coming hours and find the smallest fix.

    Parameters
    ----------
    status : QueuePointStatus
        The point on the board at ``at`` (``healthos_core.operations.queue_status``).
    history : sequence of TicketTimes
        The point's tickets that arrived in the ``history_days`` before today (UTC).
    today : sequence of TicketTimes
        Its tickets that arrived today before ``at``.
    roster : sequence of QueueRoster
        The point's roster rows (weekly and dated).
    at : datetime
        Aware moment of the projection.
    history_days : int, default=28
        Days of history before today (the profile's span, with its empty hours).
    horizon_hours : int, default=8
        Most hours projected (from the current hour; fewer when the roster's run ends).
    blend_prior : float, default=5.0
        ``k`` of the arrivals blend (module docstring), arrivals.
    simulate : bool, default=True
        Run the ciw search when the point breaches or is projected to (Erlang C);
        ``False`` stops at Erlang C (the utilisation of a downstream stage).
    replications : int, default=10
        ciw replications of the chosen change, before and after (its confidence
        intervals).
    search_replications : int, default=8
        ciw replications per roster tried in the search (fewer: the search tries tens).
    seed : int, default=20261207
        First ciw seed (common to every roster tried: deterministic).

    Returns
    -------
    QueueProjection or None
        None when the point has no server this hour, or no history of this hour's weekday
        with a completed service to estimate μ from. The horizon also ends at the first
        hour without such history.

    Raises
    ------
    QueueInputError
        From the queue model, on inconsistent ticket times.
    """
    at = resolve_as_of(at)
    day0 = at.replace(hour=0, minute=0, second=0, microsecond=0)
    hour0 = at.replace(minute=0, second=0, microsecond=0)
    servers: list[int] = []
    for index in range(max(1, horizon_hours)):
        count = _roster(roster, hour0 + index * _HOUR)
        if count == 0:
            break
        servers.append(count)
    if not servers:
        return None
    hours = tuple(hour0 + index * _HOUR for index in range(len(servers)))
    estimates = estimate_hourly(
        history, tz=dt.UTC, since=day0 - dt.timedelta(days=history_days), until=day0
    )
    profiles: dict[int, tuple[ProfileHour, ...]] = {}

    def usual(moment: dt.datetime) -> ProfileHour | None:
        weekday = moment.weekday()
        if weekday not in profiles:
            try:
                profiles[weekday] = hourly_profile(
                    estimates, location_id=status.id, weekdays={weekday}
                )
            except QueueInputError:
                profiles[weekday] = ()
        profile = profiles[weekday]
        return profile[moment.hour] if profile else None

    expected = 0.0
    moment = day0
    while moment <= hour0:
        entry = usual(moment)
        share = min(1.0, (at - moment) / _HOUR)
        expected += (entry.arrival_rate if entry else 0.0) * share
        moment += _HOUR
    arrived = [t for t in today if t.arrived_at < at]
    factor = min(4.0, max(0.25, (len(arrived) + blend_prior) / (expected + blend_prior)))
    rates: list[_Hour] = []
    for index, moment in enumerate(hours):
        entry = usual(moment)
        if entry is None or entry.service_rate is None:
            break  # no usual day to project this hour from: the horizon ends here
        rates.append(_Hour(index, entry.arrival_rate * factor, entry.service_rate))
    if not rates:
        return None
    hours, servers = hours[: len(rates)], servers[: len(rates)]
    recommendation = recommend_roster_change(
        rates,
        dict(enumerate(servers)),
        float(status.target_wait_minutes),
        horizon=range(len(hours)),
    )
    warmup = _warmup(recommendation.hours[0], status.waiting)
    projection = QueueProjection(
        status=status,
        hours=hours,
        recommendation=recommendation,
        usual_arrivals_so_far=expected,
        arrivals_today=len(arrived),
        arrival_factor=factor,
        warmup_minutes=warmup,
        history_tickets=len(history),
        ticket_ids_today=tuple(
            t.ticket_id for t in sorted(_still_waiting(history, day0, at) + arrived, key=_arrival)
        ),
    )
    if not simulate or (not status.breaching and recommendation.change is None):
        return projection
    simulated = smallest_change_by_simulation(
        recommendation,
        replications=search_replications,
        seed=seed,
        warmup_minutes=warmup,
        start_by_first_breach=True,
    )
    chosen = _with_change(recommendation, simulated)
    verification = verify_by_simulation(
        chosen, replications=replications, seed=seed, warmup_minutes=warmup
    )
    return dataclasses.replace(projection, simulated=simulated, verification=verification)


def _with_change(
    recommendation: RosterRecommendation, simulated: SimulatedChange
) -> RosterRecommendation:
    """Return the recommendation with the simulation's change in place of Erlang C's block."""
    after = simulated.roster_after
    return dataclasses.replace(
        recommendation,
        change=simulated.change,
        roster_after=dict(after),
        hours=tuple(
            dataclasses.replace(h, servers_after=after[h.hour]) for h in recommendation.hours
        ),
    )


def _minutes(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return "∞" if math.isinf(value) else f"{value:.0f}"


def _finite(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def _rho(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.2f}"


def _excess(value: float | None, target: float) -> float:
    if value is None or math.isnan(value):
        return 0.0
    return 10.0 if math.isinf(value) else round((value - target) / target, 3)


class QueueBottleneckScorer(Scorer):
    """Queue points breaching (or projected to breach) their wait target; full bed pools.

    Parameters
    ----------
    history_days : int, default=28
        Ticket history read for the usual weekday/hour profile.
    horizon_hours : int, default=8
        Most hours projected ahead (the roster's run may end sooner).
    replications : int, default=10
        ciw replications of the chosen change before and after (fixed seeds: the same
        record gives the same suggestion).
    search_replications : int, default=8
        ciw replications per roster tried while searching the smallest change.
    seed : int, default=20261207
    blend_prior : float, default=5.0
        Shrinkage of today's arrivals towards the usual day (arrivals).
    beds : bool, default=True
        Also suggest on bed pools above their threshold.
    """

    name: ClassVar[str] = "queue_bottleneck"
    kind: ClassVar[str] = KIND
    version: ClassVar[str] = "1.0.0"
    reference: ClassVar[str | None] = REFERENCE

    def __init__(
        self,
        *,
        history_days: int = 28,
        horizon_hours: int = 8,
        replications: int = 10,
        search_replications: int = 8,
        seed: int = 20261207,
        blend_prior: float = 5.0,
        beds: bool = True,
    ) -> None:
        self.history_days = history_days
        self.horizon_hours = horizon_hours
        self.replications = replications
        self.search_replications = search_replications
        self.seed = seed
        self.blend_prior = blend_prior
        self.beds = beds

    def score(self, session: Session, *, as_of: dt.datetime | None = None) -> list[Suggestion]:
        """Return a suggestion per breaching queue point and per bed pool above threshold."""
        return self._score(session, resolve_as_of(as_of), None)

    def score_subjects(
        self, session: Session, subjects: Collection[str], *, as_of: dt.datetime | None = None
    ) -> list[Suggestion]:
        """Score only the ``Location/<id>`` subjects (queue points, the wards bed pools name)."""
        ids = subject_ids(subjects, "Location")
        return self._score(session, resolve_as_of(as_of), set(ids)) if ids else []

    def projections(
        self, session: Session, *, as_of: dt.datetime | None = None, ids: set[str] | None = None
    ) -> dict[str, QueueProjection]:
        """Project the queue points ``ids`` (default all) and their downstream stages.

        The points asked for are simulated when they breach or are projected to; their
        downstream stages only get Erlang C (their utilisation now). One read of the
        board, one of the rosters and one of the tickets (per point when ``ids`` is given).
        """
        at = resolve_as_of(as_of)
        board = {s.id: s for s in queue_status(session, at=at)}
        wanted = set(board) if ids is None else {i for i in ids if i in board}
        if not wanted:
            return {}
        peers = {
            p.id
            for w in wanted
            for p in board.values()
            if p.facility_id == board[w].facility_id
            and p.service in DOWNSTREAM.get(board[w].service, ())
        }
        needed = sorted(wanted | peers)
        rows: dict[str, list[QueueRoster]] = defaultdict(list)
        for row in session.scalars(select(QueueRoster).where(QueueRoster.location_id.in_(needed))):
            rows[row.location_id].append(row)
        day0 = at.replace(hour=0, minute=0, second=0, microsecond=0)
        since = day0 - dt.timedelta(days=self.history_days)
        tickets: dict[str, list[TicketTimes]] = defaultdict(list)
        locations: list[str | None] = [None] if ids is None else list(needed)
        for location_id in locations:
            for ticket in ticket_times(session, location_id=location_id, since=since, until=at):
                tickets[ticket.location_id].append(ticket)
        found: dict[str, QueueProjection] = {}
        for point_id in needed:
            mine = tickets.get(point_id, [])
            projection = project_queue_point(
                board[point_id],
                history=[t for t in mine if t.arrived_at < day0],
                today=[t for t in mine if t.arrived_at >= day0],
                roster=rows.get(point_id, []),
                at=at,
                history_days=self.history_days,
                horizon_hours=self.horizon_hours,
                blend_prior=self.blend_prior,
                simulate=point_id in wanted,
                replications=self.replications,
                search_replications=self.search_replications,
                seed=self.seed,
            )
            if projection is not None:
                found[point_id] = projection
        return found

    def _score(self, session: Session, at: dt.datetime, ids: set[str] | None) -> list[Suggestion]:
        projections = self.projections(session, as_of=at, ids=ids)
        suggestions = []
        for point_id in sorted(projections):
            if ids is not None and point_id not in ids:
                continue
            projection = projections[point_id]
            if not projection.status.breaching and not projection.projected_breach:
                continue
            downstream = [
                p
                for p in projections.values()
                if p.status.facility_id == projection.status.facility_id
                and p.status.service in DOWNSTREAM.get(projection.status.service, ())
            ]
            suggestions.append(self._suggest(projection, downstream, at))
        if self.beds:
            ward_ids = None
            if ids is not None:
                ward_ids = set(
                    session.scalars(
                        select(Location.id).where(Location.id.in_(ids), Location.kind == "ward")
                    )
                )
            if ward_ids is None or ward_ids:
                source = Source(name=self.name, version=self.version, reference=self.reference)
                for suggestion in bed_suggestions(session, at=at, kind=self.kind, source=source):
                    if ward_ids is None or suggestion.subject.removeprefix("Location/") in ward_ids:
                        suggestions.append(suggestion)
        return suggestions

    def _suggest(
        self, p: QueueProjection, downstream: list[QueueProjection], at: dt.datetime
    ) -> Suggestion:
        status = p.status
        target = float(status.target_wait_minutes)
        staff = STAFF.get(status.service, "server")
        verification = p.verification
        simulated = p.simulated
        assert verification is not None and simulated is not None  # noqa: S101 - see _score
        before, after = verification.window_wait_before, verification.window_wait_after
        known = [w for w in (status.current_wait_minutes, status.longest_wait_minutes) if w]
        current = max(known, default=status.current_wait_minutes)
        rho = p.utilization_now
        limiting = max(downstream, key=lambda d: d.utilization_now, default=None)
        if limiting is not None and not limiting.utilization_now > rho:
            limiting = None
        change = simulated.change
        lo, hi = verification.window
        if change is not None:
            count = change.servers_added
            noun = staff if count == 1 else f"{staff}s"
            window = f"{p.clock(change.start_hour)}–{p.clock(change.end_hour)}"
            waits = f"{_minutes(before.mean)} → {_minutes(after.mean)} min"
            fix = f"add {count} {noun} {window}: {waits}"
            action = (
                f"Add {count} {noun} to {status.name} {window} UTC: expected wait "
                f"{_minutes(before.mean)} → {_minutes(after.mean)} min (target {target:.0f} "
                f"min). Checked in ciw, {verification.before.replications} runs: 95% CI "
                f"{_minutes(before.low)}–{_minutes(before.high)} → {_minutes(after.low)}–"
                f"{_minutes(after.high)} min."
            )
            if not simulated.meets_target:
                action += (
                    f" Even this misses the target in some hour (worst "
                    f"{_minutes(max(e.mean for e in simulated.result.wait_by_period))} min): "
                    "escalate (divert, open another session)."
                )
        else:
            fix = f"current roster: {_minutes(before.mean)} min projected"
            action = (
                f"{status.name} breaches its {target:.0f}-minute target now "
                f"({status.waiting} waiting); on the current roster the simulated wait of "
                f"patients arriving {p.clock(lo)}–{p.clock(hi)} is {_minutes(before.mean)} min "
                f"(95% CI {_minutes(before.low)}–{_minutes(before.high)}): call the longest "
                "waiting first and review at the next hour."
            )
        if limiting is not None:
            action += (
                f" The limiting stage is downstream: {limiting.status.name} at utilisation "
                f"{_rho(limiting.utilization_now)} (this point {_rho(rho)}): relieve it too, or "
                "the queue moves there."
            )
        summary = (
            f"{status.name}: wait {_minutes(current)} min vs {target:.0f} target, ρ {_rho(rho)}; "
            f"{fix}"
        )
        if len(summary) > 140:
            summary = summary[:139] + "…"
        worst = max(
            (e.mean for e in verification.before.wait_by_period if not math.isnan(e.mean)),
            default=0.0,
        )
        factors = [
            Factor(
                name="current_wait_minutes",
                value=current,
                contribution=_excess(current, target),
                unit="min",
                text=f"wait now {_minutes(current)} min (target {target:.0f}): mean of the "
                f"last hour {_minutes(status.current_wait_minutes)} min, {status.waiting} "
                f"waiting, longest {_minutes(status.longest_wait_minutes)} min",
            ),
            Factor(
                name="projected_wait_minutes",
                value=round(before.mean, 1),
                contribution=_excess(before.mean, target),
                unit="min",
                text=f"simulated wait {p.clock(lo)}–{p.clock(hi)} on the current roster "
                f"{_minutes(before.mean)} min (95% CI {_minutes(before.low)}–"
                f"{_minutes(before.high)}); worst hour {_minutes(worst)} min",
            ),
            Factor(
                name="utilization",
                value=None if math.isinf(rho) else round(rho, 3),
                contribution=10.0 if math.isinf(rho) else round(rho - 1.0, 3),
                text=f"ρ = λ/(cμ) {_rho(rho)} now: λ "
                f"{p.recommendation.hours[0].arrival_rate:.1f}/h, μ "
                f"{p.recommendation.hours[0].service_rate:.1f}/h, {status.servers_now} {staff}(s)",
            ),
            Factor(
                name="arrivals_vs_usual",
                value=round(p.arrival_factor, 3),
                contribution=round(p.arrival_factor - 1.0, 3),
                text=f"{p.arrivals_today} arrivals today vs {p.usual_arrivals_so_far:.0f} usual "
                f"by now (from {p.history_tickets} tickets over {self.history_days} days)",
            ),
            Factor(
                name="wait_after_change_minutes",
                value=round(after.mean, 1),
                contribution=_excess(after.mean, target),
                unit="min",
                text=f"simulated wait with the change {_minutes(after.mean)} min (95% CI "
                f"{_minutes(after.low)}–{_minutes(after.high)})",
            ),
        ]
        if limiting is not None:
            factors.append(
                Factor(
                    name="downstream_utilization",
                    value=None
                    if math.isinf(limiting.utilization_now)
                    else round(limiting.utilization_now, 3),
                    contribution=10.0
                    if math.isinf(limiting.utilization_now - rho)
                    else round(limiting.utilization_now - rho, 3),
                    text=f"{limiting.status.name} (Location/{limiting.status.id}) ρ "
                    f"{_rho(limiting.utilization_now)}",
                )
            )
        factors.sort(key=lambda f: -abs(f.contribution))
        evidence = (
            f"Location/{status.id}",
            *(f"Location/{d.status.id}" for d in ([limiting] if limiting else [])),
            *(f"Task/{t}" for t in p.ticket_ids_today[-_EVIDENCE_TICKETS:]),
        )
        breaching = status.breaching
        return Suggestion(
            kind=self.kind,
            audience=Audience.OPERATIONS,
            severity=Severity.CRITICAL if breaching else Severity.WARNING,
            subject=f"Location/{status.id}",
            facility_id=status.facility_id,
            score=round(max(current or 0.0, worst, _finite(before.mean)) / target, 3),
            band="breaching" if breaching else "projected",
            summary=summary,
            explanation=Explanation(
                method="rule:queue_bottleneck", factors=tuple(factors), evidence=evidence
            ),
            recommended_action=action,
            source=Source(name=self.name, version=self.version, reference=self.reference),
            created_at=at,
        )
