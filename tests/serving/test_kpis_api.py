"""``GET /api/v1/kpis`` and ``healthos kpis``: roles, validation, 404, the document's shape.

Runs on SQLite and PostgreSQL. The data: a region ← network ← facility with two inpatient
stays (ALOS 5.0 on 2024-03-31), enough to see the same figure on every level.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from healthos_core.db import session_scope
from healthos_core.settings import Settings
from serving.cli import app as cli
from serving.main import create_app
from tests.factories import make_encounter, make_organization, make_patient

TOKENS = {
    "tok-finance-0001": "finance",
    "tok-leadership-01": "leadership",
    "tok-admin-0001": "admin",
    "tok-operations-01": "operations",
    "tok-nurse-0001": "nurse",
    "tok-clinician-0001": "clinician",
}
SETTINGS = Settings(environment="test", api_tokens=TOKENS)  # type: ignore[arg-type]
URL = "/api/v1/kpis"
PROBLEM = "application/problem+json"


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {next(t for t, r in TOKENS.items() if r == role)}"}


def seed(session: Session) -> None:
    make_organization(session, id="region-1", name="North", type_code="region")
    make_organization(
        session, id="network-1", name="Net", type_code="network", part_of_id="region-1"
    )
    make_organization(session, id="fac-a", name="A", part_of_id="network-1")
    for admitted, discharged in ((25, 28), (23, 30)):  # 3 and 7 nights
        patient = make_patient(session)
        make_encounter(
            session,
            patient_id=patient.id,
            facility_id="fac-a",
            class_code="IMP",
            status="finished",
            period_start=dt.datetime(2024, 3, admitted, 10, tzinfo=dt.UTC),
            period_end=dt.datetime(2024, 3, discharged, 10, tzinfo=dt.UTC),
        )


@pytest.fixture
def client(engine: Engine, session_factory: sessionmaker[Session]) -> Iterator[TestClient]:
    with session_scope(session_factory) as session:
        seed(session)
    with TestClient(create_app(SETTINGS, engine=engine)) as test_client:
        yield test_client


@pytest.mark.parametrize("role", ["leadership", "finance", "operations", "admin"])
def test_kpis_document_for_every_scope(client: TestClient, role: str) -> None:
    response = client.get(URL, params={"date": "2024-03-31"}, headers=auth(role))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["date"] == "2024-03-31"
    assert [(s["level"], s["id"]) for s in body["scopes"]] == [
        ("facility", "fac-a"),
        ("network", "network-1"),
        ("region", "region-1"),
    ]
    for scope in body["scopes"]:
        alos = next(k for k in scope["kpis"] if k["key"] == "alos")
        assert (alos["value"], alos["unit"], alos["better"]) == (5.0, "days", "lower")
        assert {"previous_day", "previous_week", "formula", "source", "breakdown"} <= set(alos)
        assert len(scope["kpis"]) == 10


def test_kpis_one_scope(client: TestClient) -> None:
    response = client.get(
        URL,
        params={"date": "2024-03-31", "level": "network", "id": "network-1"},
        headers=auth("leadership"),
    )
    assert response.status_code == 200
    assert [s["id"] for s in response.json()["scopes"]] == ["network-1"]


@pytest.mark.parametrize("role", ["clinician", "nurse"])
def test_kpis_refuse_other_roles(client: TestClient, role: str) -> None:
    response = client.get(URL, headers=auth(role))
    assert response.status_code == 403
    assert response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    ("params", "status", "names"),
    [
        ({"date": "2024-02-30"}, 422, "date"),
        ({"date": "2024-03-31T00:00:00Z"}, 422, "date"),
        ({"level": "ward"}, 422, "level"),
        ({"id": "fac-a"}, 422, "level"),
        ({"level": "facility", "id": "nope"}, 404, "nope"),
        ({"level": "facility", "id": "network-1"}, 404, "network-1"),
    ],
)
def test_kpis_bad_input_is_a_problem(
    client: TestClient, params: dict[str, str], status: int, names: str
) -> None:
    response = client.get(URL, params=params, headers=auth("leadership"))
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert names in response.text


def test_kpis_openapi_documents_the_statuses(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"][URL]["get"]
    assert {"200", "401", "403", "404", "422"} <= set(operation["responses"])
    assert {p["name"] for p in operation["parameters"]} == {"date", "level", "id"}


def test_cli_kpis_prints_the_same_document(
    cli_db_url: str,
) -> None:
    from healthos_core.db import make_engine, make_session_factory
    from healthos_core.migrate import upgrade

    engine = make_engine(cli_db_url)
    upgrade(engine)
    with session_scope(make_session_factory(engine)) as session:
        seed(session)
    engine.dispose()
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "kpis",
            "--db",
            cli_db_url,
            "--date",
            "2024-03-31",
            "--level",
            "facility",
            "--id",
            "fac-a",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    (scope,) = document["scopes"]
    assert next(k for k in scope["kpis"] if k["key"] == "alos")["value"] == 5.0
    table = runner.invoke(cli, ["kpis", "--db", cli_db_url, "--date", "2024-03-31"])
    assert table.exit_code == 0 and "(fac-a)" in table.stdout and "region North" in table.stdout
    bad = runner.invoke(cli, ["kpis", "--db", cli_db_url, "--date", "31/03/2024"])
    assert bad.exit_code == 2 and "--date" in bad.output
    missing = runner.invoke(
        cli, ["kpis", "--db", cli_db_url, "--level", "region", "--id", "nope", "--json"]
    )
    assert missing.exit_code == 3 and "nope" in missing.output
