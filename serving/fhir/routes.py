"""FHIR R4 REST at ``/fhir``: metadata, read, search, create, update, transaction, batch.

The HTTP only: what is searched and how is :mod:`healthos_core.fhir.search`, what each
role reads and writes :mod:`healthos_core.fhir.views`, and every write goes through the
importer (:mod:`healthos_core.fhir.writes`). Errors are OperationOutcomes
(:mod:`serving.fhir.outcomes`). ``docs/fhir.md`` describes the API.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from sqlalchemy.orm import Session

from healthos_core.errors import HealthOSError, InvalidInputError
from healthos_core.fhir.capability import capability_statement
from healthos_core.fhir.search import (
    check_id,
    current_version,
    parse_search,
    patient_everything,
    read_resource,
    run_search,
    supported_types,
    table_of,
)
from healthos_core.fhir.views import FhirView, fhir_view
from healthos_core.fhir.writes import (
    PreparedEntry,
    WriteReport,
    Written,
    prepare_bundle,
    prepare_create,
    prepare_update,
    write_entries,
)
from serving.deps import CurrentUser, SessionDep, SettingsDep
from serving.fhir.outcomes import (
    ERROR_RESPONSES,
    FHIR_MEDIA_TYPE,
    WRITE_RESPONSES,
    FhirResponse,
    FhirRoute,
    ok_response,
    operation_outcome,
    status_of,
)
from serving.limits import json_depth, unstorable_text
from serving.routers.health import app_version

router = APIRouter(prefix="/fhir", tags=["fhir"], route_class=FhirRoute, responses=ERROR_RESPONSES)

#: ``{resource_type}``: one of the types served (documented as an enum; another is 404).
ResourceType = Annotated[
    str, Path(description="A resource type", json_schema_extra={"enum": list(supported_types())})
]
_RESOURCE_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            FHIR_MEDIA_TYPE: {"schema": {"type": "object"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}
_SEARCH_QUERY: Final[list[dict[str, Any]]] = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": description,
    }
    for name, description in (
        ("_id", "Logical ids (comma-separated: any of them)"),
        ("_lastUpdated", "When last written: [prefix]date, e.g. ge2024-01-01"),
        ("_count", "Page size (0 to 1000; default 50; 0: the total only)"),
        ("_offset", "Where the page starts (the next link carries it)"),
        ("_sort", "Parameters to sort by, comma-separated, - for descending"),
    )
]


def view_of(user: CurrentUser) -> FhirView:
    """Return what the caller reads and writes through FHIR (403 for roles without any)."""
    return fhir_view(user.role)


ViewDep = Annotated[FhirView, Depends(view_of)]


async def fhir_body(request: Request, settings: SettingsDep) -> Any:
    r"""Read the request body as JSON (400 OperationOutcome when it cannot be).

    Refused before parsing, as on the rest of the API (:mod:`serving.limits`): JSON
    nested deeper than ``settings.max_json_depth``, and strings holding ``\u0000`` or
    an unpaired surrogate (no column can store them).

    Raises
    ------
    InvalidInputError
        If the body is empty, not UTF-8 JSON, too deeply nested or not storable text.
    """
    body = await request.body()
    if not body.strip():
        raise InvalidInputError("the request has no body: send a FHIR resource as JSON")
    if json_depth(body, limit=settings.max_json_depth) > settings.max_json_depth:
        raise InvalidInputError(
            f"the JSON nests deeper than {settings.max_json_depth} levels (HEALTHOS_MAX_JSON_DEPTH)"
        )
    unstorable = unstorable_text(body)
    if unstorable is not None:
        raise InvalidInputError(f"the body holds {unstorable[1]} at byte {unstorable[0]}")
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidInputError("the body is not JSON (UTF-8)") from exc


BodyDep = Annotated[Any, Depends(fhir_body)]


def fhir_base(request: Request) -> str:
    """Return the FHIR base URL of a request (``http://host:port/fhir``)."""
    return str(request.base_url).rstrip("/") + "/fhir"


def _check_type(resource_type: str) -> None:
    table_of(resource_type)  # NotFoundError (404) for a type HealthOS does not serve


# --------------------------------------------------------------------------- metadata


@router.get(
    "/metadata",
    response_class=FhirResponse,
    responses={200: ok_response("The CapabilityStatement")},
    summary="The server's CapabilityStatement",
)
async def metadata(request: Request) -> FhirResponse:
    """Return the CapabilityStatement (no token needed: it holds no patient data)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    statement = capability_statement(
        base_url=fhir_base(request), software_version=app_version(), date=now
    )
    return FhirResponse(statement)


# --------------------------------------------------------------------------- transaction


def _entry_response(
    written: Written, base: str, *, outcome: dict[str, Any] | None = None
) -> dict[str, Any]:
    if not written.stored:
        return {
            "response": {
                "status": "200 OK",
                "outcome": operation_outcome(
                    200,
                    f"HealthOS does not store {written.resource_type}: counted, not stored",
                    severity="information",
                ),
            }
        }
    response: dict[str, Any] = {
        "status": "201 Created" if written.created else "200 OK",
        "location": f"{written.resource_type}/{written.resource_id}/_history/{written.version}",
        "etag": f'W/"{written.version}"',
    }
    if written.updated_at is not None:
        response["lastModified"] = written.updated_at.astimezone(dt.UTC).isoformat()
    if outcome is not None:
        response["outcome"] = outcome
    return {
        "fullUrl": f"{base}/{written.resource_type}/{written.resource_id}",
        "response": response,
    }


def _error_entry(error: HealthOSError) -> dict[str, Any]:
    status = status_of(error)
    return {
        "response": {
            "status": str(status),
            "outcome": operation_outcome(status, error.message),
        }
    }


@router.post(
    "",
    response_class=FhirResponse,
    responses={
        200: ok_response("The transaction-response or batch-response Bundle"),
        **WRITE_RESPONSES,
    },
    openapi_extra=_RESOURCE_BODY,
    summary="A transaction (all or nothing) or batch Bundle",
)
def transaction(
    request: Request, session: SessionDep, view: ViewDep, body: BodyDep
) -> FhirResponse:
    """Write a ``transaction`` Bundle as one unit, or a ``batch`` entry by entry."""
    kind, prepared = prepare_bundle(body)
    base = fhir_base(request)
    entries: list[dict[str, Any]] = []
    if kind == "transaction":
        for item in prepared:
            if isinstance(item, HealthOSError):
                raise item
        ready = [item for item in prepared if isinstance(item, PreparedEntry)]
        report: WriteReport = write_entries(session, ready, view, source="POST /fhir")
        entries = [_entry_response(w, base) for w in report.written]
    else:
        for item in prepared:
            if isinstance(item, HealthOSError):
                entries.append(_error_entry(item))
                continue
            try:
                with session.begin_nested():
                    one = write_entries(
                        session, [item], view, source=f"POST /fhir entry {item.index}"
                    )
            except HealthOSError as exc:
                entries.append(_error_entry(exc))
                continue
            entries.append(_entry_response(one.written[0], base))
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": f"{kind}-response",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(),
    }
    if entries:
        bundle["entry"] = entries
    return FhirResponse(bundle)


# --------------------------------------------------------------------------- search


def _search_bundle(
    request: Request,
    resource_type: ResourceType,
    total: int,
    resources: list[dict[str, Any]],
    links: list[dict[str, str]],
) -> dict[str, Any]:
    base = fhir_base(request)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
    }
    if resources:
        bundle["entry"] = [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match" if r["resourceType"] == resource_type else "include"},
            }
            for r in resources
        ]
    return bundle


@router.get(
    "/{resource_type}",
    response_class=FhirResponse,
    responses={200: ok_response("A searchset Bundle (total, link self/next)")},
    openapi_extra={"parameters": _SEARCH_QUERY},
    summary="Search a resource type",
)
def search(
    request: Request, resource_type: ResourceType, session: SessionDep, view: ViewDep
) -> FhirResponse:
    """Search ``resource_type``: a ``searchset`` Bundle of one page, with ``total`` and links.

    The parameters per type are in the CapabilityStatement and ``docs/fhir.md``.
    """
    _check_type(resource_type)
    view.check_type(resource_type)
    items = list(request.query_params.multi_items())
    query = parse_search(resource_type, items, view)
    page = run_search(session, query, view)
    url = f"{fhir_base(request)}/{resource_type}"
    self_query = urlencode([*query.echo, *([("_offset", str(page.offset))] if page.offset else [])])
    links = [{"relation": "self", "url": f"{url}?{self_query}" if self_query else url}]
    if page.has_next:
        next_query = urlencode([*query.echo, ("_offset", str(page.offset + page.count))])
        links.append({"relation": "next", "url": f"{url}?{next_query}"})
    if page.offset > 0 and page.count > 0:
        previous = max(page.offset - page.count, 0)
        links.append(
            {
                "relation": "previous",
                "url": f"{url}?{urlencode([*query.echo, ('_offset', str(previous))])}",
            }
        )
    return FhirResponse(_search_bundle(request, resource_type, page.total, page.resources, links))


# --------------------------------------------------------------------------- create


def _written_response(
    request: Request, session: Session, view: FhirView, written: Written, prefer: str | None
) -> Response:
    base = fhir_base(request)
    location = f"{base}/{written.resource_type}/{written.resource_id}/_history/{written.version}"
    headers = {"Location": location, "ETag": f'W/"{written.version}"'}
    if written.updated_at is not None:
        headers["Last-Modified"] = written.updated_at.astimezone(dt.UTC).strftime(
            "%a, %d %b %Y %H:%M:%S GMT"
        )
    status = 201 if written.created else 200
    if prefer is not None and "return=minimal" in prefer:
        return Response(status_code=status, headers=headers, media_type=FHIR_MEDIA_TYPE)
    if view.may_read(written.resource_type):
        body = read_resource(session, written.resource_type, written.resource_id, view)
    else:
        body = operation_outcome(
            status,
            f"{written.resource_type}/{written.resource_id} written (the {view.role} role "
            "does not read this type)",
            severity="information",
        )
    return FhirResponse(body, status_code=status, headers=headers)


@router.post(
    "/{resource_type}",
    response_class=FhirResponse,
    status_code=201,
    responses={
        200: ok_response("The resource existed and was updated"),
        201: ok_response("The resource was created (Location names it)"),
        **WRITE_RESPONSES,
    },
    openapi_extra=_RESOURCE_BODY,
    summary="Create a resource",
)
def create(
    request: Request,
    resource_type: ResourceType,
    session: SessionDep,
    view: ViewDep,
    body: BodyDep,
    prefer: Annotated[str | None, Header()] = None,
) -> Response:
    """Create a resource (its id kept, or a new UUID); 201 with ``Location``."""
    _check_type(resource_type)
    view.check_write(resource_type)
    entry = prepare_create(resource_type, body)
    report = write_entries(session, [entry], view, source=f"POST /fhir/{resource_type}")
    return _written_response(request, session, view, report.written[0], prefer)


# --------------------------------------------------------------------------- everything


@router.get(
    "/Patient/{patient_id}/$everything",
    response_class=FhirResponse,
    responses={200: ok_response("A searchset Bundle: the patient and their compartment")},
    summary="Patient/$everything",
)
def everything(
    request: Request, patient_id: str, session: SessionDep, view: ViewDep
) -> FhirResponse:
    """Return the patient and every resource of their record the caller may read."""
    patient, others = patient_everything(session, patient_id, view)
    resources = [patient, *others]
    url = f"{fhir_base(request)}/Patient/{patient_id}/$everything"
    bundle = _search_bundle(
        request, "Patient", len(resources), resources, [{"relation": "self", "url": url}]
    )
    return FhirResponse(bundle)


# --------------------------------------------------------------------------- read, update


@router.get(
    "/{resource_type}/{resource_id}",
    response_class=FhirResponse,
    responses={200: ok_response("The resource (meta.versionId, meta.lastUpdated; ETag)")},
    summary="Read a resource",
)
def read(
    resource_type: ResourceType, resource_id: str, session: SessionDep, view: ViewDep
) -> FhirResponse:
    """Return the stored resource with its ``meta.versionId`` and ``meta.lastUpdated``."""
    resource = read_resource(session, resource_type, resource_id, view)
    meta = resource["meta"]
    return FhirResponse(resource, headers={"ETag": f'W/"{meta["versionId"]}"'})


@router.put(
    "/{resource_type}/{resource_id}",
    response_class=FhirResponse,
    responses={
        200: ok_response("The resource was updated"),
        201: ok_response("The resource was created"),
        **WRITE_RESPONSES,
    },
    openapi_extra=_RESOURCE_BODY,
    summary="Update (or create) a resource",
)
def update(
    request: Request,
    resource_type: ResourceType,
    resource_id: str,
    session: SessionDep,
    view: ViewDep,
    body: BodyDep,
    prefer: Annotated[str | None, Header()] = None,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Update a resource (its id must be the URL's); ``If-Match`` makes it conditional (412)."""
    _check_type(resource_type)
    check_id(resource_id)
    view.check_write(resource_type)
    entry = prepare_update(resource_type, resource_id, body)
    if if_match is not None:
        current = current_version(session, resource_type, resource_id)
        wanted = if_match.strip().removeprefix("W/").strip('"')
        if current != wanted:
            return FhirResponse(
                operation_outcome(
                    412, f"If-Match {if_match!r}: the current version is {current or 'none'}"
                ),
                status_code=412,
            )
    report = write_entries(
        session, [entry], view, source=f"PUT /fhir/{resource_type}/{resource_id}"
    )
    return _written_response(request, session, view, report.written[0], prefer)
