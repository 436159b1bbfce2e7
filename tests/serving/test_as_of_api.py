"""``?as_of=`` on every API route that takes it: ISO dates and aware date-times only.

Issue 9 items 8 and 9: ``as_of=0.0`` was read as a Unix timestamp, and the API read a date
as the end of that day while the CLI read it as the start. Both now use
:func:`healthos_core.fhir.refs.parse_as_of`. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from healthos_core.settings import Settings
from serving.main import create_app

TOKENS = {"tok-finance-0001": "finance"}
SETTINGS = Settings(environment="test", api_tokens=TOKENS)  # type: ignore[arg-type]
FINANCE = {"Authorization": "Bearer tok-finance-0001"}
PROBLEM = "application/problem+json"

#: Every GET route with ``?as_of=`` (those with an id answer 404 for a valid as_of).
ROUTES = [
    "/api/v1/billing/report",
    "/api/v1/billing/ar-aging",
    "/api/v1/finance/summary",
    "/api/v1/ledger/trial-balance",
    "/api/v1/accounts",
    "/api/v1/accounts/cash",
    "/api/v1/patients/no-such-patient/statement",
]

BAD = [
    "0.0",
    "1700000000",
    "-1",
    "2021-07-31T12:00:00",  # naive: which zone?
    "2021-07",
    "20210731",
    "31/07/2021",
    "2021-02-30",
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "0001-01-01",  # before any record: scorers looking back from it would leave the calendar
    "",
]


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(SETTINGS, engine=engine)) as test_client:
        yield test_client


@pytest.mark.parametrize("route", ROUTES)
def test_as_of_that_is_not_an_iso_date_is_422_naming_as_of(client: TestClient, route: str) -> None:
    for value in BAD:
        response = client.get(route, params={"as_of": value}, headers=FINANCE)
        assert response.status_code == 422, (route, value, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
        body = response.json()
        assert "as_of" in body["detail"], body
        assert [e["loc"] for e in body["errors"]] == [["query", "as_of"]], body


@pytest.mark.parametrize("route", ROUTES)
def test_as_of_iso_date_or_aware_date_time_is_accepted(client: TestClient, route: str) -> None:
    for value in ("2021-07-31", "2021-07-31T12:00:00Z", "2021-07-31T14:00:00+02:00"):
        response = client.get(route, params={"as_of": value}, headers=FINANCE)
        assert response.status_code in (200, 404), (route, value, response.text)
        if response.status_code == 404:
            assert "as_of" not in response.json()["detail"]


def test_as_of_date_is_the_end_of_that_day_utc(client: TestClient) -> None:
    report = client.get("/api/v1/billing/report", params={"as_of": "2021-07-31"}, headers=FINANCE)
    assert report.status_code == 200, report.text
    assert report.json()["as_of"] == "2021-07-31T23:59:59.999999Z"
    report = client.get(
        "/api/v1/billing/report",
        params={"as_of": "2021-07-31T14:00:00+02:00"},
        headers=FINANCE,
    )
    assert report.json()["as_of"] == "2021-07-31T12:00:00Z"


def test_openapi_documents_as_of_as_a_date_or_a_date_time(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for route in ("/api/v1/billing/report", "/api/v1/finance/summary"):
        [param] = [p for p in spec["paths"][route]["get"]["parameters"] if p["name"] == "as_of"]
        formats = {s.get("format") for s in param["schema"]["anyOf"]}
        assert formats == {"date", "date-time"}, param
