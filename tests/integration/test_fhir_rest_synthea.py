"""Real Synthea bundles through the FHIR REST API (issue 10 item 3).

* A Synthea patient posted as one transaction Bundle to ``POST /fhir`` leaves every table
  with the same row count as ``healthos import --live`` of that file (the same
  ChargeItems posted by charge capture for its billable events, priced by the same
  chargemaster).
* A bulk export of the whole record by ``smart-fetch`` (its ``BulkExporter``: kick-off,
  polling, manifest, NDJSON downloads, DELETE) against ``healthos serve``, then
  ``healthos import`` of its NDJSON into a fresh database, reproduces every table's row
  count; the one difference is the identifiers no role may read through the API
  (SSN, driver's licence, passport: ``docs/fhir.md``), which stay out of the export.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import cumulus_fhir_support as cfs
import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from smart_fetch import lifecycle
from smart_fetch.bulk_utils import BulkExporter
from sqlalchemy import Engine
from typer.testing import CliRunner

from healthos_core.access import IdentifierCategory, identifier_category
from healthos_core.billing.entities import ChargemasterEntry
from healthos_core.db import Base, make_engine
from healthos_core.fhir.search import supported_types
from healthos_core.migrate import upgrade
from healthos_core.record.entities import PatientIdentifier
from healthos_core.settings import Settings
from serving.cli import app
from serving.main import create_app
from tests.conftest import table_counts
from tests.serving.fhir_serve import healthos_serve

pytestmark = pytest.mark.integration

BUNDLES = (
    "Edward_Gulgowski_43481611-2459-44f5-ab20-4b142dac160f.json.gz",
    "Clemente_Kreiger_1484a42d-0eaf-4654-9cbf-6b050a5cd73b.json.gz",
)
runner = CliRunner()
ADMIN = {"Authorization": "Bearer dev-admin"}


def _fresh(url: str) -> Engine:
    engine = make_engine(url)
    upgrade(engine)
    Base.metadata.create_all(engine)
    return engine


def _import(url: str, *paths: str, live: bool = False) -> dict[str, Any]:
    args = ["import", *paths, "--db", url, "--json", *(["--live"] if live else [])]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["rejected"] == []
    return report


def _copy_chargemaster(source: Engine, target: Engine) -> int:
    table = ChargemasterEntry.__table__
    with source.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(sa.select(table))]
    with target.begin() as connection:
        connection.execute(sa.insert(table), rows)
    return len(rows)


def test_a_transaction_bundle_writes_what_a_live_import_writes(
    shared_data: Path, cli_db_url: str, tmp_path: Path
) -> None:
    bundle = str(shared_data / "synthea-fhir-r4" / "bundles" / BUNDLES[0])
    # Prices derived from the bundle's own claims (a back-load into a scratch database);
    # the reference: the same file as a live feed into a fresh database with those prices
    # (charge capture posts its ChargeItems).
    scratch = _fresh(cli_db_url)
    imported = _import(cli_db_url, bundle)["imported"]
    derived = runner.invoke(app, ["chargemaster", "derive", "--db", cli_db_url, "--json"])
    assert derived.exit_code == 0, derived.output
    reference_url = f"sqlite:///{tmp_path / 'reference.db'}"
    reference = _fresh(reference_url)
    _copy_chargemaster(scratch, reference)
    scratch.dispose()
    _import(reference_url, bundle, live=True)
    expected = table_counts(reference)
    assert expected["charge_item"] > 0

    posted = _fresh(f"sqlite:///{tmp_path / 'posted.db'}")
    _copy_chargemaster(reference, posted)
    document = json.loads(gzip.decompress(Path(bundle).read_bytes()))
    settings = Settings(environment="test")
    with TestClient(create_app(settings, engine=posted)) as client:
        response = client.post("/fhir", json=document, headers=ADMIN)
    assert response.status_code == 200, response.text[:500]
    answer = response.json()
    assert answer["type"] == "transaction-response"
    statuses = [entry["response"]["status"] for entry in answer["entry"]]
    assert len(statuses) == len(document["entry"])
    assert statuses.count("201 Created") == sum(imported.values())
    assert table_counts(posted) == expected
    reference.dispose()
    posted.dispose()


def _hidden_identifiers(engine: Engine) -> int:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(PatientIdentifier.system, PatientIdentifier.type_code))
        return sum(
            1
            for system, type_code in rows
            if identifier_category(system, type_code) is IdentifierCategory.GOVERNMENT
        )


async def _smart_fetch_export(fhir_url: str, token_file: Path, destination: Path) -> None:
    client = cfs.FhirClient.create_for_cli(
        fhir_url, set(supported_types()), bearer_token=str(token_file)
    )
    destination.mkdir(parents=True, exist_ok=True)
    async with client:
        exporter = BulkExporter(
            client,
            set(supported_types()),
            fhir_url,
            str(destination),
            metadata=lifecycle.OutputMetadata(str(destination)),
        )
        await exporter.export()


def test_smart_fetch_bulk_export_then_import_reproduces_every_table(
    shared_data: Path, cli_db_url: str, tmp_path: Path
) -> None:
    """A move of the whole record: the source server exports government identifiers too."""
    bundles = [str(shared_data / "synthea-fhir-r4" / "bundles" / name) for name in BUNDLES]
    source = _fresh(cli_db_url)
    _import(cli_db_url, *bundles)
    expected = table_counts(source)
    assert _hidden_identifiers(source) > 0  # the Synthea patients have SSNs to carry
    token = tmp_path / "token"
    token.write_text("dev-admin")
    exported = tmp_path / "export"
    move = {"HEALTHOS_BULK_EXPORT_GOVERNMENT_IDENTIFIERS": "true"}
    with healthos_serve(cli_db_url, tmp_path, move) as base:
        asyncio.run(_smart_fetch_export(f"{base}/fhir", token, exported))
        leftovers = httpx.get(f"{base}/fhir/metadata", timeout=10)
        assert leftovers.status_code == 200
    files = sorted(str(p) for p in exported.glob("*.ndjson*") if not p.name.startswith("log"))
    assert files, "smart-fetch downloaded nothing"
    assert not any((tmp_path / "var" / "bulk").iterdir()), "the job's files were not deleted"

    copy_url = f"sqlite:///{tmp_path / 'copy.db'}"
    copy = _fresh(copy_url)
    _import(copy_url, *files)
    assert table_counts(copy) == expected
    source.dispose()
    copy.dispose()
