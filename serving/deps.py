"""Request dependencies: database session, settings, the caller and their role.

Use the ``Annotated`` aliases in route signatures::

    def read_patient(*, session: SessionDep, user: CurrentUser, patient_id: str) -> ...

Tokens are never logged, stored or echoed: a caller is known by a pseudonymous
subject derived from a hash of their token.

Dependencies that do no I/O (settings, the caller, role checks) are ``async``: FastAPI
runs each sync dependency in the threadpool, a crossing per dependency per request that
costs about as much CPU as a whole plain FastAPI request (issue 9 item 10). Polled
routes run their database work in at most one crossing with :func:`run_polled_read`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Final, TypeVar

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

from healthos_core.db import make_session_factory
from healthos_core.errors import PermissionDeniedError
from healthos_core.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="An API token from HEALTHOS_API_TOKENS")


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller.

    Parameters
    ----------
    subject : str
        Pseudonymous, stable id of the token (``"token:<16 hex>"``, a SHA-256 prefix),
        recorded as the actor of audited actions. Never the token itself.
    role : str
        The role the token grants (``clinician``, ``nurse``, ``finance`` …).
    """

    subject: str
    role: str


async def get_app_settings(request: Request) -> Settings:
    """Return the settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


#: Methods whose requests change nothing (RFC 9110 §9.2.1), so trying again is harmless.
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
#: A safe request that cannot get a database connection tries again this many times,
#: this many seconds apart (rides out a database restart), before the error (503).
CONNECT_RETRIES: Final = 4
CONNECT_PAUSE: Final = 0.5


def _connect(session: Session) -> None:
    """Open the session's connection, retrying while the database cannot be reached."""
    for attempt in range(CONNECT_RETRIES + 1):
        try:
            session.connection()
            return
        except (OperationalError, InterfaceError, PoolTimeoutError):
            if attempt == CONNECT_RETRIES:
                raise
            session.rollback()
            time.sleep(CONNECT_PAUSE)


def _writer_factory(request: Request, factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Return the writer twin of the app's session factory (made once per factory)."""
    cached: tuple[sessionmaker[Session], sessionmaker[Session]] | None = getattr(
        request.app.state, "writer_factory", None
    )
    if cached is not None and cached[0] is factory:
        return cached[1]
    writers = make_session_factory(factory.kw["bind"], writer=True)
    writers.kw.update({k: v for k, v in factory.kw.items() if k != "bind"})
    request.app.state.writer_factory = (factory, writers)
    return writers


def _app_factory(request: Request) -> sessionmaker[Session]:
    """Return the app's session factory (its lifespan made it)."""
    factory: sessionmaker[Session] | None = getattr(request.app.state, "session_factory", None)
    if factory is None:
        raise RuntimeError("the app has no database yet: its lifespan has not started")
    return factory


def get_session(request: Request) -> Iterator[Session]:
    """Yield a session holding one transaction: committed on success, rolled back on error.

    Runs with ``scope="function"``, so the commit happens before the response is
    sent and a failed commit becomes an error response, not a false success.

    A safe request (GET, HEAD, OPTIONS) that cannot get a connection to a database
    server (it is restarting) tries again, :data:`CONNECT_RETRIES` times
    :data:`CONNECT_PAUSE` seconds apart; other requests are not retried here (a failure
    is a 503 problem and nothing is written: the client may send them again, and
    payments and remittances are idempotent by reference). Other requests get a writer session
    (:func:`~healthos_core.db.make_session_factory`), so on SQLite concurrent writes
    queue instead of failing.

    Raises
    ------
    RuntimeError
        If the app's lifespan has not run (use ``with TestClient(app) as client``).
    sqlalchemy.exc.OperationalError
        The database cannot be reached (the app answers 503 with ``Retry-After``).
    """
    factory = _app_factory(request)
    safe = request.method in SAFE_METHODS
    with (factory if safe else _writer_factory(request, factory))() as session:
        if safe and not _embedded(factory):
            _connect(session)
        yield session
        session.commit()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def _embedded(factory: sessionmaker[Session]) -> bool:
    """Whether the database is SQLite: a library in this process, no server to wait for."""
    return bool(factory.kw["bind"].dialect.name == "sqlite")


_T = TypeVar("_T")


def app_engine(request: Request) -> Engine:
    """Return the app's engine (the bind of its session factory)."""
    engine: Engine = _app_factory(request).kw["bind"]
    return engine


def app_sessions(request: Request) -> sessionmaker[Session]:
    """Return the app's session factory, for a polled read that needs the ORM."""
    return _app_factory(request)


async def run_polled_read(request: Request, read: Callable[[], _T]) -> _T:
    """Run ``read()``, a short read polled by many clients, in at most one threadpool hop.

    For ``async`` routes that are polled (a patient read, a worklist): FastAPI runs a
    sync route with :data:`SessionDep` in four threadpool hops (opening the session, the
    route, checking its response, the commit), each costing about as much CPU as a
    whole plain FastAPI request and far more in latency under load (issue 9 item 10,
    ``bench/README.md``).

    On a database server (PostgreSQL) ``read`` runs in one threadpool hop: it waits on
    the network; while the server cannot be reached (a restart) it is tried again,
    :data:`CONNECT_RETRIES` times :data:`CONNECT_PAUSE` seconds apart, as
    :func:`get_session` does for safe requests. On SQLite, the embedded default, it
    runs on the event loop, once: SQLite is a library working on a local file, a short
    indexed read costs less than the hop (0.45 ms against about 1 ms under load, the
    profile in ``bench/README.md``), and in WAL mode readers never wait for writers.
    Only short reads use this function; everything else is a sync route.

    Parameters
    ----------
    request : fastapi.Request
        The request (its app's database).
    read : callable
        Takes nothing, reads (:func:`app_engine`, :func:`app_sessions`) and returns the
        answer. It must write nothing: it may run more than once.

    Returns
    -------
    object
        What ``read`` returned.

    Raises
    ------
    Exception
        Whatever ``read`` raised (on a server, the last attempt's database error).
    """
    if _embedded(_app_factory(request)):
        return read()

    def retrying() -> _T:
        failures = 0
        while True:
            try:
                return read()
            except (OperationalError, InterfaceError, PoolTimeoutError):
                failures += 1
                if failures > CONNECT_RETRIES:
                    raise
                time.sleep(CONNECT_PAUSE)

    return await run_in_threadpool(retrying)


async def run_on_connection(request: Request, work: Callable[[Connection], _T]) -> _T:
    """Run ``work(connection)``, a polled read of plain rows (:func:`run_polled_read`).

    With a :class:`sqlalchemy.Connection` rather than an ORM session: for reads that
    select rows (:mod:`healthos_core.record.reads`), where the session's unit of work
    and identity map would cost more than the query. The read transaction ends when
    ``work`` returns; nothing is committed.

    Examples
    --------
    >>> async def read(request: Request, patient_id: str) -> PatientPublic:  # doctest: +SKIP
    ...     return await run_on_connection(
    ...         request, lambda c: PatientPublic.from_entity(read_patient_summary(c, patient_id))
    ...     )
    """
    engine = app_engine(request)

    def read() -> _T:
        with engine.connect() as connection:  # closing ends the read (nothing to keep)
            return work(connection)

    return await run_polled_read(request, read)


def token_subject(token: str) -> str:
    """Return the pseudonymous subject of an API token (a SHA-256 prefix, not reversible)."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


def authenticate(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """Authenticate a bearer token against ``settings.api_tokens``.

    The one token check: the :data:`CurrentUser` dependency and the request guard
    (:mod:`serving.limits`, which checks before the body is read) both call it.

    Parameters
    ----------
    settings : Settings
        The app's settings (``api_tokens``: token → role).
    credentials : fastapi.security.HTTPAuthorizationCredentials or None
        The ``Authorization: Bearer`` credentials, ``None`` when there are none.

    Returns
    -------
    Principal
        The caller.

    Raises
    ------
    fastapi.HTTPException
        401 with ``WWW-Authenticate: Bearer`` if the token is missing or unknown.
    """
    if credentials is None or not credentials.credentials:
        raise _unauthorized("send an API token: 'Authorization: Bearer <token>'")
    given = credentials.credentials.encode()
    role: str | None = None
    for token, token_role in settings.api_tokens.items():  # compare all, in constant time
        if hmac.compare_digest(given, token.encode()):
            role = token_role
    if role is None:
        raise _unauthorized("the API token is not valid")
    return Principal(subject=token_subject(credentials.credentials), role=role)


async def authenticate_connection(connection: HTTPConnection, settings: Settings) -> Principal:
    """Authenticate a connection's ``Authorization`` header (no body is read).

    Parameters
    ----------
    connection : starlette.requests.HTTPConnection
        The request (only its headers are used).
    settings : Settings
        The app's settings.

    Returns
    -------
    Principal
        The caller.

    Raises
    ------
    fastapi.HTTPException
        401, as :func:`authenticate`.
    """
    return authenticate(settings, await _bearer(connection))


async def get_current_user(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Authenticate the bearer token (the dependency behind :data:`CurrentUser`).

    Raises
    ------
    fastapi.HTTPException
        401 with ``WWW-Authenticate: Bearer`` if the token is missing or unknown.
    """
    return authenticate(settings, credentials)


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def require_roles(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """Return a dependency that lets through only callers with one of ``roles``.

    Parameters
    ----------
    *roles : str
        Allowed roles.

    Returns
    -------
    callable
        A dependency returning the :class:`Principal`; it raises
        :class:`~healthos_core.errors.PermissionDeniedError` (403) for other roles.

    Examples
    --------
    >>> Reader = Annotated[Principal, Depends(require_roles("clinician", "nurse"))]
    """
    allowed = frozenset(roles)

    async def check_role(user: CurrentUser) -> Principal:
        if user.role not in allowed:
            names = ", ".join(sorted(allowed))
            raise PermissionDeniedError(
                f"the {user.role} role may not use this route; allowed roles: {names}"
            )
        return user

    return check_role


def _declared_query_names(dependant: Dependant) -> frozenset[str]:
    """Return the query parameter names (aliases) an endpoint and its dependencies take."""
    names: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        for param in current.query_params:
            model = param.field_info.annotation
            if isinstance(model, type) and issubclass(model, BaseModel):  # a query model
                names.update(f.alias or n for n, f in model.model_fields.items())
            else:
                names.add(param.alias)
        pending.extend(current.dependencies)
    return frozenset(names)


def _query_names(request: Request, route: APIRoute) -> frozenset[str]:
    """Return the query parameters a route declares (computed once per route)."""
    table: dict[int, frozenset[str]] | None = getattr(request.app.state, "query_names", None)
    if table is None:
        table = request.app.state.query_names = {}
    names = table.get(id(route))
    if names is None:
        names = table[id(route)] = _declared_query_names(route.dependant)
    return names


async def known_query_parameters(request: Request) -> None:
    """Refuse a query parameter the route does not declare (422, naming it).

    FastAPI ignores unknown query parameters, so a misspelt filter
    (``?audiance=nurse``) would silently answer with everything; the OpenAPI document
    lists each route's parameters, and a request with others does not match it
    (schemathesis: "query violates additionalProperties"). The known names are those
    the route's endpoint and dependencies declare, which the document lists. Mounted
    on every router by :func:`serving.main.create_app`, after authentication on the API.

    Raises
    ------
    fastapi.exceptions.RequestValidationError
        One error per unknown parameter, at ``("query", name)`` (answered as 422
        problem details).
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = _query_names(request, route)
    unknown = sorted({name for name in request.query_params if name not in known})
    if unknown:
        takes = ", ".join(sorted(known)) or "no query parameters"
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": f"unknown query parameter {name!r}; this route takes: {takes}",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )
