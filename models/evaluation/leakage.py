"""Evaluate the revenue-leakage scorer against ``shared/data/synthea-rcm/leakage.csv``.

The patients' bundles and the synthea-rcm payers, coverage, claims **and** payer answers
(ClaimResponses, posted to the ledger by the importer's remittance hook) are imported into
a temporary SQLite database (or an empty database given by URL), the contracts, service
codes and bundling edits are loaded, and :func:`reasoning.finance.leakage.find_leakage`
runs once over the whole record as of the data's own as-of date (2021-07-31, README
"Scope and time frame").

Each finding is matched with the ``leakage.csv`` rows of the imported patients on the
row's natural key: ``procedure_id`` for ``missed_charge``, ``encounter_id`` for
``unbilled_encounter``, ``claim_id`` for ``unworked_denial`` and ``underpayment`` (the
suggestion's subject is ``Procedure/<id>``, ``Encounter/<id>`` or ``Claim/<id>``). Per
kind: found, listed, true positives, recall, precision, and the amount at stake found vs
listed (in total and on the true positives, with how many true positives agree to the
cent and within a cent per line of rounding). ``leakage.csv`` is read only here, never by
the scorer. Kinds the file does not list (``late_charge``, ``charge_without_event``) are
counted apart.

``limit`` imports only the first ``limit`` bundles (sorted by file name) and the
synthea-rcm resources of those patients, for a quick check.

Run ``python -m models.evaluation.leakage [DATA_DIR] [--limit N]`` (default
``../shared/data/synthea-rcm``); it prints the report as JSON.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import healthos_core  # noqa: F401  (registers every entity)
from healthos_core.billing.payers import (
    load_bundling_edits_csv,
    load_contracts_csv,
    load_service_codes,
)
from healthos_core.db import Base, make_engine, make_session_factory, session_scope
from healthos_core.errors import InvalidInputError
from healthos_core.fhir.importer import import_paths
from healthos_core.wiring import wired
from reasoning.finance.leakage import LeakageKind, find_leakage
from reasoning.suggestion import Suggestion

__all__ = ["AS_OF", "LISTED_KINDS", "NATURAL_KEY", "evaluate_leakage", "main"]

#: The synthea-rcm data are "as of" 2021-07-31 (README "Scope and time frame").
AS_OF: Final = dt.datetime(2021, 7, 31, tzinfo=dt.UTC)
#: The ``leakage.csv`` column each kind is matched on.
NATURAL_KEY: Final = {
    LeakageKind.MISSED_CHARGE.value: "procedure_id",
    LeakageKind.UNBILLED_ENCOUNTER.value: "encounter_id",
    LeakageKind.UNWORKED_DENIAL.value: "claim_id",
    LeakageKind.UNDERPAYMENT.value: "claim_id",
}
#: The kinds ``leakage.csv`` lists.
LISTED_KINDS: Final = tuple(NATURAL_KEY)
#: The issue's targets, per listed kind.
TARGETS: Final = {"recall": 0.95, "precision": 0.90}
_CENT: Final = Decimal("0.01")


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _lines(path: Path) -> Iterable[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _ref_id(value: Any) -> str:
    return str((value or {}).get("reference", "")).rsplit("/", 1)[-1]


def _bundle_patients(files: list[Path], manifest: Path) -> list[str]:
    """Patient ids of bundle files: from ``manifest.csv`` beside the folder, else the files."""
    by_file: dict[str, str] = {}
    if manifest.is_file():
        with manifest.open(encoding="utf-8", newline="") as handle:
            by_file = {row["file"]: row["patient_id"] for row in csv.DictReader(handle)}
    out = []
    for path in files:
        if path.name in by_file:
            out.append(by_file[path.name])
            continue
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            bundle = json.load(handle)
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource") or {}
            if resource.get("resourceType") == "Patient" and resource.get("id"):
                out.append(str(resource["id"]))
                break
    return out


def _write_slice(data: Path, out: Path, patients: set[str]) -> list[Path]:
    """Write the synthea-rcm resources of ``patients`` (all payers) as NDJSON files."""

    def write(name: str, resources: Iterable[dict[str, Any]]) -> Path:
        path = out / name
        with path.open("w", encoding="utf-8") as handle:
            for resource in resources:
                handle.write(json.dumps(resource) + "\n")
        return path

    claims = [c for c in _lines(data / "claims.ndjson.gz") if _ref_id(c.get("patient")) in patients]
    claim_ids = {c["id"] for c in claims}
    return [
        write("payers.ndjson", _lines(data / "payers.ndjson.gz")),
        write(
            "coverage.ndjson",
            (
                c
                for c in _lines(data / "coverage.ndjson.gz")
                if _ref_id(c.get("beneficiary")) in patients
            ),
        ),
        write("claims.ndjson", claims),
        write(
            "claimresponses.ndjson",
            (
                r
                for r in _lines(data / "claimresponses.ndjson.gz")
                if _ref_id(r.get("request")) in claim_ids
            ),
        ),
    ]


@wired()  # imported Claims and ClaimResponses post as `healthos import` posts them
def _import(
    factory: Any,
    data: Path,
    bundles: Path,
    limit: int | None,
    tmp: Path,
    say: Callable[[str], None],
) -> tuple[dict[str, Any], set[str] | None]:
    """Import the record; return the import summary and the patients (``None`` = all)."""
    files = sorted(p for p in bundles.iterdir() if p.name.endswith((".json", ".json.gz")))
    patients: set[str] | None = None
    started = time.perf_counter()
    if limit is not None:
        files = files[:limit]
        patients = set(_bundle_patients(files, bundles.parent / "manifest.csv"))
        record = import_paths(factory, files)
        rcm_paths = _write_slice(data, tmp, patients)
    else:
        extras = sorted(
            p for p in bundles.parent.glob("*Information*.json*") if p.parent != bundles
        )
        record = import_paths(factory, [*extras, bundles])
        rcm_paths = [
            data / "payers.ndjson.gz",
            data / "coverage.ndjson.gz",
            data / "claims.ndjson.gz",
            data / "claimresponses.ndjson.gz",
        ]
    say(f"{len(files)} bundles imported in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    rcm = import_paths(factory, rcm_paths)
    say(f"payers, coverage, claims and responses imported in {time.perf_counter() - started:.0f} s")
    if rcm.rejected:
        raise InvalidInputError(
            f"synthea-rcm files were rejected: {rcm.rejected[0]['file']}: "
            f"{rcm.rejected[0]['reason']}"
        )
    with session_scope(factory) as session:
        contracts = load_contracts_csv(session, data / "contracts.csv")
        load_service_codes(session, data / "service_categories.csv", data / "unit_limits.csv")
        load_bundling_edits_csv(session, data / "bundling_edits.csv")
    return (
        {
            "bundle_files": len(files),
            "rejected_files": len(record.rejected),
            "imported": dict(rcm.imported),
            "contracts": contracts,
        },
        patients,
    )


def _listed(path: Path, patients: set[str] | None) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r for r in rows if patients is None or r["patient_id"] in patients]


def _amount(suggestion: Suggestion) -> Decimal:
    return suggestion.amount_at_stake if suggestion.amount_at_stake is not None else Decimal(0)


def _compare(found: list[Suggestion], listed: list[dict[str, str]]) -> dict[str, Any]:
    by_kind: dict[str, dict[str, Suggestion]] = {}
    for suggestion in found:
        by_kind.setdefault(suggestion.band or "", {})[suggestion.subject.split("/", 1)[1]] = (
            suggestion
        )
    kinds: dict[str, Any] = {}
    for kind, column in NATURAL_KEY.items():
        mine = by_kind.get(kind, {})
        rows = {r[column]: r for r in listed if r["kind"] == kind}
        hits = sorted(set(mine) & set(rows))
        listed_amount = {k: Decimal(r["amount_at_stake"]).quantize(_CENT) for k, r in rows.items()}
        exact = sum(1 for k in hits if mine[k].amount_at_stake == listed_amount[k])
        near = sum(1 for k in hits if abs(_amount(mine[k]) - listed_amount[k]) <= Decimal("0.05"))
        kinds[kind] = {
            "found": len(mine),
            "listed": len(rows),
            "true_positives": len(hits),
            "false_positives": len(set(mine) - set(rows)),
            "false_negatives": len(set(rows) - set(mine)),
            "recall": _share(len(hits), len(rows)),
            "precision": _share(len(hits), len(mine)),
            "amount_found": str(
                sum((s.amount_at_stake or Decimal(0) for s in mine.values()), Decimal(0))
            ),
            "amount_listed": str(sum(listed_amount.values(), Decimal(0))),
            "amount_found_true_positives": str(
                sum((mine[k].amount_at_stake or Decimal(0) for k in hits), Decimal(0))
            ),
            "amount_listed_true_positives": str(sum((listed_amount[k] for k in hits), Decimal(0))),
            "amount_exact_to_the_cent": exact,
            "amount_within_5_cents": near,
            "examples_false_positive": sorted(set(mine) - set(rows))[:5],
            "examples_false_negative": sorted(set(rows) - set(mine))[:5],
        }
    others: dict[str, Any] = {}
    for kind in (LeakageKind.LATE_CHARGE.value, LeakageKind.CHARGE_WITHOUT_EVENT.value):
        mine = by_kind.get(kind, {})
        others[kind] = {
            "found": len(mine),
            "amount_found": str(
                sum((s.amount_at_stake or Decimal(0) for s in mine.values()), Decimal(0))
            ),
        }
    meets = all(
        (k["recall"] is None or k["recall"] >= TARGETS["recall"])
        and (k["precision"] is None or k["precision"] >= TARGETS["precision"])
        for k in kinds.values()
    )
    return {
        "kinds": kinds,
        "not_in_leakage_csv": others,
        "targets": TARGETS,
        "meets_targets": meets,
    }


def evaluate_leakage(
    data_dir: str | Path,
    *,
    bundles: str | Path | None = None,
    limit: int | None = None,
    as_of: dt.datetime | dt.date = AS_OF,
    database_url: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Import synthea-rcm, find revenue leakage as of its date and compare with leakage.csv.

    Parameters
    ----------
    data_dir : str or Path
        The ``synthea-rcm`` folder (claims, claimresponses, coverage, payers,
        contracts.csv, service_categories.csv, unit_limits.csv, bundling_edits.csv,
        leakage.csv).
    bundles : str or Path, optional
        The patients' FHIR bundles; default ``<data_dir>/../synthea-fhir-r4/bundles``
        (the ``*Information*`` files beside it are imported too when ``limit`` is None).
    limit : int, optional
        Import only the first ``limit`` bundles (by file name) and those patients'
        synthea-rcm resources; ``leakage.csv`` rows of other patients are left out.
    as_of : datetime or date, default=2021-07-31T00:00Z
        The moment the scorer reads the record at (a date means 00:00 UTC of that day).
    database_url : str, optional
        An empty database to use instead of a temporary SQLite file (tables are created).
    log : callable, optional
        Receives progress lines.

    Returns
    -------
    dict
        JSON-ready: ``as_of``, ``patients`` (``"all"`` or how many), ``imported``,
        ``kinds`` (per listed kind: found, listed, true_positives, false_positives,
        false_negatives, recall, precision, amounts found vs listed as decimal strings,
        ``amount_exact_to_the_cent``, ``amount_within_5_cents``, examples),
        ``not_in_leakage_csv`` (late_charge and charge_without_event: found, amount),
        ``targets``, ``meets_targets`` and ``seconds`` (import, score).

    Raises
    ------
    InvalidInputError
        A folder or file is missing, ``limit`` is not positive, ``as_of`` is naive, or a
        synthea-rcm file was rejected on import.
    """
    data = Path(data_dir)
    folder = Path(bundles) if bundles else data.parent / "synthea-fhir-r4" / "bundles"
    for needed in (data / "claims.ndjson.gz", data / "leakage.csv", data / "contracts.csv"):
        if not needed.is_file():
            raise InvalidInputError(f"{needed} does not exist: pass the synthea-rcm folder")
    if not folder.is_dir():
        raise InvalidInputError(f"{folder} does not exist: pass the bundles folder")
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise InvalidInputError(f"limit must be a positive number of bundles, got {limit!r}")
    if isinstance(as_of, dt.datetime):
        moment = as_of
    else:
        moment = dt.datetime.combine(as_of, dt.time(), tzinfo=dt.UTC)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInputError(f"naive as_of {moment.isoformat()} given: times must be aware")
    say = log or (lambda _message: None)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="healthos-leakage-") as tmp:
        engine = make_engine(database_url or f"sqlite:///{Path(tmp) / 'leakage.db'}")
        try:
            Base.metadata.create_all(engine)
            factory = make_session_factory(engine)
            imported, patients = _import(factory, data, folder, limit, Path(tmp), say)
            import_seconds = time.perf_counter() - started
            scored = time.perf_counter()
            with factory() as session:
                found = find_leakage(session, as_of=moment)
                session.rollback()
            score_seconds = time.perf_counter() - scored
            say(f"{len(found)} leakage findings in {score_seconds:.1f} s")
        finally:
            engine.dispose()
    result = _compare(found, _listed(data / "leakage.csv", patients))
    result["as_of"] = moment.isoformat()
    result["patients"] = "all" if patients is None else len(patients)
    result["imported"] = imported
    result["seconds"] = {"import": round(import_seconds, 1), "score": round(score_seconds, 1)}
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation and print the report as JSON (``python -m models.evaluation.leakage``)."""
    default = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "synthea-rcm"
    parser = argparse.ArgumentParser(prog="python -m models.evaluation.leakage")
    parser.add_argument("data_dir", nargs="?", type=Path, default=default)
    parser.add_argument("--limit", type=int, default=None, help="first N bundles only")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    result = evaluate_leakage(
        args.data_dir,
        limit=args.limit,
        log=lambda m: print(m, file=sys.stderr),  # noqa: T201
    )
    print(json.dumps(result, indent=2))  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
