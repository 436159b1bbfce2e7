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

A database that cannot be reached or is busy (a restart, a lost connection, a pool
timeout, SQLite "database is locked") is 503 with ``Retry-After``: nothing was written.

Neither tokens nor request data are logged: errors are logged by type and code only.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
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
from healthos_core.wiring import wired
from reasoning.rescoring import inline_rescoring
from serving.deps import get_current_user, known_query_parameters
from serving.fhir import router as fhir_router
from serving.limits import BodyLimit, RequestGuard
from serving.page import mount_page
from serving.page_cache import PageCache
from serving.problems import PROBLEM_MEDIA_TYPE, ProblemResponse, http_problem, problem_response
from serving.routers import api_router, cds_hooks, health
from serving.routers import briefing as briefing_routes
from serving.routers import finance as finance_routes
from serving.routers import kpis as kpi_routes
from serving.routers import models as model_routes
from serving.schemas.common import ProblemDetails

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
FHIR_PREFIX = "/fhir"

#: Status of each domain error class; the first match in this order wins.
ERROR_STATUS: tuple[tuple[type[HealthOSError], int], ...] = (
    (NotFoundError, 404),
    (InvalidInputError, 422),
    (ConflictError, 409),
    (PermissionDeniedError, 403),
)

#: Problem responses documented on every ``/api/v1`` route (all served as
#: ``application/problem+json``: see :func:`document_problems`).
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ProblemDetails,
        "description": "The body cannot be parsed, or a rule refused the request (its code "
        "says which, e.g. no-price)",
    },
    401: {"model": ProblemDetails, "description": "Missing or invalid bearer token"},
    403: {"model": ProblemDetails, "description": "The token's role may not do this"},
    404: {"model": ProblemDetails, "description": "No such record"},
    422: {
        "model": ProblemDetails,
        "description": "Invalid request or input (fields in errors; NUL characters, JSON "
        "nested too deeply)",
    },
    503: {
        "model": ProblemDetails,
        "description": "The database is unavailable or busy; nothing was written (Retry-After)",
    },
}
#: Documented on every operation that writes (a domain ConflictError).
CONFLICT_RESPONSE: dict[str, Any] = {
    "description": "The record's state does not allow this now (e.g. already decided)"
}
#: Documented on every operation that takes a request body.
TOO_LARGE_RESPONSE: dict[str, Any] = {
    "description": "The body is larger than the route's limit (HEALTHOS_MAX_BODY_BYTES, "
    "HEALTHOS_MAX_REMITTANCE_BODY_BYTES)"
}


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


def allowed_methods(app: FastAPI, path: str) -> str | None:
    """Return the ``Allow`` header of a path: the methods its OpenAPI path documents.

    Starlette's 405 lists only the methods of the first route that matched the path
    (``GET`` for ``/claims``, which also takes ``POST``); RFC 9110 §15.5.6 wants them
    all. Of the documented paths that match, the most specific (fewest parameters)
    wins: ``/authorizations/expire`` rather than ``/authorizations/{authorization_id}``.

    Parameters
    ----------
    app : fastapi.FastAPI
        The app (its OpenAPI document).
    path : str
        The request path.

    Returns
    -------
    str or None
        E.g. ``"GET, HEAD, POST"`` (``HEAD`` wherever ``GET`` is), or ``None`` when no
        documented path matches.
    """
    matches: list[tuple[int, set[str]]] = []
    for template, operations in app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            matches.append((template.count("{"), {m.upper() for m in operations}))
    if not matches:
        return None
    methods = min(matches, key=lambda match: match[0])[1]
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    if exc.status_code == 405:
        allow = allowed_methods(request.app, request.url.path)
        if allow is not None:
            exc.headers = {**(exc.headers or {}), "Allow": allow}
    return http_problem(request, exc)


#: Seconds a client should wait before retrying when the database is unreachable.
DATABASE_RETRY_AFTER = 2


async def _database_unavailable(request: Request, exc: Exception) -> ProblemResponse:
    """Answer 503 with ``Retry-After`` when the database cannot be reached or is busy.

    A lost or refused connection (a database restart), a pool timeout, or a transient
    ``OperationalError`` (SQLite "database is locked", a PostgreSQL deadlock or
    administrator shutdown): the transaction was rolled back, nothing was written, and
    the same request may be sent again (RFC 9110 §15.6.4, §10.2.3).
    """
    logger.warning("database unavailable: %s (message withheld)", type(exc).__name__)
    return problem_response(
        request,
        status=503,
        code="database-unavailable",
        detail="the database is unavailable or busy; nothing was written, send the request "
        f"again after {DATABASE_RETRY_AFTER} seconds",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
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


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Make an OpenAPI document say what the server answers on errors.

    Every error response (status 400 and up) is documented as
    ``application/problem+json`` with the :class:`ProblemDetails` schema (FastAPI's
    default for a ``model`` is ``application/json``, and its 422 is
    ``HTTPValidationError``; the handlers here serve problem details for both), and
    every operation that takes a body documents 413 (:mod:`serving.limits`), and every
    one that writes documents 409 (a domain :class:`~healthos_core.errors.ConflictError`).

    Parameters
    ----------
    schema : dict
        The OpenAPI document, changed in place (doing it twice changes nothing).

    Returns
    -------
    dict
        The same document.
    """
    problem = {"$ref": "#/components/schemas/ProblemDetails"}
    for path, operations in schema.get("paths", {}).items():
        if path == FHIR_PREFIX or path.startswith(FHIR_PREFIX + "/"):
            continue  # FHIR routes document their OperationOutcomes themselves
        for method, operation in operations.items():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if "requestBody" in operation and "413" not in responses:
                responses["413"] = dict(TOO_LARGE_RESPONSE)
            if method != "get" and "409" not in responses:
                responses["409"] = dict(CONFLICT_RESPONSE)
            for status, response in responses.items():
                if not status.isdigit() or int(status) < 400:
                    continue
                content = response.get("content", {})
                media = content.get(PROBLEM_MEDIA_TYPE) or content.get("application/json") or {}
                body_schema = media.get("schema", problem)
                if status == "422" or "HTTPValidationError" in str(body_schema):
                    body_schema = problem
                response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": body_schema}}
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):  # in this order: one uses the other
        if name in components and f'"#/components/schemas/{name}"' not in json.dumps(schema):
            del components[name]
    return schema


class HealthOSAPI(FastAPI):
    """FastAPI whose OpenAPI document describes the problem details it serves."""

    def openapi(self) -> dict[str, Any]:
        """Return the OpenAPI document, passed once through :func:`document_problems`."""
        schema = super().openapi()
        if getattr(self, "_problems_documented", None) is not schema:
            document_problems(schema)
            self._problems_documented = schema
        return schema


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
        With ``/health`` and ``/ready`` at the root, the API under ``/api/v1`` and the
        command center's page at ``/`` (:func:`serving.page.mount_page`).
        Its lifespan wires the live path (:func:`healthos_core.wiring.wired`: charge
        capture and the outbox on the default bus, remittance posting) and unwires it at
        shutdown unless it was wired before, and runs the outbox's rescoring consumer
        in a thread while the app runs when ``settings.rescore`` is ``"inline"``
        (``app.state.rescoring``; :func:`reasoning.rescoring.inline_rescoring`).
        ``app.state`` holds ``settings``, ``wiring`` (while it runs), ``engine``,
        ``session_factory``, ``page_cache`` (polled pages kept while their data is
        unchanged, :mod:`serving.page_cache`), ``models``
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
        app.state.page_cache = PageCache()
        app.state.models = model_routes.open_store(settings)
        app.state.model_versions = app.state.models.describe()
        # What start-up loaded (modules, models) lives as long as the process: move it out
        # of the collector's generations, so a full collection no longer walks it and
        # stalls a request for tens of milliseconds (the p99 in bench/README.md). Python
        # docs, gc.freeze().
        gc.collect()
        gc.freeze()
        # The live path: charge capture and the outbox on the default bus, remittance
        # posting for imported ClaimResponses. Undone at shutdown unless it was wired
        # before. The outbox's consumer runs in this process if settings.rescore is
        # "inline" (docs/rescoring.md) and stops at shutdown.
        with wired() as wiring, inline_rescoring(settings, app_engine) as rescoring:
            app.state.wiring = wiring
            app.state.rescoring = rescoring
            try:
                yield
            finally:
                gc.unfreeze()  # an app made and stopped in a longer process is collected
                if owned:
                    app_engine.dispose()

    app = HealthOSAPI(
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
    for database_error in (OperationalError, InterfaceError, PoolTimeoutError):
        app.add_exception_handler(database_error, _database_unavailable)
    remittances = BodyLimit(
        settings.max_remittance_body_bytes, "HEALTHOS_MAX_REMITTANCE_BODY_BYTES"
    )
    app.add_middleware(
        RequestGuard,
        settings=settings,
        api_prefix=API_PREFIX,
        route_limits={
            f"{API_PREFIX}/remittances": remittances,
            FHIR_PREFIX: BodyLimit(
                settings.max_fhir_bundle_bytes, "HEALTHOS_MAX_FHIR_BUNDLE_BYTES"
            ),
        },
    )
    app.add_middleware(UnexpectedErrorMiddleware)  # added last: the outermost

    strict_query = [Depends(known_query_parameters)]
    # On the API the token is checked first (401 before 422); the result is cached for
    # the route's own CurrentUser.
    api_dependencies = [Depends(get_current_user), *strict_query]
    app.include_router(health.router, dependencies=strict_query)
    app.include_router(cds_hooks.router, responses=PROBLEM_RESPONSES, dependencies=strict_query)
    for router in (api_router, model_routes.router, finance_routes.router, briefing_routes.router):
        app.include_router(
            router, prefix=API_PREFIX, responses=PROBLEM_RESPONSES, dependencies=api_dependencies
        )
    app.include_router(
        kpi_routes.router,
        prefix=API_PREFIX,
        responses=PROBLEM_RESPONSES,
        dependencies=api_dependencies,
    )
    # The briefing's style sheet holds no data: a page's <link> loads it without a token.
    app.include_router(
        briefing_routes.style_router,
        prefix=API_PREFIX,
        responses=PROBLEM_RESPONSES,
        dependencies=strict_query,
    )
    app.include_router(fhir_router)  # at /fhir; errors as OperationOutcome (serving.fhir)
    mount_page(app)  # the command center at / and its files at /static (serving.page)
    return app
