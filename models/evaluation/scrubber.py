"""Evaluate the claim scrubber on every submitted claim of ``shared/data/synthea-rcm``.

The claims are imported as submitted (with the patients' bundles, the payers and the
coverage, but **not** the payers' ClaimResponses) into a temporary SQLite database, the
contracts, service codes and bundling edits are loaded, and
:func:`healthos_core.billing.claims.scrub_claims` runs on every claim exactly as it would
before submission: a submitted claim is judged at its own ``submitted_at`` (its
``created``), duplicates are looked for only among claims submitted before it.

The result is compared with ``labels.csv.gz`` (one row per claim; ``carc_codes`` are the
payer's denial CARCs, CO-45 and PR excluded):

* ``flagged_per_edit``: claims with at least one issue of each edit (errors and warnings
  apart), over all claims and over initial submissions;
* ``denials``: for the initial claims the payer denied (wholly or on some line) with CARC
  27, 29, 197 or 16 — and, for context, the other CARCs the scrubber predicts — the share
  the scrubber had flagged before submission: by any error, and by an error predicting
  that same CARC; ``overall`` pools the four headline CARCs;
* ``precision_per_edit``: of the initial claims an edit flagged as an error, the share
  whose label carries the CARC the edit predicted.

Run ``python -m models.evaluation.scrubber [DATA_DIR]`` (default ``../shared/data/synthea-rcm``).
"""

from __future__ import annotations

import csv
import gzip
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

import healthos_core  # noqa: F401  (registers every entity)
from healthos_core.billing.claims import ClaimIssue, scrub_claims
from healthos_core.billing.entities import Claim
from healthos_core.billing.payers import (
    load_bundling_edits_csv,
    load_contracts_csv,
    load_service_codes,
)
from healthos_core.db import Base, make_engine, make_session_factory, session_scope
from healthos_core.errors import InvalidInputError
from healthos_core.fhir.importer import import_paths
from healthos_core.wiring import wired

__all__ = [
    "HEADLINE_CARCS",
    "evaluate_scrubber",
    "import_synthea_rcm",
    "main",
    "scrub_by_patient",
]

#: The denials the issue asks about: coverage terminated, timely filing, authorisation
#: absent, missing information.
HEADLINE_CARCS: Final = ("27", "29", "197", "16")
#: Other CARCs some edit predicts, reported for context.
_CONTEXT_CARCS: Final = ("26", "18", "97", "119", "151")
_BATCH: Final = 2000


def _read_labels(path: Path) -> dict[str, dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        return {row["claim_id"]: row for row in csv.DictReader(handle)}


def _claim_ids(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line)["id"] for line in handle if line.strip()]


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@wired()  # imported Claims and ClaimResponses post as `healthos import` posts them
def import_synthea_rcm(
    factory: Any, data_dir: Path, bundles_dir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Import the patients' bundles, then the synthea-rcm payers, coverage and claims.

    Parameters
    ----------
    factory : sessionmaker
        Session factory of the (empty) evaluation database.
    data_dir : Path
        The ``synthea-rcm`` folder (``payers.ndjson.gz``, ``coverage.ndjson.gz``,
        ``claims.ndjson.gz``). The ClaimResponses are **not** imported here.
    bundles_dir : Path
        The FHIR bundles; the ``*Information*`` files beside that folder (hospitals,
        practitioners) are imported first.
    log : callable
        Receives progress lines.

    Returns
    -------
    dict
        ``bundle_files``, ``rejected_files`` (bundles the importer rejected) and
        ``imported`` (synthea-rcm resources per type).

    Raises
    ------
    InvalidInputError
        A synthea-rcm file was rejected.
    """
    extras = sorted(
        p for p in bundles_dir.parent.glob("*Information*.json*") if p.parent != bundles_dir
    )
    started = time.perf_counter()
    record = import_paths(factory, [*extras, bundles_dir])
    log(f"bundles imported in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    rcm = import_paths(
        factory,
        [
            data_dir / "payers.ndjson.gz",
            data_dir / "coverage.ndjson.gz",
            data_dir / "claims.ndjson.gz",
        ],
    )
    log(f"payers, coverage and claims imported in {time.perf_counter() - started:.0f} s")
    rejected = record.rejected + rcm.rejected
    if rcm.rejected:
        raise InvalidInputError(
            f"synthea-rcm files were rejected: {rcm.rejected[0]['file']}: "
            f"{rcm.rejected[0]['reason']}"
        )
    return {
        "bundle_files": record.files,
        "rejected_files": len(rejected),
        "imported": dict(rcm.imported),
    }


def scrub_by_patient(
    session: Session,
    claims: Sequence[Claim],
    *,
    progress: Callable[[int], None] | None = None,
) -> dict[str, list[ClaimIssue]]:
    """Scrub claims in batches of about 2,000 that keep each patient's claims together.

    Each claim is judged as of its own submission (what the payer saw); a patient's claims
    share a batch so the duplicate edit compares them in one query. The session is only
    read.

    Parameters
    ----------
    session : Session
    claims : sequence of Claim
    progress : callable, optional
        Called with the number of claims scrubbed after each full batch.

    Returns
    -------
    dict
        Claim id → its issues (:func:`healthos_core.billing.claims.scrub_claims`).
    """
    by_patient: dict[str, list[Claim]] = defaultdict(list)
    for claim in claims:
        by_patient[claim.patient_id].append(claim)
    issues: dict[str, list[ClaimIssue]] = {}
    batch: list[Claim] = []
    for patient_claims in by_patient.values():
        batch.extend(patient_claims)
        if len(batch) >= _BATCH:
            issues.update(scrub_claims(session, batch))
            if progress is not None:
                progress(len(issues))
            batch = []
    if batch:
        issues.update(scrub_claims(session, batch))
    return issues


def evaluate_scrubber(
    data_dir: str | Path,
    *,
    bundles_dir: str | Path | None = None,
    database_url: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Scrub every synthea-rcm claim as submitted and compare with the payers' denials.

    Parameters
    ----------
    data_dir : str or Path
        The ``synthea-rcm`` folder (claims, coverage, payers, contracts.csv,
        service_categories.csv, unit_limits.csv, bundling_edits.csv, labels.csv.gz).
    bundles_dir : str or Path, optional
        The patients' FHIR bundles; default ``<data_dir>/../synthea-fhir-r4/bundles``
        (the ``*Information*`` files beside that folder are imported too).
    database_url : str, optional
        An empty database to use instead of a temporary SQLite file (tables are created).
    log : callable, optional
        Receives progress lines.

    Returns
    -------
    dict
        JSON-ready: ``claims``, ``flagged``, ``flagged_per_edit``, ``denials`` (per CARC
        and ``overall``), ``precision_per_edit``, ``seconds``. Shares are fractions
        rounded to 4 places.

    Raises
    ------
    InvalidInputError
        A synthea-rcm file was rejected on import, or a folder is missing.
    """
    data = Path(data_dir)
    bundles = Path(bundles_dir) if bundles_dir else data.parent / "synthea-fhir-r4" / "bundles"
    for needed in (data / "claims.ndjson.gz", data / "labels.csv.gz", bundles):
        if not needed.exists():
            raise InvalidInputError(f"{needed} does not exist: pass the synthea-rcm folder")
    say = log or (lambda _message: None)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="healthos-scrubber-") as tmp:
        engine = make_engine(database_url or f"sqlite:///{Path(tmp) / 'scrubber.db'}")
        Base.metadata.create_all(engine)
        factory = make_session_factory(engine)
        imported = import_synthea_rcm(factory, data, bundles, say)
        with session_scope(factory) as session:
            load_contracts_csv(session, data / "contracts.csv")
            load_service_codes(session, data / "service_categories.csv", data / "unit_limits.csv")
            load_bundling_edits_csv(session, data / "bundling_edits.csv")
        import_seconds = time.perf_counter() - started
        ids = _claim_ids(data / "claims.ndjson.gz")
        scrub_started = time.perf_counter()
        with factory() as session:
            claims = list(session.scalars(select(Claim).where(Claim.id.in_(ids))))
            issues = scrub_by_patient(
                session, claims, progress=lambda n: say(f"scrubbed {n} / {len(ids)} claims")
            )
            session.rollback()
        scrub_seconds = time.perf_counter() - scrub_started
        engine.dispose()
    if len(issues) != len(ids):
        raise InvalidInputError(
            f"{len(ids) - len(issues)} synthea-rcm claims were not found after import"
        )
    labels = _read_labels(data / "labels.csv.gz")
    result = _compare(issues, labels)
    result["imported"] = imported
    result["seconds"] = {
        "import": round(import_seconds, 1),
        "scrub": round(scrub_seconds, 1),
        "claims_per_second": round(len(ids) / scrub_seconds, 1) if scrub_seconds else None,
    }
    return result


def _carcs(label: dict[str, str]) -> set[str]:
    return {c for c in label.get("carc_codes", "").split(";") if c}


def _compare(
    issues: dict[str, list[ClaimIssue]], labels: dict[str, dict[str, str]]
) -> dict[str, Any]:
    initial = {cid for cid, row in labels.items() if row["submission_type"] == "initial"}
    per_edit: dict[str, Counter[str]] = defaultdict(Counter)
    flagged_error = 0
    flagged_error_initial = 0
    for claim_id, found in issues.items():
        errors = {i.edit for i in found if i.is_error}
        warnings = {i.edit for i in found if not i.is_error} - errors
        for edit in errors:
            per_edit[edit]["errors"] += 1
            if claim_id in initial:
                per_edit[edit]["errors_initial"] += 1
        for edit in warnings:
            per_edit[edit]["warnings_only"] += 1
            if claim_id in initial:
                per_edit[edit]["warnings_only_initial"] += 1
        if errors:
            flagged_error += 1
            flagged_error_initial += claim_id in initial

    def denial_row(claim_ids: set[str], carcs: set[str]) -> dict[str, Any]:
        any_error = {c for c in claim_ids if any(i.is_error for i in issues.get(c, []))}
        matching = {
            c for c in claim_ids if any(i.is_error and i.carc in carcs for i in issues.get(c, []))
        }
        whole = {c for c in claim_ids if labels[c]["denied"] == "1"}
        return {
            "claims": len(claim_ids),
            "whole_claim_denied": len(whole),
            "flagged_any_error": len(any_error),
            "share_flagged_any_error": _share(len(any_error), len(claim_ids)),
            "flagged_by_matching_edit": len(matching),
            "share_flagged_by_matching_edit": _share(len(matching), len(claim_ids)),
        }

    denials: dict[str, Any] = {}
    headline: set[str] = set()
    for carc in (*HEADLINE_CARCS, *_CONTEXT_CARCS):
        with_carc = {c for c in initial if carc in _carcs(labels[c])}
        denials[carc] = denial_row(with_carc, {carc})
        if carc in HEADLINE_CARCS:
            headline |= with_carc
    overall = denial_row(headline, set(HEADLINE_CARCS))
    # "matching" for the pooled row: an error predicting one of the claim's own CARCs.
    overall["flagged_by_matching_edit"] = sum(
        1
        for c in headline
        if any(
            i.is_error and i.carc in (_carcs(labels[c]) & set(HEADLINE_CARCS))
            for i in issues.get(c, [])
        )
    )
    overall["share_flagged_by_matching_edit"] = _share(
        overall["flagged_by_matching_edit"], len(headline)
    )
    denials["overall_27_29_197_16"] = overall

    precision: dict[str, Any] = {}
    for edit in sorted(per_edit):
        flagged = [
            (c, [i for i in issues[c] if i.edit == edit and i.is_error and i.carc])
            for c in initial
            if any(i.edit == edit and i.is_error for i in issues.get(c, []))
        ]
        flagged = [(c, found) for c, found in flagged if found]
        if not flagged:
            continue
        hits = sum(1 for c, found in flagged if {i.carc for i in found} & _carcs(labels[c]))
        denied = sum(1 for c, _ in flagged if labels[c]["denied"] == "1")
        precision[edit] = {
            "flagged_initial": len(flagged),
            "label_has_predicted_carc": hits,
            "precision": _share(hits, len(flagged)),
            "whole_claim_denied": denied,
        }
    clean_denied = sum(
        1
        for c in initial
        if labels[c]["denied"] == "1" and not any(i.is_error for i in issues.get(c, []))
    )
    return {
        "claims": {
            "all": len(issues),
            "initial": len(initial & set(issues)),
            "corrected": len(set(issues) - initial),
        },
        "flagged": {
            "claims_with_an_error": flagged_error,
            "initial_claims_with_an_error": flagged_error_initial,
            "share_initial_with_an_error": _share(flagged_error_initial, len(initial)),
            "initial_denied_not_flagged": clean_denied,
        },
        "flagged_per_edit": {edit: dict(sorted(c.items())) for edit, c in sorted(per_edit.items())},
        "denials": denials,
        "precision_per_edit": precision,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation and print the dict as JSON (``python -m models.evaluation.scrubber``)."""
    args = sys.argv[1:] if argv is None else argv
    default = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "synthea-rcm"
    data_dir = Path(args[0]) if args else default
    result = evaluate_scrubber(data_dir, log=lambda m: print(m, file=sys.stderr))  # noqa: T201
    print(json.dumps(result, indent=2))  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
