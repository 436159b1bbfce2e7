"""A real slice of ``../shared/data/synthea-rcm``: a few patients, with their bundles.

Writes NDJSON files holding only the chosen patients' Coverage, Claims and
ClaimResponses (plus all payers), so integration tests import real data in seconds.
"""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RcmSlice:
    """Paths to import, in order, and the chosen patient ids."""

    bundles: list[Path]
    payers: Path
    coverage: Path
    claims: Path
    claim_responses: Path
    patient_ids: list[str]

    def in_order(self) -> list[Path]:
        """Every path in dependency order: bundles, payers, coverage, claims, responses."""
        return [*self.bundles, self.payers, self.coverage, self.claims, self.claim_responses]


def _lines(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _patient_of(resource: dict) -> str:
    ref = (resource.get("patient") or resource.get("beneficiary") or {}).get("reference", "")
    return ref.rsplit("/", 1)[-1]


def make_rcm_slice(shared_data: Path, out: Path, *, patients: int = 3) -> RcmSlice:
    """Write the slice for the first ``patients`` patients (by claim order) into ``out``."""
    rcm = shared_data / "synthea-rcm"
    claims = _lines(rcm / "claims.ndjson.gz")
    chosen: list[str] = []
    for claim in claims:
        pid = _patient_of(claim)
        if pid not in chosen:
            chosen.append(pid)
        if len(chosen) == patients:
            break
    manifest = shared_data / "synthea-fhir-r4" / "manifest.csv"
    with manifest.open(encoding="utf-8") as handle:
        files = {row["patient_id"]: row["file"] for row in csv.DictReader(handle)}
    bundles = [shared_data / "synthea-fhir-r4" / "bundles" / files[pid] for pid in chosen]
    out.mkdir(parents=True, exist_ok=True)

    def write(name: str, resources: list[dict]) -> Path:
        path = out / name
        path.write_text("".join(json.dumps(r) + "\n" for r in resources), encoding="utf-8")
        return path

    claim_ids = {c["id"] for c in claims if _patient_of(c) in chosen}
    responses = [
        r
        for r in _lines(rcm / "claimresponses.ndjson.gz")
        if r["request"]["reference"].rsplit("/", 1)[-1] in claim_ids
    ]
    return RcmSlice(
        bundles=bundles,
        payers=write("payers.ndjson", _lines(rcm / "payers.ndjson.gz")),
        coverage=write(
            "coverage.ndjson",
            [c for c in _lines(rcm / "coverage.ndjson.gz") if _patient_of(c) in chosen],
        ),
        claims=write("claims.ndjson", [c for c in claims if c["id"] in claim_ids]),
        claim_responses=write("claimresponses.ndjson", responses),
        patient_ids=chosen,
    )
