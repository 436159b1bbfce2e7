"""FHIR writes (create, update, transaction and batch entries) through the one write path.

Every write goes through :func:`healthos_core.fhir.importer.import_document` with
``origin="live"``: the resources are validated with their R4B models, their references
resolved (within the request, then the database), their rows upserted and their live
clinical events published (charge capture posts ChargeItems) in the caller's
transaction. Nothing here writes rows another way.

Ids. A resource keeps the id it is sent with (as ``healthos import`` keeps it, so a
record moved between HealthOS servers keeps its references); a resource sent without
one gets the ``urn:uuid:`` of its ``fullUrl``, or a new UUID. Writing an id that
exists updates it (``200``); a new id creates it (``201``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.errors import ConflictError, InvalidInputError
from healthos_core.fhir.importer import import_document
from healthos_core.fhir.mapping import MAPPERS
from healthos_core.fhir.search import ID_PATTERN, table_of, version_id
from healthos_core.fhir.views import FhirView

#: The methods a transaction or batch entry may use.
ENTRY_METHODS: Final = frozenset({"POST", "PUT"})


@dataclass
class PreparedEntry:
    """One resource to write: where it came from in the request and the id it gets."""

    index: int
    method: str
    resource_type: str
    resource_id: str
    full_url: str | None
    resource: dict[str, Any]

    @property
    def stored(self) -> bool:
        """Whether HealthOS stores this type (others are counted and skipped)."""
        return self.resource_type in MAPPERS


@dataclass
class Written:
    """What a write did to one resource (for the response)."""

    resource_type: str
    resource_id: str
    created: bool
    stored: bool
    updated_at: dt.datetime | None = None

    @property
    def version(self) -> str | None:
        """The new ``meta.versionId`` (``None`` for a type HealthOS does not store)."""
        return version_id(self.updated_at) if self.updated_at is not None else None


@dataclass
class WriteReport:
    """The resources written by one unit, and the importer's counts."""

    written: list[Written] = field(default_factory=list)
    imported: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)


def _invalid(message: str) -> InvalidInputError:
    return InvalidInputError(message, code="invalid-request")


def check_resource(resource: Any, resource_type: str | None = None, *, where: str = "") -> str:
    """Check that ``resource`` is a FHIR resource (of ``resource_type`` if given).

    Returns
    -------
    str
        Its ``resourceType``.

    Raises
    ------
    InvalidInputError
        If it is not a JSON object with a ``resourceType`` (of the expected type), or its
        ``id`` is not a FHIR id.
    """
    prefix = f"{where}: " if where else ""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise _invalid(f"{prefix}not a FHIR resource (a JSON object with a resourceType)")
    found: str = resource["resourceType"]
    if resource_type is not None and found != resource_type:
        raise _invalid(f"{prefix}the body is a {found}, the URL says {resource_type}")
    rid = resource.get("id")
    if rid is not None and (not isinstance(rid, str) or not ID_PATTERN.fullmatch(rid)):
        raise _invalid(f"{prefix}id {str(rid)[:80]!r} is not a FHIR id (1-64 of A-Za-z0-9-.)")
    return found


def _assign_id(resource: dict[str, Any], full_url: str | None) -> str:
    rid = resource.get("id")
    if isinstance(rid, str) and rid:
        return rid
    if full_url and full_url.startswith("urn:uuid:"):
        candidate = full_url.removeprefix("urn:uuid:")
        if ID_PATTERN.fullmatch(candidate):
            resource["id"] = candidate
            return candidate
    resource["id"] = str(uuid.uuid4())
    return str(resource["id"])


def prepare_create(resource_type: str, resource: Any) -> PreparedEntry:
    """Prepare ``POST /fhir/{type}`` (the resource keeps its id, or gets a new UUID).

    Raises
    ------
    InvalidInputError
        If the body is not a resource of ``resource_type``.
    """
    check_resource(resource, resource_type)
    body = dict(resource)
    rid = _assign_id(body, None)
    return PreparedEntry(0, "POST", resource_type, rid, None, body)


def prepare_update(resource_type: str, resource_id: str, resource: Any) -> PreparedEntry:
    """Prepare ``PUT /fhir/{type}/{id}``.

    Raises
    ------
    InvalidInputError
        If the body is not a resource of ``resource_type`` or its id is not ``resource_id``.
    """
    check_resource(resource, resource_type)
    if resource.get("id") != resource_id:
        raise _invalid(
            f"the body's id ({resource.get('id')!r}) must be the URL's id ({resource_id!r})"
        )
    return PreparedEntry(0, "PUT", resource_type, resource_id, None, dict(resource))


def prepare_bundle(bundle: Any) -> tuple[str, list[PreparedEntry | InvalidInputError]]:
    """Read a ``transaction`` or ``batch`` Bundle into entries.

    Returns
    -------
    tuple of (str, list)
        The Bundle's type and, per entry, the prepared write or why it cannot be done
        (a batch answers each entry on its own; a transaction fails on the first).

    Raises
    ------
    InvalidInputError
        If the body is not a Bundle of type ``transaction`` or ``batch``.
    """
    check_resource(bundle, "Bundle")
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise _invalid(f"POST /fhir takes a transaction or batch Bundle, not type {kind!r}")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise _invalid("Bundle.entry must be a list")
    prepared: list[PreparedEntry | InvalidInputError] = []
    for index, entry in enumerate(entries):
        try:
            prepared.append(_prepare_entry(index, entry))
        except InvalidInputError as exc:
            prepared.append(exc)
    return str(kind), prepared


def _prepare_entry(index: int, entry: Any) -> PreparedEntry:
    where = f"entry {index}"
    if not isinstance(entry, dict):
        raise _invalid(f"{where}: not a JSON object")
    request = entry.get("request")
    if not isinstance(request, dict):
        raise _invalid(f"{where}: no request (method and url)")
    method = request.get("method")
    url = request.get("url")
    if method not in ENTRY_METHODS:
        raise _invalid(f"{where}: method {method!r} is not supported; use POST or PUT")
    if not isinstance(url, str) or not url:
        raise _invalid(f"{where}: request.url is missing")
    for unsupported in ("ifNoneExist", "ifMatch", "ifNoneMatch", "ifModifiedSince"):
        if unsupported in request:
            raise _invalid(f"{where}: request.{unsupported} is not supported")
    resource_type = check_resource(entry.get("resource"), where=where)
    resource = dict(entry["resource"])
    full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
    path = url.split("?", 1)[0].strip("/")
    if method == "POST":
        if path != resource_type:
            raise _invalid(f"{where}: POST {url!r} does not name the type {resource_type}")
        rid = _assign_id(resource, full_url)
    else:
        if "?" in url:
            raise _invalid(f"{where}: conditional update ({url!r}) is not supported")
        url_type, _, rid = path.partition("/")
        if url_type != resource_type or not rid or resource.get("id") != rid:
            raise _invalid(
                f"{where}: PUT {url!r} must be {resource_type}/<the resource's id> "
                f"(the resource's id is {resource.get('id')!r})"
            )
    return PreparedEntry(index, str(method), resource_type, rid, full_url, resource)


def write_entries(
    session: Session, entries: list[PreparedEntry], view: FhirView, *, source: str
) -> WriteReport:
    """Write ``entries`` as one unit, all or nothing (the importer's savepoint).

    Parameters
    ----------
    session : Session
        The caller's session; flushed, never committed.
    entries : list of PreparedEntry
        The resources; references between them (``urn:uuid:`` fullUrls or ``Type/id``)
        are resolved by the importer.
    view : FhirView
        The caller: every stored type must be one it may write.
    source : str
        Named in errors (e.g. ``"POST /fhir"``).

    Returns
    -------
    WriteReport

    Raises
    ------
    PermissionDeniedError
        If the role may not write one of the types (nothing is written).
    FhirValidationError
        If a resource is invalid or a reference cannot be resolved (nothing is written).
    ConflictError
        If two entries write the same resource.
    HealthOSError
        What a live-event subscriber raised (e.g. strict charge capture).
    """
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        if entry.stored:
            view.check_write(entry.resource_type)
        key = (entry.resource_type, entry.resource_id)
        if key in seen:
            raise ConflictError(
                f"entry {entry.index}: {entry.resource_type}/{entry.resource_id} is written "
                "twice in one request"
            )
        seen.add(key)
    existing: dict[str, set[str]] = {}
    for entry in entries:
        if entry.stored:
            existing.setdefault(entry.resource_type, set()).add(entry.resource_id)
    for resource_type, ids in existing.items():
        table = table_of(resource_type)
        found: set[str] = set()
        ordered = sorted(ids)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            found.update(session.scalars(select(table.c.id).where(table.c.id.in_(chunk))))
        existing[resource_type] = found
    document = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": e.full_url, "resource": e.resource}
            if e.full_url
            else {"resource": e.resource}
            for e in entries
        ],
    }
    result = import_document(session, document, source=source, origin="live")
    report = WriteReport(imported=result.imported, skipped=result.skipped)
    updated: dict[tuple[str, str], dt.datetime] = {}
    for resource_type in existing:
        table = table_of(resource_type)
        written_ids = sorted(e.resource_id for e in entries if e.resource_type == resource_type)
        for start in range(0, len(written_ids), 500):
            chunk = written_ids[start : start + 500]
            for rid, when in session.execute(
                select(table.c.id, table.c.updated_at).where(table.c.id.in_(chunk))
            ):
                updated[(resource_type, rid)] = when
    for entry in entries:
        report.written.append(
            Written(
                resource_type=entry.resource_type,
                resource_id=entry.resource_id,
                created=entry.resource_id not in existing.get(entry.resource_type, set()),
                stored=entry.stored,
                updated_at=updated.get((entry.resource_type, entry.resource_id)),
            )
        )
    return report
