"""FHIR responses and errors: every error on ``/fhir`` is an OperationOutcome.

:class:`FhirRoute` is the route class of the FHIR router: whatever a route or its
dependencies raise (a domain error, a refused token, a request that does not validate,
a database that cannot be reached) leaves as an ``OperationOutcome`` served as
``application/fhir+json`` with the status of :data:`ERROR_STATUS`, never a 5xx for any
input (an unexpected error is a 500 OperationOutcome that names no data).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from healthos_core.errors import (
    ConflictError,
    FhirValidationError,
    HealthOSError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)

logger = logging.getLogger(__name__)

FHIR_MEDIA_TYPE: Final = "application/fhir+json"
#: Seconds a client should wait when the database is unavailable (as the rest of the API).
RETRY_AFTER: Final = 2


class FhirResponse(JSONResponse):
    """A FHIR resource as ``application/fhir+json``."""

    media_type = FHIR_MEDIA_TYPE


#: Status of each domain error on FHIR routes; the first match wins. A search or
#: request that cannot be understood is 400; a resource that fails validation 422.
ERROR_STATUS: Final[tuple[tuple[type[HealthOSError], int], ...]] = (
    (NotFoundError, 404),
    (FhirValidationError, 422),
    (PermissionDeniedError, 403),
    (ConflictError, 409),
    (InvalidInputError, 400),
)

_ISSUE_CODE: Final[dict[int, str]] = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    412: "conflict",
    413: "too-long",
    422: "processing",
    500: "exception",
    503: "transient",
}


def status_of(error: HealthOSError) -> int:
    """Return the HTTP status of a domain error on a FHIR route (400 by default)."""
    for error_class, status in ERROR_STATUS:
        if isinstance(error, error_class):
            return status
    return 400


def operation_outcome(status: int, diagnostics: str, *, severity: str = "error") -> dict[str, Any]:
    """Return an OperationOutcome with one issue.

    Examples
    --------
    >>> operation_outcome(404, "Patient/x does not exist")["issue"][0]["code"]
    'not-found'
    """
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": severity,
                "code": _ISSUE_CODE.get(status, "processing"),
                "diagnostics": diagnostics,
            }
        ],
    }


def outcome_response(
    status: int, diagnostics: str, headers: dict[str, str] | None = None
) -> FhirResponse:
    """Return an OperationOutcome response with ``status``."""
    return FhirResponse(operation_outcome(status, diagnostics), status_code=status, headers=headers)


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', '')}")
    return "the request is not valid: " + "; ".join(parts)


def response_for(exc: Exception) -> FhirResponse | None:
    """Return the OperationOutcome response of an exception (``None``: not one we map)."""
    if isinstance(exc, HealthOSError):
        status = status_of(exc)
        logger.info("FHIR request failed: %s %s (%s)", status, exc.code, type(exc).__name__)
        return outcome_response(status, exc.message)
    if isinstance(exc, RequestValidationError):
        return outcome_response(400, _validation_detail(exc))
    if isinstance(exc, StarletteHTTPException):
        headers = dict(exc.headers or {})
        return outcome_response(exc.status_code, str(exc.detail), headers)
    if isinstance(exc, (IntegrityError, DataError)):
        logger.info("FHIR write refused by the database: %s", type(exc).__name__)
        return outcome_response(
            422, "the database refused the data (a value too long or not storable)"
        )
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeoutError)):
        logger.warning("database unavailable: %s (message withheld)", type(exc).__name__)
        return outcome_response(
            503,
            "the database is unavailable or busy; nothing was written, send the request "
            f"again after {RETRY_AFTER} seconds",
            {"Retry-After": str(RETRY_AFTER)},
        )
    return None


class FhirRoute(APIRoute):
    """An API route whose errors are OperationOutcomes (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler: map every exception to an OperationOutcome."""
        handler = super().get_route_handler()

        async def fhir_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                response = response_for(exc)
                if response is None:
                    logger.error(
                        "unexpected %s on a FHIR route (message withheld)", type(exc).__name__
                    )
                    return outcome_response(500, "an unexpected error occurred; it has been logged")
                return response

        return fhir_handler


def _content(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {FHIR_MEDIA_TYPE: {"schema": {"type": "object"}}},
    }


#: Error responses of every FHIR operation (all OperationOutcomes).
ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    400: _content("The request cannot be understood (OperationOutcome)"),
    401: _content("Missing or invalid bearer token (OperationOutcome)"),
    403: _content("The token's role may not read or write this type (OperationOutcome)"),
    404: _content("Unknown resource type or id (OperationOutcome)"),
    422: _content("The resource does not validate (OperationOutcome)"),
    503: _content("The database is unavailable; nothing was written (OperationOutcome)"),
}
#: Error responses of writes.
WRITE_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    409: _content("Conflict: a resource written twice in one request (OperationOutcome)"),
    412: _content("If-Match does not name the current version (OperationOutcome)"),
    413: {
        "description": "The body is over the route's limit (problem details)",
        "content": {"application/problem+json": {"schema": {"type": "object"}}},
    },
}


def ok_response(description: str) -> dict[str, Any]:
    """Return the OpenAPI response of a route serving a FHIR resource."""
    return _content(description)
