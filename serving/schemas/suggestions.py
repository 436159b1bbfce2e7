"""API shapes of advisory suggestions and the actions people take on them (SPEC §5)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_validator

from healthos_core.advisory import SuggestionRecord
from healthos_core.vocabulary import Audience, Severity, SuggestionStatus

#: The suggestion vocabulary, defined once in core (``healthos_core.vocabulary``).
AudienceName: TypeAlias = Audience
SeverityName: TypeAlias = Severity
StatusName: TypeAlias = SuggestionStatus
ActionName = Literal["acknowledge", "act", "dismiss", "note"]
#: Actions in the audit trail: a person's, or the system's ``resolve`` (rescoring).
RecordedActionName = Literal["acknowledge", "act", "dismiss", "note", "resolve"]


class FactorPublic(BaseModel):
    """One input's part in the score: its value (in ``unit``) and signed contribution."""

    name: str
    value: float | str | None = None
    contribution: float
    unit: str | None = None
    text: str | None = None


class ExplanationPublic(BaseModel):
    """Why: the method (``rule:…`` or ``model:…@version``), factors and evidence references."""

    method: str
    factors: list[FactorPublic] = []
    evidence: list[str] = Field(default=[], description='References such as "Observation/12"')


class SourcePublic(BaseModel):
    """The scorer behind a suggestion: name, version and published reference."""

    name: str
    version: str
    reference: str | None = None


class SuggestionPublic(BaseModel):
    """An advisory suggestion with its basis, for a person to review (SPEC §5).

    ``amount_at_stake`` is a decimal string in ``currency`` (never a float).
    ``status_by``/``status_at``/``status_reason`` say who last acknowledged, acted
    on or dismissed it, when and why (a note changes none of them); for ``resolved``,
    ``system:rescoring`` and the event after which the condition cleared.
    """

    id: str
    kind: str
    audience: AudienceName
    severity: SeverityName
    subject: str
    patient_id: str | None = None
    facility_id: str | None = None
    score: float | None = None
    band: str | None = None
    summary: str
    explanation: ExplanationPublic
    recommended_action: str
    source: SourcePublic
    amount_at_stake: str | None = Field(default=None, examples=["1250.00"])
    currency: str | None = None
    created_at: dt.datetime
    status: StatusName
    status_by: str | None = None
    status_at: dt.datetime | None = None
    status_reason: str | None = None

    @classmethod
    def _fields_of(cls, record: SuggestionRecord) -> dict[str, Any]:
        amount = record.amount_at_stake
        return {
            "id": record.id,
            "kind": record.kind,
            "audience": record.audience,
            "severity": record.severity,
            "subject": record.subject,
            "patient_id": record.patient_id,
            "facility_id": record.facility_id,
            "score": record.score,
            "band": record.band,
            "summary": record.summary,
            "explanation": ExplanationPublic.model_validate(record.explanation),
            "recommended_action": record.recommended_action,
            "source": SourcePublic(
                name=record.source_name,
                version=record.source_version,
                reference=record.source_reference,
            ),
            "amount_at_stake": None if amount is None else format(amount, "f"),
            "currency": record.currency,
            "created_at": record.created_at,
            "status": record.status,
            "status_by": record.status_by,
            "status_at": record.status_at,
            "status_reason": record.status_reason,
        }

    @classmethod
    def from_entity(cls, record: SuggestionRecord) -> SuggestionPublic:
        """Build from a stored :class:`~healthos_core.advisory.SuggestionRecord`."""
        return cls(**cls._fields_of(record))


class SuggestionActionCreate(BaseModel):
    """Body of acknowledge and act: why (optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)


class SuggestionReasonCreate(BaseModel):
    """Body of dismiss and note: ``reason`` is required and not blank.

    Why a suggestion does not apply (a dismissal), or the note's text.
    """

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S")

    @field_validator("reason", mode="before")
    @classmethod
    def _not_blank(cls, value: object) -> object:
        if isinstance(value, str) and value and not value.strip():
            raise ValueError("the reason is blank: say why, or write the note")
        return value


class SuggestionActionPublic(BaseModel):
    """One audited action: who (and in which role), what, when and why."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    action: RecordedActionName
    actor: str
    role: str
    reason: str | None = None
    at: dt.datetime


class SuggestionDetailPublic(SuggestionPublic):
    """A suggestion with its audit trail of actions, oldest first."""

    actions: list[SuggestionActionPublic] = []

    @classmethod
    def from_entity(cls, record: SuggestionRecord) -> SuggestionDetailPublic:
        """Build from a stored suggestion whose ``actions`` are loaded."""
        return cls(
            **cls._fields_of(record),
            actions=[SuggestionActionPublic.model_validate(a) for a in record.actions],
        )


class SuggestionsPublic(BaseModel):
    """A page of suggestions, most urgent first; ``count`` ignores the page."""

    data: list[SuggestionPublic]
    count: int
