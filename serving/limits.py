r"""The request guard: what every request must pass before the app reads or stores it.

:class:`RequestGuard` is a pure ASGI middleware (no per-request task or copy for a
request without a body) that, in this order:

1. for the API (``/api/v1/…``), checks the bearer token before a byte of the body is read,
   when the request has a body or will be refused (the same check as the
   :data:`~serving.deps.CurrentUser` dependency: :func:`serving.deps.authenticate_connection`);
   a request without a body is left to the dependency, so unknown routes still answer 404;
2. refuses a NUL character (``%00``) in the API's URL path or query: 422 naming the
   parameter (PostgreSQL text cannot hold NUL, so it must never reach a query);
3. refuses a body over the route's limit with 413: at once when ``Content-Length`` says
   so, otherwise as soon as the streamed bytes pass it (the rest is never read). The
   limit is ``settings.max_body_bytes`` or a larger one per route
   (``max_remittance_body_bytes`` for remittance files);
4. for JSON and NDJSON bodies to the API, refuses with 422, before anything parses them,
   a body that is not UTF-8 (``json.loads`` would read UTF-16 and UTF-32 too, past this
   scan), nesting deeper than ``settings.max_json_depth`` (a cheap scan of the brackets outside
   strings), and strings holding ``\u0000`` or a lone UTF-16 surrogate (text no
   database column can store).

Every refusal is an RFC 9457 problem (:mod:`serving.problems`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import accumulate
from operator import sub
from typing import Any, Final
from urllib.parse import parse_qsl

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from healthos_core.settings import Settings
from serving.deps import authenticate_connection
from serving.problems import http_problem, problem_response

#: A JSON string (RFC 8259 §7), escapes included; used to blank strings before counting
#: brackets, so that brackets inside strings are not nesting.
_JSON_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: Bytes that are not brackets (deleted before measuring the nesting).
_NOT_BRACKETS: Final = bytes(sorted(set(range(256)) - set(b"[]{}")))
#: Opening brackets count 2, closing ones 0: the running sum minus the position is the depth.
_BRACKET_STEPS: Final = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
#: A ``\\u`` escape that is not itself escaped (preceded by an even run of backslashes).
_ESCAPE: Final = rb"(?<!\\)(?:\\\\)*\\u"
#: Escapes of text no column can store: NUL, and UTF-16 surrogates that are not a pair.
_UNSTORABLE_ESCAPE: Final = re.compile(
    _ESCAPE
    + rb"(?:(?P<nul>0000)"
    + rb"|(?P<high>[dD][89abAB][0-9a-fA-F]{2})(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    + rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\u)(?P<low>[dD][c-fC-F][0-9a-fA-F]{2}))"
)
#: NDJSON media types (one JSON value per line); ``+json`` and ``json`` subtypes are JSON.
_NDJSON_SUBTYPES: Final = frozenset({"ndjson", "x-ndjson", "fhir+ndjson"})


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """The largest body a route reads, and the setting that configures it."""

    max_bytes: int
    setting: str


class _Refusal(Exception):
    """A request the guard refuses: the problem to answer."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors


def json_depth(body: bytes, *, limit: int) -> int:
    """Return how deeply the arrays and objects of a JSON text nest, up to past ``limit``.

    Brackets inside strings are not counted, and an unclosed bracket counts (a parser
    would recurse into it before finding the text malformed). The scan runs at C speed:
    strings are blanked by one regular expression and the depth is a running sum.

    Parameters
    ----------
    body : bytes
        A JSON text, or NDJSON (one text per line), possibly malformed.
    limit : int
        The caller's limit: a text with at most ``limit`` opening brackets is not
        scanned further (its depth is at most that).

    Returns
    -------
    int
        The deepest nesting (0 for a scalar), or the number of opening brackets when
        that is at most ``limit``.
    """
    opens = body.count(b"[") + body.count(b"{")
    if opens <= limit:
        return opens
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    steps = brackets.translate(_BRACKET_STEPS)
    return max(map(sub, accumulate(steps), range(1, len(steps) + 1)), default=0)


def unstorable_text(body: bytes) -> tuple[int, str] | None:
    r"""Find a JSON string escape of text no database column can store.

    Parameters
    ----------
    body : bytes
        A JSON or NDJSON text.

    Returns
    -------
    tuple of (int, str) or None
        The byte offset of the first ``\u0000`` or unpaired ``\uD800``–``\uDFFF``
        escape and what it is (``"a NUL character (\u0000)"``, ``"an unpaired UTF-16
        surrogate"``), or ``None``.
    """
    if b"\\u" not in body:
        return None
    match = _UNSTORABLE_ESCAPE.search(body)
    if match is None:
        return None
    what = "a NUL character (\\u0000)" if match["nul"] else "an unpaired UTF-16 surrogate"
    return match.end() - 6, what


def _line_column(body: bytes, offset: int) -> str:
    line = body.count(b"\n", 0, offset) + 1
    column = offset - (body.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line} column {column}"


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the body is JSON or NDJSON (``application/json``, ``…+json``, ``…ndjson``)."""
    for name, value in headers:
        if name == b"content-type":
            media = value.decode("latin-1").split(";", 1)[0].strip().lower()
            maintype, _, subtype = media.partition("/")
            return maintype == "application" and (
                subtype == "json" or subtype.endswith("+json") or subtype in _NDJSON_SUBTYPES
            )
    return False


def _nul_in_url(scope: Scope) -> _Refusal | None:
    """Refuse a NUL character in the URL path or a query parameter (name or value)."""
    if "\x00" in scope["path"]:
        return _Refusal(
            422,
            "invalid-request",
            "the URL path holds a NUL character (%00): no id or name can contain one",
            [{"loc": ["path"], "msg": "NUL character (%00) not allowed", "type": "string_nul"}],
        )
    query: bytes = scope["query_string"]
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            shown = name.replace("\x00", "%00")[:64]
            return _Refusal(
                422,
                "invalid-request",
                f"the query parameter {shown!r} holds a NUL character (%00): no text field "
                "can contain one",
                [
                    {
                        "loc": ["query", shown],
                        "msg": "NUL character (%00) not allowed",
                        "type": "string_nul",
                    }
                ],
            )
    return None


class RequestGuard:
    """Pure ASGI middleware: authentication before the body, NUL, size and JSON limits.

    See the module docstring for what it checks and in which order.

    Parameters
    ----------
    app : ASGI app
        The application to guard.
    settings : Settings
        Tokens (``api_tokens``) and limits (``max_body_bytes``, ``max_json_depth``).
    api_prefix : str
        Requests under this path are API requests (authenticated, NUL- and JSON-checked).
    route_limits : mapping of str to BodyLimit, optional
        Body limits of particular API paths (exact match), instead of
        ``settings.max_body_bytes``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        api_prefix: str,
        route_limits: Mapping[str, BodyLimit] | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.api_prefix = api_prefix.rstrip("/") + "/"
        self.default_limit = BodyLimit(settings.max_body_bytes, "HEALTHOS_MAX_BODY_BYTES")
        self.route_limits = dict(route_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then run the app with the (re-played) body, or refuse it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: int | None = None
        streamed = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    streamed = True
            elif name == b"transfer-encoding":
                streamed = True
        has_body = streamed or bool(length)
        path: str = scope["path"]
        api = path.startswith(self.api_prefix)
        if not has_body and not api:
            await self.app(scope, receive, send)
            return
        try:
            refusal = _nul_in_url(scope) if api else None
            if api and (has_body or refusal is not None):
                await authenticate_connection(HTTPConnection(scope), self.settings)
            if refusal is not None:
                raise refusal
            if not has_body:
                await self.app(scope, receive, send)
                return
            limit = self.route_limits.get(path, self.default_limit)
            if length is not None and length > limit.max_bytes:
                raise self._too_large(limit)
            body = await self._read(receive, limit)
            if body is None:
                return  # the client went away
            if api and _is_json(scope["headers"]):
                self._check_json(body)
        except HTTPException as exc:
            await http_problem(Request(scope), exc)(scope, receive, send)
            return
        except _Refusal as refusal:
            response = problem_response(
                Request(scope),
                status=refusal.status,
                code=refusal.code,
                detail=refusal.detail,
                errors=refusal.errors,
            )
            await response(scope, receive, send)
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    def _too_large(limit: BodyLimit) -> _Refusal:
        return _Refusal(
            413,
            "content-too-large",
            f"the request body is over this route's limit of {limit.max_bytes} bytes "
            f"({limit.setting}): send less at a time",
        )

    async def _read(self, receive: Receive, limit: BodyLimit) -> bytes | None:
        """Read the whole body, refusing it as soon as it passes the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit.max_bytes:
                raise self._too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _check_json(self, body: bytes) -> None:
        """Refuse JSON not in UTF-8, nested too deeply, or holding text no column can store."""
        if b"\x00" in body:  # UTF-16/32 (json.loads reads them) or a raw NUL: never UTF-8 JSON
            raise _Refusal(
                422,
                "invalid-request",
                "the JSON body is not UTF-8 text (RFC 8259 §8.1) or holds a NUL byte",
                [{"loc": ["body"], "msg": "not UTF-8 JSON", "type": "json_encoding"}],
            )
        depth_limit = self.settings.max_json_depth
        if json_depth(body, limit=depth_limit) > depth_limit:
            raise _Refusal(
                422,
                "invalid-request",
                f"the JSON body is nested deeper than {depth_limit} levels of arrays and "
                "objects (HEALTHOS_MAX_JSON_DEPTH)",
                [{"loc": ["body"], "msg": "JSON nested too deeply", "type": "json_depth"}],
            )
        found = unstorable_text(body)
        if found is not None:
            offset, what = found
            raise _Refusal(
                422,
                "invalid-request",
                f"a JSON string holds {what} at {_line_column(body, offset)}: "
                "no text field can store it",
                [{"loc": ["body", offset], "msg": f"{what} not allowed", "type": "string_nul"}],
            )
