"""Shapes shared by every route: problem details (RFC 9457) and service status."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final, Literal

from fastapi import Query
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

#: The largest ``offset`` a list route accepts: past any real table, and far inside the
#: 64-bit integer a database takes for ``OFFSET`` (a larger one was a 500, issue 9).
MAX_OFFSET: Final = 10**9


def iso_text(value: object) -> object:
    """Refuse a JSON number or boolean where the contract says an ISO 8601 string.

    pydantic's lax mode reads a number as a Unix timestamp (``0`` is 1970-01-01), which
    the OpenAPI document (``type: string``) does not allow (issue 9 item 8).

    Raises
    ------
    ValueError
        For a number or a boolean (a 422 naming the field).
    """
    if isinstance(value, bool | int | float):
        raise ValueError("must be an ISO 8601 string; a number is not a date")
    return value


#: A date in a request body: an ISO 8601 string (``2025-03-01``), never a number.
IsoDate = Annotated[dt.date, BeforeValidator(iso_text)]
#: A date-time with its zone in a request body: an ISO 8601 string, never a number.
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(iso_text)]

#: The ``offset`` query parameter of every list route: rows to skip, 0 to :data:`MAX_OFFSET`.
Offset = Annotated[
    int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip before the page (at most 10^9)")
]


class ProblemFieldError(BaseModel):
    """One invalid request field (the input value itself is never echoed)."""

    loc: list[str | int] = Field(description="Where the field is: ('query', 'limit') …")
    msg: str
    type: str


class ProblemDetails(BaseModel):
    """An error, as RFC 9457 problem details (``application/problem+json``).

    ``code`` is a stable machine-readable code (``not-found``, ``invalid-input``,
    ``conflict``, ``forbidden``, ``unauthorized`` …); ``errors`` lists invalid
    request fields on 422 responses to malformed requests.
    """

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", description="URI identifying the problem type")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="The request path")
    code: str
    errors: list[ProblemFieldError] | None = None


class HealthPublic(BaseModel):
    """Liveness: the process is up."""

    status: Literal["ok"] = "ok"
    version: str


class ModelVersionPublic(BaseModel):
    """A loaded ML model: registered name and version."""

    name: str
    version: str


class ReadyPublic(BaseModel):
    """Readiness: the database answers and the listed models are loaded."""

    status: Literal["ready"] = "ready"
    database: Literal["ok"] = "ok"
    models: list[ModelVersionPublic] = Field(default_factory=list)
