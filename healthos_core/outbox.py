"""The transactional outbox: every live clinical event, written in the writer's transaction.

The event bus (:mod:`healthos_core.events`) runs its subscribers synchronously, in the
writer's transaction. :class:`OutboxRecorder` is one of them: for every **live** event it
adds an :class:`OutboxEvent` row to the same session, so the row commits (or rolls back)
with the clinical fact that caused it. A consumer in another transaction, thread or
process (``reasoning.rescoring``) later claims the rows and re-runs the scorers the
events concern. Back-loaded history (``origin="backload"``) is never queued.

The recorder is wired explicitly, with charge capture, by
:func:`healthos_core.wiring.wire_live_path`; importing this module subscribes nothing.

Delivery is **at least once**: a consumer claims rows for a lease
(:func:`claim_events`: ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent
consumers never claim the same row; on SQLite one writer at a time), handles them and
marks them done (:func:`mark_done`). A consumer that dies between the two leaves its rows
claimed until the lease ends; another consumer then claims them again. Handlers must
therefore be idempotent (rescoring is: it depends on the record, not on the event).

See ``docs/rescoring.md``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Final

from sqlalchemy import Index, Integer, String, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from healthos_core.db import Base, utcnow
from healthos_core.errors import InvalidInputError
from healthos_core.events import (
    AppointmentChanged,
    ClaimChanged,
    ClinicalEvent,
    EncounterFinished,
    EncounterStarted,
    EventBus,
    MedicationAdministered,
    ObservationRecorded,
    ProcedurePerformed,
    QueueTicketChanged,
)

__all__ = [
    "MAX_ATTEMPTS",
    "OutboxEvent",
    "OutboxRecorder",
    "claim_events",
    "enqueue",
    "mark_done",
    "outbox_backlog",
    "record_event",
    "release_events",
]

logger = logging.getLogger(__name__)

#: Claims of one event after which it is no longer handed out (a poison event: it is
#: left in the table, not done, for a person to look at; see ``docs/rescoring.md``).
MAX_ATTEMPTS: Final = 5


class OutboxEvent(Base):
    """One live clinical event waiting for (or already handled by) the rescoring consumer.

    Attributes
    ----------
    id : int
        Increasing: the order events are claimed in.
    event_type : str
        The event class name (``"ObservationRecorded"``) or ``"ClaimChanged"``.
    entity_ref : str
        ``"Type/id"`` of the entity the event is about (``"Observation/…"``).
    subject : str or None
        ``"Type/id"`` of what the scorers score (``"Encounter/…"`` for clinical events,
        ``"Claim/…"`` for claims, the queue point's ``"Location/…"`` for queue tickets and
        Appointments); ``None`` when the entity belongs to none.
    patient_id : str or None
        The patient (id without ``"Patient/"``).
    code : str or None
        The entity's code (an observation's LOINC code), which decides the scorers.
    origin : str
        Always ``"live"`` for recorded events (back-loads are not queued).
    created_at : datetime
        Aware UTC time the event was recorded (in the writer's transaction).
    attempts : int
        How many times a consumer claimed it.
    claimed_by, claimed_until : str or None, datetime or None
        The consumer holding it and the end of its lease.
    done_at : datetime or None
        When a consumer finished it; ``None`` while pending.
    """

    __tablename__ = "outbox_event"
    __table_args__ = (
        Index("ix_outbox_event_pending", "done_at", "id"),
        Index("ix_outbox_event_entity_ref", "entity_ref"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_type: Mapped[str] = mapped_column(String(64))
    entity_ref: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str | None] = mapped_column(String(128))
    patient_id: Mapped[str | None] = mapped_column(String(64))
    code: Mapped[str | None] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(16), default="live")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[dt.datetime | None]
    done_at: Mapped[dt.datetime | None]

    def __repr__(self) -> str:
        return (
            f"OutboxEvent(id={self.id!r}, event_type={self.event_type!r}, "
            f"entity_ref={self.entity_ref!r}, done={self.done_at is not None})"
        )


def enqueue(
    session: Session,
    *,
    event_type: str,
    entity_ref: str,
    subject: str | None,
    patient_id: str | None = None,
    code: str | None = None,
) -> OutboxEvent:
    """Add one live event to the outbox in the caller's transaction.

    An event whose entity and type are already waiting, unclaimed, is not queued twice:
    the consumer will rescore the subject from the record as it is after this write
    commits (re-importing a live bundle queues nothing new).

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The writer's session: the row commits with the write that caused it.
    event_type : str
        E.g. ``"ObservationRecorded"``.
    entity_ref : str
        ``"Type/id"`` of the entity.
    subject : str or None
        ``"Type/id"`` the scorers score (an encounter, a claim).
    patient_id : str, optional
        The patient's id.
    code : str, optional
        The entity's code (an observation's LOINC code).

    Returns
    -------
    OutboxEvent
        The pending row (added to ``session``), or the one already waiting.

    Raises
    ------
    InvalidInputError
        If ``entity_ref`` or ``subject`` is not a ``"Type/id"`` reference.
    """
    for name, ref in (("entity_ref", entity_ref), ("subject", subject)):
        if ref is not None and "/" not in ref:
            raise InvalidInputError(f"outbox {name} {ref!r} is not a 'Type/id' reference")
    # Only a row no consumer has claimed yet will be handled after this write commits.
    # FOR UPDATE (PostgreSQL): a claim in progress makes us wait and then skip the row
    # (now claimed), and our lock makes a claim skip it until we commit.
    waiting = session.scalar(
        select(OutboxEvent)
        .where(
            OutboxEvent.entity_ref == entity_ref,
            OutboxEvent.event_type == event_type,
            OutboxEvent.done_at.is_(None),
            OutboxEvent.claimed_until.is_(None),
        )
        .limit(1)
        .with_for_update()
    )
    if waiting is not None:
        return waiting
    row = OutboxEvent(
        event_type=event_type,
        entity_ref=entity_ref,
        subject=subject,
        patient_id=patient_id,
        code=code,
        origin="live",
        created_at=utcnow(),
        attempts=0,
    )
    session.add(row)
    return row


def record_event(session: Session, event: ClinicalEvent) -> OutboxEvent | None:
    """Add a live clinical event to the outbox; skip a back-load.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The writer's session.
    event : ClinicalEvent
        The published event.

    Returns
    -------
    OutboxEvent or None
        The pending row, or ``None`` for a ``"backload"`` event.
    """
    if event.origin != "live":
        return None
    entity = event.entity
    encounter_id: str | None
    code: str | None = None
    if isinstance(event, QueueTicketChanged | AppointmentChanged):
        # Operations events: the subject is the queue point or clinic, what the
        # queue-bottleneck scorer scores; the code is the ticket's or appointment's status.
        operational = event.entity
        location_id = operational.location_id
        return enqueue(
            session,
            event_type=type(event).__name__,
            entity_ref=event.subject_ref,
            subject=f"Location/{location_id}" if location_id else None,
            patient_id=operational.patient_id,
            code=operational.status,
        )
    if isinstance(event, EncounterStarted | EncounterFinished):
        encounter_id = event.encounter.id
    elif isinstance(event, ObservationRecorded):
        encounter_id = event.observation.encounter_id
        code = event.observation.code
    elif isinstance(event, ProcedurePerformed):
        encounter_id = event.procedure.encounter_id
        code = event.procedure.code
    elif isinstance(event, MedicationAdministered):
        encounter_id = event.administration.encounter_id
        code = event.administration.code
    elif isinstance(event, ClaimChanged):  # denial risk scores the claim itself
        return enqueue(
            session,
            event_type=type(event).__name__,
            entity_ref=event.subject_ref,
            subject=event.subject_ref,
            patient_id=event.claim.patient_id,
        )
    else:  # a future event type: queued, scored by nothing until the mapping names it
        encounter_id = getattr(entity, "encounter_id", None)
    return enqueue(
        session,
        event_type=type(event).__name__,
        entity_ref=event.subject_ref,
        subject=f"Encounter/{encounter_id}" if encounter_id else None,
        patient_id=getattr(entity, "patient_id", None),
        code=code,
    )


class OutboxRecorder:
    """Bus subscriber: records every live clinical event in the outbox.

    Subscribe it with :func:`healthos_core.wiring.wire_live_path` (or :meth:`subscribe`);
    it subscribes to :class:`~healthos_core.events.ClinicalEvent`, so it sees every event
    type, and skips back-loads.

    Examples
    --------
    >>> bus = EventBus()
    >>> recorder = OutboxRecorder()
    >>> recorder.subscribe(bus)
    >>> recorder.is_subscribed(bus)
    True
    """

    def on_event(self, event: ClinicalEvent, session: Session) -> None:
        """Record ``event`` in ``session``'s transaction (see :func:`record_event`)."""
        record_event(session, event)

    def subscribe(self, bus: EventBus) -> None:
        """Subscribe to every clinical event on ``bus`` (idempotent)."""
        bus.subscribe(ClinicalEvent, self.on_event)

    def unsubscribe(self, bus: EventBus) -> None:
        """Remove the subscription from ``bus``; a no-op if absent."""
        bus.unsubscribe(ClinicalEvent, self.on_event)

    def is_subscribed(self, bus: EventBus) -> bool:
        """Return whether this recorder is subscribed to ``bus``."""
        return self.on_event in bus.handlers(ClinicalEvent)


def recorders_on(bus: EventBus) -> list[OutboxRecorder]:
    """Return the outbox recorders subscribed to ``bus`` (found from its handlers)."""
    found: list[OutboxRecorder] = []
    for handler in bus.handlers(ClinicalEvent):
        owner = getattr(handler, "__self__", None)
        if (
            owner is not None
            and type(owner).__module__ == __name__
            and type(owner).__qualname__ == "OutboxRecorder"
        ):
            found.append(owner)
    return found


def claim_events(
    session: Session,
    worker_id: str,
    *,
    limit: int = 100,
    lease: dt.timedelta = dt.timedelta(seconds=30),
    now: dt.datetime | None = None,
) -> list[OutboxEvent]:
    """Claim up to ``limit`` pending events for ``worker_id`` until the lease ends.

    Pending means not done, not leased to a consumer now (never claimed, or its lease
    ended: the consumer died or is late) and claimed fewer than :data:`MAX_ATTEMPTS`
    times. Oldest first. The caller commits the claim at once (a short transaction), then
    handles the events and calls :func:`mark_done` in another.

    On PostgreSQL the rows are selected ``FOR UPDATE SKIP LOCKED``: a concurrent
    consumer skips the rows this one is claiming instead of waiting for them or claiming
    them too. On SQLite there is one writer at a time (open the session with
    ``make_session_factory(engine, writer=True)`` so it waits for the write lock).

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        A writer transaction (flushed, not committed).
    worker_id : str
        The consumer's name (host, process, thread; no PHI), stored in ``claimed_by``.
    limit : int, default=100
        Most events claimed.
    lease : datetime.timedelta, default=30 s
        How long the claim holds; after it, another consumer may claim the events again.
    now : datetime, optional
        Aware current time (default now, UTC).

    Returns
    -------
    list of OutboxEvent
        The claimed events, by id.

    Raises
    ------
    InvalidInputError
        If ``limit`` is below 1, ``lease`` is not positive or ``worker_id`` is blank.
    """
    if limit < 1:
        raise InvalidInputError(f"limit must be at least 1 (got {limit})")
    if lease <= dt.timedelta(0):
        raise InvalidInputError(f"the lease must be positive (got {lease})")
    if not worker_id.strip():
        raise InvalidInputError("a consumer needs a worker_id")
    now = now or utcnow()
    claimable = (
        select(OutboxEvent.id)
        .where(
            OutboxEvent.done_at.is_(None),
            (OutboxEvent.claimed_until.is_(None)) | (OutboxEvent.claimed_until < now),
            OutboxEvent.attempts < MAX_ATTEMPTS,
        )
        .order_by(OutboxEvent.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        claimable = claimable.with_for_update(skip_locked=True)
    ids = list(session.scalars(claimable))
    if not ids:
        return []
    session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id.in_(ids))
        .values(
            claimed_by=worker_id[:128],
            claimed_until=now + lease,
            attempts=OutboxEvent.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    rows = session.scalars(
        select(OutboxEvent)
        .where(OutboxEvent.id.in_(ids))
        .order_by(OutboxEvent.id)
        .execution_options(populate_existing=True)
    )
    return list(rows)


def mark_done(session: Session, ids: Sequence[int], *, at: dt.datetime | None = None) -> int:
    """Mark events done, in the transaction that handled them.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The handler's transaction (so the events are done exactly when its writes commit).
    ids : sequence of int
        The events handled.
    at : datetime, optional
        Aware time (default now, UTC).

    Returns
    -------
    int
        Events marked (an event already done is left as it is).
    """
    if not ids:
        return 0
    result = session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id.in_(list(ids)), OutboxEvent.done_at.is_(None))
        .values(done_at=at or utcnow(), claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def release_events(session: Session, ids: Sequence[int]) -> int:
    """End the lease on events not done, so any consumer may claim them again now.

    For a consumer that could not handle them because the database was busy: the claim
    does not count towards :data:`MAX_ATTEMPTS` (a busy database is not the event's fault).

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        A writer transaction.
    ids : sequence of int
        The events to release.

    Returns
    -------
    int
        Events released.
    """
    if not ids:
        return 0
    result = session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id.in_(list(ids)), OutboxEvent.done_at.is_(None))
        .values(claimed_until=None, claimed_by=None, attempts=OutboxEvent.attempts - 1)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def outbox_backlog(session: Session) -> dict[str, int]:
    """Return how many events are pending, given up on (:data:`MAX_ATTEMPTS`) and done."""
    pending = session.scalar(
        select(func.count())
        .select_from(OutboxEvent)
        .where(OutboxEvent.done_at.is_(None), OutboxEvent.attempts < MAX_ATTEMPTS)
    )
    failed = session.scalar(
        select(func.count())
        .select_from(OutboxEvent)
        .where(OutboxEvent.done_at.is_(None), OutboxEvent.attempts >= MAX_ATTEMPTS)
    )
    done = session.scalar(
        select(func.count()).select_from(OutboxEvent).where(OutboxEvent.done_at.is_not(None))
    )
    return {"pending": int(pending or 0), "failed": int(failed or 0), "done": int(done or 0)}
