"""Erlang C beside ciw simulation for M/M/c queues (issue 11, "Must show").

For each (λ, μ, c): Erlang C's W_q and P(wait) (``reasoning.queues.erlang_c``), then ``ciw``
(``reasoning.queues.simulate``): independent replications after a warm-up, the mean W_q with
its 95 % Student-t interval, whether Erlang C lies in it, and the time taken.

Warm-up and run length scale with the queue's relaxation time, roughly
``1 / (cμ(1 - sqrt(ρ))^2)`` (heavy traffic relaxes slowly; P. M. Morse, "Stochastic
properties of waiting lines", *Journal of the Operations Research Society of America* 3(3),
1955), so the runs near ρ = 1 are the long ones.

Run: ``python -m bench.erlang_vs_ciw [--replications N] [--scale X]`` (``--scale`` multiplies
every run length; 1.0 takes about three minutes on the project machine).
"""

from __future__ import annotations

import argparse
import time

import ciw

from bench.machine import describe
from reasoning.queues import Scenario, erlang_c, simulate

# (label, λ, μ, c, warm-up, observed horizon), in each row's own time unit.
SETTINGS: list[tuple[str, float, float, int, float, float]] = [
    ("ciw tutorial bank (min)", 0.2, 0.1, 3, 200.0, 10_000.0),
    ("County Hospital ER (h)", 2.0, 3.0, 2, 20.0, 5_000.0),
    ("M/M/1 rho=0.95", 0.95, 1.0, 1, 5_000.0, 50_000.0),
    ("M/M/10 rho=0.9", 9.0, 1.0, 10, 1_000.0, 4_000.0),
    ("M/M/20 rho=0.95", 19.0, 1.0, 20, 300.0, 2_000.0),
    ("M/M/100 rho=0.95", 95.0, 1.0, 100, 60.0, 500.0),
    ("M/M/200 rho=0.9", 180.0, 1.0, 200, 20.0, 200.0),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=10)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    print("machine:", describe())
    print(f"replications: {args.replications}, run-length scale: {args.scale}, seeds 0..")
    header = (
        f"{'setting':<26} {'λ':>7} {'μ':>5} {'c':>4} {'ρ':>5} | {'Erlang W_q':>10} "
        f"{'P(wait)':>7} | {'ciw W_q':>9} {'95% CI':>21} {'in CI':>5} | "
        f"{'ciw util':>8} {'patients':>9} {'time s':>7}"
    )
    print(header)
    print("-" * len(header))
    started = time.perf_counter()
    inside = 0
    for label, lam, mu, c, warmup, horizon in SETTINGS:
        exact = erlang_c(lam, mu, c)
        t0 = time.perf_counter()
        result = simulate(
            Scenario((lam,), mu, (c,), period=horizon * args.scale, warmup=warmup * args.scale),
            replications=args.replications,
        )
        elapsed = time.perf_counter() - t0
        wait = result.mean_wait
        within = wait.contains(exact.mean_wait)
        inside += within
        ci = f"[{wait.low:.4f}, {wait.high:.4f}]"
        patients = result.arrivals.mean * result.replications
        print(
            f"{label:<26} {lam:>7g} {mu:>5g} {c:>4} {exact.utilization:>5.3f} | "
            f"{exact.mean_wait:>10.4f} {exact.p_wait:>7.4f} | {wait.mean:>9.4f} {ci:>21} "
            f"{'yes' if within else 'NO':>5} | {result.utilization.mean:>8.4f} "
            f"{patients:>9,.0f} {elapsed:>7.1f}"
        )
    total = time.perf_counter() - started
    print(
        f"Erlang C inside the 95 % interval in {inside}/{len(SETTINGS)} settings; "
        f"total {total:.1f} s (ciw {ciw.__version__})"
    )


if __name__ == "__main__":
    main()
