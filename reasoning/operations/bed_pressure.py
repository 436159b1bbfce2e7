"""Bed pools above their occupancy threshold: one suggestion per facility and pool.

Reads :func:`healthos_core.operations.bed_census` (KH03 occupancy = occupied ÷ available;
thresholds 0.85, ICU 0.80: Bagust, Place & Posnett, BMJ 1999;319:155–8; de Bruin et al.,
Ann Oper Res 2010) and names what frees beds soonest: the expected discharges in the
next 24 hours, the beds waiting for housekeeping, and the ED patients boarding (an admit
decision and no bed).

The subject is the pool's ward: ``Location/<ward id>``, the first by id of the facility's
wards of that ward type (a pool of several wards names its first; the others are in the
evidence). Severity: critical when ED patients are boarding for the pool or occupancy is
at least 0.95 (practically no bed to admit into), otherwise warning.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.operations.beds import BedPool, bed_census
from healthos_core.record.entities import Location
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion

__all__ = ["CRITICAL_OCCUPANCY", "bed_suggestions"]

#: Occupancy at or above which a full pool is critical even with nobody boarding.
CRITICAL_OCCUPANCY: Final = 0.95


def _wards(session: Session) -> dict[tuple[str | None, str], list[str]]:
    """Ward ids by (facility, ward type), sorted."""
    found: dict[tuple[str | None, str], list[str]] = defaultdict(list)
    rows = session.execute(
        select(Location.id, Location.facility_id, Location.service_type)
        .where(Location.kind == "ward", Location.status != "inactive")
        .order_by(Location.id)
    )
    for ward_id, facility_id, pool in rows:
        found[(facility_id, pool or "other")].append(ward_id)
    return found


def bed_suggestions(
    session: Session, *, at: dt.datetime, kind: str, source: Source
) -> list[Suggestion]:
    """Return one operations suggestion per bed pool above its threshold at ``at``.

    Parameters
    ----------
    session : Session
        Read only.
    at : datetime
        Aware moment of the census.
    kind, source
        The suggestion kind and source of the calling scorer.

    Returns
    -------
    list of Suggestion
        Subject the pool's first ward (module docstring); pools with no ward are skipped.
    """
    wards = _wards(session)
    suggestions = []
    for pool in bed_census(session, at=at):
        if not pool.over_threshold or pool.occupancy is None:
            continue
        mine = wards.get((pool.facility_id, pool.pool), [])
        if not mine:
            continue
        suggestions.append(_suggest(pool, mine, at, kind, source))
    return suggestions


def _suggest(
    pool: BedPool, wards: list[str], at: dt.datetime, kind: str, source: Source
) -> Suggestion:
    occupancy = pool.occupancy or 0.0
    label = pool.pool.replace("_", " ")
    free = pool.available - pool.occupied
    housekeeping = pool.by_status.get("housekeeping", 0)
    summary = (
        f"{label.capitalize()} beds {occupancy:.0%} occupied (threshold {pool.threshold:.0%}): "
        f"{free} free, {pool.expected_discharges_24h} discharges due in 24 h, "
        f"{pool.ed_boarding} ED boarding"
    )
    steps = []
    if pool.expected_discharges_24h:
        steps.append(
            f"expedite the {pool.expected_discharges_24h} expected discharge(s) of the next "
            "24 h (discharge before noon, discharge lounge, pharmacy to-take-out first)"
        )
    if housekeeping:
        steps.append(f"clean the {housekeeping} bed(s) waiting for housekeeping")
    if pool.ed_boarding:
        steps.append(f"place the {pool.ed_boarding} ED patient(s) boarding for {label}")
    steps.append("open surge beds or divert elective admissions if occupancy stays above")
    action = "; ".join(steps)
    action = action[0].upper() + action[1:] + "."
    factors = (
        Factor(
            name="occupancy",
            value=occupancy,
            contribution=round(occupancy - pool.threshold, 4),
            unit="1",
            text=f"{pool.occupied} of {pool.available} available beds occupied "
            f"({occupancy:.0%}; threshold {pool.threshold:.0%}, KH03)",
        ),
        Factor(
            name="ed_boarding",
            value=float(pool.ed_boarding),
            contribution=float(pool.ed_boarding),
            unit="patients",
            text=f"{pool.ed_boarding} ED patient(s) with an admit decision and no bed",
        ),
        Factor(
            name="expected_discharges_24h",
            value=float(pool.expected_discharges_24h),
            contribution=-float(pool.expected_discharges_24h),
            unit="patients",
            text=f"{pool.expected_discharges_24h} expected discharge(s) in the next 24 h",
        ),
        Factor(
            name="housekeeping_beds",
            value=float(housekeeping),
            contribution=-float(housekeeping),
            unit="beds",
            text=f"{housekeeping} bed(s) waiting for housekeeping",
        ),
    )
    critical = pool.ed_boarding > 0 or occupancy >= CRITICAL_OCCUPANCY
    return Suggestion(
        kind=kind,
        audience=Audience.OPERATIONS,
        severity=Severity.CRITICAL if critical else Severity.WARNING,
        subject=f"Location/{wards[0]}",
        facility_id=pool.facility_id,
        score=round(occupancy / pool.threshold, 4),
        band="over_threshold",
        summary=summary if len(summary) <= 140 else summary[:139] + "…",
        explanation=Explanation(
            method="rule:bed_pool_threshold",
            factors=tuple(sorted(factors, key=lambda f: -abs(f.contribution))),
            evidence=tuple(f"Location/{w}" for w in wards),
        ),
        recommended_action=action,
        source=source,
        created_at=at,
    )
