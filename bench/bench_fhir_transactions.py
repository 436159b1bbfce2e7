"""Benchmark: FHIR transaction Bundles posted to ``/fhir`` beside ``healthos import --live``.

Both write the same Synthea bundles through the one write path (``import_unit``,
``origin="live"``: validation, upsert, charge capture and the outbox, all or nothing per
bundle), each into a fresh database of its own, in the same run. A chargemaster derived from
the bundles' own claims is loaded into both databases first, so charge capture posts
ChargeItems on both sides.

1. ``healthos import --live FILES`` — the command, in its own process (its time includes
   the interpreter's start-up, measured separately and reported);
2. ``POST /fhir`` — a ``healthos serve`` process (one uvicorn worker, rescoring off so that
   both sides do the same work: ``HEALTHOS_RESCORE=off``) receives each bundle as a
   ``transaction`` from one client, one after another, as an EHR's interface engine sends
   them.

Prints bundles/s and resources/s of both, the ratio ``/fhir`` ÷ import, the per-bundle
latency of the posts (p50/p99), and the machine. Both databases must hold the same row
counts afterwards (checked; the bench fails otherwise). Usage::

    python -m bench.bench_fhir_transactions [--limit 20] [--data DIR] [--db-a URL --db-b URL]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import httpx
from sqlalchemy import Table, func, insert, inspect, select, table

from bench.bench_api import free_port, healthos_command, serving
from bench.machine import describe
from healthos_core.billing.entities import ChargemasterEntry
from healthos_core.db import make_engine
from healthos_core.fhir.importer import iter_source_files
from healthos_core.migrate import upgrade

DEFAULT_DATA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "synthea-fhir-r4" / "bundles"
)
ADMIN = {"Authorization": "Bearer dev-admin", "Content-Type": "application/fhir+json"}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fresh(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()


def prices(files: list[Path], workdir: Path, *targets: str) -> int:
    """Derive a chargemaster from the bundles' own claims; copy it into ``targets``.

    A back-load into a scratch database, then ``healthos chargemaster derive`` (as the test
    of the transaction path does), so charge capture posts ChargeItems on both sides.
    """
    scratch = f"sqlite:///{workdir / 'scratch.db'}"
    env = _env(workdir)
    for command in (
        ("import", "--db", scratch, *map(str, files)),
        ("chargemaster", "derive", "--db", scratch),
    ):
        subprocess.run(
            healthos_command(*command), cwd=workdir, env=env, check=True, stdout=subprocess.DEVNULL
        )
    source = make_engine(scratch)
    entries = cast(Table, ChargemasterEntry.__table__)
    with source.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(select(entries))]
    source.dispose()
    for url in targets:
        engine = make_engine(url)
        with engine.begin() as connection:
            connection.execute(insert(entries), rows)
        engine.dispose()
    return len(rows)


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        names = [n for n in inspect(engine).get_table_names() if n != "alembic_version"]
        skip = {"outbox_event", "suggestion_revision"}  # time- and random-valued bookkeeping
        with engine.connect() as connection:
            return {
                name: int(connection.scalar(select(func.count()).select_from(table(name))) or 0)
                for name in sorted(names)
                if name not in skip
            }
    finally:
        engine.dispose()


def _env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHOS_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    env["HEALTHOS_VAR_DIR"] = str(workdir / "var")
    env["HEALTHOS_RESCORE"] = "off"
    return env


def run_import(files: list[Path], url: str, workdir: Path) -> dict[str, float]:
    """``healthos import --live`` of ``files``; seconds, and the interpreter's start-up."""
    env = _env(workdir)
    started = time.perf_counter()
    subprocess.run(healthos_command("--help"), env=env, check=True, stdout=subprocess.DEVNULL)
    startup = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run(
        healthos_command("import", "--live", "--db", url, *map(str, files)),
        cwd=workdir,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return {"seconds": time.perf_counter() - started, "startup_seconds": startup}


def run_posts(files: list[Path], url: str, workdir: Path) -> dict[str, Any]:
    """POST every bundle to ``/fhir`` of a ``healthos serve``; seconds and latencies."""
    bodies = [
        gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes() for p in files
    ]
    port = free_port()
    command = healthos_command("serve", "--db", url, "--port", str(port))
    latencies: list[float] = []
    with (
        serving(command, port=port, probe="/ready", workdir=workdir, env=_env(workdir)),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client,
    ):
        started = time.perf_counter()
        for path, body in zip(files, bodies, strict=True):
            sent = time.perf_counter()
            response = client.post("/fhir", content=body, headers=ADMIN)
            latencies.append(time.perf_counter() - sent)
            if response.status_code != 200:
                raise SystemExit(f"{path.name}: {response.status_code} {response.text[:300]}")
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "latencies": latencies}


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print a JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=20, help="first N bundles (default 20)")
    parser.add_argument("--db-a", help="an empty database for the import (default: SQLite)")
    parser.add_argument("--db-b", help="an empty database for the posts (default: SQLite)")
    args = parser.parse_args(argv)

    files = list(iter_source_files([args.data]))[: args.limit]
    resources = 0
    for path in files:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        resources += len(json.loads(raw).get("entry") or [])

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url_a = args.db_a or f"sqlite:///{workdir / 'import.db'}"
        url_b = args.db_b or f"sqlite:///{workdir / 'posted.db'}"
        _fresh(url_a)
        _fresh(url_b)
        _say("deriving a chargemaster from the bundles' claims ...")
        priced = prices(files, workdir, url_a, url_b)
        _say(f"healthos import --live of {len(files)} bundles ({resources} resources) ...")
        imported = run_import(files, url_a, workdir)
        _say(f"POST /fhir of the same {len(files)} bundles ...")
        posted = run_posts(files, url_b, workdir)
        counts_a, counts_b = _counts(url_a), _counts(url_b)

    differ = {
        k: (counts_a.get(k), counts_b.get(k)) for k in counts_a if counts_a[k] != counts_b.get(k)
    }
    import_rate = len(files) / imported["seconds"]
    post_rate = len(files) / posted["seconds"]
    latencies_ms = [s * 1000 for s in posted["latencies"]]
    result = {
        "benchmark": "fhir_transactions",
        "bundles": len(files),
        "resources": resources,
        "database": "sqlite (temporary files)" if not args.db_a else "given",
        "healthos_import_live": {
            "seconds": round(imported["seconds"], 2),
            "of_which_interpreter_startup_s": round(imported["startup_seconds"], 2),
            "bundles_per_s": round(import_rate, 2),
            "resources_per_s": round(resources / imported["seconds"], 1),
        },
        "fhir_transaction_posts": {
            "seconds": round(posted["seconds"], 2),
            "bundles_per_s": round(post_rate, 2),
            "resources_per_s": round(resources / posted["seconds"], 1),
            "latency_ms": {
                "p50": round(statistics.median(latencies_ms), 1),
                "p99": round(_percentile(latencies_ms, 99), 1) if len(latencies_ms) > 1 else None,
                "max": round(max(latencies_ms), 1),
            },
        },
        "ratio_posts_vs_import": round(post_rate / import_rate, 3),
        "same_row_counts": not differ,
        "row_count_differences": differ,
        "chargemaster_entries": priced,
        "charge_items": counts_b.get("charge_item"),
        "machine": describe(),
    }
    print(json.dumps(result, indent=2))
    if differ:
        raise SystemExit(f"the two databases differ: {differ}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
