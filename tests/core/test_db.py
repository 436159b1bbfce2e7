"""Column types and transactions behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.errors import InvalidInputError
from healthos_core.record.entities import Organization, Patient


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
