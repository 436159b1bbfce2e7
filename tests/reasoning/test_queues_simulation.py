"""ciw simulation: ciw's own documented results, Erlang C within the simulation's intervals,
and what only the simulation models (rosters, time-varying arrivals, priorities, reneging)."""

from __future__ import annotations

import doctest

import pytest

from reasoning.queues import QueueInputError, Scenario, TriageClass, erlang_c, simulate
from reasoning.queues import simulation as simulation_module


def test_reproduces_ciw_tutorial_bank() -> None:
    # ciw documentation, Tutorial I part 4: λ = 0.2, μ = 0.1, ten trials seeded 0..9 of
    # 1640 minutes, waits of arrivals between minutes 100 and 1540. Published means:
    # 5.62649... with 3 servers and 0.79868... with 4.
    three = simulate(Scenario((0.2,), 0.1, (3,), period=1440.0, warmup=100.0, cooldown=100.0))
    assert three.mean_wait.mean == pytest.approx(5.62649, abs=1e-5)
    four = simulate(Scenario((0.2,), 0.1, (4,), period=1440.0, warmup=100.0, cooldown=100.0))
    assert four.mean_wait.mean == pytest.approx(0.79868, abs=1e-5)
    # Erlang C (40/9 and 20/23 minutes) lies within both 95 % intervals.
    assert three.mean_wait.contains(erlang_c(0.2, 0.1, 3).mean_wait)
    assert four.mean_wait.contains(erlang_c(0.2, 0.1, 4).mean_wait)


@pytest.mark.parametrize(
    ("lam", "mu", "servers", "horizon", "warmup"),
    [
        (2.0, 3.0, 2, 1000.0, 50.0),  # County Hospital, hours
        (4.5, 1.0, 5, 1000.0, 200.0),  # ρ = 0.9: slow to reach steady state, long warm-up
        (0.5, 0.25, 3, 2000.0, 100.0),  # ρ = 2/3
    ],
)
def test_erlang_c_within_the_simulation_interval(
    lam: float, mu: float, servers: int, horizon: float, warmup: float
) -> None:
    result = simulate(
        Scenario((lam,), mu, (servers,), period=horizon, warmup=warmup),
        replications=10,
        target_wait=0.1,
    )
    exact = erlang_c(lam, mu, servers)
    assert result.mean_wait.contains(exact.mean_wait), (result.mean_wait, exact.mean_wait)
    assert result.utilization.contains(exact.utilization), (result.utilization, exact)
    assert result.within_target is not None
    assert result.within_target.contains(exact.wait_within(0.1))
    assert result.left_without_being_seen.mean == 0.0
    assert result.censored == 0


def test_same_seed_same_result_other_seed_other_result() -> None:
    scenario = Scenario((1.0,), 1.2, (1,), period=50.0)
    assert simulate(scenario, seed=3) == simulate(scenario, seed=3)
    assert simulate(scenario, seed=3).mean_wait != simulate(scenario, seed=4).mean_wait


def test_roster_and_time_varying_arrivals() -> None:
    # Three one-hour periods (minutes): demand peaks in the middle, where the roster has
    # one server instead of three. Arrivals follow the rates; the middle hour waits most.
    rates = (0.05, 0.15, 0.05)
    short = Scenario(rates, 1 / 15, (3, 1, 3), period=60.0)
    staffed = Scenario(rates, 1 / 15, (3, 3, 3), period=60.0)
    a = simulate(short, replications=30)
    b = simulate(staffed, replications=30)
    assert a.arrivals.contains(sum(rates) * 60)
    assert a.wait_by_period[1].mean > 2 * a.wait_by_period[0].mean
    assert a.wait_by_period[1].low > b.wait_by_period[1].high
    assert a.utilization.mean > b.utilization.mean


def test_closed_period_holds_patients_until_it_reopens() -> None:
    # No server in the second period: everyone arriving then waits at least until it ends.
    result = simulate(Scenario((0.1, 0.1, 0.1), 1.0, (2, 0, 2), period=60.0), replications=10)
    assert result.wait_by_period[1].low > 15.0
    assert result.wait_by_period[0].mean < 1.0


def test_triage_priority_serves_urgent_first() -> None:
    classes = (TriageClass("urgent", 0.3, priority=0), TriageClass("routine", 0.7, priority=1))
    result = simulate(
        Scenario((0.9,), 1.0, (1,), period=300.0, warmup=30.0, classes=classes), replications=10
    )
    urgent, routine = result.wait_by_class["urgent"], result.wait_by_class["routine"]
    assert urgent.high < routine.low


def test_reneging_patients_leave_without_being_seen() -> None:
    patient = Scenario(
        (1.1,), 1.0, (1,), period=200.0, classes=(TriageClass("all", mean_patience=5.0),)
    )
    never = Scenario((1.1,), 1.0, (1,), period=200.0)
    left = simulate(patient, replications=8)
    stayed = simulate(never, replications=8)
    assert left.left_without_being_seen.low > 0.05
    assert stayed.left_without_being_seen.mean == 0.0
    assert left.mean_wait.high < stayed.mean_wait.low


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"arrival_rates": ()}, "arrival_rates"),
        ({"arrival_rates": (-1.0,)}, "arrival_rates"),
        ({"service_rate": 0.0}, "service_rate"),
        ({"servers": (1, 2)}, "servers"),
        ({"servers": (-1,)}, "servers"),
        ({"period": 0.0}, "period"),
        ({"classes": (TriageClass("a", 0.5), TriageClass("b", 0.4))}, "classes"),
        ({"classes": (TriageClass("a", 0.5), TriageClass("a", 0.5))}, "classes"),
        ({"classes": (TriageClass("a", mean_patience=0.0),)}, "classes.mean_patience"),
    ],
)
def test_scenario_rejects_bad_fields(kwargs: dict[str, object], name: str) -> None:
    fields: dict[str, object] = {"arrival_rates": (1.0,), "service_rate": 1.0, "servers": (1,)}
    fields.update(kwargs)
    with pytest.raises(QueueInputError) as caught:
        Scenario(**fields)  # type: ignore[arg-type]
    assert caught.value.parameter == name


def test_simulate_rejects_bad_arguments() -> None:
    scenario = Scenario((1.0,), 2.0, (1,), period=10.0)
    with pytest.raises(QueueInputError, match="replications"):
        simulate(scenario, replications=0)
    with pytest.raises(QueueInputError, match="confidence"):
        simulate(scenario, confidence=1.5)
    with pytest.raises(QueueInputError, match="target_wait"):
        simulate(scenario, target_wait=-1.0)


def test_docstring_example_runs() -> None:
    failures, _ = doctest.testmod(simulation_module)
    assert failures == 0


def test_a_roster_change_adds_only_the_servers_it_adds() -> None:
    # ciw starts a fresh set of servers at each shift end; the hours before a change must
    # not gain overtime capacity. Same seeds, same arrivals and service times: the first
    # six hours wait exactly as with a fixed roster of 3 (the change is only at hour 8).
    rates = (0.08, 0.12, 0.16, 0.16, 0.12, 0.08, 0.08, 0.08, 0.08)
    fixed = simulate(Scenario(rates, 1 / 20, (3,) * 9, period=60.0), replications=6)
    changed = simulate(Scenario(rates, 1 / 20, (3,) * 8 + (4,), period=60.0), replications=6)
    assert changed.wait_by_period[:6] == fixed.wait_by_period[:6]
    assert changed.arrivals == fixed.arrivals
