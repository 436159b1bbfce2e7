"""Stored suggestions and the audited actions people take on them.

``reasoning`` produces suggestions; this module persists them so a clinician or
biller can acknowledge, act on or dismiss each one. Suggestions never change the
record; the actions on them are appended, never edited.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Collection, Iterable, Sequence
from decimal import Decimal
from typing import Any, Literal, Protocol

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, case, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship, selectinload

from healthos_core.db import Base, utcnow
from healthos_core.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError


class SuggestionStatus(enum.StrEnum):
    """Life cycle of a suggestion (SPEC §5)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    ACTED = "acted"
    DISMISSED = "dismissed"


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
    """One audited action on a suggestion: who (and their role), what, when and why."""

    __tablename__ = "suggestion_action"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    suggestion_id: Mapped[str] = mapped_column(ForeignKey("suggestion.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    suggestion: Mapped[SuggestionRecord] = relationship(back_populates="actions")

    def __repr__(self) -> str:
        return f"SuggestionAction(suggestion_id={self.suggestion_id!r}, action={self.action!r})"
