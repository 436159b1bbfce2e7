"""FHIR Bulk Data export at /fhir (issue 10 item 3): the asynchronous pattern, end to end.

Kick-off (202 + Content-Location), status (202 + X-Progress, then 200 + manifest), NDJSON
files streamed from disk, DELETE (202, files removed), ``_type``, ``_since``, a Group per
facility, and the refusals. On SQLite and PostgreSQL (``migrated_engine``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from healthos_core.db import make_session_factory
from healthos_core.fhir.bulk import ExportRequest, create_job, jobs_root, run_export
from healthos_core.fhir.views import bulk_export_view
from healthos_core.settings import Settings
from serving.main import create_app
from tests.conftest import truncate_all
from tests.serving.test_fhir_api import (
    ADMIN,
    CLINICIAN,
    SSN,
    TOKENS,
    encounter,
    observation,
    patient,
    transaction,
)

ORG = {"resourceType": "Organization", "id": "fac1", "name": "Facility One"}
ORG2 = {"resourceType": "Organization", "id": "fac2", "name": "Facility Two"}


def _at(resource: dict[str, Any], org: str) -> dict[str, Any]:
    return {**resource, "serviceProvider": {"reference": f"Organization/{org}"}}


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fhir-bulk-var")


@pytest.fixture(scope="module")
def client(migrated_engine: Engine, var_dir: Path) -> Iterator[TestClient]:
    """One app and one small record per module and backend (start-up costs about a second)."""
    truncate_all(migrated_engine)
    tokens = {**TOKENS, "tok-admin-0002": "admin"}
    settings = Settings(environment="test", api_tokens=tokens, var_dir=var_dir)  # type: ignore[arg-type]
    with TestClient(create_app(settings, engine=migrated_engine)) as test_client:
        resources = [
            ORG,
            ORG2,
            patient("p1"),
            patient("p2", family="Roe"),
            _at(encounter("e1", "p1"), "fac1"),
            _at(encounter("e2", "p2"), "fac2"),
            observation("o1", "e1", when="2024-01-15T10:00:00Z"),
        ]
        response = test_client.post("/fhir", json=transaction(*resources), headers=ADMIN)
        assert response.status_code == 200, response.text
        yield test_client
    truncate_all(migrated_engine)


def _finish(client: TestClient, status_url: str) -> dict[str, Any]:
    for _ in range(200):
        status = client.get(status_url, headers=ADMIN)
        if status.status_code == 200:
            assert status.headers["content-type"].startswith("application/json")
            manifest: dict[str, Any] = status.json()
            return manifest
        assert status.status_code == 202, status.text
        assert status.headers["x-progress"]
        time.sleep(0.05)
    raise AssertionError("the export did not finish")


def _download(client: TestClient, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    files: dict[str, list[dict[str, Any]]] = {}
    for item in manifest["output"]:
        response = client.get(item["url"], headers=ADMIN)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert len(lines) == item["count"]
        assert {r["resourceType"] for r in lines} == {item["type"]}
        files[item["type"]] = lines
    return files


def test_system_export_kick_off_status_manifest_files_and_delete(
    client: TestClient, var_dir: Path
) -> None:
    kickoff = client.get("/fhir/$export", headers={**ADMIN, "Prefer": "respond-async"})
    assert kickoff.status_code == 202, kickoff.text
    status_url = kickoff.headers["content-location"]
    assert "/fhir/bulk/" in status_url
    manifest = _finish(client, status_url)
    assert manifest["transactionTime"].endswith("Z")
    assert manifest["requiresAccessToken"] is True
    files = _download(client, manifest)
    assert {t: len(rows) for t, rows in files.items()} == {
        "Organization": 2,
        "Patient": 2,
        "Encounter": 2,
        "Observation": 1,
    }
    # Every resource has its meta; no government identifier leaves the server.
    assert all(r["meta"]["versionId"] for rows in files.values() for r in rows)
    assert SSN not in json.dumps(files["Patient"])
    assert client.delete(status_url, headers=ADMIN).status_code == 202
    assert client.get(status_url, headers=ADMIN).status_code == 404
    assert client.get(manifest["output"][0]["url"], headers=ADMIN).status_code == 404
    assert not (var_dir / "bulk" / status_url.rsplit("/", 1)[1]).exists()


def test_type_since_and_patient_level(client: TestClient) -> None:
    kickoff = client.get("/fhir/$export?_type=Patient,Observation,Basic", headers=ADMIN)
    manifest = _finish(client, kickoff.headers["content-location"])
    assert [o["type"] for o in manifest["output"]] == ["Patient", "Observation"]
    assert manifest["extension"]["healthos-skipped"]
    later = client.get("/fhir/$export?_since=2999-01-01", headers=ADMIN)
    assert _finish(client, later.headers["content-location"])["output"] == []
    patients = client.get("/fhir/Patient/$export", headers=ADMIN)
    types = [o["type"] for o in _finish(client, patients.headers["content-location"])["output"]]
    assert "Organization" not in types and "Patient" in types


def test_group_export_is_one_facility(client: TestClient) -> None:
    kickoff = client.get("/fhir/Group/fac2/$export", headers=ADMIN)
    assert kickoff.status_code == 202
    files = _download(client, _finish(client, kickoff.headers["content-location"]))
    assert [r["id"] for r in files["Patient"]] == ["p2"]
    assert [r["id"] for r in files["Encounter"]] == ["e2"]
    assert "Observation" not in files


@pytest.mark.parametrize(
    ("url", "headers", "status"),
    [
        ("/fhir/$export", CLINICIAN, 403),
        ("/fhir/$export", {}, 401),
        ("/fhir/$export?_outputFormat=text/csv", ADMIN, 400),
        ("/fhir/$export?_since=yesterday", ADMIN, 400),
        ("/fhir/$export?_type=,", ADMIN, 400),
        ("/fhir/Group/nowhere/$export", ADMIN, 404),
        ("/fhir/bulk/0123abcd", ADMIN, 404),
        ("/fhir/bulk/not..a..job", ADMIN, 404),
        ("/fhir/bulk/0123abcd/Patient.ndjson", ADMIN, 404),
    ],
)
def test_bulk_refusals_are_operation_outcomes(
    client: TestClient, url: str, headers: dict[str, str], status: int
) -> None:
    response = client.get(url, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_another_callers_job_is_not_there(client: TestClient) -> None:
    kickoff = client.get("/fhir/$export", headers=ADMIN)
    status_url = kickoff.headers["content-location"]
    _finish(client, status_url)
    other = {"Authorization": "Bearer tok-admin-0002"}
    assert client.get(status_url, headers=other).status_code == 404
    assert client.delete(status_url, headers=other).status_code == 404
    assert client.get(status_url, headers=ADMIN).status_code == 200


def test_a_deleted_job_stops_and_leaves_nothing(migrated_engine: Engine, tmp_path: Path) -> None:
    root = jobs_root(tmp_path)
    job = create_job(root, ExportRequest(level="system", url="x"), owner="me")
    (root / job.job_id / "job.json").unlink()  # cancelled before it ran
    assert (
        run_export(
            make_session_factory(migrated_engine), root, job.job_id, bulk_export_view("admin")
        )
        is None
    )


def test_an_export_of_many_chunks_holds_every_row(
    client: TestClient, migrated_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("healthos_core.fhir.bulk.YIELD_PER", 1)  # a chunk per row
    root = jobs_root(tmp_path)
    job = create_job(root, ExportRequest(level="system", url="x"), owner="me")
    done = run_export(
        make_session_factory(migrated_engine), root, job.job_id, bulk_export_view("admin")
    )
    assert done is not None and done.state == "complete"
    assert {o["type"]: o["count"] for o in done.output} == {
        "Organization": 2,
        "Patient": 2,
        "Encounter": 2,
        "Observation": 1,
    }
    lines = (root / job.job_id / "Patient.ndjson").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == ["p1", "p2"]
