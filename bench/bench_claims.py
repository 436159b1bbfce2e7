"""Benchmark: building and scrubbing a claim for every shared encounter synthea-rcm bills.

Prepares a database with the patients that have claims in ``../shared/data/synthea-rcm``
(their Synthea bundles), the payers and coverage (not the rcm claims or responses), the
contracts, service codes and bundling edits, and a chargemaster derived from the bundles'
claims; then posts the charges of the billed encounters (class AMB/EMER/IMP, started on
or after 2011-01-01, patient with a Coverage): the visit fee
(:func:`~healthos_core.billing.capture.capture_encounter`) and the procedures
(:func:`~healthos_core.billing.capture.capture_procedure`). Then measures, in one process:

1. building — :func:`healthos_core.billing.claims.build_claim` for every such encounter,
   committed in batches (encounters that raise a ``HealthOSError``, e.g. no billable
   charge or no coverage, are skipped and counted);
2. scrubbing — :func:`~healthos_core.billing.claims.scrub_claim` of every built claim with
   ``as_of`` its first date of service + 5 days, one call per claim, and again with
   :func:`~healthos_core.billing.claims.scrub_claims` on the claims sharing that
   ``as_of`` (the results must agree);
3. baseline — reading the same claims with their lines and diagnoses from the database.

Prints claims/s for each, the ratios against the baseline, the claims per scrubber edit
and the machine. Usage::

    python -m bench.bench_claims [--db URL [--reset]] [--limit N] [--prepared FILE.db]

``--db`` must name an empty database (``--reset`` drops its HealthOS tables first).
``--limit`` keeps the first N encounters (by start). ``--prepared`` (SQLite only) keeps
the prepared database (before charge capture) in FILE.db and reuses it on the next run.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import selectinload

from bench.bench_remittance import SHARED, _patients_with_claims
from bench.machine import describe
from healthos_core.billing.capture import capture_encounter, capture_procedure
from healthos_core.billing.chargemaster import derive_chargemaster_from_claims
from healthos_core.billing.claims import ClaimIssue, build_claim, scrub_claim, scrub_claims
from healthos_core.billing.entities import ChargeItem, Claim, ClaimDiagnosis
from healthos_core.billing.payers import (
    load_bundling_edits_csv,
    load_contracts_csv,
    load_service_codes,
)
from healthos_core.db import Base, make_engine, make_session_factory
from healthos_core.errors import HealthOSError
from healthos_core.fhir.importer import import_paths
from healthos_core.migrate import upgrade
from healthos_core.record.entities import Coverage, Encounter, Procedure
from healthos_core.wiring import wire_live_path

BILLED_CLASSES = ("AMB", "EMER", "IMP")
BILLED_FROM = dt.datetime(2011, 1, 1, tzinfo=dt.UTC)
BATCH = 500
_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int = BATCH) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def prepare(engine: Engine, data: Path) -> dict[str, Any]:
    """Import bundles of patients with claims, payers, coverage and the payer rules."""
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
    report = import_paths(factory, [*bundles, rcm / "payers.ndjson.gz", rcm / "coverage.ndjson.gz"])
    if report.rejected:
        raise SystemExit(f"preparation rejected files: {report.rejected[:3]}")
    with factory() as session, session.begin():
        contracts = load_contracts_csv(session, rcm / "contracts.csv")
        service_codes = load_service_codes(
            session, rcm / "service_categories.csv", rcm / "unit_limits.csv"
        )
        bundling = load_bundling_edits_csv(session, rcm / "bundling_edits.csv")
        prices = derive_chargemaster_from_claims(session)
    return {
        "bundles": len(bundles),
        "coverages": report.imported.get("Coverage", 0),
        "contracts": contracts,
        "service_codes": service_codes,
        "bundling_edits": bundling,
        "chargemaster_entries": prices,
        "seconds": round(time.perf_counter() - started, 1),
    }


def billed_encounters(engine: Engine, limit: int | None) -> list[str]:
    """Ids of the encounters to bill, by start: AMB/EMER/IMP from 2011, patient covered."""
    factory = make_session_factory(engine)
    with factory() as session:
        rows = session.execute(
            select(Encounter.id, Encounter.period_start)
            .where(
                Encounter.class_code.in_(BILLED_CLASSES),
                Encounter.period_start >= BILLED_FROM,
                Encounter.patient_id.in_(select(Coverage.patient_id)),
            )
            .order_by(Encounter.period_start, Encounter.id)
        ).all()
    return [row.id for row in rows][:limit]


def capture(engine: Engine, encounter_ids: list[str]) -> dict[str, Any]:
    """Post the visit fee and the procedure charges of the encounters, committed."""
    factory = make_session_factory(engine)
    started = time.perf_counter()
    encounter_fees = procedure_charges = procedures = 0
    for chunk in _chunks(encounter_ids):
        with factory() as session, session.begin():
            encounters = session.scalars(select(Encounter).where(Encounter.id.in_(chunk))).all()
            by_encounter: dict[str, list[Procedure]] = defaultdict(list)
            for procedure in session.scalars(
                select(Procedure)
                .where(Procedure.encounter_id.in_(chunk))
                .order_by(Procedure.performed_start, Procedure.id)
            ):
                by_encounter[procedure.encounter_id or ""].append(procedure)
            for encounter in encounters:
                encounter_fees += capture_encounter(session, encounter) is not None
                for procedure in by_encounter.get(encounter.id, []):
                    procedures += 1
                    procedure_charges += capture_procedure(session, procedure) is not None
    return {
        "encounters": len(encounter_ids),
        "procedures": procedures,
        "encounter_fees": encounter_fees,
        "procedure_charges": procedure_charges,
        "seconds": round(time.perf_counter() - started, 1),
    }


def build_all(engine: Engine, encounter_ids: list[str]) -> dict[str, Any]:
    """Build a claim per encounter (one savepoint each), committed every BATCH encounters."""
    factory = make_session_factory(engine)
    skipped: Counter[str] = Counter()
    reasons: list[str] = []
    built = 0
    started = time.perf_counter()
    for chunk in _chunks(encounter_ids):
        with factory() as session, session.begin():
            for encounter_id in chunk:
                try:
                    with session.begin_nested():
                        build_claim(session, encounter_id=encounter_id, actor="bench")
                except HealthOSError as error:
                    skipped[type(error).__name__] += 1
                    if len(reasons) < 5:
                        reasons.append(str(error))
                else:
                    built += 1
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "built": built,
        "skipped": sum(skipped.values()),
        "skipped_by_error": dict(skipped),
        "first_skip_reasons": reasons,
    }


def _as_of(claim: Claim) -> dt.datetime:
    days = [item.service_date for item in claim.items if item.service_date is not None]
    first = min(days) if days else _aware(claim.billable_start or claim.created).date()  # type: ignore[arg-type]
    return dt.datetime.combine(first + dt.timedelta(days=5), dt.time(12), tzinfo=dt.UTC)


def _built_claims(session: Any) -> list[Claim]:
    return list(
        session.scalars(
            select(Claim)
            .where(Claim.billing_status == "draft")
            .options(selectinload(Claim.items))
            .order_by(Claim.id)
        )
    )


def read_all(engine: Engine) -> tuple[float, int, int]:
    """Baseline: read the built claims with their lines and diagnoses."""
    factory = make_session_factory(engine)
    started = time.perf_counter()
    with factory() as session:
        claims = _built_claims(session)
        lines = sum(len(claim.items) for claim in claims)
        diagnoses = 0
        for chunk in _chunks([c.id for c in claims]):
            diagnoses += len(
                session.scalars(
                    select(ClaimDiagnosis).where(ClaimDiagnosis.claim_id.in_(chunk))
                ).all()
            )
    return time.perf_counter() - started, lines, diagnoses


def scrub_each(engine: Engine) -> tuple[float, dict[str, list[ClaimIssue]]]:
    """``scrub_claim`` per claim, as_of its first date of service + 5 days."""
    factory = make_session_factory(engine)
    results: dict[str, list[ClaimIssue]] = {}
    started = time.perf_counter()
    with factory() as session:
        for claim in _built_claims(session):
            results[claim.id] = scrub_claim(session, claim, as_of=_as_of(claim))
    return time.perf_counter() - started, results


def scrub_grouped(engine: Engine) -> tuple[float, dict[str, list[ClaimIssue]]]:
    """``scrub_claims`` on the claims sharing an as_of, in batches."""
    factory = make_session_factory(engine)
    results: dict[str, list[ClaimIssue]] = {}
    started = time.perf_counter()
    with factory() as session:
        groups: dict[dt.datetime, list[Claim]] = defaultdict(list)
        for claim in _built_claims(session):
            groups[_as_of(claim)].append(claim)
        for as_of, claims in groups.items():
            for chunk in _chunks(claims):
                results.update(scrub_claims(session, chunk, as_of=as_of))
    return time.perf_counter() - started, results


def _edits(results: dict[str, list[ClaimIssue]]) -> tuple[dict[str, int], int]:
    per_edit: Counter[str] = Counter()
    clean = 0
    for issues in results.values():
        per_edit.update({issue.edit for issue in issues})
        clean += not any(issue.severity == "error" for issue in issues)
    return dict(per_edit.most_common()), clean


def _open(args: argparse.Namespace, tmp: str) -> tuple[Engine, dict[str, Any]]:
    if args.db:
        engine = make_engine(args.db)
        if "claim" in inspect(engine).get_table_names():
            if not args.reset:
                raise SystemExit(
                    f"{args.db} already has HealthOS tables: use an empty database, or "
                    "pass --reset to drop them first"
                )
            Base.metadata.drop_all(engine)
            with engine.begin() as conn:
                conn.execute(text("drop table if exists alembic_version"))
        upgrade(engine)
        return engine, prepare(engine, args.data)
    work = Path(tmp) / "bench.db"
    if args.prepared is not None and args.prepared.exists():
        shutil.copy(args.prepared, work)
        return make_engine(f"sqlite:///{work}"), {"reused": str(args.prepared)}
    engine = make_engine(f"sqlite:///{work}")
    upgrade(engine)
    preparation = prepare(engine, args.data)
    if args.prepared is not None:
        engine.dispose()
        args.prepared.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(work, args.prepared)
        engine = make_engine(f"sqlite:///{work}")
    return engine, preparation


def _rate(count: int, seconds: float) -> dict[str, float]:
    return {
        "seconds": round(seconds, 2),
        "claims_per_s": round(count / seconds, 1) if seconds else 0.0,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print a JSON result."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--db", default=None, help="database URL (default: temporary SQLite)")
    parser.add_argument("--limit", type=int, default=None, help="first N encounters only")
    parser.add_argument("--prepared", type=Path, default=None, help="SQLite cache file")
    parser.add_argument(
        "--reset", action="store_true", help="drop the HealthOS tables of --db before starting"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        engine, preparation = _open(args, tmp)
        encounter_ids = billed_encounters(engine, args.limit)
        captured = capture(engine, encounter_ids)
        with make_session_factory(engine)() as session:
            captured["charge_items"] = session.scalar(select(func.count()).select_from(ChargeItem))

        building = build_all(engine, encounter_ids)
        built = building["built"]
        read_seconds, lines, diagnoses = read_all(engine)
        each_seconds, each = scrub_each(engine)
        grouped_seconds, grouped = scrub_grouped(engine)
        per_edit, clean = _edits(grouped)
        database = engine.url.render_as_string(hide_password=True).split("@")[-1]
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                database += " / " + str(conn.execute(text("show server_version")).scalar())
        else:
            database = "sqlite (temporary file)"
        engine.dispose()

    build_seconds = building.pop("seconds")
    result = {
        "benchmark": "claims_build_scrub",
        "database": database,
        "encounters": len(encounter_ids),
        "preparation": preparation,
        "charge_capture": captured,
        "baseline_read_claims_with_lines": {
            **_rate(built, read_seconds),
            "lines": lines,
            "diagnoses": diagnoses,
        },
        "building": {
            **_rate(built, build_seconds),
            **building,
            "ratio_vs_baseline": round(read_seconds / build_seconds, 4) if build_seconds else None,
        },
        "scrubbing_scrub_claim_each": {
            **_rate(len(each), each_seconds),
            "ratio_vs_baseline": round(read_seconds / each_seconds, 4) if each_seconds else None,
        },
        "scrubbing_scrub_claims_grouped_by_as_of": {
            **_rate(len(grouped), grouped_seconds),
            "ratio_vs_baseline": (
                round(read_seconds / grouped_seconds, 4) if grouped_seconds else None
            ),
            "same_issues_as_each": each == grouped,
        },
        "claims_without_errors": clean,
        "claims_per_edit": per_edit,
        "machine": describe(),
    }
    print(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
