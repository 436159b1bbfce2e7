"""Stored suggestions and the audited actions people take on them.

``reasoning`` produces suggestions; this module persists them so a clinician or
biller can acknowledge, act on or dismiss each one, or add a note. Suggestions never
change the record; the actions on them are appended, never edited. The lifecycle
(:data:`TRANSITIONS`) is drawn in ``docs/suggestions.md``; who may act is
:mod:`healthos_core.access`.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal, Protocol

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    bindparam,
    case,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship, selectinload

from healthos_core.access import AUDIENCES, actionable_audiences, readable_audiences
from healthos_core.db import Base, utcnow
from healthos_core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from healthos_core.suggestion_revision import bump_suggestion_revision
from healthos_core.vocabulary import SEVERITIES, SuggestionStatus


class SuggestionRecord(Base):
    """A stored advisory suggestion (see ``reasoning.Suggestion`` for the fields)."""

    __tablename__ = "suggestion"
    __table_args__ = (
        Index("ix_suggestion_audience_status", "audience", "status"),
        Index("ix_suggestion_subject", "subject"),
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    audience: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(128))
    patient_id: Mapped[str | None] = mapped_column(String(64), index=True)
    facility_id: Mapped[str | None] = mapped_column(String(64), index=True)
    score: Mapped[float | None] = mapped_column(Float)
    band: Mapped[str | None] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(String(140))
    explanation: Mapped[dict[str, Any]]
    recommended_action: Mapped[str] = mapped_column(Text)
    source_name: Mapped[str] = mapped_column(String(64))
    source_version: Mapped[str] = mapped_column(String(32))
    source_reference: Mapped[str | None] = mapped_column(String(255))
    amount_at_stake: Mapped[Decimal | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=SuggestionStatus.OPEN)
    status_by: Mapped[str | None] = mapped_column(String(128))
    status_at: Mapped[dt.datetime | None]
    status_reason: Mapped[str | None] = mapped_column(Text)
    actions: Mapped[list[SuggestionAction]] = relationship(
        back_populates="suggestion", order_by="SuggestionAction.id", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"SuggestionRecord(id={self.id!r}, kind={self.kind!r}, subject={self.subject!r})"


class SuggestionAction(Base):
    """One audited action on a suggestion: who (and their role), what, when and why.

    ``outcome`` is what came of the action where a workflow records one, kept as its own
    column so it can be counted (the finance denial worklist records ``fixed``,
    ``resubmitted``, ``appealed`` or ``accepted``); ``None`` for plain acknowledge / act /
    dismiss. ``reason`` is the person's note.
    """

    __tablename__ = "suggestion_action"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    suggestion_id: Mapped[str] = mapped_column(ForeignKey("suggestion.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    suggestion: Mapped[SuggestionRecord] = relationship(back_populates="actions")

    def __repr__(self) -> str:
        return f"SuggestionAction(suggestion_id={self.suggestion_id!r}, action={self.action!r})"


# --------------------------------------------------------------------------------------
# Services: store suggestions, list them as worklists, record what people do with them.
# ``reasoning`` is not imported here (imports point one way); any object with the fields
# of ``reasoning.Suggestion`` is accepted, as :class:`SuggestionLike` describes.
# --------------------------------------------------------------------------------------

#: The actions that change a suggestion's status, and the status each sets.
ACTION_STATUS: dict[str, SuggestionStatus] = {
    "acknowledge": SuggestionStatus.ACKNOWLEDGED,
    "act": SuggestionStatus.ACTED,
    "dismiss": SuggestionStatus.DISMISSED,
}
#: An action that records a note and never changes the status (allowed in every status).
NOTE: Literal["note"] = "note"
SuggestionActionName = Literal["acknowledge", "act", "dismiss", "note"]
#: Every action a person can take on a suggestion.
ACTIONS: tuple[str, ...] = (*ACTION_STATUS, NOTE)
#: The lifecycle: for each status, the status-changing actions allowed from it. Acted,
#: dismissed and resolved suggestions are closed: only a note can follow
#: (docs/suggestions.md).
TRANSITIONS: dict[SuggestionStatus, frozenset[str]] = {
    SuggestionStatus.OPEN: frozenset({"acknowledge", "act", "dismiss"}),
    SuggestionStatus.ACKNOWLEDGED: frozenset({"act", "dismiss"}),
    SuggestionStatus.ACTED: frozenset(),
    SuggestionStatus.DISMISSED: frozenset(),
    SuggestionStatus.RESOLVED: frozenset(),
}
#: Statuses of a suggestion still waiting for a person: rescoring refreshes or resolves them.
ACTIVE_STATUSES: tuple[str, ...] = (
    SuggestionStatus.OPEN.value,
    SuggestionStatus.ACKNOWLEDGED.value,
)
#: The actor of a resolution (a system, not a person), its role and its action name.
RESOLVER: Final = "system:rescoring"
RESOLVER_ROLE: Final = "system"
RESOLVE: Final = "resolve"

_MAX_PAGE = 1000
#: The worklist order (built once): severity (critical first), then score (highest first,
#: none last), then newest, then id.
_WORKLIST_ORDER = (
    case(
        {name: rank for rank, name in enumerate(SEVERITIES)},
        value=SuggestionRecord.severity,
        else_=len(SEVERITIES),
    ),
    SuggestionRecord.score.desc().nulls_last(),
    SuggestionRecord.created_at.desc(),
    SuggestionRecord.id,
)
_IN_CHUNK = 500
_CONTENT_FIELDS = (
    "kind",
    "audience",
    "severity",
    "subject",
    "patient_id",
    "facility_id",
    "score",
    "band",
    "summary",
    "explanation",
    "recommended_action",
    "source_name",
    "source_version",
    "source_reference",
    "amount_at_stake",
    "currency",
)


class FactorLike(Protocol):
    """One input's part in a score (the fields of ``reasoning.Factor``)."""

    @property
    def name(self) -> str:
        """Parameter, feature or rule id."""

    @property
    def value(self) -> float | str | None:
        """The input value, in ``unit``."""

    @property
    def contribution(self) -> float:
        """Signed contribution to the score."""

    @property
    def unit(self) -> str | None:
        """Unit of ``value``."""

    @property
    def text(self) -> str | None:
        """The factor in words."""


class ExplanationLike(Protocol):
    """Why a suggestion was made (the fields of ``reasoning.Explanation``)."""

    @property
    def method(self) -> str:
        """``"rule:<name>"`` or ``"model:<name>@<version>"``."""

    @property
    def factors(self) -> Sequence[FactorLike]:
        """Factors, largest absolute contribution first."""

    @property
    def evidence(self) -> Sequence[str]:
        """References ``"Type/id"`` the score rests on."""


class SourceLike(Protocol):
    """The scorer behind a suggestion (the fields of ``reasoning.Source``)."""

    @property
    def name(self) -> str:
        """Scorer name."""

    @property
    def version(self) -> str:
        """Scorer version."""

    @property
    def reference(self) -> str | None:
        """Published reference, e.g. ``"RCP NEWS2 2017"``."""


class SuggestionLike(Protocol):
    """Anything with the fields of ``reasoning.Suggestion`` (SPEC §5).

    ``audience`` and ``severity`` may be plain strings or string enums.
    """

    @property
    def id(self) -> str:
        """Deterministic id (same record state and scorer version → same id)."""

    @property
    def kind(self) -> str:
        """Kind, e.g. ``clinical.news2`` or ``finance.denial_risk``."""

    @property
    def audience(self) -> str:
        """One of :data:`AUDIENCES`."""

    @property
    def severity(self) -> str:
        """One of :data:`SEVERITIES`."""

    @property
    def subject(self) -> str:
        """``"Type/id"`` reference."""

    @property
    def summary(self) -> str:
        """At most 140 characters."""

    @property
    def explanation(self) -> ExplanationLike:
        """Method, factors and evidence."""

    @property
    def recommended_action(self) -> str:
        """What to do about it."""

    @property
    def source(self) -> SourceLike:
        """Scorer name, version and reference."""

    @property
    def score(self) -> float | None:
        """Points or calibrated probability."""

    @property
    def band(self) -> str | None:
        """The score's band."""

    @property
    def patient_id(self) -> str | None:
        """The patient the subject belongs to."""

    @property
    def facility_id(self) -> str | None:
        """The facility of the subject."""

    @property
    def amount_at_stake(self) -> Decimal | None:
        """Money involved, in ``currency``."""

    @property
    def currency(self) -> str | None:
        """ISO 4217 code of ``amount_at_stake``."""

    @property
    def created_at(self) -> dt.datetime:
        """Aware UTC time the suggestion was made."""


def _plain(value: object) -> str:
    """Return an enum's value, or ``str(value)``."""
    return str(value.value) if isinstance(value, enum.Enum) else str(value)


def _check_length(field: str, value: str | None) -> None:
    """Refuse a value longer than its column (PostgreSQL would refuse it at flush)."""
    column_type = SuggestionRecord.__table__.c[field].type
    length = getattr(column_type, "length", None)
    if value is not None and length is not None and len(value) > length:
        raise InvalidInputError(
            f"suggestion {field} is {len(value)} characters; the limit is {length}"
        )


def _json_scalar(value: object) -> float | int | str | None:
    """Return a factor value as JSON: non-finite floats become ``None``, others text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def _suggestion_values(suggestion: SuggestionLike) -> dict[str, Any]:
    """Validate one suggestion and return its column values (content fields only)."""
    sid = suggestion.id
    if not sid:
        raise InvalidInputError("a suggestion has no id: build it with reasoning.Suggestion")
    audience = _plain(suggestion.audience)
    severity = _plain(suggestion.severity)
    if audience not in AUDIENCES:
        raise InvalidInputError(f"suggestion {sid}: audience {audience!r} not in {AUDIENCES}")
    if severity not in SEVERITIES:
        raise InvalidInputError(f"suggestion {sid}: severity {severity!r} not in {SEVERITIES}")
    if "/" not in suggestion.subject:
        raise InvalidInputError(f"suggestion {sid}: subject must be a 'Type/id' reference")
    score = suggestion.score
    if score is not None and not math.isfinite(score):
        raise InvalidInputError(f"suggestion {sid}: score must be finite (got {score})")
    amount = suggestion.amount_at_stake
    if amount is not None:
        if not amount.is_finite():
            raise InvalidInputError(f"suggestion {sid}: amount_at_stake must be finite")
        amount = amount.quantize(Decimal("0.01"))
    created = suggestion.created_at
    if created.tzinfo is None or created.utcoffset() is None:
        raise InvalidInputError(f"suggestion {sid}: created_at must be timezone-aware")
    explanation = suggestion.explanation
    factors = []
    for factor in explanation.factors:
        if not math.isfinite(factor.contribution):
            raise InvalidInputError(
                f"suggestion {sid}: factor {factor.name!r} has a non-finite contribution"
            )
        factors.append(
            {
                "name": factor.name,
                "value": _json_scalar(factor.value),
                "contribution": float(factor.contribution),
                "unit": factor.unit,
                "text": factor.text,
            }
        )
    values: dict[str, Any] = {
        "kind": suggestion.kind,
        "audience": audience,
        "severity": severity,
        "subject": suggestion.subject,
        "patient_id": suggestion.patient_id,
        "facility_id": suggestion.facility_id,
        "score": None if score is None else float(score),
        "band": suggestion.band,
        "summary": suggestion.summary,
        "explanation": {
            "method": explanation.method,
            "factors": factors,
            "evidence": list(explanation.evidence),
        },
        "recommended_action": suggestion.recommended_action,
        "source_name": suggestion.source.name,
        "source_version": suggestion.source.version,
        "source_reference": suggestion.source.reference,
        "amount_at_stake": amount,
        "currency": suggestion.currency,
    }
    _check_length("id", sid)
    for field in ("kind", "subject", "patient_id", "facility_id", "band", "summary"):
        _check_length(field, values[field])
    for field in ("source_name", "source_version", "source_reference", "currency"):
        _check_length(field, values[field])
    return values


def save_suggestions(session: Session, suggestions: Iterable[SuggestionLike]) -> int:
    """Store suggestions, inserting new ones and refreshing the content of known ones.

    Suggestion ids are deterministic, so re-scoring the same record state updates the
    stored suggestion instead of duplicating it. A stored suggestion keeps its
    ``created_at`` (when it was first made), its status (who acknowledged, acted on or
    dismissed it, when and why) and its audit actions; everything else is replaced by
    the new content. All suggestions are validated before anything is written. If any
    suggestion was added or its content changed, the suggestions get a new revision
    (:mod:`healthos_core.suggestion_revision`), last, in the same transaction.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session; flushed, not committed.
    suggestions : iterable of SuggestionLike
        ``reasoning.Suggestion`` objects (or anything with the same fields). When an id
        occurs more than once, the last occurrence wins.

    Returns
    -------
    int
        Number of distinct suggestions stored (inserted plus refreshed).

    Raises
    ------
    InvalidInputError
        If a suggestion has an unknown audience or severity, a summary over 140
        characters, a field longer than its column, a non-finite score, or a naive
        ``created_at``. Nothing is written.

    Examples
    --------
    >>> save_suggestions(session, NEWS2Scorer().score(session, "Encounter/1"))  # doctest: +SKIP
    1
    """
    pending: dict[str, tuple[dict[str, Any], dt.datetime]] = {}
    for suggestion in suggestions:
        pending[suggestion.id] = (_suggestion_values(suggestion), suggestion.created_at)
    changed = _store(session, pending)
    session.flush()
    if changed:  # re-scoring an unchanged record keeps the revision (and kept pages)
        bump_suggestion_revision(session)
    return len(pending)


def _store(session: Session, pending: dict[str, tuple[dict[str, Any], dt.datetime]]) -> bool:
    """Insert or refresh validated suggestions by id; return whether anything changed."""
    ids = list(pending)
    existing: dict[str, SuggestionRecord] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        rows = session.scalars(select(SuggestionRecord).where(SuggestionRecord.id.in_(chunk)))
        existing.update((row.id, row) for row in rows)
    changed = False
    for sid, (values, created_at) in pending.items():
        record = existing.get(sid)
        if record is None:
            session.add(
                SuggestionRecord(
                    id=sid, created_at=created_at, status=SuggestionStatus.OPEN.value, **values
                )
            )
            changed = True
        else:
            for field in _CONTENT_FIELDS:
                setattr(record, field, values[field])
            changed = changed or session.is_modified(record)
    return changed


@dataclass(frozen=True, kw_only=True)
class RescoreResult:
    """What :func:`apply_rescore` did for one subject and kind.

    Attributes
    ----------
    stored : tuple of str
        Ids of the suggestions inserted or refreshed.
    resolved : tuple of str
        Ids of the suggestions it set to ``resolved``.
    changed : bool
        Whether the call added or changed any stored suggestion (for
        :func:`apply_rescores`: any of its items).
    """

    stored: tuple[str, ...] = ()
    resolved: tuple[str, ...] = ()
    changed: bool = False


def apply_rescore(
    session: Session,
    *,
    subject: str,
    kind: str,
    suggestions: Sequence[SuggestionLike],
    cause: str,
    at: dt.datetime | None = None,
    bump_revision: bool = True,
) -> RescoreResult:
    """Store the result of re-scoring one subject for one kind, as the live path does.

    Unlike :func:`save_suggestions` (whose ids follow the evidence, so a new record state
    is a new suggestion), rescoring keeps **one active suggestion per subject and kind**:

    * the scorer found something and an open or acknowledged suggestion for
      ``(subject, kind)`` exists: that suggestion's content is refreshed in place (same
      id, its status and audit trail kept); any older active duplicate is resolved;
    * the scorer found something and none is active: the suggestion is inserted (or, if
      its id is stored already, refreshed, keeping its status, as
      :func:`save_suggestions` does);
    * the scorer found nothing (the condition cleared): every active suggestion for
      ``(subject, kind)`` is set to ``resolved`` by :data:`RESOLVER`, with a
      :class:`SuggestionAction` (action ``resolve``) whose reason names ``cause``.

    Doing it twice for the same record state changes nothing the second time
    (idempotent). If anything changed, the suggestions get a new revision, last.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The consumer's transaction (flushed, not committed).
    subject : str
        ``"Type/id"`` that was scored.
    kind : str
        The kind that was scored (``"clinical.news2"``).
    suggestions : sequence of SuggestionLike
        What the scorer returned for ``subject`` (usually zero or one); each must have
        this subject and kind.
    cause : str
        What triggered the rescore, ids only (no PHI), e.g.
        ``"ObservationRecorded Observation/42 (outbox event 7)"``.
    at : datetime, optional
        Aware time of a resolution (default now, UTC).
    bump_revision : bool, default=True
        Give the suggestions a new revision if anything changed. A caller that rescores
        many subjects in one transaction passes ``False`` and calls
        :func:`~healthos_core.suggestion_revision.bump_suggestion_revision` once, last,
        when any result says ``changed``.

    Returns
    -------
    RescoreResult

    Raises
    ------
    InvalidInputError
        If a suggestion is about another subject or kind, or is invalid (as for
        :func:`save_suggestions`). Nothing is written.
    """
    return apply_rescores(
        session,
        [RescoreInput(subject=subject, kind=kind, suggestions=suggestions, cause=cause)],
        at=at,
        bump_revision=bump_revision,
    )[0]


@dataclass(frozen=True, kw_only=True)
class RescoreInput:
    """One subject and kind rescored: what the scorer found and why it ran (see below)."""

    subject: str
    kind: str
    suggestions: Sequence[SuggestionLike]
    cause: str


def apply_rescores(
    session: Session,
    items: Sequence[RescoreInput],
    *,
    at: dt.datetime | None = None,
    bump_revision: bool = True,
) -> list[RescoreResult]:
    """:func:`apply_rescore` for many subjects and kinds at once, in a few statements.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The consumer's transaction (flushed, not committed).
    items : sequence of RescoreInput
        One per (subject, kind) rescored; each pair at most once.
    at : datetime, optional
        Aware time of resolutions (default now, UTC).
    bump_revision : bool, default=True
        As for :func:`apply_rescore` (once, last, if anything changed).

    Returns
    -------
    list of RescoreResult
        One per item, in order.

    Raises
    ------
    InvalidInputError
        As :func:`apply_rescore`, or if a (subject, kind) pair occurs twice. Nothing is
        written.
    """
    checked: list[list[tuple[str, dict[str, Any], dt.datetime]]] = []
    pairs: set[tuple[str, str]] = set()
    for item in items:
        if (item.subject, item.kind) in pairs:
            raise InvalidInputError(f"{item.subject} ({item.kind}) is rescored twice")
        pairs.add((item.subject, item.kind))
        validated = []
        for suggestion in item.suggestions:
            if suggestion.subject != item.subject or suggestion.kind != item.kind:
                raise InvalidInputError(
                    f"suggestion {suggestion.id} is about {suggestion.subject} "
                    f"({suggestion.kind}), not {item.subject} ({item.kind})"
                )
            values = _suggestion_values(suggestion)
            validated.append((suggestion.id, values, suggestion.created_at))
        checked.append(validated)
    active: dict[tuple[str, str], list[SuggestionRecord]] = {}
    subjects = sorted({item.subject for item in items})
    for begin in range(0, len(subjects), _IN_CHUNK):
        rows = session.scalars(
            select(SuggestionRecord)
            .where(
                SuggestionRecord.subject.in_(subjects[begin : begin + _IN_CHUNK]),
                SuggestionRecord.status.in_(ACTIVE_STATUSES),
            )
            .order_by(SuggestionRecord.created_at.desc(), SuggestionRecord.id)
        )
        for row in rows:
            active.setdefault((row.subject, row.kind), []).append(row)
    pending: dict[str, tuple[dict[str, Any], dt.datetime]] = {}
    plans: list[tuple[list[str], list[tuple[SuggestionRecord, str]]]] = []
    for item, validated in zip(items, checked, strict=True):
        now_active = active.get((item.subject, item.kind), [])
        stored: list[str] = []
        to_resolve: list[tuple[SuggestionRecord, str]]
        if validated:
            first_id, first_values, first_created = validated[0]
            ids_now = {sid for sid, _, _ in validated}
            keep = next(
                (r for r in now_active if r.id in ids_now), now_active[0] if now_active else None
            )
            target = keep.id if keep is not None else first_id
            pending[target] = (first_values, first_created)
            stored.append(target)
            for sid, values, created in validated[1:]:
                if sid != target:
                    pending[sid] = (values, created)
                    stored.append(sid)
            to_resolve = [
                (r, f"superseded by suggestion {target} on rescoring after {item.cause}")
                for r in now_active
                if r.id not in stored
            ]
        else:
            to_resolve = [
                (r, f"the condition cleared on rescoring after {item.cause}") for r in now_active
            ]
        plans.append((stored, to_resolve))
    changed = _store(session, pending) if pending else False
    when = at or utcnow()
    for _, to_resolve in plans:
        for record, reason in to_resolve:
            record.status = SuggestionStatus.RESOLVED.value
            record.status_by = RESOLVER
            record.status_at = when
            record.status_reason = reason
            session.add(
                SuggestionAction(
                    suggestion_id=record.id,
                    action=RESOLVE,
                    actor=RESOLVER,
                    role=RESOLVER_ROLE,
                    reason=reason,
                    at=when,
                )
            )
            changed = True
    results = [
        RescoreResult(
            stored=tuple(stored),
            resolved=tuple(record.id for record, _ in to_resolve),
            changed=changed,
        )
        for stored, to_resolve in plans
    ]
    session.flush()
    if changed and bump_revision:
        bump_suggestion_revision(session)
    return results


def _as_list(name: str, value: str | Collection[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    if name == "status":
        allowed = {s.value for s in SuggestionStatus}
        unknown = sorted(set(items) - allowed)
        if unknown:
            raise InvalidInputError(
                f"unknown suggestion status {unknown}: use one of {sorted(allowed)}"
            )
    return items


def list_suggestions(
    session: Session,
    *,
    audience: str | Collection[str] | None = None,
    subject: str | None = None,
    patient_id: str | None = None,
    kind: str | None = None,
    status: str | Collection[str] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[SuggestionRecord], int]:
    """Return a worklist page of stored suggestions and the total number that match.

    Ordered most urgent first: severity (critical, warning, info), then score
    (highest first, suggestions without a score last), then newest first, then id.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session.
    audience : str or collection of str, optional
        Only suggestions for this audience (or any of these; an empty collection
        matches nothing).
    subject : str, optional
        Only suggestions about this ``"Type/id"`` subject.
    patient_id : str, optional
        Only suggestions about this patient (its id, without ``"Patient/"``).
    kind : str, optional
        Only this kind, e.g. ``"clinical.news2"``.
    status : str or collection of str, optional
        Only these statuses (``open``, ``acknowledged``, ``acted``, ``dismissed``).
    limit : int, default=100
        Page size, 1 to 1000.
    offset : int, default=0
        Number of matching suggestions to skip.

    Returns
    -------
    suggestions : list of SuggestionRecord
        At most ``limit`` suggestions (without their actions loaded).
    count : int
        Number of suggestions matching the filters, ignoring ``limit``/``offset``.

    Raises
    ------
    InvalidInputError
        If ``status`` is unknown, ``limit`` is outside 1–1000 or ``offset`` negative.
    """
    if not 1 <= limit <= _MAX_PAGE:
        raise InvalidInputError(f"limit must be between 1 and {_MAX_PAGE} (got {limit})")
    if offset < 0:
        raise InvalidInputError(f"offset must not be negative (got {offset})")
    values: dict[str, Any] = {
        "audiences": _as_list("audience", audience),
        "statuses": _as_list("status", status),
        "subject": subject,
        "patient_id": patient_id,
        "kind": kind,
    }
    filters = tuple(name for name, value in values.items() if value is not None)
    page, count_query = _worklist_statements(filters)
    params = {name: values[name] for name in filters}
    records = list(session.scalars(page, {**params, "limit": limit, "offset": offset}))
    if len(records) < limit and (records or offset == 0):
        # A short page is the last one, so the total is known without a count query
        # (one query, not two, for a ward's worklist: issue 9 item 10).
        return records, offset + len(records)
    count = session.scalar(count_query, params)
    return records, int(count or 0)


@functools.cache
def _worklist_statements(filters: tuple[str, ...]) -> tuple[Select[Any], Select[Any]]:
    """Return the page and count statements of :func:`list_suggestions` for ``filters``.

    Built once per combination of filters, with the values as bound parameters:
    building a statement cost more than running it on the worklist (the profile in
    ``bench/bench_api.py``).
    """
    columns = {
        "audiences": SuggestionRecord.audience,
        "statuses": SuggestionRecord.status,
        "subject": SuggestionRecord.subject,
        "patient_id": SuggestionRecord.patient_id,
        "kind": SuggestionRecord.kind,
    }
    conditions = [
        columns[name].in_(bindparam(name, expanding=True))
        if name in ("audiences", "statuses")
        else columns[name] == bindparam(name)
        for name in filters
    ]
    page = (
        select(SuggestionRecord)
        .where(*conditions)
        .order_by(*_WORKLIST_ORDER)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    count = select(func.count()).select_from(SuggestionRecord).where(*conditions)
    return page, count


def get_suggestion(
    session: Session, suggestion_id: str, *, audiences: Collection[str] | None = None
) -> SuggestionRecord:
    """Return one stored suggestion with its actions (oldest first).

    A suggestion outside ``audiences`` is reported exactly like a missing one, so the
    answer does not reveal that it exists (or whom it is for).

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session.
    suggestion_id : str
        The suggestion's id.
    audiences : collection of str, optional
        The audiences the caller may see
        (:func:`healthos_core.access.readable_audiences`); ``None`` means all.

    Returns
    -------
    SuggestionRecord
        With ``actions`` loaded.

    Raises
    ------
    NotFoundError
        If no suggestion has this id, or its audience is not in ``audiences``.
    """
    record = session.scalar(
        select(SuggestionRecord)
        .where(SuggestionRecord.id == suggestion_id)
        .options(selectinload(SuggestionRecord.actions))
    )
    if record is None or (audiences is not None and record.audience not in audiences):
        raise NotFoundError(f"no suggestion with id {suggestion_id!r}")
    return record


def act_on_suggestion(
    session: Session,
    suggestion_id: str,
    *,
    action: SuggestionActionName,
    actor: str,
    role: str,
    reason: str | None = None,
    at: dt.datetime | None = None,
    outcome: str | None = None,
) -> SuggestionRecord:
    """Record that a person acknowledged, acted on, dismissed or annotated a suggestion.

    A status-changing action (:data:`ACTION_STATUS`) sets the suggestion's status,
    ``status_by``, ``status_at`` and ``status_reason``; a ``note`` changes none of them.
    Either way a :class:`SuggestionAction` is appended (the audit trail, never edited),
    and the suggestions get a new revision (:mod:`healthos_core.suggestion_revision`).
    The record itself is never changed: acting on a suggestion is the person's decision.

    The lifecycle (:data:`TRANSITIONS`, ``docs/suggestions.md``): an open suggestion can
    be acknowledged, acted on or dismissed; an acknowledged one acted on or dismissed.
    Acted and dismissed suggestions are closed: nobody can move them again, so one
    person's decision is never overwritten by another's; a ``note`` is allowed in every
    status.

    Who may act is :data:`healthos_core.access.ROLE_ACT_AUDIENCES`, the same rule for
    every caller (the API, the finance worklist): ``admin`` may act on nothing.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session; flushed, not committed.
    suggestion_id : str
        The suggestion's id.
    action : {"acknowledge", "act", "dismiss", "note"}
        What the person did.
    actor : str
        Who did it (a user or token subject; not a secret).
    role : str
        The role they acted in (``clinician``, ``finance`` …); it decides which
        audiences they may act for.
    reason : str, optional
        Why (for a note: the note). Required to dismiss or to note unless an
        ``outcome`` says it; blank text counts as none.
    at : datetime, optional
        Aware time of the action; default now (UTC).
    outcome : str, optional
        What came of it, stored verbatim on the :class:`SuggestionAction` (at most 16
        characters; the caller's workflow defines the values, e.g. the finance
        worklist's ``resubmitted``). Blank text counts as none.

    Returns
    -------
    SuggestionRecord
        The updated suggestion, with its actions loaded.

    Raises
    ------
    InvalidInputError
        If the action is unknown, ``actor`` or ``role`` is blank, ``outcome`` is too
        long, or a dismissal or note has neither a reason nor an outcome.
    PermissionDeniedError
        If the role may act on no suggestion (``admin``), or may read this one but not
        act on it (``leadership`` on a finance suggestion).
    NotFoundError
        If no suggestion has this id, or the role may not read it (the same answer).
    ConflictError
        If the suggestion's status does not allow the action (a closed suggestion, or
        acknowledging twice); the message names the status, who set it and when.
    """
    if action not in ACTIONS:
        raise InvalidInputError(f"unknown action {action!r}: use one of {sorted(ACTIONS)}")
    actor = actor.strip()
    role = role.strip()
    if not actor or not role:
        raise InvalidInputError("an action on a suggestion needs the actor and their role")
    _check_action_length("actor", actor)
    _check_action_length("role", role)
    reason = reason.strip() if reason else None
    reason = reason or None
    outcome = (outcome.strip() or None) if outcome else None
    if outcome is not None:
        _check_action_length("outcome", outcome)
    if action == "dismiss" and reason is None and outcome is None:
        raise InvalidInputError("dismissing a suggestion needs a reason: say why it does not apply")
    if action == NOTE and reason is None and outcome is None:
        raise InvalidInputError("a note on a suggestion needs its text in 'reason'")
    if at is None:
        at = utcnow()
    elif at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInputError("the time of an action must be timezone-aware")
    may_act = actionable_audiences(role)
    if not may_act:
        raise PermissionDeniedError(
            f"the {role} role may not acknowledge, act on, dismiss or annotate suggestions: "
            "a professional of the suggestion's audience decides"
        )
    record = get_suggestion(session, suggestion_id, audiences=readable_audiences(role))
    if record.audience not in may_act:
        raise PermissionDeniedError(
            f"the {role} role may read but not act on {record.audience} suggestions"
        )
    status = SuggestionStatus(record.status)
    if action != NOTE and action not in TRANSITIONS[status]:
        raise ConflictError(_refusal(record, action))
    if action != NOTE:
        record.status = ACTION_STATUS[action].value
        record.status_by = actor
        record.status_at = at
        record.status_reason = reason
    record.actions.append(
        SuggestionAction(
            action=action, actor=actor, role=role, reason=reason, outcome=outcome, at=at
        )
    )
    session.flush()
    bump_suggestion_revision(session)
    return record


def _refusal(record: SuggestionRecord, action: str) -> str:
    """Say why ``action`` is refused: the status, who set it, when, and what is allowed."""
    when = record.status_at.isoformat() if record.status_at else "an unknown time"
    moves = TRANSITIONS[SuggestionStatus(record.status)]
    allowed = [*sorted(moves), NOTE]
    closed = "" if moves else "; it is closed"
    return (
        f"cannot {action} suggestion {record.id!r}: it is {record.status} "
        f"(by {record.status_by or 'unknown'} at {when}){closed}; "
        f"allowed now: {', '.join(allowed)}"
    )


def _check_action_length(field: str, value: str) -> None:
    length = getattr(SuggestionAction.__table__.c[field].type, "length", None)
    if length is not None and len(value) > length:
        raise InvalidInputError(f"action {field} is {len(value)} characters; the limit is {length}")
