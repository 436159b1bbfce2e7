"""Billing entities: chargemaster, charges, claims and payer answers.

Names follow FHIR (ChargeItem, Claim, ExplanationOfBenefit, ClaimResponse). Every
amount is an exact ``Decimal`` with its ISO 4217 ``currency`` beside it.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from healthos_core.db import Base, utcnow
from healthos_core.record.entities import RecordMixin


class ChargeItemStatus(enum.StrEnum):
    """FHIR ChargeItem.status value set."""

    PLANNED = "planned"
    BILLABLE = "billable"
    NOT_BILLABLE = "not-billable"
    ABORTED = "aborted"
    BILLED = "billed"
    ENTERED_IN_ERROR = "entered-in-error"
    UNKNOWN = "unknown"


class ChargemasterEntry(Base):
    """A price of a service code over an effective period (the chargemaster, CDM).

    ``effective_to`` is exclusive; ``None`` means open-ended. ``code_system`` is a
    URI (SNOMED CT, HCPCS, RxNorm, CVX, LOINC or a local system).
    """

    __tablename__ = "chargemaster_entry"
    __table_args__ = (
        UniqueConstraint("code_system", "code", "effective_from"),
        Index("ix_chargemaster_lookup", "code", "code_system"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code_system: Mapped[str] = mapped_column(String(128))
    code: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(512))
    unit_price: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    revenue_code: Mapped[str | None] = mapped_column(String(8))
    tax_category: Mapped[str | None] = mapped_column(String(32))
    effective_from: Mapped[dt.date] = mapped_column(Date)
    effective_to: Mapped[dt.date | None] = mapped_column(Date)

    def __repr__(self) -> str:
        return (
            f"ChargemasterEntry(code={self.code!r}, price={self.unit_price} {self.currency}, "
            f"from={self.effective_from})"
        )


class ChargeItem(RecordMixin, Base):
    """A charge for a service (FHIR ChargeItem), linked to the clinical event behind it.

    ``service_ref`` is the ``"Type/id"`` of the Procedure, MedicationAdministration,
    Observation or Encounter that caused the charge (FHIR ``ChargeItem.service``);
    the revenue-leakage scorer relies on it.
    """

    __tablename__ = "charge_item"
    __table_args__ = (Index("ix_charge_item_service_ref", "service_ref"),)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    encounter_id: Mapped[str | None] = mapped_column(ForeignKey("encounter.id"), index=True)
    status: Mapped[str] = mapped_column(String(24), default=ChargeItemStatus.BILLABLE)
    code_system: Mapped[str] = mapped_column(String(128))
    code: Mapped[str] = mapped_column(String(64))
    display: Mapped[str | None] = mapped_column(String(512))
    quantity: Mapped[Decimal] = mapped_column(Numeric(12, 3), default=Decimal(1))
    unit_price: Mapped[Decimal]
    total: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    service_ref: Mapped[str | None] = mapped_column(String(128))
    occurred_at: Mapped[dt.datetime | None]
    entered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    chargemaster_entry_id: Mapped[int | None] = mapped_column(ForeignKey("chargemaster_entry.id"))


class ClaimBillingStatus(enum.StrEnum):
    """Where a claim is in the revenue cycle (SPEC §4), beside FHIR ``Claim.status``.

    draft → submitted → paid / partial / denied → resubmitted / appealed / written-off.
    ``None`` on a claim means it is kept in the record for history but not billed by
    HealthOS (e.g. a source system's claim that names no payer Organization).
    """

    DRAFT = "draft"
    SUBMITTED = "submitted"
    PAID = "paid"
    PARTIAL = "partial"
    DENIED = "denied"
    RESUBMITTED = "resubmitted"
    APPEALED = "appealed"
    WRITTEN_OFF = "written-off"


class Claim(RecordMixin, Base):
    """A claim to a payer (FHIR Claim) with its lines in :class:`ClaimItem`.

    ``billing_status`` is the revenue-cycle state (:class:`ClaimBillingStatus`); every
    change of it is recorded in :class:`ClaimStatusHistory`. ``related_claim_id`` points a
    corrected claim to the claim it replaces (FHIR ``Claim.related`` with relationship
    ``prior``).
    """

    __tablename__ = "claim"
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    encounter_id: Mapped[str | None] = mapped_column(ForeignKey("encounter.id"), index=True)
    status: Mapped[str] = mapped_column(String(24))
    type_code: Mapped[str | None] = mapped_column(String(32))
    use: Mapped[str] = mapped_column(String(24), default="claim")
    created: Mapped[dt.datetime | None]
    billable_start: Mapped[dt.datetime | None]
    billable_end: Mapped[dt.datetime | None]
    provider_id: Mapped[str | None] = mapped_column(String(64))
    insurer_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"))
    coverage_id: Mapped[str | None] = mapped_column(ForeignKey("coverage.id"))
    coverage_display: Mapped[str | None] = mapped_column(String(128))
    total: Mapped[Decimal | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    related_claim_id: Mapped[str | None] = mapped_column(String(64), index=True)
    billing_status: Mapped[str | None] = mapped_column(String(24), index=True)
    submitted_at: Mapped[dt.datetime | None]
    pre_auth_ref: Mapped[str | None] = mapped_column(String(64))
    patient_control_number: Mapped[str | None] = mapped_column(String(64), index=True)
    priority: Mapped[str | None] = mapped_column(String(16))
    items: Mapped[list[ClaimItem]] = relationship(
        back_populates="claim", cascade="all, delete-orphan", order_by="ClaimItem.sequence"
    )


class ClaimItem(Base):
    """One line of a claim: a service code, quantity and amounts."""

    __tablename__ = "claim_item"
    claim_id: Mapped[str] = mapped_column(
        ForeignKey("claim.id", ondelete="CASCADE"), primary_key=True
    )
    sequence: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_system: Mapped[str | None] = mapped_column(String(128))
    code: Mapped[str | None] = mapped_column(String(64), index=True)
    display: Mapped[str | None] = mapped_column(String(512))
    quantity: Mapped[Decimal | None] = mapped_column(Numeric(12, 3))
    unit_price: Mapped[Decimal | None]
    net: Mapped[Decimal | None]
    service_date: Mapped[dt.date | None] = mapped_column(Date)
    encounter_id: Mapped[str | None] = mapped_column(String(64))
    charge_item_id: Mapped[str | None] = mapped_column(String(64))
    diagnosis_sequence: Mapped[list[Any] | None]
    category: Mapped[str | None] = mapped_column(String(64))
    revenue_code: Mapped[str | None] = mapped_column(String(8))
    modifiers: Mapped[list[Any] | None]
    procedure_id: Mapped[str | None] = mapped_column(String(64))
    claim: Mapped[Claim] = relationship(back_populates="items")

    def __repr__(self) -> str:
        return (
            f"ClaimItem(claim_id={self.claim_id!r}, sequence={self.sequence}, code={self.code!r})"
        )


class ClaimDiagnosis(Base):
    """A diagnosis on a claim (FHIR ``Claim.diagnosis``), ICD-10-CM where the source has it."""

    __tablename__ = "claim_diagnosis"
    claim_id: Mapped[str] = mapped_column(
        ForeignKey("claim.id", ondelete="CASCADE"), primary_key=True
    )
    sequence: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_system: Mapped[str | None] = mapped_column(String(128))
    code: Mapped[str | None] = mapped_column(String(64))
    display: Mapped[str | None] = mapped_column(String(512))
    condition_id: Mapped[str | None] = mapped_column(String(64))
    type_code: Mapped[str | None] = mapped_column(String(32))

    def __repr__(self) -> str:
        return f"ClaimDiagnosis(claim_id={self.claim_id!r}, sequence={self.sequence})"


class ClaimStatusHistory(Base):
    """One change of a claim's ``billing_status``: from, to, who (and role), when, why."""

    __tablename__ = "claim_status_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    claim_id: Mapped[str] = mapped_column(ForeignKey("claim.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(512))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"ClaimStatusHistory(claim_id={self.claim_id!r}, to={self.to_status!r})"


class ExplanationOfBenefit(RecordMixin, Base):
    """A payer's explanation of benefit for a claim (FHIR ExplanationOfBenefit)."""

    __tablename__ = "explanation_of_benefit"
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    claim_id: Mapped[str | None] = mapped_column(ForeignKey("claim.id"), index=True)
    status: Mapped[str] = mapped_column(String(24))
    outcome: Mapped[str | None] = mapped_column(String(24))
    created: Mapped[dt.datetime | None]
    insurer_display: Mapped[str | None] = mapped_column(String(128))
    total_submitted: Mapped[Decimal | None]
    total_payment: Mapped[Decimal | None]
    currency: Mapped[str | None] = mapped_column(String(3))


class ClaimResponse(RecordMixin, Base):
    """A payer's adjudication of a claim (FHIR ClaimResponse), with CARC/RARC per line."""

    __tablename__ = "claim_response"
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    claim_id: Mapped[str | None] = mapped_column(ForeignKey("claim.id"), index=True)
    status: Mapped[str] = mapped_column(String(24))
    outcome: Mapped[str | None] = mapped_column(String(24))
    disposition: Mapped[str | None] = mapped_column(String(512))
    created: Mapped[dt.datetime | None]
    payment_amount: Mapped[Decimal | None]
    currency: Mapped[str | None] = mapped_column(String(3))
