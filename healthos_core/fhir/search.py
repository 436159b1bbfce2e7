"""FHIR R4 search and read over the stored record (no HTTP here).

Each supported resource type has a table (:data:`~healthos_core.fhir.mapping.TABLES`)
and a set of search parameters (:data:`SEARCH_PARAMS`), each mapped to a SQL condition
on that table: ``token`` (``[system|]code``), ``reference`` (``[Type/]id``), ``date``
(with the FHIR prefixes ``eq ne lt le gt ge sa eb`` and the precision of the value)
and ``string`` (starts with, case-insensitive). Every type also takes ``_id`` and
``_lastUpdated`` (the row's ``updated_at``). Values separated by commas are alternatives
(OR); a repeated parameter must hold each time (AND).

Results come back in pages: ``_count`` (default :data:`DEFAULT_COUNT`, at most
:data:`MAX_COUNT`; ``0`` for the total only), ``_offset`` (where the page starts; the
``next`` link carries it) and ``_sort`` (parameter names, ``-`` for descending; the id
always breaks ties, so pages are stable).

``meta.versionId`` and ``meta.lastUpdated`` are derived from the row's ``updated_at``
(every write sets it): the version is its time in microseconds since the epoch, so it
changes with every write and orders versions.

What a role may read, and what it sees of a patient, is :mod:`healthos_core.fhir.views`.

Examples
--------
>>> query = parse_search("Observation", [("patient", "p1"), ("_count", "10")])  # doctest: +SKIP
>>> page = run_search(session, query, view)  # doctest: +SKIP
>>> page.total, len(page.resources)  # doctest: +SKIP
(42, 10)
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from sqlalchemy import (
    Column,
    ColumnElement,
    Select,
    Table,
    and_,
    exists,
    func,
    not_,
    or_,
    select,
)
from sqlalchemy.orm import Session

from healthos_core.errors import InvalidInputError, NotFoundError
from healthos_core.fhir.exporter import to_fhir
from healthos_core.fhir.mapping import TABLES
from healthos_core.fhir.views import FhirView
from healthos_core.record.entities import PatientIdentifier, RecordMixin

ParamKind = Literal["token", "reference", "date", "string"]

#: Page size when ``_count`` is not given, and the largest page served.
DEFAULT_COUNT: Final = 50
MAX_COUNT: Final = 1000
#: Most values one parameter may list (OR), and most parameters one search may have (AND):
#: a search is a page of a list, not a bulk query (that is ``$export``).
MAX_ALTERNATIVES: Final = 100
MAX_PARAMETERS: Final = 30
#: FHIR ``id``: 1–64 of ``[A-Za-z0-9-.]`` (R4 §2.24.0.1, datatype ``id``).
ID_PATTERN: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")


@dataclass(frozen=True, slots=True)
class SearchParam:
    """One search parameter of one type: its FHIR type and the columns it reads.

    Attributes
    ----------
    kind : {"token", "reference", "date", "string"}
        The FHIR search parameter type.
    column : str
        The column searched (the code column for tokens, the id column for references).
    system_column : str or None
        For tokens: the column holding the code system (``system|code`` matches both).
    target : str or None
        For references: the type referenced (``Patient``).
    expression : str
        The FHIRPath the parameter stands for (shown in the CapabilityStatement).
    """

    kind: ParamKind
    column: str
    system_column: str | None = None
    target: str | None = None
    expression: str = ""


def _ref(column: str, target: str, expression: str) -> SearchParam:
    return SearchParam("reference", column, target=target, expression=expression)


def _token(column: str, expression: str, system_column: str | None = None) -> SearchParam:
    return SearchParam("token", column, system_column=system_column, expression=expression)


def _date(column: str, expression: str) -> SearchParam:
    return SearchParam("date", column, expression=expression)


def _string(column: str, expression: str) -> SearchParam:
    return SearchParam("string", column, expression=expression)


def _subject(resource_type: str, field_name: str = "subject") -> dict[str, SearchParam]:
    expression = f"{resource_type}.{field_name}"
    params = {"patient": _ref("patient_id", "Patient", expression)}
    if field_name == "subject":
        params["subject"] = _ref("patient_id", "Patient", expression)
    return params


def _code(resource_type: str, field_name: str = "code") -> SearchParam:
    return _token("code", f"{resource_type}.{field_name}", "code_system")


#: Search parameters per type (beyond ``_id`` and ``_lastUpdated``, which every type takes).
SEARCH_PARAMS: Final[dict[str, dict[str, SearchParam]]] = {
    "Organization": {
        "name": _string("name", "Organization.name"),
        "partof": _ref("part_of_id", "Organization", "Organization.partOf"),
    },
    "Location": {
        "name": _string("name", "Location.name"),
        "status": _token("status", "Location.status"),
        "partof": _ref("part_of_id", "Location", "Location.partOf"),
    },
    "Practitioner": {
        "family": _string("family", "Practitioner.name.family"),
        "given": _string("given", "Practitioner.name.given"),
        "gender": _token("gender", "Practitioner.gender"),
    },
    "Patient": {
        "identifier": _token("value", "Patient.identifier", "system"),
        "family": _string("family", "Patient.name.family"),
        "given": _string("given", "Patient.name.given"),
        "gender": _token("gender", "Patient.gender"),
        "birthdate": _date("birth_date", "Patient.birthDate"),
    },
    "Coverage": {
        **_subject("Coverage", "beneficiary"),
        "beneficiary": _ref("patient_id", "Patient", "Coverage.beneficiary"),
        "status": _token("status", "Coverage.status"),
        "payor": _ref("payor_id", "Organization", "Coverage.payor"),
    },
    "Encounter": {
        **_subject("Encounter"),
        "status": _token("status", "Encounter.status"),
        "class": _token("class_code", "Encounter.class"),
        "type": _token("type_code", "Encounter.type"),
        "date": _date("period_start", "Encounter.period"),
        "location": _ref("location_id", "Location", "Encounter.location.location"),
        "service-provider": _ref(
            "service_provider_id", "Organization", "Encounter.serviceProvider"
        ),
    },
    "Condition": {
        **_subject("Condition"),
        "encounter": _ref("encounter_id", "Encounter", "Condition.encounter"),
        "code": _code("Condition"),
        "clinical-status": _token("clinical_status", "Condition.clinicalStatus"),
        "onset-date": _date("onset_at", "Condition.onset"),
        "recorded-date": _date("recorded_at", "Condition.recordedDate"),
    },
    "Observation": {
        **_subject("Observation"),
        "encounter": _ref("encounter_id", "Encounter", "Observation.encounter"),
        "code": _code("Observation"),
        "status": _token("status", "Observation.status"),
        "category": _token("category", "Observation.category"),
        "date": _date("effective_at", "Observation.effective"),
    },
    "Procedure": {
        **_subject("Procedure"),
        "encounter": _ref("encounter_id", "Encounter", "Procedure.encounter"),
        "code": _code("Procedure"),
        "status": _token("status", "Procedure.status"),
        "date": _date("performed_start", "Procedure.performed"),
    },
    "MedicationRequest": {
        **_subject("MedicationRequest"),
        "encounter": _ref("encounter_id", "Encounter", "MedicationRequest.encounter"),
        "code": _code("MedicationRequest", "medication"),
        "status": _token("status", "MedicationRequest.status"),
        "intent": _token("intent", "MedicationRequest.intent"),
        "authoredon": _date("authored_on", "MedicationRequest.authoredOn"),
    },
    "MedicationAdministration": {
        **_subject("MedicationAdministration"),
        "encounter": _ref("encounter_id", "Encounter", "MedicationAdministration.context"),
        "context": _ref("encounter_id", "Encounter", "MedicationAdministration.context"),
        "code": _code("MedicationAdministration", "medication"),
        "status": _token("status", "MedicationAdministration.status"),
        "effective-time": _date("effective_start", "MedicationAdministration.effective"),
    },
    "Immunization": {
        **_subject("Immunization", "patient"),
        "encounter": _ref("encounter_id", "Encounter", "Immunization.encounter"),
        "vaccine-code": _code("Immunization", "vaccineCode"),
        "code": _code("Immunization", "vaccineCode"),
        "status": _token("status", "Immunization.status"),
        "date": _date("occurrence_at", "Immunization.occurrence"),
    },
    "DiagnosticReport": {
        **_subject("DiagnosticReport"),
        "encounter": _ref("encounter_id", "Encounter", "DiagnosticReport.encounter"),
        "code": _code("DiagnosticReport"),
        "status": _token("status", "DiagnosticReport.status"),
        "category": _token("category", "DiagnosticReport.category"),
        "date": _date("effective_at", "DiagnosticReport.effective"),
    },
    "AllergyIntolerance": {
        **_subject("AllergyIntolerance", "patient"),
        "code": _code("AllergyIntolerance"),
        "clinical-status": _token("clinical_status", "AllergyIntolerance.clinicalStatus"),
        "criticality": _token("criticality", "AllergyIntolerance.criticality"),
        "date": _date("recorded_at", "AllergyIntolerance.recordedDate"),
    },
    "ChargeItem": {
        **_subject("ChargeItem"),
        "encounter": _ref("encounter_id", "Encounter", "ChargeItem.context"),
        "context": _ref("encounter_id", "Encounter", "ChargeItem.context"),
        "code": _code("ChargeItem"),
        "status": _token("status", "ChargeItem.status"),
        "occurrence": _date("occurred_at", "ChargeItem.occurrence"),
        "entered-date": _date("entered_at", "ChargeItem.enteredDate"),
    },
    "Claim": {
        **_subject("Claim", "patient"),
        "encounter": _ref("encounter_id", "Encounter", "Claim.item.encounter"),
        "status": _token("status", "Claim.status"),
        "use": _token("use", "Claim.use"),
        "created": _date("created", "Claim.created"),
        "insurer": _ref("insurer_id", "Organization", "Claim.insurer"),
    },
    "ExplanationOfBenefit": {
        **_subject("ExplanationOfBenefit", "patient"),
        "claim": _ref("claim_id", "Claim", "ExplanationOfBenefit.claim"),
        "status": _token("status", "ExplanationOfBenefit.status"),
        "created": _date("created", "ExplanationOfBenefit.created"),
    },
    "Task": {
        "patient": _ref("patient_id", "Patient", "Task.for"),
        "subject": _ref("patient_id", "Patient", "Task.for"),
        "encounter": _ref("encounter_id", "Encounter", "Task.encounter"),
        "code": _token("code", "Task.code"),
        "status": _token("status", "Task.status"),
        "priority": _token("priority", "Task.priority"),
        "authored-on": _date("arrived_at", "Task.authoredOn"),
    },
    "Appointment": {
        "patient": _ref("patient_id", "Patient", "Appointment.participant.actor"),
        "location": _ref("location_id", "Location", "Appointment.participant.actor"),
        "status": _token("status", "Appointment.status"),
        "date": _date("start", "Appointment.start"),
    },
    "ClaimResponse": {
        **_subject("ClaimResponse", "patient"),
        "request": _ref("claim_id", "Claim", "ClaimResponse.request"),
        "status": _token("status", "ClaimResponse.status"),
        "outcome": _token("outcome", "ClaimResponse.outcome"),
        "created": _date("created", "ClaimResponse.created"),
    },
}

#: Parameters every type takes.
COMMON_PARAMS: Final[dict[str, SearchParam]] = {
    "_id": _token("id", "Resource.id"),
    "_lastUpdated": _date("updated_at", "Resource.meta.lastUpdated"),
}
#: Result parameters (they shape the page, they do not filter).
RESULT_PARAMS: Final = frozenset({"_count", "_offset", "_sort"})
#: Parameters accepted and ignored: the format is always JSON, and the total is always
#: counted exactly (``_total``; HAPI's ``_totalMethod``, which fhirpy's ``count()`` sends).
IGNORED_PARAMS: Final = frozenset({"_format", "_pretty", "_total", "_totalMethod"})


def supported_types() -> tuple[str, ...]:
    """Return the resource types HealthOS stores and serves, in write order."""
    return tuple(SEARCH_PARAMS)


def params_of(resource_type: str) -> dict[str, SearchParam]:
    """Return every search parameter of ``resource_type`` (its own and the common ones)."""
    return {**COMMON_PARAMS, **SEARCH_PARAMS[resource_type]}


def table_of(resource_type: str) -> Table:
    """Return the table of a supported type.

    Raises
    ------
    NotFoundError
        If HealthOS does not store ``resource_type``.
    """
    if resource_type not in SEARCH_PARAMS:
        raise NotFoundError(f"HealthOS does not serve the resource type {resource_type!r}")
    return TABLES[resource_type]


def entity_of(resource_type: str) -> type[RecordMixin]:
    """Return the entity class of a supported type (see :func:`table_of`)."""
    table = table_of(resource_type)
    for mapper in RecordMixin.__subclasses__():
        if getattr(mapper, "__table__", None) is table:
            return mapper
    for subclass in _all_record_entities():
        if getattr(subclass, "__table__", None) is table:
            return subclass
    raise NotFoundError(f"HealthOS does not serve the resource type {resource_type!r}")


def _all_record_entities() -> Iterable[type[RecordMixin]]:
    from healthos_core.db import Base

    for mapper in Base.registry.mappers:
        cls = mapper.class_
        if issubclass(cls, RecordMixin):
            yield cls


# --------------------------------------------------------------------------- versions


def version_id(updated_at: dt.datetime) -> str:
    """Return ``meta.versionId`` for a row last written at ``updated_at``.

    Examples
    --------
    >>> version_id(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    '1767225600000000'
    """
    moment = updated_at if updated_at.tzinfo else updated_at.replace(tzinfo=dt.UTC)
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return str((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def last_updated(updated_at: dt.datetime) -> str:
    """Return ``meta.lastUpdated`` (an ISO instant in UTC) for ``updated_at``."""
    moment = updated_at if updated_at.tzinfo else updated_at.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def with_meta(resource: dict[str, Any], updated_at: dt.datetime) -> dict[str, Any]:
    """Set ``meta.versionId`` and ``meta.lastUpdated`` (other ``meta`` elements are kept)."""
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = version_id(updated_at)
    meta["lastUpdated"] = last_updated(updated_at)
    resource["meta"] = meta
    return resource


def resource_of(entity: RecordMixin, view: FhirView) -> dict[str, Any]:
    """Return the FHIR resource of ``entity`` as ``view`` sees it, with its ``meta``."""
    return view.redact(with_meta(to_fhir(entity), entity.updated_at))


def check_id(resource_id: str) -> None:
    """Refuse an id that no FHIR resource can have (404: there is no such resource).

    Raises
    ------
    NotFoundError
        If ``resource_id`` is not 1–64 of ``[A-Za-z0-9-.]``.
    """
    if not ID_PATTERN.fullmatch(resource_id):
        raise NotFoundError(f"{resource_id[:80]!r} is not a FHIR id: no resource has it")


def read_resource(
    session: Session, resource_type: str, resource_id: str, view: FhirView
) -> dict[str, Any]:
    """Return one stored resource as ``view`` sees it.

    Raises
    ------
    NotFoundError
        If the type is not served or there is no such resource.
    PermissionDeniedError
        If ``view``'s role may not read ``resource_type``.
    """
    entity_type = entity_of(resource_type)
    view.check_type(resource_type)
    check_id(resource_id)
    entity = session.get(entity_type, resource_id)
    if entity is None:
        raise NotFoundError(f"{resource_type}/{resource_id} does not exist")
    return resource_of(entity, view)


def current_version(session: Session, resource_type: str, resource_id: str) -> str | None:
    """Return the ``meta.versionId`` of a stored resource, ``None`` if there is none."""
    table = table_of(resource_type)
    updated = session.scalar(select(table.c.updated_at).where(table.c.id == resource_id))
    return version_id(updated) if updated is not None else None


# --------------------------------------------------------------------------- parsing


@dataclass
class SearchQuery:
    """A parsed search: the filters, the sort and the page."""

    resource_type: str
    conditions: list[ColumnElement[bool]] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    #: The parameters as given (name, value), without ``_offset``: for the links.
    echo: list[tuple[str, str]] = field(default_factory=list)


_PREFIXES: Final = ("eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap")
_DATE_FORMS: Final = (
    (re.compile(r"\d{4}"), "year"),
    (re.compile(r"\d{4}-\d{2}"), "month"),
    (re.compile(r"\d{4}-\d{2}-\d{2}"), "day"),
)


def _bad(message: str) -> InvalidInputError:
    return InvalidInputError(message, code="invalid-search")


def date_range(value: str, name: str) -> tuple[dt.datetime, dt.datetime]:
    """Return the ``[start, end)`` instant range a FHIR date search value stands for.

    ``2020`` is the whole year, ``2020-03`` the month, ``2020-03-02`` the day (UTC), a
    dateTime with seconds that second.

    Raises
    ------
    InvalidInputError
        If ``value`` is not a FHIR date or dateTime.

    Examples
    --------
    >>> date_range("2020-02", "date")[1]
    datetime.datetime(2020, 3, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    try:
        for pattern, precision in _DATE_FORMS:
            if pattern.fullmatch(value):
                parts = [int(p) for p in value.split("-")] + [1, 1]
                start = dt.datetime(parts[0], parts[1], parts[2], tzinfo=dt.UTC)
                if precision == "year":
                    return start, start.replace(year=start.year + 1)
                if precision == "month":
                    month = start.month % 12 + 1
                    year = start.year + (1 if start.month == 12 else 0)
                    return start, start.replace(year=year, month=month)
                return start, start + dt.timedelta(days=1)
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError) as exc:
        raise _bad(f"{name}: {value!r} is not a FHIR date or dateTime") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    moment = moment.astimezone(dt.UTC)
    step = dt.timedelta(microseconds=1) if moment.microsecond else dt.timedelta(seconds=1)
    return moment, moment + step


def _date_condition(column: Column[Any], value: str, name: str) -> ColumnElement[bool]:
    prefix = value[:2] if value[:2] in _PREFIXES else "eq"
    raw = value[2:] if value[:2] in _PREFIXES else value
    start, end = date_range(raw, name)
    if _python_type(column) is dt.date:
        lo: Any = start.date()
        hi: Any = end.date()
    else:
        lo, hi = start, end
    below_lo: ColumnElement[bool] = column < lo
    below_hi: ColumnElement[bool] = column < hi
    if prefix in ("eq", "ap"):
        return and_(not_(below_lo), below_hi)
    if prefix == "ne":
        return or_(below_lo, not_(below_hi))
    if prefix in ("lt", "eb"):
        return below_lo
    if prefix == "le":
        return below_hi
    if prefix in ("gt", "sa"):
        return not_(below_hi)
    return not_(below_lo)  # ge


def _python_type(column: Column[Any]) -> type | None:
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return None
    return kind if isinstance(kind, type) else None


def _token_condition(
    table: Table, param: SearchParam, value: str, view: FhirView, resource_type: str
) -> ColumnElement[bool]:
    system: str | None = None
    code = value
    if "|" in value:
        system, _, code = value.partition("|")
    if resource_type == "Patient" and param.column == "value":
        wanted = [PatientIdentifier.value == code, view.identifier_condition()]
        if system:
            wanted.append(PatientIdentifier.system == system)
        return exists().where(PatientIdentifier.patient_id == table.c.id, *wanted)
    column = table.c[param.column]
    conditions: list[ColumnElement[bool]] = [column == code] if code else []
    if system and param.system_column is not None:
        conditions.append(table.c[param.system_column] == system)
    if not conditions:
        raise _bad(f"{value!r}: give a code (system|code or code)")
    return and_(*conditions)


def _condition(
    table: Table,
    name: str,
    param: SearchParam,
    values: Sequence[str],
    view: FhirView,
    resource_type: str,
) -> ColumnElement[bool]:
    if len(values) > MAX_ALTERNATIVES:
        raise _bad(f"{name}: at most {MAX_ALTERNATIVES} comma-separated values")
    options: list[ColumnElement[bool]] = []
    for value in values:
        if not value:
            raise _bad(f"{name}: an empty value matches nothing; leave the parameter out")
        if param.kind == "reference":
            target, _, ident = value.rpartition("/")
            if target and target != param.target and not value.startswith("http"):
                raise _bad(f"{name}: {value!r} is not a reference to a {param.target}")
            options.append(table.c[param.column] == ident)
        elif param.kind == "token":
            options.append(_token_condition(table, param, value, view, resource_type))
        elif param.kind == "date":
            column = table.c[param.column]
            options.append(_date_condition(column, value, name))
        else:
            escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            options.append(func.lower(table.c[param.column]).like(f"{escaped}%", escape="\\"))
    return or_(*options) if len(options) > 1 else options[0]


def _integer(name: str, value: str, low: int, high: int) -> int:
    if not re.fullmatch(r"\d{1,10}", value) or not low <= int(value) <= high:
        raise _bad(f"{name}: {value!r} is not a whole number from {low} to {high}")
    return int(value)


def parse_search(
    resource_type: str, items: Iterable[tuple[str, str]], view: FhirView
) -> SearchQuery:
    """Parse search parameters into a :class:`SearchQuery`.

    Parameters
    ----------
    resource_type : str
        The type searched.
    items : iterable of (str, str)
        The query parameters, in order (repeated names allowed).
    view : FhirView
        The caller's view (a Patient ``identifier`` search matches only identifiers it
        may see).

    Raises
    ------
    NotFoundError
        If the type is not served.
    InvalidInputError
        An unknown parameter or modifier, or a value that cannot be parsed (the
        message names the parameters the type supports).
    """
    table = table_of(resource_type)
    known = params_of(resource_type)
    query = SearchQuery(resource_type)
    items = list(items)
    if len(items) > MAX_PARAMETERS:
        raise _bad(f"a search takes at most {MAX_PARAMETERS} parameters")
    for name, value in items:
        if "\x00" in name or "\x00" in value:
            raise _bad("a NUL character (%00) cannot be in a search")
        if name in IGNORED_PARAMS:
            continue
        if name != "_offset":
            query.echo.append((name, value))
        if name == "_count":
            query.count = _integer(name, value, 0, MAX_COUNT)
        elif name == "_offset":
            query.offset = _integer(name, value, 0, 10**9)
        elif name == "_sort":
            query.sort = []
            for part in value.split(","):
                key = part.removeprefix("-")
                param = known.get(key)
                if param is None or param.kind not in ("date", "token", "string"):
                    raise _bad(
                        f"_sort: {key!r} is not a sortable parameter of {resource_type}; use "
                        + ", ".join(k for k, p in known.items() if p.kind != "reference")
                    )
                if param.column not in table.c:
                    raise _bad(f"_sort: {key!r} cannot sort {resource_type}")
                query.sort.append((param.column, part.startswith("-")))
        else:
            base, _, modifier = name.partition(":")
            param = known.get(base)
            if param is None:
                raise _bad(
                    f"unknown search parameter {name!r} for {resource_type}; supported: "
                    + ", ".join([*sorted(known), "_count", "_offset", "_sort"])
                )
            if modifier:
                raise _bad(f"{name}: modifiers are not supported")
            query.conditions.append(
                _condition(table, name, param, value.split(","), view, resource_type)
            )
    return query


# --------------------------------------------------------------------------- running


@dataclass
class SearchPage:
    """One page of a search: the total and the resources (as the view sees them)."""

    total: int
    resources: list[dict[str, Any]]
    offset: int
    count: int

    @property
    def has_next(self) -> bool:
        """Whether a page follows this one."""
        return self.count > 0 and self.offset + self.count < self.total


def _base_select(query: SearchQuery) -> Select[Any]:
    stmt = select(entity_of(query.resource_type))
    return stmt.where(*query.conditions) if query.conditions else stmt


def run_search(session: Session, query: SearchQuery, view: FhirView) -> SearchPage:
    """Run a parsed search: the total and one page of resources.

    Raises
    ------
    PermissionDeniedError
        If ``view``'s role may not read the type.
    """
    view.check_type(query.resource_type)
    table = table_of(query.resource_type)
    stmt = _base_select(query)
    total_stmt = select(func.count()).select_from(table)
    if query.conditions:
        total_stmt = total_stmt.where(*query.conditions)
    total = int(session.scalar(total_stmt) or 0)
    resources: list[dict[str, Any]] = []
    if query.count > 0 and query.offset < total:
        order = [
            (table.c[column].desc() if descending else table.c[column].asc())
            for column, descending in query.sort
        ]
        order.append(table.c.id.asc())
        rows = session.scalars(stmt.order_by(*order).offset(query.offset).limit(query.count))
        resources = [resource_of(row, view) for row in rows]
    return SearchPage(total=total, resources=resources, offset=query.offset, count=query.count)


def patient_everything(
    session: Session, patient_id: str, view: FhirView
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return a patient and every resource of their compartment that ``view`` may read.

    The compartment is every served type with a ``patient`` parameter, plus the
    Organizations, Practitioners and Locations those resources reference.

    Returns
    -------
    tuple of (dict, list of dict)
        The Patient and the other resources (each as ``view`` sees it).

    Raises
    ------
    NotFoundError
        If there is no such patient.
    PermissionDeniedError
        If the role may not read patients.
    """
    patient = read_resource(session, "Patient", patient_id, view)
    others: list[dict[str, Any]] = []
    referenced: dict[str, set[str]] = {
        "Organization": set(),
        "Practitioner": set(),
        "Location": set(),
    }
    _collect(patient, referenced)
    for resource_type, params in SEARCH_PARAMS.items():
        if "patient" not in params or not view.may_read(resource_type):
            continue
        entity = entity_of(resource_type)
        table = table_of(resource_type)
        rows = session.scalars(
            select(entity).where(table.c.patient_id == patient_id).order_by(table.c.id)
        )
        for row in rows:
            resource = resource_of(row, view)
            others.append(resource)
            _collect(resource, referenced)
    for resource_type, ids in referenced.items():
        if not ids or not view.may_read(resource_type):
            continue
        entity = entity_of(resource_type)
        table = table_of(resource_type)
        for row in session.scalars(
            select(entity).where(table.c.id.in_(sorted(ids))).order_by(table.c.id)
        ):
            others.append(resource_of(row, view))
    return patient, others


def _collect(node: Any, referenced: dict[str, set[str]]) -> None:
    if isinstance(node, dict):
        reference = node.get("reference")
        if isinstance(reference, str) and reference.count("/") == 1:
            resource_type, _, resource_id = reference.partition("/")
            if resource_type in referenced:
                referenced[resource_type].add(resource_id)
        for value in node.values():
            if isinstance(value, (dict, list)):
                _collect(value, referenced)
    elif isinstance(node, list):
        for item in node:
            _collect(item, referenced)
