"""The bottleneck scorer: queue points breaching their wait target, and full bed pools.

Synthetic clinics with four weeks of history (λ 8/h, 20-minute consultations, target 15
minutes): with 2 clinicians the clinic is overloaded (ρ = 8 / (2 × 3) > 1) and gets a
suggestion whose recommended roster, simulated again with other seeds, meets the target;
with 4 (ρ 0.67, Erlang C W_q ≈ 5 minutes) it gets none. Every test runs on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.db import make_session_factory
from healthos_core.operations.entities import QueueRoster
from healthos_core.record.entities import Location, Patient, Task
from healthos_core.settings import Settings
from reasoning.operations import QueueBottleneckScorer
from reasoning.queues import Scenario, simulate
from reasoning.suggestion import Severity
from serving.main import create_app
from tests.factories import (
    make_bed,
    make_encounter,
    make_organization,
    make_patient,
    make_queue_point,
    make_ward,
)

AT = dt.datetime(2026, 3, 2, 11, 0, tzinfo=dt.UTC)  # a Monday, 11:00 UTC
TARGET = 15
RATE, MU = 8.0, 3.0  # arrivals per hour; services per hour per clinician
OPEN = range(8, 17)


def clinic(session: Session, point_id: str, servers: int, *, hours: range = OPEN) -> Location:
    """A clinic rostered ``servers`` every day in ``hours`` (UTC)."""
    if session.get(Patient, "p-queue") is None:
        make_organization(session, id="org-1")
        make_patient(session, id="p-queue", facility_id="org-1")
    point = make_queue_point(
        session,
        id=point_id,
        name=f"OPD {point_id}",
        target_wait_minutes=TARGET,
        facility_id="org-1",
        managing_organization_id="org-1",
    )
    session.add_all(
        QueueRoster(location_id=point_id, weekday=day, hour=hour, servers=servers)
        for day in range(7)
        for hour in hours
    )
    session.flush()
    return point


def tickets(
    session: Session,
    point_id: str,
    days: list[dt.date],
    *,
    hours: range = OPEN,
    until: dt.datetime | None = None,
    seed: int = 1,
) -> int:
    """Poisson arrivals at λ ``RATE`` in ``hours`` of ``days``, served at once (history)."""
    rng = random.Random(seed)
    rows = []
    for day in days:
        for hour in hours:
            start = dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)
            moment = start + dt.timedelta(hours=rng.expovariate(RATE))
            while moment < start + dt.timedelta(hours=1):
                if until is not None and moment >= until:
                    break
                served = moment + dt.timedelta(hours=rng.expovariate(MU))
                rows.append(
                    Task(
                        id=f"{point_id}-{len(rows)}-{seed}",
                        status="completed",
                        code="queue-ticket",
                        patient_id="p-queue",
                        location_id=point_id,
                        priority="routine",
                        arrived_at=moment,
                        service_started_at=moment,
                        service_ended_at=served,
                    )
                )
                moment += dt.timedelta(hours=rng.expovariate(RATE))
    session.add_all(rows)
    session.flush()
    return len(rows)


def waiting(session: Session, point_id: str, at: dt.datetime, minutes: list[int]) -> None:
    """Tickets still waiting at ``at``, arrived ``minutes`` before it."""
    session.add_all(
        Task(
            id=f"{point_id}-wait-{m}",
            status="requested",
            code="queue-ticket",
            patient_id="p-queue",
            location_id=point_id,
            priority="routine",
            arrived_at=at - dt.timedelta(minutes=m),
        )
        for m in minutes
    )
    session.flush()


def past_weeks(at: dt.datetime, weeks: int = 4) -> list[dt.date]:
    return [(at - dt.timedelta(days=7 * w)).date() for w in range(1, weeks + 1)]


def test_an_understaffed_clinic_gets_a_roster_change_that_meets_the_target(
    session: Session,
) -> None:
    clinic(session, "cardio", servers=2)
    counted = tickets(session, "cardio", past_weeks(AT))
    tickets(session, "cardio", [AT.date()], until=AT - dt.timedelta(minutes=30), seed=2)
    waiting(session, "cardio", AT, [28, 22, 17, 12, 9, 5, 2])
    scorer = QueueBottleneckScorer(beds=False)

    [suggestion] = scorer.score(session, as_of=AT)

    assert suggestion.kind == "operations.queue_bottleneck"
    assert suggestion.subject == "Location/cardio"
    assert str(suggestion.audience) == "operations"
    assert suggestion.severity is Severity.CRITICAL  # the longest wait (28 min) breaches now
    assert len(suggestion.summary) <= 140 and "OPD cardio" in suggestion.summary
    assert suggestion.recommended_action.startswith("Add ")
    assert "clinician" in suggestion.recommended_action
    assert suggestion.source.reference == (
        "Erlang C (M/M/c); ciw discrete-event simulation (Palmer et al. 2019)"
    )
    factors = {f.name: f for f in suggestion.explanation.factors}
    assert factors["utilization"].value is not None and factors["utilization"].value > 1.0
    assert factors["utilization"].contribution > 0
    assert factors["wait_after_change_minutes"].contribution < 0  # within the target
    assert "Location/cardio" in suggestion.explanation.evidence
    assert any(e.startswith("Task/cardio-") for e in suggestion.explanation.evidence)

    [projection] = scorer.projections(session, as_of=AT, ids={"cardio"}).values()
    assert projection.history_tickets == counted
    assert projection.warmup_minutes > 0  # seven patients are waiting at 11:00
    simulated, verification = projection.simulated, projection.verification
    assert simulated is not None and verification is not None and simulated.meets_target
    change = simulated.change
    assert change is not None and change.servers_added >= 1
    window = f"{projection.clock(change.start_hour)}–{projection.clock(change.end_hour)}"
    assert window in suggestion.recommended_action
    assert verification.window_wait_after.mean < verification.window_wait_before.mean

    # Independently: the recommended roster simulated again with other seeds and more runs.
    hours = projection.recommendation.hours
    scenario = Scenario(
        arrival_rates=tuple(h.arrival_rate / 60 for h in hours),
        service_rate=MU / 60,
        service_rates=tuple(h.service_rate / 60 for h in hours),
        servers=tuple(simulated.roster_after[h.hour] for h in hours),
        period=60.0,
        warmup=projection.warmup_minutes,
        warmup_servers=hours[0].servers_before,
    )
    again = simulate(scenario, replications=30, seed=5000, target_wait=TARGET)
    assert again.mean_wait.mean <= TARGET
    assert all(math.isnan(e.low) or e.low <= TARGET for e in again.wait_by_period)
    current = simulate(
        Scenario(
            arrival_rates=scenario.arrival_rates,
            service_rate=MU / 60,
            service_rates=scenario.service_rates,
            servers=tuple(h.servers_before for h in hours),
            period=60.0,
            warmup=projection.warmup_minutes,
        ),
        replications=30,
        seed=5000,
    )
    assert current.mean_wait.low > TARGET  # without the change the clinic misses it


def test_a_well_staffed_clinic_gets_nothing_and_score_subjects_reads_only_its_location(
    session: Session,
) -> None:
    clinic(session, "calm", servers=4)
    tickets(session, "calm", past_weeks(AT))
    tickets(session, "calm", [AT.date()], until=AT, seed=3)
    clinic(session, "busy", servers=2)
    tickets(session, "busy", past_weeks(AT), seed=4)
    waiting(session, "busy", AT, [40])
    scorer = QueueBottleneckScorer(beds=False)

    found = scorer.score(session, as_of=AT)

    assert [s.subject for s in found] == ["Location/busy"]
    assert scorer.score_subjects(session, ["Location/calm"], as_of=AT) == []
    [again] = scorer.score_subjects(session, ["Location/busy", "Encounter/x"], as_of=AT)
    assert again.id == found[0].id  # deterministic: the same record, the same suggestion
    assert again.to_dict()["explanation"] == found[0].to_dict()["explanation"]
    assert scorer.score_subjects(session, ["Encounter/x"], as_of=AT) == []


def test_a_closed_clinic_or_one_without_history_gives_nothing(session: Session) -> None:
    clinic(session, "night", servers=2, hours=range(20, 23))  # closed at 11:00
    tickets(session, "night", past_weeks(AT), hours=range(20, 23))
    clinic(session, "new", servers=1)  # no history: nothing to project from
    waiting(session, "new", AT, [50])
    assert QueueBottleneckScorer(beds=False).score(session, as_of=AT) == []


def test_a_bed_pool_over_threshold_names_discharges_and_ed_boarding(session: Session) -> None:
    org = make_organization(session, id="org-b")
    ward = make_ward(session, id="w-7a", name="Ward 7A", facility_id=org.id)
    calm = make_ward(session, "surgery", id="w-5b", name="Ward 5B", facility_id=org.id)
    for index in range(4):
        make_bed(session, ward, id=f"b{index}")
        make_bed(session, calm, id=f"s{index}")
    start = AT - dt.timedelta(days=2)
    for index in range(4):  # 4 of 4 general medicine beds occupied: 100 % > 85 %
        make_encounter(
            session,
            class_code="IMP",
            location_id=f"b{index}",
            period_start=start,
            facility_id=org.id,
            expected_discharge_at=AT + dt.timedelta(hours=6) if index < 2 else None,
        )
    make_encounter(  # one surgical bed of four: 25 %, under its threshold
        session, class_code="IMP", location_id="s0", period_start=start, facility_id=org.id
    )
    make_encounter(  # an ED patient admitted to general medicine, waiting for a bed
        session,
        class_code="EMER",
        period_start=AT - dt.timedelta(hours=5),
        facility_id=org.id,
        admit_decision_at=AT - dt.timedelta(hours=3),
        admit_to_pool="general_medicine",
    )

    [beds] = QueueBottleneckScorer().score(session, as_of=AT)

    assert (beds.subject, beds.band, beds.severity) == (
        "Location/w-7a",
        "over_threshold",
        Severity.CRITICAL,
    )
    factors = {f.name: f.value for f in beds.explanation.factors}
    assert factors == {
        "occupancy": 1.0,
        "ed_boarding": 1.0,
        "expected_discharges_24h": 2.0,
        "housekeeping_beds": 0.0,
    }
    assert "100% occupied (threshold 85%)" in beds.summary
    assert "expedite the 2 expected discharge" in beds.recommended_action.lower()
    assert "1 ED patient" in beds.recommended_action
    scorer = QueueBottleneckScorer()
    assert scorer.score_subjects(session, ["Location/w-7a"], as_of=AT) == [beds]
    assert scorer.score_subjects(session, ["Location/w-5b"], as_of=AT) == []


TOKENS = {"tok-nurse-0001": "nurse", "tok-operations-01": "operations"}
SETTINGS = Settings(environment="test", api_tokens=TOKENS, rescore_poll_seconds=0.05)


def test_a_ticket_posted_through_the_api_rescores_its_queue_point(engine: Engine) -> None:
    now = dt.datetime.now(dt.UTC)
    factory: sessionmaker[Session] = make_session_factory(engine, writer=True)
    every_hour = range(24)
    with factory.begin() as session:
        clinic(session, "live", servers=2, hours=every_hour)
        tickets(session, "live", past_weeks(now), hours=every_hour)
    with TestClient(create_app(SETTINGS, engine=engine)) as client:
        response = client.post(
            "/api/v1/queue-tickets",
            json={
                "queue_point_id": "live",
                "patient_id": "p-queue",
                "arrived_at": (now - dt.timedelta(minutes=45)).isoformat(),
            },
            headers={"Authorization": "Bearer tok-nurse-0001"},
        )
        assert response.status_code == 201, response.text
        posted = time.monotonic()
        query = {"subject": "Location/live", "kind": "operations.queue_bottleneck"}

        def found() -> list[dict[str, Any]]:
            answer = client.get(
                "/api/v1/suggestions",
                params=query,
                headers={"Authorization": "Bearer tok-operations-01"},
            )
            assert answer.status_code == 200
            data: list[dict[str, Any]] = answer.json()["data"]
            return data

        deadline = posted + 10
        while not found() and time.monotonic() < deadline:
            time.sleep(0.05)
        [suggestion] = found()  # nobody called score
        assert suggestion["severity"] == "critical"  # 45 minutes waiting against 15
        assert f"Task/{response.json()['id']}" in suggestion["explanation"]["evidence"]
