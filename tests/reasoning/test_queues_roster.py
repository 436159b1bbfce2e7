"""Roster what-if on a small synthetic clinic day: the smallest block, and ciw's check."""

from __future__ import annotations

import math

import pytest

from reasoning.queues import QueueInputError, Scenario, draw_patients, erlang_c, simulate
from reasoning.queues.estimation import ProfileHour
from reasoning.queues.roster import (
    recommend_roster_change,
    smallest_change_by_simulation,
    verify_by_simulation,
)

# An OPD clinic, 08:00-14:00: patients per hour peak at 10-12; 15-minute consultations.
ARRIVALS = {8: 4.0, 9: 8.0, 10: 14.0, 11: 14.0, 12: 9.0, 13: 4.0}
PROFILE = [ProfileHour(h, ARRIVALS.get(h, 0.0), 4.0, None, 0.0, 0, 10) for h in range(24)]
ROSTER = dict.fromkeys(range(8, 14), 3)
HORIZON = range(8, 14)
TARGET = 15.0  # minutes


def test_understaffed_peak_gets_the_smallest_block() -> None:
    rec = recommend_roster_change(PROFILE, ROSTER, TARGET, horizon=HORIZON)
    # 14/h at μ = 4/h needs ρ < 1, so >= 4 servers; Erlang C finds how many meet 15 min.
    needed = {h.hour: h.servers_needed for h in rec.hours}
    short = [h for h in HORIZON if needed[h] > ROSTER[h]]
    assert rec.change is not None
    assert (rec.change.start_hour, rec.change.end_hour) == (short[0], short[-1] + 1)
    assert rec.change.servers_added == max(needed[h] - ROSTER[h] for h in short)
    assert rec.change.server_hours == rec.change.servers_added * len(
        range(rec.change.start_hour, rec.change.end_hour)
    )
    for hour in rec.hours:
        assert hour.wait_after_minutes <= TARGET
        expected = erlang_c(hour.arrival_rate, 4.0, hour.servers_after).mean_wait * 60
        assert hour.wait_after_minutes == pytest.approx(expected)
    # Before: the 14/h hours face 3 servers, ρ = 14/12 > 1: unstable, infinite wait.
    assert rec.hours[2].wait_before_minutes == math.inf
    assert rec.window_wait_before_minutes == math.inf
    assert rec.window_wait_after_minutes <= TARGET
    assert not rec.meets_target_before


def test_nothing_smaller_meets_the_target() -> None:
    rec = recommend_roster_change(PROFILE, ROSTER, TARGET, horizon=HORIZON)
    assert rec.change is not None
    start, end, k = rec.change.start_hour, rec.change.end_hour, rec.change.servers_added

    def meets(block_start: int, block_end: int, added: int) -> bool:
        for hour in HORIZON:
            servers = ROSTER[hour] + (added if block_start <= hour < block_end else 0)
            lam = ARRIVALS[hour]
            if erlang_c(lam, 4.0, servers).mean_wait * 60 > TARGET:
                return False
        return True

    assert meets(start, end, k)
    assert not meets(start, end, k - 1)
    assert not meets(start + 1, end, k)
    assert not meets(start, end - 1, k)


def test_a_roster_meeting_the_target_needs_no_change() -> None:
    roster = dict.fromkeys(HORIZON, 6)
    rec = recommend_roster_change(PROFILE, roster, TARGET, horizon=HORIZON)
    assert rec.change is None
    assert rec.meets_target_before
    assert rec.roster_after == rec.roster_before
    assert rec.window_wait_after_minutes == rec.window_wait_before_minutes <= TARGET


def test_an_unstaffed_hour_with_arrivals_is_infinite_and_gets_staff() -> None:
    roster = {8: 0, 9: 3, 10: 6, 11: 6, 12: 6, 13: 6}
    rec = recommend_roster_change(PROFILE, roster, TARGET, horizon=HORIZON)
    assert rec.hours[0].wait_before_minutes == math.inf
    assert rec.hours[0].utilization_before == math.inf
    assert rec.change is not None
    assert rec.change.start_hour == 8
    assert rec.hours[0].servers_after >= rec.hours[0].servers_needed


def test_simulation_confirms_the_change() -> None:
    rec = recommend_roster_change(PROFILE, ROSTER, TARGET, horizon=HORIZON)
    check = verify_by_simulation(rec, replications=15, seed=11)
    assert check.window == (rec.change.start_hour, rec.change.end_hour)  # type: ignore[union-attr]
    assert check.window_wait_after.high < check.window_wait_before.low
    assert check.window_wait_after.mean <= TARGET
    assert check.after.mean_wait.mean < check.before.mean_wait.mean
    assert check.after.within_target is not None
    assert check.before.within_target is not None
    assert check.after.within_target.mean > check.before.within_target.mean
    assert len(check.before.wait_by_period) == len(HORIZON)
    # Same seeds, same arrivals: the two scenarios see the same patients.
    assert check.before.arrivals == check.after.arrivals


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"target_wait_minutes": 0.0}, "target_wait_minutes"),
        ({"horizon": [8, 10]}, "horizon"),
        ({"horizon": []}, "horizon"),
        ({"horizon": [23, 24]}, "horizon"),
        ({"roster": {8: -1}}, "roster"),
        ({"profile_hours": PROFILE[:9]}, "profile_hours"),
        (
            {"profile_hours": [ProfileHour(h, 1.0, None, None, 0.0, 0, 1) for h in range(24)]},
            "profile_hours",
        ),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], name: str) -> None:
    args: dict[str, object] = {
        "profile_hours": PROFILE,
        "roster": ROSTER,
        "target_wait_minutes": TARGET,
        "horizon": HORIZON,
    }
    args.update(kwargs)
    with pytest.raises(QueueInputError) as caught:
        recommend_roster_change(**args)  # type: ignore[arg-type]
    assert caught.value.parameter == name


def test_simulation_finds_a_block_no_larger_than_erlang_c() -> None:
    rec = recommend_roster_change(PROFILE, ROSTER, TARGET, horizon=HORIZON)
    assert rec.change is not None
    found = smallest_change_by_simulation(rec, replications=10, seed=5)
    assert found.meets_target
    assert found.change is not None  # the current roster is unstable at the peak
    assert found.change.server_hours <= rec.change.server_hours
    assert all(e.mean <= TARGET for e in found.result.wait_by_period)
    for hour, servers in found.roster_after.items():
        inside = found.change.start_hour <= hour < found.change.end_hour
        assert servers == ROSTER[hour] + (found.change.servers_added if inside else 0)
    assert found.candidates >= 2


def test_simulation_keeps_a_roster_that_already_meets_the_target() -> None:
    rec = recommend_roster_change(PROFILE, dict.fromkeys(HORIZON, 6), TARGET, horizon=HORIZON)
    found = smallest_change_by_simulation(rec, replications=5)
    assert found.change is None
    assert found.meets_target
    assert found.candidates == 1


def test_starting_by_the_first_breach_finds_the_same_block_with_fewer_rosters() -> None:
    rec = recommend_roster_change(PROFILE, ROSTER, TARGET, horizon=HORIZON)
    full = smallest_change_by_simulation(rec, replications=5, seed=5)
    pruned = smallest_change_by_simulation(rec, replications=5, seed=5, start_by_first_breach=True)
    assert pruned.change == full.change
    assert pruned.result == full.result
    assert pruned.candidates < full.candidates


def test_a_warmup_with_the_current_roster_keeps_the_queue_already_waiting() -> None:
    """Warm-up servers apart from the horizon's: a backlog the extra servers start with."""
    rates, mu = (14 / 60, 14 / 60), 4 / 60
    opened = Scenario(rates, mu, (5, 5), period=60.0, warmup=120.0)
    backlog = Scenario(rates, mu, (5, 5), period=60.0, warmup=120.0, warmup_servers=1)
    empty = simulate(opened, replications=10, seed=1)
    waiting = simulate(backlog, replications=10, seed=1)
    # Two hours at 14/h against 4/h build about 20 waiting, cleared at 6/h: long waits.
    assert waiting.mean_wait.low > empty.mean_wait.high
    # The roster what-if's scenarios keep the current first hour's servers for the warm-up.
    rec = recommend_roster_change(PROFILE, ROSTER, TARGET, horizon=HORIZON)
    plain = verify_by_simulation(rec, replications=3, seed=2, warmup_minutes=60.0)
    assert plain.after.mean_wait.mean < plain.before.mean_wait.mean


def test_draw_patients_is_the_day_simulate_observes() -> None:
    scenario = Scenario((6 / 60, 12 / 60, 4 / 60), 4 / 60, (2, 3, 1), period=60.0)
    day = draw_patients(scenario, seed=3)
    again = simulate(scenario, replications=1, seed=3)
    assert len(day) == again.arrivals.mean
    assert [p.arrival for p in day] == sorted(p.arrival for p in day)
    for patient in day:
        assert 0 <= patient.arrival < scenario.horizon
        assert patient.service_start is not None and patient.service_start >= patient.arrival
        assert patient.service_end is not None and patient.service_end > patient.service_start
    waits = [p.service_start - p.arrival for p in day if p.service_start is not None]
    assert sum(waits) / len(waits) == pytest.approx(again.mean_wait.mean)
    assert draw_patients(scenario, seed=3) == day
