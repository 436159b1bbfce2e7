"""A small record for the command center's end-to-end tests, scored by the real scorers.

Clinical suggestions come from the NEWS2 scorer over three inpatients' vital signs (high,
medium, low), denial risk from the shipped ``denial`` model over three submitted claims,
revenue leakage from the leakage rules over a denied claim and an unbilled procedure.
Operations: a region, a network and a facility, a queue point with three patients waiting
and a ward of three beds (:mod:`healthos_core.operations`). The queue-bottleneck suggestion
is built by hand following the contract (``operations.queue_bottleneck``, audience
operations, subject ``Location/<id>``), so the page's tests do not depend on that scorer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from healthos_core import operations
from healthos_core import terminology as t
from healthos_core.advisory import save_suggestions
from healthos_core.record import service
from reasoning.clinical.news2_scorer import News2Scorer
from reasoning.finance.denial_scorer import DenialRiskScorer
from reasoning.finance.leakage import LeakageScorer
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion
from tests.factories import make_chargemaster, make_organization
from tests.reasoning import test_denial_features as denial_world
from tests.reasoning import test_leakage as leakage_world


@dataclass(frozen=True)
class Seeded:
    """What the seed stored: suggestion ids and subjects by audience."""

    clinician: list[str]
    nurse: list[str]
    denial_claims: list[str]
    leakage: list[str]
    bottleneck: str


def _inpatient(session: Session, suffix: str, now: dt.datetime) -> str:
    patient = service.register_patient(
        session,
        given="Ada",
        family=f"Seed{suffix}",
        gender="female",
        birth_date=dt.date(1950, 1, 1),
        id=f"p-{suffix}",
    )
    encounter = service.admit(
        session,
        patient_id=patient.id,
        class_code="IMP",
        start=now - dt.timedelta(hours=10),
        id=f"e-{suffix}",
    )
    return encounter.id


def _vitals(session: Session, encounter_id: str, at: dt.datetime, **v: float) -> None:
    for code, value, unit in (
        (t.RESPIRATORY_RATE, v["rr"], "/min"),
        (t.OXYGEN_SATURATION_PULSE_OXIMETRY, v["spo2"], "%"),
        (t.INHALED_OXYGEN_CONCENTRATION, v["fio2"], "%"),
        (t.HEART_RATE, v["hr"], "/min"),
        (t.GCS_TOTAL, v["gcs"], "{score}"),
        (t.BODY_TEMPERATURE, v["temp"], "Cel"),
    ):
        service.record_observation(
            session, encounter_id=encounter_id, code=code, value=value, unit=unit, effective_at=at
        )
    service.record_observation(
        session,
        encounter_id=encounter_id,
        code=t.BLOOD_PRESSURE_PANEL,
        value=None,
        unit=None,
        effective_at=at,
        components=[{"code": t.SYSTOLIC_BP, "value": v["sbp"], "unit": "mm[Hg]"}],
    )


#: Vital-sign sets (RCP NEWS2 2017, chart 1) by patient suffix.
VITALS: dict[str, dict[str, float]] = {
    # RR 26 (3) SpO2 92 (2) oxygen (2) SBP 104 (1) HR 112 (2) alert (0) T 38.3 (1) = 11: high
    "high": {"rr": 26, "spo2": 92, "fio2": 35, "sbp": 104, "hr": 112, "gcs": 15, "temp": 38.3},
    # RR 22 (2) SpO2 95 (1) air (0) SBP 105 (1) HR 95 (1) alert (0) T 37 (0) = 5: medium
    "med": {"rr": 22, "spo2": 95, "fio2": 21, "sbp": 105, "hr": 95, "gcs": 15, "temp": 37.0},
    # RR 21 (2) SpO2 97 (0) air (0) SBP 120 (0) HR 95 (1) alert (0) T 37 (0) = 3: low (ward)
    "low": {"rr": 21, "spo2": 97, "fio2": 21, "sbp": 120, "hr": 95, "gcs": 15, "temp": 37.0},
}


def bottleneck(location_id: str, now: dt.datetime) -> Suggestion:
    """A queue-bottleneck suggestion as the contract describes it, built by hand."""
    return Suggestion(
        kind="operations.queue_bottleneck",
        audience=Audience.OPERATIONS,
        severity=Severity.WARNING,
        subject=f"Location/{location_id}",
        summary="OPD Cardiology will breach its 30 min target by 11:00 (projected wait 48 min)",
        explanation=Explanation(
            method="rule:erlang_c",
            factors=(
                Factor(name="utilization", value=0.96, contribution=0.96, text="ρ = λ/(cμ)"),
                Factor(name="projected_wait", value=48.0, contribution=18.0, unit="min"),
            ),
            evidence=(f"Location/{location_id}",),
        ),
        recommended_action=(
            "Add 1 clinician to OPD Cardiology 10:00–13:00: expected wait 48 → 11 min"
        ),
        source=Source(name="queue_bottleneck", version="0.1.0", reference="Erlang C"),
        score=0.96,
        band="projected_breach",
        facility_id=None,
        created_at=now,
    )


def _operations(session: Session, now: dt.datetime) -> str:
    """A region, a network and a facility; a queue point with waiting patients; a ward.

    Returns the queue point's id.
    """
    make_organization(session, id="region-north", name="North region", type_code="region")
    make_organization(
        session, id="net-e2e", name="City network", type_code="network", part_of_id="region-north"
    )
    make_organization(session, id="fac-e2e", name="City Hospital", part_of_id="net-e2e")
    clinic = operations.create_queue_point(
        session,
        name="OPD Cardiology",
        service="opd_clinic",
        facility_id="fac-e2e",
        target_wait_minutes=30,
    )
    for minutes in (55, 40, 10):
        operations.create_ticket(
            session,
            location_id=clinic.id,
            patient_id="p-low",
            arrived_at=now - dt.timedelta(minutes=minutes),
        )
    ward = operations.create_ward(
        session, name="Ward 7", ward_type="general_medicine", facility_id="fac-e2e"
    )
    for name, status in (("7-1", "U"), ("7-2", "K"), ("7-3", "C")):
        operations.create_bed(session, name=name, ward_id=ward.id, status=status)
    return str(clinic.id)


def seed(session: Session, now: dt.datetime) -> Seeded:
    """Build the record, run the scorers, store their suggestions (flushes, no commit)."""
    hour_ago = now - dt.timedelta(hours=1)
    for suffix, vitals in VITALS.items():
        _vitals(session, _inpatient(session, suffix, now), hour_ago, **vitals)
    clinical = News2Scorer().score(session, as_of=now)

    world = denial_world.make_world(session, coverage_end=denial_world.at("2020-06-30", 0))
    claims = [
        denial_world.submit(session, world, lines, submitted=denial_world.at(day))
        for lines, day in (
            ([denial_world.line("E1", "2020-07-10", net="850.00")], "2020-07-12"),
            ([denial_world.line("S1", "2020-03-01", net="4200.00")], "2020-03-03"),
            ([denial_world.line("E1", "2020-05-01", net="120.00")], "2020-05-02"),
        )
    ]
    denials = DenialRiskScorer(min_probability=0.0).score(
        session, as_of=denial_world.at("2021-01-15")
    )

    leaky = leakage_world.make_world(session)
    make_chargemaster(session, [("76601001", "300.00")])
    leakage_world.add_procedure(session, leaky)
    leakage_world.deny(session, leaky)
    leakage = LeakageScorer().score(session, as_of=leakage_world.AS_OF)

    clinic = _operations(session, now)
    ops = bottleneck(clinic, now)
    save_suggestions(session, [*clinical, *denials, *leakage, ops])
    return Seeded(
        clinician=[s.id for s in clinical if s.audience is Audience.CLINICIAN],
        nurse=[s.id for s in clinical if s.audience is Audience.NURSE],
        denial_claims=[c.id for c in claims],
        leakage=[s.id for s in leakage],
        bottleneck=ops.id,
    )
