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
import time
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
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from healthos_core.access import IdentifierCategory, identifier_category
from healthos_core.billing.entities import ChargemasterEntry
from healthos_core.db import Base, make_engine
from healthos_core.fhir.search import supported_types
from healthos_core.migrate import upgrade
from healthos_core.outbox import outbox_backlog
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
FINANCE = {"Authorization": "Bearer dev-finance"}
#: Tables the reasoning layer writes (rescoring runs in the app, not in ``healthos import``).
ADVISORY = frozenset({"suggestion", "suggestion_action", "suggestion_revision", "outbox_event"})


def _wait_for_rescoring(engine: Engine, timeout: float = 60.0) -> None:
    """Wait until the app's in-process consumer has handled every outbox event."""
    deadline = time.monotonic() + timeout
    while True:
        with Session(engine) as session:
            backlog = outbox_backlog(session)
        if backlog["pending"] == 0 and backlog["done"] > 0:
            return
        assert time.monotonic() < deadline, f"rescoring did not catch up: {backlog}"
        time.sleep(0.1)


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
    settings = Settings(environment="test")  # rescoring inline, as the embedded default
    with TestClient(create_app(settings, engine=posted)) as client:
        response = client.post("/fhir", json=document, headers=ADMIN)
        assert response.status_code == 200, response.text[:500]
        _wait_for_rescoring(posted)
    answer = response.json()
    assert answer["type"] == "transaction-response"
    statuses = [entry["response"]["status"] for entry in answer["entry"]]
    assert len(statuses) == len(document["entry"])
    assert statuses.count("201 Created") == sum(imported.values())
    record = {k: v for k, v in table_counts(posted).items() if k not in ADVISORY}
    assert record == {k: v for k, v in expected.items() if k not in ADVISORY}
    reference.dispose()
    posted.dispose()


def _transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }


def _ndjson(path: Path, reference: str | None = None, field: str = "") -> list[dict[str, Any]]:
    with gzip.open(path, "rt") as lines:
        resources = [json.loads(line) for line in lines]
    if reference is None:
        return resources
    return [r for r in resources if r[field]["reference"] == reference]


def test_a_patients_live_feed_lists_its_suggestions_and_the_payers_answer_resolves_them(
    shared_data: Path, tmp_path: Path
) -> None:
    """The EHR posts a Synthea patient, then its billing system the claims (synthea-rcm).

    The app rescores from the outbox by itself: the submitted claims get their denial
    risk; the payer's ClaimResponses, posted later, resolve it.
    """
    bundle = shared_data / "synthea-fhir-r4" / "bundles" / BUNDLES[1]
    document = json.loads(gzip.decompress(bundle.read_bytes()))
    patient_id = next(
        e["resource"]["id"] for e in document["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    rcm = shared_data / "synthea-rcm"
    patient = f"Patient/{patient_id}"
    billing = [
        *_ndjson(rcm / "payers.ndjson.gz"),
        *_ndjson(rcm / "coverage.ndjson.gz", patient, "beneficiary"),
        *_ndjson(rcm / "claims.ndjson.gz", patient, "patient"),
    ]
    answers = _ndjson(rcm / "claimresponses.ndjson.gz", patient, "patient")
    claims = {f"Claim/{r['id']}" for r in billing if r["resourceType"] == "Claim"}
    assert claims and answers

    posted = _fresh(f"sqlite:///{tmp_path / 'posted.db'}")
    settings = Settings(environment="test")  # rescoring inline, as the embedded default
    params = {"patient": patient_id, "kind": "finance.denial_risk", "status": ["open", "resolved"]}
    with TestClient(create_app(settings, engine=posted)) as client:
        for feed in (document, _transaction(billing)):
            response = client.post("/fhir", json=feed, headers=ADMIN)
            assert response.status_code == 200, response.text[:500]
            _wait_for_rescoring(posted)
        listed = client.get("/api/v1/suggestions", params=params, headers=FINANCE)
        response = client.post("/fhir", json=_transaction(answers), headers=ADMIN)
        assert response.status_code == 200, response.text[:500]
        _wait_for_rescoring(posted)
        after = client.get("/api/v1/suggestions", params=params, headers=FINANCE)
    assert listed.status_code == after.status_code == 200
    opened = listed.json()["data"]
    assert opened, "the claims posted live got no denial-risk suggestion"
    assert {s["subject"] for s in opened} <= claims
    assert {s["status"] for s in opened} == {"open"}
    closed = {s["id"]: s["status"] for s in after.json()["data"]}
    assert closed == {s["id"]: "resolved" for s in opened}
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
