"""Wards, beds and the bed census: HL7 v2 table 0116 statuses, pools and thresholds.

A **bed** is a Location of kind ``bed`` (physical type ``bd``), part of a **ward** (kind
``ward``) whose ward type (``Location.type`` in the location-service system:
``general_medicine``, ``surgery``, ``icu``, ``maternity``, ``paediatrics`` …) is the bed's
**pool**. Its status is ``Location.operationalStatus`` in HL7 v2 table 0116 (the FHIR R4
binding): O occupied, U unoccupied, K contaminated (housekeeping), I isolated, C closed.

**Occupancy comes from the encounters**, not from the stored status: a bed is occupied
at ``at`` when an encounter open at ``at`` (started, not yet ended) was at that bed at
``at`` by its location history (``Encounter.location``, kept by
:func:`healthos_core.record.movements.transfer`). A bed nobody occupies shows its stored
status (K, I, C; anything else is unoccupied). NHS England's KH03 occupancy is occupied
÷ available; available beds are the staffed ones, here every bed not closed.

``docs/operations.md`` gives the extensions for the expected discharge and the admit
decision (ED boarding).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from healthos_core.errors import ConflictError, InvalidInputError, NotFoundError
from healthos_core.fhir.exporter import to_fhir
from healthos_core.fhir.refs import format_datetime, parse_datetime
from healthos_core.operations import codes as ops
from healthos_core.operations.entities import BedPoolThreshold
from healthos_core.record.entities import Encounter, Location
from healthos_core.record.movements import location_history
from healthos_core.record.service import (
    _aware_utc,
    _new_id,
    _open_encounter,
    _organization,
    _required_text,
)
from healthos_core.record.write_path import write_entity, write_resource

__all__ = [
    "BedPool",
    "bed_census",
    "create_bed",
    "create_ward",
    "occupied_beds",
    "pool_thresholds",
    "record_admit_decision",
    "set_bed_status",
    "set_expected_discharge",
    "set_pool_threshold",
]

#: Encounter statuses that never occupy a bed (FHIR R4 encounter-status).
_NOT_THERE: Final = ("planned", "cancelled", "entered-in-error")
#: Window of the expected discharges.
DISCHARGE_WINDOW: Final = dt.timedelta(hours=24)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


# --------------------------------------------------------------------------- writes


def create_ward(
    session: Session,
    *,
    name: str,
    ward_type: str,
    facility_id: str,
    id: str | None = None,
) -> Location:
    """Create a ward (Location kind ``ward``, physical type ``wa``) whose type is a bed pool.

    Parameters
    ----------
    session : Session
    name : str
    ward_type : str
        One of :data:`~healthos_core.operations.codes.WARD_TYPES`: the pool of its beds.
    facility_id : str
        An existing Organization.
    id : str, optional

    Returns
    -------
    Location

    Raises
    ------
    InvalidInputError, NotFoundError, ConflictError
        Unknown ward type; unknown facility; id taken by other content.
    """
    name = _required_text(name, "name", 255)
    if ward_type not in ops.WARD_TYPES:
        raise InvalidInputError(f"ward_type {ward_type!r}: use one of {list(ops.WARD_TYPES)}")
    facility = _organization(session, facility_id)
    ward = Location(
        id=_new_id(Location, id),
        name=name,
        kind="ward",
        physical_type="wa",
        status="active",
        service_type=ward_type,
        managing_organization_id=facility,
        facility_id=facility,
    )
    return write_entity(session, ward, None)


def create_bed(
    session: Session, *, name: str, ward_id: str, status: str = "U", id: str | None = None
) -> Location:
    """Create a bed (kind ``bed``, physical type ``bd``) in a ward, with its 0116 status.

    Raises
    ------
    NotFoundError
        Unknown ward.
    InvalidInputError
        Not a ward, or ``status`` not one of U, K, I, C (O comes from an encounter).
    """
    name = _required_text(name, "name", 255)
    ward = session.get(Location, ward_id)
    if ward is None:
        raise NotFoundError(f"ward Location/{ward_id} does not exist")
    if ward.kind not in ("ward", "icu"):
        raise InvalidInputError(f"Location/{ward_id} is not a ward")
    _check_status(status)
    bed = Location(
        id=_new_id(Location, id),
        name=name,
        kind="bed",
        physical_type="bd",
        status="active",
        operational_status=status,
        part_of_id=ward_id,
        managing_organization_id=ward.managing_organization_id,
        facility_id=ward.facility_id,
    )
    return write_entity(session, bed, None)


def _check_status(status: str) -> None:
    if status not in ops.BED_STATUS:
        raise InvalidInputError(
            f"status {status!r} is not an HL7 v2 table 0116 bed status: use one of "
            f"{list(ops.BED_STATUS)}"
        )
    if status == "O":
        raise InvalidInputError(
            "status 'O' (occupied) comes from the record: admit or transfer the patient "
            "to the bed instead"
        )


def set_bed_status(
    session: Session, bed_id: str, status: str, *, at: dt.datetime | None = None
) -> Location:
    """Set a bed's HL7 v2 table 0116 status (U, K, I or C) through the one write path.

    Parameters
    ----------
    session : Session
    bed_id : str
        A bed Location.
    status : {"U", "K", "I", "C"}
        Unoccupied, contaminated (housekeeping), isolated or closed. ``O`` is refused:
        occupancy comes from the encounters at the bed.
    at : datetime, optional
        Aware time to check occupancy at; default now.

    Returns
    -------
    Location

    Raises
    ------
    NotFoundError
        Unknown bed.
    InvalidInputError
        Not a bed, or not a settable 0116 status.
    ConflictError
        ``U`` or ``C`` for a bed a patient occupies (transfer or discharge them first).
    """
    _check_status(status)
    bed = session.get(Location, bed_id)
    if bed is None:
        raise NotFoundError(f"bed Location/{bed_id} does not exist")
    if bed.kind != "bed":
        raise InvalidInputError(f"Location/{bed_id} is a {bed.kind or 'location'}, not a bed")
    when = _aware_utc(at, "at") if at is not None else dt.datetime.now(dt.UTC)
    if status in ("U", "C") and bed_id in occupied_beds(session, [bed_id], when):
        raise ConflictError(
            f"Location/{bed_id} is occupied: transfer or discharge the patient before marking "
            f"it {ops.BED_STATUS[status]}"
        )
    resource = to_fhir(bed)
    resource["operationalStatus"] = {
        "system": ops.BED_STATUS_SYSTEM,
        "code": status,
        "display": ops.BED_STATUS_DISPLAY[status],
    }
    return write_resource(session, Location, resource, None)


def set_pool_threshold(
    session: Session, pool: str, threshold: float, *, facility_id: str | None = None
) -> BedPoolThreshold:
    """Set a bed pool's occupancy threshold (0 < threshold ≤ 1), for a facility or all.

    Raises
    ------
    InvalidInputError
        Unknown pool or threshold out of range.
    NotFoundError
        Unknown facility.
    """
    if pool not in ops.WARD_TYPES:
        raise InvalidInputError(f"pool {pool!r}: use one of {list(ops.WARD_TYPES)}")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise InvalidInputError("threshold must be a number")
    if not 0 < threshold <= 1:
        raise InvalidInputError(f"threshold={threshold} must be above 0 and at most 1")
    _organization(session, facility_id)
    row = session.scalar(
        select(BedPoolThreshold).where(
            BedPoolThreshold.pool == pool,
            BedPoolThreshold.facility_id.is_(None)
            if facility_id is None
            else BedPoolThreshold.facility_id == facility_id,
        )
    )
    if row is None:
        row = BedPoolThreshold(pool=pool, facility_id=facility_id, threshold=float(threshold))
        session.add(row)
    row.threshold = float(threshold)
    session.flush()
    return row


def _set_extension(resource: dict[str, Any], url: str, value: dict[str, Any]) -> None:
    kept = [e for e in resource.get("extension") or [] if e.get("url") != url]
    resource["extension"] = [*kept, {"url": url, **value}]


def set_expected_discharge(session: Session, encounter_id: str, at: dt.datetime) -> Encounter:
    """Record an open encounter's planned discharge time (the expected-discharge extension).

    FHIR R4 Encounter has no planned end; HealthOS keeps it in an extension (read by
    :func:`bed_census`'s ``expected_discharges_24h``).

    Raises
    ------
    NotFoundError, ConflictError, InvalidInputError
        Unknown or closed encounter; naive time or a time before the encounter started.
    """
    encounter = _open_encounter(session, encounter_id, "plan a discharge")
    at = _aware_utc(at, "at")
    start = _utc(encounter.period_start)
    if start is not None and at < start:
        raise InvalidInputError("the expected discharge is before the encounter started")
    resource = to_fhir(encounter)
    _set_extension(
        resource, ops.EXPECTED_DISCHARGE_EXTENSION, {"valueDateTime": format_datetime(at)}
    )
    return write_resource(session, Encounter, resource, None)


def record_admit_decision(
    session: Session, encounter_id: str, at: dt.datetime, *, pool: str | None = None
) -> Encounter:
    """Record the decision to admit an ED patient: from then until a bed, they board.

    Parameters
    ----------
    session : Session
    encounter_id : str
        An open emergency (EMER) encounter.
    at : datetime
        Aware decision time (CMS OP-18/ED-2 "decision to admit").
    pool : str, optional
        The ward type the patient waits for; default
        :data:`~healthos_core.operations.codes.DEFAULT_ADMIT_POOL`.

    Raises
    ------
    NotFoundError, ConflictError
        Unknown or closed encounter.
    InvalidInputError
        Not an emergency encounter, unknown pool, naive time or before the encounter.
    """
    encounter = _open_encounter(session, encounter_id, "record an admit decision")
    if encounter.class_code != "EMER":
        raise InvalidInputError(f"Encounter/{encounter_id} is not an emergency (EMER) encounter")
    if pool is not None and pool not in ops.WARD_TYPES:
        raise InvalidInputError(f"pool {pool!r}: use one of {list(ops.WARD_TYPES)}")
    at = _aware_utc(at, "at")
    start = _utc(encounter.period_start)
    if start is not None and at < start:
        raise InvalidInputError("the admit decision is before the encounter started")
    resource = to_fhir(encounter)
    _set_extension(resource, ops.ADMIT_DECISION_EXTENSION, {"valueDateTime": format_datetime(at)})
    if pool is not None:
        _set_extension(resource, ops.ADMIT_TO_POOL_EXTENSION, {"valueCode": pool})
    return write_resource(session, Encounter, resource, None)


# --------------------------------------------------------------------------- reads


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_datetime(value)
    except InvalidInputError:
        return None


def location_at(encounter: Any, at: dt.datetime) -> str | None:
    """Return where an open encounter was at ``at``, by its location history.

    The last ``Encounter.location`` entry whose period holds ``at`` (an entry without a
    period holds the whole encounter; planned and reserved entries hold nothing); an
    encounter without history is at its current ``location_id``.
    """
    history = location_history(encounter)
    found: str | None = None
    for entry in history:
        if entry.get("status") in ("planned", "reserved"):
            continue
        raw = entry.get("period")
        period: dict[str, Any] = raw if isinstance(raw, dict) else {}
        start, end = _time(period.get("start")), _time(period.get("end"))
        if (start is None or start <= at) and (end is None or at < end):
            reference = str((entry.get("location") or {}).get("reference", ""))
            found = reference.removeprefix("Location/") or found
    return found


def _open_encounters(session: Session, at: dt.datetime) -> list[Encounter]:
    """Encounters open at ``at`` (started, not ended, not planned or cancelled), one query."""
    return list(
        session.scalars(
            select(Encounter).where(
                Encounter.period_start <= at,
                or_(Encounter.period_end.is_(None), Encounter.period_end > at),
                Encounter.status.not_in(_NOT_THERE),
            )
        )
    )


def occupied_beds(session: Session, bed_ids: Iterable[str], at: dt.datetime) -> set[str]:
    """Return which of ``bed_ids`` an open encounter occupies at ``at`` (location history)."""
    wanted = set(bed_ids)
    at = _aware_utc(at, "at")
    return {
        where
        for encounter in _open_encounters(session, at)
        if (where := location_at(encounter, at)) in wanted
    }


def pool_thresholds(session: Session) -> dict[tuple[str | None, str], float]:
    """Return the stored thresholds ``{(facility id or None, pool): threshold}``."""
    rows = session.execute(
        select(BedPoolThreshold.facility_id, BedPoolThreshold.pool, BedPoolThreshold.threshold)
    ).all()
    return {(row.facility_id, row.pool): row.threshold for row in rows}


def _threshold(
    stored: dict[tuple[str | None, str], float], facility: str | None, pool: str
) -> float:
    for key in ((facility, pool), (None, pool)):
        if key in stored:
            return stored[key]
    return ops.DEFAULT_THRESHOLDS.get(pool, ops.DEFAULT_THRESHOLD)


@dataclass(kw_only=True)
class BedPool:
    """One bed pool of one facility at ``at`` (``GET /api/v1/beds/census``).

    Attributes
    ----------
    pool : str
        The ward type.
    facility_id : str or None
    beds : int
        Bed Locations (not inactive).
    available : int
        Staffed beds: every bed not closed (KH03 "available").
    occupied : int
        Beds an open encounter is at.
    occupancy : float or None
        ``occupied / available`` (0..1); ``None`` when nothing is available.
    threshold : float
        The pool's threshold (0..1).
    over_threshold : bool
        ``occupancy > threshold``.
    by_status : dict
        Beds per census status: occupied, unoccupied, housekeeping, isolated, closed.
    expected_discharges_24h : int
        Patients in the pool's beds whose expected discharge is in ``(at, at + 24 h]``.
    ed_boarding : int
        Emergency patients with an admit decision and no bed at ``at``, waiting for this
        pool.
    """

    pool: str
    facility_id: str | None
    beds: int = 0
    available: int = 0
    occupied: int = 0
    occupancy: float | None = None
    threshold: float = ops.DEFAULT_THRESHOLD
    over_threshold: bool = False
    by_status: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(ops.BED_STATUS.values(), 0)
    )
    expected_discharges_24h: int = 0
    ed_boarding: int = 0


def _pool_of(location: Location, by_id: dict[str, Location]) -> tuple[str, str | None]:
    """Return a bed's pool (its nearest ancestor's ward type) and facility."""
    pool: str | None = None
    facility = location.facility_id
    node: Location | None = location
    for _ in range(10):  # bed → room → ward → …
        if node is None:
            break
        facility = facility or node.facility_id
        if node is not location and pool is None:
            pool = node.service_type or ("icu" if node.kind == "icu" else None)
        node = by_id.get(node.part_of_id or "")
    return pool or "other", facility


def bed_census(
    session: Session, *, at: dt.datetime, facility_id: str | None = None
) -> list[BedPool]:
    """Return the bed census per pool and facility at ``at`` (an as-of read).

    Three queries (the bed and ward Locations, the encounters open at ``at``, the
    stored thresholds). Occupancy is KH03's occupied ÷ available (NHS England, "Bed
    Availability and Occupancy" KH03 definitions: available = staffed beds; here every
    bed not closed), from the encounters' location history; the other statuses are the
    beds' stored HL7 v2 table 0116 status (the record keeps the current one only, so an
    as-of read of the past shows today's K, I and C).

    Parameters
    ----------
    session : Session
    at : datetime
        Aware time.
    facility_id : str, optional
        Only this facility's beds and ED patients.

    Returns
    -------
    list of BedPool
        By facility, then pool.

    Raises
    ------
    InvalidInputError
        ``at`` is naive.
    """
    at = _aware_utc(at, "at")
    locations = list(
        session.scalars(
            select(Location).where(
                Location.kind.in_(("bed", "ward", "icu", "room")), Location.status != "inactive"
            )
        )
    )
    by_id = {location.id: location for location in locations}
    beds = {loc.id: _pool_of(loc, by_id) for loc in locations if loc.kind == "bed"}
    if facility_id is not None:
        beds = {bed: key for bed, key in beds.items() if key[1] == facility_id}
    pools: dict[tuple[str | None, str], BedPool] = {}

    def pool_for(pool: str, facility: str | None) -> BedPool:
        key = (facility, pool)
        if key not in pools:
            pools[key] = BedPool(pool=pool, facility_id=facility)
        return pools[key]

    occupied: dict[str, Encounter] = {}
    boarding: dict[tuple[str | None, str], int] = defaultdict(int)
    for encounter in _open_encounters(session, at):
        where = location_at(encounter, at)
        if where in beds:
            occupied[where] = encounter
            continue
        decided = _utc(encounter.admit_decision_at)
        if (
            encounter.class_code == "EMER"
            and decided is not None
            and decided <= at
            and (facility_id is None or encounter.facility_id == facility_id)
        ):
            boarding[
                (encounter.facility_id, encounter.admit_to_pool or ops.DEFAULT_ADMIT_POOL)
            ] += 1

    for bed_id, (pool, facility) in beds.items():
        entry = pool_for(pool, facility)
        entry.beds += 1
        if bed_id in occupied:
            status = "occupied"
            planned = _utc(occupied[bed_id].expected_discharge_at)
            if planned is not None and at < planned <= at + DISCHARGE_WINDOW:
                entry.expected_discharges_24h += 1
        else:
            code = by_id[bed_id].operational_status
            status = ops.BED_STATUS.get(code or "U", "unoccupied")
            status = "unoccupied" if status == "occupied" else status
        entry.by_status[status] += 1
    for (facility, pool), count in boarding.items():
        pool_for(pool, facility).ed_boarding += count

    stored = pool_thresholds(session)
    for (facility, pool), entry in pools.items():
        entry.occupied = entry.by_status["occupied"]
        entry.available = entry.beds - entry.by_status["closed"]
        entry.occupancy = round(entry.occupied / entry.available, 4) if entry.available else None
        entry.threshold = _threshold(stored, facility, pool)
        entry.over_threshold = entry.occupancy is not None and entry.occupancy > entry.threshold
    return [pools[key] for key in sorted(pools, key=lambda k: (k[0] or "", k[1]))]
