"""The registry of scorers and the one function that runs them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from healthos_core.advisory import save_suggestions
from healthos_core.errors import InvalidInputError
from healthos_core.settings import get_settings
from reasoning.base import Scorer
from reasoning.clinical.kdigo_scorer import KdigoScorer
from reasoning.clinical.lace_scorer import LaceScorer
from reasoning.clinical.model_scorers import DeteriorationScorer, ReadmissionScorer
from reasoning.clinical.news2_scorer import News2Scorer
from reasoning.clinical.sirs_scorer import SirsScorer
from reasoning.finance.denial_scorer import DenialRiskScorer
from reasoning.finance.leakage import LeakageScorer, LeakageThresholds
from reasoning.operations.kpi_off_target import KpiOffTargetScorer
from reasoning.operations.queue_bottleneck import QueueBottleneckScorer
from reasoning.suggestion import Suggestion


def default_scorers() -> list[Scorer]:
    """Return a fresh instance of every scorer HealthOS ships, with default settings.

    The model scorers load the shipped (or configured) ONNX champions once per process;
    the revenue-leakage thresholds come from the ``leakage_*`` settings.
    """
    settings = get_settings()
    leakage = LeakageThresholds(
        billing_start=settings.leakage_billing_start,
        unbilled_days=settings.leakage_unbilled_days,
        late_charge_days=settings.leakage_late_charge_days,
        denial_followup_days=settings.leakage_denial_followup_days,
        underpayment_tolerance=settings.leakage_underpayment_tolerance,
    )
    return [
        News2Scorer(),
        SirsScorer(),
        KdigoScorer(),
        LaceScorer(),
        DeteriorationScorer(),
        ReadmissionScorer(),
        DenialRiskScorer(),
        LeakageScorer(thresholds=leakage),
        QueueBottleneckScorer(),
        KpiOffTargetScorer(),
    ]


def available_kinds() -> list[str]:
    """Return the suggestion kinds the shipped scorers produce."""
    return sorted({s.kind for s in default_scorers()})


def run_scorers(
    session: Session,
    *,
    kind: str | None = None,
    as_of: dt.datetime | None = None,
    scorers: list[Scorer] | None = None,
    store: bool = True,
) -> list[Suggestion]:
    """Run the scorers over the record and (by default) store their suggestions.

    Parameters
    ----------
    session : Session
        The caller's session; suggestions are added and flushed, never committed here.
    kind : str, optional
        Only scorers producing this kind (e.g. ``"clinical.news2"``).
    as_of : datetime, optional
        Aware UTC moment to score at (default: now).
    scorers : list of Scorer, optional
        Defaults to :func:`default_scorers`.
    store : bool, default=True
        Upsert the suggestions into the suggestion store (people's actions on existing
        suggestions are kept).

    Returns
    -------
    list of Suggestion
        Highest severity and score first.

    Raises
    ------
    InvalidInputError
        If ``kind`` names no scorer.
    """
    chosen = scorers if scorers is not None else default_scorers()
    if kind is not None:
        chosen = [s for s in chosen if s.kind == kind]
        if not chosen:
            raise InvalidInputError(
                f"no scorer produces kind {kind!r}: available: {', '.join(available_kinds())}"
            )
    suggestions: list[Suggestion] = []
    for scorer in chosen:
        suggestions.extend(scorer.score(session, as_of=as_of))
    order = {"critical": 0, "warning": 1, "info": 2}
    suggestions.sort(key=lambda s: (order[str(s.severity)], -(s.score or 0), s.subject))
    if store:
        save_suggestions(session, suggestions)
    return suggestions
