"""CDS Hooks feedback into the suggestion lifecycle (CDS Hooks 2.0.1 §Feedback).

The EHR reports what the clinician did with each card. A card names its suggestion
(:func:`reasoning.cds.cards.suggestion_id_of`), and the outcome becomes an audited action
(:func:`healthos_core.advisory.act_on_suggestion`) by the caller, in the caller's role:

=========================== ===================================== ===========================
outcome                     open or acknowledged suggestion       acted or dismissed (closed)
=========================== ===================================== ===========================
``accepted``                act → acted                           note (status unchanged)
``overridden``              dismiss → dismissed, with the reason  note (status unchanged)
=========================== ===================================== ===========================

A closed suggestion is one person's decision and is never overwritten
(``docs/suggestions.md``); feedback that comes after it (the EHR sending the same
feedback again, or a second clinician's outcome) is recorded as a note carrying the
outcome, so the EHR gets 200 and nothing it reported is lost. The action's ``outcome``
column holds ``accepted`` or ``overridden``; the reason holds the override reason
(its display, else code, and system), the clinician's comment, the accepted
suggestions' ids and the EHR's ``outcomeTimestamp``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from sqlalchemy.orm import Session

from healthos_core.access import readable_audiences
from healthos_core.advisory import (
    TRANSITIONS,
    SuggestionActionName,
    act_on_suggestion,
    get_suggestion,
)
from healthos_core.errors import NotFoundError
from healthos_core.vocabulary import SuggestionStatus
from reasoning.cds.cards import suggestion_id_of

__all__ = ["FeedbackItem", "FeedbackResult", "record_feedback", "service_shows"]

_ORDER_KINDS: Final = frozenset(
    {"cds.prior_authorization", "cds.claim_denial_risk", "cds.duplicate_order"}
)
_DISCHARGE_KINDS: Final = frozenset(
    {
        "cds.unbilled_charges",
        "cds.discharge_documentation",
        "clinical.readmission",
        "clinical.lace",
        "finance.revenue_leakage",
        "finance.denial_risk",
    }
)


def service_shows(service_id: str, kind: str) -> bool:
    """Whether the service's cards can carry suggestions of ``kind``."""
    if service_id == "healthos-patient-view":
        return kind.startswith("clinical.")
    if service_id == "healthos-order-sign":
        return kind in _ORDER_KINDS
    if service_id == "healthos-encounter-discharge":
        return kind in _DISCHARGE_KINDS
    return False


@dataclass(frozen=True, kw_only=True)
class FeedbackItem:
    """One feedback entry (CDS Hooks 2.0.1 §Feedback).

    Parameters
    ----------
    card : str
        The card's ``uuid``.
    outcome : {"accepted", "overridden"}
    accepted_suggestions : tuple of str
        Ids of the card's suggestions the clinician accepted.
    override_code, override_system, override_display : str, optional
        The chosen override reason (a Coding).
    user_comment : str, optional
        The clinician's comment on the override.
    outcome_timestamp : datetime
        When the clinician acted, as the EHR reports it (aware).
    """

    card: str
    outcome: Literal["accepted", "overridden"]
    accepted_suggestions: tuple[str, ...] = ()
    override_code: str | None = None
    override_system: str | None = None
    override_display: str | None = None
    user_comment: str | None = None
    outcome_timestamp: dt.datetime


@dataclass(frozen=True, kw_only=True)
class FeedbackResult:
    """What one feedback entry did: the suggestion, the action and the status after it."""

    card: str
    suggestion_id: str
    action: SuggestionActionName
    status: str


def _reason(service_id: str, item: FeedbackItem) -> str:
    at = item.outcome_timestamp.astimezone(dt.UTC).isoformat()
    if item.outcome == "accepted":
        accepted = ", ".join(item.accepted_suggestions) or "none named"
        return f"accepted in the EHR at {at} (CDS service {service_id}); suggestions: {accepted}"
    reason = item.override_display or item.override_code
    if reason and item.override_system:
        reason = f"{reason} [{item.override_system}#{item.override_code or ''}]"
    text = (
        f"overridden in the EHR at {at} (CDS service {service_id}): {reason or 'no reason given'}"
    )
    if item.user_comment:
        text += f"; comment: {item.user_comment}"
    return text


def record_feedback(
    session: Session,
    service_id: str,
    items: Sequence[FeedbackItem],
    *,
    actor: str,
    role: str,
) -> list[FeedbackResult]:
    """Record an EHR's feedback on cards as audited actions on their suggestions.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        Flushed, not committed: all entries are recorded or none (the caller's transaction).
    service_id : str
        The service whose cards these are.
    items : sequence of FeedbackItem
    actor : str
        The caller (a token subject).
    role : str
        The caller's role; it decides which suggestions they may act on.

    Returns
    -------
    list of FeedbackResult
        One per entry, in order.

    Raises
    ------
    NotFoundError
        A card is not a HealthOS card of this service (or its suggestion is one the role
        may not read): nothing is recorded.
    PermissionDeniedError
        The role may read the suggestion but not act on it (or acts on nothing: ``admin``).
    """
    results: list[FeedbackResult] = []
    audiences = readable_audiences(role)
    for item in items:
        sid = suggestion_id_of(item.card)
        missing = NotFoundError(
            f"no card {item.card!r} from CDS service {service_id!r}: feedback names the "
            "uuid of a card this service returned"
        )
        if sid is None:
            raise missing
        try:
            record = get_suggestion(session, sid, audiences=audiences)
        except NotFoundError:
            raise missing from None
        if not service_shows(service_id, record.kind):
            raise missing
        wanted: SuggestionActionName = "act" if item.outcome == "accepted" else "dismiss"
        closed = not TRANSITIONS[SuggestionStatus(record.status)]
        action: SuggestionActionName = "note" if closed else wanted
        updated = act_on_suggestion(
            session,
            sid,
            action=action,
            actor=actor,
            role=role,
            reason=_reason(service_id, item),
            outcome=item.outcome,
        )
        results.append(
            FeedbackResult(card=item.card, suggestion_id=sid, action=action, status=updated.status)
        )
    return results
