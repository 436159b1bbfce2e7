"""The API keeps its OpenAPI contract under schemathesis (issue 9 items 2, 3, 8).

schemathesis generates requests for every operation from ``/openapi.json`` (valid and
schema-violating ones), sends them to the app on PostgreSQL holding the demo (the
shipped sample patients, a ward census, charges, claims, suggestions) with a clinician's
and a finance token, and checks that no response is a server error, every status and
content type is documented, every body matches its schema and every schema-violating
request is refused. A few examples per operation keep it short; ``bench/fuzz_api.sh``
runs the same checks with ``st run`` against ``healthos serve`` for as long as asked.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Iterator

import pytest
import schemathesis
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from rich.console import Console
from schemathesis import checks
from sqlalchemy import Engine

from healthos_core.db import Base, make_engine, make_session_factory
from healthos_core.migrate import upgrade
from healthos_core.settings import Settings
from serving.demo import run_demo
from serving.main import create_app
from tests.conftest import POSTGRES_URL, postgres_engine_for_schema

TOKENS = {"tok-clinician-0001": "clinician", "tok-finance-0001": "finance"}
SETTINGS = Settings(environment="test", api_tokens=TOKENS)  # type: ignore[arg-type]
NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


@pytest.fixture(scope="module")
def demo_engine() -> Iterator[Engine]:
    """A PostgreSQL schema of its own, migrated, holding the demo."""
    name = f"hos_fuzz_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
    engine = postgres_engine_for_schema(name)
    upgrade(engine)
    Base.metadata.create_all(engine)
    run_demo(make_session_factory(engine), console=Console(file=io.StringIO()), now=NOW)
    yield engine
    engine.dispose()
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="module")
def demo_app(demo_engine: Engine) -> Iterator[FastAPI]:
    app = create_app(SETTINGS, engine=demo_engine)
    with TestClient(app):  # runs the lifespan (the model store) for the whole module
        yield app


@pytest.fixture(params=sorted(TOKENS), ids=lambda token: TOKENS[token])
def token(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# The document is static (no database is needed to build it); the cases run against the
# demo app. (``schemathesis.pytest.from_fixture`` does not run under pytest 9.)
schema = schemathesis.openapi.from_dict(create_app(SETTINGS).openapi())


@schema.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_keeps_its_contract(case: schemathesis.Case, demo_app: FastAPI, token: str) -> None:
    case.call_and_validate(
        app=demo_app, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
    )
