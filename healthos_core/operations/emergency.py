"""Emergency department attendances: arrival, admit decision and departure from the ED.

The NHS four-hour standard counts the time from arrival to departure from the emergency
department — admitted, transferred or discharged (NHS England, "A&E attendances and
emergency admissions: technical guidance"); CMS measure OP-18/ED-2 (CMS111 in the CMS
measures inventory) reports the median time from the decision to admit to the patient's
departure from the ED. Both are read here from the record: an ED attendance is an
Encounter of class ``EMER``;

* arrival is its ``period.start``;
* the decision to admit is ``Encounter.admit_decision_at``
  (:func:`~healthos_core.operations.beds.record_admit_decision`);
* departure is the start of its first location-history entry at an inpatient bed (the
  patient left the ED for a ward) or, if it never reached one, its ``period.end``; an
  attendance still in the ED at the reading time has no departure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.errors import InvalidInputError
from healthos_core.fhir.refs import parse_datetime
from healthos_core.record.entities import Encounter, Location
from healthos_core.record.movements import location_history

__all__ = ["ED_CLASS", "EdAttendance", "ed_attendances"]

#: HL7 v3 ActCode of an emergency encounter.
ED_CLASS: Final = "EMER"


@dataclass(frozen=True, slots=True)
class EdAttendance:
    """One ED attendance as the four-hour and CMS111 measures read it (aware UTC times)."""

    encounter_id: str
    facility_id: str | None
    arrived_at: dt.datetime
    admit_decision_at: dt.datetime | None
    departed_at: dt.datetime | None


def _start(entry: dict[str, object]) -> dt.datetime | None:
    period = entry.get("period")
    value = period.get("start") if isinstance(period, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return parse_datetime(value)
    except InvalidInputError:
        return None


def _departure(encounter: Encounter, beds: set[str], until: dt.datetime) -> dt.datetime | None:
    arrived = encounter.period_start  # aware: the column type returns UTC
    to_bed: dt.datetime | None = None
    for entry in location_history(encounter):
        if entry.get("status") in ("planned", "reserved"):
            continue
        reference = str((entry.get("location") or {}).get("reference", ""))
        if reference.removeprefix("Location/") not in beds:
            continue
        start = _start(entry)
        if start is not None and (arrived is None or start >= arrived):
            to_bed = start if to_bed is None else min(to_bed, start)
    ended = encounter.period_end if encounter.status == "finished" else None
    departed = min((t for t in (to_bed, ended) if t is not None), default=None)
    return departed if departed is not None and departed <= until else None


def ed_attendances(
    session: Session, *, since: dt.datetime, until: dt.datetime
) -> list[EdAttendance]:
    """Return the ED attendances that arrived in ``[since, until)``, as of ``until``.

    Parameters
    ----------
    session : Session
        Read only.
    since, until : datetime
        Aware; the arrival window. A departure after ``until`` is not known yet
        (``departed_at`` is ``None``).

    Returns
    -------
    list of EdAttendance
        In arrival order. Two queries: the encounters and the bed Locations.
    """
    beds = set(session.scalars(select(Location.id).where(Location.kind == "bed")))
    encounters = session.scalars(
        select(Encounter)
        .where(
            Encounter.class_code == ED_CLASS,
            Encounter.period_start >= since,
            Encounter.period_start < until,
            Encounter.status.not_in(("cancelled", "entered-in-error", "planned")),
        )
        .order_by(Encounter.period_start, Encounter.id)
    )
    out: list[EdAttendance] = []
    for encounter in encounters:
        arrived = encounter.period_start
        if arrived is None:  # pragma: no cover - the query requires a start
            continue
        decided = encounter.admit_decision_at
        out.append(
            EdAttendance(
                encounter_id=encounter.id,
                facility_id=encounter.facility_id,
                arrived_at=arrived,
                admit_decision_at=decided if decided is not None and decided <= until else None,
                departed_at=_departure(encounter, beds, until),
            )
        )
    return out
