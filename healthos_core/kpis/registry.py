"""The KPI registry and its computation per facility, rolled up to network and region.

:data:`KPIS` lists every KPI (issue 11 item 4) in display order; :func:`compute_kpis`
computes them for a date, with the previous day and the previous week, for every
facility and for each network and region as the sum of its facilities.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core import operations
from healthos_core.billing.money import ledger_currency
from healthos_core.errors import InvalidInputError, NotFoundError
from healthos_core.fhir.refs import parse_as_of
from healthos_core.kpis.base import (
    BreakdownItem,
    Computation,
    KpiContext,
    KpiDefinition,
    Level,
    Tally,
    Unavailable,
)
from healthos_core.kpis.claims import CLEAN_CLAIM_RATE, INITIAL_DENIAL_RATE
from healthos_core.kpis.flags import OPEN_CLINICAL_FLAGS, UNBILLED_AMOUNT
from healthos_core.kpis.operations import BED_OCCUPANCY, ED_SERVICE, ED_WAIT, OPD_WAIT
from healthos_core.kpis.revenue import COLLECTIONS, NET_DAYS_IN_AR
from healthos_core.kpis.sources import (
    KpiSources,
    combined_visits,
    ed_visit_source,
    queue_visit_source,
)
from healthos_core.kpis.stays import ALOS
from healthos_core.operations.emergency import ed_attendances
from healthos_core.record.entities import Organization
from healthos_core.settings import get_settings

__all__ = [
    "KPIS",
    "LEVELS",
    "Kpi",
    "KpiReport",
    "KpiScope",
    "compute_kpis",
    "default_sources",
    "kpi_targets",
    "parse_kpi_date",
]

#: Every KPI, in display order.
KPIS: Final[tuple[KpiDefinition, ...]] = (
    BED_OCCUPANCY,
    ALOS,
    OPD_WAIT,
    ED_WAIT,
    COLLECTIONS,
    INITIAL_DENIAL_RATE,
    CLEAN_CLAIM_RATE,
    NET_DAYS_IN_AR,
    UNBILLED_AMOUNT,
    OPEN_CLINICAL_FLAGS,
)
LEVELS: Final[tuple[Level, ...]] = ("facility", "network", "region")
#: Organization types of the hierarchy above a facility (``Organization.type_code``).
NETWORK_TYPE: Final = "network"
REGION_TYPE: Final = "region"
#: Organization types that are never facilities (payers, the hierarchy above).
_NOT_FACILITY: Final = frozenset({NETWORK_TYPE, REGION_TYPE, "pay", "ins"})
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Kpi:
    """One KPI's value for a scope and date (the API's ``Kpi``)."""

    key: str
    label: str
    value: float | None
    unit: str
    currency: str | None
    target: float | None
    better: str
    previous_day: float | None
    previous_week: float | None
    formula: str
    source: str
    period: str
    breakdown: tuple[BreakdownItem, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON-ready dict (the contract's field names)."""
        return {
            "key": self.key,
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "currency": self.currency,
            "target": self.target,
            "better": self.better,
            "previous_day": self.previous_day,
            "previous_week": self.previous_week,
            "formula": self.formula,
            "source": self.source,
            "period": self.period,
            "breakdown": [{"label": b.label, "value": b.value} for b in self.breakdown],
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class KpiScope:
    """The KPIs of one facility, network or region."""

    level: Level
    id: str
    name: str
    kpis: tuple[Kpi, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON-ready dict."""
        return {
            "level": self.level,
            "id": self.id,
            "name": self.name,
            "kpis": [k.as_dict() for k in self.kpis],
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class KpiReport:
    """The KPIs of a date for the scopes asked (``GET /api/v1/kpis``, ``healthos kpis``)."""

    date: dt.date
    scopes: tuple[KpiScope, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON-ready dict."""
        return {"date": self.date.isoformat(), "scopes": [s.as_dict() for s in self.scopes]}


def parse_kpi_date(value: str, *, name: str = "date") -> dt.date:
    """Parse the KPI date: an ISO 8601 calendar date ``YYYY-MM-DD`` (a UTC day).

    Validated by the one ``as_of`` rule (:func:`healthos_core.fhir.refs.parse_as_of`: a
    real calendar day, not before 1900) and, beyond it, a date only (no time).

    Raises
    ------
    InvalidInputError
        Naming ``name`` when ``value`` is not such a date.

    Examples
    --------
    >>> parse_kpi_date("2021-07-31")
    datetime.date(2021, 7, 31)
    """
    text = value.strip()
    if _DATE.fullmatch(text) is None:
        raise InvalidInputError(f"{name} {value!r} is not an ISO 8601 date (2021-07-31)")
    return parse_as_of(text, name=name).date()


def kpi_targets() -> dict[str, float | None]:
    """Return each KPI's target: its default, or ``HEALTHOS_KPI_TARGETS`` where set.

    Raises
    ------
    InvalidInputError
        If the setting names a KPI that does not exist.
    """
    overrides = get_settings().kpi_targets
    unknown = sorted(set(overrides) - {d.key for d in KPIS})
    if unknown:
        raise InvalidInputError(
            f"HEALTHOS_KPI_TARGETS names unknown KPIs {unknown}; known: "
            f"{', '.join(d.key for d in KPIS)}"
        )
    return {d.key: overrides.get(d.key, d.default_target) for d in KPIS}


def default_sources() -> KpiSources:
    """Return the operational sources the KPIs read by default: the record's own.

    Bed occupancy reads :func:`healthos_core.operations.bed_census`; OPD waits read the
    queue points (:func:`~healthos_core.operations.queue_status`) and their tickets
    (:func:`~healthos_core.operations.ticket_times`); the ED's four hours and its admit
    decision to departure read the ED encounters
    (:func:`~healthos_core.operations.emergency.ed_attendances`), not the triage tickets.
    """
    tickets = queue_visit_source(
        operations.queue_status, operations.ticket_times, skip_services=frozenset({ED_SERVICE})
    )
    ed = ed_visit_source(ed_attendances, service=ED_SERVICE)
    return KpiSources(bed_census=operations.bed_census, queue_visits=combined_visits(tickets, ed))


@dataclass(slots=True)
class _Node:
    level: Level
    id: str
    name: str
    facilities: list[str] = field(default_factory=list)


def _hierarchy(session: Session, with_data: set[str]) -> dict[Level, dict[str, _Node]]:
    """Facilities, networks and regions, each with the facilities under it.

    A facility is an Organization that is not a payer, network or region and either has
    data in a KPI or sits in a network or region (``part_of``). A network or region is an
    Organization of that type; a facility belongs to the first network and the first
    region among its ``part_of`` ancestors.
    """
    orgs = {
        row.id: row
        for row in session.execute(
            select(
                Organization.id, Organization.name, Organization.type_code, Organization.part_of_id
            )
        )
    }
    nodes: dict[Level, dict[str, _Node]] = {level: {} for level in LEVELS}
    for org in orgs.values():
        if org.type_code in (NETWORK_TYPE, REGION_TYPE):
            level: Level = "network" if org.type_code == NETWORK_TYPE else "region"
            nodes[level][org.id] = _Node(level, org.id, org.name or org.id)
    for org in sorted(orgs.values(), key=lambda o: o.id):
        if org.type_code in _NOT_FACILITY:
            continue
        ancestors: list[str] = []
        parent, seen = org.part_of_id, {org.id}
        while parent is not None and parent in orgs and parent not in seen:
            ancestors.append(parent)
            seen.add(parent)
            parent = orgs[parent].part_of_id
        if org.id not in with_data and not any(
            a in nodes["network"] or a in nodes["region"] for a in ancestors
        ):
            continue
        nodes["facility"][org.id] = _Node("facility", org.id, org.name or org.id, [org.id])
        for level in ("network", "region"):
            owner = next((a for a in ancestors if a in nodes[level]), None)
            if owner is not None:
                nodes[level][owner].facilities.append(org.id)
    return nodes


def compute_kpis(
    session: Session,
    *,
    date: dt.date,
    level: Level | None = None,
    org_id: str | None = None,
    sources: KpiSources | None = None,
) -> KpiReport:
    """Compute every KPI for ``date``, the day before and a week before, per scope.

    Parameters
    ----------
    session : Session
        The caller's session (read only).
    date : date
        The UTC day D. Each KPI states its period for D (``Kpi.period``): a census at
        the end of D, or the 30 / 90 days ending on D.
    level : {"facility", "network", "region"}, optional
        Only scopes of this level; without it every facility, then every network and
        region.
    org_id : str, optional
        Only this Organization (``level`` required).
    sources : KpiSources, optional
        Census and queue sources (default :func:`default_sources`).

    Returns
    -------
    KpiReport
        A facility's value comes from its own tallies; a network's or region's from the
        sum of its facilities' tallies (ratios of sums, never means of ratios).

    Raises
    ------
    InvalidInputError
        If ``org_id`` is given without ``level``, or ``level`` is unknown.
    NotFoundError
        If ``org_id`` is not an Organization of that level.
    """
    if level is not None and level not in LEVELS:
        raise InvalidInputError(f"level {level!r} is not one of {', '.join(LEVELS)}")
    if org_id is not None and level is None:
        raise InvalidInputError("id needs level (facility, network or region)")
    session.flush()
    targets = kpi_targets()
    days = (date, date - dt.timedelta(days=1), date - dt.timedelta(days=7))
    ctx = KpiContext(session=session, days=days, sources=sources or default_sources())
    computed: dict[str, Computation] = {d.key: d.compute(ctx) for d in KPIS}
    with_data = {
        facility
        for result in computed.values()
        if not isinstance(result, Unavailable)
        for tallies in result.values()
        for facility in tallies
    }
    nodes = _hierarchy(session, with_data)
    levels = LEVELS if level is None else (level,)
    chosen = [node for lv in levels for _, node in sorted(nodes[lv].items())]
    if org_id is not None:
        chosen = [node for node in chosen if node.id == org_id]
        if not chosen:
            raise NotFoundError(f"no {level} Organization/{org_id}")
    currency = ledger_currency()
    scopes = tuple(
        KpiScope(
            level=node.level,
            id=node.id,
            name=node.name,
            kpis=tuple(
                _kpi(d, computed[d.key], node.facilities, days, targets[d.key], currency)
                for d in KPIS
            ),
        )
        for node in chosen
    )
    return KpiReport(date=date, scopes=scopes)


def _kpi(
    definition: KpiDefinition,
    computation: Computation,
    facilities: Sequence[str],
    days: Sequence[dt.date],
    target: float | None,
    currency: str,
) -> Kpi:
    if isinstance(computation, Unavailable):
        values: list[float | None] = [None, None, None]
        breakdown = [BreakdownItem(computation.reason, None)]
    else:
        values, breakdown = [], []
        for n, day in enumerate(days):
            tally = Tally.total(computation[day][f] for f in facilities if f in computation[day])
            value, items = definition.evaluate(tally)
            values.append(value)
            if n == 0:
                breakdown = items
    return Kpi(
        key=definition.key,
        label=definition.label,
        value=values[0],
        unit=definition.unit,
        currency=currency if definition.money else None,
        target=target,
        better=definition.better,
        previous_day=values[1],
        previous_week=values[2],
        formula=definition.formula,
        source=definition.source,
        period=definition.period,
        breakdown=tuple(breakdown),
    )
