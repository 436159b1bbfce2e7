"""The scrubber on real synthea-rcm claims agrees with what the payers answered.

Three patients whose initial claims were denied with CARC 27, 26, 29, 18, 197, 16, 97,
119 and 151 are imported as submitted (bundles, payers, coverage, claims: not the
ClaimResponses), the real contracts, service codes and bundling edits are loaded, and
every claim is scrubbed. Where the label is deterministic the scrubber must say so
before submission, and its claim-level errors must all have been denied.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.billing.claims import ClaimIssue, scrub_claims
from healthos_core.billing.entities import Claim
from healthos_core.billing.payers import (
    load_bundling_edits_csv,
    load_contracts_csv,
    load_service_codes,
)
from healthos_core.fhir.importer import import_paths

pytestmark = pytest.mark.integration

#: Patients chosen (by a set cover over labels.csv.gz) so that their initial claims hold
#: every CARC the scrubber predicts.
PATIENTS = (
    "bc76f6c4-48cc-45b2-98f1-5792e72decdc",  # 26, 27, 29, 18, 197, 97
    "b3873037-a455-4558-a066-9faaed01b673",  # 16, 29, 97, 119
    "082fd114-0415-4ce4-8293-0caebb0fe9de",  # 151
)
CLAIM_LEVEL = {
    "coverage-inactive",
    "filing-limit",
    "duplicate",
    "diagnosis-missing",
    "diagnosis-invalid",
}


def _lines(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _patient_of(resource: dict[str, Any]) -> str:
    ref = (resource.get("patient") or resource.get("beneficiary") or {}).get("reference", "")
    return str(ref).rsplit("/", 1)[-1]


def _write(path: Path, resources: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in resources), encoding="utf-8")
    return path


@pytest.fixture
def scrubbed(
    shared_data: Path, tmp_path: Path, session_factory: sessionmaker[Session]
) -> tuple[dict[str, list[ClaimIssue]], dict[str, dict[str, str]], dict[str, dict[int, set[str]]]]:
    rcm = shared_data / "synthea-rcm"
    with (shared_data / "synthea-fhir-r4" / "manifest.csv").open(encoding="utf-8") as handle:
        files = {row["patient_id"]: row["file"] for row in csv.DictReader(handle)}
    claims = [c for c in _lines(rcm / "claims.ndjson.gz") if _patient_of(c) in PATIENTS]
    ids = {c["id"] for c in claims}
    paths = [
        *(shared_data / "synthea-fhir-r4" / "bundles" / files[p] for p in PATIENTS),
        _write(tmp_path / "payers.ndjson", _lines(rcm / "payers.ndjson.gz")),
        _write(
            tmp_path / "coverage.ndjson",
            [c for c in _lines(rcm / "coverage.ndjson.gz") if _patient_of(c) in PATIENTS],
        ),
        _write(tmp_path / "claims.ndjson", claims),
    ]
    report = import_paths(session_factory, paths)
    assert report.rejected == []
    with session_factory() as session, session.begin():
        load_contracts_csv(session, rcm / "contracts.csv")
        load_service_codes(session, rcm / "service_categories.csv", rcm / "unit_limits.csv")
        load_bundling_edits_csv(session, rcm / "bundling_edits.csv")
    with session_factory() as session:
        rows = list(session.scalars(select(Claim).where(Claim.id.in_(sorted(ids)))))
        assert len(rows) == len(ids)
        issues = scrub_claims(session, rows)
    with gzip.open(rcm / "labels.csv.gz", "rt", encoding="utf-8", newline="") as handle:
        labels = {row["claim_id"]: row for row in csv.DictReader(handle) if row["claim_id"] in ids}
    line_carcs: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for response in _lines(rcm / "claimresponses.ndjson.gz"):
        claim_id = response["request"]["reference"].rsplit("/", 1)[-1]
        if claim_id not in ids:
            continue
        for item in response.get("item") or []:
            for adjudication in item.get("adjudication") or []:
                for coding in (adjudication.get("reason") or {}).get("coding") or []:
                    line_carcs[claim_id][item["itemSequence"]].add(coding["code"])
    return issues, labels, line_carcs


def _carcs(label: dict[str, str]) -> set[str]:
    return {c for c in label["carc_codes"].split(";") if c}


def test_scrubber_flags_the_deterministic_denials_before_submission(
    scrubbed: tuple[
        dict[str, list[ClaimIssue]], dict[str, dict[str, str]], dict[str, dict[int, set[str]]]
    ],
) -> None:
    issues, labels, line_carcs = scrubbed
    seen: set[str] = set()
    for claim_id, label in labels.items():
        if label["submission_type"] != "initial":
            continue
        found = issues[claim_id]
        errors = {(i.edit, i.carc) for i in found if i.is_error}
        for carc, edit in (
            ("27", "coverage-inactive"),
            ("26", "coverage-inactive"),
            ("29", "filing-limit"),
            ("18", "duplicate"),
        ):
            if carc in _carcs(label):
                assert (edit, carc) in errors, (claim_id, carc, found)
                seen.add(carc)
        if "197" in _carcs(label):
            assert ("authorization-missing", "197") in errors, (claim_id, found)
            seen.add("197")
        for sequence, carcs in line_carcs[claim_id].items():
            flagged = {(i.edit, i.carc) for i in found if i.sequence == sequence and i.is_error}
            for carc, edit in (
                ("97", "bundled"),
                ("119", "units-over-limit"),
                ("151", "units-over-limit"),
            ):
                if carc in carcs:
                    assert (edit, carc) in flagged, (claim_id, sequence, carc, found)
                    seen.add(carc)
        if "16" in _carcs(label) and any(i.edit.startswith("diagnosis-") for i in found):
            seen.add("16")
    assert seen == {"27", "26", "29", "18", "197", "97", "119", "151", "16"}


def test_every_claim_level_error_was_denied_by_the_payer(
    scrubbed: tuple[
        dict[str, list[ClaimIssue]], dict[str, dict[str, str]], dict[str, dict[int, set[str]]]
    ],
) -> None:
    issues, labels, line_carcs = scrubbed
    flagged = 0
    for claim_id, found in issues.items():
        label = labels[claim_id]
        for issue in found:
            if not issue.is_error:
                continue
            if issue.edit in CLAIM_LEVEL:
                flagged += 1
                assert label["denied"] == "1", (claim_id, issue)
            elif issue.sequence is not None and label["denied"] != "1":
                # A line edit: the payer denied that line with the predicted CARC.
                assert issue.carc in line_carcs[claim_id][issue.sequence], (claim_id, issue)
    assert flagged >= 6
    # No false negatives on the eligibility, filing-limit and duplicate denials.
    clean = [c for c, found in issues.items() if not any(i.is_error for i in found)]
    assert clean
    assert all(
        not _carcs(labels[c]) & {"26", "27", "29", "18"}
        for c in clean
        if labels[c]["submission_type"] == "initial"
    )
