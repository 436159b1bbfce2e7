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
from typing import Any, TypeAlias, TypeVar

from sqlalchemy.orm import Session

from healthos_core.errors import InvalidInputError
from healthos_core.record.entities import (
    Encounter,
    MedicationAdministration,
    Observation,
    Procedure,
)

__all__ = [
    "ClinicalEvent",
    "EncounterFinished",
    "EncounterStarted",
    "EventBus",
    "Handler",
    "MedicationAdministered",
    "ObservationRecorded",
    "ProcedurePerformed",
    "default_bus",
]


@dataclass(frozen=True, kw_only=True)
class ClinicalEvent:
    """Base class of every clinical event published on the bus.

    Subscribing a handler to ``ClinicalEvent`` delivers every event type to it.
    """

    @property
    def entity(self) -> Encounter | Procedure | MedicationAdministration | Observation:
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
        makes module-level registration idempotent.
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

    Charge capture subscribes itself to it when :mod:`healthos_core.billing.capture`
    is imported (which ``import healthos_core`` does).

    Returns
    -------
    EventBus
        The same object on every call.
    """
    return _DEFAULT_BUS
