"""Clinical writes in the API: register, admit, vital signs, procedures, doses, transfer, discharge.

Every test runs on SQLite and on PostgreSQL (the ``engine`` fixture). Each write answers
with the stored resource and the ChargeItems it posted; refused writes (403, 404, 409,
422) leave every table as it was.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core import terminology as t
from healthos_core.billing.entities import ChargeItem
from healthos_core.db import session_scope
from healthos_core.fhir.exporter import to_fhir
from healthos_core.fhir.refs import format_datetime
from healthos_core.record.entities import Encounter, Observation
from healthos_core.settings import Settings
from reasoning.registry import run_scorers
from serving.main import create_app
from tests.conftest import table_counts
from tests.factories import RXNORM, SNOMED, make_chargemaster, make_location, make_organization

TOKENS = {
    "tok-clinician-0001": "clinician",
    "tok-nurse-0001": "nurse",
    "tok-operations-01": "operations",
    "tok-finance-0001": "finance",
    "tok-admin-0001": "admin",
    "tok-leadership-01": "leadership",
}
#: Rescoring off: these tests score by hand (the consumer is tested in test_rescoring_api),
#: and a consumer thread writing beside them would hold SQLite's write lock.
SETTINGS = Settings(environment="test", api_tokens=TOKENS, rescore="off")  # type: ignore[arg-type]
API = "/api/v1"
PROBLEM = "application/problem+json"
START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
ADMISSION = "32485007"  # SNOMED CT "Hospital admission", priced as the visit fee
COLONOSCOPY = "73761001"
IBUPROFEN = "310965"
DETERIORATING = {  # NEWS2 3+3+2+2+2+0+1 = 13 (high)
    "effective_at": "2026-03-02T10:00:00Z",
    "respiratory_rate": 26,
    "spo2": 90,
    "oxygen_flow_rate": 2,
    "systolic_bp": 95,
    "diastolic_bp": 55,
    "heart_rate": 125,
    "consciousness": "A",
    "temperature": 38.5,
}


def auth(role: str) -> dict[str, str]:
    token = next(t for t, r in TOKENS.items() if r == role)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(engine: Engine, session_factory: sessionmaker[Session]) -> Iterator[TestClient]:
    with session_scope(session_factory) as session:
        make_organization(session, id="org-1")
        make_location(session, id="ward-a", name="Ward A")
        make_location(session, id="bed-a1", name="Bed A1", kind="bed", physical_type="bd")
        make_location(session, id="bed-icu1", name="ICU bed 1", kind="bed", physical_type="bd")
        make_chargemaster(
            session,
            [
                {"code": ADMISSION, "unit_price": "500.00", "description": "Admission fee"},
                {"code": COLONOSCOPY, "unit_price": "1200.00", "description": "Colonoscopy"},
                {"code_system": RXNORM, "code": IBUPROFEN, "unit_price": "3.50"},
            ],
        )
    with TestClient(create_app(SETTINGS, engine=engine)) as test_client:
        yield test_client


def register(client: TestClient, **overrides: Any) -> dict[str, Any]:
    body = {
        "given": "Asha",
        "family": "Rao",
        "gender": "female",
        "birth_date": "1980-05-17",
        "identifiers": [{"system": "urn:mrn", "value": "MRN-1", "type": "MR"}],
        "facility_id": "org-1",
        **overrides,
    }
    response = client.post(f"{API}/patients", json=body, headers=auth("operations"))
    assert response.status_code == 201, response.text
    patient: dict[str, Any] = response.json()["patient"]
    return patient


def admit(client: TestClient, patient_id: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "patient_id": patient_id,
        "class_code": "IMP",
        "start": START.isoformat(),
        "location_id": "bed-a1",
        "type_code": ADMISSION,
        **overrides,
    }
    response = client.post(f"{API}/encounters", json=body, headers=auth("nurse"))
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


@pytest.fixture
def encounter_id(client: TestClient) -> str:
    patient = register(client)
    return str(admit(client, patient["id"])["encounter"]["id"])


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def error_locs(body: dict[str, Any]) -> list[list[Any]]:
    return [e["loc"] for e in body.get("errors") or []]


# --- happy paths ----------------------------------------------------------------------


def test_register_patient_answers_201_with_location_and_the_stored_patient(
    client: TestClient,
) -> None:
    response = client.post(
        f"{API}/patients",
        json={
            "given": "Asha",
            "family": "Rao",
            "gender": "female",
            "birth_date": "1980-05-17",
            "identifiers": [{"system": "urn:mrn", "value": "MRN-7", "type": "MR"}],
            "id": "pat-asha",
        },
        headers=auth("clinician"),
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"{API}/patients/pat-asha"
    answer = response.json()
    assert answer["charge_items"] == []
    patient = answer["patient"]
    assert (patient["id"], patient["name"], patient["gender"], patient["birth_date"]) == (
        "pat-asha",
        "Asha Rao",
        "female",
        "1980-05-17",
    )
    assert patient["identifiers"] == [{"system": "urn:mrn", "value": "MRN-7", "type": "MR"}]
    read = client.get(response.headers["location"], headers=auth("clinician"))
    assert read.status_code == 200
    assert read.json() == patient


def test_admit_answers_the_encounter_at_its_bed_and_the_visit_fee_it_posted(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    patient = register(client)
    response = client.post(
        f"{API}/encounters",
        json={
            "patient_id": patient["id"],
            "class_code": "IMP",
            "start": "2026-03-02T13:30:00+05:30",
            "location_id": "bed-a1",
            "type_code": ADMISSION,
            "type_display": "Hospital admission",
        },
        headers=auth("operations"),
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    encounter = answer["encounter"]
    assert response.headers["location"] == f"{API}/encounters/{encounter['id']}"
    assert encounter["status"] == "in-progress"
    assert encounter["location_id"] == "bed-a1"
    assert encounter["service_provider_id"] == "org-1"  # the patient's facility
    assert dt.datetime.fromisoformat(encounter["period_start"]) == START
    assert answer["location_history"] == [
        {
            "location": {"reference": "Location/bed-a1"},
            "status": "active",
            "period": {"start": format_datetime(START)},
        }
    ]
    [charge] = answer["charge_items"]
    assert charge["service_ref"] == f"Encounter/{encounter['id']}"
    assert (charge["code"], charge["total"], charge["currency"]) == (ADMISSION, "500.00", "USD")
    with session_factory() as session:
        stored = session.scalars(select(ChargeItem)).all()
        assert [c.id for c in stored] == [charge["id"]]


def test_vital_sign_set_is_stored_as_the_observations_news2_reads(
    client: TestClient, encounter_id: str, session_factory: sessionmaker[Session]
) -> None:
    response = client.post(
        f"{API}/encounters/{encounter_id}/observations",
        json=DETERIORATING,
        headers=auth("nurse"),
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["charge_items"] == []
    by_code = {o["code"]: o for o in answer["observations"]}
    assert sorted(by_code) == sorted(
        [
            t.RESPIRATORY_RATE,
            t.OXYGEN_SATURATION_PULSE_OXIMETRY,
            t.INHALED_OXYGEN_FLOW_RATE,
            t.BLOOD_PRESSURE_PANEL,
            t.HEART_RATE,
            t.LEVEL_OF_RESPONSIVENESS,
            t.BODY_TEMPERATURE,
        ]
    )
    assert (by_code[t.RESPIRATORY_RATE]["value"], by_code[t.RESPIRATORY_RATE]["unit"]) == (
        26,
        "/min",
    )
    assert by_code[t.LEVEL_OF_RESPONSIVENESS]["value_code"] == "A"
    assert by_code[t.BLOOD_PRESSURE_PANEL]["components"] == [  # the importer's one shape
        {"system": None, "code": t.SYSTOLIC_BP, "display": None, "value": 95, "unit": "mm[Hg]"},
        {"system": None, "code": t.DIASTOLIC_BP, "display": None, "value": 55, "unit": "mm[Hg]"},
    ]
    assert {o["category"] for o in answer["observations"]} == {"vital-signs"}
    with session_scope(session_factory) as session:
        stored = session.scalars(
            select(Observation.id).where(Observation.encounter_id == encounter_id)
        ).all()
        assert sorted(stored) == sorted(by_code[c]["id"] for c in by_code)
        suggestions = run_scorers(session, kind="clinical.news2")
    [news2] = [s for s in suggestions if s.subject == f"Encounter/{encounter_id}"]
    assert news2.band == "high"
    assert news2.score == 13
    assert set(news2.explanation.evidence) == {f"Observation/{o}" for o in stored}


def test_procedure_answers_the_procedure_and_its_charge(
    client: TestClient, encounter_id: str, session_factory: sessionmaker[Session]
) -> None:
    response = client.post(
        f"{API}/encounters/{encounter_id}/procedures",
        json={
            "code": COLONOSCOPY,
            "display": "Colonoscopy",
            "performed_at": "2026-03-02T11:00:00Z",
            "performed_end": "2026-03-02T11:40:00Z",
        },
        headers=auth("clinician"),
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    procedure = answer["procedure"]
    assert (procedure["code_system"], procedure["code"], procedure["status"]) == (
        SNOMED,
        COLONOSCOPY,
        "completed",
    )
    assert procedure["encounter_id"] == encounter_id
    [charge] = answer["charge_items"]
    assert charge["service_ref"] == f"Procedure/{procedure['id']}"
    assert (charge["total"], charge["unit_price"], charge["quantity"]) == (
        "1200.00",
        "1200.00",
        "1",
    )
    with session_factory() as session:
        charged = session.scalars(
            select(ChargeItem.id).where(ChargeItem.service_ref == f"Procedure/{procedure['id']}")
        ).all()
        assert charged == [charge["id"]]


def test_medication_administration_answers_the_dose_and_its_charge(
    client: TestClient, encounter_id: str
) -> None:
    response = client.post(
        f"{API}/encounters/{encounter_id}/medication-administrations",
        json={
            "code": IBUPROFEN,
            "effective_at": "2026-03-02T12:00:00Z",
            "dose_value": 200,
            "dose_unit": "mg",
        },
        headers=auth("nurse"),
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    given = answer["medication_administration"]
    assert (given["code_system"], given["code"], given["dose_value"], given["dose_unit"]) == (
        RXNORM,
        IBUPROFEN,
        200,
        "mg",
    )
    [charge] = answer["charge_items"]
    assert charge["service_ref"] == f"MedicationAdministration/{given['id']}"
    assert charge["total"] == "3.50"


def test_transfer_moves_the_patient_and_keeps_the_place_left_in_the_history(
    client: TestClient, encounter_id: str, session_factory: sessionmaker[Session]
) -> None:
    response = client.post(
        f"{API}/encounters/{encounter_id}/transfer",
        json={"location_id": "bed-icu1", "at": "2026-03-02T14:00:00Z"},
        headers=auth("operations"),
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["encounter"]["location_id"] == "bed-icu1"
    assert answer["charge_items"] == []
    moved = "2026-03-02T14:00:00Z"
    assert answer["location_history"] == [
        {
            "location": {"reference": "Location/bed-a1"},
            "status": "completed",
            "period": {"start": format_datetime(START), "end": moved},
        },
        {
            "location": {"reference": "Location/bed-icu1"},
            "status": "active",
            "period": {"start": moved},
        },
    ]
    read = client.get(f"{API}/encounters/{encounter_id}", headers=auth("nurse"))
    assert read.json()["location_id"] == "bed-icu1"
    with session_factory() as session:
        exported = to_fhir(session.get(Encounter, encounter_id))  # type: ignore[arg-type]
    assert exported["location"] == answer["location_history"]
    assert exported["status"] == "in-progress"
    assert exported["class"]["code"] == "IMP"


def test_discharge_finishes_the_encounter(client: TestClient, encounter_id: str) -> None:
    response = client.post(
        f"{API}/encounters/{encounter_id}/discharge",
        json={"end": "2026-03-05T10:00:00Z", "disposition": "home"},
        headers=auth("clinician"),
    )
    assert response.status_code == 200, response.text
    encounter = response.json()["encounter"]
    assert encounter["status"] == "finished"
    assert encounter["discharge_disposition"] == "home"
    assert dt.datetime.fromisoformat(encounter["period_end"]) == dt.datetime(
        2026, 3, 5, 10, 0, tzinfo=dt.UTC
    )
    assert response.json()["charge_items"] == []


# --- refusals: nothing written --------------------------------------------------------

ENCOUNTER_WRITES = [
    ("observations", {"effective_at": "2026-03-02T10:00:00Z", "heart_rate": 80}),
    ("procedures", {"code": COLONOSCOPY, "performed_at": "2026-03-02T11:00:00Z"}),
    (
        "medication-administrations",
        {"code": IBUPROFEN, "effective_at": "2026-03-02T12:00:00Z"},
    ),
    ("transfer", {"location_id": "bed-icu1", "at": "2026-03-02T14:00:00Z"}),
    ("discharge", {"end": "2026-03-05T10:00:00Z"}),
]


@pytest.mark.parametrize(("route", "body"), ENCOUNTER_WRITES, ids=[r for r, _ in ENCOUNTER_WRITES])
def test_a_finished_encounter_refuses_every_write_with_409(
    client: TestClient, encounter_id: str, engine: Engine, route: str, body: dict[str, Any]
) -> None:
    discharged = client.post(
        f"{API}/encounters/{encounter_id}/discharge",
        json={"end": "2026-03-02T18:00:00Z"},
        headers=auth("clinician"),
    )
    assert discharged.status_code == 200
    before = table_counts(engine)
    response = client.post(
        f"{API}/encounters/{encounter_id}/{route}", json=body, headers=auth("clinician")
    )
    problem = assert_problem(response, 409)
    assert problem["code"] == "conflict"
    assert "finished" in problem["detail"]
    assert table_counts(engine) == before


@pytest.mark.parametrize(("route", "body"), ENCOUNTER_WRITES, ids=[r for r, _ in ENCOUNTER_WRITES])
def test_an_unknown_encounter_is_404(
    client: TestClient, engine: Engine, route: str, body: dict[str, Any]
) -> None:
    before = table_counts(engine)
    response = client.post(
        f"{API}/encounters/no-such-encounter/{route}", json=body, headers=auth("clinician")
    )
    problem = assert_problem(response, 404)
    assert "Encounter/no-such-encounter" in problem["detail"]
    assert table_counts(engine) == before


CARE_ONLY = {"observations", "procedures", "medication-administrations"}
REFUSALS = [
    (route, body, role)
    for route, body in ENCOUNTER_WRITES
    for role in ("finance", "admin", "leadership", "operations")
    if role != "operations" or route in CARE_ONLY
]


@pytest.mark.parametrize(
    ("route", "body", "role"), REFUSALS, ids=[f"{r}-{role}" for r, _, role in REFUSALS]
)
def test_roles_that_may_not_write_get_403_and_nothing_is_written(
    client: TestClient,
    encounter_id: str,
    engine: Engine,
    route: str,
    body: dict[str, Any],
    role: str,
) -> None:
    before = table_counts(engine)
    response = client.post(
        f"{API}/encounters/{encounter_id}/{route}", json=body, headers=auth(role)
    )
    problem = assert_problem(response, 403)
    assert f"the {role} role may not" in problem["detail"]
    assert table_counts(engine) == before


@pytest.mark.parametrize("role", ["finance", "admin", "leadership"])
def test_registering_and_admitting_are_refused_to_roles_outside_care_and_admissions(
    client: TestClient, engine: Engine, role: str
) -> None:
    before = table_counts(engine)
    patient = {"given": "A", "family": "B", "gender": "male", "birth_date": "1990-01-01"}
    assert_problem(client.post(f"{API}/patients", json=patient, headers=auth(role)), 403)
    admission = {"patient_id": "p-1", "class_code": "IMP", "start": START.isoformat()}
    assert_problem(client.post(f"{API}/encounters", json=admission, headers=auth(role)), 403)
    assert table_counts(engine) == before


BAD_VITALS = [
    ({**DETERIORATING, "effective_at": "2026-03-02T10:00:00"}, ["body", "effective_at"]),
    ({**DETERIORATING, "effective_at": 1772445600}, ["body", "effective_at"]),
    ({**DETERIORATING, "spo2": 150}, ["body", "spo2"]),
    ({**DETERIORATING, "temperature": 98.6}, ["body", "temperature"]),
    ({**DETERIORATING, "heart_rate": -1}, ["body", "heart_rate"]),
    ({**DETERIORATING, "respiratory_rate": "fast"}, ["body", "respiratory_rate"]),
    ({**DETERIORATING, "spo2": "97"}, ["body", "spo2"]),
    ({**DETERIORATING, "heart_rate": True}, ["body", "heart_rate"]),
    ({**DETERIORATING, "consciousness": "X"}, ["body", "consciousness"]),
    ({**DETERIORATING, "pulse": 80}, ["body", "pulse"]),
    ({"effective_at": "2026-03-02T10:00:00Z"}, ["body"]),
    ({"effective_at": "2026-03-02T10:00:00Z", "diastolic_bp": 60}, ["body"]),
]


@pytest.mark.parametrize(
    ("body", "loc"), BAD_VITALS, ids=[str(loc) + str(i) for i, (_, loc) in enumerate(BAD_VITALS)]
)
def test_bad_vital_signs_are_422_naming_the_field_and_nothing_is_written(
    client: TestClient, encounter_id: str, engine: Engine, body: dict[str, Any], loc: list[Any]
) -> None:
    before = table_counts(engine)
    response = client.post(
        f"{API}/encounters/{encounter_id}/observations", json=body, headers=auth("nurse")
    )
    problem = assert_problem(response, 422)
    assert loc in error_locs(problem)
    assert table_counts(engine) == before


@pytest.mark.parametrize(
    "raw",
    [
        b'{"effective_at": "2026-03-02T10:00:00Z", "spo2": NaN}',
        b'{"effective_at": "2026-03-02T10:00:00Z", "spo2": Infinity}',
        b'{"effective_at": "2026-03-02T10:00:00Z", "spo2": 1e400}',
        b'{"effective_at": "2026-03-02T10:00:00Z", "spo2": 1' + b"0" * 400 + b"}",
    ],
    ids=["nan", "infinity", "overflowing-float", "huge-integer"],
)
def test_non_finite_and_huge_numbers_are_422_naming_the_field(
    client: TestClient, encounter_id: str, engine: Engine, raw: bytes
) -> None:
    before = table_counts(engine)
    response = client.post(
        f"{API}/encounters/{encounter_id}/observations",
        content=raw,
        headers={**auth("nurse"), "Content-Type": "application/json"},
    )
    problem = assert_problem(response, 422)
    assert ["body", "spo2"] in error_locs(problem)
    assert table_counts(engine) == before


BAD_BODIES = [
    (
        "{enc}/transfer",
        {"location_id": "bed-icu1", "at": "0001-01-01T00:00:00+01:00"},
        ["body", "at"],
    ),
    ("{enc}/transfer", {"location_id": "bed-icu1", "at": "1899-12-31T00:00:00Z"}, ["body", "at"]),
    ("{enc}/discharge", {"end": "2999-01-01T00:00:00Z"}, ["body", "end"]),
    (
        "/encounters",
        {"patient_id": "p", "class_code": "IMP", "start": "9999-12-31T23:59:59-01:00"},
        ["body", "start"],
    ),
    (
        "/patients",
        {"given": " ", "family": "B", "gender": "male", "birth_date": "1990-01-01"},
        ["body", "given"],
    ),
    (
        "/patients",
        {"given": "A", "family": "B", "gender": "man", "birth_date": "1990-01-01"},
        ["body", "gender"],
    ),
    (
        "/patients",
        {"given": "A", "family": "B", "gender": "male", "birth_date": "2999-01-01"},
        ["body", "birth_date"],
    ),
    (
        "/patients",
        {"given": "A", "family": "B", "gender": "male", "birth_date": "1990-01-01", "ssn": "1"},
        ["body", "ssn"],
    ),
    (
        "/patients",
        {"given": "A", "family": "B", "gender": "male", "birth_date": "1990-01-01", "id": "a/b"},
        ["body", "id"],
    ),
    (
        "/encounters",
        {"patient_id": "p", "class_code": "XYZ", "start": "2026-03-02T08:00:00Z"},
        ["body", "class_code"],
    ),
    (
        "/encounters",
        {"patient_id": "p", "class_code": "IMP", "start": "2026-03-02T08:00:00"},
        ["body", "start"],
    ),
    ("/encounters", {"class_code": "IMP", "start": "2026-03-02T08:00:00Z"}, ["body", "patient_id"]),
    ("{enc}/procedures", {"code": "", "performed_at": "2026-03-02T11:00:00Z"}, ["body", "code"]),
    (
        "{enc}/procedures",
        {"code": "x", "performed_at": "2026-03-02T11:00:00"},
        ["body", "performed_at"],
    ),
    (
        "{enc}/medication-administrations",
        {"code": "1", "effective_at": "2026-03-02T12:00:00Z", "dose_value": 200},
        ["body"],
    ),
    (
        "{enc}/medication-administrations",
        {"code": "1", "effective_at": "2026-03-02T12:00:00Z", "dose_value": 0, "dose_unit": "mg"},
        ["body", "dose_value"],
    ),
    ("{enc}/transfer", {"location_id": "bed-icu1"}, ["body", "at"]),
    (
        "{enc}/medication-administrations",
        {
            "code": "1",
            "effective_at": "2026-03-02T12:00:00Z",
            "dose_value": "200",
            "dose_unit": "mg",
        },
        ["body", "dose_value"],
    ),
    ("{enc}/procedures", {"code": 42, "performed_at": "2026-03-02T11:00:00Z"}, ["body", "code"]),
    ("{enc}/discharge", {"end": "2026-03-05T10:00:00", "disposition": "home"}, ["body", "end"]),
    (
        "{enc}/discharge",
        {"end": "2026-03-05T10:00:00Z", "disposition": "x" * 33},
        ["body", "disposition"],
    ),
]


@pytest.mark.parametrize(
    ("route", "body", "loc"), BAD_BODIES, ids=[f"{r}:{loc[-1]}" for r, _, loc in BAD_BODIES]
)
def test_bad_bodies_are_422_naming_the_field_and_nothing_is_written(
    client: TestClient,
    encounter_id: str,
    engine: Engine,
    route: str,
    body: dict[str, Any],
    loc: list[Any],
) -> None:
    before = table_counts(engine)
    url = API + route.replace("{enc}", f"/encounters/{encounter_id}")
    response = client.post(url, json=body, headers=auth("clinician"))
    problem = assert_problem(response, 422)
    assert problem["code"] == "invalid-request"
    assert loc in error_locs(problem)
    assert table_counts(engine) == before


DOMAIN_ERRORS = [
    (
        "procedures",
        {"code": COLONOSCOPY, "performed_at": "2026-03-01T08:00:00Z"},
        422,
        "performed_at",
    ),
    (
        "procedures",
        {
            "code": COLONOSCOPY,
            "performed_at": "2026-03-02T11:00:00Z",
            "performed_end": "2026-03-02T10:00:00Z",
        },
        422,
        "ends at",
    ),
    (
        "observations",
        {**DETERIORATING, "effective_at": "2026-03-01T10:00:00Z"},
        422,
        "effective_at",
    ),
    ("transfer", {"location_id": "bed-a1", "at": "2026-03-02T14:00:00Z"}, 409, "already at"),
    ("transfer", {"location_id": "nowhere", "at": "2026-03-02T14:00:00Z"}, 404, "Location/nowhere"),
    ("transfer", {"location_id": "bed-icu1", "at": "2026-03-01T14:00:00Z"}, 422, "at="),
    ("discharge", {"end": "2026-03-01T10:00:00Z"}, 422, "before it starts"),
    (
        "medication-administrations",
        {"code": IBUPROFEN, "effective_at": "2026-03-02T12:00:00Z", "request_id": "no-order"},
        404,
        "MedicationRequest/no-order",
    ),
]


@pytest.mark.parametrize(("route", "body", "status", "detail"), DOMAIN_ERRORS)
def test_library_refusals_are_problems_naming_the_field_and_nothing_is_written(
    client: TestClient,
    encounter_id: str,
    engine: Engine,
    route: str,
    body: dict[str, Any],
    status: int,
    detail: str,
) -> None:
    before = table_counts(engine)
    response = client.post(
        f"{API}/encounters/{encounter_id}/{route}", json=body, headers=auth("clinician")
    )
    problem = assert_problem(response, status)
    assert detail in problem["detail"]
    assert table_counts(engine) == before


def test_an_identifier_of_another_patient_is_409_and_nothing_is_written(
    client: TestClient, engine: Engine
) -> None:
    first = register(client)
    before = table_counts(engine)
    response = client.post(
        f"{API}/patients",
        json={
            "given": "Other",
            "family": "Person",
            "gender": "male",
            "birth_date": "1990-01-01",
            "identifiers": [{"system": "urn:mrn", "value": "MRN-1", "type": "MR"}],
        },
        headers=auth("operations"),
    )
    problem = assert_problem(response, 409)
    assert f"Patient/{first['id']}" in problem["detail"]
    assert table_counts(engine) == before


def test_admitting_an_unknown_patient_is_404(client: TestClient, engine: Engine) -> None:
    before = table_counts(engine)
    response = client.post(
        f"{API}/encounters",
        json={"patient_id": "nobody", "class_code": "IMP", "start": START.isoformat()},
        headers=auth("clinician"),
    )
    assert "Patient/nobody" in assert_problem(response, 404)["detail"]
    assert table_counts(engine) == before


def test_a_write_whose_charge_capture_fails_leaves_neither_fact_nor_charge(
    client: TestClient, encounter_id: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from healthos_core.billing import capture

    def broken(*args: Any, **kwargs: Any) -> None:
        raise capture.PricingError("the chargemaster is broken")

    monkeypatch.setattr(capture, "capture_procedure", broken)
    before = table_counts(engine)
    response = client.post(
        f"{API}/encounters/{encounter_id}/procedures",
        json={"code": COLONOSCOPY, "performed_at": "2026-03-02T11:00:00Z"},
        headers=auth("clinician"),
    )
    assert_problem(response, 400)
    assert table_counts(engine) == before


# --- the contract ---------------------------------------------------------------------

WRITES = {
    "/api/v1/patients": "201",
    "/api/v1/encounters": "201",
    "/api/v1/encounters/{encounter_id}/observations": "201",
    "/api/v1/encounters/{encounter_id}/procedures": "201",
    "/api/v1/encounters/{encounter_id}/medication-administrations": "201",
    "/api/v1/encounters/{encounter_id}/transfer": "200",
    "/api/v1/encounters/{encounter_id}/discharge": "200",
}


@pytest.mark.parametrize(("path", "success"), sorted(WRITES.items()))
def test_the_openapi_document_lists_every_answer_of_each_write(path: str, success: str) -> None:
    operation = create_app(SETTINGS).openapi()["paths"][path]["post"]
    responses = operation["responses"]
    assert set(responses) >= {success, "400", "401", "403", "404", "409", "413", "422", "503"}
    assert "application/json" in responses[success]["content"]
    for status in ("403", "404", "409", "422"):
        assert list(responses[status]["content"]) == [PROBLEM]
    assert operation["requestBody"]["required"] is True


def test_the_documented_examples_are_valid_bodies() -> None:
    from serving.schemas.clinical import EncounterCreate, PatientCreate, VitalSignsCreate

    for schema in (PatientCreate, EncounterCreate, VitalSignsCreate):
        for example in schema.model_json_schema()["examples"]:
            schema.model_validate(example)


def test_a_stay_from_registration_to_discharge_reads_back_through_the_api(
    client: TestClient, engine: Engine
) -> None:
    patient = register(client)
    encounter_id = admit(client, patient["id"])["encounter"]["id"]
    url = f"{API}/encounters/{encounter_id}"
    vitals = client.post(f"{url}/observations", json=DETERIORATING, headers=auth("nurse"))
    procedure = client.post(
        f"{url}/procedures",
        json={"code": COLONOSCOPY, "performed_at": "2026-03-02T11:00:00Z"},
        headers=auth("clinician"),
    )
    moved = client.post(
        f"{url}/transfer",
        json={"location_id": "bed-icu1", "at": "2026-03-02T12:00:00Z"},
        headers=auth("operations"),
    )
    finished = client.post(
        f"{url}/discharge", json={"end": "2026-03-04T12:00:00Z"}, headers=auth("operations")
    )
    assert [r.status_code for r in (vitals, procedure, moved, finished)] == [201, 201, 200, 200]
    read = client.get(url, headers=auth("nurse")).json()
    assert read["status"] == "finished"
    assert read["location_id"] == "bed-icu1"
    assert sorted(o["id"] for o in read["observations"]) == sorted(
        o["id"] for o in vitals.json()["observations"]
    )
    assert client.get(url, headers=auth("operations")).json()["observations"] is None
    counts = table_counts(engine)
    assert counts["charge_item"] == 2  # the admission fee and the colonoscopy
    assert counts["observation"] == 7
