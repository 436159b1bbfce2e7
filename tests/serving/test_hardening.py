"""Hostile input never reaches the database or a 5xx; bodies are bounded; auth before body.

Issue 9 items 2, 3 and 8: NUL characters in paths, queries and JSON strings, offsets past
a 64-bit integer, deeply nested JSON, oversized and unauthenticated bodies, and an OpenAPI
document that says what the server really answers. Every test that takes ``client`` runs
on SQLite and on PostgreSQL (the ``engine`` fixture).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.db import session_scope
from healthos_core.settings import Settings
from serving.main import create_app
from tests.conftest import table_counts
from tests.factories import make_patient

TOKENS = {
    "tok-clinician-0001": "clinician",
    "tok-finance-0001": "finance",
    "tok-admin-0001": "admin",
}
SETTINGS = Settings(environment="test", api_tokens=TOKENS)  # type: ignore[arg-type]
PROBLEM = "application/problem+json"
API = "/api/v1"
MIB = 1024 * 1024
#: The defaults of ``max_body_bytes`` and ``max_json_depth`` in the settings.
MAX_BODY = MIB
MAX_DEPTH = 64


def auth(role: str) -> dict[str, str]:
    token = next(t for t, r in TOKENS.items() if r == role)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    return create_app(SETTINGS, engine=engine)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def patient(session_factory: sessionmaker[Session]) -> str:
    with session_scope(session_factory) as session:
        make_patient(session, id="pat-1")
    return "pat-1"


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def error_locs(body: dict[str, Any]) -> list[list[Any]]:
    return [e["loc"] for e in body.get("errors") or []]


# --- NUL characters (PostgreSQL text cannot hold them: DataError, a 500) -------------------

NUL_PATHS = [
    ("clinician", f"{API}/patients/pat%001"),
    ("clinician", f"{API}/encounters/enc%00"),
    ("clinician", f"{API}/suggestions/s%00"),
    ("finance", f"{API}/claims/c%00"),
    ("finance", f"{API}/claims/c%00/history"),
    ("finance", f"{API}/authorizations/a%00"),
    ("finance", f"{API}/accounts/a%00"),
    ("finance", f"{API}/patients/p%00/statement"),
]


@pytest.mark.parametrize(("role", "path"), NUL_PATHS)
def test_nul_in_the_path_is_422_problem(
    client: TestClient, engine: Engine, role: str, path: str
) -> None:
    body = assert_problem(client.get(path, headers=auth(role)), 422)

    assert body["code"] == "invalid-request"
    assert error_locs(body) == [["path"]]
    assert "NUL" in body["detail"]


NUL_QUERIES = [
    ("clinician", "/patients", "identifier"),
    ("clinician", "/encounters", "patient"),
    ("clinician", "/suggestions", "kind"),
    ("finance", "/claims", "payer"),
    ("finance", "/authorizations", "payer"),
    ("finance", "/coverage", "patient"),
    ("finance", "/finance/worklist", "payer"),
]


@pytest.mark.parametrize(("role", "route", "name"), NUL_QUERIES)
def test_nul_in_a_query_parameter_is_422_problem_naming_it(
    client: TestClient, role: str, route: str, name: str
) -> None:
    response = client.get(f"{API}{route}", params={name: "x\x00y"}, headers=auth(role))

    body = assert_problem(response, 422)
    assert body["code"] == "invalid-request"
    assert error_locs(body) == [["query", name]]
    assert name in body["detail"]


NUL_BODIES = [
    ("finance", "/claims", {"encounter_id": "enc\x00"}),
    ("finance", "/claims", {"encounter\x00_id": "enc-1"}),
    ("finance", "/authorizations", {"patient_id": "pat-1", "payer_id": "payer\x00"}),
    ("finance", "/patients/pat-1/payments", {"amount": "10.00", "description": "cash\x00"}),
    ("clinician", "/suggestions/s-1/dismiss", {"reason": "done\x00"}),
    ("finance", "/finance/worklist/s-1/actions", {"outcome": "fixed", "note": "n\x00"}),
    (
        "clinician",
        "/patients",
        {"given": "A\x00", "family": "B", "gender": "male", "birth_date": "1990-01-01"},
    ),
    (
        "clinician",
        "/encounters/enc-1/procedures",
        {"code": "x\x00", "performed_at": "2026-03-02T11:00:00Z"},
    ),
]


@pytest.mark.parametrize(("role", "route", "payload"), NUL_BODIES)
def test_nul_in_a_json_string_is_422_problem_and_writes_nothing(
    client: TestClient, engine: Engine, patient: str, role: str, route: str, payload: Any
) -> None:
    before = table_counts(engine)

    response = client.post(f"{API}{route}", json=payload, headers=auth(role))

    body = assert_problem(response, 422)
    assert body["code"] == "invalid-request"
    assert "NUL" in body["detail"]
    assert error_locs(body)[0][0] == "body"
    assert table_counts(engine) == before


def test_nul_in_an_ndjson_remittance_is_422_problem(client: TestClient) -> None:
    ndjson = '{"resourceType": "ClaimResponse", "id": "cr\\u00001"}\n'

    response = client.post(
        f"{API}/remittances",
        content=ndjson.encode(),
        headers={**auth("finance"), "Content-Type": "application/fhir+ndjson"},
    )

    assert "NUL" in assert_problem(response, 422)["detail"]


def test_an_escaped_backslash_before_u0000_is_not_a_nul(client: TestClient) -> None:
    # JSON "enc\\u0000" is the text enc\u0000 (a backslash, then "u0000"): no NUL.
    response = client.post(
        f"{API}/claims",
        content=b'{"encounter_id": "enc\\\\u0000"}',
        headers={**auth("finance"), "Content-Type": "application/json"},
    )

    assert assert_problem(response, 404)["code"] == "not-found"


# --- offsets past a 64-bit integer (OverflowError, a 500) ------------------------------

LIST_ROUTES = [
    ("clinician", "/patients"),
    ("clinician", "/encounters"),
    ("clinician", "/suggestions"),
    ("finance", "/claims"),
    ("finance", "/authorizations"),
    ("finance", "/finance/worklist"),
]


@pytest.mark.parametrize(("role", "route"), LIST_ROUTES)
def test_offset_past_the_documented_maximum_is_422_problem(
    client: TestClient, role: str, route: str
) -> None:
    response = client.get(f"{API}{route}", params={"offset": 2**63}, headers=auth(role))

    body = assert_problem(response, 422)
    assert ["query", "offset"] in error_locs(body)


@pytest.mark.parametrize(("role", "route"), LIST_ROUTES)
def test_offset_at_the_documented_maximum_is_an_empty_page(
    client: TestClient, role: str, route: str
) -> None:
    spec = client.get("/openapi.json").json()
    (param,) = [p for p in spec["paths"][API + route]["get"]["parameters"] if p["name"] == "offset"]
    maximum = param["schema"]["maximum"]

    response = client.get(f"{API}{route}", params={"offset": maximum}, headers=auth(role))

    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


# --- deeply nested JSON (RecursionError, a 500) -----------------------------------------


@pytest.mark.parametrize(
    ("route", "content_type"),
    [
        ("/remittances", "application/fhir+json"),
        ("/remittances", "application/fhir+ndjson"),
        ("/claims", "application/json"),
    ],
)
def test_json_nested_100000_deep_is_422_problem_naming_the_limit(
    client: TestClient, route: str, content_type: str
) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000

    response = client.post(
        f"{API}{route}", content=deep, headers={**auth("finance"), "Content-Type": content_type}
    )

    body = assert_problem(response, 422)
    assert "nested" in body["detail"]
    assert str(MAX_DEPTH) in body["detail"]


def test_unclosed_brackets_count_as_nesting(client: TestClient) -> None:
    response = client.post(
        f"{API}/remittances",
        content=b'{"a": "[[[", "b": ' + b"{" * 50_000,
        headers={**auth("finance"), "Content-Type": "application/fhir+json"},
    )

    assert "nested" in assert_problem(response, 422)["detail"]


def test_brackets_inside_strings_are_not_nesting(client: TestClient) -> None:
    reason = "[{" * 500  # 1000 brackets, all inside one string
    response = client.post(
        f"{API}/claims",
        json={"encounter_id": "enc-1", "claim_type": reason},
        headers=auth("finance"),
    )

    body = assert_problem(response, 422)
    assert ["body", "claim_type"] in error_locs(body)  # the model's own validation ran


# --- body limits and authentication before the body -------------------------------------


async def _call(
    app: FastAPI, path: str, headers: dict[str, str], chunks: Iterator[bytes]
) -> tuple[int, dict[str, str], bytes, int]:
    """Call the app as an ASGI server would; return status, headers, body, bytes read."""
    consumed = 0
    pending = next(chunks, None)

    async def receive() -> dict[str, Any]:
        nonlocal consumed, pending
        if pending is None:
            return {"type": "http.disconnect"}
        chunk, pending = pending, next(chunks, None)
        consumed += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": pending is not None}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], response_headers, body, consumed


def body_chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    chunk = b" " * size
    for _ in range(total // size):
        yield chunk


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_unauthenticated_big_body_is_401_before_a_byte_is_read(
    app: FastAPI, declared: bool
) -> None:
    total = 8 * MIB  # also over the body limit: the 401 comes first
    headers = {"Content-Type": "application/json"}
    if declared:
        headers["Content-Length"] = str(total)
    else:
        headers["Transfer-Encoding"] = "chunked"

    status, response_headers, body, consumed = asyncio.run(
        _call(app, f"{API}/claims", headers, body_chunks(total))
    )

    assert (status, response_headers["content-type"]) == (401, PROBLEM)
    assert response_headers["www-authenticate"] == "Bearer"
    assert json.loads(body)["code"] == "unauthorized"
    assert consumed == 0


def test_body_over_the_declared_limit_is_413_before_a_byte_is_read(app: FastAPI) -> None:
    total = MAX_BODY + 64 * 1024
    headers = {**auth("finance"), "Content-Type": "application/json"}
    headers["Content-Length"] = str(total)

    status, response_headers, body, consumed = asyncio.run(
        _call(app, f"{API}/claims", headers, body_chunks(total))
    )

    assert (status, response_headers["content-type"]) == (413, PROBLEM)
    problem = json.loads(body)
    assert problem["code"] == "content-too-large"
    assert str(MAX_BODY) in problem["detail"]
    assert consumed == 0


def test_streamed_body_over_the_limit_is_413_and_not_read_to_the_end(app: FastAPI) -> None:
    total = 8 * MIB
    headers = {**auth("finance"), "Content-Type": "application/json"}
    headers["Transfer-Encoding"] = "chunked"

    status, response_headers, _, consumed = asyncio.run(
        _call(app, f"{API}/claims", headers, body_chunks(total))
    )

    assert (status, response_headers["content-type"]) == (413, PROBLEM)
    assert consumed <= MAX_BODY + 64 * 1024


SMALL_LIMITS = Settings(
    environment="test",
    api_tokens=TOKENS,  # type: ignore[arg-type]
    max_body_bytes=2048,
    max_remittance_body_bytes=64 * 1024,
)


@pytest.fixture
def small_client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(SMALL_LIMITS, engine=engine)) as test_client:
        yield test_client


def padded(resource_type: str, size: int) -> bytes:
    document = {"resourceType": resource_type, "id": "x", "text": {"div": "p" * size}}
    return json.dumps(document).encode()


def test_body_over_the_configured_limit_is_413_problem(small_client: TestClient) -> None:
    response = small_client.post(
        f"{API}/claims",
        content=padded("Claim", 4096),
        headers={**auth("finance"), "Content-Type": "application/json"},
    )

    body = assert_problem(response, 413)
    assert (body["code"], body["instance"]) == ("content-too-large", f"{API}/claims")
    assert "2048" in body["detail"]


def test_remittances_have_their_own_larger_limit(small_client: TestClient) -> None:
    headers = {**auth("finance"), "Content-Type": "application/fhir+json"}

    within = small_client.post(
        f"{API}/remittances", content=padded("Patient", 4096), headers=headers
    )
    over = small_client.post(
        f"{API}/remittances", content=padded("Patient", 100 * 1024), headers=headers
    )

    assert "ClaimResponse" in assert_problem(within, 422)["detail"]  # read and judged
    assert str(64 * 1024) in assert_problem(over, 413)["detail"]


# --- the API contract --------------------------------------------------------------------


def api_operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def _error_media_type(path: str, status: str) -> str:
    """Problem details everywhere; OperationOutcomes on FHIR routes (SPEC §7), where only
    the request guard's 413 is problem details."""
    if path.startswith("/fhir") and status != "413":
        return "application/fhir+json"
    return PROBLEM


def test_every_error_response_is_documented_as_problem_json(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    wrong = [
        (method, path, status, sorted(response.get("content", {})))
        for path, method, operation in api_operations(spec)
        for status, response in operation["responses"].items()
        if int(status) >= 400
        and set(response.get("content", {})) != {_error_media_type(path, status)}
    ]
    assert wrong == []


def test_validation_errors_are_documented_as_problem_details(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    schemas = {
        operation["responses"]["422"]["content"][PROBLEM]["schema"]["$ref"]
        for path, _, operation in api_operations(spec)
        if path.startswith(API)
    }
    assert schemas == {"#/components/schemas/ProblemDetails"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_400_and_413_are_documented_where_they_can_happen(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    missing_400 = [
        (method, path)
        for path, method, operation in api_operations(spec)
        if path.startswith(API) and "400" not in operation["responses"]
    ]
    missing_413 = [
        (method, path)
        for path, method, operation in api_operations(spec)
        if "requestBody" in operation and "413" not in operation["responses"]
    ]
    assert (missing_400, missing_413) == ([], [])


def test_an_empty_identifier_search_is_invalid_in_the_schema_and_the_server(
    client: TestClient,
) -> None:
    spec = client.get("/openapi.json").json()
    (param,) = [
        p
        for p in spec["paths"][f"{API}/patients"]["get"]["parameters"]
        if p["name"] == "identifier"
    ]

    response = client.get(f"{API}/patients", params={"identifier": ""}, headers=auth("clinician"))

    assert param["schema"]["anyOf"][0]["minLength"] == 1
    assert ["query", "identifier"] in error_locs(assert_problem(response, 422))


# --- found by schemathesis (st run against healthos serve) -------------------------------


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        (f"{API}/claims", {"GET", "HEAD", "POST"}),
        (f"{API}/authorizations/expire", {"POST"}),
        (f"{API}/claims/c-1/appeal", {"POST"}),
    ],
)
def test_405_lists_the_methods_the_path_documents_in_allow(
    client: TestClient, path: str, allowed: set[str]
) -> None:
    response = client.options(path, headers=auth("finance"))

    assert_problem(response, 405)
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


def test_409_is_documented_on_every_write(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    missing = [
        (method, path)
        for path, method, operation in api_operations(spec)
        if path.startswith(API) and method != "get" and "409" not in operation["responses"]
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("route", "payload", "field"),
    [
        ("/authorizations/expire", {"as_of": 0}, "as_of"),
        (
            "/authorizations",
            {"patient_id": "pat-1", "payer_id": "p", "valid_from": 1_499_990_400},
            "valid_from",
        ),
        ("/patients/pat-1/payments", {"amount": "10.00", "at": 1_700_000_000}, "at"),
        ("/patients/pat-1/invoices", {"self_pay": "true"}, "self_pay"),
    ],
)
def test_a_number_or_string_where_the_schema_says_otherwise_is_422(
    client: TestClient, engine: Engine, patient: str, route: str, payload: Any, field: str
) -> None:
    # pydantic's lax mode read 0 as 1970-01-01 and "true" as True: schema-violating
    # requests accepted (schemathesis ST201).
    before = table_counts(engine)

    response = client.post(f"{API}{route}", json=payload, headers=auth("finance"))

    assert ["body", field] in error_locs(assert_problem(response, 422))
    assert table_counts(engine) == before


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_json_not_in_utf8_is_422_problem(client: TestClient, encoding: str) -> None:
    # json.loads reads UTF-16 and UTF-32 too, where "\u0000" escapes hide from a UTF-8 scan.
    body = '{"encounter_id": "enc\\u0000"}'.encode(encoding)

    response = client.post(
        f"{API}/claims",
        content=body,
        headers={**auth("finance"), "Content-Type": "application/json"},
    )

    problem = assert_problem(response, 422)
    assert "UTF-8" in problem["detail"]


@pytest.mark.parametrize(
    ("content_type", "end"), [("application/fhir+json", ""), ("application/fhir+ndjson", "\n")]
)
def test_a_remittance_number_too_long_to_read_is_422_problem(
    client: TestClient, content_type: str, end: str
) -> None:
    # json.loads raises a plain ValueError past 4300 digits (not a JSONDecodeError): a 500.
    body = '{"resourceType": "ClaimResponse", "id": "cr-1", "n": ' + "1" * 5000 + "}" + end

    response = client.post(
        f"{API}/remittances",
        content=body.encode(),
        headers={**auth("finance"), "Content-Type": content_type},
    )

    assert "number" in assert_problem(response, 422)["detail"]


# --- Unknown query parameters (schemathesis: "query violates additionalProperties") -----

UNKNOWN_QUERIES = [
    ("finance", f"{API}/ledger/trial-balance?as_of=2026-01-01&asof=2026-01-01", "asof"),
    ("finance", f"{API}/billing/report?x=1", "x"),
    ("finance", f"{API}/finance/summary?payer=acme", "payer"),
    ("clinician", f"{API}/suggestions?audiance=nurse", "audiance"),
    ("clinician", f"{API}/patients/pat-1?include=ssn", "include"),
]


@pytest.mark.parametrize(("role", "url", "unknown"), UNKNOWN_QUERIES)
def test_an_unknown_query_parameter_is_422_problem_naming_it(
    client: TestClient, patient: str, role: str, url: str, unknown: str
) -> None:
    # A misspelt filter (``audiance``) silently ignored would answer with everything.
    body = assert_problem(client.get(url, headers=auth(role)), 422)
    assert error_locs(body) == [["query", unknown]]
    assert unknown in body["detail"]


def test_known_query_parameters_and_aliases_are_accepted(client: TestClient) -> None:
    response = client.get(
        f"{API}/suggestions?audience=nurse&limit=5&offset=0", headers=auth("clinician")
    )
    assert response.status_code == 200, response.text
