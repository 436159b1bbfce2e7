"""The transactional outbox: live events are queued in the writer's transaction, claimed once."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core import terminology as t
from healthos_core.db import make_session_factory
from healthos_core.errors import InvalidInputError
from healthos_core.events import EventBus, ObservationRecorded
from healthos_core.outbox import (
    MAX_ATTEMPTS,
    OutboxEvent,
    OutboxRecorder,
    claim_events,
    mark_done,
    outbox_backlog,
    recorders_on,
    release_events,
)
from healthos_core.record import service
from healthos_core.wiring import Wiring, is_wired, unwire, wire_live_path
from tests.factories import make_encounter

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _heart_rate(session: Session, encounter_id: str, value: float, bus: EventBus) -> str:
    observation = service.record_observation(
        session,
        encounter_id=encounter_id,
        code=t.HEART_RATE,
        value=value,
        unit="/min",
        effective_at=NOW - dt.timedelta(minutes=5),
        bus=bus,
    )
    return observation.id


def _rows(factory: sessionmaker[Session]) -> list[OutboxEvent]:
    with factory() as session:
        return list(session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))


def test_outbox_records_a_live_event_in_the_writers_transaction(
    session_factory: sessionmaker[Session],
) -> None:
    bus = EventBus()
    wire_live_path(bus)
    try:
        with session_factory.begin() as session:
            encounter = make_encounter(session, period_start=NOW - dt.timedelta(hours=2))
            observation_id = _heart_rate(session, encounter.id, 120, bus)
        [row] = _rows(session_factory)
        assert (row.event_type, row.entity_ref, row.subject, row.code) == (
            "ObservationRecorded",
            f"Observation/{observation_id}",
            f"Encounter/{encounter.id}",
            t.HEART_RATE,
        )
        assert row.patient_id == encounter.patient_id
        assert row.origin == "live" and row.attempts == 0 and row.done_at is None
        assert row.created_at.tzinfo is not None

        # A write that rolls back leaves no event behind.
        with pytest.raises(RuntimeError), session_factory.begin() as session:
            _heart_rate(session, encounter.id, 130, bus)
            raise RuntimeError("the writer fails after publishing")
        assert len(_rows(session_factory)) == 1
    finally:
        unwire(bus)


def test_outbox_skips_backloaded_events(session_factory: sessionmaker[Session]) -> None:
    recorder = OutboxRecorder()
    with session_factory.begin() as session:
        encounter = make_encounter(session, period_start=NOW - dt.timedelta(hours=2))
        observation = service.record_observation(
            session,
            encounter_id=encounter.id,
            code=t.HEART_RATE,
            value=80,
            unit="/min",
            effective_at=NOW - dt.timedelta(minutes=5),
            bus=EventBus(),
        )
        recorder.on_event(ObservationRecorded(observation=observation, origin="backload"), session)
        recorder.on_event(ObservationRecorded(observation=observation), session)
    assert [row.event_type for row in _rows(session_factory)] == ["ObservationRecorded"]


def test_an_unclaimed_event_is_not_queued_twice(session_factory: sessionmaker[Session]) -> None:
    recorder = OutboxRecorder()
    with session_factory.begin() as session:
        encounter = make_encounter(session, period_start=NOW - dt.timedelta(hours=2))
        observation = service.record_observation(
            session,
            encounter_id=encounter.id,
            code=t.HEART_RATE,
            value=80,
            unit="/min",
            effective_at=NOW - dt.timedelta(minutes=5),
            bus=EventBus(),
        )
        event = ObservationRecorded(observation=observation)
        recorder.on_event(event, session)
        recorder.on_event(event, session)  # a re-import publishes it again
    assert len(_rows(session_factory)) == 1
    # Once claimed, the same event is queued again: the claim may predate the write.
    with session_factory.begin() as session:
        assert len(claim_events(session, "w1")) == 1
    with session_factory.begin() as session:
        recorder.on_event(event, session)
    assert len(_rows(session_factory)) == 2


def test_wiring_subscribes_one_recorder_and_unwires_it() -> None:
    bus = EventBus()
    first: Wiring = wire_live_path(bus)
    second = wire_live_path(bus)
    assert first.outbox is second.outbox
    assert recorders_on(bus) == [first.outbox]
    assert is_wired(bus)
    unwire(bus)
    assert recorders_on(bus) == [] and not is_wired(bus)


def _queue(factory: sessionmaker[Session], n: int) -> list[int]:
    bus = EventBus()
    OutboxRecorder().subscribe(bus)
    with factory.begin() as session:
        encounter = make_encounter(session, period_start=NOW - dt.timedelta(hours=2))
        for i in range(n):
            _heart_rate(session, encounter.id, 60 + i, bus)
    return [row.id for row in _rows(factory)]


def test_claims_lease_events_until_done_or_expired(engine: Engine) -> None:
    factory = make_session_factory(engine, writer=True)
    ids = _queue(factory, 5)
    lease = dt.timedelta(seconds=30)
    with factory.begin() as session:
        first = [e.id for e in claim_events(session, "w1", limit=3, lease=lease, now=NOW)]
    with factory.begin() as session:
        second = [e.id for e in claim_events(session, "w2", limit=10, lease=lease, now=NOW)]
    assert first == ids[:3] and second == ids[3:]
    with factory.begin() as session:
        assert claim_events(session, "w3", lease=lease, now=NOW) == []
        assert mark_done(session, first) == 3
        assert mark_done(session, first) == 0  # done once
    # w2 died: after its lease, its events are claimed again (at least once).
    later = NOW + lease + dt.timedelta(seconds=1)
    with factory.begin() as session:
        again = claim_events(session, "w3", lease=lease, now=later)
        assert [e.id for e in again] == second
        assert {(e.claimed_by, e.attempts) for e in again} == {("w3", 2)}
    with factory() as session:
        assert outbox_backlog(session) == {"pending": 2, "failed": 0, "done": 3}


def test_a_released_claim_is_claimed_again_at_once_and_not_counted(engine: Engine) -> None:
    factory = make_session_factory(engine, writer=True)
    ids = _queue(factory, 2)
    with factory.begin() as session:
        assert [e.id for e in claim_events(session, "busy", now=NOW)] == ids
    with factory.begin() as session:  # the database was busy: nothing handled
        assert release_events(session, ids) == 2
    with factory.begin() as session:
        again = claim_events(session, "next", now=NOW)
        assert [(e.id, e.claimed_by, e.attempts) for e in again] == [
            (ids[0], "next", 1),
            (ids[1], "next", 1),
        ]


def test_an_event_claimed_too_often_is_given_up(engine: Engine) -> None:
    factory = make_session_factory(engine, writer=True)
    [event_id] = _queue(factory, 1)
    lease = dt.timedelta(seconds=1)
    for attempt in range(MAX_ATTEMPTS):
        with factory.begin() as session:
            when = NOW + attempt * dt.timedelta(seconds=2)
            assert [e.id for e in claim_events(session, "w", lease=lease, now=when)] == [event_id]
    with factory.begin() as session:
        assert claim_events(session, "w", lease=lease, now=NOW + dt.timedelta(hours=1)) == []
    with factory() as session:
        assert outbox_backlog(session) == {"pending": 0, "failed": 1, "done": 0}


def test_concurrent_claims_skip_each_others_rows(engine: Engine) -> None:
    factory = make_session_factory(engine, writer=True)
    ids = _queue(factory, 6)
    if engine.dialect.name != "postgresql":
        # SQLite has one writer at a time: claims are sequential and disjoint.
        with factory.begin() as session:
            a = [e.id for e in claim_events(session, "a", limit=4)]
        with factory.begin() as session:
            b = [e.id for e in claim_events(session, "b", limit=4)]
    else:
        # Two open transactions: the second skips the rows the first has locked.
        with factory() as first, factory() as second:
            with first.begin():
                a = [e.id for e in claim_events(first, "a", limit=4)]
                with second.begin():
                    b = [e.id for e in claim_events(second, "b", limit=4)]
    assert a == ids[:4] and b == ids[4:]
    assert not set(a) & set(b)


def test_claim_refuses_bad_arguments(session: Session) -> None:
    with pytest.raises(InvalidInputError, match="limit"):
        claim_events(session, "w", limit=0)
    with pytest.raises(InvalidInputError, match="lease"):
        claim_events(session, "w", lease=dt.timedelta(0))
    with pytest.raises(InvalidInputError, match="worker_id"):
        claim_events(session, " ")
