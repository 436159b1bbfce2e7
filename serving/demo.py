"""``healthos demo``: the main job on the embedded default, end to end.

1. Import the shipped sample (12 Synthea patients, FHIR R4 bundles).
2. Derive the chargemaster from the prices on their claims.
3. Build a facility → network → region hierarchy with wards and beds.
4. Simulate today's ward census: the sample patients admitted as inpatients with
   hourly vital signs over the last hours, some deteriorating, plus procedures and
   medication administrations; charges post automatically with each event.
5. Simulate an OPD and ED day (:mod:`serving.demo_operations`): queue points, rosters,
   four weeks of ticket history and today's tickets drawn with ciw, one clinic
   under-staffed, ED patients boarding for the full general-medicine ward.
6. Run every scorer, store the suggestions, print the top ones per audience.

Re-running on the same day changes nothing; a new day discharges yesterday's census
and admits a new one.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path

from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core import terminology as t
from healthos_core.billing.chargemaster import derive_chargemaster_from_claims
from healthos_core.billing.entities import ChargeItem, ChargemasterEntry
from healthos_core.db import session_scope, utcnow
from healthos_core.fhir.importer import import_paths
from healthos_core.record import service
from healthos_core.record.entities import (
    Encounter,
    Location,
    MedicationRequest,
    Observation,
    Organization,
    Patient,
    Procedure,
)
from healthos_core.wiring import wire_live_path
from reasoning.registry import run_scorers
from reasoning.suggestion import Suggestion
from serving.demo_finance import simulate_revenue_cycle
from serving.demo_operations import (
    QUEUE_POINTS,
    simulate_bed_pressure,
    simulate_operations_day,
)

FACILITY = "demo-facility"
NETWORK = "demo-network"
REGION = "demo-region"
WARDS = {"demo-ward-7a": "Ward 7A (acute medicine)", "demo-ward-5b": "Ward 5B (surgery)"}
#: The bed pool (ward type) of each ward.
WARD_TYPES = {"demo-ward-7a": "general_medicine", "demo-ward-5b": "surgery"}
BEDS_PER_WARD = 8
#: Inpatient admission type (SNOMED CT 183452005 "Emergency hospital admission").
ADMISSION_CODE = ("183452005", "Emergency hospital admission (procedure)")


def sample_dir() -> Path:
    """Folder of the shipped Synthea sample bundles."""
    return Path(str(resources.files("healthos_core").joinpath("data/sample/synthea")))


@dataclass(frozen=True)
class Trajectory:
    """Vital signs at admission (start) and now (end); values in between are linear + noise.

    Units: breaths/min, %, mmHg, beats/min, °C, GCS points, FiO2 %.
    """

    name: str
    start: tuple[float, float, float, float, float, float, float]
    end: tuple[float, float, float, float, float, float, float]
    #: Laboratory results at admission and now, interpolated every 6 hours:
    #: (LOINC, UCUM unit, display, at admission, now).
    labs: tuple[tuple[str, str, str, float, float], ...] = ()


def _lab(name: str, start: float, end: float) -> tuple[str, str, str, float, float]:
    code, unit, display = LABS[name]
    return (code, unit, display, start, end)


#: Laboratory tests the demo draws (LOINC, UCUM, display).
LABS = {
    "lactate": (t.LACTATE, "mmol/L", "Lactate [Moles/volume] in Serum or Plasma"),
    "creatinine": (t.CREATININE, "mg/dL", "Creatinine [Mass/volume] in Serum or Plasma"),
    "wbc": (t.WBC, "10*3/uL", "Leukocytes [#/volume] in Blood"),
    "bun": ("3094-0", "mg/dL", "Urea nitrogen [Mass/volume] in Serum or Plasma"),
    "hct": ("4544-3", "%", "Hematocrit [Volume Fraction] of Blood"),
    "hco3": ("1963-8", "mmol/L", "Bicarbonate [Moles/volume] in Serum or Plasma"),
    "platelets": ("777-3", "10*3/uL", "Platelets [#/volume] in Blood"),
}


#: (RR, SpO2, SBP, HR, Temp, GCS, FiO2 %)
TRAJECTORIES = [
    Trajectory("stable", (16, 97, 128, 76, 36.8, 15, 21), (16, 97, 126, 74, 36.7, 15, 21)),
    Trajectory("stable", (14, 98, 135, 68, 36.6, 15, 21), (15, 97, 132, 70, 36.9, 15, 21)),
    Trajectory("settling", (22, 95, 112, 96, 38.2, 15, 21), (18, 96, 120, 84, 37.4, 15, 21)),
    Trajectory("stable", (18, 96, 118, 82, 37.1, 15, 21), (17, 96, 121, 80, 37.0, 15, 21)),
    Trajectory(
        "hypoxic (single parameter 3)",
        (18, 95, 124, 84, 37.0, 15, 21),
        (19, 91, 122, 86, 37.2, 15, 21),
    ),
    Trajectory(
        "sepsis, deteriorating",
        (18, 96, 122, 88, 37.6, 15, 21),
        (22, 95, 108, 104, 38.4, 15, 21),
        labs=(
            _lab("lactate", 1.9, 3.8),
            _lab("wbc", 13.5, 19.2),
            _lab("creatinine", 0.9, 1.5),
            _lab("bun", 18, 31),
            _lab("platelets", 210, 118),
            _lab("hco3", 23, 18),
        ),
    ),
    Trajectory("stable", (15, 98, 140, 72, 36.5, 15, 21), (15, 98, 138, 70, 36.6, 15, 21)),
    Trajectory(
        "mild tachycardia", (17, 96, 116, 98, 37.4, 15, 21), (19, 95, 112, 104, 37.8, 15, 21)
    ),
    Trajectory(
        "respiratory failure, deteriorating",
        (20, 94, 118, 92, 37.8, 15, 24),
        (26, 92, 104, 112, 38.3, 15, 35),
        labs=(
            _lab("lactate", 1.6, 2.9),
            _lab("wbc", 11.8, 15.6),
            _lab("creatinine", 1.1, 1.3),
            _lab("bun", 22, 29),
        ),
    ),
    Trajectory("stable", (16, 97, 130, 66, 36.4, 15, 21), (16, 97, 129, 68, 36.5, 15, 21)),
    Trajectory(
        "post-op, recovering", (20, 95, 108, 94, 37.9, 15, 24), (17, 96, 116, 86, 37.3, 15, 21)
    ),
    Trajectory(
        "haemorrhage, deteriorating",
        (16, 97, 118, 90, 36.8, 15, 21),
        (23, 95, 86, 134, 36.2, 14, 21),
        labs=(
            _lab("lactate", 2.1, 5.2),
            _lab("hct", 35, 22),
            _lab("creatinine", 0.8, 1.7),
            _lab("bun", 17, 38),
            _lab("hco3", 22, 15),
            _lab("platelets", 180, 96),
        ),
    ),
]


def _organizations(session: Session) -> None:
    hierarchy = [
        (REGION, "HealthOS North Region", None, "region"),
        (NETWORK, "HealthOS Health Network", REGION, "network"),
        (FACILITY, "HealthOS General Hospital", NETWORK, "prov"),
    ]
    for org_id, name, parent, type_code in hierarchy:
        session.merge(
            Organization(
                id=org_id,
                name=name,
                part_of_id=parent,
                type_code=type_code,
                facility_id=org_id,
                active=True,
            )
        )
        session.flush()
    for ward_id, name in WARDS.items():
        session.merge(
            Location(
                id=ward_id,
                name=name,
                kind="ward",
                physical_type="wa",
                service_type=WARD_TYPES[ward_id],
                managing_organization_id=FACILITY,
                facility_id=FACILITY,
            )
        )
        session.flush()
        for bed in range(1, BEDS_PER_WARD + 1):
            session.merge(
                Location(
                    id=f"{ward_id}-bed-{bed}",
                    name=f"{name.split(' (')[0]} bed {bed}",
                    kind="bed",
                    physical_type="bd",
                    part_of_id=ward_id,
                    managing_organization_id=FACILITY,
                    facility_id=FACILITY,
                )
            )
    session.flush()


def _priced_codes(
    session: Session, entity: type[Procedure] | type[MedicationRequest], system: str
) -> list[tuple[str, str]]:
    priced = select(ChargemasterEntry.code).where(ChargemasterEntry.code_system == system)
    rows = session.execute(
        select(entity.code, func.min(entity.display))
        .where(entity.code.in_(priced), entity.code_system == system)
        .group_by(entity.code)
        .order_by(entity.code)
    )
    return [(code, display or code) for code, display in rows if code]


def _vitals(
    session: Session,
    encounter_id: str,
    trajectory: Trajectory,
    admitted: dt.datetime,
    now: dt.datetime,
    rng: random.Random,
) -> None:
    hours = max(1, int((now - admitted).total_seconds() // 3600))
    for hour in range(hours + 1):
        at = admitted + dt.timedelta(hours=hour)
        f = hour / hours
        rr, spo2, sbp, hr, temp, gcs, fio2 = (
            a + (b - a) * f for a, b in zip(trajectory.start, trajectory.end, strict=True)
        )
        noise = 0.0 if hour == hours else 1.0
        rr = round(rr + rng.uniform(-1, 1) * noise)
        spo2 = min(100, round(spo2 + rng.uniform(-1, 1) * noise))
        sbp = round(sbp + rng.uniform(-4, 4) * noise)
        hr = round(hr + rng.uniform(-3, 3) * noise)
        temp = round(temp + rng.uniform(-0.1, 0.1) * noise, 1)

        def record(
            code: str, value: float, unit: str, display: str, at: dt.datetime = at, **extra: object
        ) -> None:
            service.record_observation(
                session,
                encounter_id=encounter_id,
                code=code,
                value=value,
                unit=unit,
                effective_at=at,
                display=display,
                **extra,  # type: ignore[arg-type]
            )

        if hour % 6 == 0 or hour == hours:
            for code, unit, display, first, last in trajectory.labs:
                value = round(first + (last - first) * f, 1 if last < 50 else 0)
                record(code, value, unit, display, category="laboratory")
        record(t.RESPIRATORY_RATE, rr, "/min", "Respiratory rate")
        record(t.OXYGEN_SATURATION_PULSE_OXIMETRY, spo2, "%", "Oxygen saturation by pulse oximetry")
        record(t.HEART_RATE, hr, "/min", "Heart rate")
        record(t.BODY_TEMPERATURE, temp, "Cel", "Body temperature")
        record(t.GCS_TOTAL, round(gcs), "{score}", "Glasgow coma score total", category="survey")
        record(t.INHALED_OXYGEN_CONCENTRATION, round(fio2), "%", "Inhaled oxygen concentration")
        service.record_observation(
            session,
            encounter_id=encounter_id,
            code=t.BLOOD_PRESSURE_PANEL,
            value=None,
            unit=None,
            effective_at=at,
            display="Blood pressure panel",
            components=[
                {
                    "code": t.SYSTOLIC_BP,
                    "value": sbp,
                    "unit": "mm[Hg]",
                    "display": "Systolic blood pressure",
                },
                {
                    "code": t.DIASTOLIC_BP,
                    "value": round(sbp * 0.62),
                    "unit": "mm[Hg]",
                    "display": "Diastolic blood pressure",
                },
            ],
        )


def simulate_ward_census(session: Session, *, now: dt.datetime, seed: int = 20261121) -> int:
    """Admit the sample patients as today's inpatients with hourly vital signs.

    Encounter ids are ``demo-<YYYYMMDD>-<n>``: re-running on the same day does nothing;
    earlier days' demo encounters still in progress are discharged first.

    Parameters
    ----------
    session : Session
    now : datetime
        Aware UTC "now"; admissions fall 6–22 hours before it.
    seed : int, default=20261121
        Seed of the simulation (same seed, same census).

    Returns
    -------
    int
        Number of patients admitted (0 when today's census already exists).
    """
    day = now.strftime("%Y%m%d")
    if session.get(Encounter, f"demo-{day}-1") is not None:
        return 0
    for old in session.scalars(
        select(Encounter).where(Encounter.id.like("demo-%"), Encounter.status == "in-progress")
    ):
        service.discharge(session, encounter_id=old.id, end=now - dt.timedelta(hours=23))
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not security
    patients = list(
        session.scalars(select(Patient).where(Patient.deceased_at.is_(None)).order_by(Patient.id))
    )
    procedures = _priced_codes(session, Procedure, t.SNOMED)
    medications = _priced_codes(session, MedicationRequest, t.RXNORM)
    beds = [f"{ward}-bed-{n}" for ward in WARDS for n in range(1, BEDS_PER_WARD + 1)]
    admitted_count = 0
    for index, (patient, trajectory) in enumerate(
        zip(patients, TRAJECTORIES, strict=False), start=1
    ):
        admitted = now - dt.timedelta(hours=rng.randint(6, 22))
        encounter = service.admit(
            session,
            patient_id=patient.id,
            class_code="IMP",
            start=admitted,
            facility_id=FACILITY,
            location_id=beds[index - 1],
            type_code=ADMISSION_CODE[0],
            type_display=ADMISSION_CODE[1],
            id=f"demo-{day}-{index}",
        )
        _vitals(session, encounter.id, trajectory, admitted, now, rng)
        if procedures:
            code, display = procedures[rng.randrange(len(procedures))]
            service.record_procedure(
                session,
                encounter_id=encounter.id,
                code_system=t.SNOMED,
                code=code,
                display=display,
                performed_at=admitted + dt.timedelta(hours=2),
            )
        if medications:
            code, display = medications[rng.randrange(len(medications))]
            service.record_medication_administration(
                session,
                encounter_id=encounter.id,
                code_system=t.RXNORM,
                code=code,
                display=display,
                effective_at=admitted + dt.timedelta(hours=1),
            )
        admitted_count += 1
    return admitted_count


def print_summary(console: Console, session: Session) -> None:
    """Print what the record holds: patients, encounters, observations, charges."""

    def count(entity: type) -> int:
        return int(session.scalar(select(func.count()).select_from(entity)) or 0)

    charges = session.execute(
        select(ChargeItem.currency, func.count(), func.sum(ChargeItem.total)).group_by(
            ChargeItem.currency
        )
    ).all()
    inpatients = session.scalar(
        select(func.count())
        .select_from(Encounter)
        .where(Encounter.status == "in-progress", Encounter.class_code == "IMP")
    )
    console.print(
        f"[bold]Record[/]: {count(Patient)} patients, {count(Encounter)} encounters "
        f"({inpatients} inpatients now), {count(Observation)} observations"
    )
    for currency, n, total in charges:
        console.print(
            f"[bold]Charges[/]: {n} ChargeItems, {Decimal(total or 0):,.2f} {currency} "
            "posted automatically"
        )


def _short_action(text: str, limit: int = 110) -> str:
    first = text.split(". ")[0].split("; ")[0]
    return first if len(first) <= limit else first[: limit - 1] + "…"


#: Headings of the demo's lists, by audience (people, or the team's work).
_AUDIENCE_LABELS = {
    "clinician": "clinicians",
    "nurse": "nurses",
    "finance": "finance",
    "operations": "operations",
    "leadership": "leadership",
}


def print_suggestions(
    console: Console, suggestions: list[Suggestion], *, per_audience: int = 5
) -> None:
    """Print the top suggestions for each audience: severity, subject, summary, action."""
    if not suggestions:
        console.print("No suggestions.")
        return
    colour = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
    for audience in sorted({str(s.audience) for s in suggestions}):
        mine = [s for s in suggestions if str(s.audience) == audience]
        label = _AUDIENCE_LABELS.get(audience, audience)
        console.rule(f"[bold]Top suggestions for {label}[/] ({len(mine)} open)")
        for s in mine[:per_audience]:
            severity = str(s.severity)
            console.print(
                f"[{colour[severity]}]{severity.upper():8}[/] {s.subject}  {s.summary}",
                highlight=False,
            )
            console.print(
                f"         [dim]→ {_short_action(s.recommended_action)}[/]", highlight=False
            )


def run_demo(
    factory: sessionmaker[Session],
    *,
    console: Console,
    now: dt.datetime | None = None,
    on_step: Callable[[str], None] | None = None,
) -> list[Suggestion]:
    """Run the whole demo against the database behind ``factory``.

    Wires the live path first (:func:`healthos_core.wiring.wire_live_path`: charge
    capture on the default bus, remittance posting), so the simulated census posts its
    charges; the sample itself is imported as a back-load.

    Parameters
    ----------
    factory : sessionmaker
        Each step commits in its own transaction.
    console : rich.console.Console
        Where the summary and suggestions are printed.
    now : datetime, optional
        Aware UTC "now" of the simulation; the scorers run as of it. Default: the
        simulation's clock is the current hour and the scorers run as of the current
        moment (after the writes).

    Returns
    -------
    list of Suggestion
        Everything the scorers produced, highest severity first.
    """
    simulated = now is not None
    now = now or utcnow().replace(minute=0, second=0, microsecond=0)
    wire_live_path()
    report = import_paths(factory, [sample_dir()])
    console.print(
        f"Imported the sample: {report.files} FHIR bundles, "
        f"{sum(report.imported.values())} resources ({len(report.rejected)} rejected)"
    )
    with session_scope(factory) as session:
        derived = derive_chargemaster_from_claims(session)
    console.print(f"Chargemaster: {derived} prices derived from the sample's claims")
    with session_scope(factory) as session:
        _organizations(session)
        admitted = simulate_ward_census(session, now=now)
    with session_scope(factory) as session:
        cycle = simulate_revenue_cycle(
            session,
            now=now,
            facility_id=FACILITY,
            procedures=_priced_codes(session, Procedure, t.SNOMED),
        )
    if cycle.visits:
        console.print(
            f"Revenue cycle: {cycle.visits} outpatient visits, {cycle.claims} claims built, "
            f"{cycle.submitted} submitted and awaiting adjudication"
        )
    console.print(
        f"Ward census for {now:%Y-%m-%d}: "
        + (
            f"{admitted} patients admitted with hourly vital signs"
            if admitted
            else "already loaded"
        )
    )
    with session_scope(factory) as session:
        # Today's queues run until the moment the demo scores (the current moment by
        # default), so the board is not frozen at the hour.
        until = now if simulated else utcnow()
        tickets = simulate_operations_day(session, now=now, until=until, facility_id=FACILITY)
        boarding = simulate_bed_pressure(session, now=now, facility_id=FACILITY)
    console.print(
        f"OPD and ED day for {now:%Y-%m-%d}: "
        + (
            f"{len(QUEUE_POINTS)} queue points, {tickets} queue tickets (4 weeks of history "
            f"and today's up to {until:%H:%M} UTC), {boarding} ED patients boarding"
            if tickets
            else "already loaded"
        )
    )
    with session_scope(factory) as session:
        # By default scored at the moment the writes are done: what the demo writes
        # (charges, claims) is entered now, and as-of readers such as revenue leakage see
        # only what was entered by their moment.
        suggestions = run_scorers(session, as_of=now if simulated else utcnow())
        print_summary(console, session)
    print_suggestions(console, suggestions)
    return suggestions
