"""Leadership suggestions: a facility's KPIs off target (reasoning.operations.kpi_off_target)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy.orm import Session

from healthos_core.kpis import Kpi
from reasoning.operations.kpi_off_target import KpiOffTargetScorer, gap
from reasoning.suggestion import Audience, Severity
from tests.factories import make_bed, make_encounter, make_organization, make_ward

AT = dt.datetime(2024, 3, 31, 18, 0, tzinfo=dt.UTC)

OCCUPANCY = Kpi(
    key="bed_occupancy",
    label="Bed occupancy",
    value=1.0,
    unit="ratio",
    currency=None,
    target=0.85,
    better="lower",
    previous_day=None,
    previous_week=None,
    formula="",
    source="",
    period="",
    breakdown=(),
)


def test_gap_is_signed_so_that_worse_is_positive() -> None:
    assert round(gap(OCCUPANCY) or 0, 4) == round(0.15 / 0.85, 4)  # 17.6 % over
    assert gap(dataclasses.replace(OCCUPANCY, value=0.5)) == -(0.35 / 0.85)
    ed = dataclasses.replace(OCCUPANCY, key="ed_wait", value=0.76, target=0.95, better="higher")
    assert round(gap(ed) or 0, 4) == 0.2  # 20 % short of the four-hour standard
    assert gap(dataclasses.replace(OCCUPANCY, value=None)) is None
    assert gap(dataclasses.replace(OCCUPANCY, target=None)) is None


def _facility(session: Session, name: str, occupied: int) -> str:
    facility = make_organization(session, id=f"fac-{name}", name=name)
    ward = make_ward(session, id=f"ward-{name}", facility_id=facility.id)
    for n in range(4):
        make_bed(session, ward, id=f"bed-{name}-{n}")
    for n in range(occupied):
        make_encounter(
            session,
            class_code="IMP",
            location_id=f"bed-{name}-{n}",
            period_start=AT - dt.timedelta(days=1),
            facility_id=facility.id,
        )
    return facility.id


def test_a_full_facility_gets_a_leadership_suggestion_and_a_calm_one_none(
    session: Session,
) -> None:
    full = _facility(session, "Full", occupied=4)
    _facility(session, "Calm", occupied=2)
    found = KpiOffTargetScorer().score(session, as_of=AT)
    assert [s.subject for s in found] == [f"Organization/{full}"]
    (suggestion,) = found
    assert suggestion.audience is Audience.LEADERSHIP
    assert suggestion.kind == "leadership.kpi_off_target"
    assert suggestion.severity is Severity.WARNING  # 17.6 % over: not beyond 20 %
    assert suggestion.summary == "Full: Bed occupancy 100% vs target 85%"
    (factor,) = suggestion.explanation.factors
    assert (factor.name, factor.value, factor.contribution) == ("bed_occupancy", 1.0, 0.1765)
    assert "bed board" in suggestion.recommended_action
