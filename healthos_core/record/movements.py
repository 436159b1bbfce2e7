"""Patient movements within an encounter: transfer to another ward or bed.

The encounter's current place is ``Encounter.location_id``; its history is kept in
the stored FHIR resource as ``Encounter.location`` (FHIR R4: each entry a
``location`` reference, a ``status`` — ``active`` for the current place, ``completed``
for the ones left — and a ``period``), which is what the exporter sends and what the
importer reads back (its last entry is the current place).

Like :mod:`healthos_core.record.service`, nothing here commits (style-anchors rule 3):
every check runs before anything changes, and the caller's transaction decides.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from healthos_core.errors import ConflictError, InvalidInputError, NotFoundError
from healthos_core.fhir.exporter import to_fhir
from healthos_core.fhir.refs import format_datetime
from healthos_core.record.entities import Encounter, Location
from healthos_core.record.service import _as_utc, _aware_utc, _open_encounter
from healthos_core.record.write_path import write_resource

__all__ = ["location_history", "transfer"]


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return _as_utc(parsed)


def location_history(encounter: Encounter) -> list[dict[str, Any]]:
    """Return the encounter's places as FHIR ``Encounter.location`` entries, oldest first.

    Parameters
    ----------
    encounter : Encounter
        Any encounter.

    Returns
    -------
    list of dict
        A copy of the stored history; for an encounter that has none yet, its
        current location (if any) as one ``active`` entry from the encounter's start.
    """
    stored = (encounter.resource or {}).get("location")
    if isinstance(stored, list) and stored:
        return [copy.deepcopy(e) for e in stored if isinstance(e, dict)]
    if encounter.location_id is None:
        return []
    entry: dict[str, Any] = {
        "location": {"reference": f"Location/{encounter.location_id}"},
        "status": "active",
    }
    if encounter.period_start is not None:
        entry["period"] = {"start": format_datetime(_as_utc(encounter.period_start))}
    return [entry]


def transfer(session: Session, encounter_id: str, location_id: str, at: dt.datetime) -> Encounter:
    """Move an open encounter's patient to another ward or bed at ``at``.

    The place left gets ``status="completed"`` and a period ending at ``at``; the new
    place is appended with ``status="active"`` and a period starting at ``at``, and
    becomes ``Encounter.location_id``.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session (flushed, not committed).
    encounter_id : str
        An existing, open encounter.
    location_id : str
        The new ward or bed: an existing Location other than the current one.
    at : datetime.datetime
        Aware time of the move; not before the encounter started nor before the
        previous move.

    Returns
    -------
    Encounter
        The flushed encounter, at its new location.

    Raises
    ------
    NotFoundError
        Unknown encounter or location.
    ConflictError
        The encounter is closed, or the patient is already at ``location_id``.
    InvalidInputError
        Naive ``at``, or ``at`` before the encounter started or before the last move.

    Examples
    --------
    >>> encounter = transfer(session, "enc-1", "bed-icu-3", at)  # doctest: +SKIP
    >>> encounter.location_id  # doctest: +SKIP
    'bed-icu-3'
    """
    encounter = _open_encounter(session, encounter_id, "transfer")
    if session.get(Location, location_id) is None:
        raise NotFoundError(f"Location/{location_id} does not exist: cannot transfer there")
    at = _aware_utc(at, "at")
    if location_id == encounter.location_id:
        raise ConflictError(
            f"Encounter/{encounter_id} is already at Location/{location_id}: nothing to transfer"
        )
    history = location_history(encounter)
    periods = [e.get("period") for e in history]
    starts = [_parse_time(p.get("start")) for p in periods if isinstance(p, dict)]
    if encounter.period_start is not None:
        starts.append(_as_utc(encounter.period_start))
    latest = max((s for s in starts if s is not None), default=None)
    if latest is not None and at < latest:
        raise InvalidInputError(
            f"at={at.isoformat()} is before Encounter/{encounter_id}'s last start or move at "
            f"{latest.isoformat()}: transfers are recorded in time order"
        )

    when = format_datetime(at)
    for entry in history:
        if entry.get("status") in (None, "active", "planned", "reserved"):
            entry["status"] = "completed"
            period = entry.get("period")
            entry["period"] = {**(period if isinstance(period, dict) else {}), "end": when}
    history.append(
        {
            "location": {"reference": f"Location/{location_id}"},
            "status": "active",
            "period": {"start": when},
        }
    )
    # Written through the one write path: the importer maps the last entry to
    # location_id, and the stored resource keeps the history.
    resource = to_fhir(encounter)
    resource["location"] = history
    return write_resource(session, Encounter, resource, None)
