"""Shared fixtures: a migrated database on SQLite and on the local PostgreSQL.

Every test that takes ``engine`` (or ``session``, ``session_factory``) runs twice: once
on SQLite and once on PostgreSQL at 127.0.0.1:5432 (trust auth, database ``test``;
override with ``HEALTHOS_TEST_POSTGRES_URL``). Each xdist worker gets its own
PostgreSQL schema, and tables are emptied after each test, so code under test may
commit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import healthos_core  # noqa: F401
from healthos_core.billing.capture import is_registered
from healthos_core.billing.remittance import remittance_hooks_registered
from healthos_core.db import Base, make_engine, make_session_factory
from healthos_core.events import default_bus
from healthos_core.migrate import upgrade
from healthos_core.outbox import recorders_on
from healthos_core.wiring import Wiring, is_wired, unwire, wired

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
POSTGRES_URL = os.environ.get(
    "HEALTHOS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def postgres_engine_for_schema(schema: str) -> Engine:
    """Create (fresh) ``schema`` in the test database and return an engine scoped to it."""
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return sa.create_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})


def postgres_url_for_schema(schema: str) -> str:
    """A URL (with ``options``) selecting ``schema``, for code that builds its own engine."""
    postgres_engine_for_schema(schema).dispose()
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session", params=BACKENDS)
def migrated_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A database migrated to head, one per backend per worker."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "test.db"
        engine = make_engine(f"sqlite:///{path}")
    else:
        schema = f"hos_test_{_worker()}_{os.getpid()}"
        engine = postgres_engine_for_schema(schema)
    upgrade(engine)
    # Entities added since the newest migration still get their tables here, so work in
    # progress can be tested; tests/core/test_migrations.py checks, on its own databases
    # built by Alembic alone, that the migrations and the entities agree.
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()
    if request.param == "postgresql":
        admin = make_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def truncate_all(engine: Engine) -> None:
    """Delete every row of every HealthOS table (children first)."""
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def engine(migrated_engine: Engine) -> Iterator[Engine]:
    """The migrated engine, emptied after the test."""
    yield migrated_engine
    truncate_all(migrated_engine)


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory on the per-test engine."""
    return make_session_factory(engine)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose outer transaction the test controls (commit or not)."""
    with session_factory() as s:
        yield s
        s.rollback()


def table_counts(engine: Engine) -> dict[str, int]:
    """Row count of every HealthOS table: a snapshot to prove nothing was half-written."""
    with engine.connect() as conn:
        return {
            t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
            for t in Base.metadata.sorted_tables
        }


def url_table_counts(url: str) -> dict[str, int]:
    """:func:`table_counts` of the database at ``url`` (e.g. one the CLI wrote)."""
    engine = make_engine(url)
    try:
        return table_counts(engine)
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def cli_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL of its own for the CLI (which builds its own engine), per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cli.db'}"
        return
    schema = f"hos_cli_{_worker()}_{os.getpid()}"
    yield postgres_url_for_schema(schema)
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def shared_data() -> Path:
    """The real datasets folder ``../shared/data`` beside the repository."""
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"{SHARED_DATA} is missing: integration tests need ../shared/data beside the repo"
        )
    return SHARED_DATA


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Let a test set ``HEALTHOS_*`` variables: settings are re-read before and after."""
    from healthos_core.settings import get_settings

    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def live_path() -> Iterator[Wiring]:
    """The live path wired on the default bus for one test, as the API and CLI wire it.

    Charge capture on :func:`~healthos_core.events.default_bus` and remittance posting
    for imported Claims / ClaimResponses (:func:`healthos_core.wiring.wired`); unwired
    after the test. Importing HealthOS wires nothing, so a test of code that relies on
    them asks for this fixture.
    """
    with wired() as wiring:
        yield wiring


def _unwire_unless(was_wired: bool) -> None:
    if not was_wired and (
        is_registered() or remittance_hooks_registered() or recorders_on(default_bus())
    ):
        unwire()


@pytest.fixture(scope="module", autouse=True)
def _module_wiring_as_found() -> Iterator[None]:
    """Leave the default bus's wiring as the module found it (see ``_wiring_as_found``)."""
    was_wired = is_wired()
    yield
    _unwire_unless(was_wired)


@pytest.fixture(autouse=True)
def _wiring_as_found() -> Iterator[None]:
    """Leave the default bus's wiring as the test found it.

    ``run_demo`` and the CLI commands wire the live path for the rest of the process; in
    a test process that must not leak into the next test, which would then pass only
    after one of them. Wiring done by a module-scoped fixture (a module's API client, a
    workspace built with the CLI) is there before the test and kept until the module
    ends.
    """
    was_wired = is_wired()
    yield
    _unwire_unless(was_wired)
