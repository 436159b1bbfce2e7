"""API shapes of CDS Hooks 2.0.1: discovery, the service request and response, feedback.

Field names are the specification's own (camelCase, CDS Hooks 2.0.1 §Discovery,
§HTTP Request, §CDS Service Response, §Feedback). Requests ignore members they do not
know (the specification adds members over time; ``extension`` carries the rest).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field

from healthos_core.vocabulary import Severity
from serving.schemas.common import IsoDateTime

_NO_NUL = r"^[^\x00]*$"


def _storable(value: object) -> object:
    """Refuse text no database column can store (an unpaired UTF-16 surrogate)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("holds an unpaired UTF-16 surrogate") from None
    return value


#: Text from the EHR that may be stored: valid UTF-8 (NUL is refused by each field's pattern).
StoredText = Annotated[str, BeforeValidator(_storable)]


class CdsServicePublic(BaseModel):
    """One service in discovery: its hook, id, title, description and prefetch templates."""

    hook: str
    title: str
    description: str
    id: str
    prefetch: dict[str, str] = Field(
        default_factory=dict,
        description='Prefetch templates, e.g. {"patient": "Patient/{{context.patientId}}"}',
    )


class CdsServicesPublic(BaseModel):
    """The discovery response: ``GET /cds-services``."""

    services: list[CdsServicePublic]


class FhirAuthorizationCreate(BaseModel):
    """``fhirAuthorization`` of a request (accepted; HealthOS does not call the EHR FHIR server)."""

    access_token: str = Field(max_length=4096)
    token_type: str = Field(max_length=32)
    expires_in: int
    scope: str = Field(max_length=4096)
    subject: str = Field(max_length=256)
    patient: str | None = Field(default=None, max_length=256)


class CdsRequestCreate(BaseModel):
    """A call of a CDS service (CDS Hooks 2.0.1 §HTTP Request).

    ``context`` holds the hook's context (``userId``, ``patientId``, ``encounterId``,
    ``draftOrders`` …); ``prefetch`` the prefetched resources by the keys discovery
    lists (a key may be ``null``: the EHR could not get it).
    """

    hook: str = Field(min_length=1, max_length=64, pattern=_NO_NUL)
    hookInstance: str = Field(min_length=1, max_length=128, pattern=_NO_NUL)
    fhirServer: str | None = Field(default=None, max_length=2048)
    fhirAuthorization: FhirAuthorizationCreate | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = None


class CodingPublic(BaseModel):
    """A FHIR Coding: ``system``, ``code``, ``display``."""

    system: str | None = None
    code: str
    display: str | None = None


class CardSourcePublic(BaseModel):
    """Where a card comes from: the scorer and the URL of its rule or model card."""

    label: str
    url: str | None = None
    icon: str | None = None
    topic: CodingPublic | None = None


class ActionPublic(BaseModel):
    """A FHIR change a card proposes: ``create``/``update`` a resource or ``delete`` one."""

    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None
    resourceId: str | None = None


class CardSuggestionPublic(BaseModel):
    """A concrete next step on a card, with its actions."""

    label: str
    uuid: str | None = None
    isRecommended: bool | None = None
    actions: list[ActionPublic] = Field(default_factory=list)


class LinkPublic(BaseModel):
    """A link on a card (HealthOS sends none; the source URL points to the rule or model)."""

    label: str
    url: str
    type: Literal["absolute", "smart"]
    appContext: str | None = None
    autolaunchable: bool | None = None


class CardPublic(BaseModel):
    """A card (CDS Hooks 2.0.1 §Card attributes): a suggestion with its basis in ``detail``."""

    uuid: str | None = Field(
        default=None,
        description="Optional in CDS Hooks; HealthOS always sends it: the suggestion's id as "
        "a UUID, which feedback names",
    )
    summary: str = Field(max_length=140)
    detail: str | None = Field(default=None, description="Markdown: factors and evidence")
    indicator: Severity
    source: CardSourcePublic
    suggestions: list[CardSuggestionPublic] = Field(default_factory=list)
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[CodingPublic] = Field(default_factory=list)


class CdsResponsePublic(BaseModel):
    """The response of a service: cards (and system actions, never used by HealthOS)."""

    cards: list[CardPublic]
    systemActions: list[ActionPublic] = Field(default_factory=list)


class CodingCreate(BaseModel):
    """A Coding sent by the EHR."""

    system: StoredText | None = Field(default=None, max_length=255, pattern=_NO_NUL)
    code: StoredText = Field(min_length=1, max_length=64, pattern=_NO_NUL)
    display: StoredText | None = Field(default=None, max_length=255, pattern=_NO_NUL)


class OverrideReasonCreate(BaseModel):
    """Why a card was overridden: a reason Coding from the card's list, and a comment."""

    reason: CodingCreate | None = None
    userComment: StoredText | None = Field(default=None, max_length=2000, pattern=_NO_NUL)


class AcceptedSuggestionCreate(BaseModel):
    """A card suggestion the clinician accepted (its ``uuid``)."""

    id: str = Field(min_length=1, max_length=64, pattern=_NO_NUL)


class FeedbackEntryCreate(BaseModel):
    """One feedback entry: a card, its outcome and when (CDS Hooks 2.0.1 §Feedback)."""

    card: str = Field(min_length=1, max_length=64, pattern=_NO_NUL)
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestionCreate] = Field(default_factory=list, max_length=20)
    overrideReason: OverrideReasonCreate | None = None
    outcomeTimestamp: IsoDateTime


class FeedbackCreate(BaseModel):
    """The body of ``POST /cds-services/{id}/feedback``."""

    feedback: list[FeedbackEntryCreate] = Field(min_length=1, max_length=100)


class FeedbackRecordedPublic(BaseModel):
    """What one entry did: the suggestion, the lifecycle action and its status after it."""

    card: str
    suggestion_id: str
    action: Literal["act", "dismiss", "note"]
    status: Literal["open", "acknowledged", "acted", "dismissed"]


class FeedbackPublic(BaseModel):
    """The answer to feedback: one entry per feedback entry, in order."""

    recorded: list[FeedbackRecordedPublic]
