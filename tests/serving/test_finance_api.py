"""The finance API: the denial worklist, recording outcomes, and the finance summary.

Every test runs on SQLite and on PostgreSQL (the ``engine`` fixture). The data is the
worklist of ``tests/reasoning/test_worklist.py`` (claims c1–c6, hand-computed losses).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.advisory import SuggestionAction, SuggestionRecord
from healthos_core.db import session_scope
from healthos_core.settings import Settings
from serving.deps import token_subject
from serving.main import create_app
from tests.reasoning.test_worklist import LOSS, RANKED, seed_leakage, seed_worklist

TOKENS = {
    "tok-finance-0001": "finance",
    "tok-leadership-01": "leadership",
    "tok-admin-0001": "admin",
    "tok-nurse-0001": "nurse",
    "tok-clinician-0001": "clinician",
    "tok-operations-01": "operations",
}
SETTINGS = Settings(environment="test", api_tokens=TOKENS)  # type: ignore[arg-type]
PROBLEM = "application/problem+json"
URL = "/api/v1/finance"


def token_of(role: str) -> str:
    return next(t for t, r in TOKENS.items() if r == role)


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_of(role)}"}


@pytest.fixture
def ids(session_factory: sessionmaker[Session]) -> dict[str, str]:
    """Claim id → denial-risk suggestion id, stored and committed."""
    with session_scope(session_factory) as session:
        claim_ids = seed_worklist(session)
        seed_leakage(session)
    return claim_ids


@pytest.fixture
def client(engine: Engine, ids: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(SETTINGS, engine=engine)) as test_client:
        yield test_client


def claims(response: Any) -> list[str]:
    return [item["claim_id"] for item in response.json()["data"]]


def audit_rows(engine: Engine, suggestion_id: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                SuggestionAction.action,
                SuggestionAction.outcome,
                SuggestionAction.actor,
                SuggestionAction.role,
                SuggestionAction.reason,
            )
            .where(SuggestionAction.suggestion_id == suggestion_id)
            .order_by(SuggestionAction.id)
        )
        return [tuple(row) for row in rows]


# --- the worklist ---------------------------------------------------------------------


def test_worklist_is_ranked_by_expected_loss(client: TestClient, ids: dict[str, str]) -> None:
    response = client.get(f"{URL}/worklist", headers=auth("finance"))

    assert response.status_code == 200
    body = response.json()
    assert (claims(response), body["count"]) == (RANKED, 6)
    assert [item["expected_loss"] for item in body["data"]] == [str(LOSS[c]) for c in RANKED]
    c1 = body["data"][1]
    assert {k: v for k, v in c1.items() if k not in ("factors", "created_at")} == {
        "suggestion_id": ids["c1"],
        "claim_id": "c1",
        "payer_id": "payer-acme",
        "payer_name": "Acme Health",
        "facility_id": "fac-north",
        "amount": "1250.50",
        "currency": "USD",
        "probability": 0.81,
        "expected_loss": "1012.91",
        "reason": "authorization",
        "fix": "Fix the authorization issue on claim c1",
        "severity": "warning",
        "summary": "Denial risk 81% (authorization)",
        "status": "open",
        "outcome": None,
        "actions": [],
    }
    assert [f["name"] for f in c1["factors"]] == [
        "rule:prior_auth_missing",
        "authorization",
        "payer",
    ]
    assert c1["created_at"] == "2025-03-01T08:00:00Z"


FILTERS: list[tuple[dict[str, Any], list[str]]] = [
    ({"payer": "payer-beta"}, ["c2", "c6", "c4"]),
    ({"payer": "Acme Health"}, ["c1", "c5", "c3"]),
    ({"facility": "fac-north"}, ["c1", "c5", "c4"]),
    ({"reason": "authorization"}, ["c1", "c5"]),
    ({"payer": "payer-acme", "reason": "timely_filing"}, ["c3"]),
    ({"limit": 2, "offset": 1}, ["c1", "c5"]),
]


def test_worklist_filters(client: TestClient) -> None:
    for params, expected in FILTERS:
        response = client.get(f"{URL}/worklist", params=params, headers=auth("finance"))

        assert response.status_code == 200, params
        assert claims(response) == expected, params


BAD_QUERIES: list[dict[str, str]] = [
    {"reason": "medical_necessity"},
    {"limit": "0"},
    {"limit": "501"},
    {"offset": "-1"},
    {"payer": ""},
    {"status": "closed"},
]


def test_worklist_bad_query_is_422_problem(client: TestClient) -> None:
    for params in BAD_QUERIES:
        response = client.get(f"{URL}/worklist", params=params, headers=auth("finance"))

        assert response.status_code == 422, params
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["code"] == "invalid-request"
        assert response.json()["errors"][0]["loc"][:2] == ["query", next(iter(params))]


def test_reading_is_for_finance_leadership_and_admin(client: TestClient) -> None:
    for role in ("finance", "leadership", "admin"):
        for path in ("worklist", "summary"):
            assert client.get(f"{URL}/{path}", headers=auth(role)).status_code == 200, role
    for role in ("nurse", "clinician", "operations"):
        for path in ("worklist", "summary"):
            response = client.get(f"{URL}/{path}", headers=auth(role))
            assert response.status_code == 403, role
            assert response.headers["content-type"] == PROBLEM
            assert response.json()["code"] == "forbidden"
            assert "finance, leadership" in response.json()["detail"]


def test_without_a_valid_token_is_401(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        for response in (
            client.get(f"{URL}/worklist", headers=headers),
            client.get(f"{URL}/summary", headers=headers),
            client.post(f"{URL}/worklist/x/actions", json={"outcome": "fixed"}, headers=headers),
        ):
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.headers["content-type"] == PROBLEM


# --- actions --------------------------------------------------------------------------


def test_recorded_outcome_is_audited_and_visible(
    client: TestClient, engine: Engine, ids: dict[str, str]
) -> None:
    finance = token_subject(token_of("finance"))
    before = dt.datetime.now(dt.UTC)

    response = client.post(
        f"{URL}/worklist/{ids['c1']}/actions",
        json={"outcome": "resubmitted", "note": "PA ref added"},
        headers=auth("finance"),
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["claim_id"], body["status"], body["outcome"]) == ("c1", "acted", "resubmitted")
    [action] = body["actions"]
    assert (action["action"], action["outcome"], action["actor"], action["role"]) == (
        "act",
        "resubmitted",
        finance,
        "finance",
    )
    assert action["note"] == "PA ref added"
    assert dt.datetime.fromisoformat(action["at"]) >= before
    assert token_of("finance") not in response.text
    assert audit_rows(engine, ids["c1"]) == [
        ("act", "resubmitted", finance, "finance", "PA ref added")
    ]
    # off the open worklist, on the worked one
    assert "c1" not in claims(client.get(f"{URL}/worklist", headers=auth("finance")))
    worked = client.get(f"{URL}/worklist", params={"status": "acted"}, headers=auth("leadership"))
    assert [(i["claim_id"], i["outcome"]) for i in worked.json()["data"]] == [("c1", "resubmitted")]
    # and in the summary's worked counts
    work = client.get(f"{URL}/summary", headers=auth("leadership")).json()["work"]
    assert work["finance.denial_risk"]["outcomes"]["resubmitted"] == 1
    assert work["finance.denial_risk"]["worked"] == 1


def test_accepted_closes_the_item_then_409(
    client: TestClient, engine: Engine, ids: dict[str, str]
) -> None:
    target = f"{URL}/worklist/{ids['c3']}/actions"
    accepted = client.post(target, json={"outcome": "accepted"}, headers=auth("finance"))

    again = client.post(target, json={"outcome": "appealed"}, headers=auth("finance"))

    assert (accepted.status_code, accepted.json()["status"]) == (200, "dismissed")
    assert (again.status_code, again.json()["code"]) == (409, "conflict")
    assert again.headers["content-type"] == PROBLEM
    assert [row[:2] for row in audit_rows(engine, ids["c3"])] == [("dismiss", "accepted")]


BAD_BODIES: list[Any] = [
    {"outcome": "paid"},
    {"outcome": None},
    {"note": "no outcome"},
    {"outcome": "fixed", "note": "x" * 2001},
    {"outcome": "fixed", "actor": "someone-else"},
    [1, 2],
    None,
]


def test_bad_action_body_is_422_and_writes_nothing(
    client: TestClient, engine: Engine, ids: dict[str, str]
) -> None:
    for body in BAD_BODIES:
        response = client.post(
            f"{URL}/worklist/{ids['c1']}/actions", json=body, headers=auth("finance")
        )

        assert response.status_code == 422, body
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["code"] == "invalid-request"
    assert audit_rows(engine, ids["c1"]) == []


def test_unknown_outcome_problem_names_the_allowed_ones(
    client: TestClient, ids: dict[str, str]
) -> None:
    response = client.post(
        f"{URL}/worklist/{ids['c1']}/actions", json={"outcome": "paid"}, headers=auth("finance")
    )

    problem = response.json()
    assert "outcome" in problem["detail"]
    [error] = problem["errors"]
    assert error["loc"] == ["body", "outcome"]
    for outcome in ("fixed", "resubmitted", "appealed", "accepted"):
        assert outcome in error["msg"]


def test_roles_that_may_not_act_get_403(
    client: TestClient, engine: Engine, ids: dict[str, str]
) -> None:
    for role in ("leadership", "nurse", "operations"):
        response = client.post(
            f"{URL}/worklist/{ids['c1']}/actions", json={"outcome": "fixed"}, headers=auth(role)
        )

        assert (response.status_code, response.json()["code"]) == (403, "forbidden"), role
    assert audit_rows(engine, ids["c1"]) == []


def test_action_on_something_not_on_the_worklist_is_404(client: TestClient, engine: Engine) -> None:
    with engine.connect() as connection:
        leakage_id = connection.scalar(
            select(SuggestionRecord.id).where(SuggestionRecord.kind == "finance.revenue_leakage")
        )

    for suggestion_id in ("no-such-id", leakage_id):
        response = client.post(
            f"{URL}/worklist/{suggestion_id}/actions",
            json={"outcome": "fixed"},
            headers=auth("finance"),
        )
        assert (response.status_code, response.json()["code"]) == (404, "not-found")
        assert response.headers["content-type"] == PROBLEM


# --- summary --------------------------------------------------------------------------


def test_summary_totals(client: TestClient) -> None:
    response = client.get(
        f"{URL}/summary", params={"as_of": "2025-03-02"}, headers=auth("leadership")
    )

    assert response.status_code == 200
    body = response.json()
    assert body["as_of"] == "2025-03-02T23:59:59.999999Z"
    assert body["currency"] == "USD"
    assert (body["denial_risk"]["count"], body["denial_risk"]["expected_loss"]) == (6, "3730.41")
    assert body["denial_risk"]["by_payer"]["payer-acme"] == {
        "payer": "Acme Health",
        "count": 3,
        "billed_at_risk": "3475.50",
        "expected_loss": "2215.41",
    }
    leakage = body["revenue_leakage"]
    assert (leakage["count"], leakage["amount_at_stake"]) == (5, "5510.55")
    assert leakage["by_kind"]["late_charge"] == {"count": 2, "amount_at_stake": "90.00"}
    assert leakage["by_facility"]["unknown"] == {"count": 1, "amount_at_stake": "10.00"}
    assert body["work"]["finance.revenue_leakage"]["dismissed"] == 1


def test_summary_bad_as_of_is_422(client: TestClient) -> None:
    response = client.get(
        f"{URL}/summary", params={"as_of": "2025-03-02T10:00:00"}, headers=auth("finance")
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


def test_admin_may_not_work_the_worklist(
    client: TestClient, engine: Engine, ids: dict[str, str]
) -> None:
    """Issue 9 item 6: admin, barred from acting on suggestions, could close finance items."""
    for outcome in ("fixed", "accepted"):
        response = client.post(
            f"{URL}/worklist/{ids['c3']}/actions", json={"outcome": outcome}, headers=auth("admin")
        )

        assert response.status_code == 403, outcome
        assert response.json()["code"] == "forbidden"
        assert "admin" in response.json()["detail"]
    assert audit_rows(engine, ids["c3"]) == []
    with engine.connect() as connection:
        status = connection.scalar(
            select(SuggestionRecord.status).where(SuggestionRecord.id == ids["c3"])
        )
    assert status == "open"


def test_later_steps_on_a_worked_item_are_notes_and_accepting_it_is_409(
    client: TestClient, engine: Engine, ids: dict[str, str]
) -> None:
    finance = token_subject(token_of("finance"))
    target = f"{URL}/worklist/{ids['c1']}/actions"

    fixed = client.post(target, json={"outcome": "fixed"}, headers=auth("finance"))
    resubmitted = client.post(
        target, json={"outcome": "resubmitted", "note": "sent again"}, headers=auth("finance")
    )
    accepted = client.post(target, json={"outcome": "accepted"}, headers=auth("finance"))

    assert (fixed.status_code, resubmitted.status_code) == (200, 200)
    body = resubmitted.json()
    assert (body["status"], body["outcome"]) == ("acted", "resubmitted")
    assert [(a["action"], a["outcome"]) for a in body["actions"]] == [
        ("act", "fixed"),
        ("note", "resubmitted"),
    ]
    assert (accepted.status_code, accepted.json()["code"]) == (409, "conflict")
    assert "acted" in accepted.json()["detail"] and finance in accepted.json()["detail"]
    assert [row[:2] for row in audit_rows(engine, ids["c1"])] == [
        ("act", "fixed"),
        ("note", "resubmitted"),
    ]
