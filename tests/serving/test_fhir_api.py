"""FHIR R4 REST at /fhir (issue 10 item 3): read, search, writes, $everything, errors.

Small synthetic resources, written through the API itself (so through the importer);
every test runs on SQLite and on PostgreSQL (``migrated_engine``: one record per module
and backend).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from sqlalchemy import Engine

from healthos_core.fhir.search import supported_types
from healthos_core.settings import Settings
from serving.main import create_app
from tests.conftest import table_counts, truncate_all

TOKENS = {
    "tok-clinician-0001": "clinician",
    "tok-nurse-0001": "nurse",
    "tok-finance-0001": "finance",
    "tok-operations-01": "operations",
    "tok-admin-0001": "admin",
    "tok-leadership-01": "leadership",
}
SETTINGS = Settings(environment="test", api_tokens=TOKENS)  # type: ignore[arg-type]
ADMIN = {"Authorization": "Bearer tok-admin-0001"}
CLINICIAN = {"Authorization": "Bearer tok-clinician-0001"}
FINANCE = {"Authorization": "Bearer tok-finance-0001"}
OPERATIONS = {"Authorization": "Bearer tok-operations-01"}
LEADERSHIP = {"Authorization": "Bearer tok-leadership-01"}
FHIR_JSON = "application/fhir+json"
SSN = "http://hl7.org/fhir/sid/us-ssn"
MRN = "http://hospital.smarthealthit.org"


def patient(pid: str = "p1", family: str = "Doe") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": family, "given": ["Jane"]}],
        "gender": "female",
        "birthDate": "1970-05-04",
        "identifier": [
            {
                "system": MRN,
                "value": f"MRN-{pid}",
                "type": {"coding": [{"code": "MR"}]},
            },
            {"system": SSN, "value": f"999-00-{pid}", "type": {"coding": [{"code": "SS"}]}},
        ],
    }


def encounter(eid: str, pid: str = "p1", *, start: str = "2024-03-01T08:00:00Z") -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": start, "end": start},
        "reasonCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "10509002"}]}],
    }


def observation(oid: str, eid: str, *, code: str = "8867-4", when: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": f"Encounter/{eid}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": 72, "unit": "/min", "code": "/min"},
    }


def transaction(*resources: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources
        ],
    }


@pytest.fixture(scope="module")
def record(migrated_engine: Engine) -> Iterator[TestClient]:
    """p1 with two encounters and five heart-rate observations across 2024.

    One app and one record per module and backend (an app's start-up and first write
    cost about a second): tests that write use resources of their own, not p1's.
    """
    truncate_all(migrated_engine)
    resources = [patient(), encounter("e1"), encounter("e2", start="2024-06-01T08:00:00Z")]
    resources += [
        observation(f"o{i}", "e1" if i < 3 else "e2", when=f"2024-0{i + 1}-15T10:00:00Z")
        for i in range(5)
    ]
    with TestClient(create_app(SETTINGS, engine=migrated_engine)) as client:
        response = client.post("/fhir", json=transaction(*resources), headers=ADMIN)
        assert response.status_code == 200, response.text
        yield client
    truncate_all(migrated_engine)


@pytest.fixture
def writer(record: TestClient) -> TestClient:
    """The record, with p9 and its encounter e9 for tests that write."""
    response = record.post(
        "/fhir", json=transaction(patient("p9"), encounter("e9", "p9")), headers=ADMIN
    )
    assert response.status_code == 200, response.text
    return record


def outcome(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return str(body["issue"][0]["diagnostics"])


def test_metadata_lists_every_type_with_interactions_and_search_parameters(
    record: TestClient,
) -> None:
    response = record.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(FHIR_JSON)
    statement = CapabilityStatement.model_validate(response.json())
    resources = {r.type: r for r in statement.rest[0].resource}
    assert set(supported_types()) <= set(resources)
    encounter_params = {p.name for p in resources["Encounter"].searchParam}
    assert {"_id", "_lastUpdated", "patient", "subject", "date", "status", "class"} <= (
        encounter_params
    )
    assert {i.code for i in resources["Observation"].interaction} == {
        "read",
        "search-type",
        "create",
        "update",
    }
    assert {i.code for i in statement.rest[0].interaction} == {"transaction", "batch"}


def test_read_returns_the_stored_resource_with_version_and_last_updated(
    writer: TestClient,
) -> None:
    record = writer
    response = record.get("/fhir/Observation/o1", headers=CLINICIAN)
    assert response.status_code == 200
    body = response.json()
    assert body["valueQuantity"]["value"] == 72
    assert body["encounter"] == {"reference": "Encounter/e1"}
    assert response.headers["etag"] == f'W/"{body["meta"]["versionId"]}"'
    assert body["meta"]["lastUpdated"].endswith("Z")
    # A write makes a new version.
    w1 = {
        **observation("w1", "e9", when="2024-02-15T10:00:00Z"),
        "subject": {"reference": "Patient/p9"},
    }
    assert record.put("/fhir/Observation/w1", json=w1, headers=CLINICIAN).status_code in (200, 201)
    version = record.get("/fhir/Observation/w1", headers=CLINICIAN).json()["meta"]["versionId"]
    changed = {**w1, "status": "amended"}
    put = record.put("/fhir/Observation/w1", json=changed, headers=CLINICIAN)
    assert put.status_code == 200, put.text
    again = record.get("/fhir/Observation/w1", headers=CLINICIAN).json()
    assert again["status"] == "amended"
    assert int(again["meta"]["versionId"]) > int(version)


def test_search_pages_with_total_and_next_links(record: TestClient) -> None:
    seen: list[str] = []
    url: str | None = "/fhir/Observation?patient=p1&_count=2&_sort=date"
    totals = set()
    while url:
        page = record.get(url, headers=CLINICIAN).json()
        Bundle.model_validate(page)
        assert page["type"] == "searchset"
        totals.add(page["total"])
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        links = {link["relation"]: link["url"] for link in page["link"]}
        assert "self" in links
        url = links.get("next")
    assert totals == {5}
    assert seen == ["o0", "o1", "o2", "o3", "o4"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("_id=o1,o3", ["o1", "o3"]),
        ("encounter=e2", ["o3", "o4"]),
        ("subject=Patient/p1&date=ge2024-03-01&date=lt2024-05", ["o2", "o3"]),
        ("patient=p1&date=2024-02", ["o1"]),
        ("patient=p1&code=http://loinc.org|8867-4&status=final&_count=1&_sort=-date", ["o4"]),
        ("code=other-code", []),
        ("patient=p1&_lastUpdated=gt2000-01-01&_count=2", ["o0", "o1"]),
    ],
)
def test_observation_search_parameters(record: TestClient, query: str, expected: list[str]) -> None:
    page = record.get(f"/fhir/Observation?{query}", headers=CLINICIAN).json()
    assert [e["resource"]["id"] for e in page.get("entry", [])] == expected


def test_encounter_search_by_class_status_date_and_patient_identifier(record: TestClient) -> None:
    found = record.get(
        "/fhir/Encounter?patient=p1&class=AMB&status=finished&date=2024-06", headers=CLINICIAN
    ).json()
    assert [e["resource"]["id"] for e in found["entry"]] == ["e2"]
    by_mrn = record.get(f"/fhir/Patient?identifier={MRN}|MRN-p1", headers=CLINICIAN).json()
    assert by_mrn["total"] == 1
    # Minimum necessary: no role can confirm an SSN by searching for it.
    by_ssn = record.get("/fhir/Patient?identifier=999-00-p1", headers=CLINICIAN).json()
    assert by_ssn["total"] == 0


def test_count_zero_gives_the_total_only(record: TestClient) -> None:
    page = record.get("/fhir/Observation?patient=p1&_count=0", headers=CLINICIAN).json()
    assert page["total"] == 5
    assert "entry" not in page


def test_patient_everything_holds_the_compartment(record: TestClient) -> None:
    response = record.get("/fhir/Patient/p1/$everything", headers=CLINICIAN)
    assert response.status_code == 200
    bundle = response.json()
    Bundle.model_validate(bundle)
    types = sorted(e["resource"]["resourceType"] for e in bundle["entry"])
    assert types == ["Encounter"] * 2 + ["Observation"] * 5 + ["Patient"]
    assert bundle["total"] == 8


def test_no_role_sees_the_ssn_and_operations_sees_no_demographics(record: TestClient) -> None:
    clinician = record.get("/fhir/Patient/p1", headers=CLINICIAN).json()
    assert [i["system"] for i in clinician["identifier"]] == [MRN]
    assert clinician["birthDate"] == "1970-05-04"
    operations = record.get("/fhir/Patient/p1", headers=OPERATIONS).json()
    assert [i["system"] for i in operations["identifier"]] == [MRN]
    assert "birthDate" not in operations and "gender" not in operations
    assert "reasonCode" not in record.get("/fhir/Encounter/e1", headers=OPERATIONS).json()
    assert "reasonCode" in record.get("/fhir/Encounter/e1", headers=CLINICIAN).json()
    everything = record.get("/fhir/Patient/p1/$everything", headers=FINANCE).json()
    assert "Observation" not in {e["resource"]["resourceType"] for e in everything["entry"]}
    assert SSN not in json.dumps(everything)


@pytest.mark.parametrize(
    ("headers", "url", "status"),
    [
        (OPERATIONS, "/fhir/Observation/o1", 403),
        (FINANCE, "/fhir/Observation?patient=p1", 403),
        (LEADERSHIP, "/fhir/Patient/p1", 403),
        ({}, "/fhir/Patient/p1", 401),
        (CLINICIAN, "/fhir/Patient/nobody", 404),
        (CLINICIAN, "/fhir/Basic/x", 404),
        (CLINICIAN, "/fhir/Patient/bad%20id!", 404),
        (CLINICIAN, "/fhir/Observation?unknown=1", 400),
        (CLINICIAN, "/fhir/Observation?date=notadate", 400),
        (CLINICIAN, "/fhir/Observation?_count=-1", 400),
        (CLINICIAN, "/fhir/Observation?_sort=patient", 400),
        (CLINICIAN, "/fhir/Observation?code:text=x", 400),
        (CLINICIAN, "/fhir/Observation?status=%00", 400),
        (CLINICIAN, "/fhir/Observation?_id=" + ",".join(f"o{i}" for i in range(2000)), 400),
        (CLINICIAN, "/fhir/Observation?" + "&".join(["status=final"] * 200), 400),
    ],
)
def test_errors_are_operation_outcomes(
    record: TestClient, headers: dict[str, str], url: str, status: int
) -> None:
    outcome(record.get(url, headers=headers), status)


def test_create_assigns_an_id_and_answers_201_with_location(writer: TestClient) -> None:
    record = writer
    body = {
        **observation("ignored", "e9", when="2024-09-01T00:00:00Z"),
        "subject": {"reference": "Patient/p9"},
    }
    del body["id"]
    response = record.post("/fhir/Observation", json=body, headers=CLINICIAN)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"]
    assert response.headers["location"].endswith(
        f"/fhir/Observation/{created['id']}/_history/{created['meta']['versionId']}"
    )
    assert record.get(f"/fhir/Observation/{created['id']}", headers=CLINICIAN).status_code == 200


def test_put_id_must_match_and_if_match_must_name_the_current_version(
    writer: TestClient,
) -> None:
    record = writer
    body = {
        **observation("w2", "e9", when="2024-02-15T10:00:00Z"),
        "subject": {"reference": "Patient/p9"},
    }
    assert "id" in outcome(record.put("/fhir/Observation/o9", json=body, headers=CLINICIAN), 400)
    assert record.put("/fhir/Observation/w2", json=body, headers=CLINICIAN).status_code in (
        200,
        201,
    )
    stale = {**CLINICIAN, "If-Match": 'W/"1"'}
    outcome(record.put("/fhir/Observation/w2", json=body, headers=stale), 412)
    version = record.get("/fhir/Observation/w2", headers=CLINICIAN).json()["meta"]["versionId"]
    fresh = {**CLINICIAN, "If-Match": f'W/"{version}"'}
    assert record.put("/fhir/Observation/w2", json=body, headers=fresh).status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[]", 400),
        (b'{"resourceType": "Patient", "id": "x"}', 400),  # a Patient posted as Observation
        (b'{"resourceType": "Observation", "status": "final"}', 422),  # no code
        (b'{"resourceType": "Observation", "id": "bad id!"}', 400),
    ],
)
def test_invalid_bodies_are_refused_and_nothing_is_written(
    record: TestClient, migrated_engine: Engine, body: bytes, status: int
) -> None:
    before = table_counts(migrated_engine)
    response = record.post(
        "/fhir/Observation", content=body, headers={**CLINICIAN, "Content-Type": FHIR_JSON}
    )
    outcome(response, status)
    assert table_counts(migrated_engine) == before


def test_writes_respect_the_role(record: TestClient) -> None:
    outcome(record.post("/fhir/Patient", json=patient("p2"), headers=FINANCE), 403)
    outcome(record.post("/fhir/Patient", json=patient("p2"), headers=OPERATIONS), 403)


def test_a_failing_transaction_writes_nothing(record: TestClient, migrated_engine: Engine) -> None:
    before = table_counts(migrated_engine)
    bad = transaction(
        patient("p2"),
        encounter("e9", "p2"),
        observation("o9", "e-missing", when="2024-01-01T00:00:00Z"),
    )
    outcome(record.post("/fhir", json=bad, headers=ADMIN), 422)
    assert table_counts(migrated_engine) == before


def test_a_batch_answers_each_entry(record: TestClient) -> None:
    bad = observation("o9", "e-missing", when="2024-01-01T00:00:00Z")
    bundle = transaction(patient("p3"), bad, kind="batch")
    bundle["entry"].append({"resource": patient("p4"), "request": {"method": "DELETE", "url": "x"}})
    response = record.post("/fhir", json=bundle, headers=ADMIN)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["201 Created", "422", "400"]
    assert record.get("/fhir/Patient/p3", headers=CLINICIAN).status_code == 200
    Bundle.model_validate(result)


def test_transaction_posts_with_urn_uuid_references(record: TestClient) -> None:
    client = record
    pid = "7f1c8a43-2b7e-4c0f-9f41-0b5b8f6d2a11"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{pid}",
                "resource": {k: v for k, v in patient("urn").items() if k != "id"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:0b8c9f3e-5d2a-4e61-8f7b-2c4d6e8f0a12",
                "resource": {
                    **{k: v for k, v in encounter("x").items() if k != "id"},
                    "subject": {"reference": f"urn:uuid:{pid}"},
                },
                "request": {"method": "POST", "url": "Encounter"},
            },
        ],
    }
    response = client.post("/fhir", json=bundle, headers=ADMIN)
    assert response.status_code == 200, response.text
    result = response.json()
    assert [e["response"]["status"] for e in result["entry"]] == ["201 Created"] * 2
    found = client.get(f"/fhir/Encounter?patient={pid}", headers=CLINICIAN).json()
    assert found["total"] == 1
    assert found["entry"][0]["resource"]["subject"] == {"reference": f"Patient/{pid}"}
