"""Explicit wiring of the live path: charge capture, the outbox and remittance posting.

Importing a HealthOS module registers nothing: the default event bus
(:func:`healthos_core.events.default_bus`) starts with no handlers and the FHIR importer
with no hooks. The live path is wired by one call, :func:`wire_live_path`, which

* subscribes charge capture (:func:`healthos_core.billing.capture.register`) to the bus,
  so the live clinical events of the record service and of ``healthos import --live``
  post their ChargeItems in the writer's transaction;
* subscribes the transactional outbox (:class:`healthos_core.outbox.OutboxRecorder`),
  so the same live events are recorded, in the same transaction, for the rescoring
  consumer (``reasoning.rescoring``; ``docs/rescoring.md``); and
* installs remittance posting (:func:`healthos_core.billing.remittance.
  register_remittance_hooks`), so imported Claims enter the revenue cycle and imported
  ClaimResponses post to the ledger in the import's transaction.

The API calls it in its lifespan (:func:`serving.main.create_app`), the ``healthos``
commands that write call it, and so does :func:`serving.demo.run_demo`. **A library user
who writes through** :mod:`healthos_core.record.service` **or imports claims calls it once
at start-up**::

    from healthos_core.wiring import wire_live_path

    wire_live_path()  # idempotent: a second call registers nothing more

Like charge capture, the outbox records ``live`` events only, never a ``backload``.

Notes
-----
The bus is per object (pass your own :class:`~healthos_core.events.EventBus`), but import
hooks are process-wide: wiring any bus installs remittance posting for every import in
the process, and :func:`unwire` removes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from healthos_core.billing import capture
from healthos_core.billing.capture import CaptureSettings, ChargeCapture
from healthos_core.billing.remittance import (
    register_remittance_hooks,
    remittance_hooks_registered,
    unregister_remittance_hooks,
)
from healthos_core.events import EventBus, default_bus
from healthos_core.outbox import OutboxRecorder, recorders_on

__all__ = ["Wiring", "is_wired", "unwire", "wire_live_path", "wired"]


@dataclass(frozen=True, kw_only=True)
class Wiring:
    """What :func:`wire_live_path` wired.

    Attributes
    ----------
    bus : EventBus
        The bus charge capture is subscribed to.
    capture : ChargeCapture
        The subscribed charge capture (its ``settings`` say how it prices).
    outbox : OutboxRecorder
        The subscribed outbox recorder (live events → ``outbox_event`` rows).
    """

    bus: EventBus
    capture: ChargeCapture
    outbox: OutboxRecorder


def wire_live_path(
    bus: EventBus | None = None, *, capture_settings: CaptureSettings | None = None
) -> Wiring:
    """Subscribe charge capture and the outbox to ``bus``, install remittance posting.

    Idempotent: a second call subscribes nothing more.

    Parameters
    ----------
    bus : EventBus, optional
        The bus the record service publishes on; :func:`~healthos_core.events.default_bus`
        when not given.
    capture_settings : CaptureSettings, optional
        As for :func:`healthos_core.billing.capture.register` (``None`` keeps the
        capture already on the bus).

    Returns
    -------
    Wiring
        The bus, its charge capture and its outbox recorder.

    Examples
    --------
    >>> bus = EventBus()
    >>> first = wire_live_path(bus)
    >>> wire_live_path(bus).capture is first.capture  # calling twice registers once
    True
    >>> unwire(bus)
    >>> is_wired(bus)
    False
    """
    bus = bus if bus is not None else default_bus()
    subscribed = capture.register(bus, settings=capture_settings)
    recorders = recorders_on(bus)
    recorder = recorders[0] if recorders else OutboxRecorder()
    recorder.subscribe(bus)
    register_remittance_hooks()
    return Wiring(bus=bus, capture=subscribed, outbox=recorder)


def unwire(bus: EventBus | None = None) -> None:
    """Remove charge capture, the outbox and remittance posting; a no-op if absent.

    Parameters
    ----------
    bus : EventBus, optional
        Default :func:`~healthos_core.events.default_bus`.
    """
    bus = bus if bus is not None else default_bus()
    capture.unregister(bus)
    for recorder in recorders_on(bus):
        recorder.unsubscribe(bus)
    unregister_remittance_hooks()


def is_wired(bus: EventBus | None = None) -> bool:
    """Return whether charge capture and the outbox are on ``bus``, remittance posting installed.

    ``bus`` defaults to :func:`~healthos_core.events.default_bus`; what
    :func:`wire_live_path` wires is there whole (a half-wired process is not wired).
    """
    outbox_on = bool(recorders_on(bus if bus is not None else default_bus()))
    return capture.is_registered(bus) and outbox_on and remittance_hooks_registered()


@contextmanager
def wired(
    bus: EventBus | None = None, *, capture_settings: CaptureSettings | None = None
) -> Iterator[Wiring]:
    """Wire the live path for a block; unwire it after unless it was wired before.

    For code that owns the whole process for a while (the API's lifespan, a pipeline
    that fills a database of its own) and must leave it as it found it.

    Parameters
    ----------
    bus : EventBus, optional
        Default :func:`~healthos_core.events.default_bus`.
    capture_settings : CaptureSettings, optional
        As for :func:`wire_live_path`.

    Yields
    ------
    Wiring
        What :func:`wire_live_path` returned.
    """
    bus = bus if bus is not None else default_bus()
    was_wired = is_wired(bus)
    wiring = wire_live_path(bus, capture_settings=capture_settings)
    try:
        yield wiring
    finally:
        if not was_wired:
            unwire(bus)
