"""Rescoring on the live path: the outbox consumer rescores only what a write concerns."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Collection

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from healthos_core import terminology as t
from healthos_core.advisory import SuggestionAction, SuggestionRecord, SuggestionStatus
from healthos_core.billing.claims import build_claim, write_off_claim
from healthos_core.billing.payers import decide_authorization, request_authorization
from healthos_core.db import make_session_factory
from healthos_core.events import EventBus
from healthos_core.outbox import OutboxEvent, claim_events
from healthos_core.record import service
from healthos_core.record.entities import Encounter
from healthos_core.suggestion_revision import read_suggestion_revision
from healthos_core.wiring import unwire, wire_live_path
from reasoning.clinical.kdigo_scorer import KdigoScorer
from reasoning.clinical.news2_scorer import News2Scorer
from reasoning.clinical.sirs_scorer import SirsScorer
from reasoning.rescoring import RescoringConsumer, kinds_for
from reasoning.suggestion import Suggestion
from tests.core.test_claims import CHECKUP, COLONOSCOPY, make_charge, make_world

#: A deteriorating set: RR 26 (3) SpO2 92 (2) oxygen (2) SBP 104 (1) HR 112 (2) alert (0)
#: T 38.3 (1) = NEWS2 11 (high); SIRS: T, HR and RR criteria met.
DETERIORATING = {"rr": 26, "spo2": 92, "fio2": 35, "sbp": 104, "hr": 112, "gcs": 15, "temp": 38.3}
#: A worse one: NEWS2 13.
WORSE = {"rr": 26, "spo2": 90, "fio2": 35, "sbp": 95, "hr": 112, "gcs": 15, "temp": 38.3}
#: A normal set: NEWS2 0 (no suggestion), SIRS no criterion met.
NORMAL = {"rr": 16, "spo2": 97, "fio2": 21, "sbp": 125, "hr": 70, "gcs": 15, "temp": 37.0}


def admit_inpatient(session: Session, suffix: str, bus: EventBus | None = None) -> Encounter:
    """An in-progress inpatient stay that started 10 hours ago."""
    patient = service.register_patient(
        session,
        given="Ada",
        family=f"Rescore{suffix}",
        gender="female",
        birth_date=dt.date(1950, 1, 1),
    )
    return service.admit(
        session,
        patient_id=patient.id,
        class_code="IMP",
        start=dt.datetime.now(dt.UTC) - dt.timedelta(hours=10),
        bus=bus,
    )


def record_vital_set(
    session: Session,
    encounter_id: str,
    values: dict[str, float],
    *,
    minutes_ago: float,
    bus: EventBus | None = None,
) -> list[str]:
    """Record one complete NEWS2 vital-sign set through the record service; return refs."""
    at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)
    rows = [
        (t.RESPIRATORY_RATE, values["rr"], "/min", None),
        (t.OXYGEN_SATURATION_PULSE_OXIMETRY, values["spo2"], "%", None),
        (t.INHALED_OXYGEN_CONCENTRATION, values["fio2"], "%", None),
        (t.HEART_RATE, values["hr"], "/min", None),
        (t.GCS_TOTAL, values["gcs"], "{score}", None),
        (t.BODY_TEMPERATURE, values["temp"], "Cel", None),
        (
            t.BLOOD_PRESSURE_PANEL,
            None,
            None,
            [{"code": t.SYSTOLIC_BP, "value": values["sbp"], "unit": "mm[Hg]"}],
        ),
    ]
    refs = []
    for code, value, unit, components in rows:
        observation = service.record_observation(
            session,
            encounter_id=encounter_id,
            code=code,
            value=value,
            unit=unit,
            effective_at=at,
            components=components,
            bus=bus,
        )
        refs.append(observation.reference)
    return refs


def suggestions_of(
    factory: sessionmaker[Session], subject: str, kind: str
) -> list[SuggestionRecord]:
    with factory() as session:
        return list(
            session.scalars(
                select(SuggestionRecord)
                .where(SuggestionRecord.subject == subject, SuggestionRecord.kind == kind)
                .order_by(SuggestionRecord.created_at)
            )
        )


def _live_bus() -> EventBus:
    bus = EventBus()
    wire_live_path(bus)
    return bus


def test_kinds_for_maps_each_event_to_the_scorers_it_concerns() -> None:
    vital = kinds_for("ObservationRecorded", t.RESPIRATORY_RATE)
    assert {"clinical.news2", "clinical.sirs", "clinical.deterioration"} == vital
    assert kinds_for("ObservationRecorded", t.GCS_TOTAL) >= {"clinical.news2"}
    assert "clinical.sirs" not in kinds_for("ObservationRecorded", t.GCS_TOTAL)
    assert "clinical.kdigo_aki" in kinds_for("ObservationRecorded", t.CREATININE)
    assert "clinical.news2" not in kinds_for("ObservationRecorded", t.CREATININE)
    assert kinds_for("ObservationRecorded", t.WBC) >= {"clinical.sirs"}
    assert kinds_for("ObservationRecorded", "00000-0") == frozenset()
    assert kinds_for("ProcedurePerformed", "12345") == frozenset()
    assert kinds_for("ClaimChanged", None) == {"finance.denial_risk"}
    assert kinds_for("QueueTicketChanged", "requested") == {"operations.queue_bottleneck"}
    assert kinds_for("AppointmentChanged", "booked") == frozenset()
    assert "clinical.news2" in kinds_for("EncounterFinished", None)


def test_score_subjects_gives_what_score_gives_for_that_subject(
    session_factory: sessionmaker[Session],
) -> None:
    bus = EventBus()
    with session_factory.begin() as session:
        one = admit_inpatient(session, "a", bus)
        two = admit_inpatient(session, "b", bus)
        record_vital_set(session, one.id, DETERIORATING, minutes_ago=30, bus=bus)
        record_vital_set(session, two.id, WORSE, minutes_ago=30, bus=bus)
    with session_factory() as session:
        for scorer in (News2Scorer(), SirsScorer(), KdigoScorer()):
            every = scorer.score(session)
            for encounter in (one, two):
                ref = encounter.reference
                only = scorer.score_subjects(session, [ref])
                assert [s.id for s in only] == [s.id for s in every if s.subject == ref]
            assert scorer.score_subjects(session, ["Claim/1"]) == []
        assert len(News2Scorer().score_subjects(session, [one.reference])) == 1


def test_a_deteriorating_set_is_scored_without_score_and_a_normal_set_resolves_it(
    engine: Engine,
) -> None:
    factory = make_session_factory(engine)
    bus = _live_bus()
    consumer = RescoringConsumer(engine, worker_id="test")
    try:
        with factory.begin() as session:
            encounter = admit_inpatient(session, "1", bus)
            record_vital_set(session, encounter.id, DETERIORATING, minutes_ago=60, bus=bus)
        subject = encounter.reference
        report = consumer.run_once()
        assert report.claimed == 8 and report.done == 8 and report.failed == 0
        assert report.subjects == 1
        [news2] = suggestions_of(factory, subject, "clinical.news2")
        assert (news2.status, news2.score, news2.band) == ("open", 11.0, "high")
        [sirs] = suggestions_of(factory, subject, "clinical.sirs")
        assert sirs.status == "open"
        assert consumer.run_once().claimed == 0  # nothing left

        with factory() as session:
            revision = read_suggestion_revision(session)
        with factory.begin() as session:
            normal = record_vital_set(session, encounter.id, NORMAL, minutes_ago=5, bus=bus)
        report = consumer.run_once()
        assert report.resolved >= 2
        with factory() as session:
            assert read_suggestion_revision(session) != revision
            resolved = session.get(SuggestionRecord, news2.id)
            assert resolved is not None
            assert resolved.status == SuggestionStatus.RESOLVED
            assert resolved.status_by == "system:rescoring"
            [action] = resolved.actions
            assert (action.action, action.actor, action.role) == (
                "resolve",
                "system:rescoring",
                "system",
            )
            assert action.reason is not None and "Observation/" in action.reason
            assert any(ref in action.reason for ref in normal)
            sirs_now = session.get(SuggestionRecord, sirs.id)
            assert sirs_now is not None and sirs_now.status == "resolved"
        # Still one NEWS2 suggestion for the encounter: resolved, nothing new.
        assert [s.id for s in suggestions_of(factory, subject, "clinical.news2")] == [news2.id]
    finally:
        unwire(bus)


def test_a_rescore_updates_the_open_suggestion_instead_of_adding_one(engine: Engine) -> None:
    factory = make_session_factory(engine)
    bus = _live_bus()
    consumer = RescoringConsumer(engine, worker_id="test")
    try:
        with factory.begin() as session:
            encounter = admit_inpatient(session, "2", bus)
            record_vital_set(session, encounter.id, DETERIORATING, minutes_ago=60, bus=bus)
        consumer.run_once()
        [first] = suggestions_of(factory, encounter.reference, "clinical.news2")
        with factory.begin() as session:
            record_vital_set(session, encounter.id, WORSE, minutes_ago=5, bus=bus)
        consumer.run_once()
        [again] = suggestions_of(factory, encounter.reference, "clinical.news2")
        assert again.id == first.id and again.status == "open"
        assert (first.score, again.score) == (11.0, 13.0)
        assert again.created_at == first.created_at  # first made then, refreshed since
    finally:
        unwire(bus)


def test_a_discharge_resolves_the_stays_open_suggestions(engine: Engine) -> None:
    factory = make_session_factory(engine)
    bus = _live_bus()
    consumer = RescoringConsumer(engine, worker_id="test")
    try:
        with factory.begin() as session:
            encounter = admit_inpatient(session, "3", bus)
            record_vital_set(session, encounter.id, DETERIORATING, minutes_ago=60, bus=bus)
        consumer.run_once()
        with factory.begin() as session:
            service.discharge(
                session, encounter_id=encounter.id, end=dt.datetime.now(dt.UTC), bus=bus
            )
        consumer.run_once()
        [news2] = suggestions_of(factory, encounter.reference, "clinical.news2")
        assert news2.status == "resolved"
        assert news2.status_reason is not None and "EncounterFinished" in news2.status_reason
    finally:
        unwire(bus)


def test_a_consumer_killed_mid_batch_loses_and_duplicates_nothing(engine: Engine) -> None:
    factory = make_session_factory(engine)
    writer = make_session_factory(engine, writer=True)
    bus = _live_bus()
    lease = dt.timedelta(seconds=0.5)
    try:
        with factory.begin() as session:
            encounter = admit_inpatient(session, "4", bus)
            record_vital_set(session, encounter.id, DETERIORATING, minutes_ago=60, bus=bus)
        # The first consumer claims every event and dies before handling any.
        with writer.begin() as session:
            assert len(claim_events(session, "doomed", limit=100, lease=lease)) == 8
        survivor = RescoringConsumer(engine, worker_id="survivor", lease=lease)
        assert survivor.run_once().claimed == 0  # still leased to the dead consumer
        time.sleep(lease.total_seconds() + 0.1)
        report = survivor.run_once()
        assert (report.claimed, report.done) == (8, 8)
        [news2] = suggestions_of(factory, encounter.reference, "clinical.news2")

        # At least once: the same events delivered again change nothing.
        with writer.begin() as session:
            session.execute(update(OutboxEvent).values(done_at=None, claimed_until=None))
        assert survivor.run_once().done == 8
        assert [s.id for s in suggestions_of(factory, encounter.reference, "clinical.news2")] == [
            news2.id
        ]
        with factory() as session:
            assert session.scalar(select(func.count()).select_from(SuggestionAction)) == 0
            pending = session.scalar(
                select(func.count()).select_from(OutboxEvent).where(OutboxEvent.done_at.is_(None))
            )
            assert pending == 0
    finally:
        unwire(bus)


def test_concurrent_consumers_handle_each_event_once(engine: Engine) -> None:
    factory = make_session_factory(engine)
    bus = _live_bus()
    try:
        encounters = []
        for i in range(6):
            with factory.begin() as session:
                encounter = admit_inpatient(session, f"c{i}", bus)
                record_vital_set(session, encounter.id, DETERIORATING, minutes_ago=60, bus=bus)
                record_vital_set(session, encounter.id, WORSE, minutes_ago=30, bus=bus)
                encounters.append(encounter.reference)
        consumers = [RescoringConsumer(engine, worker_id=f"w{i}", batch=5) for i in range(3)]
        errors: list[BaseException] = []

        def drain(consumer: RescoringConsumer) -> None:
            try:
                while consumer.run_once().claimed:
                    pass
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=drain, args=(c,)) for c in consumers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        with factory() as session:
            rows = list(session.scalars(select(OutboxEvent)))
            assert len(rows) == 6 * 15  # an admission and 14 observations per stay
            assert all(row.done_at is not None for row in rows)
            assert {row.attempts for row in rows} == {1}  # never claimed twice
        for subject in encounters:
            [news2] = suggestions_of(factory, subject, "clinical.news2")
            assert (news2.status, news2.score) == ("open", 13.0)
    finally:
        unwire(bus)


class _FailsFor(News2Scorer):
    """NEWS2, except that scoring ``bad`` raises (a poison subject)."""

    def __init__(self, bad: str) -> None:
        super().__init__()
        self.bad = bad

    def score_subjects(
        self, session: Session, subjects: Collection[str], *, as_of: dt.datetime | None = None
    ) -> list[Suggestion]:
        if self.bad in subjects:
            raise ValueError("a poison subject")
        return super().score_subjects(session, subjects, as_of=as_of)


def test_one_failing_subject_does_not_hold_back_the_others(engine: Engine) -> None:
    factory = make_session_factory(engine)
    bus = _live_bus()
    try:
        with factory.begin() as session:
            good = admit_inpatient(session, "good", bus)
            bad = admit_inpatient(session, "bad", bus)
            record_vital_set(session, good.id, DETERIORATING, minutes_ago=60, bus=bus)
            record_vital_set(session, bad.id, DETERIORATING, minutes_ago=60, bus=bus)
        consumer = RescoringConsumer(
            engine, worker_id="test", scorers={"clinical.news2": _FailsFor(bad.reference)}
        )
        report = consumer.run_once()
        # The batch failed whole, then each event alone: the bad stay's seven vital signs
        # fail (left claimed, for a later attempt); the admissions and the good stay's are done.
        assert (report.claimed, report.done, report.failed) == (16, 9, 7)
        [news2] = suggestions_of(factory, good.reference, "clinical.news2")
        assert news2.status == "open"
        assert suggestions_of(factory, bad.reference, "clinical.news2") == []
        with factory() as session:
            left = session.scalars(select(OutboxEvent).where(OutboxEvent.done_at.is_(None))).all()
            assert {row.subject for row in left} == {bad.reference}
            assert all(row.claimed_until is not None and row.attempts == 1 for row in left)
    finally:
        unwire(bus)


def test_a_claim_change_rescores_its_denial_risk_and_leaving_the_worklist_resolves_it(
    engine: Engine,
) -> None:
    factory = make_session_factory(engine)
    bus = _live_bus()
    consumer = RescoringConsumer(engine, worker_id="test")
    try:
        with factory.begin() as session:
            # Coverage ended before the visit: the scrubber's coverage edit, a high risk.
            world = make_world(session, coverage_end=dt.date(2023, 12, 31))
            make_charge(session, world, CHECKUP, "125.00")
            claim = build_claim(
                session,
                encounter_id=world.encounter.id,
                actor="biller",
                coverage_id=world.coverage.id,
                bus=bus,
            )
        subject = f"Claim/{claim.id}"
        with factory() as session:
            queued = session.scalars(
                select(OutboxEvent).where(OutboxEvent.event_type == "ClaimChanged")
            ).all()
            assert [(e.entity_ref, e.subject) for e in queued] == [(subject, subject)]
        report = consumer.run_once()
        assert report.failed == 0
        [risk] = suggestions_of(factory, subject, "finance.denial_risk")
        assert risk.status == "open" and risk.score is not None and risk.score >= 0.1

        with factory.begin() as session:
            write_off_claim(session, claim.id, actor="biller", reason="coverage ended", bus=bus)
        report = consumer.run_once()
        assert report.claimed == 1 and report.resolved == 1
        [resolved] = suggestions_of(factory, subject, "finance.denial_risk")
        assert resolved.id == risk.id and resolved.status == SuggestionStatus.RESOLVED
    finally:
        unwire(bus)


def test_a_claim_changed_on_a_bus_that_is_not_wired_queues_nothing(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with factory.begin() as session:
        world = make_world(session)
        make_charge(session, world, CHECKUP, "125.00")
        build_claim(session, encounter_id=world.encounter.id, actor="biller", bus=EventBus())
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(OutboxEvent)) == 0


def test_a_prior_authorisation_decision_queues_the_patients_open_claims(engine: Engine) -> None:
    factory = make_session_factory(engine)
    bus = _live_bus()
    try:
        with factory.begin() as session:
            world = make_world(session)
            make_charge(session, world, COLONOSCOPY, "900.00")
            claim = build_claim(session, encounter_id=world.encounter.id, actor="biller", bus=bus)
            session.execute(update(OutboxEvent).values(done_at=dt.datetime.now(dt.UTC)))
            request = request_authorization(
                session,
                patient_id=world.patient.id,
                payer_id="payer-blue-hmo",
                requested_by="scheduler",
                service_categories=["surgical_procedure"],
                requested_at=world.encounter.period_start - dt.timedelta(days=5),
            )
            decide_authorization(
                session,
                request.id,
                status="approved",
                actor="payer",
                reference_number="PA-1",
                valid_from=dt.date(2024, 2, 1),
                valid_to=dt.date(2024, 4, 1),
                decided_at=world.encounter.period_start - dt.timedelta(days=4),
                bus=bus,
            )
        with factory() as session:
            pending = session.scalars(select(OutboxEvent).where(OutboxEvent.done_at.is_(None)))
            assert [(e.event_type, e.subject) for e in pending] == [
                ("ClaimChanged", f"Claim/{claim.id}")
            ]
    finally:
        unwire(bus)
