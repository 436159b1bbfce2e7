"""Small helpers over plain FHIR dicts: references, codings, dates and money."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from healthos_core.errors import InvalidInputError


def ref(resource_type: str, resource_id: str) -> str:
    """Return the reference string ``"Type/id"``.

    Examples
    --------
    >>> ref("Patient", "123")
    'Patient/123'
    """
    return f"{resource_type}/{resource_id}"


def parse_ref(reference: str) -> tuple[str, str]:
    """Split ``"Type/id"`` (or ``".../Type/id"``, or ``"Type/id/_history/n"``) into its parts.

    Raises
    ------
    InvalidInputError
        If ``reference`` has no ``Type/id`` part.

    Examples
    --------
    >>> parse_ref("Encounter/abc")
    ('Encounter', 'abc')
    """
    parts = reference.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) < 2 or not parts[-1] or not parts[-2][:1].isupper():
        raise InvalidInputError(f"reference {reference!r} is not of the form 'Type/id'")
    return parts[-2], parts[-1]


def ref_id(value: dict[str, Any] | None, resource_type: str | None = None) -> str | None:
    """Return the id of an already-resolved reference element ``{"reference": "Type/id"}``.

    With ``resource_type``, a reference to any other type gives ``None`` (FHIR lets
    e.g. ``Observation.subject`` name a Group or Device; only a Patient is a patient).

    Examples
    --------
    >>> ref_id({"reference": "Patient/p1"}, "Patient")
    'p1'
    >>> ref_id({"reference": "Group/g1"}, "Patient") is None
    True
    """
    if not value:
        return None
    reference = value.get("reference")
    if not reference or "/" not in reference:
        return None
    kind, resource_id = reference.rsplit("/", 1)
    if resource_type is not None and kind.rsplit("/", 1)[-1] != resource_type:
        return None
    return str(resource_id)


def first_coding(concept: dict[str, Any] | None) -> dict[str, Any]:
    """Return the first coding of a CodeableConcept (empty dict when there is none)."""
    if not concept:
        return {}
    codings = concept.get("coding") or []
    if codings:
        coding: dict[str, Any] = codings[0]
        if "display" not in coding and concept.get("text"):
            return {**coding, "display": concept["text"]}
        return coding
    if concept.get("text"):
        return {"display": concept["text"]}
    return {}


def coded_columns(concept: dict[str, Any] | None) -> dict[str, Any]:
    """Map a CodeableConcept to the ``code_system``/``code``/``display`` columns."""
    coding = first_coding(concept)
    display = coding.get("display")
    return {
        "code_system": coding.get("system"),
        "code": coding.get("code"),
        "display": display[:512] if display else None,
    }


def parse_datetime(value: str | None) -> dt.datetime | None:
    """Parse a FHIR ``dateTime``/``instant``/``date`` into an aware UTC datetime.

    A date (or partial date) means the start of that day in UTC; a time without a zone
    is read as UTC (FHIR requires a zone whenever a time is given).

    Raises
    ------
    InvalidInputError
        If ``value`` is not a FHIR date or dateTime.

    Examples
    --------
    >>> parse_datetime("2011-10-14T23:37:54+02:00").isoformat()
    '2011-10-14T21:37:54+00:00'
    >>> parse_datetime("1956-08").isoformat()
    '1956-08-01T00:00:00+00:00'
    """
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 4:
            return dt.datetime(int(text), 1, 1, tzinfo=dt.UTC)
        if len(text) == 7:
            return dt.datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=dt.UTC)
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInputError(f"{value!r} is not a FHIR date or dateTime") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


#: The earliest "as of" accepted: before any record HealthOS holds (scorers look back from
#: it, and a moment near year 1 would leave the calendar).
EARLIEST_AS_OF = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
#: ``YYYY-MM-DD`` (ISO 8601 extended calendar date).
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: An RFC 3339 date-time (OpenAPI's ``date-time``), its offset optional here only so that a
#: missing one is refused by name in :func:`parse_as_of`.
_ISO_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})?"
)


def parse_as_of(value: str, *, name: str = "as_of") -> dt.datetime:
    """Parse an "as of" instant: an ISO 8601 date (the END of that day, UTC) or aware date-time.

    The one rule for every ``as_of`` a person or a client passes: the CLI's ``--as-of`` and
    the API's ``?as_of=``. A report "as of 2021-07-31" includes everything dated that day,
    so a date means 2021-07-31T23:59:59.999999Z. A date-time must carry its zone (``Z`` or
    ``±hh:mm``, as RFC 3339 requires); numbers (Unix timestamps such as ``0.0``), partial
    dates, week or basic-format dates and naive date-times are refused.

    Parameters
    ----------
    value : str
        ``YYYY-MM-DD`` or ``YYYY-MM-DDThh:mm:ss[.fff...](Z|±hh:mm)`` (RFC 3339, the
        ``date`` and ``date-time`` formats the OpenAPI document names; fractions beyond
        microseconds are truncated).
    name : str, default="as_of"
        The parameter's name as the caller knows it (``--as-of`` on the command line),
        named in the error.

    Returns
    -------
    datetime
        Aware, in UTC.

    Raises
    ------
    InvalidInputError
        If ``value`` is not such a date or date-time, names no real day or time, has no
        zone, or is before :data:`EARLIEST_AS_OF` (1900-01-01) or after year 9999 in UTC.

    Examples
    --------
    >>> parse_as_of("2021-07-31").isoformat()
    '2021-07-31T23:59:59.999999+00:00'
    >>> parse_as_of("2021-07-31T14:00:00+02:00").isoformat()
    '2021-07-31T12:00:00+00:00'
    """
    text = value.strip()
    is_date = _ISO_DATE.fullmatch(text) is not None
    if not is_date and _ISO_DATE_TIME.fullmatch(text) is None:
        raise InvalidInputError(
            f"{name} {value!r} is not an ISO 8601 date (2021-07-31) or date-time with a "
            "time zone (2021-07-31T12:00:00Z)"
        )
    try:
        if is_date:
            parsed = dt.datetime.combine(dt.date.fromisoformat(text), dt.time.max, dt.UTC)
        else:
            parsed = dt.datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInputError(f"{name} {value!r} is not a calendar date and time") from exc
    if parsed.tzinfo is None:
        raise InvalidInputError(
            f"{name} {value!r} has no time zone: add Z (UTC) or an offset such as +02:00"
        )
    try:
        moment = parsed.astimezone(dt.UTC)
    except OverflowError as exc:
        raise InvalidInputError(f"{name} {value!r} is out of range in UTC") from exc
    if moment < EARLIEST_AS_OF:
        raise InvalidInputError(
            f"{name} {value!r} is out of range: before {EARLIEST_AS_OF:%Y-%m-%d}, earlier "
            "than any record"
        )
    return moment


def parse_date(value: str | None) -> dt.date | None:
    """Parse a FHIR ``date`` (``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``)."""
    parsed = parse_datetime(value)
    return parsed.date() if parsed else None


def format_datetime(value: dt.datetime | None) -> str | None:
    """Format an aware datetime as a FHIR ``dateTime`` string, in UTC with ``Z``.

    One canonical form (FHIR R4 §2.24.0.6 ``dateTime``: ``Z`` or an offset), so the same
    instant written by two paths is stored as the same text. A naive value is read as UTC.
    """
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def money(value: dict[str, Any] | None) -> tuple[Decimal | None, str | None]:
    """Return ``(amount, currency)`` of a FHIR Money element, exact (no float rounding)."""
    if not value or value.get("value") is None:
        return None, None
    try:
        amount = Decimal(str(value["value"]))
    except InvalidOperation as exc:
        raise InvalidInputError(f"Money value {value['value']!r} is not a number") from exc
    return amount.quantize(Decimal("0.01")), value.get("currency")


def period(value: dict[str, Any] | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Return ``(start, end)`` of a FHIR Period."""
    if not value:
        return None, None
    return parse_datetime(value.get("start")), parse_datetime(value.get("end"))
