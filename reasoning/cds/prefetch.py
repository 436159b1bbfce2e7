"""What a CDS Hooks call brings: its context and prefetch, read safely.

A service says in discovery which FHIR data it wants with each call (prefetch templates,
CDS Hooks 2.0.1 §Prefetch template). When the EHR sends a prefetched resource it is used;
when it does not (the key is missing or ``null``) the data is read from HealthOS's own
record; when neither has it, the call cannot be answered: :class:`PrefetchUnavailableError`
(HTTP 412, as the specification's §Prefetch "HTTP 412" advice for a service whose
required data is unavailable). Everything taken from the request is checked before it
reaches a query or a stored text (FHIR ids, codes, no NUL or unpaired surrogates).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from healthos_core.errors import HealthOSError, InvalidInputError

__all__ = [
    "PrefetchUnavailableError",
    "bundle_resources",
    "context_id",
    "fhir_code",
    "prefetched",
    "reference_id",
    "safe_text",
]

#: FHIR R4 ``id`` datatype (http://hl7.org/fhir/R4/datatypes.html#id).
_FHIR_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")
#: FHIR R4 ``code`` datatype, at most 64 characters (the record's code columns).
_FHIR_CODE: Final = re.compile(r"[^\s]+(?: [^\s]+)*")
_MAX_CODE: Final = 64
_MAX_TEXT: Final = 512


class PrefetchUnavailableError(HealthOSError):
    """Neither the prefetch nor HealthOS's record holds what a CDS service needs.

    Answered with HTTP 412 (CDS Hooks 2.0.1 §Prefetch: a service that cannot get the data
    it needs "SHOULD respond with an HTTP 412 Precondition Failed").
    """

    code = "cds-prefetch-unavailable"


def safe_text(value: object, where: str, *, limit: int = _MAX_TEXT) -> str:
    """Return request text that can be stored: a string, no NUL, valid UTF-8, cut to ``limit``.

    Raises
    ------
    InvalidInputError
        If ``value`` is not a string, holds NUL or an unpaired UTF-16 surrogate.
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"{where} must be a string")
    if "\x00" in value:
        raise InvalidInputError(f"{where} holds a NUL character: no text field can store it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"{where} holds an unpaired UTF-16 surrogate: no text field can store it"
        ) from None
    return value[:limit]


def context_id(context: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    """Return ``context[name]`` as a FHIR id (``patientId``, ``encounterId``).

    Raises
    ------
    InvalidInputError
        If it is required and missing, or not a FHIR id (1–64 of ``A-Z a-z 0-9 - .``).
    """
    value = context.get(name)
    if value is None:
        if required:
            raise InvalidInputError(f"context.{name} is required by this hook")
        return None
    if not isinstance(value, str) or not _FHIR_ID.fullmatch(value):
        raise InvalidInputError(
            f"context.{name} must be a FHIR id (1-64 letters, digits, '-' or '.')"
        )
    return value


def reference_id(reference: object, resource_type: str) -> str | None:
    """Return the id of a ``{"reference": "Type/id"}`` of ``resource_type``, else ``None``."""
    if not isinstance(reference, Mapping):
        return None
    text = reference.get("reference")
    if not isinstance(text, str):
        return None
    kind, _, rid = text.rstrip("/").rpartition("/")
    if kind.rsplit("/", 1)[-1] != resource_type or not _FHIR_ID.fullmatch(rid):
        return None
    return rid


def fhir_code(concept: object, where: str) -> tuple[str | None, str, str | None] | None:
    """Return ``(system, code, display)`` of a CodeableConcept's first coding with a code.

    Returns ``None`` when the concept has no coding with a code.

    Raises
    ------
    InvalidInputError
        If the code is not a FHIR code of at most 64 characters, or a text cannot be stored.
    """
    if not isinstance(concept, Mapping):
        return None
    codings = concept.get("coding")
    if not isinstance(codings, list):
        return None
    for coding in codings:
        if not isinstance(coding, Mapping) or coding.get("code") is None:
            continue
        code = safe_text(coding["code"], f"{where}.coding.code")
        if len(code) > _MAX_CODE or not _FHIR_CODE.fullmatch(code):
            raise InvalidInputError(f"{where}.coding.code must be a FHIR code of at most 64 chars")
        system = coding.get("system")
        display = (
            coding.get("display") if coding.get("display") is not None else concept.get("text")
        )
        return (
            None if system is None else safe_text(system, f"{where}.coding.system", limit=128),
            code,
            None if display is None else safe_text(display, f"{where}.coding.display"),
        )
    return None


def prefetched(
    prefetch: Mapping[str, Any] | None, key: str, resource_type: str, rid: str | None
) -> dict[str, Any] | None:
    """Return the prefetched resource under ``key``, or ``None`` when it was not sent.

    A key that is missing or ``null`` was not prefetched (CDS Hooks 2.0.1 §Prefetch:
    the EHR sends ``null`` for data it could not get).

    Raises
    ------
    InvalidInputError
        If the value is not a ``resource_type`` resource, or names another id than ``rid``.
    """
    if not prefetch:
        return None
    value = prefetch.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping) or value.get("resourceType") != resource_type:
        raise InvalidInputError(f"prefetch.{key} must be a {resource_type} resource")
    if rid is not None and value.get("id") is not None and value.get("id") != rid:
        raise InvalidInputError(
            f"prefetch.{key} is {resource_type}/{value.get('id')!s:.64}, "
            f"but the context names {resource_type}/{rid}"
        )
    return dict(value)


def bundle_resources(bundle: object, where: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(index, resource)`` of a Bundle's entries (entries without one are skipped).

    Raises
    ------
    InvalidInputError
        If ``bundle`` is not a Bundle or its ``entry`` is not a list.
    """
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        raise InvalidInputError(f"{where} must be a FHIR Bundle")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidInputError(f"{where}.entry must be a list")
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if isinstance(resource, Mapping) and isinstance(resource.get("resourceType"), str):
            yield index, dict(resource)


def fhir_datetime(value: object) -> dt.datetime | None:
    """Return an aware UTC datetime from a FHIR ``date``/``dateTime``, or ``None``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        if len(value) == 10:
            parsed = dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
        else:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(dt.UTC)
