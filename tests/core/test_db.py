"""Column types and transactions behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from healthos_core.db import SQLITE_POOL_SIZE, make_engine
from healthos_core.errors import InvalidInputError
from healthos_core.record.entities import Organization, Patient
from tests.conftest import POSTGRES_URL


def test_times_come_back_aware_utc(session_factory: sessionmaker[Session]) -> None:
    ist = dt.timezone(dt.timedelta(hours=5, minutes=30))
    with session_factory.begin() as session:
        session.add(Patient(id="p1", deceased_at=dt.datetime(2026, 1, 1, 5, 30, tzinfo=ist)))
    with session_factory() as session:
        patient = session.get(Patient, "p1")
        assert patient is not None and patient.deceased_at is not None
        assert patient.deceased_at == dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.UTC)
        assert patient.deceased_at.utcoffset() == dt.timedelta(0)


def test_naive_times_are_refused(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(StatementError) as excinfo, session_factory.begin() as session:
        session.add(Patient(id="p1", deceased_at=dt.datetime(2026, 1, 1)))
        session.flush()
    assert isinstance(excinfo.value.orig, InvalidInputError)
    assert "naive datetime 2026-01-01T00:00:00" in str(excinfo.value.orig)
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 0


def test_released_savepoint_rolls_back_with_its_outer_transaction(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        session.begin()
        with session.begin_nested():
            session.add(Organization(id="o1", name="Ward"))
        session.rollback()
    with session_factory() as session:
        assert session.get(Organization, "o1") is None


def _count_pings(engine: Engine) -> list[object]:
    """Record each pre-ping (``Dialect.do_ping``) the engine's pool makes."""
    pings: list[object] = []
    ping = engine.dialect.do_ping

    def counting(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    engine.dialect.do_ping = counting  # type: ignore[method-assign]
    return pings


def test_a_sqlite_file_keeps_a_pool_and_is_not_pinged(tmp_path: Path) -> None:
    """Issue 9 item 10: five pooled connections for sixteen concurrent readers meant one
    opened (PRAGMAs and all) and closed per request, and a ping before every checkout."""
    engine = make_engine(f"sqlite:///{tmp_path / 'h.db'}")
    pings = _count_pings(engine)
    opened: list[object] = []
    event.listen(engine, "connect", lambda dbapi, record: opened.append(dbapi))
    connections = [engine.connect() for _ in range(SQLITE_POOL_SIZE)]
    for connection in connections:
        connection.close()
    for _ in range(3):
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 2")
    assert len(opened) == SQLITE_POOL_SIZE  # kept and reused, never reopened
    assert isinstance(engine.pool, QueuePool) and engine.pool.size() == SQLITE_POOL_SIZE
    assert pings == []
    engine.dispose()


def test_a_database_server_is_pinged_before_each_checkout() -> None:
    engine = make_engine(POSTGRES_URL)
    pings = _count_pings(engine)
    for _ in range(2):
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 2")
    assert len(pings) == 1  # the second checkout of the pooled connection pings it
    engine.dispose()
