"""Database plumbing: the declarative base, column types, engines and sessions.

No engine is created at import time. The caller owns sessions and transactions
(``with session_scope(factory) as session: ...``); library functions take a
``Session``, may ``flush`` and never ``commit``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar

from sqlalchemy import (
    JSON,
    Dialect,
    Engine,
    MetaData,
    Numeric,
    String,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql import FromClause
from sqlalchemy.types import DateTime, TypeDecorator

from healthos_core.errors import InvalidInputError

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every backend.

    Naive datetimes are refused on the way in (``InvalidInputError``); values are
    converted to UTC. SQLite, which keeps no zone, gets UTC and hands back aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        """Convert an aware datetime to UTC before storing it."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInputError(
                f"naive datetime {value.isoformat()} given: times must be aware"
            )
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


#: Money amounts: exact decimals with 2 places (currency held in a separate column).
Money = Annotated[Decimal, mapped_column(Numeric(14, 2))]
#: FHIR logical ids are strings (Synthea uses UUIDs).
FhirId = Annotated[str, mapped_column(String(64), primary_key=True)]


class Base(DeclarativeBase):
    """Declarative base of every HealthOS entity."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime(),
        Decimal: Numeric(14, 2),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
        str: String(255),
    }


def utcnow() -> dt.datetime:
    """Return the current time as an aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, emit BEGIN: pysqlite's own transaction handling breaks
    # SAVEPOINTs (a released savepoint would commit the outer work). SQLAlchemy docs,
    # "Serializable isolation / Savepoints / Transactional DDL" (SQLite dialect).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


#: Execution option of a writer engine (:func:`make_session_factory` ``writer=True``).
WRITER_OPTION = "healthos_writer"


def _sqlite_begin(connection: Any) -> None:
    # A writer takes SQLite's write lock up front (waiting for it up to the busy timeout):
    # a deferred transaction that read first and then writes fails at once with "database
    # is locked" if another writer committed meanwhile (SQLite docs, "BEGIN TRANSACTION":
    # IMMEDIATE; "SQLITE_BUSY_SNAPSHOT"). Readers stay deferred: WAL readers need no lock.
    immediate = connection.get_execution_options().get(WRITER_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


#: Connections a SQLite file engine keeps open (the API's concurrent readers; as many
#: more may be opened for a burst and closed after it).
SQLITE_POOL_SIZE = 20


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine for ``url`` with HealthOS's connection settings.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. ``sqlite:///var/healthos.db`` or
        ``postgresql+psycopg://user@127.0.0.1:5432/db``. ``postgresql://`` is
        read as ``postgresql+psycopg://``.
    echo : bool, default=False
        Log SQL statements (never in production: values may be PHI).

    Returns
    -------
    sqlalchemy.Engine
        With foreign keys enforced on SQLite, and on a database server ``pool_pre_ping``:
        a pooled connection is tested before it is handed out, so connections broken by
        a database restart are replaced instead of failing the next request (SQLAlchemy
        docs, "Dealing with Disconnects": pessimistic disconnect handling). A SQLite file
        has no server to restart, so it is not pinged; its pool keeps
        :data:`SQLITE_POOL_SIZE` connections.
    """
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite"):
        # A file database has no server to lose: no ping. Its pool (the dialect's choice,
        # QueuePool for a file) keeps enough connections for the API's concurrent
        # readers, so none is opened (and its PRAGMAs run) per request.
        parsed = make_url(url)
        dialect = parsed.get_dialect()
        pooled = issubclass(dialect, DefaultDialect) and dialect.get_pool_class(parsed) is QueuePool
        sizes = {"pool_size": SQLITE_POOL_SIZE, "max_overflow": SQLITE_POOL_SIZE}
        engine = create_engine(url, echo=echo, **(sizes if pooled else {}))
    else:
        engine = create_engine(url, echo=echo, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def make_session_factory(engine: Engine, *, writer: bool = False) -> sessionmaker[Session]:
    """Return a session factory bound to ``engine`` (``expire_on_commit=False``).

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The database.
    writer : bool, default=False
        For sessions that will write while other processes or threads write too: on
        SQLite their transactions begin ``IMMEDIATE`` (one writer at a time, the others
        wait up to the busy timeout instead of failing with "database is locked"). No
        effect on PostgreSQL, where writers lock rows (:func:`lock_rows`).

    Returns
    -------
    sqlalchemy.orm.sessionmaker
    """
    bind = engine.execution_options(**{WRITER_OPTION: True}) if writer else engine
    return sessionmaker(bind, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Open a session with one transaction: commit on success, roll back on error."""
    with factory() as session, session.begin():
        yield session


def lock_rows(session: Session, table: Table, ids: Iterable[str]) -> None:
    """Lock rows by id until the transaction ends, so concurrent writers of them queue.

    On PostgreSQL ``SELECT … ORDER BY id FOR NO KEY UPDATE`` (ids in sorted order, so two
    transactions locking overlapping sets cannot deadlock; ``NO KEY`` so inserts whose
    foreign keys point at the rows are not blocked). A transaction that waited sees,
    in its next statement, what the other committed (READ COMMITTED). Rows that do not
    exist are not locked. On SQLite nothing is done: it has one writer at a time.

    Parameters
    ----------
    session : Session
        The caller's session (its transaction holds the locks).
    table : sqlalchemy.Table
        A table with a string ``id`` primary key.
    ids : iterable of str
        The rows to lock.
    """
    wanted = sorted(set(ids))
    if not wanted or session.get_bind().dialect.name != "postgresql":
        return
    for start in range(0, len(wanted), 50_000):
        chunk = bindparam(None, wanted[start : start + 50_000], type_=ARRAY(String))
        session.execute(
            select(table.c.id)
            .where(table.c.id == any_(chunk))
            .order_by(table.c.id)
            .with_for_update(key_share=True)
        ).all()


def upsert_insert(dialect_name: str, table: FromClause) -> Any:
    """Return an ``INSERT`` on ``table`` that can take ``ON CONFLICT`` (PostgreSQL or SQLite).

    The one place that picks the dialect's ``insert`` construct (both have
    ``on_conflict_do_update`` and ``on_conflict_do_nothing``; SQLAlchemy docs,
    "INSERT…ON CONFLICT (Upsert)"). Anything but ``"postgresql"`` gets SQLite's.
    """
    module: Any = postgresql if dialect_name == "postgresql" else sqlite
    return module.insert(table)


def short_string(length: int = 64) -> Any:
    """Return a ``String(length)`` column type (for codes and identifiers)."""
    return String(length)
