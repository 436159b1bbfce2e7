"""Operations in the record: queue points, queue tickets, Appointments and the bed census.

``docs/operations.md`` ("Queues and beds in the record"). The functions are in
:mod:`~healthos_core.operations.queues` (queue points, rosters, tickets),
:mod:`~healthos_core.operations.appointments`, :mod:`~healthos_core.operations.board`
(``queue_status``, ``ticket_times``) and :mod:`~healthos_core.operations.beds`, and are
re-exported here lazily (the FHIR mapping imports :mod:`healthos_core.operations.codes`,
so importing this package must not import the write path).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "QueuePointStatus": "board",
    "TicketTimes": "board",
    "create_queue_point": "queues",
    "set_roster": "queues",
    "servers_at": "queues",
    "create_ticket": "queues",
    "advance_ticket": "queues",
    "book_appointment": "appointments",
    "set_appointment_status": "appointments",
    "queue_status": "board",
    "ticket_times": "board",
    "BedPool": "beds",
    "create_ward": "beds",
    "create_bed": "beds",
    "set_bed_status": "beds",
    "set_pool_threshold": "beds",
    "record_admit_decision": "beds",
    "set_expected_discharge": "beds",
    "bed_census": "beds",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
