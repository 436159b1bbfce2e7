"""Benchmark: posting every shared ClaimResponse to the ledger, with the ledger checked.

Prepares a database with the patients that have claims (their Synthea bundles), the
payers, coverage and claims of ``../shared/data/synthea-rcm`` (claims are charged to the
ledger on import), then measures on the same database, in one process:

1. baseline — ``import_paths`` of ``claimresponses.ndjson.gz`` with the remittance hook
   unregistered (read, ``fhir.resources`` validation, reference resolution, upsert);
2. posting — :func:`healthos_core.billing.remittance.post_claim_responses` of all the
   responses (validation against the claims and code lists, adjudication rows, journal
   entries, claim status and history, bulk Core inserts) plus
   :func:`~healthos_core.billing.ledger.trial_balance` (the ledger check), committed;
3. end to end — the remittance rows are removed and the file is imported again with
   the hook registered (import + posting in one savepoint).

Prints responses/s for each (target: posting ≥ 2,000 responses/s with the ledger
checked, on 2 cores), the check results and the machine. Usage::

    python -m bench.bench_remittance [--db URL [--reset]] [--prepared FILE.db]

``--db`` must name an empty database (``--reset`` drops its HealthOS tables first).
``--prepared`` (SQLite only) keeps the prepared database in FILE.db and reuses it on
the next run (preparing imports ~400 bundles: about a minute and a half).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, inspect, select, text, update
from sqlalchemy.engine import Engine

from bench.machine import describe
from healthos_core.billing.entities import Claim, ClaimResponse, ClaimStatusHistory
from healthos_core.billing.ledger import JournalEntry, LedgerPosting, trial_balance
from healthos_core.billing.remittance import (
    ClaimResponseAdjudication,
    post_claim_responses,
    register_remittance_hooks,
    unregister_remittance_hooks,
)
from healthos_core.db import Base, make_engine, make_session_factory
from healthos_core.fhir.importer import import_paths
from healthos_core.wiring import wire_live_path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _patients_with_claims(rcm: Path) -> set[str]:
    with gzip.open(rcm / "claims.ndjson.gz", "rt", encoding="utf-8") as handle:
        return {
            json.loads(line)["patient"]["reference"].rsplit("/", 1)[-1]
            for line in handle
            if line.strip()
        }


def prepare(engine: Engine, data: Path) -> dict[str, Any]:
    """Import bundles of patients with claims, then payers, coverage and claims."""
    wire_live_path()  # as `healthos import` does: imported claims post to the ledger
    rcm = data / "synthea-rcm"
    wanted = _patients_with_claims(rcm)
    with (data / "synthea-fhir-r4" / "manifest.csv").open(encoding="utf-8") as handle:
        bundles = [
            data / "synthea-fhir-r4" / "bundles" / row["file"]
            for row in csv.DictReader(handle)
            if row["patient_id"] in wanted
        ]
    factory = make_session_factory(engine)
    started = time.perf_counter()
    report = import_paths(
        factory,
        [
            *bundles,
            rcm / "payers.ndjson.gz",
            rcm / "coverage.ndjson.gz",
            rcm / "claims.ndjson.gz",
        ],
    )
    if report.rejected:
        raise SystemExit(f"preparation rejected files: {report.rejected[:3]}")
    return {
        "bundles": len(bundles),
        "claims": report.imported.get("Claim", 0),
        "seconds": round(time.perf_counter() - started, 1),
    }


def reset_remittances(engine: Engine) -> None:
    """Remove every posted remittance so the responses can be imported again."""
    with engine.begin() as conn:
        entries = select(JournalEntry.id).where(JournalEntry.source_ref.like("ClaimResponse/%"))
        conn.execute(delete(LedgerPosting).where(LedgerPosting.journal_entry_id.in_(entries)))
        conn.execute(delete(JournalEntry).where(JournalEntry.source_ref.like("ClaimResponse/%")))
        conn.execute(delete(ClaimResponseAdjudication))
        conn.execute(delete(ClaimStatusHistory).where(ClaimStatusHistory.actor == "remittance"))
        conn.execute(
            update(Claim)
            .where(Claim.billing_status.is_not(None))
            .values(billing_status="submitted")
        )
        conn.execute(delete(ClaimResponse))


def _payments_in_file(path: Path) -> tuple[int, Decimal, list[dict[str, Any]]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        resources = [json.loads(line) for line in handle if line.strip()]
    paid = sum(
        (Decimal(str(r["payment"]["amount"]["value"])) for r in resources if r.get("payment")),
        Decimal("0.00"),
    )
    return len(resources), paid, resources


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print a JSON result."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--db", default=None, help="database URL (default: temporary SQLite)")
    parser.add_argument("--prepared", type=Path, default=None, help="SQLite cache file")
    parser.add_argument(
        "--reset", action="store_true", help="drop the HealthOS tables of --db before starting"
    )
    args = parser.parse_args(argv)
    responses_path = args.data / "synthea-rcm" / "claimresponses.ndjson.gz"
    count, paid_in_file, resources = _payments_in_file(responses_path)

    with tempfile.TemporaryDirectory() as tmp:
        if args.db:
            engine = make_engine(args.db)
            if "claim" in inspect(engine).get_table_names():
                if not args.reset:
                    raise SystemExit(
                        f"{args.db} already has HealthOS tables: use an empty database, or "
                        "pass --reset to drop them first"
                    )
                Base.metadata.drop_all(engine)
            Base.metadata.create_all(engine)
            preparation = prepare(engine, args.data)
        else:
            work = Path(tmp) / "bench.db"
            if args.prepared is not None and args.prepared.exists():
                shutil.copy(args.prepared, work)
                preparation = {"reused": str(args.prepared)}
                engine = make_engine(f"sqlite:///{work}")
            else:
                engine = make_engine(f"sqlite:///{work}")
                Base.metadata.create_all(engine)
                preparation = prepare(engine, args.data)
                if args.prepared is not None:
                    engine.dispose()
                    args.prepared.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(work, args.prepared)
                    engine = make_engine(f"sqlite:///{work}")
        factory = make_session_factory(engine)

        # 1. baseline: the importer alone
        unregister_remittance_hooks()
        baseline = import_paths(factory, [responses_path])
        if baseline.rejected:
            raise SystemExit(f"baseline import rejected: {baseline.rejected}")

        # 2. posting alone, with the ledger checked, committed
        started = time.perf_counter()
        with factory() as session, session.begin():
            summary = post_claim_responses(session, resources, source=str(responses_path))
            balance = trial_balance(session)
        posting_seconds = time.perf_counter() - started

        # 3. end to end: import with the hook
        reset_remittances(engine)
        register_remittance_hooks()
        started = time.perf_counter()
        full = import_paths(factory, [responses_path])
        full_seconds = time.perf_counter() - started
        if full.rejected:
            raise SystemExit(f"import with posting rejected: {full.rejected}")
        with factory() as session:
            balance_after = trial_balance(session)
            posted_paid = session.scalar(
                select(func.sum(LedgerPosting.debit)).where(
                    LedgerPosting.journal_entry_id.in_(
                        select(JournalEntry.id).where(JournalEntry.kind == "payment")
                    )
                )
            )
            adjudications = session.scalar(
                select(func.count()).select_from(ClaimResponseAdjudication)
            )
        database = engine.url.render_as_string(hide_password=True).split("@")[-1]
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                database += " / " + str(conn.execute(text("show server_version")).scalar())
        engine.dispose()

    result = {
        "benchmark": "remittance_posting",
        "database": database,
        "responses": count,
        "preparation": preparation,
        "baseline_import_without_posting": {
            "seconds": round(baseline.seconds, 2),
            "responses_per_s": round(count / baseline.seconds, 1),
        },
        "posting_with_ledger_check": {
            "seconds": round(posting_seconds, 2),
            "responses_per_s": round(count / posting_seconds, 1),
            "posted": summary.posted,
            "journal_entries": summary.journal_entries,
            "underpaid_lines": summary.underpaid_lines,
            "ledger_balanced": balance["balanced"],
        },
        "import_with_posting": {
            "seconds": round(full_seconds, 2),
            "responses_per_s": round(count / full_seconds, 1),
            "ratio_vs_baseline": round(baseline.seconds / full_seconds, 3),
            "adjudication_rows": adjudications,
            "ledger_balanced": balance_after["balanced"],
            "ledger_debits": str(balance_after["debits"]),
            "paid_posted": str(Decimal(str(posted_paid or 0)).quantize(Decimal("0.01"))),
            "paid_in_file": str(paid_in_file),
        },
        "target_responses_per_s": 2000,
        "machine": describe(),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
