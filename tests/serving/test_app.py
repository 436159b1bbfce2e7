"""The API application: probes, OpenAPI, auth, problem details, patients and encounters.

Every test that takes ``client`` runs on SQLite and on PostgreSQL (the ``engine`` fixture).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.db import make_engine, session_scope
from healthos_core.errors import ConflictError, PricingError
from healthos_core.record.entities import Encounter, Observation, Patient, PatientIdentifier
from healthos_core.settings import Settings
from serving.deps import SessionDep
from serving.main import create_app

TOKENS = {
    "tok-clinician-0001": "clinician",
    "tok-nurse-0001": "nurse",
    "tok-finance-0001": "finance",
    "tok-operations-01": "operations",
    "tok-leadership-01": "leadership",
    "tok-admin-0001": "admin",
    "tok-datasci-0001": "data_scientist",
    "tok-patient-0001": "patient",
}
SETTINGS = Settings(environment="test", api_tokens=TOKENS)  # type: ignore[arg-type]
MRN = "http://hospital.example/mrn"
SSN = "http://hl7.org/fhir/sid/us-ssn"
T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)
PROBLEM = "application/problem+json"


def auth(role: str) -> dict[str, str]:
    token = next(t for t, r in TOKENS.items() if r == role)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    return create_app(SETTINGS, engine=engine)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def make_patient(
    session: Session, patient_id: str, family: str, given: str, mrn: str, ssn: str | None = None
) -> Patient:
    identifiers = [PatientIdentifier(system=MRN, value=mrn, type_code="MR")]
    if ssn:
        identifiers.append(PatientIdentifier(system=SSN, value=ssn, type_code="SS"))
    patient = Patient(
        id=patient_id,
        family=family,
        given=given,
        gender="female",
        birth_date=dt.date(1950, 1, 2),
        identifiers=identifiers,
    )
    session.add(patient)
    return patient


def make_observation(
    session: Session, obs_id: str, encounter: Encounter, minutes: int, value: float, **kw: object
) -> None:
    session.add(
        Observation(
            id=obs_id,
            patient_id=encounter.patient_id,
            encounter_id=encounter.id,
            code="9279-1",
            display="Respiratory rate",
            category="vital-signs",
            value=value,
            unit="/min",
            effective_at=T0 + dt.timedelta(minutes=minutes),
            **kw,
        )
    )


@pytest.fixture
def record(session_factory: sessionmaker[Session]) -> None:
    """Three synthetic patients; pat-1 has an inpatient and an outpatient encounter."""
    with session_scope(session_factory) as session:
        make_patient(session, "pat-1", "Okafor", "Ada", "MRN001", ssn="999-01-0001")
        make_patient(session, "pat-2", "Brown", "Ben", "MRN002")
        make_patient(session, "pat-3", "Chen", "Cai", "MRN003")
        session.flush()
        inpatient = Encounter(
            id="enc-1", patient_id="pat-1", status="in-progress", class_code="IMP", period_start=T0
        )
        outpatient = Encounter(
            id="enc-2",
            patient_id="pat-1",
            status="finished",
            class_code="AMB",
            period_start=T0 - dt.timedelta(days=30),
            period_end=T0 - dt.timedelta(days=30, hours=-1),
        )
        other = Encounter(
            id="enc-3",
            patient_id="pat-2",
            status="finished",
            class_code="EMER",
            period_start=T0 - dt.timedelta(days=2),
        )
        session.add_all([inpatient, outpatient, other])
        session.flush()
        # Ids sort opposite to time: the API must order by time.
        make_observation(session, "obs-a", inpatient, 120, 18.0)
        make_observation(session, "obs-b", inpatient, 60, 24.0)
        make_observation(
            session,
            "obs-c",
            inpatient,
            0,
            400.0,
            status="entered-in-error",
            quality_flag="implausible:resp_rate",
        )


# --- probes and OpenAPI ---------------------------------------------------------------


def test_health_is_public(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_ready_checks_the_database_and_lists_models(client: TestClient) -> None:
    response = client.get("/ready")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"]) == ("ready", "ok")
    # the shipped champions are loaded at start-up
    assert [m["name"] for m in body["models"]] == [
        "denial",
        "denial_line",
        "deterioration",
        "readmission",
    ]
    assert all(m["version"] for m in body["models"])


def test_ready_is_503_problem_when_the_database_is_unreachable() -> None:
    unreachable = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test")
    try:
        with TestClient(create_app(SETTINGS, engine=unreachable)) as client:
            response = client.get("/ready")
    finally:
        unreachable.dispose()

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert (body["status"], body["code"], body["instance"]) == (
        503,
        "service-unavailable",
        "/ready",
    )
    assert "127.0.0.1" not in response.text


def test_openapi_is_served_with_every_route_and_bearer_auth(client: TestClient) -> None:
    response = client.get("/openapi.json")

    assert response.status_code == 200
    spec = response.json()
    assert {
        "/health",
        "/ready",
        "/api/v1/patients",
        "/api/v1/patients/{patient_id}",
        "/api/v1/encounters",
        "/api/v1/encounters/{encounter_id}",
        "/api/v1/suggestions",
        "/api/v1/suggestions/{suggestion_id}",
        "/api/v1/suggestions/{suggestion_id}/acknowledge",
        "/api/v1/suggestions/{suggestion_id}/act",
        "/api/v1/suggestions/{suggestion_id}/dismiss",
    } <= set(spec["paths"])
    assert any(s["scheme"] == "bearer" for s in spec["components"]["securitySchemes"].values())
    patients = spec["paths"]["/api/v1/patients"]["get"]
    assert {"200", "401", "403", "422"} <= set(patients["responses"])
    assert "ProblemDetails" in spec["components"]["schemas"]


# --- authentication and authorisation -------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-real-token"},
        {"Authorization": "Basic dG9rLWNsaW5pY2lhbi0wMDAxOg=="},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "unknown", "basic", "empty"],
)
def test_api_without_a_valid_token_is_401_problem(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = client.get("/api/v1/patients", headers=headers)

    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert (body["status"], body["code"], body["title"]) == (401, "unauthorized", "Unauthorized")
    assert body["type"].endswith("unauthorized")
    assert "not-a-real-token" not in response.text


@pytest.mark.parametrize(
    ("role", "path"),
    [
        ("data_scientist", "/api/v1/patients"),
        ("patient", "/api/v1/patients/pat-1"),
        ("leadership", "/api/v1/encounters"),
        ("leadership", "/api/v1/encounters/enc-1"),
        ("data_scientist", "/api/v1/encounters/enc-1"),
    ],
)
def test_wrong_role_is_403_problem(client: TestClient, record: None, role: str, path: str) -> None:
    response = client.get(path, headers=auth(role))

    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert (body["code"], body["instance"]) == ("forbidden", path)
    assert role in body["detail"]


# --- problem details for every error --------------------------------------------------


def test_unknown_patient_is_404_problem(client: TestClient) -> None:
    response = client.get("/api/v1/patients/nobody", headers=auth("clinician"))

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert set(body) >= {"type", "title", "status", "detail", "instance", "code"}
    assert (body["status"], body["code"], body["title"]) == (404, "not-found", "Not Found")
    assert body["instance"] == "/api/v1/patients/nobody"
    assert "nobody" in body["detail"]


def test_unknown_encounter_is_404_problem(client: TestClient) -> None:
    response = client.get("/api/v1/encounters/nowhere", headers=auth("nurse"))

    assert (response.status_code, response.json()["code"]) == (404, "not-found")


def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    missing = client.get("/api/v1/nothing-here")
    wrong_method = client.delete("/health")

    assert (missing.status_code, missing.headers["content-type"]) == (404, PROBLEM)
    assert missing.json()["code"] == "not-found"
    assert (wrong_method.status_code, wrong_method.headers["content-type"]) == (405, PROBLEM)
    assert wrong_method.json()["code"] == "method-not-allowed"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/patients?limit=0", "limit"),
        ("/api/v1/patients?limit=many", "limit"),
        ("/api/v1/patients?offset=-1", "offset"),
        ("/api/v1/encounters?class=XYZ", "class"),
        ("/api/v1/encounters?status=done", "status"),
        ("/api/v1/encounters?limit=501", "limit"),
    ],
)
def test_bad_query_params_are_422_problem(client: TestClient, path: str, field: str) -> None:
    response = client.get(path, headers=auth("clinician"))

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == "invalid-request"
    assert ["query", field] in [e["loc"] for e in body["errors"]]
    assert "XYZ" not in response.text and "many" not in response.text  # input not echoed


def test_malformed_identifier_search_is_422_problem(client: TestClient) -> None:
    response = client.get("/api/v1/patients", params={"identifier": "|"}, headers=auth("clinician"))

    assert (response.status_code, response.json()["code"]) == (422, "invalid-input")


@pytest.fixture
def probe_app(app: FastAPI) -> FastAPI:
    """The app plus routes that write and then fail in chosen ways."""

    @app.post("/probe/{patient_id}")
    def probe(*, session: SessionDep, patient_id: str, fail: str = "") -> dict[str, str]:
        session.add(Patient(id=patient_id, family="Probe"))
        session.flush()
        if fail == "conflict":
            raise ConflictError("probe conflict")
        if fail == "pricing":
            raise PricingError("no price for CPT 99999 on 2025-03-01")
        if fail == "crash":
            raise RuntimeError("secret detail: Ada Okafor, MRN001")
        if fail == "at-commit":  # not flushed: the foreign key fails only at commit
            session.add(Observation(id=f"{patient_id}-obs", patient_id="no-such-patient"))
        return {"id": patient_id}

    return app


def stored_patient_ids(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.scalars(select(Patient.id)))


def test_session_commits_on_success_and_rolls_back_on_error(
    probe_app: FastAPI, engine: Engine
) -> None:
    with TestClient(probe_app) as client:
        ok = client.post("/probe/p-ok")
        conflict = client.post("/probe/p-conflict", params={"fail": "conflict"})
        pricing = client.post("/probe/p-pricing", params={"fail": "pricing"})

    assert ok.status_code == 200
    assert (conflict.status_code, conflict.json()["code"]) == (409, "conflict")
    assert (pricing.status_code, pricing.json()["code"]) == (400, "no-price")
    assert pricing.headers["content-type"] == PROBLEM
    assert stored_patient_ids(engine) == {"p-ok"}


def test_session_commits_before_the_response_is_sent(probe_app: FastAPI, engine: Engine) -> None:
    with TestClient(probe_app) as client:
        response = client.post("/probe/p-late", params={"fail": "at-commit"})

    assert response.status_code == 500  # not a 200 for data that was never stored
    assert response.headers["content-type"] == PROBLEM
    assert stored_patient_ids(engine) == set()


def test_unexpected_error_is_500_problem_without_the_message(
    probe_app: FastAPI, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO), TestClient(probe_app) as client:
        response = client.post("/probe/p-crash", params={"fail": "crash"})

    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "internal-error"
    assert "Ada" not in response.text
    assert "RuntimeError" in caplog.text
    assert "Ada" not in caplog.text and "MRN001" not in caplog.text
    assert stored_patient_ids(engine) == set()


# --- patients -------------------------------------------------------------------------


def test_list_patients_pages_in_name_order(client: TestClient, record: None) -> None:
    first = client.get("/api/v1/patients", params={"limit": 2}, headers=auth("nurse"))
    second = client.get("/api/v1/patients", params={"limit": 2, "offset": 2}, headers=auth("nurse"))

    assert first.status_code == 200
    assert first.json()["count"] == 3
    assert [p["id"] for p in first.json()["data"]] == ["pat-2", "pat-3"]  # Brown, Chen
    assert [p["id"] for p in second.json()["data"]] == ["pat-1"]  # Okafor


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        (f"{MRN}|MRN002", ["pat-2"]),
        ("MRN003", ["pat-3"]),
        (f"{SSN}|", []),  # no role may search by SSN (tests/serving/test_minimum_necessary.py)
        (f"{SSN}|MRN002", []),
        ("|MRN001", []),  # no identifier without a system
    ],
)
def test_list_patients_searches_by_identifier(
    client: TestClient, record: None, identifier: str, expected: list[str]
) -> None:
    response = client.get(
        "/api/v1/patients", params={"identifier": identifier}, headers=auth("finance")
    )

    assert response.status_code == 200
    assert [p["id"] for p in response.json()["data"]] == expected
    assert response.json()["count"] == len(expected)


def test_read_patient_returns_name_and_identifiers(client: TestClient, record: None) -> None:
    response = client.get("/api/v1/patients/pat-1", headers=auth("clinician"))

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["name"], body["gender"], body["birth_date"]) == (
        "pat-1",
        "Ada Okafor",
        "female",
        "1950-01-02",
    )
    # no SSN: minimum necessary (tests/serving/test_minimum_necessary.py)
    assert body["identifiers"] == [{"system": MRN, "value": "MRN001", "type": "MR"}]


# --- encounters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["enc-1", "enc-3", "enc-2"]),  # latest start first
        ({"patient": "pat-1"}, ["enc-1", "enc-2"]),
        ({"patient": "Patient/pat-1"}, ["enc-1", "enc-2"]),
        ({"status": "finished"}, ["enc-3", "enc-2"]),
        ({"class": "IMP"}, ["enc-1"]),
        ({"patient": "pat-1", "class": "EMER"}, []),
    ],
)
def test_list_encounters_filters(
    client: TestClient, record: None, params: dict[str, str], expected: list[str]
) -> None:
    response = client.get("/api/v1/encounters", params=params, headers=auth("operations"))

    assert response.status_code == 200
    assert [e["id"] for e in response.json()["data"]] == expected
    assert response.json()["count"] == len(expected)


def test_read_encounter_returns_observations_in_time_order(
    client: TestClient, record: None
) -> None:
    response = client.get("/api/v1/encounters/enc-1", headers=auth("nurse"))

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["patient_id"], body["class_code"], body["status"]) == (
        "enc-1",
        "pat-1",
        "IMP",
        "in-progress",
    )
    observations = body["observations"]
    assert [o["id"] for o in observations] == ["obs-c", "obs-b", "obs-a"]
    assert observations[0]["status"] == "entered-in-error"
    assert observations[0]["quality_flag"] == "implausible:resp_rate"
    assert observations[1] == {
        "id": "obs-b",
        "code": "9279-1",
        "display": "Respiratory rate",
        "category": "vital-signs",
        "value": 24.0,
        "unit": "/min",
        "value_code": None,
        "value_string": None,
        "components": None,
        "effective_at": "2025-03-01T09:00:00Z",
        "status": "final",
        "quality_flag": None,
    }
