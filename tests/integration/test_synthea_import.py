"""Real Synthea FHIR R4 bundles: import counts against manifest.csv, idempotency, export.

Uses the first 6 bundles (sorted by file name) of ``../shared/data/synthea-fhir-r4``;
every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.fhir.exporter import export_patient
from healthos_core.fhir.importer import import_paths
from healthos_core.fhir.mapping import MAPPERS, TABLES
from tests.conftest import table_counts

pytestmark = pytest.mark.integration

N_BUNDLES = 6
#: Types in the bundles that HealthOS does not store (counted as skipped).
UNSUPPORTED = ("CarePlan", "Goal", "ImagingStudy")
#: Manifest columns that are not resource counts.
NOT_COUNTS = {
    "file",
    "patient_id",
    "gender",
    "birthDate",
    "deceasedDateTime",
    "json_bytes",
    "json_sha256",
}


def _slice(shared_data: Path) -> tuple[list[Path], list[dict[str, str]]]:
    folder = shared_data / "synthea-fhir-r4"
    files = sorted((folder / "bundles").glob("*.json.gz"))[:N_BUNDLES]
    assert len(files) == N_BUNDLES
    with (folder / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        manifest = {row["file"]: row for row in csv.DictReader(handle)}
    return files, [manifest[path.name] for path in files]


def _expected(rows: list[dict[str, str]]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for row in rows:
        for column, value in row.items():
            if column not in NOT_COUNTS:
                totals[column] += int(value)
    return totals


def test_import_paths_synthea_counts_match_manifest(
    shared_data: Path, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    files, rows = _slice(shared_data)
    expected = _expected(rows)
    assert set(expected) - set(UNSUPPORTED) <= set(MAPPERS)  # every other type is stored

    report = import_paths(session_factory, files)

    assert report.files == N_BUNDLES
    assert report.rejected == []
    for resource_type in MAPPERS:
        assert report.imported[resource_type] == expected[resource_type], resource_type
    for resource_type in UNSUPPORTED:
        assert report.skipped[resource_type] == expected[resource_type], resource_type
    assert set(report.skipped) <= set(UNSUPPORTED)
    counts = table_counts(engine)
    for resource_type, table in TABLES.items():
        if resource_type in ("Organization", "Practitioner"):  # may be shared by bundles
            assert 0 < counts[table.name] <= expected[resource_type]
        else:
            assert counts[table.name] == expected[resource_type], resource_type
    assert counts["claim_item"] >= expected["Claim"]


def test_import_paths_synthea_second_import_changes_no_table_count(
    shared_data: Path, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    files, _ = _slice(shared_data)
    first = import_paths(session_factory, files)
    counts = table_counts(engine)

    second = import_paths(session_factory, files)

    assert table_counts(engine) == counts
    assert second.rejected == []
    assert second.imported == first.imported
    assert sum(second.created.values()) == 0


def test_export_patient_synthea_validates_with_r4b(
    shared_data: Path, session_factory: sessionmaker[Session]
) -> None:
    files, rows = _slice(shared_data)
    import_paths(session_factory, files)
    row = rows[0]

    with session_factory() as session:
        bundle = export_patient(session, row["patient_id"])

    Bundle.model_validate(bundle)
    by_type = Counter(entry["resource"]["resourceType"] for entry in bundle["entry"])
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert [e["resource"]["id"] for e in matches] == [row["patient_id"]]
    # the compartment, and the Organizations and Practitioners it references: in a
    # Synthea bundle, exactly the ones the bundle holds
    for resource_type in MAPPERS:
        assert by_type[resource_type] == int(row.get(resource_type, 0)), resource_type
    assert set(by_type) <= set(MAPPERS)
    patient = matches[0]["resource"]
    assert patient["gender"] == row["gender"] and patient["birthDate"] == row["birthDate"]
