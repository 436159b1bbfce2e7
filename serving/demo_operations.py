"""The demo's simulated OPD and ED day: queue points, rosters, tickets, boarding, discharges.

Laid out around the demo's ``now`` so the day is live whenever the demo runs: the day-time
points (two OPD clinics, lab collection, pharmacy) open 4 hours before ``now`` and close 5
hours after it; ED triage and bed assignment run round the clock. Roster hours are UTC (the
record keeps no facility time zone), so a demo run at night shows a night clinic.

* **History**: the same hours of the same weekday in the 4 weeks before, on the usual
  roster, drawn with ``ciw`` (:func:`reasoning.queues.draw_patients`: hourly
  ``PoissonIntervals`` arrivals, the roster as a ``ciw.Schedule``, exponential service)
  and written as a **back-load** (the FHIR importer, ``origin="backload"``: completed
  Tasks, no events) — a few thousand tickets in one unit per point.
* **Today**: drawn the same way on **today's** roster and written **live**
  (``origin="live"``, one unit per point: the one write path, ``QueueTicketChanged`` in the
  outbox), cut at the moment the demo scores (``until``; ``now`` when the demo is given
  one): tickets not yet served are waiting, those in service in progress. OPD
  Cardiology is under-staffed today (a date override of its roster: 4 of its usual 5
  clinicians), so it breaches its 20-minute target.
* **Beds**: Ward 7A is the general-medicine pool (full: above its 0.85 threshold), Ward 5B
  surgery; three of Ward 7A's patients have an expected discharge in the next 24 hours,
  and two ED patients have an admit decision for general medicine and no bed (boarding).

Deterministic: fixed seeds; the ids carry the date, so re-running on the same day adds
nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.fhir.importer import import_document
from healthos_core.fhir.refs import format_datetime
from healthos_core.operations import codes as ops
from healthos_core.operations.beds import record_admit_decision, set_expected_discharge
from healthos_core.operations.queues import QUEUE_STATE, create_queue_point, set_roster
from healthos_core.record import service
from healthos_core.record.entities import Encounter, Location, Patient, Task
from reasoning.queues import Scenario, draw_patients

__all__ = ["QUEUE_POINTS", "QueuePointSpec", "simulate_operations_day"]

HISTORY_WEEKS: Final = 4
OPENS_BEFORE: Final = 4  # hours before now
CLOSES_AFTER: Final = 5  # hours after now
SEED: Final = 20261207


@dataclass(frozen=True)
class QueuePointSpec:
    """A demo queue point: arrivals per session hour, service rate, usual and today's roster.

    ``arrivals`` are λ per hour for each hour of the session (day-time points: from
    opening; round-the-clock points: one per UTC hour 0–23); ``service_rate`` is μ per hour
    per server.
    """

    id: str
    name: str
    service: str
    target_wait_minutes: int
    arrivals: tuple[float, ...]
    service_rate: float
    servers: int
    servers_today: int
    all_day: bool = False


_ED_DAY = (
    3,
    2.5,
    2,
    2,
    2,
    2.5,
    3.5,
    5,
    6.5,
    7.5,
    8,
    8,
    7.5,
    7,
    7,
    7,
    7.5,
    8,
    8,
    7.5,
    6.5,
    5.5,
    4.5,
    3.5,
)
QUEUE_POINTS: Final = (
    QueuePointSpec(
        "demo-opd-cardiology", "OPD Cardiology", "opd_clinic", 20,
        (7, 10, 12, 13, 12, 10, 9, 8, 6), 3.0, 5, 4,
    ),
    QueuePointSpec(
        "demo-opd-medicine", "OPD General Medicine", "opd_clinic", 30,
        (5, 7, 8, 8, 7, 6, 6, 5, 4), 4.0, 3, 3,
    ),
    QueuePointSpec(
        "demo-lab-collection", "Lab collection", "lab_collection", 20,
        (6, 10, 12, 12, 11, 10, 9, 7, 5), 12.0, 2, 2,
    ),
    QueuePointSpec(
        "demo-pharmacy", "Outpatient pharmacy", "pharmacy", 30,
        (3, 8, 11, 12, 12, 11, 10, 9, 7), 6.0, 3, 3,
    ),
    QueuePointSpec(
        "demo-ed-triage", "ED triage", "ed_triage", 15, _ED_DAY, 12.0, 2, 2, all_day=True
    ),
    QueuePointSpec(
        "demo-bed-assignment", "ED bed assignment", "bed_assignment", 60,
        tuple(round(r * 0.2, 2) for r in _ED_DAY), 1.0, 3, 3, all_day=True,
    ),
)  # fmt: skip
_HOUR: Final = dt.timedelta(hours=1)
#: The ED patients boarding: (given name, gender, birth date).
BOARDERS: Final = (
    ("Amina", "female", dt.date(1948, 5, 2)),
    ("Joseph", "male", dt.date(1956, 11, 19)),
)


def _session(
    spec: QueuePointSpec, opens: dt.datetime, day: dt.datetime
) -> tuple[dt.datetime, list[float]]:
    """Start and hourly λ of the point's session on the day of ``day`` (history or today)."""
    if spec.all_day:
        start = day - dt.timedelta(hours=24)  # the day before and after: the history spans it
        return start, [spec.arrivals[(start + i * _HOUR).hour] for i in range(48)]
    return opens, list(spec.arrivals)


def _ticket(
    ticket_id: str,
    spec: QueuePointSpec,
    patient_id: str,
    arrived: dt.datetime,
    started: dt.datetime | None,
    ended: dt.datetime | None,
) -> dict[str, Any]:
    """Return the FHIR Task of a queue ticket (``docs/operations.md``), in its state at the end."""
    status = "completed" if ended else "in-progress" if started else "requested"
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "id": ticket_id,
        "status": status,
        "businessStatus": {
            "coding": [{"system": ops.QUEUE_STATE_SYSTEM, "code": QUEUE_STATE[status]}],
            "text": QUEUE_STATE[status],
        },
        "intent": "order",
        "priority": "routine",
        "code": {
            "coding": [
                {
                    "system": ops.TASK_CODE_SYSTEM,
                    "code": ops.QUEUE_TICKET,
                    "display": "Queue ticket",
                }
            ]
        },
        "for": {"reference": f"Patient/{patient_id}"},
        "location": {"reference": f"Location/{spec.id}"},
        "authoredOn": format_datetime(arrived),
        "lastModified": format_datetime(ended or started or arrived),
    }
    if started is not None:
        resource["executionPeriod"] = {"start": format_datetime(started)}
        if ended is not None:
            resource["executionPeriod"]["end"] = format_datetime(ended)
    return resource


def _draw(
    spec: QueuePointSpec,
    start: dt.datetime,
    rates: list[float],
    servers: list[int],
    seed: int,
    cut: dt.datetime | None,
    prefix: str,
    patients: list[str],
) -> list[dict[str, Any]]:
    """One session of ``spec`` drawn with ciw; the tickets as they stand at ``cut``."""
    scenario = Scenario(
        arrival_rates=tuple(r / 60 for r in rates),
        service_rate=spec.service_rate / 60,
        servers=tuple(servers),
        period=60.0,
    )
    tickets = []
    for n, patient in enumerate(draw_patients(scenario, seed=seed)):
        arrived = start + dt.timedelta(minutes=patient.arrival)
        if cut is not None and arrived >= cut:
            break
        started = (
            None
            if patient.service_start is None
            else start + dt.timedelta(minutes=patient.service_start)
        )
        ended = (
            None
            if patient.service_end is None
            else start + dt.timedelta(minutes=patient.service_end)
        )
        if cut is not None:
            started = started if started is not None and started < cut else None
            ended = ended if started is not None and ended is not None and ended < cut else None
        if started is None or ended is None:
            if cut is None:
                continue  # history: keep completed tickets only
        tickets.append(
            _ticket(f"{prefix}-{n}", spec, patients[n % len(patients)], arrived, started, ended)
        )
    return tickets


def _bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in resources],
    }


def simulate_operations_day(
    session: Session, *, now: dt.datetime, facility_id: str, until: dt.datetime | None = None
) -> int:
    """Lay out the demo's OPD and ED day (module docstring); return the tickets written.

    Parameters
    ----------
    session : Session
        Flushed, not committed.
    now : datetime
        Aware UTC "now" (the demo's, on the hour): the day is laid out around it.
    facility_id : str
        The demo facility (an existing Organization).
    until : datetime, optional
        Today's tickets are cut here (default ``now``): the moment the demo scores.

    Returns
    -------
    int
        Tickets written (0 when today's day already exists).
    """
    day = now.strftime("%Y%m%d")
    if session.get(Task, f"demo-q-{day}-{QUEUE_POINTS[0].id}-0") is not None:
        return 0
    patients = list(session.scalars(select(Patient.id).order_by(Patient.id)))
    opens = now - OPENS_BEFORE * _HOUR
    written = 0
    for index, spec in enumerate(QUEUE_POINTS):
        if session.get(Location, spec.id) is None:
            create_queue_point(
                session,
                id=spec.id,
                name=spec.name,
                service=spec.service,
                facility_id=facility_id,
                target_wait_minutes=spec.target_wait_minutes,
            )
        hours = range(24) if spec.all_day else range(len(spec.arrivals))
        clock = [h if spec.all_day else (opens + h * _HOUR).hour for h in hours]
        set_roster(
            session,
            spec.id,
            weekly=[(weekday, hour, spec.servers) for weekday in range(7) for hour in clock],
            dates=[
                ((opens + h * _HOUR).date(), (opens + h * _HOUR).hour, spec.servers_today)
                for h in range(len(spec.arrivals))
                if spec.servers_today != spec.servers
            ],
        )
        history: list[dict[str, Any]] = []
        for week in range(1, HISTORY_WEEKS + 1):
            back = dt.timedelta(days=7 * week)
            start, rates = _session(spec, opens - back, now - back)
            servers = [spec.servers] * len(rates)
            history += _draw(
                spec, start, rates, servers, SEED + 100 * index + week, None,
                f"demo-q-{(now - back):%Y%m%d}-{spec.id}-h", patients,
            )  # fmt: skip
        import_document(session, _bundle(history), source=f"demo history {spec.id}")
        start, rates = _session(spec, opens, now)
        servers = [spec.servers] * len(rates)
        if not spec.all_day:
            servers = [spec.servers_today] * len(rates)
        today = _draw(
            spec,
            start,
            rates,
            servers,
            SEED + 100 * index,
            until or now,
            f"demo-q-{day}-{spec.id}",
            patients,
        )
        today = [t for t in today if t["authoredOn"] >= format_datetime(now - 24 * _HOUR)]
        import_document(session, _bundle(today), source=f"demo today {spec.id}", origin="live")
        written += len(history) + len(today)
    return written


def simulate_bed_pressure(session: Session, *, now: dt.datetime, facility_id: str) -> int:
    """Set expected discharges on the full ward and bring ED patients to board; return them.

    Three of Ward 7A's inpatients get an expected discharge within 24 hours; two new
    patients come to the ED and wait, after an admit decision for general medicine, with
    no bed.
    """
    day = now.strftime("%Y%m%d")
    if session.get(Encounter, f"demo-ed-{day}-1") is not None:
        return 0
    stays = list(
        session.scalars(
            select(Encounter)
            .where(Encounter.id.like(f"demo-{day}-%"), Encounter.location_id.like("demo-ward-7a%"))
            .order_by(Encounter.period_start)
        )
    )
    for hours, stay in zip((4, 11, 20), stays, strict=False):
        set_expected_discharge(session, stay.id, now + hours * _HOUR)
    for n, (given, gender, born) in enumerate(BOARDERS, start=1):
        patient_id = f"demo-ed-patient-{n}"
        if session.get(Patient, patient_id) is None:
            service.register_patient(
                session,
                id=patient_id,
                given=given,
                family="Demo",
                gender=gender,
                birth_date=born,
                facility_id=facility_id,
            )
        arrived = now - (6 - n) * _HOUR
        encounter = service.admit(
            session,
            patient_id=patient_id,
            class_code="EMER",
            start=arrived,
            facility_id=facility_id,
            id=f"demo-ed-{day}-{n}",
        )
        record_admit_decision(session, encounter.id, arrived + 2 * _HOUR, pool="general_medicine")
    return len(BOARDERS)
