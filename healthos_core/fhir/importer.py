"""Import FHIR R4 Bundles and NDJSON into the unified record.

The unit of work is a *bundle*: one Bundle file (transaction, batch, collection or
searchset), or one NDJSON file. A unit is validated with ``fhir.resources`` (R4B
models), its ``urn:uuid:`` and ``Type/id`` references are resolved against the unit
itself and then the database, and only then written, inside a savepoint: a unit is
imported whole or not at all. Import is idempotent: resources are upserted on their
FHIR logical id. Resource types HealthOS does not store are counted as skipped.

Back-load or live feed
----------------------
By default an import is a **back-load** of history (``origin="backload"``): rows are
bulk-upserted and no clinical event is published, so nothing is charged or rescored
(charge capture and rescoring skip back-load events anyway; not building them keeps a
bulk import at bulk speed). With ``origin="live"`` the files are a live feed, like the
record service's writes (which come through :func:`import_unit` too): after a unit's rows are
written, what it changed is published as ``live`` events on the bus (default
:func:`~healthos_core.events.default_bus`), in the unit's transaction, so charge capture posts
its ChargeItems there: a new Encounter (:class:`~healthos_core.events.EncounterStarted`, and
:class:`~healthos_core.events.EncounterFinished` when it arrives finished), an Encounter that
became finished (``EncounterFinished``), a new or amended Procedure, MedicationAdministration
or Observation, a new or changed queue ticket (Task: ``QueueTicketChanged``) or Appointment
(``AppointmentChanged``). The same content written again publishes nothing
(:func:`stored_states`).

Import hooks (:func:`register_import_hook`) run for every unit whatever its origin;
remittance posting is one, installed by :func:`healthos_core.wiring.wire_live_path`
(importing a module installs none).

Examples
--------
>>> from healthos_core.fhir.importer import import_paths  # doctest: +SKIP
>>> report = import_paths(session_factory, [Path("bundles/")])  # doctest: +SKIP
>>> report.imported["Patient"]  # doctest: +SKIP
488
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

import pydantic
from fhir.resources.R4B import get_fhir_model_class
from sqlalchemy import Float, Numeric, String, Table, bindparam, delete, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.billing.entities import Claim, ClaimDiagnosis, ClaimItem, ClaimResponse
from healthos_core.db import session_scope, upsert_insert, utcnow
from healthos_core.errors import FhirValidationError, HealthOSError, InvalidInputError
from healthos_core.events import (
    AppointmentChanged,
    ClaimChanged,
    ClinicalEvent,
    EncounterFinished,
    EncounterStarted,
    EventBus,
    MedicationAdministered,
    ObservationRecorded,
    Origin,
    ProcedurePerformed,
    QueueTicketChanged,
    default_bus,
)
from healthos_core.fhir.mapping import (
    CHILD_KEYS,
    MAPPERS,
    PRESERVED_ON_UPDATE,
    TABLES,
    MappingContext,
)
from healthos_core.fhir.refs import parse_ref
from healthos_core.record.entities import (
    Appointment,
    Encounter,
    MedicationAdministration,
    Observation,
    PatientIdentifier,
    Procedure,
    Task,
)

SUFFIXES = (".json", ".ndjson", ".json.gz", ".ndjson.gz", ".jsonl", ".jsonl.gz")


class MissingReferenceError(FhirValidationError):
    """A ``Type/id`` reference names a resource neither in the unit nor (yet) in the database."""


@dataclass
class UnitResult:
    """What importing one bundle did: per-type counts."""

    imported: Counter[str] = field(default_factory=Counter)
    created: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass
class ImportReport:
    """Totals of an import run (the ``--json`` output of ``healthos import``).

    Attributes
    ----------
    files : int
        Files read.
    imported : Counter
        Resources stored (created or updated) per resource type.
    created : Counter
        Of those, resources that were new to the database.
    skipped : Counter
        Resources of types HealthOS does not store, per type (counted, not stored).
    rejected : list of dict
        ``{"file", "reason"}`` for every unit that was rejected whole.
    seconds : float
        Wall time.
    """

    files: int = 0
    imported: Counter[str] = field(default_factory=Counter)
    created: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    rejected: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, result: UnitResult) -> None:
        """Add one unit's counts."""
        self.imported.update(result.imported)
        self.created.update(result.created)
        self.skipped.update(result.skipped)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready report."""
        return {
            "files": self.files,
            "imported": dict(sorted(self.imported.items())),
            "created": dict(sorted(self.created.items())),
            "skipped": dict(sorted(self.skipped.items())),
            "rejected": self.rejected,
            "seconds": round(self.seconds, 3),
        }


# --------------------------------------------------------------------------- reading


#: Order in which the files of one folder are imported: referents before the resources
#: that point at them (a bulk-export folder holds one NDJSON file per type).
DEPENDENCY_ORDER = (
    "Organization",
    "Location",
    "Practitioner",
    "Bundle",
    "Patient",
    "Coverage",
    "Encounter",
    "Condition",
    "Procedure",
    "MedicationRequest",
    "MedicationAdministration",
    "Observation",
    "DiagnosticReport",
    "Immunization",
    "AllergyIntolerance",
    "Appointment",
    "Task",
    "ChargeItem",
    "Claim",
    "ExplanationOfBenefit",
    "ClaimResponse",
)


def _first_resource_type(path: Path) -> str | None:
    """Return the resourceType of an NDJSON file's first line (``"Bundle"`` for JSON)."""
    if not path.name.endswith((".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")):
        return "Bundle"
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                first = handle.readline()
        else:
            with path.open(encoding="utf-8") as handle:
                first = handle.readline()
        value = json.loads(first).get("resourceType") if first.strip() else None
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError, AttributeError):
        return None  # unreadable: read_units reports it in order
    return value if isinstance(value, str) else None


def _dependency_rank(path: Path) -> tuple[int, str]:
    resource_type = _first_resource_type(path)
    rank = (
        DEPENDENCY_ORDER.index(resource_type)
        if resource_type in DEPENDENCY_ORDER
        else len(DEPENDENCY_ORDER)
    )
    return rank, str(path)


def iter_source_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Yield the FHIR files under ``paths``: files as given, folders recursively.

    Within a folder, files are ordered so that referents come first
    (:data:`DEPENDENCY_ORDER`, judged by an NDJSON file's first resource), then by name.

    Raises
    ------
    InvalidInputError
        If a path does not exist.
    """
    for path in paths:
        if path.is_dir():
            children = [c for c in path.rglob("*") if c.is_file() and c.name.endswith(SUFFIXES)]
            yield from sorted(children, key=_dependency_rank)
        elif path.is_file():
            yield path
        else:
            raise InvalidInputError(f"{path}: no such file or folder")


def _open_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode("utf-8")


@dataclass
class Unit:
    """One all-or-nothing unit: the resources (with their ``fullUrl``) of a bundle."""

    source: str
    entries: list[tuple[str | None, dict[str, Any]]]


def read_units(path: Path) -> list[Unit]:
    """Read ``path`` into units (one per Bundle file, one per NDJSON file).

    Raises
    ------
    FhirValidationError
        If the file is not readable (truncated gzip, not UTF-8, invalid JSON) or is not
        a FHIR resource or Bundle.
    """
    source = str(path)
    try:
        text = _open_text(path)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise FhirValidationError(f"cannot read file ({exc})", source=source) from exc
    is_ndjson = path.name.endswith((".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz"))
    if is_ndjson:
        entries: list[tuple[str | None, dict[str, Any]]] = []
        # NDJSON lines end in "\n" (or "\r\n"); str.splitlines() would also split on
        # U+2028, U+0085 and other characters that JSON allows unescaped inside strings.
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                resource = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FhirValidationError(
                    f"line {number}: invalid JSON ({exc.msg})", source=source
                ) from exc
            if not isinstance(resource, dict) or "resourceType" not in resource:
                raise FhirValidationError(f"line {number}: not a FHIR resource", source=source)
            entries.append((None, resource))
        return [Unit(source, entries)]
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FhirValidationError(
            f"invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})", source=source
        ) from exc
    return [unit_from_document(document, source=source)]


def unit_from_document(document: Any, *, source: str) -> Unit:
    """Turn a parsed JSON document (a Bundle or a single resource) into a unit.

    Raises
    ------
    FhirValidationError
        If the document is not a FHIR resource, or a Bundle entry has no resource.
    """
    if not isinstance(document, dict) or "resourceType" not in document:
        raise FhirValidationError("not a FHIR resource (no resourceType)", source=source)
    if document["resourceType"] != "Bundle":
        return Unit(source, [(None, document)])
    entries: list[tuple[str | None, dict[str, Any]]] = []
    for index, entry in enumerate(document.get("entry") or []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            raise FhirValidationError(f"entry {index} has no resource", source=source)
        entries.append((entry.get("fullUrl"), resource))
    return Unit(source, entries)


# --------------------------------------------------------------------------- validation


def _label(resource: dict[str, Any], index: int) -> str:
    return f"{resource.get('resourceType', '?')}/{resource.get('id', '?')} (entry {index})"


@cache
def _model_class(resource_type: str) -> Any:
    return get_fhir_model_class(resource_type)


def validate_resource(resource: dict[str, Any], *, label: str) -> None:
    """Validate one resource against its ``fhir.resources`` R4B model.

    Raises
    ------
    FhirValidationError
        Naming the resource, the first failing element and the count of errors.
    """
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise FhirValidationError(f"{label}: resourceType is missing or not a string")
    try:
        model = _model_class(resource_type)
    except (ValueError, KeyError) as exc:
        raise FhirValidationError(
            f"{label}: {resource_type!r} is not a FHIR R4 resource type"
        ) from exc
    try:
        model.model_validate(resource)
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        where = ".".join(str(x) for x in first.get("loc", ())) or "(resource)"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise FhirValidationError(f"{label}: {where}: {first.get('msg')}{more}") from exc


# --------------------------------------------------------------------------- references


def _walk_references(node: Any, visit: Callable[[dict[str, Any]], None]) -> None:
    if isinstance(node, dict):
        reference = node.get("reference")
        if isinstance(reference, str):
            visit(node)
        for key, value in node.items():
            if isinstance(value, (dict, list)) and key != "reference":
                _walk_references(value, visit)
    elif isinstance(node, list):
        for item in node:
            _walk_references(item, visit)


def _conditional_match(query: str, candidates: list[dict[str, Any]]) -> str | None:
    """Resolve ``identifier=system|value`` against candidate resources of one type."""
    params = {
        name: unquote(value)
        for name, value in (p.split("=", 1) for p in query.split("&") if "=" in p)
    }
    wanted = params.get("identifier")
    if wanted is None:
        return None
    system, _, value = wanted.rpartition("|")
    for candidate in candidates:
        for identifier in candidate.get("identifier") or []:
            if identifier.get("value") == value and (
                not system or identifier.get("system") == system
            ):
                return str(candidate["id"])
    return None


def resolve_references(
    session: Session, entries: list[tuple[str | None, dict[str, Any]]], *, source: str
) -> None:
    """Rewrite every reference in ``entries`` to ``"Type/id"``, in place.

    ``urn:uuid:``/``urn:oid:`` references must match a ``fullUrl`` in the same unit;
    ``Type/id`` (or absolute URL) references must name a resource in the unit or in the
    database; conditional references ``Type?identifier=system|value`` are resolved
    within the unit. Contained references (``#id``) are kept.

    Raises
    ------
    FhirValidationError
        Naming the first reference that cannot be found, and the resource holding it
        (:class:`MissingReferenceError` for a ``Type/id`` not in the database).
    """
    by_full_url: dict[str, str] = {}
    local: set[tuple[str, str]] = set()
    by_type: dict[str, list[dict[str, Any]]] = {}
    for full_url, resource in entries:
        key = (resource["resourceType"], str(resource["id"]))
        local.add(key)
        by_type.setdefault(key[0], []).append(resource)
        if full_url:
            by_full_url[full_url] = f"{key[0]}/{key[1]}"
    pending: dict[str, dict[str, str]] = {}  # type -> id -> label of first holder

    for index, (_, resource) in enumerate(entries):
        label = _label(resource, index)

        def visit(element: dict[str, Any], label: str = label) -> None:
            reference: str = element["reference"]
            if reference.startswith("#"):
                return
            if reference.startswith(("urn:uuid:", "urn:oid:")):
                target = by_full_url.get(reference)
                if target is None:
                    raise FhirValidationError(
                        f"{label}: reference {reference} is not in the bundle", source=source
                    )
                element["reference"] = target
                return
            if "?" in reference:
                resource_type, query = reference.split("?", 1)
                found = _conditional_match(query, by_type.get(resource_type, []))
                if found is None:
                    raise FhirValidationError(
                        f"{label}: conditional reference {reference} matches nothing",
                        source=source,
                    )
                element["reference"] = f"{resource_type}/{found}"
                return
            try:
                resource_type, resource_id = parse_ref(reference)
            except InvalidInputError as exc:
                raise FhirValidationError(f"{label}: {exc}", source=source) from exc
            element["reference"] = f"{resource_type}/{resource_id}"
            if (resource_type, resource_id) not in local:
                pending.setdefault(resource_type, {}).setdefault(resource_id, label)

        _walk_references(resource, visit)

    for resource_type, wanted in pending.items():
        table = TABLES.get(resource_type)
        found = _existing_ids(session, table, list(wanted)) if table is not None else set()
        for resource_id, label in wanted.items():
            if resource_id not in found:
                raise MissingReferenceError(
                    f"{label}: reference {resource_type}/{resource_id} is neither in the bundle "
                    "nor in the database",
                    source=source,
                )


# --------------------------------------------------------------------------- writing


@cache
def upsert_statement(table: Table, dialect: str, key: tuple[str, ...] = ("id",)) -> Any:
    """Return an ``INSERT … ON CONFLICT`` statement for ``table`` on ``dialect``.

    Built once per table, dialect and key (building it cost more than running it for a
    one-resource write: the demo's profile).

    Rows whose ``key`` exists are updated (all columns but the key and ``created_at``);
    tables with a surrogate autoincrement key and a natural ``key`` ignore duplicates.
    """
    stmt = upsert_insert(dialect, table)
    autoincrement_pk = [c.name for c in table.primary_key.columns if c.autoincrement is True]
    if autoincrement_pk and tuple(c.name for c in table.primary_key.columns) != key:
        return stmt.on_conflict_do_nothing(index_elements=list(key))
    preserved = PRESERVED_ON_UPDATE.get(table.name, frozenset())
    updates = {
        c.name: stmt.excluded[c.name]
        for c in table.columns
        if c.name not in key and c.name != "created_at" and c.name not in preserved
    }
    return stmt.on_conflict_do_update(index_elements=list(key), set_=updates)


def _ensure_id(full_url: str | None, resource: dict[str, Any]) -> None:
    if resource.get("id"):
        resource["id"] = str(resource["id"])
        return
    if full_url and full_url.startswith("urn:uuid:"):
        resource["id"] = full_url.removeprefix("urn:uuid:")
        return
    digest = hashlib.sha256(json.dumps(resource, sort_keys=True).encode()).hexdigest()
    resource["id"] = digest[:32]


def _load_encounter_facilities(
    session: Session, entries: list[tuple[str | None, dict[str, Any]]], ctx: MappingContext
) -> None:
    wanted: set[str] = set()
    for _, resource in entries:
        for key in ("encounter", "context"):
            value = resource.get(key)
            if isinstance(value, dict) and str(value.get("reference", "")).startswith("Encounter/"):
                wanted.add(value["reference"].split("/", 1)[1])
    wanted -= set(ctx.encounter_facility)
    if wanted:
        rows = session.execute(_ENCOUNTER_FACILITIES, {"ids": list(wanted)})
        ctx.encounter_facility.update({row.id: row.facility_id for row in rows})


_ENCOUNTER_FACILITIES = select(Encounter.id, Encounter.facility_id).where(
    Encounter.id.in_(bindparam("ids", expanding=True))
)


def import_unit(
    session: Session,
    unit: Unit,
    *,
    origin: Origin = "backload",
    bus: EventBus | None = None,
) -> UnitResult:
    """Validate, resolve and store one unit, all or nothing (inside a savepoint).

    Parameters
    ----------
    session : Session
        The caller's session; this function flushes but never commits.
    unit : Unit
        The resources of one Bundle or NDJSON file.
    origin : {"backload", "live"}, default="backload"
        ``"live"`` publishes the unit's clinical events on ``bus`` after its rows are
        written, in the same savepoint (see the module docstring); ``"backload"``
        publishes nothing.
    bus : EventBus, optional
        Where live events go; default :func:`~healthos_core.events.default_bus`.

    Returns
    -------
    UnitResult
        Counts per resource type.

    Raises
    ------
    FhirValidationError
        If any resource fails validation or any reference cannot be found; the database
        is left exactly as it was.
    InvalidInputError
        If ``origin`` is neither ``"backload"`` nor ``"live"`` (nothing is read).
    HealthOSError
        Whatever a subscriber raises on a live event (e.g. strict charge capture's
        :class:`~healthos_core.errors.PricingError`); the unit is rolled back.
    """
    _check_origin(origin)
    result = UnitResult()
    for index, (full_url, resource) in enumerate(unit.entries):
        validate_resource(resource, label=_label(resource, index))
        _ensure_id(full_url, resource)
    resolve_references(session, unit.entries, source=unit.source)

    ctx = MappingContext()
    encounters_first = sorted(
        unit.entries, key=lambda e: 0 if e[1]["resourceType"] == "Encounter" else 1
    )
    _load_encounter_facilities(session, unit.entries, ctx)
    rows: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    for _, resource in encounters_first:
        resource_type = resource["resourceType"]
        mapper = MAPPERS.get(resource_type)
        if mapper is None:
            result.skipped[resource_type] += 1
            continue
        try:
            mapped = mapper(resource, ctx)
        except (InvalidInputError, KeyError, TypeError, ValueError) as exc:
            raise FhirValidationError(
                f"{resource_type}/{resource['id']}: cannot be mapped ({exc})", source=unit.source
            ) from exc
        result.imported[resource_type] += 1
        for table_name, table_rows in mapped.rows.items():
            key = CHILD_KEYS.get(table_name, ("id",))
            bucket = rows.setdefault(table_name, {})
            for row in table_rows:
                if row.get("patient_id", "") is None:
                    raise FhirValidationError(
                        f"{resource_type}/{resource['id']}: no patient (subject) reference",
                        source=unit.source,
                    )
                _check_fits(table_name, row, f"{resource_type}/{resource['id']}", unit.source)
                bucket[tuple(row[k] for k in key)] = row
    with session.begin_nested():
        before = stored_states(session, unit) if origin == "live" else {}
        _write(session, rows, result)
        _run_import_hooks(session, unit)
        if origin == "live":
            publish_live_events(session, unit, bus if bus is not None else default_bus(), before)
    return result


def _check_origin(origin: str) -> None:
    if origin not in ("backload", "live"):
        raise InvalidInputError(f"origin {origin!r}: use 'backload' or 'live'")


#: Entities of the clinical resource types whose import publishes live events, in the
#: order their events go out (a visit before what happened during it).
_EventEntity = Encounter | Procedure | MedicationAdministration | Observation | Task | Appointment
_EVENT_ENTITIES: tuple[type[_EventEntity], ...] = (
    Encounter,
    Procedure,
    MedicationAdministration,
    Observation,
    Task,
    Appointment,
)


#: Billing resources whose live write changes a claim's denial risk: a Claim itself, and a
#: ClaimResponse (the payer answered: the claim leaves the denial worklist).
_CLAIM_ENTITIES: tuple[type[Claim | ClaimResponse], ...] = (Claim, ClaimResponse)

#: What a live write changes about a stored fact: ``(status, resource)`` of its row
#: before the write, by ``(resource type, id)``; absent when the fact is new.
StoredStates = dict[tuple[str, str], tuple[str | None, dict[str, Any] | None]]


def _unit_ids(unit: Unit, resource_type: str) -> list[str]:
    return list(
        dict.fromkeys(str(r["id"]) for _, r in unit.entries if r["resourceType"] == resource_type)
    )


def stored_states(session: Session, unit: Unit) -> StoredStates:
    """Return the stored status and resource of the unit's clinical facts, before a write.

    Read before a live write so that :func:`publish_live_events` publishes only what the
    write changes (one query per clinical resource type in the unit).
    """
    states: StoredStates = {}
    for entity_type in (*_EVENT_ENTITIES, *_CLAIM_ENTITIES):
        name = entity_type.__name__
        ids = _unit_ids(unit, name)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            table = cast(Table, entity_type.__table__)
            query = select(table.c.id, table.c.status, table.c.resource).where(
                table.c.id.in_(chunk)
            )
            for row in session.execute(query):
                states[(name, row.id)] = (row.status, row.resource)
    return states


def _events_of(
    entity: _EventEntity, before: tuple[str | None, dict[str, Any] | None] | None
) -> list[ClinicalEvent]:
    """Return the live events a write of ``entity`` makes: what it changed about the fact.

    A new fact publishes its event (an encounter: ``EncounterStarted``, and
    ``EncounterFinished`` too if it arrives finished). A stored encounter that becomes
    finished publishes ``EncounterFinished``; another stored fact whose resource changed
    (an amended observation) publishes its event again. The same content written again
    publishes nothing.
    """
    if isinstance(entity, Encounter):
        events: list[ClinicalEvent] = []
        if before is None:
            events.append(EncounterStarted(encounter=entity, origin="live"))
        if entity.status == "finished" and (before is None or before[0] != "finished"):
            events.append(EncounterFinished(encounter=entity, origin="live"))
        return events
    if before is not None and before[1] == entity.resource:
        return []
    if isinstance(entity, Procedure):
        return [ProcedurePerformed(procedure=entity, origin="live")]
    if isinstance(entity, MedicationAdministration):
        return [MedicationAdministered(administration=entity, origin="live")]
    if isinstance(entity, Task):
        return [QueueTicketChanged(ticket=entity, origin="live")]
    if isinstance(entity, Appointment):
        return [AppointmentChanged(appointment=entity, origin="live")]
    return [ObservationRecorded(observation=entity, origin="live")]


def publish_live_events(
    session: Session, unit: Unit, bus: EventBus, before: StoredStates | None = None
) -> int:
    """Publish a written unit's clinical events on ``bus`` as ``live`` events.

    Every Encounter, Procedure, MedicationAdministration and Observation of the unit is
    read back from the database (its stored row, as the record service would have
    flushed it) and its events (:func:`_events_of`: only what the write changed, given
    ``before``) are published, encounters first, each type in the unit's order.

    Parameters
    ----------
    session : Session
        The session holding the unit's rows (flushed, not committed).
    unit : Unit
        The unit just written (ids already assigned).
    bus : EventBus
        Where to publish; subscribers write in ``session``'s transaction.
    before : dict, optional
        :func:`stored_states` read before the write; ``None``: every fact is new.

    Returns
    -------
    int
        Events published.
    """
    before = before or {}
    published = 0
    for entity_type in _EVENT_ENTITIES:
        name = entity_type.__name__
        ids = _unit_ids(unit, name)
        if not ids:
            continue
        found: dict[str, _EventEntity] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            stmt = (
                select(entity_type)
                .where(entity_type.id.in_(chunk))
                .execution_options(populate_existing=True)
            )
            loaded = cast("list[_EventEntity]", session.scalars(stmt).all())
            found.update({entity.id: entity for entity in loaded})
        for entity_id in ids:
            entity = found.get(entity_id)
            events = _events_of(entity, before.get((name, entity_id))) if entity else []
            for event in events:
                bus.publish(event, session)
                published += 1
    return published + _publish_claim_changes(session, unit, bus, before)


def _changed_ids(
    unit: Unit, name: str, before: StoredStates, session: Session, entity_type: type[Any]
) -> list[str]:
    """Ids of ``name`` resources in ``unit`` that are new or whose stored resource changed."""
    ids = _unit_ids(unit, name)
    if not ids:
        return []
    table = cast(Table, entity_type.__table__)
    now: dict[str, Any] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        query = select(table.c.id, table.c.resource).where(table.c.id.in_(chunk))
        now.update({row.id: row.resource for row in session.execute(query)})
    changed = []
    for entity_id in ids:
        was = before.get((name, entity_id))
        if entity_id in now and (was is None or was[1] != now[entity_id]):
            changed.append(entity_id)
    return changed


def _publish_claim_changes(
    session: Session, unit: Unit, bus: EventBus, before: StoredStates
) -> int:
    """Publish :class:`ClaimChanged` once per claim a live unit changed.

    A Claim that is new or whose resource changed is a change of that claim; so is a new
    or changed ClaimResponse, for the claim it answers (the same content written again
    publishes nothing).
    """
    claim_ids = dict.fromkeys(_changed_ids(unit, "Claim", before, session, Claim), "written")
    response_ids = _changed_ids(unit, "ClaimResponse", before, session, ClaimResponse)
    for start in range(0, len(response_ids), 500):
        chunk = response_ids[start : start + 500]
        answered = select(ClaimResponse.claim_id).where(ClaimResponse.id.in_(chunk))
        for claim_id in session.scalars(answered):
            if claim_id is not None:
                claim_ids.setdefault(claim_id, "adjudicated")
    published = 0
    ids = list(claim_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        claims = (
            select(Claim)
            .where(Claim.id.in_(chunk))
            .order_by(Claim.id)
            .execution_options(populate_existing=True)
        )
        for claim in session.scalars(claims):
            bus.publish(ClaimChanged(claim=claim, change=claim_ids[claim.id]), session)
            published += 1
    return published


#: Called after a unit's rows are written, in the same savepoint, with that unit's
#: resources of one type (references already ``Type/id``) and the unit's source name.
#: A hook raising :class:`FhirValidationError` rejects the whole unit.
ImportHook = Callable[[Session, list[dict[str, Any]], str], None]
_IMPORT_HOOKS: dict[str, list[ImportHook]] = {}


def register_import_hook(resource_type: str, hook: ImportHook) -> None:
    """Run ``hook`` for every imported unit holding ``resource_type`` resources.

    Used by billing to post what a payer's ClaimResponse says, in the same transaction
    as the import (:func:`healthos_core.wiring.wire_live_path` installs it). Registering
    the same hook twice has no effect. Hooks must be idempotent: importing the same file
    again calls them again.
    """
    hooks = _IMPORT_HOOKS.setdefault(resource_type, [])
    if hook not in hooks:
        hooks.append(hook)


def unregister_import_hook(resource_type: str, hook: ImportHook) -> None:
    """Remove a hook added by :func:`register_import_hook` (no error when absent)."""
    hooks = _IMPORT_HOOKS.get(resource_type, [])
    if hook in hooks:
        hooks.remove(hook)


def import_hooks(resource_type: str) -> tuple[ImportHook, ...]:
    """Return the hooks registered for ``resource_type``, in call order."""
    return tuple(_IMPORT_HOOKS.get(resource_type, ()))


def _run_import_hooks(session: Session, unit: Unit) -> None:
    for resource_type, hooks in _IMPORT_HOOKS.items():
        resources = [r for _, r in unit.entries if r.get("resourceType") == resource_type]
        if not resources:
            continue
        for hook in list(hooks):
            hook(session, resources, unit.source)


def _table_order() -> list[str]:
    order: list[str] = []
    for resource_type in MAPPERS:
        order.append(TABLES[resource_type].name)
        if resource_type == "Patient":
            order.append("patient_identifier")
        if resource_type == "Claim":
            order.extend(["claim_item", "claim_diagnosis"])
    return order


TABLE_ORDER = _table_order()
TYPE_OF_TABLE = {table.name: rt for rt, table in TABLES.items()}
ALL_TABLES: dict[str, Table] = {
    **{table.name: table for table in TABLES.values()},
    "patient_identifier": PatientIdentifier.__table__,  # type: ignore[dict-item]
    "claim_item": ClaimItem.__table__,  # type: ignore[dict-item]
    "claim_diagnosis": ClaimDiagnosis.__table__,  # type: ignore[dict-item]
}


@cache
def _column_limits(table_name: str) -> tuple[tuple[str, int, int | None], ...]:
    """``(column, limit, scale)``: string columns' lengths (scale None), numerics' digits."""
    limits: list[tuple[str, int, int | None]] = []
    for column in ALL_TABLES[table_name].columns:
        kind = column.type
        if isinstance(kind, String) and kind.length:
            limits.append((column.name, kind.length, None))
        elif isinstance(kind, Numeric) and not isinstance(kind, Float) and kind.precision:
            scale = kind.scale or 0
            limits.append((column.name, kind.precision - scale, scale))
    return tuple(limits)


def _check_fits(table_name: str, row: dict[str, Any], label: str, source: str) -> None:
    """Reject a value its column cannot hold, on every backend alike.

    PostgreSQL refuses a string longer than its column or a number with too many
    digits (an anonymous DataError) while SQLite stores it, so without this check the
    same file would be imported or rejected depending on the backend, and the reason
    would not name the resource.
    """
    for column, limit, scale in _column_limits(table_name):
        value = row.get(column)
        if scale is None:
            if isinstance(value, str) and len(value) > limit:
                raise FhirValidationError(
                    f"{label}: {table_name}.{column} is {len(value)} characters long "
                    f"({value[:40]!r}...), longer than the {limit} HealthOS stores",
                    source=source,
                )
        elif isinstance(value, Decimal) and abs(value) >= 10**limit:
            raise FhirValidationError(
                f"{label}: {table_name}.{column} {value} has more than the {limit} digits "
                "before the decimal point HealthOS stores",
                source=source,
            )


def _parents_first(rows: list[dict[str, Any]], parent_key: str) -> list[dict[str, Any]]:
    by_id = {row["id"]: row for row in rows}
    ordered: list[dict[str, Any]] = []
    seen: set[str] = set()

    def place(row: dict[str, Any], depth: int = 0) -> None:
        if row["id"] in seen or depth > 50:
            return
        parent = by_id.get(row.get(parent_key) or "")
        if parent is not None:
            place(parent, depth + 1)
        seen.add(row["id"])
        ordered.append(row)

    for row in rows:
        place(row)
    return ordered


def _write(
    session: Session, rows: dict[str, dict[tuple[Any, ...], dict[str, Any]]], result: UnitResult
) -> None:
    """Upsert the unit's rows, referents first (the caller holds the savepoint)."""
    dialect = session.get_bind().dialect.name
    now = utcnow()
    for table_name in TABLE_ORDER:
        bucket = rows.get(table_name)
        if not bucket:
            continue
        table = ALL_TABLES[table_name]
        table_rows = list(bucket.values())
        key = CHILD_KEYS.get(table_name, ("id",))
        existing: set[str] = set()
        if key == ("id",):
            existing = _existing_ids(session, table, [r["id"] for r in table_rows])
            new = sum(1 for r in table_rows if r["id"] not in existing)
            result.created[TYPE_OF_TABLE[table_name]] += new
            for row in table_rows:
                row["created_at"] = now
                row["updated_at"] = now
            if "part_of_id" in table.c:
                table_rows = _parents_first(table_rows, "part_of_id")
        session.execute(upsert_statement(table, dialect, key), table_rows)
        if table_name == "claim" and existing:
            # A re-imported Claim replaces its lines (written next): drop the old ones,
            # or lines the new version no longer has would stay billed.
            _delete_claim_items(session, sorted(existing))


def _delete_claim_items(session: Session, claim_ids: list[str]) -> None:
    for table_name in ("claim_item", "claim_diagnosis"):
        table = ALL_TABLES[table_name]
        for start in range(0, len(claim_ids), 500):
            chunk = claim_ids[start : start + 500]
            session.execute(delete(table).where(table.c.claim_id.in_(chunk)))


@cache
def _ids_in(table: Table) -> Any:
    """``SELECT id FROM table WHERE id IN :ids``, built once per table."""
    return select(table.c.id).where(table.c.id.in_(bindparam("ids", expanding=True)))


def _existing_ids(session: Session, table: Table, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        found.update(session.scalars(_ids_in(table), {"ids": ids[start : start + 500]}))
    return found


# --------------------------------------------------------------------------- driver


def import_document(
    session: Session,
    document: Any,
    *,
    source: str = "<document>",
    origin: Origin = "backload",
    bus: EventBus | None = None,
) -> UnitResult:
    """Import one parsed Bundle or resource (see :func:`import_unit`).

    ``document`` is left as it was: references are resolved on a copy.
    """
    unit = unit_from_document(copy.deepcopy(document), source=source)
    return import_unit(session, unit, origin=origin, bus=bus)


def _import_file(
    factory: sessionmaker[Session], path: Path, origin: Origin, bus: EventBus | None
) -> tuple[UnitResult, str | None, bool]:
    """Import the units of one file: ``(counts, rejection reason or None, reference missing)``."""
    file_result = UnitResult()
    try:
        for unit in read_units(path):
            with session_scope(factory) as session:
                unit_result = import_unit(session, unit, origin=origin, bus=bus)
            for name in ("imported", "created", "skipped"):
                getattr(file_result, name).update(getattr(unit_result, name))
    except MissingReferenceError as exc:
        return file_result, exc.reason, True
    except FhirValidationError as exc:
        return file_result, exc.reason if exc.source else str(exc), False
    except HealthOSError as exc:  # a live event's subscriber refused it (strict capture)
        return file_result, str(exc), False
    except (IntegrityError, DataError) as exc:
        return file_result, f"rejected by the database: {str(exc.orig).splitlines()[0]}", False
    return file_result, None, False


def import_paths(
    factory: sessionmaker[Session],
    paths: Iterable[Path],
    *,
    on_file: Callable[[Path, UnitResult | None, str | None], None] | None = None,
    origin: Origin = "backload",
    bus: EventBus | None = None,
) -> ImportReport:
    """Import every FHIR file under ``paths``, one transaction per unit.

    Files are imported in sorted order; a file rejected only because a ``Type/id``
    reference is not in the database yet is tried again after the other files (so the
    files of an NDJSON bulk export may come in any order).

    Parameters
    ----------
    factory : sessionmaker
        Opens one session and transaction per unit (committed when the unit is stored,
        rolled back when it is rejected).
    paths : iterable of Path
        Files (``.json``, ``.ndjson``, ``.jsonl``, each optionally ``.gz``) or folders.
    on_file : callable, optional
        Called after each file with ``(path, result or None, rejection reason or None)``,
        e.g. to advance a progress bar.
    origin : {"backload", "live"}, default="backload"
        A back-load of history publishes no event (nothing is charged or rescored);
        ``"live"`` treats the files as a live feed: each unit's clinical events are
        published on ``bus`` in its transaction (see the module docstring). A unit whose
        live event a subscriber refuses (e.g. strict charge capture) is rejected whole.
    bus : EventBus, optional
        Where live events go; default :func:`~healthos_core.events.default_bus`.

    Returns
    -------
    ImportReport

    Raises
    ------
    InvalidInputError
        If a path does not exist, or ``origin`` is unknown (nothing is imported).
    """
    _check_origin(origin)
    started = time.perf_counter()
    files = list(iter_source_files(paths))
    report = ImportReport(files=len(files))

    def finish(path: Path, result: UnitResult, reason: str | None) -> None:
        if reason is None:
            report.add(result)
        else:
            report.rejected.append({"file": str(path), "reason": reason})
        if on_file is not None:
            on_file(path, result if reason is None else None, reason)

    # A file whose references name resources of a file still to come (an NDJSON bulk
    # export has Observation.ndjson sorted before Patient.ndjson) is tried again after
    # the others, as long as a round imports something.
    waiting: list[Path] = []
    for path in files:
        result, reason, missing_reference = _import_file(factory, path, origin, bus)
        if missing_reference:
            waiting.append(path)
        else:
            finish(path, result, reason)
    while waiting:
        outcomes = [(path, *_import_file(factory, path, origin, bus)) for path in waiting]
        progressed = any(reason is None for _, _, reason, _ in outcomes)
        waiting = []
        for path, result, reason, missing_reference in outcomes:
            if missing_reference and progressed:
                waiting.append(path)
            else:
                finish(path, result, reason)
    report.seconds = time.perf_counter() - started
    return report
