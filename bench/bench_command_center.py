"""Benchmark: the command-center page's first render and its worklist call, 10,000 vs 100.

For each size (``--sizes``, default 10,000 and 100 open nurse suggestions), in one run:

1. a fresh SQLite database (migrated) gets that many open ``clinical.news2`` suggestions for
   the nurse audience, through ``healthos_core.advisory.save_suggestions`` (the store the
   scorers use);
2. ``healthos serve`` (one uvicorn worker) serves it;
3. the list call the page makes (``GET /api/v1/suggestions?status=open&status=acknowledged
   &limit=100``, nurse token) is timed ``--calls`` times from one client: the first call
   (nothing cached) and p50/p99 over the rest, as a tablet polling the list sees them;
4. Debian's Chromium (Playwright, ``executable_path=/usr/bin/chromium``) opens ``/``, signs
   in as the nurse and waits until the review list shows its rows: time to first render
   (navigation start → the first row and the count drawn), over ``--renders`` page loads in
   fresh browser contexts (median and max).

The 100-suggestion run is the baseline for the 10,000 one (same run, same machine).
Prints one JSON document with both, the ratios, and the machine. Usage::

    python -m bench.bench_command_center [--sizes 10000 100] [--calls 200] [--renders 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.bench_api import free_port, healthos_command, serving
from bench.machine import describe
from healthos_core.advisory import save_suggestions
from healthos_core.db import make_engine, make_session_factory, session_scope
from healthos_core.migrate import upgrade
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion

CHROMIUM = "/usr/bin/chromium"
NURSE = {"Authorization": "Bearer dev-nurse"}
LIST = "/api/v1/suggestions"
PARAMS: list[tuple[str, str | int | float | bool | None]] = [
    ("status", "open"),
    ("status", "acknowledged"),
    ("limit", 100),
]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _suggestion(n: int, created: dt.datetime) -> Suggestion:
    score = float(1 + n % 12)
    severity = (
        Severity.CRITICAL if score >= 7 else Severity.WARNING if score >= 5 else Severity.INFO
    )
    return Suggestion(
        kind="clinical.news2",
        audience=Audience.NURSE,
        severity=severity,
        subject=f"Encounter/bench-{n}",
        summary=f"NEWS2 {score:g} on bench encounter {n}",
        explanation=Explanation(
            method="rule:news2",
            factors=(
                Factor(
                    name="resp_rate",
                    value=24.0,
                    contribution=2.0,
                    unit="/min",
                    text="respiratory rate 24/min",
                ),
            ),
            evidence=(f"Observation/bench-{n}-rr",),
        ),
        recommended_action="Ward-based response",
        source=Source(name="news2", version="1.0.0", reference="RCP NEWS2 2017"),
        score=score,
        band="high" if score >= 7 else "medium" if score >= 5 else "low",
        patient_id=f"bench-patient-{n}",
        created_at=created,
    )


def seed(url: str, size: int) -> float:
    """Migrate ``url`` and store ``size`` open nurse suggestions; return the seconds taken."""
    started = time.perf_counter()
    engine = make_engine(url)
    upgrade(engine)
    created = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with session_scope(make_session_factory(engine)) as session:
        save_suggestions(session, (_suggestion(n, created) for n in range(size)))
    engine.dispose()
    return time.perf_counter() - started


def _percentiles(times: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return round(statistics.median(times), 2), round(cuts[98], 2)


def time_calls(base: str, calls: int) -> dict[str, float]:
    """The page's list call: the first, p50/p99 over ``calls`` more, and uncached calls.

    Repeated calls are what a polling tablet sends: the server answers from its page
    cache while no suggestion changed (``docs/suggestions.md``). The uncached figures are
    50 calls with distinct ``limit`` values (100 down to 51), each one built afresh.
    """
    with httpx.Client(base_url=base, headers=NURSE, timeout=60) as client:
        started = time.perf_counter()
        first = client.get(LIST, params=PARAMS)
        first_ms = (time.perf_counter() - started) * 1000
        first.raise_for_status()
        count = first.json()["count"]
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            client.get(LIST, params=PARAMS).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
        uncached = []
        for limit in range(100, 50, -1):
            params = [*PARAMS[:2], ("limit", limit)]
            started = time.perf_counter()
            client.get(LIST, params=params).raise_for_status()
            uncached.append((time.perf_counter() - started) * 1000)
    p50, p99 = _percentiles(times)
    cold50, cold99 = _percentiles(uncached)
    return {
        "count": count,
        "first_ms": round(first_ms, 1),
        "p50_ms": p50,
        "p99_ms": p99,
        "uncached_p50_ms": cold50,
        "uncached_p99_ms": cold99,
    }


def time_renders(base: str, renders: int) -> dict[str, float]:
    """Navigation start → the review list's first row and count drawn, in Chromium."""
    from playwright.sync_api import sync_playwright  # a dev dependency: imported when used

    samples = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            for _ in range(renders):
                context = browser.new_context(viewport={"width": 1024, "height": 768})
                page = context.new_page()
                started = time.perf_counter()
                page.goto(f"{base}/")
                page.fill("#token", "dev-nurse")
                page.press("#token", "Enter")
                page.locator("#review button.row-open").first.wait_for(state="visible")
                page.locator("#review-count").filter(has_text="suggestion").wait_for()
                samples.append((time.perf_counter() - started) * 1000)
                context.close()
        finally:
            browser.close()
    return {"median_ms": round(statistics.median(samples), 1), "max_ms": round(max(samples), 1)}


def measure(size: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Seed, serve and time one size."""
    url = f"sqlite:///{workdir / f'cc-{size}.db'}"
    _say(f"seeding {size:,} open suggestions ...")
    seeded = seed(url, size)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHOS_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    env["HEALTHOS_VAR_DIR"] = str(workdir / "var")
    env["HEALTHOS_RESCORE"] = "off"
    command = healthos_command("serve", "--db", url, "--port", str(port))
    with serving(command, port=port, probe="/ready", workdir=workdir, env=env):
        base = f"http://127.0.0.1:{port}"
        _say(f"timing the list call ({args.calls} calls) and {args.renders} page renders ...")
        calls = time_calls(base, args.calls)
        renders = time_renders(base, args.renders)
    return {"suggestions": size, "seed_s": round(seeded, 1), "list_call": calls, **renders}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print a JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--renders", type=int, default=5)
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [measure(size, args, Path(tmp)) for size in args.sizes]
    largest, smallest = runs[0], runs[-1]
    result = {
        "benchmark": "command_center",
        "list_call": "GET /api/v1/suggestions?status=open&status=acknowledged&limit=100 (nurse)",
        "first_render": "Chromium: navigate to /, sign in, until the first row and the count show",
        "runs": runs,
        "ratio_list_p50": round(
            largest["list_call"]["p50_ms"] / smallest["list_call"]["p50_ms"], 2
        ),
        "ratio_first_list_call": round(
            largest["list_call"]["first_ms"] / smallest["list_call"]["first_ms"], 2
        ),
        "ratio_first_render": round(largest["median_ms"] / smallest["median_ms"], 2),
        "machine": describe(),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
