"""Rescoring on the live path: the consumer of the transactional outbox.

A live write records its events in ``outbox_event`` in the writer's transaction
(:mod:`healthos_core.outbox`). :class:`RescoringConsumer` claims them in batches and
re-runs **only the scorers the events concern, for only their subject**
(:func:`kinds_for`: a vital sign → NEWS2, SIRS and deterioration for that encounter; a
creatinine → KDIGO; a finished encounter → every encounter kind, which resolves what no
longer applies). Each subject's result goes through
:func:`healthos_core.advisory.apply_rescores`: the open suggestion for the same subject and
kind is refreshed in place, or resolved (``status = resolved``, by ``system:rescoring``,
naming the event) when the condition cleared.

Guarantees (``docs/rescoring.md``):

* **at least once** -- events are claimed for a lease and marked done in the transaction
  that stores the rescoring; a consumer killed in between leaves them claimed until the
  lease ends, then another consumer claims them again;
* **idempotent** -- a rescore depends on the record, not on the event, and stored
  suggestions are upserted by id, so handling an event twice changes nothing more;
* **no double claim** -- on PostgreSQL claims use ``FOR UPDATE SKIP LOCKED``, and the
  subjects of a batch are locked (``pg_advisory_xact_lock``) while rescored, so two
  consumers never rescore one encounter at the same time; SQLite has one writer at a time.

Run it in the API process (:func:`inline_rescoring`, started by the lifespan when
``HEALTHOS_RESCORE=inline``, the default) or as processes of its own
(``healthos worker``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Engine, exists, or_, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from healthos_core import terminology as t
from healthos_core.advisory import RescoreInput, apply_rescores
from healthos_core.db import make_session_factory, utcnow
from healthos_core.events import ClaimChanged, QueueTicketChanged
from healthos_core.outbox import (
    MAX_ATTEMPTS,
    OutboxEvent,
    claim_events,
    mark_done,
    release_events,
)
from healthos_core.settings import Settings
from healthos_core.suggestion_revision import bump_suggestion_revision
from reasoning.base import Scorer
from reasoning.clinical.kdigo_scorer import KdigoScorer
from reasoning.clinical.model_scorers import DeteriorationScorer, ReadmissionScorer
from reasoning.clinical.news2_scorer import VITAL_CODES, News2Scorer
from reasoning.clinical.sirs_scorer import MEASUREMENTS, SirsScorer
from reasoning.features.deterioration import VARIABLES
from reasoning.finance.denial_scorer import DenialRiskScorer
from reasoning.operations.queue_bottleneck import QueueBottleneckScorer
from reasoning.suggestion import Suggestion

__all__ = [
    "CLAIM_CHANGED",
    "BatchReport",
    "RescoringConsumer",
    "claim_batch",
    "inline_rescoring",
    "kinds_for",
    "rescoring_scorers",
]

logger = logging.getLogger(__name__)

NEWS2: Final = News2Scorer.kind
SIRS: Final = SirsScorer.kind
KDIGO: Final = KdigoScorer.kind
DETERIORATION: Final = DeteriorationScorer.kind
READMISSION: Final = ReadmissionScorer.kind
DENIAL: Final = DenialRiskScorer.kind
QUEUE_BOTTLENECK: Final = QueueBottleneckScorer.kind
#: The outbox event type of a claim change (no claim event is written yet: see the docs).
CLAIM_CHANGED: Final = ClaimChanged.__name__
#: The outbox event type of a new or changed queue ticket (subject: its queue point).
QUEUE_TICKET_CHANGED: Final = QueueTicketChanged.__name__

#: Codes read by the deterioration model (its PhysioNet 2012 variables).
DETERIORATION_CODES: Final = frozenset(code for *_, codes in VARIABLES for code in codes)

#: Kinds whose subject is an encounter.
ENCOUNTER_KINDS: Final = frozenset({NEWS2, SIRS, KDIGO, DETERIORATION, READMISSION})


def kinds_for(event_type: str, code: str | None) -> frozenset[str]:
    """Return the suggestion kinds an outbox event concerns: THE mapping, in one place.

    ========================  ==================================================
    event                     kinds rescored (for the event's subject)
    ========================  ==================================================
    ObservationRecorded       by code: a NEWS2 vital sign → NEWS2; a SIRS
                              measurement (T, HR, RR, PaCO2, WBC) → SIRS; a
                              deterioration-model variable → deterioration;
                              creatinine (LOINC 2160-0) → KDIGO AKI
    EncounterFinished         every encounter kind: NEWS2, SIRS, KDIGO and
                              deterioration score in-progress stays only, so their
                              open suggestions resolve; readmission scores the
                              discharge
    ClaimChanged              denial risk
    QueueTicketChanged        queue bottleneck (the subject is the queue point,
                              ``Location/<id>``)
    anything else             nothing (the event is marked done)
    ========================  ==================================================

    Parameters
    ----------
    event_type : str
        ``OutboxEvent.event_type``.
    code : str or None
        ``OutboxEvent.code`` (an observation's LOINC code).

    Returns
    -------
    frozenset of str

    Examples
    --------
    >>> sorted(kinds_for("ObservationRecorded", "8867-4"))  # heart rate
    ['clinical.deterioration', 'clinical.news2', 'clinical.sirs']
    >>> sorted(kinds_for("ObservationRecorded", "2160-0"))  # creatinine
    ['clinical.deterioration', 'clinical.kdigo_aki']
    """
    if event_type == "ObservationRecorded" and code is not None:
        kinds: set[str] = set()
        if code in VITAL_CODES:
            kinds.add(NEWS2)
        if code in MEASUREMENTS:
            kinds.add(SIRS)
        if code in DETERIORATION_CODES:
            kinds.add(DETERIORATION)
        if code == t.CREATININE:
            kinds.add(KDIGO)
        return frozenset(kinds)
    if event_type == "EncounterFinished":
        return ENCOUNTER_KINDS
    if event_type == CLAIM_CHANGED:
        return frozenset({DENIAL})
    if event_type == QUEUE_TICKET_CHANGED:
        return frozenset({QUEUE_BOTTLENECK})
    return frozenset()


def rescoring_scorers() -> dict[str, Scorer]:
    """Return a fresh scorer for every kind :func:`kinds_for` can name, by kind."""
    scorers: list[Scorer] = [
        News2Scorer(),
        SirsScorer(),
        KdigoScorer(),
        DeteriorationScorer(),
        ReadmissionScorer(),
        DenialRiskScorer(),
        QueueBottleneckScorer(),
    ]
    return {scorer.kind: scorer for scorer in scorers}


def claim_batch(
    session: Session, worker_id: str, limit: int, lease: dt.timedelta
) -> list[OutboxEvent]:
    """Claim up to ``limit`` pending outbox events (:func:`healthos_core.outbox.claim_events`)."""
    return claim_events(session, worker_id, limit=limit, lease=lease)


@dataclass(frozen=True, kw_only=True)
class _Claimed:
    """What a batch needs of a claimed event (plain values, not a session's rows)."""

    id: int
    event_type: str
    entity_ref: str
    subject: str | None
    code: str | None


@dataclass(frozen=True, kw_only=True)
class _Result:
    """What one scorer found for one subject, and the event that caused the rescore."""

    subject: str
    kind: str
    found: list[Suggestion]
    cause: str


@dataclass(kw_only=True)
class BatchReport:
    """What one batch did (ids and counts only: safe to log).

    Attributes
    ----------
    claimed : int
        Events claimed.
    done : int
        Events marked done.
    failed : int
        Events whose handling raised (left claimed; retried after the lease).
    subjects : int
        Subjects rescored.
    stored, resolved : int
        Suggestions inserted or refreshed, and resolved.
    seconds : float
        Wall time of the batch.
    """

    claimed: int = 0
    done: int = 0
    failed: int = 0
    subjects: int = 0
    stored: int = 0
    resolved: int = 0
    seconds: float = 0.0
    failed_ids: list[int] = field(default_factory=list)

    def line(self) -> str:
        """One log line (counts only, no PHI)."""
        return (
            f"rescoring batch: {self.claimed} claimed, {self.done} done, {self.failed} failed; "
            f"{self.subjects} subjects, {self.stored} suggestions stored, "
            f"{self.resolved} resolved in {self.seconds * 1000:.0f} ms"
        )


def default_worker_id() -> str:
    """Return ``host:pid:thread`` (no PHI), naming a consumer in ``claimed_by``."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"[:128]


class RescoringConsumer:
    """Claims outbox events in batches and rescores their subjects.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The database.
    worker_id : str, optional
        Stored in ``claimed_by``; default :func:`default_worker_id` at first use.
    batch : int, default=100
        Most events claimed per batch.
    lease : datetime.timedelta, default=30 s
        How long a claim holds before another consumer may take the events again.
    scorers : dict of str to Scorer, optional
        Kind → scorer (default :func:`rescoring_scorers`).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        worker_id: str | None = None,
        batch: int = 100,
        lease: dt.timedelta = dt.timedelta(seconds=30),
        scorers: dict[str, Scorer] | None = None,
    ) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.batch = batch
        self.lease = lease
        self.scorers = scorers
        self._writer: sessionmaker[Session] = make_session_factory(engine, writer=True)
        self._reader: sessionmaker[Session] = make_session_factory(engine)

    def _scorers(self) -> dict[str, Scorer]:
        if self.scorers is None:
            self.scorers = rescoring_scorers()
        return self.scorers

    def pending(self) -> bool:
        """Return whether any event is waiting to be claimed now (a cheap read)."""
        now = utcnow()
        with self._reader() as session:
            found = session.scalar(
                select(
                    exists().where(
                        OutboxEvent.done_at.is_(None),
                        or_(OutboxEvent.claimed_until.is_(None), OutboxEvent.claimed_until < now),
                        OutboxEvent.attempts < MAX_ATTEMPTS,
                    )
                )
            )
        return bool(found)

    def claim(self) -> list[_Claimed]:
        """Claim a batch in a short transaction of its own (committed at once)."""
        worker = self.worker_id or default_worker_id()
        with self._writer.begin() as session:
            rows = claim_batch(session, worker, self.batch, self.lease)
            return [
                _Claimed(
                    id=row.id,
                    event_type=row.event_type,
                    entity_ref=row.entity_ref,
                    subject=row.subject,
                    code=row.code,
                )
                for row in rows
            ]

    def run_once(self) -> BatchReport:
        """Claim one batch and handle it; return what was done.

        The batch is handled in one transaction that stores the suggestions and marks
        the events done. If the database was busy or unavailable, the events are released
        (:func:`~healthos_core.outbox.release_events`) for the next batch. If anything
        else failed, each event is retried alone, so one bad event does not hold back the
        others; an event that fails alone stays claimed and is claimed again after the
        lease (at most :data:`~healthos_core.outbox.MAX_ATTEMPTS` times).
        """
        started = time.perf_counter()
        report = BatchReport()
        if not self.pending():
            return report
        events = self.claim()
        report.claimed = len(events)
        if not events:
            return report
        try:
            self._handle(events, report)
        except OperationalError as exc:
            # The database is busy or unreachable (SQLite "database is locked" after the
            # busy timeout, a PostgreSQL deadlock or restart): nothing was written; the
            # events are released and claimed again whole by the next batch.
            logger.warning(
                "rescoring batch of %d: database busy or unavailable (%s); will retry",
                len(events),
                _error_name(exc),
            )
            self._release([event.id for event in events])
            report.subjects = report.stored = report.resolved = report.done = 0
            report.failed = len(events)
        except Exception as exc:  # the batch rolled back: retry event by event
            logger.warning(
                "rescoring batch of %d failed (%s); retrying each event",
                len(events),
                type(exc).__name__,
            )
            report.subjects = report.stored = report.resolved = report.done = 0
            for event in events:
                try:
                    self._handle([event], report)
                except Exception as single:
                    report.failed += 1
                    report.failed_ids.append(event.id)
                    logger.error(  # ids and types only: no PHI
                        "rescoring outbox event %d (%s) failed: %s",
                        event.id,
                        event.event_type,
                        type(single).__name__,
                    )
        report.seconds = time.perf_counter() - started
        return report

    def _release(self, ids: list[int]) -> None:
        """End this consumer's lease on ``ids`` now, so they are claimed again at once."""
        try:
            with self._writer.begin() as session:
                release_events(session, ids)
        except OperationalError as exc:  # still busy: the lease ends on its own
            logger.warning("rescoring: could not release a lease (%s)", _error_name(exc))

    def _handle(self, events: Sequence[_Claimed], report: BatchReport) -> None:
        """Rescore the subjects of ``events``, store the results and mark them done.

        On PostgreSQL one transaction does it all, each subject locked while it is read
        and written. On SQLite, whose one writer blocks every other writer, the scorers
        read in a read transaction (a consistent snapshot; WAL readers take no lock) and
        only the results are written, in a short writer transaction: an API write never
        waits for a model to run.
        """
        plan: dict[str, tuple[set[str], _Claimed]] = {}
        for event in events:
            kinds = kinds_for(event.event_type, event.code)
            if not kinds or event.subject is None:
                continue
            wanted, _ = plan.setdefault(event.subject, (set(), event))
            wanted.update(kinds)
            plan[event.subject] = (wanted, event)  # the latest event names the cause
        ids = [event.id for event in events]
        if self.engine.dialect.name == "postgresql":
            with self._writer.begin() as session:
                results = self._score(session, plan, lock=True)
                self._store(session, results, ids, report)
        else:
            with self._reader() as session:
                results = self._score(session, plan, lock=False)
            with self._writer.begin() as session:
                self._store(session, results, ids, report)
        report.subjects += len(plan)

    def _score(
        self, session: Session, plan: dict[str, tuple[set[str], _Claimed]], *, lock: bool
    ) -> list[_Result]:
        """Run each planned scorer once, for all the subjects that need it; split by subject.

        ``score_subjects`` reads only the given subjects, and its batch queries cost about
        the same for one subject as for a batch's: one call per kind, not per subject.
        """
        scorers = self._scorers()
        if lock:
            for subject in sorted(plan):
                _lock_subject(session, subject)
        by_kind: dict[str, list[str]] = {}
        for subject in sorted(plan):
            for kind in plan[subject][0]:
                by_kind.setdefault(kind, []).append(subject)
        results: list[_Result] = []
        for kind in sorted(by_kind):
            scorer = scorers.get(kind)
            if scorer is None:
                continue
            subjects = by_kind[kind]
            found: dict[str, list[Suggestion]] = {subject: [] for subject in subjects}
            for suggestion in scorer.score_subjects(session, subjects):
                if suggestion.subject in found:
                    found[suggestion.subject].append(suggestion)
            for subject in subjects:
                last = plan[subject][1]
                cause = f"{last.event_type} {last.entity_ref} (outbox event {last.id})"
                results.append(
                    _Result(subject=subject, kind=kind, found=found[subject], cause=cause)
                )
        return results

    def _store(
        self, session: Session, results: list[_Result], ids: list[int], report: BatchReport
    ) -> None:
        """Apply the results (refresh, insert, resolve) and mark the events done."""
        applied = apply_rescores(
            session,
            [
                RescoreInput(
                    subject=result.subject,
                    kind=result.kind,
                    suggestions=result.found,
                    cause=result.cause,
                )
                for result in results
            ],
            bump_revision=False,
        )
        report.stored += sum(len(a.stored) for a in applied)
        report.resolved += sum(len(a.resolved) for a in applied)
        changed = any(a.changed for a in applied)
        report.done += mark_done(session, ids)
        if changed:
            bump_suggestion_revision(session)  # last: see suggestion_revision

    def run(
        self,
        stop: threading.Event,
        *,
        poll: float = 0.1,
        wake: threading.Event | None = None,
        on_batch: Callable[[BatchReport], None] | None = None,
    ) -> None:
        """Run batches until ``stop`` is set; wait ``poll`` seconds when there is no work.

        Parameters
        ----------
        stop : threading.Event
            Set it to stop after the current batch.
        poll : float, default=0.1
            Seconds between looks at an empty outbox.
        wake : threading.Event, optional
            Set it to look at once (e.g. after a commit) instead of waiting ``poll``.
        on_batch : callable, optional
            Called with each :class:`BatchReport` that claimed something.
        """
        while not stop.is_set():
            try:
                report = self.run_once()
            except OperationalError as exc:  # busy (SQLite's write lock) or restarting
                name = _error_name(exc)
                logger.warning("rescoring consumer: %s; retrying", name)
                stop.wait(poll if "BUSY" in name else max(poll, 1.0))
                continue
            except Exception as exc:  # e.g. the database is unreachable: wait and retry
                logger.warning("rescoring consumer: %s; retrying", type(exc).__name__)
                stop.wait(max(poll, 1.0))
                continue
            if report.claimed:
                if on_batch is not None:
                    on_batch(report)
                if report.claimed >= self.batch and not report.failed:
                    continue  # more may be waiting
            if wake is not None:
                wake.wait(poll)
                wake.clear()
            else:
                stop.wait(poll)


def _error_name(exc: OperationalError) -> str:
    """Return the driver's error name or code (``SQLITE_BUSY``, ``40P01``), not its message."""
    orig = exc.orig
    name = getattr(orig, "sqlite_errorname", None) or getattr(orig, "sqlstate", None)
    return f"{type(orig).__name__} {name}" if name else type(orig).__name__


def _lock_subject(session: Session, subject: str) -> None:
    """On PostgreSQL, hold a transaction lock on ``subject`` so rescorings of it queue.

    Two consumers with events of one encounter would otherwise both find no open
    suggestion and both insert one. The lock ends with the transaction; subjects are
    locked in sorted order, so two batches cannot deadlock. SQLite has one writer.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:subject))"), {"subject": subject}
        )


class InlineRescoring:
    """The consumer in a thread of the current process (the API's embedded default).

    Parameters
    ----------
    consumer : RescoringConsumer
    poll : float, default=0.1
        Seconds between looks at an empty outbox.
    """

    def __init__(self, consumer: RescoringConsumer, *, poll: float = 0.1) -> None:
        self.consumer = consumer
        self.poll = poll
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (a no-op if it runs)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.consumer.run,
            args=(self._stop,),
            kwargs={"poll": self.poll, "wake": self._wake},
            name="healthos-rescoring",
            daemon=True,
        )
        self._thread.start()

    def wake(self) -> None:
        """Look at the outbox now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current batch and wait for the thread (up to ``timeout`` s)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        """Whether the thread runs."""
        return self._thread is not None and self._thread.is_alive()


@contextmanager
def inline_rescoring(settings: Settings, engine: Engine) -> Iterator[InlineRescoring | None]:
    """Run the consumer in this process while the block runs, if the settings say so.

    ``settings.rescore``: ``"inline"`` (default) starts it; ``"worker"`` (separate
    ``healthos worker`` processes consume) and ``"off"`` do not, and yield ``None``. The
    thread looks at the outbox after every commit on ``engine`` (a SQLAlchemy ``commit``
    event wakes it) and otherwise every ``rescore_poll_seconds``.

    Parameters
    ----------
    settings : Settings
        ``rescore``, ``rescore_poll_seconds``, ``rescore_batch``, ``rescore_lease_seconds``.
    engine : sqlalchemy.Engine
        The database.

    Yields
    ------
    InlineRescoring or None
    """
    if settings.rescore != "inline":
        yield None
        return
    inline = InlineRescoring(
        RescoringConsumer(
            engine,
            batch=settings.rescore_batch,
            lease=dt.timedelta(seconds=settings.rescore_lease_seconds),
        ),
        poll=settings.rescore_poll_seconds,
    )

    # Look at the outbox right after any commit on this engine (a write may have queued
    # events), not only every poll: the poll is then only the fallback.
    def _wake(_connection: Any) -> None:
        inline.wake()

    sa_event.listen(engine, "commit", _wake)
    inline.start()
    try:
        yield inline
    finally:
        sa_event.remove(engine, "commit", _wake)
        inline.stop()
