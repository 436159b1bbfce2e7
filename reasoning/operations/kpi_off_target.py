"""Leadership: a facility's KPIs off their target, with where to look first.

Reads the eight KPIs of :mod:`healthos_core.kpis` (``docs/kpis.md``: each KPI's formula,
period, source and default target) for the day of ``as_of``, per facility, and makes one
``leadership.kpi_off_target`` suggestion per facility whose KPIs miss a target: each KPI
off target is a factor (its value, and as contribution its gap to the target relative to
the target, signed so that worse is positive), the summary names the worst, and the
recommended action names the worklist or board that owns each KPI. KPIs without a value
or without a target (the unbilled amount, the open clinical flags) are not judged.

Severity is critical when a KPI misses its target by more than :data:`CRITICAL_GAP`
(20 % of the target), otherwise warning. The subject is ``Organization/<facility id>``.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Final

from sqlalchemy.orm import Session

from healthos_core.kpis import Kpi, compute_kpis
from reasoning.base import Scorer, resolve_as_of
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion

__all__ = ["CRITICAL_GAP", "KpiOffTargetScorer", "gap"]

#: Relative gap to the target beyond which a miss is critical (e.g. occupancy 1.02 for a
#: 0.85 target is 20 % over).
CRITICAL_GAP: Final = 0.20

#: Where to act on each KPI: the owning worklist or board of the command center.
ACTIONS: Final = {
    "bed_occupancy": "bed board: expedite the expected discharges, place ED boarders",
    "alos": "review the longest current stays for discharge barriers",
    "opd_wait": "queue board: the bottleneck suggestions give the roster change",
    "ed_wait": "queue and bed boards: ED boarders waiting for a bed",
    "collections": "finance: post the remittances and work the underpayments",
    "initial_denial_rate": "finance: the denial worklist by expected loss, fix before submit",
    "clean_claim_rate": "finance: the scrubber's edits on claims waiting to be submitted",
    "net_days_in_ar": "finance: the oldest A/R buckets and the unworked denials",
}


def gap(kpi: Kpi) -> float | None:
    """Return how far ``kpi`` misses its target, relative to it (> 0: worse), or ``None``.

    ``None`` when the KPI has no value or no target (nothing to judge) or the target is 0.
    """
    if kpi.value is None or kpi.target is None or kpi.target == 0:
        return None
    relative = (kpi.value - kpi.target) / abs(kpi.target)
    return relative if kpi.better == "lower" else -relative


def _shown(kpi: Kpi, value: float | None) -> str:
    if value is None:
        return "—"
    if kpi.unit == "ratio":
        return f"{value:.0%}"
    if kpi.unit == "currency":
        return f"{kpi.currency or ''} {value:,.0f}".strip()
    return f"{value:,.1f}" + {"days": " d", "minutes": " min"}.get(kpi.unit, "")


class KpiOffTargetScorer(Scorer):
    """One leadership suggestion per facility whose KPIs miss their targets (see module)."""

    name: ClassVar[str] = "kpi_off_target"
    kind: ClassVar[str] = "leadership.kpi_off_target"
    version: ClassVar[str] = "1.0.0"
    reference: ClassVar[str | None] = (
        "HealthOS KPIs (docs/kpis.md): NHS England KH03, OECD ALOS, NHS A&E four-hour "
        "standard and CMS OP-18, HFMA MAP Keys"
    )

    def score(self, session: Session, *, as_of: dt.datetime | None = None) -> list[Suggestion]:
        """Return a suggestion per facility with at least one KPI off target on that day."""
        now = resolve_as_of(as_of)
        report = compute_kpis(session, date=now.date(), level="facility")
        source = Source(name=self.name, version=self.version, reference=self.reference)
        out: list[Suggestion] = []
        for scope in report.scopes:
            missed = [(k, g) for k in scope.kpis if (g := gap(k)) is not None and g > 0]
            if not missed:
                continue
            missed.sort(key=lambda pair: pair[1], reverse=True)
            worst, worst_gap = missed[0]
            factors = tuple(
                Factor(
                    name=kpi.key,
                    value=kpi.value,
                    contribution=round(g, 4),
                    unit=kpi.unit,
                    text=f"{kpi.label} {_shown(kpi, kpi.value)} vs target "
                    f"{_shown(kpi, kpi.target)} (previous day {_shown(kpi, kpi.previous_day)})",
                )
                for kpi, g in missed
            )
            others = f" and {len(missed) - 1} more" if len(missed) > 1 else ""
            summary = (
                f"{scope.name}: {worst.label} {_shown(worst, worst.value)} vs target "
                f"{_shown(worst, worst.target)}{others}"
            )
            actions = "; ".join(
                f"{kpi.label}: {ACTIONS[kpi.key]}" for kpi, _ in missed if kpi.key in ACTIONS
            )
            out.append(
                Suggestion(
                    kind=self.kind,
                    audience=Audience.LEADERSHIP,
                    severity=Severity.CRITICAL if worst_gap > CRITICAL_GAP else Severity.WARNING,
                    subject=f"Organization/{scope.id}",
                    summary=summary[:140],
                    explanation=Explanation(
                        method=f"rule:{self.name}",
                        factors=factors,
                        evidence=(f"Organization/{scope.id}",),
                    ),
                    recommended_action=actions or "Review the KPI breakdowns in the briefing",
                    source=source,
                    score=float(len(missed)),
                    band=worst.key,
                    facility_id=scope.id,
                    created_at=now,
                )
            )
        return out
