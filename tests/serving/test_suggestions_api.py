"""The suggestions API: worklists by audience, detail with audit, acknowledge/act/dismiss.

Every test runs on SQLite and on PostgreSQL (the ``engine`` fixture).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.advisory import SuggestionAction, SuggestionRecord, save_suggestions
from healthos_core.db import session_scope
from healthos_core.settings import Settings
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion
from serving.deps import token_subject
from serving.main import create_app

TOKENS = {
    "tok-clinician-0001": "clinician",
    "tok-nurse-0001": "nurse",
    "tok-finance-0001": "finance",
    "tok-leadership-01": "leadership",
    "tok-admin-0001": "admin",
    "tok-datasci-0001": "data_scientist",
}
SETTINGS = Settings(environment="test", api_tokens=TOKENS)  # type: ignore[arg-type]
T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)
PROBLEM = "application/problem+json"
URL = "/api/v1/suggestions"


def token_of(role: str) -> str:
    return next(t for t, r in TOKENS.items() if r == role)


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_of(role)}"}


def make_suggestion(name: str, **overrides: Any) -> Suggestion:
    """A synthetic suggestion; ``name`` makes the subject (and so the id) unique."""
    fields: dict[str, Any] = {
        "kind": "clinical.news2",
        "audience": Audience.NURSE,
        "severity": Severity.WARNING,
        "subject": f"Encounter/{name}",
        "summary": f"NEWS2 medium on {name}",
        "explanation": Explanation(
            method="rule:news2",
            factors=(
                Factor(
                    name="resp_rate",
                    value=24.0,
                    contribution=2.0,
                    unit="/min",
                    text="respiratory rate 24/min",
                ),
            ),
            evidence=(f"Observation/{name}-rr",),
        ),
        "recommended_action": "Urgent ward-based response",
        "source": Source(name="news2", version="1.0.0", reference="RCP NEWS2 2017"),
        "score": 5.0,
        "band": "medium",
        "patient_id": "pat-1",
        "created_at": T0,
    }
    fields.update(overrides)
    return Suggestion(**fields)


SUGGESTIONS = {
    "nurse-warning": make_suggestion("enc-1"),
    "nurse-critical": make_suggestion(
        "enc-2", severity=Severity.CRITICAL, score=7.0, band="high", patient_id="pat-2"
    ),
    "clinician-qsofa": make_suggestion(
        "enc-3", audience=Audience.CLINICIAN, kind="clinical.qsofa", score=2.0
    ),
    "finance-denial": make_suggestion(
        "claim-9",
        subject="Claim/9",
        audience=Audience.FINANCE,
        kind="finance.denial_risk",
        severity=Severity.CRITICAL,
        score=0.81,
        band="high",
        patient_id="pat-1",
        amount_at_stake=Decimal("1250.5"),
        currency="USD",
        source=Source(name="denial_risk", version="3"),
    ),
}


def sid(name: str) -> str:
    return SUGGESTIONS[name].id


@pytest.fixture
def client(engine: Engine, session_factory: sessionmaker[Session]) -> Iterator[TestClient]:
    with session_scope(session_factory) as session:
        save_suggestions(session, SUGGESTIONS.values())
    with TestClient(create_app(SETTINGS, engine=engine)) as test_client:
        yield test_client


def names(response: Any) -> list[str]:
    by_id = {s.id: name for name, s in SUGGESTIONS.items()}
    return [by_id[item["id"]] for item in response.json()["data"]]


# --- listing --------------------------------------------------------------------------


def test_list_defaults_to_the_audiences_the_role_may_read(client: TestClient) -> None:
    nurse = client.get(URL, headers=auth("nurse"))
    finance = client.get(URL, headers=auth("finance"))
    leadership = client.get(URL, headers=auth("leadership"))
    admin = client.get(URL, headers=auth("admin"))

    assert nurse.status_code == 200
    assert names(nurse) == ["nurse-critical", "nurse-warning", "clinician-qsofa"]
    assert nurse.json()["count"] == 3
    assert names(finance) == ["finance-denial"]
    assert names(leadership) == ["finance-denial"]
    assert admin.json()["count"] == 4


def test_list_is_ordered_by_severity_then_score(client: TestClient) -> None:
    response = client.get(URL, headers=auth("admin"))

    # critical 7.0, critical 0.81, warning 5.0, warning 2.0
    assert names(response) == [
        "nurse-critical",
        "finance-denial",
        "nurse-warning",
        "clinician-qsofa",
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"audience": "clinician"}, ["clinician-qsofa"]),
        ({"subject": "Encounter/enc-1"}, ["nurse-warning"]),
        ({"patient": "pat-2"}, ["nurse-critical"]),
        ({"patient": "Patient/pat-1"}, ["nurse-warning", "clinician-qsofa"]),
        ({"kind": "clinical.qsofa"}, ["clinician-qsofa"]),
        ({"status": "open", "limit": 1}, ["nurse-critical"]),
    ],
)
def test_list_filters(client: TestClient, params: dict[str, str], expected: list[str]) -> None:
    response = client.get(URL, params=params, headers=auth("clinician"))

    assert response.status_code == 200
    assert names(response) == expected


def test_list_filters_by_several_statuses(client: TestClient) -> None:
    client.post(f"{URL}/{sid('nurse-warning')}/acknowledge", headers=auth("nurse"))
    client.post(
        f"{URL}/{sid('nurse-critical')}/dismiss",
        json={"reason": "already escalated"},
        headers=auth("nurse"),
    )

    open_or_ack = client.get(
        URL, params=[("status", "open"), ("status", "acknowledged")], headers=auth("nurse")
    )
    dismissed = client.get(URL, params={"status": "dismissed"}, headers=auth("nurse"))

    assert names(open_or_ack) == ["nurse-warning", "clinician-qsofa"]
    assert names(dismissed) == ["nurse-critical"]


def test_list_audience_the_role_may_not_read_is_403(client: TestClient) -> None:
    response = client.get(URL, params={"audience": "finance"}, headers=auth("nurse"))

    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "forbidden"


@pytest.mark.parametrize("role", ["data_scientist"])
def test_roles_without_audiences_get_403(client: TestClient, role: str) -> None:
    assert client.get(URL, headers=auth(role)).status_code == 403
    assert client.get(f"{URL}/{sid('nurse-warning')}", headers=auth(role)).status_code == 403


def test_list_without_token_is_401(client: TestClient) -> None:
    response = client.get(URL)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "params",
    [{"status": "closed"}, {"audience": "patients"}, {"limit": "0"}, {"offset": "-3"}],
)
def test_list_bad_query_params_are_422(client: TestClient, params: dict[str, str]) -> None:
    response = client.get(URL, params=params, headers=auth("nurse"))

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


# --- one suggestion -------------------------------------------------------------------


def test_read_suggestion_has_every_spec_field(client: TestClient) -> None:
    response = client.get(f"{URL}/{sid('finance-denial')}", headers=auth("finance"))

    assert response.status_code == 200
    body = response.json()
    assert body == {
        "id": sid("finance-denial"),
        "kind": "finance.denial_risk",
        "audience": "finance",
        "severity": "critical",
        "subject": "Claim/9",
        "patient_id": "pat-1",
        "facility_id": None,
        "score": 0.81,
        "band": "high",
        "summary": "NEWS2 medium on claim-9",
        "explanation": {
            "method": "rule:news2",
            "factors": [
                {
                    "name": "resp_rate",
                    "value": 24.0,
                    "contribution": 2.0,
                    "unit": "/min",
                    "text": "respiratory rate 24/min",
                }
            ],
            "evidence": ["Observation/claim-9-rr"],
        },
        "recommended_action": "Urgent ward-based response",
        "source": {"name": "denial_risk", "version": "3", "reference": None},
        "amount_at_stake": "1250.50",
        "currency": "USD",
        "created_at": "2025-03-01T08:00:00Z",
        "status": "open",
        "status_by": None,
        "status_at": None,
        "status_reason": None,
        "actions": [],
    }


def test_read_unknown_suggestion_is_404_problem(client: TestClient) -> None:
    response = client.get(f"{URL}/no-such-id", headers=auth("nurse"))

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "not-found"


def test_read_suggestion_of_another_audience_is_404(client: TestClient) -> None:
    response = client.get(f"{URL}/{sid('finance-denial')}", headers=auth("nurse"))

    assert (response.status_code, response.json()["code"]) == (404, "not-found")


# --- acknowledge / act / dismiss ------------------------------------------------------


def audit_rows(engine: Engine, suggestion_id: str) -> list[tuple[str, str, str, str | None]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                SuggestionAction.action,
                SuggestionAction.actor,
                SuggestionAction.role,
                SuggestionAction.reason,
            )
            .where(SuggestionAction.suggestion_id == suggestion_id)
            .order_by(SuggestionAction.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_acknowledge_act_dismiss_store_who_when_why(client: TestClient, engine: Engine) -> None:
    target = f"{URL}/{sid('nurse-warning')}"
    nurse, clinician = token_subject(token_of("nurse")), token_subject(token_of("clinician"))
    before = dt.datetime.now(dt.UTC)

    acknowledged = client.post(f"{target}/acknowledge", headers=auth("nurse"))
    acted = client.post(
        f"{target}/act", json={"reason": "doctor called"}, headers=auth("clinician")
    )
    noted = client.post(
        f"{target}/note", json={"reason": "settled after oxygen"}, headers=auth("nurse")
    )

    assert [r.status_code for r in (acknowledged, acted, noted)] == [200, 200, 200]
    assert (acknowledged.json()["status"], acknowledged.json()["status_by"]) == (
        "acknowledged",
        nurse,
    )
    body = noted.json()
    assert (body["status"], body["status_by"], body["status_reason"]) == (
        "acted",
        clinician,
        "doctor called",
    )
    assert dt.datetime.fromisoformat(body["status_at"]) >= before
    assert [(a["action"], a["actor"], a["role"], a["reason"]) for a in body["actions"]] == [
        ("acknowledge", nurse, "nurse", None),
        ("act", clinician, "clinician", "doctor called"),
        ("note", nurse, "nurse", "settled after oxygen"),
    ]
    assert audit_rows(engine, sid("nurse-warning")) == [
        ("acknowledge", nurse, "nurse", None),
        ("act", clinician, "clinician", "doctor called"),
        ("note", nurse, "nurse", "settled after oxygen"),
    ]
    assert token_of("clinician") not in acted.text
    detail = client.get(target, headers=auth("nurse")).json()
    assert detail["status"] == "acted" and len(detail["actions"]) == 3


@pytest.mark.parametrize("body", [None, {}, {"reason": None}, {"reason": "   "}])
def test_dismiss_without_reason_is_422_and_changes_nothing(
    client: TestClient, engine: Engine, body: dict[str, Any] | None
) -> None:
    response = client.post(
        f"{URL}/{sid('nurse-warning')}/dismiss", json=body, headers=auth("nurse")
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "invalid-request"
    # the body is missing, or its reason is: the errors say which
    expected = [["body"]] if body is None else [["body", "reason"]]
    assert [e["loc"] for e in response.json()["errors"]] == expected
    assert audit_rows(engine, sid("nurse-warning")) == []
    with engine.connect() as connection:
        status = connection.scalar(
            select(SuggestionRecord.status).where(SuggestionRecord.id == sid("nurse-warning"))
        )
    assert status == "open"


def test_acting_on_a_dismissed_suggestion_is_409(client: TestClient, engine: Engine) -> None:
    target = f"{URL}/{sid('finance-denial')}"
    client.post(f"{target}/dismiss", json={"reason": "paid in full"}, headers=auth("finance"))

    response = client.post(f"{target}/act", json={"reason": "resubmit"}, headers=auth("finance"))

    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "conflict"
    assert [row[0] for row in audit_rows(engine, sid("finance-denial"))] == ["dismiss"]


@pytest.mark.parametrize(
    ("role", "name", "status", "code"),
    [
        ("finance", "nurse-warning", 404, "not-found"),  # an audience it may not read
        ("nurse", "finance-denial", 404, "not-found"),
        ("admin", "nurse-warning", 403, "forbidden"),  # admin reads but does not decide
        ("leadership", "finance-denial", 403, "forbidden"),  # reads finance, acts on its own
        ("data_scientist", "nurse-warning", 403, "forbidden"),
    ],
)
def test_acting_outside_the_role_is_refused(
    client: TestClient, engine: Engine, role: str, name: str, status: int, code: str
) -> None:
    for action in ("acknowledge", "act", "note"):
        response = client.post(
            f"{URL}/{sid(name)}/{action}", json={"reason": "x"}, headers=auth(role)
        )

        assert (response.status_code, response.json()["code"]) == (status, code), action
    assert audit_rows(engine, sid(name)) == []


def test_acting_on_an_unknown_suggestion_is_404(client: TestClient) -> None:
    response = client.post(f"{URL}/no-such-id/acknowledge", headers=auth("nurse"))

    assert (response.status_code, response.json()["code"]) == (404, "not-found")


@pytest.mark.parametrize(
    "body", [{"reason": "ok", "actor": "someone-else"}, {"reason": "x" * 2001}, [1, 2]]
)
def test_action_body_is_validated(client: TestClient, body: Any) -> None:
    response = client.post(
        f"{URL}/{sid('nurse-warning')}/acknowledge", json=body, headers=auth("nurse")
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "invalid-request"


def test_acknowledging_an_acted_suggestion_is_409(client: TestClient) -> None:
    target = f"{URL}/{sid('clinician-qsofa')}"
    assert client.post(f"{target}/act", headers=auth("clinician")).status_code == 200

    response = client.post(f"{target}/acknowledge", headers=auth("nurse"))

    assert (response.status_code, response.json()["code"]) == (409, "conflict")


# --- the lifecycle through the API (docs/suggestions.md) ------------------------------


def test_a_nurse_may_not_dismiss_a_clinicians_acted_on_suggestion(
    client: TestClient, engine: Engine
) -> None:
    """Issue 9 item 6: an acted-on critical NEWS2 stays acted; the nurse's dismissal is 409."""
    target = f"{URL}/{sid('nurse-critical')}"
    clinician = token_subject(token_of("clinician"))
    acted = client.post(
        f"{target}/act", json={"reason": "outreach team called"}, headers=auth("clinician")
    )

    dismissed = client.post(
        f"{target}/dismiss", json={"reason": "looks fine now"}, headers=auth("nurse")
    )

    assert acted.status_code == 200
    assert dismissed.status_code == 409
    assert dismissed.json()["code"] == "conflict"
    assert dismissed.headers["content-type"] == PROBLEM
    detail = dismissed.json()["detail"]
    assert "acted" in detail and clinician in detail and acted.json()["status_at"][:19] in detail
    body = client.get(target, headers=auth("nurse")).json()
    assert (body["status"], body["status_by"], body["status_reason"]) == (
        "acted",
        clinician,
        "outreach team called",
    )
    assert audit_rows(engine, sid("nurse-critical")) == [
        ("act", clinician, "clinician", "outreach team called")
    ]


def test_a_note_on_a_closed_suggestion_is_recorded_without_changing_it(
    client: TestClient, engine: Engine
) -> None:
    target = f"{URL}/{sid('nurse-critical')}"
    nurse, clinician = token_subject(token_of("nurse")), token_subject(token_of("clinician"))
    client.post(f"{target}/act", json={"reason": "outreach team called"}, headers=auth("clinician"))

    noted = client.post(
        f"{target}/note", json={"reason": "settled at 14:00"}, headers=auth("nurse")
    )
    blank = client.post(f"{target}/note", json={"reason": "  "}, headers=auth("nurse"))

    assert noted.status_code == 200
    body = noted.json()
    assert (body["status"], body["status_by"], body["status_reason"]) == (
        "acted",
        clinician,
        "outreach team called",
    )
    assert [(a["action"], a["actor"]) for a in body["actions"]] == [
        ("act", clinician),
        ("note", nurse),
    ]
    assert (blank.status_code, blank.json()["code"]) == (422, "invalid-request")
    assert [e["loc"] for e in blank.json()["errors"]] == [["body", "reason"]]
    assert "the reason is blank" in blank.json()["errors"][0]["msg"]
    assert len(audit_rows(engine, sid("nurse-critical"))) == 2


HIDDEN_CALLS = [
    ("get", ""),
    ("post", "/acknowledge"),
    ("post", "/act"),
    ("post", "/dismiss"),
    ("post", "/note"),
]


@pytest.mark.parametrize(("method", "suffix"), HIDDEN_CALLS)
def test_a_suggestion_the_role_may_not_read_answers_like_a_missing_one(
    client: TestClient, engine: Engine, method: str, suffix: str
) -> None:
    """Issue 9 item 8: 403 for an existing suggestion vs 404 for a missing one leaked it."""
    hidden_id, missing_id = sid("finance-denial"), "f" * len(sid("finance-denial"))
    kwargs: dict[str, Any] = {"headers": auth("nurse")}
    if method == "post":
        kwargs["json"] = {"reason": "not mine"}

    hidden = client.request(method, f"{URL}/{hidden_id}{suffix}", **kwargs)
    missing = client.request(method, f"{URL}/{missing_id}{suffix}", **kwargs)

    assert (hidden.status_code, missing.status_code) == (404, 404)
    assert hidden.headers["content-type"] == missing.headers["content-type"] == PROBLEM
    assert hidden.json() == {
        key: value.replace(missing_id, hidden_id) if isinstance(value, str) else value
        for key, value in missing.json().items()
    }
    assert audit_rows(engine, hidden_id) == []


@pytest.mark.parametrize("action", ["dismiss", "note"])
def test_the_contract_says_dismiss_and_note_need_a_reason(client: TestClient, action: str) -> None:
    """Issue 9 item 8: the schema said reason was optional; the server refused it missing."""
    document = client.get("/openapi.json").json()
    operation = document["paths"][f"/api/v1/suggestions/{{suggestion_id}}/{action}"]["post"]
    assert operation["requestBody"]["required"] is True
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert schema["required"] == ["reason"]
    assert schema["properties"]["reason"]["minLength"] == 1
    assert schema["properties"]["reason"]["pattern"] == r"\S"
