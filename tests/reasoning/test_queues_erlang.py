"""Erlang C against published values, an independent computation, and its own invariants."""

from __future__ import annotations

import doctest
import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from healthos_core.errors import InvalidInputError
from reasoning.queues import QueueInputError, erlang_b, erlang_c, smallest_servers
from reasoning.queues import erlang as erlang_module

# --- Published values --------------------------------------------------------------------


def test_county_hospital_emergency_room_one_and_two_doctors() -> None:
    # Hillier & Lieberman, Introduction to Operations Research, "Queueing Theory" chapter,
    # County Hospital emergency room (M/M/s): λ = 2 patients/h, μ = 3 patients/h per doctor.
    # Published: s=1: Lq = 4/3, Wq = 2/3 h, P(Wq > 0) = 2/3;
    #            s=2: Lq = 1/12, Wq = 1/24 h, P(Wq > 0) = 1/6.
    # The tail P(Wq > t) = C·exp(-(sμ - λ)t) in closed form: (2/3)e^(-1/2) = 0.404 for one
    # doctor and (1/6)e^(-2) for two, at t = 1/2 h.
    one = erlang_c(2.0, 3.0, 1)
    assert one.utilization == pytest.approx(2 / 3)
    assert one.mean_queue_length == pytest.approx(4 / 3)
    assert one.mean_wait == pytest.approx(2 / 3)
    assert one.p_wait == pytest.approx(2 / 3)
    assert 1 - one.wait_within(0.5) == pytest.approx(0.404, abs=5e-4)
    two = erlang_c(2.0, 3.0, 2)
    assert two.mean_queue_length == pytest.approx(1 / 12)
    assert two.mean_wait == pytest.approx(1 / 24)
    assert two.p_wait == pytest.approx(1 / 6)
    assert 1 - two.wait_within(0.5) == pytest.approx(math.exp(-2) / 6)


def test_call_centre_erlang_c_worked_example() -> None:
    # The standard call-centre worked example (Call Centre Helper, "Erlang C formula - made
    # simple"): 100 calls per 30 minutes, 180 s average handling time, 14 agents, 20 s
    # answer target. Published: traffic 10 erlangs, P(wait) = 0.1741319335950498 and
    # service level 0.8883500191794669 (pyworkforce README, ErlangC 0.1.0), average speed
    # of answer 7.83593701177724 s (R package ErlangC 0.1.0 README); 14 agents is the
    # smallest meeting 80 % within 20 s ("raw_positions": 14 in the pyworkforce README).
    lam, mu = 100 / 1800, 1 / 180  # per second
    result = erlang_c(lam, mu, 14)
    assert result.offered_load == pytest.approx(10.0)
    assert result.p_wait == pytest.approx(0.1741319335950498, rel=1e-12)
    assert result.wait_within(20) == pytest.approx(0.8883500191794669, rel=1e-12)
    assert result.mean_wait == pytest.approx(7.83593701177724, rel=1e-12)
    assert result.utilization == pytest.approx(0.7142857142857143)
    assert smallest_servers(lam, mu, 20, within_share=0.8) == 14
    assert erlang_c(lam, mu, 13).wait_within(20) < 0.8


def test_ciw_tutorial_bank_mean_waits_from_its_published_trials() -> None:
    # ciw documentation, Tutorial I part 4 ("Trials, Warm-up & Cool-down"): a bank with
    # λ = 0.2/min, μ = 0.1/min and 3 servers, ten trials of a 1440-minute day, whose
    # published mean waits are below. Erlang C W_q = 40/9 min lies in their 95 % t interval.
    published = [3.91950, 4.34163, 4.61779, 5.33537, 5.06224, 2.90274, 4.93209, 17.95093]
    published += [4.06136, 3.14126]
    n = len(published)
    mean = sum(published) / n
    assert mean == pytest.approx(5.62649, abs=1e-4)  # as the tutorial prints
    sem = stats.tstd(published) / math.sqrt(n)
    low, high = stats.t.interval(0.95, n - 1, loc=mean, scale=sem)
    wait = erlang_c(0.2, 0.1, 3).mean_wait
    assert wait == pytest.approx(40 / 9)
    assert low <= wait <= high
    # With 4 servers the tutorial finds 0.79868 min; Erlang C gives 20/23 min.
    assert erlang_c(0.2, 0.1, 4).mean_wait == pytest.approx(20 / 23)


# --- Independent computation and scale ---------------------------------------------------


def _erlang_c_via_poisson(load: float, servers: int) -> float:
    # Erlang B = Poisson pmf / cdf at c (a classical identity), in log space with scipy.
    blocking = math.exp(stats.poisson.logpmf(servers, load) - stats.poisson.logcdf(servers, load))
    rho = load / servers
    return blocking / (1 - rho * (1 - blocking))


@pytest.mark.parametrize(("load", "servers"), [(2.0, 3), (9.0, 10), (95.0, 100), (480.0, 500)])
def test_agrees_with_scipy_poisson_identity(load: float, servers: int) -> None:
    result = erlang_c(load, 1.0, servers)
    assert result.p_wait == pytest.approx(_erlang_c_via_poisson(load, servers), rel=1e-9)


def test_five_hundred_and_five_thousand_servers_stay_finite() -> None:
    big = erlang_c(490.0, 1.0, 500)
    assert big.stable
    assert 0 < big.p_wait < 1
    assert math.isfinite(big.mean_wait)
    assert big.mean_queue_length == pytest.approx(490.0 * big.mean_wait)
    huge = erlang_c(4990.0, 1.0, 5000)
    assert 0 < huge.p_wait < 1
    assert math.isfinite(huge.mean_wait)
    assert smallest_servers(490.0, 1.0, 0.01) > 490


# --- Unstable and invalid ------------------------------------------------------------------


@pytest.mark.parametrize(("lam", "servers"), [(3.0, 1), (6.0, 2), (7.5, 2)])
def test_rho_at_or_above_one_is_unstable_and_infinite(lam: float, servers: int) -> None:
    result = erlang_c(lam, 3.0, servers)
    assert not result.stable
    assert result.utilization >= 1
    assert result.p_wait == 1.0
    assert result.mean_wait == math.inf
    assert result.mean_queue_length == math.inf
    assert result.wait_within(1000.0) == 0.0


def test_no_arrivals_means_no_wait() -> None:
    result = erlang_c(0.0, 2.0, 1)
    assert result.stable
    assert (result.p_wait, result.mean_wait, result.mean_queue_length) == (0.0, 0.0, 0.0)
    assert result.wait_within(0.0) == 1.0
    assert smallest_servers(0.0, 2.0, 5.0) == 0


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((-1.0, 1.0, 1), "arrival_rate"),
        ((math.nan, 1.0, 1), "arrival_rate"),
        ((math.inf, 1.0, 1), "arrival_rate"),
        ((1.0, 0.0, 1), "service_rate"),
        ((1.0, -2.0, 1), "service_rate"),
        ((1.0, math.inf, 1), "service_rate"),
        ((1.0, 1.0, 0), "servers"),
        ((1.0, 1.0, -3), "servers"),
        ((1.0, 1.0, 2.0), "servers"),
        ((1.0, 1.0, True), "servers"),
        (("1", 1.0, 1), "arrival_rate"),
    ],
)
def test_invalid_input_names_the_argument(args: tuple[object, object, object], name: str) -> None:
    with pytest.raises(QueueInputError) as caught:
        erlang_c(*args)  # type: ignore[arg-type]
    assert caught.value.parameter == name
    assert name in str(caught.value)
    assert isinstance(caught.value, InvalidInputError)
    assert isinstance(caught.value, ValueError)


def test_wait_within_rejects_a_negative_time() -> None:
    with pytest.raises(QueueInputError, match="t="):
        erlang_c(1.0, 2.0, 1).wait_within(-1.0)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"target_wait": 0.0}, "target_wait"),
        ({"target_wait": -1.0}, "target_wait"),
        ({"target_wait": 1.0, "within_share": 1.0}, "within_share"),
        ({"target_wait": 1.0, "within_share": 0.0}, "within_share"),
    ],
)
def test_smallest_servers_rejects_impossible_targets(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(QueueInputError) as caught:
        smallest_servers(2.0, 1.0, **kwargs)
    assert caught.value.parameter == name


def test_erlang_b_known_value() -> None:
    # Erlang B, a = 2, c = 3: (8/6) / (1 + 2 + 2 + 8/6) = 4/19.
    assert erlang_b(2.0, 3) == pytest.approx(4 / 19)


def test_docstring_example_runs() -> None:
    failures, _ = doctest.testmod(erlang_module)
    assert failures == 0


# --- Properties ----------------------------------------------------------------------------

loads = st.floats(min_value=0.0, max_value=300.0, allow_nan=False)
rates = st.floats(min_value=0.01, max_value=100.0, allow_nan=False)


@given(load=loads, mu=rates, extra=st.integers(min_value=0, max_value=60))
def test_p_wait_is_a_probability_and_little_holds(load: float, mu: float, extra: int) -> None:
    servers = max(1, math.floor(load) + 1 + extra)
    result = erlang_c(load * mu, mu, servers)
    assert 0.0 <= result.p_wait <= 1.0
    assert result.stable == (result.utilization < 1)
    if result.stable:
        assert result.mean_queue_length == pytest.approx(
            result.arrival_rate * result.mean_wait, rel=1e-9, abs=1e-300
        )


@given(load=loads, mu=rates)
def test_more_servers_never_wait_longer(load: float, mu: float) -> None:
    start = math.floor(load) + 1
    results = [erlang_c(load * mu, mu, c) for c in range(start, start + 6)]
    for fewer, more in itertools.pairwise(results):
        assert more.p_wait <= fewer.p_wait + 1e-12
        assert more.mean_wait <= fewer.mean_wait + 1e-12


@given(
    load=st.floats(min_value=0.1, max_value=200.0), target=st.floats(min_value=0.01, max_value=5)
)
def test_smallest_servers_is_smallest(load: float, target: float) -> None:
    c = smallest_servers(load, 1.0, target)
    assert erlang_c(load, 1.0, c).mean_wait <= target
    if c - 1 >= 1:
        assert erlang_c(load, 1.0, c - 1).mean_wait > target


@given(load=st.floats(min_value=0.1, max_value=50.0), t=st.floats(min_value=0, max_value=10))
def test_wait_within_is_a_cdf(load: float, t: float) -> None:
    result = erlang_c(load, 1.0, math.floor(load) + 2)
    assert 1 - result.p_wait <= result.wait_within(t) + 1e-12
    assert result.wait_within(t) <= result.wait_within(t + 1) + 1e-12
    assert result.wait_within(t) <= 1.0
