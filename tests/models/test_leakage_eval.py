"""Leakage evaluation on a real slice of ``../shared/data/synthea-rcm`` (first bundles only)."""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from healthos_core.errors import InvalidInputError
from models.evaluation.leakage import LISTED_KINDS, evaluate_leakage

pytestmark = pytest.mark.integration

LIMIT = 10


def sliced_rows(shared_data: Path, limit: int) -> Counter[str]:
    """``leakage.csv`` rows per kind of the patients of the first ``limit`` bundles."""
    bundles = shared_data / "synthea-fhir-r4" / "bundles"
    files = sorted(p.name for p in bundles.iterdir() if p.name.endswith((".json", ".json.gz")))
    with (shared_data / "synthea-fhir-r4" / "manifest.csv").open(encoding="utf-8") as handle:
        patient_of = {row["file"]: row["patient_id"] for row in csv.DictReader(handle)}
    patients = {patient_of[name] for name in files[:limit]}
    with (shared_data / "synthea-rcm" / "leakage.csv").open(encoding="utf-8") as handle:
        return Counter(
            row["kind"] for row in csv.DictReader(handle) if row["patient_id"] in patients
        )


def test_leakage_evaluation_on_a_slice(shared_data: Path) -> None:
    report = evaluate_leakage(shared_data / "synthea-rcm", limit=LIMIT)

    assert {"kinds", "not_in_leakage_csv", "as_of", "patients", "imported", "seconds"} <= set(
        report
    )
    assert report["as_of"] == dt.datetime(2021, 7, 31, tzinfo=dt.UTC).isoformat()
    assert report["patients"] == LIMIT
    assert report["imported"]["bundle_files"] == LIMIT
    assert report["imported"]["imported"]["ClaimResponse"] > 0
    assert set(report["kinds"]) == set(LISTED_KINDS)
    assert set(report["not_in_leakage_csv"]) == {"late_charge", "charge_without_event"}

    # Listed = the leakage.csv rows of the sliced patients only, not of the whole file.
    expected = sliced_rows(shared_data, LIMIT)
    assert sum(expected.values()) < 755
    for kind in LISTED_KINDS:
        row = report["kinds"][kind]
        assert row["listed"] == expected[kind]
        assert row["true_positives"] + row["false_negatives"] == row["listed"]
        assert row["true_positives"] + row["false_positives"] == row["found"]
        if row["listed"]:
            assert row["recall"] == round(row["true_positives"] / row["listed"], 4)
        if row["found"]:
            assert row["precision"] == round(row["true_positives"] / row["found"], 4)
    # The slice holds three of the four kinds; the scorer finds them.
    for kind in ("missed_charge", "underpayment", "unbilled_encounter"):
        assert report["kinds"][kind]["listed"] > 0
        assert report["kinds"][kind]["recall"] >= 0.95
        assert report["kinds"][kind]["precision"] >= 0.90


def test_leakage_evaluation_rejects_a_bad_limit(shared_data: Path) -> None:
    with pytest.raises(InvalidInputError, match="limit"):
        evaluate_leakage(shared_data / "synthea-rcm", limit=0)
