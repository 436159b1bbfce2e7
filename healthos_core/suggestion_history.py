"""Suggestions as they stood at a moment, from their append-only audit trail.

A suggestion's status at a moment is the one set by its last status-changing
:class:`~healthos_core.advisory.SuggestionAction` up to then (``open`` if none): the
people's acknowledge / act / dismiss, or rescoring's ``resolve``. A note leaves the
status as it was. Used by the finance summary (``reasoning.finance.summary``) and the
KPIs (:mod:`healthos_core.kpis`), so "open at a moment" means the same everywhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.advisory import ACTION_STATUS, RESOLVE, SuggestionAction
from healthos_core.vocabulary import SuggestionStatus

__all__ = ["statuses_at"]

_CHUNK: Final = 500
_STATUS_OF_ACTION: Final = {
    **{action: status.value for action, status in ACTION_STATUS.items()},
    RESOLVE: SuggestionStatus.RESOLVED.value,
}


def statuses_at(session: Session, ids: Sequence[str], as_of: dt.datetime) -> dict[str, str]:
    """Return each suggestion's status at ``as_of`` from its last action by then.

    Parameters
    ----------
    session : Session
        The caller's session (read only).
    ids : sequence of str
        Suggestion ids.
    as_of : datetime
        Aware moment.

    Returns
    -------
    dict
        Suggestion id → status, for the suggestions with a status-changing action up to
        ``as_of``; the others were ``open`` then.
    """
    status: dict[str, str] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for sid, action in session.execute(
            select(SuggestionAction.suggestion_id, SuggestionAction.action)
            .where(SuggestionAction.suggestion_id.in_(chunk), SuggestionAction.at <= as_of)
            .order_by(SuggestionAction.at, SuggestionAction.id)
        ):
            if action in _STATUS_OF_ACTION:  # a note leaves the status as it was
                status[sid] = _STATUS_OF_ACTION[action]
    return status
