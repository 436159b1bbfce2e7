"""The suggestions' revision: a value that changes whenever any stored suggestion does.

Ward tablets, the command center and EHR hooks poll worklists far more often than
suggestions change. A reader that kept a worklist page can ask for the revision (one
indexed row) and reuse the page while the revision is the one it was built at
(``serving.page_cache``; ``ETag`` / ``If-None-Match`` for HTTP clients).

Every transaction that changes a suggestion (:func:`healthos_core.advisory.save_suggestions`
when content changed, :func:`healthos_core.advisory.act_on_suggestion`) writes a new
random revision in the same transaction, so the revision and the suggestions become
visible together. A random value rather than a counter: a database restored from a
backup, or emptied, never shows an old revision with other content.

On PostgreSQL concurrent writers of suggestions queue on the revision row from their
bump to their commit, so the bump is the last statement of those functions.
"""

from __future__ import annotations

import functools
import uuid
from typing import Final

from sqlalchemy import Connection, Dialect, Engine, String, bindparam, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, Session, mapped_column

from healthos_core.db import Base, upsert_insert

#: The id of the one row.
_ROW: Final = 1


class SuggestionRevision(Base):
    """One row: the current revision of the stored suggestions (32 hex digits)."""

    __tablename__ = "suggestion_revision"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    revision: Mapped[str] = mapped_column(String(32))

    def __repr__(self) -> str:
        return f"SuggestionRevision({self.revision!r})"


_READ = select(SuggestionRevision.revision).where(SuggestionRevision.id == bindparam("row"))


def bump_suggestion_revision(session: Session) -> str:
    """Give the stored suggestions a new revision, in the caller's transaction.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The transaction that changed suggestions; not committed here.

    Returns
    -------
    str
        The new revision (32 hex digits, random).
    """
    revision = uuid.uuid4().hex
    table = SuggestionRevision.__table__
    insert = upsert_insert(session.get_bind().dialect.name, table).values(
        id=_ROW, revision=revision
    )
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["id"], set_={"revision": insert.excluded.revision}
        )
    )
    return revision


def read_suggestion_revision(connection: Connection | Session) -> str | None:
    """Return the stored suggestions' current revision.

    Read it before the suggestions themselves: a page read after it is at least as new
    as the revision, so a page kept under that revision is never older than it.

    Parameters
    ----------
    connection : sqlalchemy.Connection or sqlalchemy.orm.Session
        Where to read.

    Returns
    -------
    str or None
        The revision; ``None`` if suggestions were never changed since the database was
        made (or emptied): nothing should be kept on the strength of it.
    """
    revision: str | None = connection.scalar(_READ, {"row": _ROW})
    return revision


@functools.cache
def _read_sql(dialect: Dialect) -> str:
    """Return the revision read compiled for ``dialect``, its one value written in."""
    statement = select(SuggestionRevision.revision).where(SuggestionRevision.id == _ROW)
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def poll_suggestion_revision(engine: Engine) -> str | None:
    """Return the current revision in one statement on a pooled connection (a poll).

    The same answer as :func:`read_suggestion_revision` at a fifth of its cost: a
    worklist poll whose page is kept does nothing else, so its cost is this read. The
    statement runs on the pool's DBAPI connection, without SQLAlchemy's transaction
    (one ``SELECT`` is one consistent read: SQLite's autocommit mode; PostgreSQL's
    implicit transaction, rolled back when the connection returns to the pool). On a
    database server the pool first checks the connection (``pool_pre_ping``).

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The database.

    Returns
    -------
    str or None
        As :func:`read_suggestion_revision`.

    Raises
    ------
    sqlalchemy.exc.DBAPIError
        Its subclass for the driver's error, as SQLAlchemy raises them
        (``OperationalError`` when the database cannot be reached or has no such table).
    """
    sql = _read_sql(engine.dialect)
    dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(sql)
            row = cursor.fetchone()
        finally:
            cursor.close()
    except dbapi_error as error:  # as SQLAlchemy's own execution would raise it
        raise DBAPIError.instance(sql, None, error, dbapi_error) from error
    finally:
        connection.close()
    return None if row is None else str(row[0])
