"""Request dependencies: database session, settings, the caller and their role.

Use the ``Annotated`` aliases in route signatures::

    def read_patient(*, session: SessionDep, user: CurrentUser, patient_id: str) -> ...

Tokens are never logged, stored or echoed: a caller is known by a pseudonymous
subject derived from a hash of their token.

Dependencies that do no I/O (settings, the caller, role checks) are ``async``: FastAPI
runs each sync dependency in the threadpool, a crossing per dependency per request that
costs about as much CPU as a whole plain FastAPI request (issue 9 item 10). Polled
routes run their database work in one crossing with :func:`run_in_session`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

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


def get_session(request: Request) -> Iterator[Session]:
    """Yield a session holding one transaction: committed on success, rolled back on error.

    Runs with ``scope="function"``, so the commit happens before the response is
    sent and a failed commit becomes an error response, not a false success.

    Raises
    ------
    RuntimeError
        If the app's lifespan has not run (use ``with TestClient(app) as client``).
    """
    factory: sessionmaker[Session] | None = getattr(request.app.state, "session_factory", None)
    if factory is None:
        raise RuntimeError("the app has no database yet: its lifespan has not started")
    with factory() as session, session.begin():
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_T = TypeVar("_T")


async def run_in_session(request: Request, work: Callable[[Session], _T]) -> _T:
    """Run ``work(session)`` in :func:`get_session`'s transaction, in one threadpool hop.

    For ``async`` routes that are polled (a patient read, a worklist): FastAPI runs a
    sync route with :data:`SessionDep` in four threadpool hops (opening the session, the
    route, checking its response, the commit), each costing about as much CPU as a
    whole plain FastAPI request and far more in latency under load (issue 9 item 10,
    ``bench/README.md``). Same session, retries and commit as :func:`get_session`.

    Parameters
    ----------
    request : fastapi.Request
        The request (its app's session factory and its method).
    work : callable
        Takes the session and returns the route's answer, built inside the transaction
        (so it may read lazily loaded attributes).

    Returns
    -------
    object
        What ``work`` returned, after the commit.

    Raises
    ------
    Exception
        Whatever ``work`` or the commit raised; the transaction is then rolled back.

    Examples
    --------
    >>> async def read(request: Request, patient_id: str) -> PatientPublic:  # doctest: +SKIP
    ...     return await run_in_session(
    ...         request, lambda s: PatientPublic.from_entity(get_patient(s, patient_id))
    ...     )
    """

    def call() -> _T:
        with contextmanager(get_session)(request) as session:
            return work(session)

    return await run_in_threadpool(call)


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
