"""Patient accounts: statement, invoices, payments and refunds.

What the patient owes comes from the ledger: patient responsibility posted from
remittances (PR-1/2/3) and, for self-pay, charges on no claim. Payments and refunds are
journal entries on the patient's A/R; a payment or refund ``reference`` posted again is
a no-op, so retrying a request never books twice.

Roles: ``finance`` and ``admin`` read statements; ``finance`` invoices, takes payments
and refunds, recorded with the caller's subject (see :mod:`serving.routers.billing`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from sqlalchemy.orm import Session

from healthos_core.billing.ledger import (
    Invoice,
    JournalEntry,
    build_invoice,
    post_patient_payment,
    post_refund,
    statement,
)
from healthos_core.db import utcnow
from healthos_core.errors import ConflictError, NotFoundError
from healthos_core.record.entities import Patient
from serving.deps import SessionDep
from serving.routers.billing import BILLING_READERS, AsOfQuery, BillingWriter, as_of_time
from serving.schemas.billing import (
    InvoiceCreate,
    InvoicePublic,
    JournalEntryPublic,
    PaymentCreate,
    RefundCreate,
    StatementPublic,
)

router = APIRouter(prefix="/patients", tags=["patient accounts"], dependencies=BILLING_READERS)

PatientId = Annotated[str, Path(min_length=1, max_length=64, description="FHIR Patient id")]

_CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "Nothing left to invoice"}}


# Helpers: they belong in ``healthos_core.billing.ledger`` (beside ``build_invoice``);
# they live here until they move there, so the routes stay one call each.


def _patient(session: Session, patient_id: str) -> str:
    if session.get(Patient, patient_id) is None:
        raise NotFoundError(f"Patient/{patient_id} does not exist")
    return patient_id


def patient_statement(session: Session, patient_id: str, *, as_of: dt.datetime) -> StatementPublic:
    """Return a patient's statement.

    Raises
    ------
    NotFoundError
        No such patient.
    """
    result = statement(session, _patient(session, patient_id), as_of=as_of)
    return StatementPublic.from_result(result)


def invoice_patient(
    session: Session, patient_id: str, *, self_pay: bool, created_by: str
) -> Invoice:
    """Invoice a patient for everything owed and not yet invoiced.

    Raises
    ------
    NotFoundError
        No such patient.
    ConflictError
        Nothing is left to invoice.
    """
    invoice = build_invoice(
        session, _patient(session, patient_id), self_pay=self_pay, created_by=created_by
    )
    if invoice is None:
        raise ConflictError(
            f"Patient/{patient_id} owes nothing that is not invoiced yet"
            + ("" if self_pay else " (pass self_pay to bill their unclaimed charges to them)")
        )
    return invoice


def _reference(given: str | None) -> str:
    return given or f"PaymentReconciliation/{uuid.uuid4()}"


def take_payment(
    session: Session, patient_id: str, body: PaymentCreate, *, created_by: str
) -> JournalEntry:
    """Post a patient's payment (Dr cash / Cr patient A/R) in the ledger currency."""
    return post_patient_payment(
        session,
        _patient(session, patient_id),
        Decimal(body.amount),
        source_ref=_reference(body.reference),
        at=body.at or utcnow(),
        currency=body.currency,
        created_by=created_by,
        description=body.description,
    )


def refund(
    session: Session, patient_id: str, body: RefundCreate, *, created_by: str
) -> JournalEntry:
    """Refund a patient's credit balance (Dr patient A/R / Cr cash or refunds payable)."""
    return post_refund(
        session,
        _patient(session, patient_id),
        Decimal(body.amount),
        source_ref=_reference(body.reference),
        at=body.at or utcnow(),
        currency=body.currency,
        payable=body.payable,
        created_by=created_by,
    )


@router.get("/{patient_id}/statement", response_model=StatementPublic)
def read_statement(
    *, session: SessionDep, patient_id: PatientId, as_of: AsOfQuery = None
) -> StatementPublic:
    """Read a patient statement: account activity, balance due and aging."""
    return patient_statement(session, patient_id, as_of=as_of_time(as_of) or utcnow())


@router.post(
    "/{patient_id}/invoices",
    response_model=InvoicePublic,
    status_code=status.HTTP_201_CREATED,
    responses=_CONFLICT,
)
def create_invoice(
    *,
    session: SessionDep,
    user: BillingWriter,
    patient_id: PatientId,
    body: InvoiceCreate | None = None,
) -> InvoicePublic:
    """Invoice the patient for everything owed and not yet invoiced (409 if nothing)."""
    invoice = invoice_patient(
        session,
        patient_id,
        self_pay=body is not None and body.self_pay,
        created_by=user.subject,
    )
    return InvoicePublic.from_entity(invoice)


@router.post(
    "/{patient_id}/payments", response_model=JournalEntryPublic, status_code=status.HTTP_201_CREATED
)
def create_payment(
    *,
    session: SessionDep,
    user: BillingWriter,
    patient_id: PatientId,
    body: PaymentCreate,
) -> JournalEntryPublic:
    """Post a payment by the patient (Dr cash / Cr patient A/R).

    422 when ``currency`` is not the ledger currency or ``at`` is in the future or before
    billing started (see ``healthos_core.billing.money``); nothing is written then.
    """
    entry = take_payment(session, patient_id, body, created_by=user.subject)
    return JournalEntryPublic.from_entity(entry)


@router.post(
    "/{patient_id}/refunds", response_model=JournalEntryPublic, status_code=status.HTTP_201_CREATED
)
def create_refund(
    *,
    session: SessionDep,
    user: BillingWriter,
    patient_id: PatientId,
    body: RefundCreate,
) -> JournalEntryPublic:
    """Refund the patient's credit balance (an overpayment; 422 above it).

    The same currency and date rules as a payment apply.
    """
    entry = refund(session, patient_id, body, created_by=user.subject)
    return JournalEntryPublic.from_entity(entry)
