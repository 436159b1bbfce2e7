"""RFC 9457 problem details: the one shape of every error response of the API.

A problem has ``type``, ``title``, ``status``, ``detail``, ``instance`` (the request
path, without the query string) and ``code`` (a stable machine-readable code; ``type``
is :data:`PROBLEM_TYPE_PREFIX` plus the code). The exception handlers of
:mod:`serving.main` and the request guard of :mod:`serving.limits` build their
responses here.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Final

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.schemas.common import ProblemDetails

#: Problem ``type`` URIs are this prefix plus the ``code``. They identify the problem
#: type and are not meant to be dereferenced (RFC 9457 §3.1.1 allows tag URIs).
PROBLEM_TYPE_PREFIX: Final = "tag:healthos.org,2025:problem:"
PROBLEM_MEDIA_TYPE: Final = "application/problem+json"

#: Problem code of each HTTP status raised as an ``HTTPException``.
HTTP_CODES: Final[dict[int, str]] = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "content-too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    503: "service-unavailable",
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


def http_problem(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
    """Return the problem response of an ``HTTPException`` (401, 404, 413, 415 …).

    Parameters
    ----------
    request : fastapi.Request
        The request.
    exc : starlette.exceptions.HTTPException
        The exception; its ``detail`` (unless just the reason phrase) and ``headers``
        are kept, and its status gives the code (:data:`HTTP_CODES`, else ``http-<status>``).

    Returns
    -------
    ProblemResponse
    """
    status = exc.status_code
    phrase = HTTPStatus(status).phrase
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    if status == 404 and detail is None:
        detail = f"no route {request.url.path}: see /docs for the API"
    return problem_response(
        request,
        status=status,
        code=HTTP_CODES.get(status, f"http-{status}"),
        detail=detail,
        headers=dict(exc.headers) if exc.headers else None,
    )
