"""Where the operational KPIs read census and queue data: small protocols.

Bed census and queue tickets are kept by :mod:`healthos_core.operations` (issue 11,
``docs/kpis.md``). The KPIs read them only through these callables, so any function of
the same shape plugs in: :func:`healthos_core.operations.bed_census` is a
:class:`BedCensusSource` as it is, and :func:`queue_visit_source` joins
``queue_status`` (queue points) and ``ticket_times`` (tickets) into a
:class:`QueueVisitSource`. A source left ``None`` in :class:`KpiSources` makes its KPIs
report ``null`` with the reason, never a made-up value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from sqlalchemy.orm import Session

__all__ = [
    "BedCensusSource",
    "BedPoolLike",
    "KpiSources",
    "QueuePointLike",
    "QueuePointSource",
    "QueueVisit",
    "QueueVisitLike",
    "QueueVisitSource",
    "TicketLike",
    "TicketSource",
    "queue_visit_source",
]


class BedPoolLike(Protocol):
    """One bed pool of a facility at a moment (the fields of the census ``BedPool``)."""

    @property
    def pool(self) -> str:
        """Ward type of the pool (``general_medicine``, ``icu``...)."""

    @property
    def facility_id(self) -> str | None:
        """The facility (Organization id); pools without one are in no scope."""

    @property
    def available(self) -> int:
        """Staffed beds: every bed not closed."""

    @property
    def occupied(self) -> int:
        """Beds occupied (HL7 v2 table 0116 ``O``)."""


class BedCensusSource(Protocol):
    """``bed_census(session, *, at, facility_id=None)``: the pools at a moment."""

    def __call__(
        self, session: Session, *, at: dt.datetime, facility_id: str | None = None
    ) -> Sequence[BedPoolLike]:
        """Return the rows (see the class docstring)."""
        ...


class QueuePointLike(Protocol):
    """A queue point (the fields of ``QueuePointStatus`` the KPIs need)."""

    @property
    def id(self) -> str:
        """The queue point (Location id)."""

    @property
    def facility_id(self) -> str:
        """The facility (Organization id)."""

    @property
    def service(self) -> str:
        """The kind of queue point (``opd_clinic``, ``ed_triage``...)."""

    @property
    def target_wait_minutes(self) -> int:
        """The wait-time target, minutes."""


class QueuePointSource(Protocol):
    """``queue_status(session, *, at, facility_id=None)``: the queue points at a moment."""

    def __call__(
        self, session: Session, *, at: dt.datetime, facility_id: str | None = None
    ) -> Sequence[QueuePointLike]:
        """Return the rows (see the class docstring)."""
        ...


class TicketLike(Protocol):
    """A queue ticket's times (the fields of ``TicketTimes`` the KPIs need)."""

    @property
    def location_id(self) -> str:
        """The queue point (Location id)."""

    @property
    def arrived_at(self) -> dt.datetime:
        """Arrival, aware UTC."""

    @property
    def service_started_at(self) -> dt.datetime | None:
        """Service start (seen), if any."""

    @property
    def service_ended_at(self) -> dt.datetime | None:
        """Service end, if any."""

    @property
    def left_without_being_seen(self) -> bool:
        """Whether the patient left before being seen."""


class TicketSource(Protocol):
    """``ticket_times(session, *, location_id=None, since, until)``: tickets arrived then."""

    def __call__(
        self,
        session: Session,
        *,
        location_id: str | None = None,
        since: dt.datetime,
        until: dt.datetime,
    ) -> Sequence[TicketLike]:
        """Return the rows (see the class docstring)."""
        ...


class QueueVisitLike(Protocol):
    """One patient's pass through a queue point, as the wait KPIs read it.

    ``service`` is the queue point's (``opd_clinic``, ``ed_triage``...);
    ``departed_at`` when the patient left the point (for the ED: left the department);
    ``admit_decision_at`` the decision to admit (ED patients admitted; else ``None``).
    """

    @property
    def facility_id(self) -> str:
        """The facility (Organization id)."""

    @property
    def service(self) -> str:
        """The kind of queue point (``opd_clinic``, ``ed_triage``...)."""

    @property
    def target_wait_minutes(self) -> int | None:
        """The wait-time target, minutes."""

    @property
    def arrived_at(self) -> dt.datetime:
        """Arrival, aware UTC."""

    @property
    def service_started_at(self) -> dt.datetime | None:
        """Service start (seen), if any."""

    @property
    def departed_at(self) -> dt.datetime | None:
        """Departure from the point (the ED: from the department), if any."""

    @property
    def admit_decision_at(self) -> dt.datetime | None:
        """Decision to admit, if any."""

    @property
    def left_without_being_seen(self) -> bool:
        """Whether the patient left before being seen."""


class QueueVisitSource(Protocol):
    """``visits(session, *, since, until)``: the visits that arrived in ``[since, until)``."""

    def __call__(
        self, session: Session, *, since: dt.datetime, until: dt.datetime
    ) -> Sequence[QueueVisitLike]:
        """Return the rows (see the class docstring)."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueVisit:
    """A plain :class:`QueueVisitLike` (used by :func:`queue_visit_source` and tests)."""

    facility_id: str
    service: str
    arrived_at: dt.datetime
    service_started_at: dt.datetime | None = None
    departed_at: dt.datetime | None = None
    admit_decision_at: dt.datetime | None = None
    left_without_being_seen: bool = False
    target_wait_minutes: int | None = None


def queue_visit_source(
    points: QueuePointSource, tickets: TicketSource, *, skip_services: frozenset[str] = frozenset()
) -> QueueVisitSource:
    """Join queue points and their tickets into a :class:`QueueVisitSource`.

    A ticket's visit takes its queue point's facility, service and wait target; it
    departs the point when its service ended. Tickets carry no admit decision, so
    ``admit_decision_at`` is ``None`` (the ED's median admit-decision-to-departure then
    reports ``null``). Tickets at a location that is not a queue point are left out.

    Parameters
    ----------
    points : QueuePointSource
        E.g. ``healthos_core.operations.queue_status``.
    tickets : TicketSource
        E.g. ``healthos_core.operations.ticket_times``.
    skip_services : frozenset of str, default empty
        Queue-point services whose tickets are left out (the default sources leave out
        ``ed_triage``: ED attendances come from the encounters, :func:`ed_visit_source`).

    Returns
    -------
    QueueVisitSource
    """

    def visits(session: Session, *, since: dt.datetime, until: dt.datetime) -> list[QueueVisit]:
        by_id = {p.id: p for p in points(session, at=until)}
        out: list[QueueVisit] = []
        for ticket in tickets(session, since=since, until=until):
            point = by_id.get(ticket.location_id)
            if point is None or point.service in skip_services:
                continue
            out.append(
                QueueVisit(
                    facility_id=point.facility_id,
                    service=point.service,
                    target_wait_minutes=point.target_wait_minutes,
                    arrived_at=ticket.arrived_at,
                    service_started_at=ticket.service_started_at,
                    departed_at=ticket.service_ended_at,
                    left_without_being_seen=ticket.left_without_being_seen,
                )
            )
        return out

    return visits


@dataclass(frozen=True, kw_only=True, slots=True)
class KpiSources:
    """The operational sources the KPIs read; ``None``: not available (KPI ``null``)."""

    bed_census: BedCensusSource | None = None
    queue_visits: QueueVisitSource | None = None


class EdAttendanceLike(Protocol):
    """An ED attendance (:class:`healthos_core.operations.emergency.EdAttendance`)."""

    @property
    def facility_id(self) -> str | None:
        """The facility (Organization id)."""

    @property
    def arrived_at(self) -> dt.datetime:
        """Arrival, aware UTC."""

    @property
    def admit_decision_at(self) -> dt.datetime | None:
        """Decision to admit, if any."""

    @property
    def departed_at(self) -> dt.datetime | None:
        """Departure from the ED, if known by the reading time."""


class EdAttendanceSource(Protocol):
    """``attendances(session, *, since, until)``: ED attendances arrived in ``[since, until)``."""

    def __call__(
        self, session: Session, *, since: dt.datetime, until: dt.datetime
    ) -> Sequence[EdAttendanceLike]:
        """Return the rows (see the class docstring)."""
        ...


#: The ED's target for the four-hour standard, minutes (NHS England).
ED_TARGET_MINUTES: Final = 240


def ed_visit_source(attendances: EdAttendanceSource, *, service: str) -> QueueVisitSource:
    """Turn ED attendances into visits of the queue point kind ``service`` (``ed_triage``).

    Parameters
    ----------
    attendances : EdAttendanceSource
        E.g. ``healthos_core.operations.emergency.ed_attendances``.
    service : str
        The service the ED wait KPI reads (``healthos_core.kpis.operations.ED_SERVICE``).

    Returns
    -------
    QueueVisitSource
        One visit per attendance with a facility: arrival, admit decision, departure.
    """

    def visits(session: Session, *, since: dt.datetime, until: dt.datetime) -> list[QueueVisit]:
        return [
            QueueVisit(
                facility_id=a.facility_id,
                service=service,
                target_wait_minutes=ED_TARGET_MINUTES,
                arrived_at=a.arrived_at,
                departed_at=a.departed_at,
                admit_decision_at=a.admit_decision_at,
            )
            for a in attendances(session, since=since, until=until)
            if a.facility_id is not None
        ]

    return visits


def combined_visits(*sources: QueueVisitSource) -> QueueVisitSource:
    """Return a source giving the visits of every source in ``sources``, in that order."""

    def visits(session: Session, *, since: dt.datetime, until: dt.datetime) -> list[QueueVisitLike]:
        out: list[QueueVisitLike] = []
        for source in sources:
            out.extend(source(session, since=since, until=until))
        return out

    return visits
