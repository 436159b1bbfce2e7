"""The HealthOS API: :func:`create_app` builds the FastAPI application.

Every error leaves as RFC 9457 problem details (``application/problem+json``) with
``type``, ``title``, ``status``, ``detail``, ``instance`` (the request path, without
the query string) and ``code`` (a stable machine-readable code). Domain errors
(:class:`~healthos_core.errors.HealthOSError`) are mapped here, once:

==================== ======
error                status
==================== ======
NotFoundError        404
InvalidInputError    422
ConflictError        409
PermissionDenied     403
other HealthOSError  400
==================== ======

Neither tokens nor request data are logged: errors are logged by type and code only.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from healthos_core.db import make_engine, make_session_factory
from healthos_core.errors import (
    ConflictError,
    HealthOSError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from healthos_core.settings import Settings, get_settings
from serving.routers import api_router, health
from serving.routers import finance as finance_routes
from serving.routers import models as model_routes
from serving.schemas.common import ProblemDetails

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
#: Problem ``type`` URIs are this prefix plus the ``code``. They identify the problem
#: type and are not meant to be dereferenced (RFC 9457 §3.1.1 allows tag URIs).
PROBLEM_TYPE_PREFIX = "tag:healthos.org,2025:problem:"
PROBLEM_MEDIA_TYPE = "application/problem+json"

#: Status of each domain error class; the first match in this order wins.
ERROR_STATUS: tuple[tuple[type[HealthOSError], int], ...] = (
    (NotFoundError, 404),
    (InvalidInputError, 422),
    (ConflictError, 409),
    (PermissionDeniedError, 403),
)

_HTTP_CODES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    415: "unsupported-media-type",
    422: "invalid-input",
    503: "service-unavailable",
}

#: Problem responses documented on every ``/api/v1`` route.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ProblemDetails, "description": "Missing or invalid bearer token"},
    403: {"model": ProblemDetails, "description": "The token's role may not do this"},
    404: {"model": ProblemDetails, "description": "No such record"},
    422: {"model": ProblemDetails, "description": "Invalid request or input"},
}


class ProblemResponse(JSONResponse):
    """A JSON response with media type ``application/problem+json``."""

    media_type = PROBLEM_MEDIA_TYPE


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    extensions: dict[str, Any] | None = None,
) -> ProblemResponse:
    """Build an RFC 9457 problem details response.

    Parameters
    ----------
    request : fastapi.Request
        The request; its path is the problem's ``instance``.
    status : int
        HTTP status code; the title is its standard reason phrase.
    code : str
        Stable machine-readable code, also the last part of ``type``.
    detail : str, optional
        What went wrong and what to do about it, for a person.
    headers : dict of str to str, optional
        Extra response headers (e.g. ``WWW-Authenticate``).
    errors : list of dict, optional
        Invalid request fields (``loc``, ``msg``, ``type``).
    extensions : dict, optional
        Extension members (RFC 9457 §3.2), e.g. a blocked claim's ``issues``.

    Returns
    -------
    ProblemResponse
    """
    problem = ProblemDetails(
        type=PROBLEM_TYPE_PREFIX + code,
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        code=code,
        errors=errors,
        **(extensions or {}),
    )
    return ProblemResponse(
        problem.model_dump(mode="json", exclude_none=True), status_code=status, headers=headers
    )


def status_for(error: HealthOSError) -> int:
    """Return the HTTP status of a domain error (see the module docstring)."""
    for error_class, status in ERROR_STATUS:
        if isinstance(error, error_class):
            return status
    return 400


async def _healthos_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, HealthOSError)  # noqa: S101 - registered for HealthOSError only
    status = status_for(exc)
    logger.info("request failed: %s %s (%s)", status, exc.code, type(exc).__name__)
    return problem_response(
        request,
        status=status,
        code=exc.code,
        detail=exc.message,
        extensions=exc.problem_extensions(),
    )


async def _validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
        for e in exc.errors()
    ]
    fields = ", ".join(".".join(str(part) for part in e["loc"]) for e in errors)
    return problem_response(
        request,
        status=422,
        code="invalid-request",
        detail=f"the request is not valid: check {fields or 'the body'}",
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    status = exc.status_code
    phrase = HTTPStatus(status).phrase
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    if status == 404 and detail is None:
        detail = f"no route {request.url.path}: see /docs for the API"
    return problem_response(
        request,
        status=status,
        code=_HTTP_CODES.get(status, f"http-{status}"),
        detail=detail,
        headers=dict(exc.headers) if exc.headers else None,
    )


class UnexpectedErrorMiddleware:
    """Turn an unexpected exception into a 500 problem, logging no message or data.

    Exception messages can hold PHI (SQL parameters, field values), so only the
    exception type and the traceback's frames (file, line, function; no source text or
    values) are logged, and the error is not re-raised to the server (which would log
    the message).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; answer 500 problem details if it fails before responding."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            frames = " <- ".join(
                f"{frame.filename}:{frame.lineno} in {frame.name}"
                for frame in reversed(traceback.extract_tb(exc.__traceback__))
            )
            logger.error("unexpected %s (message withheld) at %s", type(exc).__name__, frames)
            if started:
                raise
            response = problem_response(
                Request(scope),
                status=500,
                code="internal-error",
                detail="an unexpected error occurred; it has been logged",
            )
            await response(scope, receive, send)


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the HealthOS API application.

    Parameters
    ----------
    settings : Settings, optional
        Runtime settings (tokens, database URL); default :func:`get_settings`.
    engine : sqlalchemy.Engine, optional
        Database to use. By default the lifespan creates one from
        ``settings.resolved_database_url`` and disposes of it at shutdown; a given
        engine is used as is and left open (the caller owns it).

    Returns
    -------
    fastapi.FastAPI
        With ``/health`` and ``/ready`` at the root and the API under ``/api/v1``.
        ``app.state`` holds ``settings``, ``engine``, ``session_factory``, ``models``
        (the :class:`~reasoning.inference.ModelStore` of ``settings.models_dir``, loaded
        at start-up by :func:`serving.routers.models.open_store`) and
        ``model_versions`` (a list of ``{"name", "version", …}`` of the loaded models,
        shown by ``/ready``; updated by ``POST /api/v1/models/reload``).

    Examples
    --------
    >>> from fastapi.testclient import TestClient
    >>> with TestClient(create_app(Settings(), engine=engine)) as client:  # doctest: +SKIP
    ...     client.get("/ready").json()
    {'status': 'ready', 'database': 'ok', 'models': []}
    """
    settings = settings if settings is not None else get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = engine is None
        app_engine = make_engine(settings.resolved_database_url) if engine is None else engine
        app.state.engine = app_engine
        app.state.session_factory = make_session_factory(app_engine)
        app.state.models = model_routes.open_store(settings)
        app.state.model_versions = app.state.models.describe()
        try:
            yield
        finally:
            if owned:
                app_engine.dispose()

    app = FastAPI(
        title="HealthOS",
        version=health.app_version(),
        description=(
            "One live patient record, billing truth and advisory suggestions. "
            "Authenticate with `Authorization: Bearer <token>`; errors are RFC 9457 "
            "problem details."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.model_versions = []
    if engine is not None:  # usable even before the lifespan runs
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)

    app.add_exception_handler(HealthOSError, _healthos_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(UnexpectedErrorMiddleware)

    app.include_router(health.router)
    app.include_router(api_router, prefix=API_PREFIX, responses=PROBLEM_RESPONSES)
    app.include_router(model_routes.router, prefix=API_PREFIX, responses=PROBLEM_RESPONSES)
    app.include_router(finance_routes.router, prefix=API_PREFIX, responses=PROBLEM_RESPONSES)
    return app
