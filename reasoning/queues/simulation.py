"""Discrete-event simulation of a queue point with ``ciw``: what Erlang C cannot model.

Erlang C (:mod:`reasoning.queues.erlang`) is the steady state of a stationary M/M/c queue.
A clinic day is not stationary: arrivals vary by hour, the roster changes servers by hour,
triage classes jump the queue and some patients leave without being seen. :func:`simulate`
runs that day in ``ciw`` (G. I. Palmer, V. A. Knight, P. R. Harper, A. L. Hawa, "Ciw: An
open-source discrete event simulation library", *Journal of Simulation* 13(1), 2019):

* time-varying Poisson arrivals, one rate per period: ``ciw.dists.PoissonIntervals``
  (a single period gives plain ``ciw.dists.Exponential`` inter-arrival times);
* the roster, servers per period: ``ciw.Schedule``, pre-emptive with ``"resume"`` (at a
  change the patient in hand goes on with a server of the new shift, remaining time kept; ciw
  replaces the whole set of servers at a shift end, so non-pre-emptive shifts would leave
  every old server finishing in overtime beside the new shift, capacity no roster adds);
* triage classes with priorities (``priority_classes``; lower number served first,
  non-pre-emptive) and a share of the arrivals each;
* reneging, a patient leaving without being seen after an exponential patience
  (``reneging_time_distributions``).

Replications use seeds ``seed, seed + 1, …`` (``ciw.seed``), so two scenarios simulated with
the same ``seed`` share their random numbers (common random numbers: the what-if difference
is not noise). Each figure comes with a Student-t confidence interval across replications
(``scipy.stats.t.interval``), the standard output analysis for terminating simulations
(A. M. Law, *Simulation Modeling and Analysis*, 5th ed., McGraw-Hill 2015, §9.4.1).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ciw
from scipy import stats

from reasoning.queues.errors import (
    QueueInputError,
    check_count,
    check_nonnegative,
    check_positive,
    check_share,
)

__all__ = [
    "DrawnPatient",
    "Estimate",
    "Scenario",
    "SimulationResult",
    "TriageClass",
    "draw_patients",
    "simulate",
]


@dataclass(frozen=True)
class TriageClass:
    """A class of patients sharing a queue point (e.g. an ESI or Manchester triage level).

    Attributes
    ----------
    name : str
        The class's name, e.g. ``"urgent"``.
    share : float
        The share of the point's arrivals in this class; the shares of a scenario sum to 1.
        Arrivals of each class are Poisson with rate ``share × λ`` (Poisson thinning).
    priority : int, default=0
        Lower is served first (``ciw`` priority classes, non-pre-emptive).
    mean_patience : float or None, default=None
        Mean time (in the scenario's time unit) a patient of this class waits before leaving
        without being seen, exponentially distributed; ``None``: never leaves.
    """

    name: str
    share: float = 1.0
    priority: int = 0
    mean_patience: float | None = None


@dataclass(frozen=True)
class Scenario:
    """A queue point over a horizon of equal periods (e.g. hours), in one time unit.

    Attributes
    ----------
    arrival_rates : tuple of float
        λ per time unit in each period, ``>= 0``.
    service_rate : float
        μ per time unit per server, ``> 0`` (exponential service).
    servers : tuple of int
        Servers on duty in each period, ``>= 0``; same length as ``arrival_rates``.
    period : float, default=1.0
        Length of a period in the time unit (60 when the unit is minutes and periods hours).
    warmup : float, default=0.0
        Time simulated before the horizon at the first period's rates and servers, not
        observed (0: the point opens empty, as a clinic does).
    cooldown : float or None, default=None
        Time simulated after the horizon, not observed, so patients who arrived in the
        horizon finish their wait. With one arrival rate (a stationary queue) arrivals go on
        during it, as in ciw's tutorial; with several the point closes (no new arrivals, the
        last period's servers, at least one). ``None``: a quarter of the horizon when
        stationary, four horizons otherwise. Patients still waiting at the end count with
        their wait so far (censored, reported in :attr:`SimulationResult.censored`).
    classes : tuple of TriageClass, default=(TriageClass("all"),)
        The patient classes.
    service_rates : tuple of float or None, default=None
        μ per period when it varies by period (a service starting in a period uses that
        period's rate; the warm-up the first's, the cool-down the last's); overrides
        ``service_rate``.
    warmup_servers : int or None, default=None
        Servers during the warm-up (default: the first period's). A what-if that adds
        servers from the first period keeps the current roster's warm-up, so the queue
        already waiting is the same before and after the change.
    """

    arrival_rates: tuple[float, ...]
    service_rate: float
    servers: tuple[int, ...]
    period: float = 1.0
    warmup: float = 0.0
    cooldown: float | None = None
    classes: tuple[TriageClass, ...] = field(default=(TriageClass("all"),))
    service_rates: tuple[float, ...] | None = None
    warmup_servers: int | None = None

    def __post_init__(self) -> None:
        """Check the scenario, raising :class:`QueueInputError` naming the field."""
        if not self.arrival_rates:
            raise QueueInputError("arrival_rates", self.arrival_rates, "needs >= 1 period")
        for rate in self.arrival_rates:
            check_nonnegative("arrival_rates", rate)
        check_positive("service_rate", self.service_rate)
        if self.service_rates is not None:
            if len(self.service_rates) != len(self.arrival_rates):
                raise QueueInputError(
                    "service_rates", self.service_rates, "needs one entry per period"
                )
            for rate in self.service_rates:
                check_positive("service_rates", rate)
        if len(self.servers) != len(self.arrival_rates):
            raise QueueInputError(
                "servers", self.servers, "needs one entry per period of arrival_rates"
            )
        for count in self.servers:
            check_count("servers", count, minimum=0)
        check_positive("period", self.period)
        check_nonnegative("warmup", self.warmup)
        if self.warmup_servers is not None:
            check_count("warmup_servers", self.warmup_servers, minimum=0)
        if self.cooldown is not None:
            check_nonnegative("cooldown", self.cooldown)
        if not self.classes:
            raise QueueInputError("classes", self.classes, "needs >= 1 class")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise QueueInputError("classes", names, "class names must be distinct")
        for cls in self.classes:
            if cls.share != 1.0:
                check_share("classes.share", cls.share)
            if cls.mean_patience is not None:
                check_positive("classes.mean_patience", cls.mean_patience)
        if not math.isclose(sum(c.share for c in self.classes), 1.0, abs_tol=1e-9):
            raise QueueInputError("classes", names, "shares must sum to 1")

    @property
    def horizon(self) -> float:
        """Length of the observed horizon: periods × period length."""
        return len(self.arrival_rates) * self.period


@dataclass(frozen=True)
class Estimate:
    """A simulated figure: the mean across replications and its confidence interval.

    Attributes
    ----------
    mean : float
        Mean of the per-replication values (NaN if no replication had a value).
    low, high : float
        The two-sided Student-t confidence interval (equal to ``mean`` when all values are
        equal; NaN with fewer than two values).
    replications : int
        How many replications gave a value (one with no patient gives none).
    """

    mean: float
    low: float
    high: float
    replications: int

    def contains(self, value: float) -> bool:
        """Tell whether ``value`` lies in ``[low, high]``."""
        return self.low <= value <= self.high


def _estimate(values: Sequence[float], confidence: float) -> Estimate:
    finite = [v for v in values if not math.isnan(v)]
    n = len(finite)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = statistics.fmean(finite)
    if n == 1:
        return Estimate(mean, math.nan, math.nan, 1)
    sem = statistics.stdev(finite) / math.sqrt(n)
    if sem == 0:
        return Estimate(mean, mean, mean, n)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return Estimate(mean, float(low), float(high), n)


@dataclass(frozen=True)
class SimulationResult:
    """What :func:`simulate` found, over patients arriving in the observed horizon.

    Times are in the scenario's time unit.

    Attributes
    ----------
    mean_wait : Estimate
        Mean wait from arrival to service start of the patients seen (those still waiting
        at the end count with their censored wait).
    within_target : Estimate or None
        Share of those patients seen within ``target_wait`` (None without a target).
    utilization : Estimate
        Busy server-time ÷ rostered server-time over the horizon.
    left_without_being_seen : Estimate
        Share of arrivals who reneged.
    arrivals : Estimate
        Arrivals in the horizon per replication.
    wait_by_period : tuple of Estimate
        Mean wait of the patients arriving in each period.
    wait_by_class : dict of str to Estimate
        Mean wait per triage class.
    censored : int
        Patients (all replications) still waiting when the run ended.
    replications : int
    seed : int
        The first seed; replication ``r`` used ``seed + r``.
    confidence : float
    """

    mean_wait: Estimate
    within_target: Estimate | None
    utilization: Estimate
    left_without_being_seen: Estimate
    arrivals: Estimate
    wait_by_period: tuple[Estimate, ...]
    wait_by_class: dict[str, Estimate]
    censored: int
    replications: int
    seed: int
    confidence: float


@dataclass(frozen=True)
class _Patient:
    arrival: float  # relative to the start of the horizon
    wait: float
    seen: bool
    reneged: bool
    cls: str


@dataclass(frozen=True)
class _Replication:
    patients: tuple[_Patient, ...]
    busy_time: float  # server-time busy within the horizon
    rostered_time: float  # server-time on duty within the horizon


class _PeriodExponential(ciw.dists.Distribution):  # type: ignore[misc]
    """Exponential service whose rate is the one of the period the service starts in."""

    def __init__(self, rates: tuple[float, ...], period: float, offset: float) -> None:
        self.rates = rates
        self.period = period
        self.offset = offset

    def __repr__(self) -> str:
        return "PeriodExponential"

    def sample(self, t: float = 0.0, ind: object = None) -> float:
        index = min(max(int((t - self.offset) // self.period), 0), len(self.rates) - 1)
        # ciw's own Exponential samples with the random module that ciw.seed seeds.
        return random.expovariate(self.rates[index])


def _class_name(index: int) -> str:
    return f"Class {index}"


def _network(scenario: Scenario, run_end: float) -> Any:
    """Build the ciw network; PoissonIntervals samples its dates here, so seed first."""
    rates = [scenario.arrival_rates[0], *scenario.arrival_rates, 0.0]
    lengths = [scenario.warmup, *([scenario.period] * len(scenario.arrival_rates))]
    lengths.append(run_end - scenario.warmup - scenario.horizon)
    # Zero-length warm-up: drop it (ciw needs strictly increasing end dates).
    if scenario.warmup == 0:
        rates, lengths = rates[1:], lengths[1:]
    ends: list[float] = []
    elapsed = 0.0
    for length in lengths:
        elapsed += length
        ends.append(elapsed)
    first = scenario.servers[0] if scenario.warmup_servers is None else scenario.warmup_servers
    servers_list = [first, *scenario.servers, max(1, scenario.servers[-1])]
    if scenario.warmup == 0:
        servers_list = servers_list[1:]
    stationary = len(set(scenario.arrival_rates)) == 1
    fixed_servers = len(set(servers_list[:-1])) == 1 and scenario.servers[0] > 0
    number_of_servers: Any = scenario.servers[0]
    if not fixed_servers:
        # ciw starts a fresh set of servers at every shift end, so equal consecutive shifts
        # are merged; and a shift change is pre-emptive with "resume" (the patient in hand
        # goes on with the next server, remaining time kept): non-pre-emptive, every server
        # of the old shift would finish in overtime beside the whole new shift, adding
        # capacity a roster change does not add.
        counts: list[int] = []
        shift_ends: list[float] = []
        for count, shift_end in zip(servers_list, ends, strict=True):
            if counts and counts[-1] == count:
                shift_ends[-1] = shift_end
            else:
                counts.append(count)
                shift_ends.append(shift_end)
        shift_ends[-1] += 1.0  # past the run's end: the cycle never restarts
        number_of_servers = ciw.Schedule(
            numbers_of_servers=counts, shift_end_dates=shift_ends, preemption="resume"
        )
    arrivals: dict[str, list[Any]] = {}
    services: dict[str, list[Any]] = {}
    reneging: dict[str, list[Any]] = {}
    priorities: dict[str, int] = {}
    for index, cls in enumerate(scenario.classes):
        name = _class_name(index)
        class_rates = [r * cls.share for r in rates]
        dist: Any
        if max(class_rates) == 0:
            dist = None
        elif stationary:
            # Exponential inter-arrivals until the horizon ends; none in the cool-down.
            dist = ciw.dists.Exponential(rate=class_rates[0])
        else:
            dist = ciw.dists.PoissonIntervals(
                rates=class_rates,
                endpoints=ends,
                max_sample_date=scenario.warmup + scenario.horizon,
            )
        arrivals[name] = [dist]
        services[name] = [
            ciw.dists.Exponential(rate=scenario.service_rate)
            if scenario.service_rates is None
            else _PeriodExponential(scenario.service_rates, scenario.period, scenario.warmup)
        ]
        reneging[name] = [
            None
            if cls.mean_patience is None
            else ciw.dists.Exponential(rate=1.0 / cls.mean_patience)
        ]
        priorities[name] = cls.priority
    kwargs: dict[str, Any] = {
        "arrival_distributions": arrivals,
        "service_distributions": services,
        "number_of_servers": [number_of_servers],
    }
    if len(scenario.classes) > 1:
        kwargs["priority_classes"] = priorities
    if any(c.mean_patience is not None for c in scenario.classes):
        kwargs["reneging_time_distributions"] = reneging
    return ciw.create_network(**kwargs)


def _overlap(start: float, end: float, low: float, high: float) -> float:
    return max(0.0, min(end, high) - max(start, low))


def _replicate(scenario: Scenario, seed: int) -> _Replication:
    stationary = len(set(scenario.arrival_rates)) == 1
    cooldown = scenario.cooldown
    if cooldown is None:
        cooldown = 0.25 * scenario.horizon if stationary else 4 * scenario.horizon
    begin = scenario.warmup
    end = begin + scenario.horizon
    run_end = end + max(cooldown, 1e-9)
    ciw.seed(seed)
    network = _network(scenario, run_end)
    simulation = ciw.Simulation(network)
    simulation.simulate_until_max_time(run_end)
    names = {_class_name(i): c.name for i, c in enumerate(scenario.classes)}
    patients: list[_Patient] = []
    busy = 0.0
    # Per patient: a roster change interrupts services (pre-emptive "resume" schedule), so a
    # patient may have several service records; the wait ends at the first service start.
    for individual in simulation.get_all_individuals():
        records = individual.data_records
        starts: list[float] = []
        for record in records:
            if record.record_type == "service":
                starts.append(record.service_start_date)
                busy += _overlap(record.service_start_date, record.service_end_date, begin, end)
            elif record.record_type == "interrupted service":
                starts.append(record.service_start_date)
                busy += _overlap(record.service_start_date, record.exit_date, begin, end)
        in_service = individual.node == 1 and bool(individual.server)
        if in_service:
            starts.append(individual.service_start_date)
            busy += _overlap(individual.service_start_date, run_end, begin, end)
        arrival = records[0].arrival_date if records else individual.arrival_date
        if not begin <= arrival < end:
            continue
        reneged = any(r.record_type == "renege" for r in records)
        seen = bool(starts)
        wait = min(starts) - arrival if seen else run_end - arrival
        if reneged:
            wait = next(r.waiting_time for r in records if r.record_type == "renege")
        patients.append(
            _Patient(
                arrival=arrival - begin,
                wait=wait,
                seen=seen,
                reneged=reneged,
                cls=names[individual.original_class],
            )
        )
    patients.sort(key=lambda p: p.arrival)
    rostered = sum(scenario.servers) * scenario.period
    return _Replication(tuple(patients), busy, rostered)


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def summarise(
    scenario: Scenario,
    replications: Sequence[_Replication],
    *,
    target_wait: float | None,
    seed: int,
    confidence: float,
) -> SimulationResult:
    def waits(rep: _Replication, low: float = 0.0, high: float = math.inf) -> list[float]:
        return [p.wait for p in rep.patients if not p.reneged and low <= p.arrival < high]

    mean_wait = _estimate([_mean(waits(r)) for r in replications], confidence)
    within: Estimate | None = None
    if target_wait is not None:
        within = _estimate(
            [_mean([1.0 if w <= target_wait else 0.0 for w in waits(r)]) for r in replications],
            confidence,
        )
    utilization = _estimate(
        [r.busy_time / r.rostered_time if r.rostered_time else math.nan for r in replications],
        confidence,
    )
    lwbs = _estimate(
        [_mean([1.0 if p.reneged else 0.0 for p in r.patients]) for r in replications],
        confidence,
    )
    arrivals = _estimate([float(len(r.patients)) for r in replications], confidence)
    by_period = tuple(
        _estimate(
            [_mean(waits(r, i * scenario.period, (i + 1) * scenario.period)) for r in replications],
            confidence,
        )
        for i in range(len(scenario.arrival_rates))
    )
    by_class = {
        cls.name: _estimate(
            [
                _mean([p.wait for p in r.patients if not p.reneged and p.cls == cls.name])
                for r in replications
            ],
            confidence,
        )
        for cls in scenario.classes
    }
    censored = sum(1 for r in replications for p in r.patients if not p.seen and not p.reneged)
    return SimulationResult(
        mean_wait=mean_wait,
        within_target=within,
        utilization=utilization,
        left_without_being_seen=lwbs,
        arrivals=arrivals,
        wait_by_period=by_period,
        wait_by_class=by_class,
        censored=censored,
        replications=len(replications),
        seed=seed,
        confidence=confidence,
    )


def window_mean_wait(
    replications: Sequence[_Replication], low: float, high: float, confidence: float
) -> Estimate:
    """Return the mean wait of patients seen who arrived in ``[low, high)``, with its interval.

    ``low`` and ``high`` are times from the horizon's start; Student-t across replications.
    """
    return _estimate(
        [
            _mean([p.wait for p in r.patients if not p.reneged and low <= p.arrival < high])
            for r in replications
        ],
        confidence,
    )


def run_replications(scenario: Scenario, *, replications: int, seed: int) -> list[_Replication]:
    """Run ``replications`` independent days of ``scenario`` (seeds ``seed + r``).

    Internal building block of :func:`simulate` and the roster what-if; the patients of each
    replication are kept so other windows can be summarised without simulating again.
    """
    count = check_count("replications", replications)
    return [_replicate(scenario, seed + r) for r in range(count)]


def simulate(
    scenario: Scenario,
    *,
    replications: int = 10,
    seed: int = 0,
    target_wait: float | None = None,
    confidence: float = 0.95,
) -> SimulationResult:
    """Simulate a queue point with ``ciw`` and summarise waits with confidence intervals.

    Parameters
    ----------
    scenario : Scenario
        Rates per period, servers per period, triage classes, reneging, warm-up.
    replications : int, default=10
        Independent replications (``>= 2`` for a confidence interval).
    seed : int, default=0
        Replication ``r`` runs with ``ciw.seed(seed + r)``: the same seed gives the same
        result, and two scenarios with the same seed share random numbers.
    target_wait : float, optional
        A wait target in the scenario's time unit; gives ``within_target``.
    confidence : float, default=0.95
        Level of the Student-t intervals.

    Returns
    -------
    SimulationResult
        Mean wait, share within target, utilisation, share leaving without being seen and
        arrivals, each an :class:`Estimate` with its interval; mean wait per period and per
        class.

    Raises
    ------
    QueueInputError
        If ``replications`` is not an integer >= 1, ``target_wait`` is negative or not
        finite, or ``confidence`` is not in (0, 1).

    Examples
    --------
    The bank of ciw's tutorial (Part 4): λ = 0.2/min, μ = 0.1/min, 3 servers, 100 minutes
    of warm-up and a day observed.

    >>> result = simulate(
    ...     Scenario((0.2,), 0.1, (3,), period=1440.0, warmup=100.0, cooldown=100.0),
    ...     replications=10,
    ... )
    >>> round(result.mean_wait.mean, 2)
    5.63
    """
    if target_wait is not None:
        check_nonnegative("target_wait", target_wait)
    check_share("confidence", confidence)
    reps = run_replications(scenario, replications=replications, seed=seed)
    return summarise(scenario, reps, target_wait=target_wait, seed=seed, confidence=confidence)


@dataclass(frozen=True)
class DrawnPatient:
    """One patient of a simulated day, times from the horizon's start (scenario unit).

    Attributes
    ----------
    arrival : float
    service_start : float or None
        First service start (None: never served before the run ended, or reneged).
    service_end : float or None
        End of the (last part of the) service; None if still in service at the end.
    reneged : bool
        Left without being seen.
    cls : str
        The triage class's name.
    """

    arrival: float
    service_start: float | None
    service_end: float | None
    reneged: bool
    cls: str


def draw_patients(scenario: Scenario, *, seed: int = 0) -> tuple[DrawnPatient, ...]:
    """Return the patients of one simulated day of ``scenario`` (``ciw.seed(seed)``).

    The same day :func:`simulate` observes in its replication with this seed: time-varying
    Poisson arrivals, the roster as a ``ciw.Schedule``, exponential service. Used to lay out
    plausible ticket times (e.g. the demo's OPD and ED day), not to estimate anything.

    Parameters
    ----------
    scenario : Scenario
    seed : int, default=0

    Returns
    -------
    tuple of DrawnPatient
        Patients arriving in the observed horizon, by arrival; times relative to its start.
    """
    stationary = len(set(scenario.arrival_rates)) == 1
    cooldown = scenario.cooldown
    if cooldown is None:
        cooldown = 0.25 * scenario.horizon if stationary else 4 * scenario.horizon
    begin = scenario.warmup
    end = begin + scenario.horizon
    run_end = end + max(cooldown, 1e-9)
    ciw.seed(seed)
    simulation = ciw.Simulation(_network(scenario, run_end))
    simulation.simulate_until_max_time(run_end)
    names = {_class_name(i): c.name for i, c in enumerate(scenario.classes)}
    drawn: list[DrawnPatient] = []
    for individual in simulation.get_all_individuals():
        records = individual.data_records
        arrival = records[0].arrival_date if records else individual.arrival_date
        if not begin <= arrival < end:
            continue
        starts = [
            r.service_start_date
            for r in records
            if r.record_type in ("service", "interrupted service")
        ]
        ends = [r.service_end_date for r in records if r.record_type == "service"]
        reneged = any(r.record_type == "renege" for r in records)
        if individual.node == 1 and bool(individual.server):
            starts.append(individual.service_start_date)
            ends = []  # still in service
        drawn.append(
            DrawnPatient(
                arrival=arrival - begin,
                service_start=min(starts) - begin if starts else None,
                service_end=max(ends) - begin if ends else None,
                reneged=reneged,
                cls=names[individual.original_class],
            )
        )
    drawn.sort(key=lambda p: p.arrival)
    return tuple(drawn)
