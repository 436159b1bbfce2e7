"""Benchmark: FHIR import throughput against fhir.resources parse-and-validate alone.

Runs, in one process on the same files:

1. baseline — read + ``json.loads`` + ``Bundle.model_validate`` (fhir.resources R4B);
2. import — ``healthos_core.fhir.importer.import_paths`` into a fresh database, wired
   as ``healthos import`` wires it (remittance posting, charge capture); a back-load by
   default, a live feed with ``--live`` (clinical events published, charges posted).

Prints resources/s for both, the ratio (target ≥ 0.7), and the peak resident memory
(target < 1 GiB). Usage::

    python -m bench.bench_fhir_import [--db URL] [--limit N] [--data DIR] [--live]
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from fhir.resources.R4B.bundle import Bundle

from bench.machine import describe
from healthos_core.db import make_engine, make_session_factory
from healthos_core.fhir.importer import import_paths, iter_source_files
from healthos_core.migrate import upgrade
from healthos_core.wiring import wire_live_path

DEFAULT_DATA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "synthea-fhir-r4" / "bundles"
)


def parse_only(files: list[Path]) -> tuple[int, float]:
    """Parse and validate every bundle with fhir.resources; return (resources, seconds)."""
    started = time.perf_counter()
    count = 0
    for path in files:
        document = json.loads(
            gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        )
        Bundle.model_validate(document)
        count += len(document.get("entry") or [])
    return count, time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run the benchmark and print a JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--db", default=None, help="database URL (default: a temporary SQLite file)"
    )
    parser.add_argument("--limit", type=int, default=None, help="first N files only")
    parser.add_argument(
        "--live", action="store_true", help="import as a live feed (healthos import --live)"
    )
    args = parser.parse_args(argv)

    files = list(iter_source_files([args.data]))[: args.limit]
    # Warm the lazily built pydantic models so neither side pays for it.
    parse_only(files[:1])

    base_count, base_seconds = parse_only(files)

    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{tmp}/bench.db"
        engine = make_engine(url)
        upgrade(engine)
        factory = make_session_factory(engine)
        wire_live_path()
        report = import_paths(factory, files, origin="live" if args.live else "backload")
        engine.dispose()

    imported = sum(report.imported.values()) + sum(report.skipped.values())
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "benchmark": "fhir_import",
        "origin": "live" if args.live else "backload",
        "files": len(files),
        "database": (args.db or "sqlite (temporary file)").split("@")[-1],
        "resources": imported,
        "rejected": len(report.rejected),
        "baseline_parse_validate": {
            "resources": base_count,
            "seconds": round(base_seconds, 2),
            "resources_per_s": round(base_count / base_seconds, 1),
        },
        "import": {
            "seconds": round(report.seconds, 2),
            "resources_per_s": round(imported / report.seconds, 1),
        },
        "ratio_import_vs_parse": round(
            (imported / report.seconds) / (base_count / base_seconds), 3
        ),
        "target_ratio": 0.7,
        "peak_rss_mib": round(peak_mib, 1),
        "target_peak_rss_mib": 1024,
        "machine": describe(),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
