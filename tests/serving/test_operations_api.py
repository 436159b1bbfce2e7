"""Queues and beds in the API: queue points, rosters, tickets, appointments, board and census.

Every test runs on SQLite and PostgreSQL. Writes answer the stored state, refused writes
(403, 404, 409, 422) leave every table as it was, and errors are problem+json naming the
field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.db import session_scope
from healthos_core.operations import codes as ops
from healthos_core.outbox import OutboxEvent
from healthos_core.settings import Settings
from tests.conftest import table_counts
from tests.factories import make_bed, make_encounter, make_organization, make_patient, make_ward

TOKENS = {
    "tok-clinician-0001": "clinician",
    "tok-nurse-0001": "nurse",
    "tok-operations-01": "operations",
    "tok-finance-0001": "finance",
    "tok-admin-0001": "admin",
    "tok-leadership-01": "leadership",
}
SETTINGS = Settings(environment="test", api_tokens=TOKENS, rescore="off")  # type: ignore[arg-type]
API = "/api/v1"
PROBLEM = "application/problem+json"
T = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)  # a Monday


def iso(minutes: int) -> str:
    return (T + dt.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def auth(role: str) -> dict[str, str]:
    token = next(t for t, r in TOKENS.items() if r == role)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(engine: Engine, session_factory: sessionmaker[Session]) -> Iterator[TestClient]:
    from serving.main import create_app

    with session_scope(session_factory) as session:
        make_organization(session, id="org-1")
        make_patient(session, id="p1", facility_id="org-1")
        make_patient(session, id="p2", facility_id="org-1")
        ward = make_ward(session, id="w-gen", facility_id="org-1")
        make_bed(session, ward, id="bed-1")
        make_bed(session, ward, id="bed-2")
        make_encounter(
            session,
            patient_id="p1",
            id="e1",
            class_code="IMP",
            location_id="bed-1",
            period_start=T,
            facility_id="org-1",
            service_provider_id="org-1",
        )
    with TestClient(create_app(SETTINGS, engine=engine)) as test_client:
        yield test_client


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def queue_point(client: TestClient, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": "OPD Cardiology",
        "service": "opd_clinic",
        "facility_id": "org-1",
        "target_wait_minutes": 30,
        "id": "opd-cardio",
        **overrides,
    }
    response = client.post(f"{API}/queue-points", json=body, headers=auth("operations"))
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_queue_day_through_the_api_and_the_board(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    point = queue_point(client)
    assert point == {
        "id": "opd-cardio",
        "name": "OPD Cardiology",
        "service": "opd_clinic",
        "facility_id": "org-1",
        "target_wait_minutes": 30,
        "part_of_id": None,
    }
    roster = client.put(
        f"{API}/queue-points/opd-cardio/roster",
        json={"hours": [{"weekday": 0, "hour": 9, "servers": 2}], "dates": []},
        headers=auth("admin"),
    )
    assert roster.status_code == 200, roster.text
    assert roster.json()["hours"] == [{"weekday": 0, "hour": 9, "servers": 2}]
    first = client.post(
        f"{API}/queue-tickets",
        json={
            "queue_point_id": "opd-cardio",
            "patient_id": "p1",
            "arrived_at": iso(0),
            "esi_level": 2,
            "id": "t1",
        },
        headers=auth("nurse"),
    )
    assert first.status_code == 201, first.text
    assert first.headers["location"] == "/fhir/Task/t1"
    assert (first.json()["priority"], first.json()["queue_state"]) == ("asap", "waiting")
    client.post(
        f"{API}/queue-tickets",
        json={
            "queue_point_id": "opd-cardio",
            "patient_id": "p2",
            "arrived_at": iso(10),
            "id": "t2",
        },
        headers=auth("operations"),
    ).raise_for_status()
    for step, minutes in (("called", 15), ("started", 20), ("finished", 40)):
        moved = client.post(
            f"{API}/queue-tickets/t1/{step}", json={"at": iso(minutes)}, headers=auth("clinician")
        )
        assert moved.status_code == 200, moved.text
    ticket = moved.json()
    assert ticket["queue_state"] == "done" and ticket["status"] == "completed"
    assert dt.datetime.fromisoformat(ticket["service_started_at"]) == T + dt.timedelta(minutes=20)
    board = client.get(
        f"{API}/queues", params={"facility": "org-1", "at": iso(45)}, headers=auth("leadership")
    )
    assert board.status_code == 200, board.text
    answer = board.json()
    assert dt.datetime.fromisoformat(answer["at"]) == T + dt.timedelta(minutes=45)
    assert answer["queue_points"] == [
        {
            "id": "opd-cardio",
            "name": "OPD Cardiology",
            "service": "opd_clinic",
            "facility_id": "org-1",
            "target_wait_minutes": 30,
            "waiting": 1,
            "in_service": 0,
            "servers_now": 2,
            "current_wait_minutes": 20.0,
            "longest_wait_minutes": 35.0,
            "breaching": True,
        }
    ]
    # The ticket reads back over FHIR, and the outbox has the event for the queue point.
    fhir = client.get("/fhir/Task/t1", headers=auth("operations"))
    assert fhir.status_code == 200, fhir.text
    assert fhir.json()["executionPeriod"] == {"start": iso(20), "end": iso(40)}
    with session_scope(session_factory) as session:
        subjects = {e.subject for e in session.scalars(select(OutboxEvent))}
    assert subjects == {"Location/opd-cardio"}


def test_appointments_booked_and_moved_on(client: TestClient) -> None:
    queue_point(client)
    booked = client.post(
        f"{API}/appointments",
        json={"patient_id": "p2", "location_id": "opd-cardio", "start": iso(120), "id": "a1"},
        headers=auth("operations"),
    )
    assert booked.status_code == 201, booked.text
    assert booked.json()["status"] == "booked"
    assert booked.json()["end"].startswith("2026-03-02T11:15:00")
    arrived = client.post(f"{API}/appointments/a1/arrived", headers=auth("nurse"))
    assert arrived.status_code == 200 and arrived.json()["status"] == "arrived"
    assert_problem(client.post(f"{API}/appointments/a1/noshow", headers=auth("nurse")), 409)
    assert_problem(client.post(f"{API}/appointments/zz/arrived", headers=auth("nurse")), 404)


def test_bed_census_and_status(client: TestClient) -> None:
    census = client.get(
        f"{API}/beds/census", params={"at": iso(60), "facility": "org-1"}, headers=auth("nurse")
    )
    assert census.status_code == 200, census.text
    (pool,) = census.json()["pools"]
    assert pool == {
        "pool": "general_medicine",
        "facility_id": "org-1",
        "beds": 2,
        "available": 2,
        "occupied": 1,
        "occupancy": 0.5,
        "threshold": 0.85,
        "over_threshold": False,
        "by_status": {
            "occupied": 1,
            "unoccupied": 1,
            "housekeeping": 0,
            "isolated": 0,
            "closed": 0,
        },
        "expected_discharges_24h": 0,
        "ed_boarding": 0,
    }
    cleaned = client.put(f"{API}/beds/bed-2/status", json={"status": "K"}, headers=auth("nurse"))
    assert cleaned.status_code == 200, cleaned.text
    assert cleaned.json() == {
        "id": "bed-2",
        "name": "Bed",
        "ward_id": "w-gen",
        "status": "K",
        "status_name": "housekeeping",
    }
    body = assert_problem(
        client.put(f"{API}/beds/bed-1/status", json={"status": "U"}, headers=auth("operations")),
        409,
    )
    assert "occupied" in body["detail"]
    assert_problem(
        client.put(f"{API}/beds/nowhere/status", json={"status": "U"}, headers=auth("admin")), 404
    )
    body = assert_problem(
        client.put(f"{API}/beds/bed-2/status", json={"status": "O"}, headers=auth("nurse")), 422
    )
    assert "admit or transfer" in body["detail"]
    body = assert_problem(
        client.put(f"{API}/beds/bed-2/status", json={"status": "Z"}, headers=auth("nurse")), 422
    )
    assert body["errors"][0]["loc"] == ["body", "status"]


ROLE_CASES: list[tuple[str, str, str, Any]] = [
    (
        "post",
        "/queue-points",
        "nurse",
        {"name": "X", "service": "pharmacy", "facility_id": "org-1", "target_wait_minutes": 5},
    ),
    ("put", "/queue-points/opd-cardio/roster", "clinician", {"hours": []}),
    (
        "post",
        "/queue-tickets",
        "finance",
        {
            "queue_point_id": "opd-cardio",
            "patient_id": "p1",
            "arrived_at": "2026-03-02T09:00:00Z",
        },
    ),
    ("put", "/beds/bed-2/status", "clinician", {"status": "K"}),
    ("get", "/queues", "finance", None),
    ("get", "/beds/census", "finance", None),
]


def test_roles(client: TestClient, engine: Engine) -> None:
    queue_point(client)
    before = table_counts(engine)
    for method, path, role, body in ROLE_CASES:
        kwargs: dict[str, Any] = {"headers": auth(role)}
        if body is not None:
            kwargs["json"] = body
        assert_problem(getattr(client, method)(f"{API}{path}", **kwargs), 403)
    assert table_counts(engine) == before


BAD_INPUT: list[tuple[str, dict[str, Any], int, str | None]] = [
    (
        "/queue-points",
        {"name": "X", "service": "dentistry", "facility_id": "org-1", "target_wait_minutes": 5},
        422,
        "service",
    ),
    (
        "/queue-points",
        {"name": "X", "service": "pharmacy", "facility_id": "org-1", "target_wait_minutes": 0},
        422,
        "target_wait_minutes",
    ),
    (
        "/queue-points",
        {
            "name": "X",
            "service": "pharmacy",
            "facility_id": "nowhere",
            "target_wait_minutes": 5,
        },
        404,
        None,
    ),
    (
        "/queue-tickets",
        {
            "queue_point_id": "opd-cardio",
            "patient_id": "p1",
            "arrived_at": "2026-03-02T09:00:00",
        },
        422,
        "arrived_at",
    ),
    (
        "/queue-tickets",
        {
            "queue_point_id": "opd-cardio",
            "patient_id": "p1",
            "arrived_at": "2026-03-02T09:00:00Z",
            "priority": "stat",
            "esi_level": 1,
        },
        422,
        None,
    ),
    (
        "/queue-tickets",
        {
            "queue_point_id": "opd-cardio",
            "patient_id": "nobody",
            "arrived_at": "2026-03-02T09:00:00Z",
        },
        404,
        None,
    ),
    (
        "/queue-tickets",
        {"queue_point_id": "w-gen", "patient_id": "p1", "arrived_at": "2026-03-02T09:00:00Z"},
        422,
        None,
    ),
    ("/queue-tickets/nope/called", {"at": "2026-03-02T09:00:00Z"}, 404, None),
    ("/queue-tickets/t9/served", {"at": "2026-03-02T09:00:00Z"}, 422, "step"),
    (
        "/appointments",
        {"patient_id": "p1", "location_id": "nowhere", "start": "2026-03-02T09:00:00Z"},
        404,
        None,
    ),
]


def test_bad_input_is_a_problem_and_writes_nothing(client: TestClient, engine: Engine) -> None:
    queue_point(client)
    before = table_counts(engine)
    for path, body, status, field in BAD_INPUT:
        response = client.post(f"{API}{path}", json=body, headers=auth("admin"))
        problem = assert_problem(response, status)
        if field is not None:
            assert field in {str(e["loc"][-1]) for e in problem["errors"]}, (path, problem)
    assert table_counts(engine) == before


def test_roster_and_queue_board_bad_input(client: TestClient, engine: Engine) -> None:
    queue_point(client)
    before = table_counts(engine)
    problem = assert_problem(
        client.put(
            f"{API}/queue-points/opd-cardio/roster",
            json={"hours": [{"weekday": 7, "hour": 9, "servers": 1}]},
            headers=auth("operations"),
        ),
        422,
    )
    assert problem["errors"][0]["loc"][-1] == "weekday"
    assert_problem(
        client.put(f"{API}/queue-points/zz/roster", json={"hours": []}, headers=auth("admin")), 404
    )
    assert table_counts(engine) == before
    problem = assert_problem(
        client.get(f"{API}/queues", params={"at": "2026-03-02T09:00:00"}, headers=auth("admin")),
        422,
    )
    assert problem["errors"][0]["loc"] == ["query", "at"]


def test_a_ticket_posted_over_fhir_takes_the_same_path(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    queue_point(client, id="pharmacy", service="pharmacy", name="Pharmacy")
    task = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": "routine",
        "code": {"coding": [{"system": ops.TASK_CODE_SYSTEM, "code": ops.QUEUE_TICKET}]},
        "for": {"reference": "Patient/p2"},
        "location": {"reference": "Location/pharmacy"},
        "authoredOn": iso(0),
    }
    created = client.post(
        "/fhir/Task", json=task, headers={**auth("nurse"), "Content-Type": "application/fhir+json"}
    )
    assert created.status_code == 201, created.text
    board = client.get(f"{API}/queues", params={"at": iso(25)}, headers=auth("operations"))
    (point,) = board.json()["queue_points"]
    assert (point["id"], point["waiting"], point["longest_wait_minutes"]) == ("pharmacy", 1, 25.0)
    assert point["breaching"] is False  # target 30
    with session_scope(session_factory) as session:
        events = [(e.event_type, e.subject) for e in session.scalars(select(OutboxEvent))]
    assert events == [("QueueTicketChanged", "Location/pharmacy")]
