"""The Alembic migrations alone build exactly the schema the entities describe."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from healthos_core.db import Base, make_engine
from healthos_core.migrate import upgrade
from tests.conftest import BACKENDS, POSTGRES_URL, postgres_engine_for_schema


@pytest.fixture(params=BACKENDS)
def alembic_only_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path}/alembic.db")
        upgrade(engine)
        yield engine
        engine.dispose()
        return
    schema = f"hos_migrations_{os.getpid()}"
    engine = postgres_engine_for_schema(schema)
    upgrade(engine)
    yield engine
    engine.dispose()
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def test_migrations_match_the_entities(alembic_only_engine: Engine) -> None:
    with alembic_only_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrations_create_every_table(alembic_only_engine: Engine) -> None:
    tables = set(inspect(alembic_only_engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables
