"""Clinical events and the in-process event bus.

The record service (:mod:`healthos_core.record.service`) writes a clinical fact,
flushes it, and then publishes one of the events below on an :class:`EventBus`.
Subscribers such as charge capture (:mod:`healthos_core.billing.capture`) run
**synchronously, in the caller's session and transaction**: a clinical event and
everything its handlers write commit or roll back together (SPEC §3 "writes are
transactional"; style-anchors §8 "Event bus: keep it boring").

There is deliberately no queue, no retry and no error swallowing: an exception in a
handler propagates to the caller of ``publish``, who owns the transaction and rolls it
back. Business rules are published explicitly, never hidden in SQLAlchemy ORM event
hooks (style-anchors §8). An outbox table for asynchronous consumers can come later.

Nothing subscribes itself: a bus has no handlers until someone wires it, which the API's
lifespan and the ``healthos`` commands do with
:func:`healthos_core.wiring.wire_live_path` (library users call it themselves).

Every event carries its :data:`Origin`: ``"live"`` (the default: something happening
now, written through the record service, the API or ``healthos import --live``) or
``"backload"`` (history loaded after the fact). Charge capture and rescoring act on
live events only.

Examples
--------
>>> bus = EventBus()
>>> seen = []
>>> bus.subscribe(ProcedurePerformed, lambda event, session: seen.append(event))
>>> bus.handlers(ProcedurePerformed)  # doctest: +ELLIPSIS
(<function <lambda> at ...>,)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar

from sqlalchemy.orm import Session

from healthos_core.billing.entities import Claim
from healthos_core.errors import InvalidInputError
from healthos_core.record.entities import (
    Appointment,
    Encounter,
    MedicationAdministration,
    Observation,
    Procedure,
    Task,
)

__all__ = [
    "AppointmentChanged",
    "ClaimChanged",
    "ClinicalEvent",
    "EncounterFinished",
    "EncounterStarted",
    "EventBus",
    "Handler",
    "MedicationAdministered",
    "ObservationRecorded",
    "Origin",
    "ProcedurePerformed",
    "QueueTicketChanged",
    "default_bus",
]

#: Where an event comes from: ``"live"`` (happening now) or ``"backload"`` (history
#: loaded after the fact, which charge capture and rescoring skip).
Origin: TypeAlias = Literal["live", "backload"]


@dataclass(frozen=True, kw_only=True)
class ClinicalEvent:
    """Base class of every clinical event published on the bus.

    Subscribing a handler to ``ClinicalEvent`` delivers every event type to it.

    Attributes
    ----------
    origin : {"live", "backload"}, default="live"
        ``"backload"`` marks history loaded after the fact: subscribers that act on
        what happens now (charge capture, rescoring) ignore it.
    """

    origin: Origin = "live"

    @property
    def entity(
        self,
    ) -> (
        Encounter | Procedure | MedicationAdministration | Observation | Claim | Task | Appointment
    ):
        """The record entity the event is about (implemented by each event type)."""
        raise NotImplementedError  # pragma: no cover - every concrete event overrides it

    @property
    def subject_ref(self) -> str:
        """The ``"Type/id"`` reference of :attr:`entity` (e.g. ``"Procedure/42"``)."""
        entity = self.entity
        return f"{type(entity).__name__}/{entity.id}"


@dataclass(frozen=True, kw_only=True)
class EncounterStarted(ClinicalEvent):
    """An encounter began (status ``in-progress``): published by ``admit``.

    Attributes
    ----------
    encounter : Encounter
        The flushed encounter.
    """

    encounter: Encounter

    @property
    def entity(self) -> Encounter:
        """The encounter."""
        return self.encounter


@dataclass(frozen=True, kw_only=True)
class EncounterFinished(ClinicalEvent):
    """An encounter ended (status ``finished``): published by ``discharge``.

    Attributes
    ----------
    encounter : Encounter
        The flushed encounter, with ``period_end`` set.
    """

    encounter: Encounter

    @property
    def entity(self) -> Encounter:
        """The encounter."""
        return self.encounter


@dataclass(frozen=True, kw_only=True)
class ProcedurePerformed(ClinicalEvent):
    """A procedure was performed: published by ``record_procedure``.

    Attributes
    ----------
    procedure : Procedure
        The flushed procedure (status ``completed``).
    """

    procedure: Procedure

    @property
    def entity(self) -> Procedure:
        """The procedure."""
        return self.procedure


@dataclass(frozen=True, kw_only=True)
class MedicationAdministered(ClinicalEvent):
    """A medication dose was given: published by ``record_medication_administration``.

    Attributes
    ----------
    administration : MedicationAdministration
        The flushed administration (status ``completed``).
    """

    administration: MedicationAdministration

    @property
    def entity(self) -> MedicationAdministration:
        """The medication administration."""
        return self.administration


@dataclass(frozen=True, kw_only=True)
class ObservationRecorded(ClinicalEvent):
    """A vital sign, lab result or other observation was recorded: by ``record_observation``.

    Attributes
    ----------
    observation : Observation
        The flushed observation (status ``final``).
    """

    observation: Observation

    @property
    def entity(self) -> Observation:
        """The observation."""
        return self.observation


@dataclass(frozen=True, kw_only=True)
class ClaimChanged(ClinicalEvent):
    """A claim was built, corrected, moved along the revenue cycle or answered by the payer.

    Not clinical, but on the same bus so that the transactional outbox records it for the
    rescoring consumer, which re-runs denial risk for that claim (``reasoning.rescoring``):
    a claim that is submitted, adjudicated or written off leaves the denial worklist, and
    its open ``finance.denial_risk`` suggestion resolves. Charge capture ignores it.

    Published by the claim lifecycle (:mod:`healthos_core.billing.claims`: build, submit,
    adjudication status, appeal, write-off, correct and resubmit), by a decided prior
    authorisation (for the patient's claims not yet submitted), by remittance posting
    called on a live path, and by a live import of a Claim or ClaimResponse.

    Attributes
    ----------
    claim : Claim
        The flushed claim.
    change : str
        What happened, for people reading the outbox (``"built"``, ``"submitted"``,
        ``"adjudicated"``, ``"authorization"``, ``"written"`` …); the consumer does not use it.
    """

    claim: Claim
    change: str = "changed"

    @property
    def entity(self) -> Claim:
        """The claim."""
        return self.claim


@dataclass(frozen=True, kw_only=True)
class QueueTicketChanged(ClinicalEvent):
    """A queue ticket (FHIR Task ``queue-ticket``) was created or moved on.

    Published by the one write path for every new or changed ticket: arrival, called,
    service start, service end, left without being seen (``docs/operations.md``). The
    outbox records it with the queue point (``Location/<id>``) as its subject, for the
    queue-bottleneck scorer.

    Attributes
    ----------
    ticket : Task
        The flushed ticket.
    """

    ticket: Task

    @property
    def entity(self) -> Task:
        """The ticket."""
        return self.ticket


@dataclass(frozen=True, kw_only=True)
class AppointmentChanged(ClinicalEvent):
    """An Appointment was booked or its status changed (arrived, fulfilled, noshow …).

    Attributes
    ----------
    appointment : Appointment
        The flushed appointment; the outbox's subject is its clinic ``Location/<id>``.
    """

    appointment: Appointment

    @property
    def entity(self) -> Appointment:
        """The appointment."""
        return self.appointment


E = TypeVar("E", bound=ClinicalEvent)
#: A subscriber: called with the event and the caller's session; its return value is ignored.
Handler: TypeAlias = Callable[[Any, Session], None]


class EventBus:
    """Synchronous, in-process publish/subscribe for clinical events.

    Handlers run in subscription order, in the publisher's thread, session and
    transaction. Dispatch follows the event's class hierarchy (most specific class
    first), so a handler subscribed to :class:`ClinicalEvent` sees every event.
    Exceptions raised by a handler are not caught: they reach the caller, whose
    transaction must then be rolled back (``with session.begin(): ...`` does it).

    Examples
    --------
    >>> bus = EventBus()
    >>> calls = []
    >>> def handler(event, session):
    ...     calls.append(type(event).__name__)
    >>> bus.subscribe(ClinicalEvent, handler)
    >>> bus.subscribe(ClinicalEvent, handler)  # idempotent: still one subscription
    >>> len(bus.handlers(ClinicalEvent))
    1
    """

    def __init__(self) -> None:
        self._handlers: dict[type[ClinicalEvent], list[Handler]] = {}

    def subscribe(self, event_type: type[E], handler: Callable[[E, Session], None]) -> None:
        """Call ``handler(event, session)`` for every published ``event_type`` event.

        Parameters
        ----------
        event_type : type of ClinicalEvent
            The event class (or :class:`ClinicalEvent` for all events).
        handler : callable ``(event, session) -> None``
            Runs synchronously in the publisher's transaction; may add rows and
            ``flush``, must never ``commit``.

        Raises
        ------
        InvalidInputError
            If ``event_type`` is not a :class:`ClinicalEvent` subclass or ``handler``
            is not callable.

        Notes
        -----
        Subscribing the same handler (equal by ``==``, so the same function or the same
        bound method of the same object) twice for one event type is a no-op, which
        makes wiring idempotent.
        """
        if not (isinstance(event_type, type) and issubclass(event_type, ClinicalEvent)):
            raise InvalidInputError(
                f"cannot subscribe to {event_type!r}: pass a ClinicalEvent subclass "
                "such as ProcedurePerformed"
            )
        if not callable(handler):
            raise InvalidInputError(f"handler {handler!r} is not callable")
        handlers = self._handlers.setdefault(event_type, [])
        if handler not in handlers:
            handlers.append(handler)

    def unsubscribe(self, event_type: type[E], handler: Callable[[E, Session], None]) -> None:
        """Remove ``handler`` from ``event_type``; a no-op if it was not subscribed.

        Parameters
        ----------
        event_type : type of ClinicalEvent
            The event class it was subscribed to.
        handler : callable
            The handler given to :meth:`subscribe`.
        """
        handlers = self._handlers.get(event_type, [])
        if handler in handlers:
            handlers.remove(handler)

    def handlers(self, event_type: type[ClinicalEvent]) -> tuple[Handler, ...]:
        """Return the handlers subscribed directly to ``event_type``, in call order.

        Parameters
        ----------
        event_type : type of ClinicalEvent
            The event class.

        Returns
        -------
        tuple of callables
            Handlers subscribed to exactly this class (not its bases).
        """
        return tuple(self._handlers.get(event_type, ()))

    def publish(self, event: ClinicalEvent, session: Session) -> None:
        """Deliver ``event`` to its subscribers, synchronously, in ``session``.

        Parameters
        ----------
        event : ClinicalEvent
            The event; handlers of its class run first, then those of its bases.
        session : sqlalchemy.orm.Session
            The caller's session; handlers write in its current transaction.

        Raises
        ------
        Exception
            Whatever a handler raises, unchanged; later handlers do not run and the
            caller must roll back its transaction.
        """
        for cls in type(event).__mro__:
            if issubclass(cls, ClinicalEvent):
                # Copy: a handler may (un)subscribe while we iterate.
                for handler in list(self._handlers.get(cls, ())):
                    handler(event, session)


_DEFAULT_BUS = EventBus()


def default_bus() -> EventBus:
    """Return the process-wide bus that the record service publishes on by default.

    It has no handlers until it is wired: :func:`healthos_core.wiring.wire_live_path`
    subscribes charge capture to it (the API's lifespan and the ``healthos`` commands
    that write call it; importing a module never does).

    Returns
    -------
    EventBus
        The same object on every call.
    """
    return _DEFAULT_BUS
