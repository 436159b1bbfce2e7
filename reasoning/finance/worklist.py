"""The finance denial worklist: open denial-risk suggestions ranked by expected loss.

The denial-risk scorer stores one ``finance.denial_risk`` suggestion per claim (subject
``Claim/<id>``, ``score`` = calibrated p(denial), ``amount_at_stake`` = the claim total,
``band`` = the predicted denial reason, ``recommended_action`` = the fix). A biller works
the list from the top: **expected loss = p(denial) × amount** (SPEC §5), a
:class:`~decimal.Decimal` rounded half-up to cents.

What the biller did is recorded with :func:`record_worklist_action` as one of four
outcomes, through the advisory store (:func:`healthos_core.advisory.act_on_suggestion`):

============ ========================= ================================================
outcome      advisory action (status)  meaning
============ ========================= ================================================
fixed        act (acted)               the claim was corrected before submission
resubmitted  act (acted)               a corrected claim was sent again
appealed     act (acted)               the denial was appealed with the payer
accepted     dismiss (dismissed)       the risk is accepted; the claim stays as it is
============ ========================= ================================================

The outcome itself is kept verbatim in its own audited column,
:attr:`healthos_core.advisory.SuggestionAction.outcome` (migration 0004), beside who,
in which role and when; the biller's note is the action's ``reason``. A column rather
than text in ``reason`` so the outcomes can be counted (:mod:`reasoning.finance.summary`)
without parsing notes.

The suggestion lifecycle is the advisory one (``docs/suggestions.md``), with the same
rule for who may act (:mod:`healthos_core.access`: the finance role; not ``admin``). The
first ``fixed``/``resubmitted``/``appealed`` closes the item as acted; later steps of
the same work (fixed, then resubmitted, then appealed) are recorded as ``note`` actions
with their outcome, so the item stays acted by the biller who first worked it. An
``accepted`` on an acted item would dismiss a closed suggestion and is refused (409), as
is any outcome on an accepted (dismissed) item.

This module reads suggestions and claims and writes only the audited action; it never
changes a claim (the advisory principle, SPEC §1).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from sqlalchemy import ColumnElement, String, func, literal, or_, select
from sqlalchemy.orm import Session, selectinload

from healthos_core.advisory import NOTE, SuggestionActionName, SuggestionRecord, act_on_suggestion
from healthos_core.billing.entities import Claim
from healthos_core.errors import InvalidInputError, NotFoundError
from healthos_core.record.entities import Organization
from healthos_core.vocabulary import SuggestionStatus
from reasoning.features.denial import CARC_GROUPS

__all__ = [
    "DENIAL_REASONS",
    "DENIAL_RISK_KIND",
    "OUTCOMES",
    "OUTCOME_ACTION",
    "WorklistAction",
    "WorklistItem",
    "expected_loss",
    "record_worklist_action",
    "worklist",
    "worklist_item",
    "worklist_page",
]

#: Kind of the denial-risk scorer's suggestions.
DENIAL_RISK_KIND: Final = "finance.denial_risk"
#: Predicted denial reasons (the ``band`` of a denial-risk suggestion): the CARC groups the
#: denial-risk features and scorer use (:data:`reasoning.features.denial.CARC_GROUPS`).
DENIAL_REASONS: Final[tuple[str, ...]] = CARC_GROUPS
#: Worklist outcomes and the advisory action each records (see the module docstring).
OUTCOME_ACTION: Final[dict[str, SuggestionActionName]] = {
    "fixed": "act",
    "resubmitted": "act",
    "appealed": "act",
    "accepted": "dismiss",
}
OUTCOMES: Final[tuple[str, ...]] = tuple(OUTCOME_ACTION)
#: Statuses on the worklist by default: not yet worked.
OPEN_STATUSES: Final[tuple[str, ...]] = (
    SuggestionStatus.OPEN.value,
    SuggestionStatus.ACKNOWLEDGED.value,
)
#: Number of explanation factors shown per item.
TOP_FACTORS: Final = 3

_CENT: Final = Decimal("0.01")
_MAX_PAGE: Final = 1000
_CLAIM_PREFIX: Final = "Claim/"


def expected_loss(probability: float | None, amount: Decimal | None) -> Decimal | None:
    """Return p(denial) × amount, rounded half-up to cents.

    Parameters
    ----------
    probability : float or None
        Calibrated probability of denial, in [0, 1] (taken as stored).
    amount : Decimal or None
        The claim total, in its currency.

    Returns
    -------
    Decimal or None
        In the amount's currency; ``None`` when either input is missing. The float is
        converted through its shortest repr (``0.81`` → ``Decimal("0.81")``), so hand
        arithmetic on the printed probability gives the same cents.

    Examples
    --------
    >>> expected_loss(0.81, Decimal("1250.50"))
    Decimal('1012.91')
    """
    if probability is None or amount is None:
        return None
    return (Decimal(repr(float(probability))) * amount).quantize(_CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, kw_only=True)
class WorklistAction:
    """One audited worklist action: who, in which role, when, what came of it, the note.

    ``action`` is the advisory action (``acknowledge``/``act``/``dismiss``/``note``);
    ``outcome`` is ``None`` for actions taken outside the worklist (e.g. an acknowledge
    through the suggestions API).
    """

    action: str
    outcome: str | None
    actor: str
    role: str
    note: str | None
    at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``at`` as ISO 8601)."""
        return {
            "action": self.action,
            "outcome": self.outcome,
            "actor": self.actor,
            "role": self.role,
            "note": self.note,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True, kw_only=True)
class WorklistItem:
    """One claim on the denial worklist.

    Attributes
    ----------
    suggestion_id : str
        The denial-risk suggestion (the id to record an outcome against).
    claim_id : str
        From the suggestion's ``Claim/<id>`` subject.
    payer_id, payer_name : str or None
        The claim's insurer Organization and its name; ``None`` if the claim names none
        (or is not in the record).
    facility_id : str or None
        The suggestion's facility, else the claim's.
    amount : Decimal or None
        The claim total at stake, in ``currency``.
    currency : str or None
        ISO 4217 code.
    probability : float or None
        Calibrated p(denial).
    expected_loss : Decimal or None
        ``probability × amount`` rounded to cents (:func:`expected_loss`).
    reason : str or None
        Predicted denial reason (one of :data:`DENIAL_REASONS`).
    fix : str
        The recommended action.
    factors : tuple of dict
        The :data:`TOP_FACTORS` factors with the largest absolute contribution
        (``name``, ``value``, ``contribution``, ``unit``, ``text``).
    severity, summary : str
        As on the suggestion.
    status : str
        ``open``, ``acknowledged``, ``acted`` or ``dismissed``.
    outcome : str or None
        The latest recorded worklist outcome.
    created_at : datetime
        When the suggestion was first made (aware UTC).
    actions : tuple of WorklistAction
        The audit trail, oldest first.
    """

    suggestion_id: str
    claim_id: str
    payer_id: str | None
    payer_name: str | None
    facility_id: str | None
    amount: Decimal | None
    currency: str | None
    probability: float | None
    expected_loss: Decimal | None
    reason: str | None
    fix: str
    factors: tuple[dict[str, Any], ...]
    severity: str
    summary: str
    status: str
    outcome: str | None
    created_at: dt.datetime
    actions: tuple[WorklistAction, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: Decimals as strings, datetimes as ISO 8601."""
        return {
            "suggestion_id": self.suggestion_id,
            "claim_id": self.claim_id,
            "payer_id": self.payer_id,
            "payer_name": self.payer_name,
            "facility_id": self.facility_id,
            "amount": _text(self.amount),
            "currency": self.currency,
            "probability": self.probability,
            "expected_loss": _text(self.expected_loss),
            "reason": self.reason,
            "fix": self.fix,
            "factors": [dict(f) for f in self.factors],
            "severity": self.severity,
            "summary": self.summary,
            "status": self.status,
            "outcome": self.outcome,
            "created_at": self.created_at.isoformat(),
            "actions": [a.to_dict() for a in self.actions],
        }


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else format(amount, "f")


def _claim_join() -> ColumnElement[bool]:
    """``suggestion.subject = 'Claim/' || claim.id`` (portable string concatenation)."""
    return SuggestionRecord.subject == literal(_CLAIM_PREFIX, String) + Claim.id


def _statuses(status: str | Collection[str]) -> list[str]:
    items = [status] if isinstance(status, str) else list(status)
    allowed = [s.value for s in SuggestionStatus]
    unknown = sorted(set(items) - set(allowed))
    if unknown or not items:
        raise InvalidInputError(
            f"unknown worklist status {unknown or items}: use one or more of {', '.join(allowed)}"
        )
    return items


def _text_filter(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise InvalidInputError(f"the {name} filter is blank: give a {name} or leave it out")
    return value


def _top_factors(explanation: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    factors = [f for f in explanation.get("factors", ()) if isinstance(f, dict)]
    factors.sort(key=lambda f: -abs(float(f.get("contribution") or 0.0)))
    keys = ("name", "value", "contribution", "unit", "text")
    return tuple({k: f.get(k) for k in keys} for f in factors[:TOP_FACTORS])


def _item(
    record: SuggestionRecord,
    *,
    payer_id: str | None,
    payer_name: str | None,
    claim_facility: str | None,
) -> WorklistItem:
    actions = tuple(
        WorklistAction(
            action=a.action,
            outcome=a.outcome,
            actor=a.actor,
            role=a.role,
            note=a.reason,
            at=a.at,
        )
        for a in record.actions
    )
    outcome = next((a.outcome for a in reversed(actions) if a.outcome is not None), None)
    return WorklistItem(
        suggestion_id=record.id,
        claim_id=record.subject.removeprefix(_CLAIM_PREFIX),
        payer_id=payer_id,
        payer_name=payer_name,
        facility_id=record.facility_id or claim_facility,
        amount=record.amount_at_stake,
        currency=record.currency,
        probability=record.score,
        expected_loss=expected_loss(record.score, record.amount_at_stake),
        reason=record.band,
        fix=record.recommended_action,
        factors=_top_factors(record.explanation or {}),
        severity=record.severity,
        summary=record.summary,
        status=record.status,
        outcome=outcome,
        created_at=record.created_at,
        actions=actions,
    )


def _load_items(session: Session, ids: Sequence[str]) -> dict[str, WorklistItem]:
    """Load full worklist items (with payer and audit trail) for suggestion ids."""
    if not ids:
        return {}
    query = (
        select(SuggestionRecord, Claim.insurer_id, Organization.name, Claim.facility_id)
        .outerjoin(Claim, _claim_join())
        .outerjoin(Organization, Organization.id == Claim.insurer_id)
        .where(SuggestionRecord.id.in_(list(ids)))
        .options(selectinload(SuggestionRecord.actions))
    )
    return {
        record.id: _item(record, payer_id=payer_id, payer_name=name, claim_facility=facility)
        for record, payer_id, name, facility in session.execute(query)
    }


def worklist_page(
    session: Session,
    *,
    payer: str | None = None,
    facility: str | None = None,
    reason: str | None = None,
    status: str | Collection[str] = OPEN_STATUSES,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[WorklistItem], int]:
    """Return a page of the denial worklist and the number of items that match.

    Same parameters and ordering as :func:`worklist`.

    Returns
    -------
    items : list of WorklistItem
        At most ``limit`` items, largest expected loss first.
    count : int
        Number of items matching the filters, ignoring ``limit``/``offset``.

    Raises
    ------
    InvalidInputError
        As :func:`worklist`.
    """
    if not 1 <= limit <= _MAX_PAGE:
        raise InvalidInputError(f"limit must be between 1 and {_MAX_PAGE} (got {limit})")
    if offset < 0:
        raise InvalidInputError(f"offset must not be negative (got {offset})")
    statuses = _statuses(status)
    payer = _text_filter("payer", payer)
    facility = _text_filter("facility", facility)
    if reason is not None and reason not in DENIAL_REASONS:
        raise InvalidInputError(
            f"unknown denial reason {reason!r}: use one of {', '.join(DENIAL_REASONS)}"
        )
    conditions: list[ColumnElement[bool]] = [
        SuggestionRecord.kind == DENIAL_RISK_KIND,
        SuggestionRecord.status.in_(statuses),
    ]
    if reason is not None:
        conditions.append(SuggestionRecord.band == reason)
    if facility is not None:
        conditions.append(
            func.coalesce(SuggestionRecord.facility_id, Claim.facility_id) == facility
        )
    if payer is not None:
        conditions.append(
            or_(Claim.insurer_id == payer, func.lower(Organization.name) == payer.lower())
        )
    # Rank in Python on exact Decimals: only light rows are read for every match.
    ranking = list(
        session.execute(
            select(SuggestionRecord.id, SuggestionRecord.score, SuggestionRecord.amount_at_stake)
            .outerjoin(Claim, _claim_join())
            .outerjoin(Organization, Organization.id == Claim.insurer_id)
            .where(*conditions)
        )
    )

    def rank(row: Any) -> tuple[bool, Decimal, Decimal, str]:
        loss = expected_loss(row.score, row.amount_at_stake)
        amount = row.amount_at_stake if row.amount_at_stake is not None else Decimal(0)
        return (loss is None, -(loss or Decimal(0)), -amount, row.id)

    ranking.sort(key=rank)
    page = [row.id for row in ranking[offset : offset + limit]]
    items = _load_items(session, page)
    return [items[sid] for sid in page], len(ranking)


def worklist(
    session: Session,
    *,
    payer: str | None = None,
    facility: str | None = None,
    reason: str | None = None,
    status: str | Collection[str] = OPEN_STATUSES,
    limit: int = 50,
    offset: int = 0,
) -> list[WorklistItem]:
    """Return the denial worklist: denial-risk suggestions ranked by expected loss.

    Ordered by expected loss (p(denial) × amount, in cents) largest first, then by
    amount (largest first), then by suggestion id; items without a probability or an
    amount come last. Amounts in different currencies are ranked by their numbers.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session (read only).
    payer : str, optional
        Only claims to this payer: its Organization id, or its name (case-insensitive,
        exact).
    facility : str, optional
        Only this facility (the suggestion's ``facility_id``, else the claim's).
    reason : str, optional
        Only this predicted denial reason, one of :data:`DENIAL_REASONS`.
    status : str or collection of str, default=("open", "acknowledged")
        Suggestion statuses to list; ``("acted", "dismissed")`` shows worked items.
    limit : int, default=50
        Page size, 1 to 1000.
    offset : int, default=0
        Number of ranked items to skip.

    Returns
    -------
    list of WorklistItem
        At most ``limit`` items.

    Raises
    ------
    InvalidInputError
        If ``reason`` or a status is unknown, ``payer``/``facility`` is blank, ``limit``
        is outside 1–1000 or ``offset`` is negative.

    Examples
    --------
    >>> [i.claim_id for i in worklist(session, payer="Acme Health", limit=3)]  # doctest: +SKIP
    ['c-17', 'c-4', 'c-9']
    """
    items, _ = worklist_page(
        session,
        payer=payer,
        facility=facility,
        reason=reason,
        status=status,
        limit=limit,
        offset=offset,
    )
    return items


def worklist_item(session: Session, suggestion_id: str) -> WorklistItem:
    """Return one denial worklist item, whatever its status, with its audit trail.

    Raises
    ------
    NotFoundError
        If no denial-risk suggestion has this id.
    """
    _denial_record(session, suggestion_id)
    return _load_items(session, [suggestion_id])[suggestion_id]


def _denial_record(session: Session, suggestion_id: str) -> SuggestionRecord:
    record = session.get(SuggestionRecord, suggestion_id)
    if record is None or record.kind != DENIAL_RISK_KIND:
        raise NotFoundError(f"no denial worklist item with suggestion id {suggestion_id!r}")
    return record


def record_worklist_action(
    session: Session,
    suggestion_id: str,
    *,
    outcome: str,
    actor: str,
    role: str,
    note: str | None = None,
    at: dt.datetime | None = None,
) -> WorklistItem:
    """Record what a biller did about a worklist item; audited with who, role and when.

    Appends a :class:`~healthos_core.advisory.SuggestionAction` with the advisory action
    of the outcome (:data:`OUTCOME_ACTION`), the outcome verbatim, the actor, role, time
    and note, and sets the suggestion's status. On an item already acted on, a further
    fixed/resubmitted/appealed is a follow-up: recorded as a ``note`` action with its
    outcome, the status untouched. The claim itself is not changed.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session; flushed, not committed.
    suggestion_id : str
        The denial-risk suggestion's id (``WorklistItem.suggestion_id``).
    outcome : {"fixed", "resubmitted", "appealed", "accepted"}
        What was done.
    actor : str
        Who did it (a user or token subject; not a secret).
    role : str
        The role they acted in: one that may act on finance suggestions
        (:func:`healthos_core.access.roles_acting_for`).
    note : str, optional
        Free-text note, kept as the action's reason (at most as long as the API allows).
    at : datetime, optional
        Aware time of the action; default now (UTC).

    Returns
    -------
    WorklistItem
        The item after the action, with its audit trail.

    Raises
    ------
    InvalidInputError
        If ``outcome`` is not one of :data:`OUTCOMES`, ``actor``/``role`` is blank or
        ``at`` is naive. Nothing is written.
    PermissionDeniedError
        If the role may not act on finance suggestions (``admin``, ``leadership`` …).
    NotFoundError
        If no denial-risk suggestion has this id.
    ConflictError
        If the item was closed as ``accepted`` (or dismissed otherwise), or is
        ``accepted`` after being acted on.
    """
    if outcome not in OUTCOME_ACTION:
        raise InvalidInputError(
            f"unknown worklist outcome {outcome!r}: use one of {', '.join(OUTCOMES)}"
        )
    record = _denial_record(session, suggestion_id)
    action: SuggestionActionName = OUTCOME_ACTION[outcome]
    if action == "act" and record.status == SuggestionStatus.ACTED:
        action = NOTE  # a further step of work already done: the item stays as it is
    act_on_suggestion(
        session,
        suggestion_id,
        action=action,
        actor=actor,
        role=role,
        reason=note,
        at=at,
        outcome=outcome,
    )
    return worklist_item(session, suggestion_id)
