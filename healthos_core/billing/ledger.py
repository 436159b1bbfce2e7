"""The double-entry ledger of the revenue cycle: accounts, journal entries, postings.

Every amount that moves in the revenue cycle is a :class:`JournalEntry` with two or
more :class:`LedgerPosting` lines whose debits equal their credits, to the cent, in
one currency. An entry always names its source event (``source_ref``, a FHIR
``"Type/id"``: the ChargeItem, Claim or ClaimResponse behind it); posting without a
source is refused. Entries are unique on ``(kind, source_ref, discriminator)`` and
their ids are derived from that key (UUIDv5), so posting the same source event again
is a no-op: replaying events or re-importing a file never double-books.

Accounts
--------
==========================  =======  ===========================================
account id                  normal   what it holds
==========================  =======  ===========================================
``unbilled_ar``             debit    charges captured, not yet on a claim
``payer_ar:<payer org id>`` debit    claimed, not yet settled by the payer
``patient_ar:<patient id>`` debit    owed by the patient (patient responsibility,
                                     self-pay); a credit balance is an overpayment
``cash``                    debit    money received (net of refunds paid)
``revenue``                 credit   gross charges
``contractual_allowance``   debit    contra-revenue: CO-45 reductions
``denial_write_off``        debit    contra-revenue: denied balances written off
``tax_payable``             credit   tax charged on behalf of a tax authority
``refunds_payable``         credit   refunds approved, not yet paid out
==========================  =======  ===========================================

Accounts are created on first use; an account keeps one currency for life.

Postings (``Dr`` debit / ``Cr`` credit)
---------------------------------------
======================================  ===============================================
event (kind, source)                    postings
======================================  ===============================================
ChargeItem captured (``charge``,        Dr unbilled_ar / Cr revenue, its total
``ChargeItem/id``)
claim of ChargeItems submitted          Dr payer_ar / Cr unbilled_ar, each line's charge
(``claim_submission``, ``Claim/id``)    (a line priced differently from its charge moves
                                        the difference to revenue)
imported claim enters the cycle         Dr payer_ar / Cr revenue, the sum of its lines
(``charge``, ``Claim/id``)              (no ChargeItems behind it)
corrected claim (``Claim.related``)     nothing: its lines were charged on the original;
                                        its remittance settles the original's A/R
payer benefit (``payment``,             Dr cash / Cr payer_ar
``ClaimResponse/id``)
contractual CO-45                       Dr contractual_allowance / Cr payer_ar
(``contractual_adjustment``)
patient responsibility PR-1/2/3         Dr patient_ar / Cr payer_ar
(``patient_responsibility``)
denied amounts                          not posted: they stay in payer A/R until the
                                        claim is corrected, appealed or written off
write-off (``write_off``, ``Claim/id``) Dr denial_write_off / Cr payer_ar
patient payment (``patient_payment``)   Dr cash / Cr patient_ar
refund (``refund``)                     Dr patient_ar / Cr cash (or refunds_payable)
reversal (``reversal``)                 the original entry's lines, sides swapped
======================================  ===============================================

So, at every moment, total A/R (unbilled + payer + patient) = charges − payer and
patient payments − contractual adjustments − write-offs + refunds, and total debits =
total credits. The group codes and CARCs follow the X12 835 (005010X221A1): CO-45
"Charge exceeds fee schedule/maximum allowable or contracted/legislated fee
arrangement" is a contractual obligation, not a denial; PR-1/2/3 (deductible,
coinsurance, co-payment) are billable to the patient; ``../shared/billing-facts.md``
§1 and §3.

Every posting on a payer A/R account carries the claim it belongs to (``claim_id``;
for a corrected claim, its original), so :func:`ar_aging` can age open balances by
claim service date.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final
from typing import cast as cast_type

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ColumnElement,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    UniqueConstraint,
    any_,
    bindparam,
    cast,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from healthos_core.billing.entities import (
    ChargeItem,
    ChargeItemStatus,
    Claim,
    ClaimBillingStatus,
    ClaimItem,
    ClaimStatusHistory,
)
from healthos_core.billing.money import check_currency, check_payment_time
from healthos_core.db import Base, lock_rows, upsert_insert, utcnow
from healthos_core.errors import ConflictError, InvalidInputError, NotFoundError

__all__ = [
    "AGING_BUCKETS",
    "Account",
    "AccountKind",
    "Invoice",
    "InvoiceLine",
    "JournalEntry",
    "JournalKind",
    "JournalSpec",
    "LedgerPosting",
    "Line",
    "account_balance",
    "account_id",
    "ar_aging",
    "balances",
    "build_invoice",
    "bulk_insert",
    "claim_open_balance",
    "credit",
    "debit",
    "id_batches",
    "in_ids",
    "journal_id",
    "patient_ar",
    "payer_ar",
    "post_charge",
    "post_claim_charge",
    "post_claim_charges",
    "post_journal",
    "post_journals",
    "post_patient_payment",
    "post_refund",
    "record_billing_status",
    "reverse_journal",
    "statement",
    "trial_balance",
    "write_off_claim",
]

CENT: Final = Decimal("0.01")
ZERO: Final = Decimal("0.00")
#: Largest amount a ``Money`` column (Numeric(14, 2)) holds.
MAX_AMOUNT: Final = Decimal("999999999999.99")
#: ``"Type/id"``: a FHIR resource type and a FHIR id (``[A-Za-z0-9\-.]{1,64}``).
SOURCE_REF_PATTERN: Final = re.compile(r"^[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}$")
_CURRENCY_PATTERN: Final = re.compile(r"^[A-Z]{3}$")
#: Namespace of the journal-entry ids (UUIDv5 of ``kind|source_ref|discriminator``).
_JOURNAL_NAMESPACE: Final = uuid.UUID("2f1b8a6e-4c1d-5b7e-9a2f-6d3c0e8b1a47")
#: A/R aging buckets, in days since the service date (inclusive bounds).
AGING_BUCKETS: Final = (
    ("0-30", 0, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("91-120", 91, 120),
    ("120+", 121, None),
)
_IN_CYCLE: Final = frozenset(s.value for s in ClaimBillingStatus) - {ClaimBillingStatus.DRAFT.value}


class AccountKind(enum.StrEnum):
    """The kinds of ledger account; an account id starts with its kind."""

    UNBILLED_AR = "unbilled_ar"
    PAYER_AR = "payer_ar"
    PATIENT_AR = "patient_ar"
    CASH = "cash"
    REVENUE = "revenue"
    CONTRACTUAL_ALLOWANCE = "contractual_allowance"
    DENIAL_WRITE_OFF = "denial_write_off"
    TAX_PAYABLE = "tax_payable"
    REFUNDS_PAYABLE = "refunds_payable"


#: Accounts whose balance is debits − credits (assets and contra-revenue); the others
#: (revenue and liabilities) are credits − debits.
DEBIT_NORMAL: Final = frozenset(
    {
        AccountKind.UNBILLED_AR,
        AccountKind.PAYER_AR,
        AccountKind.PATIENT_AR,
        AccountKind.CASH,
        AccountKind.CONTRACTUAL_ALLOWANCE,
        AccountKind.DENIAL_WRITE_OFF,
    }
)
#: Kinds that need an owner after the colon (``payer_ar:<org id>``, ``patient_ar:<id>``).
_OWNED: Final = frozenset({AccountKind.PAYER_AR, AccountKind.PATIENT_AR})
AR_KINDS: Final = (AccountKind.UNBILLED_AR, AccountKind.PAYER_AR, AccountKind.PATIENT_AR)


class JournalKind(enum.StrEnum):
    """What a journal entry records."""

    CHARGE = "charge"
    CLAIM_SUBMISSION = "claim_submission"
    PAYMENT = "payment"
    CONTRACTUAL_ADJUSTMENT = "contractual_adjustment"
    PATIENT_RESPONSIBILITY = "patient_responsibility"
    WRITE_OFF = "write_off"
    PATIENT_PAYMENT = "patient_payment"
    REFUND = "refund"
    REVERSAL = "reversal"


_ACCOUNT_KINDS: Final = {kind.value: kind for kind in AccountKind}
_JOURNAL_KINDS: Final = frozenset(kind.value for kind in JournalKind)


# --------------------------------------------------------------------------- entities


class Account(Base):
    """A ledger account (see the module docstring for the chart of accounts).

    ``id`` is ``<kind>`` or ``<kind>:<owner>`` (``payer_ar:payer-medicare``,
    ``patient_ar:<patient id>``); ``normal_balance`` is ``debit`` or ``credit``.
    """

    __tablename__ = "ledger_account"
    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(String(3))
    normal_balance: Mapped[str] = mapped_column(String(6))
    facility_id: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(ForeignKey("patient.id"), index=True)
    payer_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"Account(id={self.id!r}, currency={self.currency!r})"


class JournalEntry(Base):
    """One balanced business event in the ledger, with the source event that caused it.

    ``source_ref`` is required (``"Type/id"``); ``(kind, source_ref, discriminator)`` is
    unique, and ``id`` is the UUIDv5 of that key (:func:`journal_id`). ``at`` is when
    the event happened (aware UTC), ``created_at`` when HealthOS recorded it.
    """

    __tablename__ = "journal_entry"
    __table_args__ = (UniqueConstraint("source_ref", "kind", "discriminator"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    source_ref: Mapped[str] = mapped_column(String(160))
    discriminator: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(String(512))
    facility_id: Mapped[str | None] = mapped_column(String(64))
    postings: Mapped[list[LedgerPosting]] = relationship(
        back_populates="journal_entry", order_by="LedgerPosting.id"
    )

    def __repr__(self) -> str:
        return f"JournalEntry(id={self.id!r}, kind={self.kind!r}, source_ref={self.source_ref!r})"


class LedgerPosting(Base):
    """One line of a journal entry: a debit or a credit (never both) to one account.

    Amounts are non-negative ``Decimal`` to the cent, in ``currency`` (the account's).
    ``claim_id`` ties payer and patient A/R lines to the claim they belong to.
    """

    __tablename__ = "ledger_posting"
    __table_args__ = (
        CheckConstraint(
            "(debit > 0 AND credit = 0) OR (credit > 0 AND debit = 0)", name="one_side"
        ),
        Index("ix_ledger_posting_claim_account", "claim_id", "account_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    journal_entry_id: Mapped[str] = mapped_column(ForeignKey("journal_entry.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("ledger_account.id"), index=True)
    debit: Mapped[Decimal]
    credit: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    # Not a foreign key: the posting code checks the claim; on PostgreSQL a key here would
    # cost one trigger per posting on the bulk path (see docs/billing.md, "Performance").
    claim_id: Mapped[str | None] = mapped_column(String(64))
    journal_entry: Mapped[JournalEntry] = relationship(back_populates="postings")

    def __repr__(self) -> str:
        return (
            f"LedgerPosting(account_id={self.account_id!r}, debit={self.debit}, "
            f"credit={self.credit} {self.currency})"
        )


class Invoice(Base):
    """A patient invoice: the patient-responsibility items billed to the patient at once."""

    __tablename__ = "invoice"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"), index=True)
    issued_at: Mapped[dt.datetime]
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal]
    status: Mapped[str] = mapped_column(String(24), default="issued")
    created_by: Mapped[str] = mapped_column(String(128))
    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.sequence"
    )

    def __repr__(self) -> str:
        return f"Invoice(id={self.id!r}, total={self.total} {self.currency})"


class InvoiceLine(Base):
    """One item of an invoice: a patient A/R debit, billed once (``posting_id`` unique)."""

    __tablename__ = "invoice_line"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoice.id"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)
    posting_id: Mapped[int] = mapped_column(ForeignKey("ledger_posting.id"), unique=True)
    source_ref: Mapped[str] = mapped_column(String(160))
    claim_id: Mapped[str | None] = mapped_column(String(64))
    service_date: Mapped[dt.date | None]
    description: Mapped[str | None] = mapped_column(String(512))
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    invoice: Mapped[Invoice] = relationship(back_populates="lines")

    def __repr__(self) -> str:
        return f"InvoiceLine(invoice_id={self.invoice_id!r}, amount={self.amount})"


def cast_table(table: Any) -> Table:
    """Return an entity's ``__table__`` typed as a :class:`~sqlalchemy.Table` (for mypy)."""
    return cast_type(Table, table)


# --------------------------------------------------------------------------- batches

#: Ids per ``IN (…)`` query on SQLite, and per ``= ANY(array)`` query on PostgreSQL.
_SQLITE_BATCH: Final = 500
_ARRAY_BATCH: Final = 20_000


def id_batches(session: Session, ids: Sequence[str]) -> Iterator[Sequence[str]]:
    """Split ``ids`` into batches for :func:`in_ids` (large on PostgreSQL, 500 elsewhere)."""
    size = _ARRAY_BATCH if session.get_bind().dialect.name == "postgresql" else _SQLITE_BATCH
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def in_ids(session: Session, column: Any, ids: Sequence[str]) -> ColumnElement[bool]:
    """Return ``column IN ids``: one array parameter on PostgreSQL (``= ANY(:ids)``).

    Thousands of ``IN`` placeholders cost PostgreSQL and the driver more than the lookup
    itself; an array is one parameter. Other backends get a plain ``IN``.
    """
    if session.get_bind().dialect.name == "postgresql":
        criterion: ColumnElement[bool] = column == any_(
            bindparam(None, list(ids), type_=ARRAY(String))
        )
        return criterion
    return column.in_(ids)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- accounts


def account_id(kind: AccountKind | str, owner: str | None = None) -> str:
    """Return the id of an account.

    Parameters
    ----------
    kind : AccountKind or str
        The account kind.
    owner : str, optional
        The payer Organization id (``payer_ar``) or Patient id (``patient_ar``);
        required for those two kinds, refused for the others.

    Returns
    -------
    str
        ``"<kind>"`` or ``"<kind>:<owner>"``.

    Raises
    ------
    InvalidInputError
        If ``kind`` is unknown or ``owner`` is missing/superfluous.

    Examples
    --------
    >>> account_id("payer_ar", "payer-medicare")
    'payer_ar:payer-medicare'
    >>> account_id(AccountKind.CASH)
    'cash'
    """
    found = _ACCOUNT_KINDS.get(kind)
    if found is None:
        raise InvalidInputError(
            f"unknown account kind {kind!r}: use one of {', '.join(AccountKind)}"
        )
    kind = found
    if (kind in _OWNED) != bool(owner):
        raise InvalidInputError(
            f"account kind {kind} {'needs' if kind in _OWNED else 'takes no'} owner id"
        )
    return f"{kind}:{owner}" if owner else str(kind)


def payer_ar(payer_id: str) -> str:
    """Return the payer receivable account id ``payer_ar:<payer Organization id>``."""
    return account_id(AccountKind.PAYER_AR, payer_id)


def patient_ar(patient_id: str) -> str:
    """Return the patient receivable account id ``patient_ar:<Patient id>``."""
    return account_id(AccountKind.PATIENT_AR, patient_id)


def _parse_account(account: str) -> tuple[AccountKind, str | None]:
    kind_text, _, owner = account.partition(":")
    kind = _ACCOUNT_KINDS.get(kind_text)
    if kind is None:
        raise InvalidInputError(
            f"account {account!r} is not a ledger account: ids start with one of "
            f"{', '.join(AccountKind)}"
        )
    if (kind in _OWNED) != bool(owner):
        raise InvalidInputError(f"account {account!r}: {kind} accounts are '{kind}:<owner id>'")
    return kind, owner or None


def _ensure_accounts(session: Session, wanted: Mapping[str, str]) -> None:
    """Create the accounts in ``wanted`` (id → currency) that do not exist yet.

    An existing account kept in another currency is re-opened in the ledger currency
    when its balance is zero: the repair of a ledger locked by money booked in another
    currency before :func:`~healthos_core.billing.money.check_currency` existed (issue 9)
    is to reverse those entries (:func:`reverse_journal`).

    Raises
    ------
    InvalidInputError
        If an existing account keeps another currency (and cannot be re-opened).
    """
    table = Account.__table__
    ids = sorted(wanted)
    existing: dict[str, str] = {}
    for chunk in id_batches(session, ids):
        for row in session.execute(
            select(table.c.id, table.c.currency).where(in_ids(session, table.c.id, chunk))
        ):
            existing[row.id] = row.currency
    ledger = check_currency(None)
    for account, currency in existing.items():
        if currency == wanted[account]:
            continue
        if wanted[account] == ledger and account_balance(session, account) == 0:
            session.execute(
                update(cast_table(table)).where(table.c.id == account).values(currency=ledger)
            )
            continue
        raise InvalidInputError(
            f"account {account} is kept in {currency}, not {wanted[account]}: "
            "one account holds one currency"
            + (
                f"; reverse its {currency} entries (reverse_journal) and it re-opens in {ledger}"
                if wanted[account] == ledger
                else ""
            )
        )
    missing = [account for account in ids if account not in existing]
    _check_owners(session, [_parse_account(account) for account in missing])
    rows = []
    now = utcnow()
    for account in missing:
        kind, owner = _parse_account(account)
        rows.append(
            {
                "id": account,
                "kind": kind.value,
                "name": kind.value.replace("_", " ") + (f" {owner}" if owner else ""),
                "currency": wanted[account],
                "normal_balance": "debit" if kind in DEBIT_NORMAL else "credit",
                "facility_id": None,
                "patient_id": owner if kind is AccountKind.PATIENT_AR else None,
                "payer_id": owner if kind is AccountKind.PAYER_AR else None,
                "created_at": now,
            }
        )
    if rows:
        # Another transaction may be opening the same account (two first payments of a
        # patient at once): its row wins, then its currency is checked like any other.
        insert = upsert_insert(session.get_bind().dialect.name, cast_table(table))
        session.execute(
            insert.on_conflict_do_nothing(index_elements=["id"]),
            rows,
        )
        for row in session.execute(
            select(table.c.id, table.c.currency).where(in_ids(session, table.c.id, missing))
        ):
            if row.currency != wanted[row.id]:
                raise InvalidInputError(
                    f"account {row.id} is kept in {row.currency}, not {wanted[row.id]}: "
                    "one account holds one currency"
                )


def _check_owners(session: Session, accounts: Sequence[tuple[AccountKind, str | None]]) -> None:
    """Refuse new A/R accounts whose patient or payer Organization does not exist."""
    for kind, table_name, label in (
        (AccountKind.PATIENT_AR, "patient", "Patient"),
        (AccountKind.PAYER_AR, "organization", "Organization"),
    ):
        owners = sorted({owner for k, owner in accounts if k is kind and owner})
        if not owners:
            continue
        table = Base.metadata.tables[table_name]
        found: set[str] = set()
        for chunk in id_batches(session, owners):
            found.update(
                session.scalars(select(table.c.id).where(in_ids(session, table.c.id, chunk)))
            )
        for owner in owners:
            if owner not in found:
                raise NotFoundError(f"{label}/{owner} does not exist: no account {kind}:{owner}")


# --------------------------------------------------------------------------- posting


@dataclass(frozen=True)
class Line:
    """One intended posting line: a debit or a credit to an account.

    Attributes
    ----------
    account_id : str
        Ledger account id (:func:`account_id`).
    debit, credit : Decimal
        Non-negative, to the cent; exactly one is non-zero.
    claim_id : str, optional
        The claim this line belongs to (required on payer A/R lines for aging).
    currency : str, optional
        ISO 4217; defaults to the entry's currency (a different one is refused).
    """

    account_id: str
    debit: Decimal = ZERO
    credit: Decimal = ZERO
    claim_id: str | None = None
    currency: str | None = None


def debit(account: str, amount: Decimal, *, claim_id: str | None = None) -> Line:
    """Return a debit line of ``amount`` to ``account``."""
    return Line(account, debit=amount, claim_id=claim_id)


def credit(account: str, amount: Decimal, *, claim_id: str | None = None) -> Line:
    """Return a credit line of ``amount`` to ``account``."""
    return Line(account, credit=amount, claim_id=claim_id)


@dataclass
class JournalSpec:
    """A journal entry to post (see :func:`post_journal` for the fields)."""

    kind: JournalKind | str
    source_ref: str
    at: dt.datetime
    lines: Sequence[Line]
    currency: str
    discriminator: str = ""
    created_by: str = "system"
    description: str | None = None
    facility_id: str | None = None

    @property
    def id(self) -> str:
        """The entry id (:func:`journal_id`)."""
        return journal_id(self.kind, self.source_ref, self.discriminator)


def journal_id(kind: JournalKind | str, source_ref: str, discriminator: str = "") -> str:
    """Return the deterministic id of the entry ``(kind, source_ref, discriminator)``.

    A UUIDv5 (RFC 9562 §5.5), so the same source event always maps to the same entry.
    """
    return str(uuid.uuid5(_JOURNAL_NAMESPACE, f"{kind}|{source_ref}|{discriminator}"))


def _check_amount(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise InvalidInputError(
            f"{what}: amount {value!r} is a {type(value).__name__}; give a Decimal (never a float)"
        )
    amount = Decimal(value)
    if not amount.is_finite():
        raise InvalidInputError(f"{what}: amount {amount} is not a finite number")
    if amount < 0:
        raise InvalidInputError(f"{what}: negative amount {amount}; post the opposite side instead")
    if amount != amount.quantize(CENT):
        raise InvalidInputError(f"{what}: amount {amount} has fractions of a cent")
    if amount > MAX_AMOUNT:
        raise InvalidInputError(f"{what}: amount {amount} exceeds {MAX_AMOUNT}")
    return amount.quantize(CENT)


def _validate(spec: JournalSpec, ledger_currency: str) -> list[dict[str, Any]]:
    """Check one entry; return its posting rows (without ids). Raises InvalidInputError.

    An entry in a currency other than ``ledger_currency`` is refused
    (:func:`~healthos_core.billing.money.check_currency`), except a reversal: undoing an
    entry posted before that rule existed must stay possible.
    """
    label = f"{spec.kind} entry for {spec.source_ref!r}"
    if spec.kind not in _JOURNAL_KINDS:
        raise InvalidInputError(
            f"unknown journal kind {spec.kind!r}: use one of {', '.join(JournalKind)}"
        )
    if not isinstance(spec.source_ref, str) or not SOURCE_REF_PATTERN.match(spec.source_ref):
        raise InvalidInputError(
            f"{label}: no posting without a source event: source_ref must be the "
            "'Type/id' of the ChargeItem, Claim, ClaimResponse or payment behind it"
        )
    if not isinstance(spec.at, dt.datetime) or spec.at.utcoffset() is None:
        raise InvalidInputError(f"{label}: 'at' must be an aware datetime, got {spec.at!r}")
    if not isinstance(spec.currency, str) or not _CURRENCY_PATTERN.match(spec.currency):
        raise InvalidInputError(f"{label}: currency {spec.currency!r} is not ISO 4217")
    if spec.currency != ledger_currency and spec.kind != JournalKind.REVERSAL:
        check_currency(spec.currency, field=f"{label}: currency")
    if len(spec.discriminator) > 64:
        raise InvalidInputError(f"{label}: discriminator longer than 64 characters")
    if len(spec.lines) < 2:
        raise InvalidInputError(f"{label}: a journal entry needs at least two lines")
    rows: list[dict[str, Any]] = []
    debits = credits = ZERO
    for number, line in enumerate(spec.lines, start=1):
        where = f"{label} line {number} ({line.account_id})"
        if line.currency is not None and line.currency != spec.currency:
            raise InvalidInputError(
                f"{label}: mixed currencies ({line.currency} on line {number}, entry in "
                f"{spec.currency}); post one entry per currency"
            )
        _parse_account(line.account_id)
        dr = _check_amount(line.debit, where)
        cr = _check_amount(line.credit, where)
        if (dr > 0) == (cr > 0):
            raise InvalidInputError(
                f"{where}: a line is a debit or a credit, not both and not neither"
            )
        debits += dr
        credits += cr
        rows.append(
            {
                "account_id": line.account_id,
                "debit": dr,
                "credit": cr,
                "currency": spec.currency,
                "claim_id": line.claim_id,
            }
        )
    if debits != credits:
        raise InvalidInputError(f"{label}: debits {debits} ≠ credits {credits}; nothing was posted")
    return rows


_ENTRY_COLUMNS: Final = (
    "id",
    "kind",
    "source_ref",
    "discriminator",
    "at",
    "created_at",
    "created_by",
    "description",
    "facility_id",
)
_POSTING_COLUMNS: Final = (
    "journal_entry_id",
    "account_id",
    "debit",
    "credit",
    "currency",
    "claim_id",
)


def post_journals(session: Session, specs: Sequence[JournalSpec]) -> list[str]:
    """Post many journal entries at once (bulk inserts); all are checked first.

    Parameters
    ----------
    session : Session
        The caller's session (flushed, never committed).
    specs : sequence of JournalSpec
        The entries. An entry whose ``(kind, source_ref, discriminator)`` is already in
        the ledger with the same lines is skipped (idempotent).

    Returns
    -------
    list of str
        Ids of the entries written now (skipped ones are not listed).

    Raises
    ------
    InvalidInputError
        If any entry is unbalanced, has a negative or sub-cent amount, mixes currencies,
        is in a currency other than the ledger currency (reversals excepted; see
        :func:`~healthos_core.billing.money.check_currency`), has no ``Type/id`` source,
        or posts to an account kept in another currency. Nothing is written.
    ConflictError
        If an entry with the same key exists with different lines (also when another
        transaction posts it at the same moment: the rows are inserted in a savepoint
        and, on a unique-key violation, checked again).
    NotFoundError
        If a new ``patient_ar``/``payer_ar`` account names a Patient or Organization that
        does not exist.
    """
    if not specs:
        return []
    checked: dict[str, tuple[JournalSpec, list[dict[str, Any]]]] = {}
    currency = check_currency(None)
    for spec in specs:
        rows = _validate(spec, currency)
        key = spec.id
        if key in checked:
            if _line_key(checked[key][1]) != _line_key(rows):
                raise ConflictError(
                    f"{spec.kind} entry for {spec.source_ref} given twice with different lines"
                )
            continue
        checked[key] = (spec, rows)
    # Writers of one patient's account queue here (PostgreSQL row lock on the Patient), so
    # an entry posted by two clients at once is found by the second, not inserted twice.
    lock_rows(
        session,
        Base.metadata.tables["patient"],
        (
            owner
            for _, rows in checked.values()
            for row in rows
            for kind, owner in [_parse_account(row["account_id"])]
            if kind is AccountKind.PATIENT_AR and owner
        ),
    )
    existing = _existing_entries(session, list(checked))
    stored_lines = _stored_lines(session, sorted(existing))
    for key in existing:
        spec, rows = checked[key]
        if _line_key(stored_lines.get(key, [])) != _line_key(rows):
            raise ConflictError(
                f"{spec.kind} entry for {spec.source_ref} is already posted with other "
                "amounts: the ledger is append-only, post a reversal (reverse_journal) first"
            )
    new = [(key, spec, rows) for key, (spec, rows) in checked.items() if key not in existing]
    if not new:
        return []
    wanted: dict[str, str] = {}
    for _, spec, rows in new:
        for row in rows:
            if wanted.setdefault(row["account_id"], spec.currency) != spec.currency:
                raise InvalidInputError(
                    f"account {row['account_id']} given in {wanted[row['account_id']]} and "
                    f"{spec.currency} in one batch: one account holds one currency"
                )
    _ensure_accounts(session, wanted)
    now = utcnow()
    dbapi = session.get_bind().dialect.dbapi
    duplicate: tuple[type[Exception], ...] = (IntegrityError,) + (
        (dbapi.IntegrityError,) if dbapi is not None else ()
    )
    try:
        with session.begin_nested():
            bulk_insert(
                session,
                JournalEntry.__table__,  # type: ignore[arg-type]
                [
                    (
                        key,
                        str(spec.kind),
                        spec.source_ref,
                        spec.discriminator,
                        spec.at,
                        now,
                        spec.created_by[:128],
                        spec.description[:512] if spec.description else None,
                        spec.facility_id,
                    )
                    for key, spec, _ in new
                ],
                columns=_ENTRY_COLUMNS,
            )
            bulk_insert(
                session,
                LedgerPosting.__table__,  # type: ignore[arg-type]
                [
                    (key, r["account_id"], r["debit"], r["credit"], r["currency"], r["claim_id"])
                    for key, _, rows in new
                    for r in rows
                ],
                columns=_POSTING_COLUMNS,
            )
    except duplicate as exc:
        # Another transaction committed one of these entries after our check (one
        # reference sent for two patients at once): check again, now seeing it, so the
        # caller gets the stored entry or a ConflictError, never the database's error.
        if not _unique_violation(exc):
            raise
        return post_journals(session, specs)
    return [key for key, _, _ in new]


def _unique_violation(exc: Exception) -> bool:
    """Whether a database error is a unique-key violation (SQLSTATE 23505 / SQLite UNIQUE)."""
    orig = getattr(exc, "orig", None) or exc
    return getattr(orig, "sqlstate", None) == "23505" or "UNIQUE constraint failed" in str(orig)


def _pg_copy_type(column_type: Any) -> str | None:
    """PostgreSQL type name for a binary ``COPY`` of a column, or None (then text COPY)."""
    impl = column_type.impl if isinstance(column_type, TypeDecorator) else column_type
    if isinstance(impl, DateTime):
        return "timestamptz" if impl.timezone else "timestamp"
    for sa_type, name in (
        (Numeric, "numeric"),
        (Integer, "int4"),
        (Boolean, "bool"),
        (Date, "date"),
        (String, "varchar"),
    ):
        if isinstance(impl, sa_type):
            return name
    return None


def bulk_insert(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]],
    *,
    columns: Sequence[str] | None = None,
) -> None:
    """Insert many rows at once, in the session's transaction.

    PostgreSQL gets one ``COPY … FROM STDIN`` (psycopg 3; binary format when every
    column's type is a plain one), other backends one DBAPI ``executemany``. Values go
    through each column type's bind processor first (the same conversion a Core
    ``insert`` applies: aware UTC times, ``Decimal`` amounts), so the rows stored are the
    same; only SQLAlchemy's per-row statement bookkeeping is skipped. Used for the
    high-volume ledger and adjudication tables.

    Parameters
    ----------
    session : Session
        The caller's session (nothing is committed).
    table : Table
        The target table.
    rows : sequence of mapping or of sequence
        Rows with the same keys (column names), or value tuples in the order of
        ``columns``; an empty sequence does nothing.
    columns : sequence of str, optional
        The column names of tuple rows (default: the keys of the first mapping).
    """
    if not rows:
        return
    if columns is None:
        columns = list(rows[0])
        rows = [[row[name] for name in columns] for row in rows]  # type: ignore[call-overload]
    dialect = session.get_bind().dialect
    processors = [
        (i, processor)
        for i, name in enumerate(columns)
        if (processor := table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
        is not None
    ]

    def values(row: Sequence[Any]) -> Sequence[Any]:
        if not processors:
            return row
        out = list(row)
        for i, processor in processors:
            out[i] = processor(out[i])
        return out

    preparer = dialect.identifier_preparer
    target = preparer.format_table(table)
    names = ", ".join(preparer.quote(name) for name in columns)
    connection = session.connection()
    if dialect.name == "postgresql":
        raw: Any = connection.connection.dbapi_connection
        types = [_pg_copy_type(table.c[name].type) for name in columns]
        binary = None not in types
        options = " (FORMAT BINARY)" if binary else ""
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY {target} ({names}) FROM STDIN{options}") as copy,
        ):
            if binary:
                copy.set_types(types)
            for row in rows:
                copy.write_row(values(row))  # type: ignore[arg-type]
        return
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    statement = f"INSERT INTO {target} ({names}) VALUES ({', '.join([mark] * len(columns))})"  # noqa: S608 - identifiers from the table, values bound
    connection.exec_driver_sql(statement, [tuple(values(row)) for row in rows])  # type: ignore[arg-type]


def _line_key(rows: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (
            r["account_id"],
            Decimal(r["debit"]).quantize(CENT),
            Decimal(r["credit"]).quantize(CENT),
            r["currency"],
            r["claim_id"] or "",
        )
        for r in rows
    )


def _existing_entries(session: Session, ids: list[str]) -> set[str]:
    found: set[str] = set()
    table = JournalEntry.__table__
    for chunk in id_batches(session, ids):
        found.update(session.scalars(select(table.c.id).where(in_ids(session, table.c.id, chunk))))
    return found


def _stored_lines(session: Session, entry_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    table = LedgerPosting.__table__
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for chunk in id_batches(session, entry_ids):
        rows = session.execute(
            select(
                table.c.journal_entry_id,
                table.c.account_id,
                table.c.debit,
                table.c.credit,
                table.c.currency,
                table.c.claim_id,
            ).where(in_ids(session, table.c.journal_entry_id, chunk))
        )
        for row in rows:
            out[row.journal_entry_id].append(dict(row._mapping))
    return out


def post_journal(
    session: Session,
    *,
    kind: JournalKind | str,
    source_ref: str,
    at: dt.datetime,
    lines: Sequence[Line],
    currency: str,
    discriminator: str = "",
    created_by: str = "system",
    description: str | None = None,
    facility_id: str | None = None,
) -> JournalEntry:
    """Post one balanced journal entry, or return the one already posted for its source.

    Parameters
    ----------
    session : Session
        The caller's session (flushed, never committed).
    kind : JournalKind or str
        What the entry records.
    source_ref : str
        ``"Type/id"`` of the source event (ChargeItem, Claim, ClaimResponse, payment …).
        Required: there is no posting without a source event.
    at : datetime
        When the event happened (aware; stored as UTC).
    lines : sequence of Line
        Two or more lines; total debits must equal total credits, to the cent.
    currency : str
        ISO 4217 code of every line (a line naming another currency is refused); must
        be the ledger currency (:func:`~healthos_core.billing.money.ledger_currency`)
        unless ``kind`` is ``reversal``.
    discriminator : str, default=""
        Distinguishes several entries of one kind for one source (e.g. two write-offs).
    created_by : str, default="system"
        Who or what posted it.
    description : str, optional
        Free text for statements (no PHI beyond what the invoice shows).
    facility_id : str, optional
        Facility the event belongs to.

    Returns
    -------
    JournalEntry
        The new entry, or the existing one when ``(kind, source_ref, discriminator)`` was
        already posted with the same lines (re-posting is a no-op).

    Raises
    ------
    InvalidInputError
        Debits ≠ credits, a negative, float or sub-cent amount, mixed currencies, a
        missing or malformed source, or an account kept in another currency; nothing is
        written.
    ConflictError
        The same source was already posted with other amounts.
    NotFoundError
        A new A/R account names a Patient or payer Organization that does not exist.

    Examples
    --------
    >>> post_journal(  # doctest: +SKIP
    ...     session, kind="patient_payment", source_ref="PaymentReconciliation/pr-1",
    ...     at=now, currency="USD",
    ...     lines=[debit("cash", Decimal("20.00")),
    ...            credit(patient_ar(patient.id), Decimal("20.00"))])
    """
    spec = JournalSpec(
        kind=kind,
        source_ref=source_ref,
        at=at,
        lines=lines,
        currency=currency,
        discriminator=discriminator,
        created_by=created_by,
        description=description,
        facility_id=facility_id,
    )
    post_journals(session, [spec])
    entry = session.get(JournalEntry, spec.id)
    if entry is None:  # pragma: no cover - just inserted
        raise NotFoundError(f"journal entry {spec.id} vanished")
    return entry


def reverse_journal(
    session: Session,
    entry_id: str,
    *,
    at: dt.datetime | None = None,
    created_by: str = "system",
    reason: str | None = None,
) -> JournalEntry:
    """Post the reversal of an entry: the same lines with debits and credits swapped.

    The ledger is append-only; a wrong entry is corrected by reversing it and posting
    the right one. Reversing twice is a no-op (the reversal's key is the entry id).

    Parameters
    ----------
    session : Session
        The caller's session.
    entry_id : str
        The entry to reverse.
    at : datetime, optional
        When; default now.
    created_by : str, default="system"
        Who reversed it.
    reason : str, optional
        Why (stored as the description).

    Returns
    -------
    JournalEntry
        The reversal (kind ``reversal``, same ``source_ref``).

    Raises
    ------
    NotFoundError
        No such entry.
    InvalidInputError
        The entry is itself a reversal.
    """
    entry = session.get(JournalEntry, entry_id)
    if entry is None:
        raise NotFoundError(f"journal entry {entry_id} does not exist")
    if entry.kind == JournalKind.REVERSAL:
        raise InvalidInputError(f"journal entry {entry_id} is a reversal: post the entry again")
    lines = [
        Line(p.account_id, debit=p.credit, credit=p.debit, claim_id=p.claim_id)
        for p in entry.postings
    ]
    return post_journal(
        session,
        kind=JournalKind.REVERSAL,
        source_ref=entry.source_ref,
        discriminator=f"reversal:{entry.id}",
        at=at or utcnow(),
        lines=lines,
        currency=entry.postings[0].currency,
        created_by=created_by,
        description=reason or f"reversal of {entry.kind} {entry.id}",
        facility_id=entry.facility_id,
    )


# --------------------------------------------------------------------------- sums


def _sum(session: Session, column: Any) -> ColumnElement[Any]:
    """Return a SUM of a Money column that is exact on every backend.

    SQLite stores ``Numeric`` as binary floating point, so its SUM would accumulate
    rounding error; there the amounts are summed as integer cents.
    """
    if session.get_bind().dialect.name == "sqlite":
        return func.sum(cast(func.round(column * 100), Integer))
    return func.sum(column)


def _money(session: Session, value: Any) -> Decimal:
    if value is None:
        return ZERO
    if session.get_bind().dialect.name == "sqlite":
        return (Decimal(int(value)) / 100).quantize(CENT)
    return Decimal(value).quantize(CENT)


def trial_balance(session: Session, *, as_of: dt.datetime | None = None) -> dict[str, Any]:
    """Total debits and credits of the ledger, and whether every entry balances.

    Parameters
    ----------
    session : Session
        The caller's session.
    as_of : datetime, optional
        Only entries with ``at`` ≤ ``as_of``; default all.

    Returns
    -------
    dict
        ``debits`` and ``credits`` (Decimal, all currencies added: meaningful with one
        currency), ``balanced`` (debits = credits in every currency **and** in every
        journal entry), ``by_currency`` ({currency: {debits, credits, balanced}}),
        ``entries`` (count) and ``unbalanced_entries`` (ids, at most 20; always empty
        unless the tables were written around :func:`post_journals`).
    """
    session.flush()
    posting = LedgerPosting.__table__
    entry = JournalEntry.__table__
    joined = posting.join(entry, posting.c.journal_entry_id == entry.c.id)
    where = [entry.c.at <= as_of] if as_of is not None else []
    by_currency: dict[str, dict[str, Any]] = {}
    rows = session.execute(
        select(posting.c.currency, _sum(session, posting.c.debit), _sum(session, posting.c.credit))
        .select_from(joined)
        .where(*where)
        .group_by(posting.c.currency)
    )
    for currency, debits, credits in rows:
        dr, cr = _money(session, debits), _money(session, credits)
        by_currency[currency] = {"debits": dr, "credits": cr, "balanced": dr == cr}
    unbalanced = list(
        session.scalars(
            select(posting.c.journal_entry_id)
            .select_from(joined)
            .where(*where)
            .group_by(posting.c.journal_entry_id)
            .having(_sum(session, posting.c.debit) != _sum(session, posting.c.credit))
            .limit(20)
        )
    )
    entries = session.scalar(select(func.count()).select_from(entry).where(*where)) or 0
    total_dr = sum((v["debits"] for v in by_currency.values()), ZERO)
    total_cr = sum((v["credits"] for v in by_currency.values()), ZERO)
    return {
        "debits": total_dr,
        "credits": total_cr,
        "balanced": all(v["balanced"] for v in by_currency.values()) and not unbalanced,
        "by_currency": by_currency,
        "entries": int(entries),
        "unbalanced_entries": unbalanced,
    }


def balances(
    session: Session,
    *,
    kind: AccountKind | str | None = None,
    as_of: dt.datetime | None = None,
) -> dict[str, Decimal]:
    """Balance of every account (on its normal side), optionally of one kind.

    Parameters
    ----------
    session : Session
        The caller's session.
    kind : AccountKind or str, optional
        Only accounts of this kind.
    as_of : datetime, optional
        Only entries with ``at`` ≤ ``as_of``.

    Returns
    -------
    dict of str to Decimal
        Account id → balance: debits − credits for debit-normal accounts (A/R, cash,
        allowances), credits − debits for revenue and liabilities. Accounts with no
        postings are left out.
    """
    session.flush()
    posting = LedgerPosting.__table__
    account = Account.__table__
    entry = JournalEntry.__table__
    stmt = (
        select(
            posting.c.account_id,
            account.c.normal_balance,
            _sum(session, posting.c.debit),
            _sum(session, posting.c.credit),
        )
        .select_from(
            posting.join(account, posting.c.account_id == account.c.id).join(
                entry, posting.c.journal_entry_id == entry.c.id
            )
        )
        .group_by(posting.c.account_id, account.c.normal_balance)
    )
    if kind is not None:
        stmt = stmt.where(account.c.kind == str(AccountKind(kind)))
    if as_of is not None:
        stmt = stmt.where(entry.c.at <= as_of)
    out: dict[str, Decimal] = {}
    for account_id_, normal, debits, credits in session.execute(stmt):
        dr, cr = _money(session, debits), _money(session, credits)
        out[account_id_] = dr - cr if normal == "debit" else cr - dr
    return out


def account_balance(session: Session, account: str, *, as_of: dt.datetime | None = None) -> Decimal:
    """Balance of one account on its normal side (see :func:`balances`); 0.00 if unused.

    Raises
    ------
    InvalidInputError
        If ``account`` is not a ledger account id.
    """
    kind, _ = _parse_account(account)
    return balances(session, kind=kind, as_of=as_of).get(account, ZERO)


# --------------------------------------------------------------------------- flows


def _when(*candidates: dt.datetime | None) -> dt.datetime:
    for candidate in candidates:
        if candidate is not None:
            return candidate
    return utcnow()


def post_charge(
    session: Session, charge: ChargeItem, *, created_by: str = "charge-capture"
) -> JournalEntry | None:
    """Post a captured charge: Dr unbilled_ar / Cr revenue (source ``ChargeItem/id``).

    Parameters
    ----------
    session : Session
        The caller's session; ``charge`` must be flushed.
    charge : ChargeItem
        A ``billable`` (or ``billed``) charge with ``total`` and ``currency``.
    created_by : str, default="charge-capture"
        Who posted it.

    Returns
    -------
    JournalEntry or None
        The entry (the existing one on a repeat); ``None`` for a zero total or a charge
        that is not billable (planned, aborted, entered-in-error …). A negative total (a
        credit charge) posts Dr revenue / Cr unbilled_ar.
    """
    if charge.status not in (ChargeItemStatus.BILLABLE, ChargeItemStatus.BILLED):
        return None
    total = Decimal(charge.total).quantize(CENT)
    if total == 0:
        return None
    amount = abs(total)
    unbilled, revenue = account_id(AccountKind.UNBILLED_AR), account_id(AccountKind.REVENUE)
    lines = (
        [debit(unbilled, amount), credit(revenue, amount)]
        if total > 0
        else [debit(revenue, amount), credit(unbilled, amount)]
    )
    return post_journal(
        session,
        kind=JournalKind.CHARGE,
        source_ref=f"ChargeItem/{charge.id}",
        at=_when(charge.occurred_at, charge.entered_at),
        lines=lines,
        currency=charge.currency,
        created_by=created_by,
        description=f"charge {charge.code_system}|{charge.code}"[:512],
        facility_id=charge.facility_id,
    )


@dataclass(frozen=True)
class _ClaimRow:
    id: str
    patient_id: str
    insurer_id: str | None
    billing_status: str | None
    related_claim_id: str | None
    currency: str | None
    total: Decimal | None
    created: dt.datetime | None
    submitted_at: dt.datetime | None
    facility_id: str | None
    billable_start: dt.datetime | None


def _claim_rows(session: Session, claim_ids: Sequence[str]) -> dict[str, _ClaimRow]:
    table = Claim.__table__
    columns = [table.c[f.name] for f in dataclasses.fields(_ClaimRow)]
    found: dict[str, _ClaimRow] = {}
    ids = list(dict.fromkeys(claim_ids))
    for chunk in id_batches(session, ids):
        for row in session.execute(select(*columns).where(in_ids(session, table.c.id, chunk))):
            found[row.id] = _ClaimRow(*row)
    return found


def post_claim_charges(
    session: Session, claim_ids: Sequence[str], *, created_by: str = "billing"
) -> int:
    """Post the charges of claims entering the revenue cycle (bulk; see module table).

    A line built from a ChargeItem (``ClaimItem.charge_item_id``) moves the charge from
    unbilled to payer A/R (``claim_submission``: Dr payer_ar / Cr unbilled_ar; if the
    line's ``net`` differs from the ChargeItem's total, the difference goes to revenue).
    Lines with no ChargeItem (imported claims) are charged now (``charge``: Dr payer_ar /
    Cr revenue). A corrected claim (``related_claim_id``) posts nothing: its lines were
    charged on the original. Claims with no ``billing_status`` (record only) or in
    ``draft`` are skipped.

    Parameters
    ----------
    session : Session
        The caller's session (flushed, never committed).
    claim_ids : sequence of str
        Claim ids (stored).
    created_by : str, default="billing"
        Who posted.

    Returns
    -------
    int
        Journal entries written now (0 when all were posted before).

    Raises
    ------
    InvalidInputError
        A claim in the cycle names no payer or no currency, its ``total`` disagrees with
        the sum of its lines, or a line's ChargeItem is missing or in another currency;
        nothing is written.
    ConflictError
        A claim was charged before with another amount (a submitted claim is changed
        by a corrected claim, not in place).
    """
    session.flush()
    claims = _claim_rows(session, claim_ids)
    missing = [c for c in claim_ids if c not in claims]
    if missing:
        raise NotFoundError(f"Claim/{missing[0]} does not exist")
    billable = [
        c for c in claims.values() if c.billing_status in _IN_CYCLE and c.related_claim_id is None
    ]
    if not billable:
        return 0
    items = ClaimItem.__table__
    charges = ChargeItem.__table__
    lines_by_claim: dict[str, list[tuple[int, Decimal | None, str | None]]] = defaultdict(list)
    ids = [c.id for c in billable]
    for chunk in id_batches(session, ids):
        for claim_id_, sequence, net, charge_item_id in session.execute(
            select(items.c.claim_id, items.c.sequence, items.c.net, items.c.charge_item_id).where(
                in_ids(session, items.c.claim_id, chunk)
            )
        ):
            lines_by_claim[claim_id_].append((sequence, net, charge_item_id))
    charge_ids = sorted({c for lines in lines_by_claim.values() for _, _, c in lines if c})
    charge_totals: dict[str, tuple[Decimal, str]] = {}
    for chunk in id_batches(session, charge_ids):
        for cid, total, currency in session.execute(
            select(charges.c.id, charges.c.total, charges.c.currency).where(
                in_ids(session, charges.c.id, chunk)
            )
        ):
            charge_totals[cid] = (Decimal(total).quantize(CENT), currency)
    specs: list[JournalSpec] = []
    for claim in billable:
        label = f"Claim/{claim.id}"
        if not claim.insurer_id:
            raise InvalidInputError(f"{label} is in the revenue cycle but names no payer")
        lines = lines_by_claim.get(claim.id, [])
        currency = claim.currency
        if currency is None:
            raise InvalidInputError(f"{label} has no currency: give Claim.total with one")
        if lines and any(net is None for _, net, _ in lines):
            raise InvalidInputError(f"{label}: every line needs a net amount")
        line_total = sum((Decimal(n).quantize(CENT) for _, n, _ in lines if n is not None), ZERO)
        claim_total = Decimal(claim.total).quantize(CENT) if claim.total is not None else None
        if lines and claim_total is not None and claim_total != line_total:
            raise InvalidInputError(f"{label}: total {claim_total} ≠ sum of its lines {line_total}")
        if not lines and claim_total is None:
            raise InvalidInputError(f"{label} has neither lines nor a total to charge")
        payer = payer_ar(claim.insurer_id)
        at = _when(claim.submitted_at, claim.created)
        from_charges = ZERO
        price_difference = ZERO
        new_revenue = ZERO if lines else (claim_total or ZERO)
        for sequence, net, charge_item_id in lines:
            net_amount = Decimal(net or 0).quantize(CENT)
            if charge_item_id is None:
                new_revenue += net_amount
                continue
            found = charge_totals.get(charge_item_id)
            if found is None:
                raise InvalidInputError(
                    f"{label} line {sequence}: ChargeItem/{charge_item_id} does not exist"
                )
            if found[1] != currency:
                raise InvalidInputError(
                    f"{label} line {sequence}: ChargeItem/{charge_item_id} is in {found[1]}, "
                    f"the claim in {currency}"
                )
            from_charges += found[0]
            price_difference += net_amount - found[0]
        common: dict[str, Any] = {
            "source_ref": label,
            "at": at,
            "currency": currency,
            "created_by": created_by,
            "facility_id": claim.facility_id,
        }
        if new_revenue != 0:
            specs.append(
                JournalSpec(
                    kind=JournalKind.CHARGE,
                    lines=_pair(payer, account_id(AccountKind.REVENUE), new_revenue, claim.id),
                    description=f"claim charges to {claim.insurer_id}",
                    **common,
                )
            )
        if from_charges != 0 or price_difference != 0:
            submission: list[Line] = []
            if from_charges != 0:
                submission += _pair(
                    payer, account_id(AccountKind.UNBILLED_AR), from_charges, claim.id
                )
            if price_difference != 0:
                submission += _pair(
                    payer, account_id(AccountKind.REVENUE), price_difference, claim.id
                )
            specs.append(
                JournalSpec(
                    kind=JournalKind.CLAIM_SUBMISSION,
                    lines=submission,
                    description=f"claim submitted to {claim.insurer_id}",
                    **common,
                )
            )
    return len(post_journals(session, specs))


def _pair(debit_account: str, credit_account: str, amount: Decimal, claim_id: str) -> list[Line]:
    """Dr ``debit_account`` / Cr ``credit_account``; a negative amount swaps the sides."""
    if amount < 0:
        debit_account, credit_account, amount = credit_account, debit_account, -amount
    return [
        debit(debit_account, amount, claim_id=claim_id),
        credit(credit_account, amount, claim_id=claim_id),
    ]


def post_claim_charge(session: Session, claim: Claim, *, created_by: str = "billing") -> int:
    """Post one claim's charge or submission (see :func:`post_claim_charges`).

    Call it when a claim is submitted (``billing_status`` ``submitted``).

    Returns
    -------
    int
        Entries written now.

    Raises
    ------
    InvalidInputError, ConflictError
        As :func:`post_claim_charges`.
    """
    return post_claim_charges(session, [claim.id], created_by=created_by)


def record_billing_status(
    session: Session,
    changes: Sequence[tuple[str, str | None, str, str | None, dt.datetime]],
    *,
    actor: str,
) -> None:
    """Set claims' ``billing_status`` and append one ``ClaimStatusHistory`` row each.

    Parameters
    ----------
    session : Session
        The caller's session.
    changes : sequence of (claim_id, from_status, to_status, reason, at)
        Applied in order (a claim may move twice, e.g. denied then resubmitted).
    actor : str
        Who made the change (``"remittance"``, a user id …).
    """
    if not changes:
        return
    session.flush()
    final: dict[str, str] = {}
    for claim_id_, _, to_status, _, _ in changes:
        final[claim_id_] = to_status
    table = cast_table(Claim.__table__)
    for status in set(final.values()):
        ids = [c for c, s in final.items() if s == status]
        for chunk in id_batches(session, ids):
            session.execute(
                update(table)
                .where(in_ids(session, table.c.id, chunk))
                .values(billing_status=status)
            )
    bulk_insert(
        session,
        ClaimStatusHistory.__table__,  # type: ignore[arg-type]
        [
            {
                "claim_id": claim_id_,
                "from_status": from_status,
                "to_status": to_status,
                "actor": actor,
                "role": None,
                "reason": reason[:512] if reason else None,
                "at": at,
            }
            for claim_id_, from_status, to_status, reason, at in changes
        ],
    )
    changed = set(final)
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Claim) and obj.id in changed:
            session.expire(obj, ["billing_status"])


def claim_open_balance(
    session: Session, claim_id: str, *, as_of: dt.datetime | None = None
) -> Decimal:
    """Open payer A/R of a claim (charges − payments − adjustments − write-offs).

    For a corrected claim, the balance sits on its original (pass the original's id).
    """
    posting = LedgerPosting.__table__
    account = Account.__table__
    entry = JournalEntry.__table__
    stmt = (
        select(_sum(session, posting.c.debit), _sum(session, posting.c.credit))
        .select_from(
            posting.join(account, posting.c.account_id == account.c.id).join(
                entry, posting.c.journal_entry_id == entry.c.id
            )
        )
        .where(account.c.kind == AccountKind.PAYER_AR.value, posting.c.claim_id == claim_id)
    )
    if as_of is not None:
        stmt = stmt.where(entry.c.at <= as_of)
    row = session.execute(stmt).one()
    return _money(session, row[0]) - _money(session, row[1])


def write_off_claim(
    session: Session,
    claim_id: str,
    *,
    actor: str,
    reason: str,
    at: dt.datetime | None = None,
    amount: Decimal | None = None,
) -> JournalEntry:
    """Write off (part of) a claim's open payer A/R: Dr denial_write_off / Cr payer_ar.

    Parameters
    ----------
    session : Session
        The caller's session.
    claim_id : str
        The claim (for a corrected claim, its original carries the balance and is
        written off instead).
    actor : str
        Who decided (recorded on the entry and in the status history).
    reason : str
        Why (e.g. "CO-29 timely filing limit passed, appeal lost").
    at : datetime, optional
        When; default now.
    amount : Decimal, optional
        Default: the whole open balance; at most the open balance.

    Returns
    -------
    JournalEntry
        Kind ``write_off``, source ``Claim/<id>``; the claim moves to ``written-off``
        when nothing remains open.

    Raises
    ------
    NotFoundError
        No such claim.
    InvalidInputError
        Nothing open, or ``amount`` above the open balance or not positive.
    """
    claim = session.get(Claim, claim_id)
    if claim is None:
        raise NotFoundError(f"Claim/{claim_id} does not exist")
    target = claim
    if claim.related_claim_id:
        original = session.get(Claim, claim.related_claim_id)
        if original is not None:
            target = original
    if not target.insurer_id or not target.currency:
        raise InvalidInputError(f"Claim/{target.id} has no payer or currency to write off")
    at = at or utcnow()
    open_balance = claim_open_balance(session, target.id)
    amount = open_balance if amount is None else _check_amount(amount, f"Claim/{target.id}")
    if amount <= 0 or amount > open_balance:
        raise InvalidInputError(
            f"Claim/{target.id}: cannot write off {amount}; its open balance is {open_balance}"
        )
    count = session.scalar(
        select(func.count())
        .select_from(JournalEntry)
        .where(
            JournalEntry.kind == JournalKind.WRITE_OFF.value,
            JournalEntry.source_ref == f"Claim/{target.id}",
        )
    )
    entry = post_journal(
        session,
        kind=JournalKind.WRITE_OFF,
        source_ref=f"Claim/{target.id}",
        discriminator=f"write-off:{(count or 0) + 1}",
        at=at,
        lines=[
            debit(account_id(AccountKind.DENIAL_WRITE_OFF), amount, claim_id=target.id),
            credit(payer_ar(target.insurer_id), amount, claim_id=target.id),
        ],
        currency=target.currency,
        created_by=actor,
        description=reason,
        facility_id=target.facility_id,
    )
    if amount == open_balance:
        changes = [
            (c.id, c.billing_status, ClaimBillingStatus.WRITTEN_OFF.value, reason, at)
            for c in {target.id: target, claim.id: claim}.values()
            if c.billing_status != ClaimBillingStatus.WRITTEN_OFF
        ]
        record_billing_status(session, changes, actor=actor)
    return entry


def post_patient_payment(
    session: Session,
    patient_id: str,
    amount: Decimal,
    *,
    source_ref: str,
    at: dt.datetime,
    currency: str | None = None,
    created_by: str = "cashier",
    description: str | None = None,
) -> JournalEntry:
    """Post a payment by the patient: Dr cash / Cr patient_ar.

    Parameters
    ----------
    session : Session
        The caller's session.
    patient_id : str
        The paying patient.
    amount : Decimal
        Positive, to the cent. Paying more than is owed leaves a credit balance, which
        :func:`statement` shows as ``credit_balance`` (refund it with :func:`post_refund`).
    source_ref : str
        The payment event, e.g. ``"PaymentReconciliation/<id>"`` or ``"Invoice/<id>"``.
    at : datetime
        When the money was received (aware): not in the future (beyond a five-minute
        clock skew) and not before ``Settings.leakage_billing_start``
        (:func:`~healthos_core.billing.money.check_payment_time`).
    currency : str or None, default=None
        ISO 4217; must be the ledger currency
        (:func:`~healthos_core.billing.money.ledger_currency`), which ``None`` means.
    created_by : str, default="cashier"
        Who took it.
    description : str, optional
        Shown on the statement.

    Returns
    -------
    JournalEntry

    Raises
    ------
    InvalidInputError
        Non-positive amount, missing source, a currency other than the ledger's, or a
        time in the future or before billing started; nothing is written.
    """
    currency = check_currency(currency, field="currency")
    check_payment_time(at, field="at")
    amount = _check_amount(amount, f"payment by Patient/{patient_id}")
    if amount == 0:
        raise InvalidInputError("a patient payment must be positive")
    return post_journal(
        session,
        kind=JournalKind.PATIENT_PAYMENT,
        source_ref=source_ref,
        at=at,
        lines=[debit(account_id(AccountKind.CASH), amount), credit(patient_ar(patient_id), amount)],
        currency=currency,
        created_by=created_by,
        description=description or "payment, thank you",
    )


def post_refund(
    session: Session,
    patient_id: str,
    amount: Decimal,
    *,
    source_ref: str,
    at: dt.datetime,
    currency: str | None = None,
    payable: bool = False,
    created_by: str = "cashier",
) -> JournalEntry:
    """Refund a patient's credit balance: Dr patient_ar / Cr cash (or refunds_payable).

    Parameters
    ----------
    session : Session
        The caller's session.
    patient_id : str
        The patient.
    amount : Decimal
        Positive, at most the patient's credit balance (overpayment).
    source_ref : str
        The refund event (e.g. ``"PaymentReconciliation/<id>"``).
    at : datetime
        When (aware); the same bounds as a payment's
        (:func:`~healthos_core.billing.money.check_payment_time`).
    currency : str or None, default=None
        ISO 4217; must be the ledger currency, which ``None`` means.
    payable : bool, default=False
        ``True`` books the refund as owed (``refunds_payable``) rather than paid.
    created_by : str, default="cashier"
        Who refunded.

    Returns
    -------
    JournalEntry

    Raises
    ------
    InvalidInputError
        Amount not positive or above the credit balance, a currency other than the
        ledger's, or a time in the future or before billing started; nothing is written.
    """
    currency = check_currency(currency, field="currency")
    check_payment_time(at, field="at")
    amount = _check_amount(amount, f"refund to Patient/{patient_id}")
    account = patient_ar(patient_id)
    lock_rows(session, Base.metadata.tables["patient"], [patient_id])  # balance read to write
    credit_balance = -account_balance(session, account)
    if amount == 0 or amount > credit_balance:
        raise InvalidInputError(
            f"refund {amount} to Patient/{patient_id} exceeds the credit balance "
            f"{max(credit_balance, ZERO)}: only an overpayment is refunded"
        )
    target = account_id(AccountKind.REFUNDS_PAYABLE if payable else AccountKind.CASH)
    return post_journal(
        session,
        kind=JournalKind.REFUND,
        source_ref=source_ref,
        at=at,
        lines=[debit(account, amount), credit(target, amount)],
        currency=currency,
        created_by=created_by,
        description="refund of overpayment",
    )


# --------------------------------------------------------------------------- aging


def _bucket(days: int) -> str:
    for label, low, high in AGING_BUCKETS:
        if days >= low and (high is None or days <= high):
            return label
    return AGING_BUCKETS[0][0]  # a future service date counts as current


def _empty_buckets() -> dict[str, Decimal]:
    return {label: ZERO for label, _, _ in AGING_BUCKETS}


def ar_aging(session: Session, *, as_of: dt.datetime, by: str = "payer") -> dict[str, Any]:
    """A/R aging: open receivables in buckets of 0–30, 31–60, 61–90, 91–120, 120+ days.

    Parameters
    ----------
    session : Session
        The caller's session.
    as_of : datetime
        The aging date (aware); entries after it are ignored.
    by : {"payer", "patient"}, default="payer"
        ``payer``: each claim's open payer A/R, aged from its service date
        (``Claim.billable_start``, else its submission), summed per payer.
        ``patient``: each patient's balance; payments settle the oldest items first
        (FIFO) and the remaining items are aged from their claim's service date (or the
        entry date when no claim is behind them). A credit balance counts in ``0-30``.

    Returns
    -------
    dict
        ``as_of`` (ISO date), ``by``, ``buckets`` (labels), ``rows``: a list of
        ``{"payer_id" | "patient_id", "currency", "<bucket>": Decimal …, "total"}``
        sorted by id, and ``totals``: {currency: {"<bucket>": Decimal …, "total"}}.

    Raises
    ------
    InvalidInputError
        Unknown ``by`` or a naive ``as_of``.
    """
    if by not in ("payer", "patient"):
        raise InvalidInputError(f"aging by {by!r}: use 'payer' or 'patient'")
    if as_of.utcoffset() is None:
        raise InvalidInputError("as_of must be an aware datetime")
    session.flush()
    today = as_of.astimezone(dt.UTC).date()
    grouped: dict[tuple[str, str], dict[str, Decimal]] = {}
    if by == "payer":
        items = _payer_open_items(session, as_of)
    else:
        items = _patient_open_items(session, as_of)
    for owner, currency, service_date, amount in items:
        buckets = grouped.setdefault((owner, currency), _empty_buckets())
        buckets[_bucket((today - service_date).days)] += amount
    rows: list[dict[str, Any]] = []
    totals: dict[str, dict[str, Decimal]] = {}
    for (owner, currency), buckets in sorted(grouped.items()):
        total = sum(buckets.values(), ZERO)
        rows.append({f"{by}_id": owner, "currency": currency, **buckets, "total": total})
        into = totals.setdefault(currency, {**_empty_buckets(), "total": ZERO})
        for label, value in buckets.items():
            into[label] += value
        into["total"] += total
    return {
        "as_of": today.isoformat(),
        "by": by,
        "buckets": [label for label, _, _ in AGING_BUCKETS],
        "rows": rows,
        "totals": totals,
    }


def _service_dates(session: Session, claim_ids: Iterable[str]) -> dict[str, dt.date]:
    table = Claim.__table__
    ids = sorted(set(claim_ids))
    out: dict[str, dt.date] = {}
    for chunk in id_batches(session, ids):
        for cid, begin, submitted, created in session.execute(
            select(table.c.id, table.c.billable_start, table.c.submitted_at, table.c.created).where(
                in_ids(session, table.c.id, chunk)
            )
        ):
            when = begin or submitted or created
            if when is not None:
                out[cid] = when.astimezone(dt.UTC).date()
    return out


def _payer_open_items(
    session: Session, as_of: dt.datetime
) -> list[tuple[str, str, dt.date, Decimal]]:
    posting = LedgerPosting.__table__
    account = Account.__table__
    entry = JournalEntry.__table__
    rows = session.execute(
        select(
            account.c.payer_id,
            posting.c.currency,
            posting.c.claim_id,
            _sum(session, posting.c.debit),
            _sum(session, posting.c.credit),
            func.min(entry.c.at),
        )
        .select_from(
            posting.join(account, posting.c.account_id == account.c.id).join(
                entry, posting.c.journal_entry_id == entry.c.id
            )
        )
        .where(account.c.kind == AccountKind.PAYER_AR.value, entry.c.at <= as_of)
        .group_by(account.c.payer_id, posting.c.currency, posting.c.claim_id)
    ).all()
    dates = _service_dates(session, [r[2] for r in rows if r[2]])
    items = []
    for payer, currency, claim_id_, debits, credits, first_at in rows:
        amount = _money(session, debits) - _money(session, credits)
        if amount == 0:
            continue
        when = dates.get(claim_id_) if claim_id_ else None
        items.append((payer, currency, when or first_at.astimezone(dt.UTC).date(), amount))
    return items


def _patient_open_items(
    session: Session, as_of: dt.datetime
) -> list[tuple[str, str, dt.date, Decimal]]:
    posting = LedgerPosting.__table__
    account = Account.__table__
    entry = JournalEntry.__table__
    rows = session.execute(
        select(
            account.c.patient_id,
            posting.c.currency,
            posting.c.claim_id,
            posting.c.debit,
            posting.c.credit,
            entry.c.at,
            posting.c.id,
        )
        .select_from(
            posting.join(account, posting.c.account_id == account.c.id).join(
                entry, posting.c.journal_entry_id == entry.c.id
            )
        )
        .where(account.c.kind == AccountKind.PATIENT_AR.value, entry.c.at <= as_of)
        .order_by(account.c.patient_id, entry.c.at, posting.c.id)
    ).all()
    dates = _service_dates(session, [r[2] for r in rows if r[2]])
    per_patient: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in rows:
        per_patient[(row[0], row[1])].append(row)
    items: list[tuple[str, str, dt.date, Decimal]] = []
    for (patient, currency), postings in per_patient.items():
        open_items: list[list[Any]] = []  # [date, remaining]
        credit_pool = ZERO
        for _, _, claim_id_, dr, cr, at, _ in postings:
            dr = Decimal(dr).quantize(CENT)
            cr = Decimal(cr).quantize(CENT)
            if dr > 0:
                when = dates.get(claim_id_) if claim_id_ else None
                open_items.append([when or at.astimezone(dt.UTC).date(), dr])
            credit_pool += cr
            # FIFO: credits settle the oldest open items.
            while credit_pool > 0 and open_items:
                take = min(credit_pool, open_items[0][1])
                open_items[0][1] -= take
                credit_pool -= take
                if open_items[0][1] == 0:
                    open_items.pop(0)
        for when, remaining in open_items:
            items.append((patient, currency, when, remaining))
        if credit_pool > 0:
            items.append((patient, currency, as_of.astimezone(dt.UTC).date(), -credit_pool))
    return items


# --------------------------------------------------------------------------- invoices


def build_invoice(
    session: Session,
    patient_id: str,
    *,
    at: dt.datetime | None = None,
    self_pay: bool = False,
    created_by: str = "billing",
) -> Invoice | None:
    """Invoice the patient for everything owed and not yet invoiced.

    Collects every patient A/R debit (patient responsibility from remittances, PR-1/2/3)
    not on an earlier invoice. With ``self_pay=True`` it first moves the patient's
    billable charges that are on no claim from unbilled A/R to the patient
    (``patient_responsibility``, source ``ChargeItem/id``: Dr patient_ar / Cr
    unbilled_ar) — for a patient without insurance.

    Parameters
    ----------
    session : Session
        The caller's session (flushed, never committed).
    patient_id : str
        The patient.
    at : datetime, optional
        Issue time; default now.
    self_pay : bool, default=False
        Bill the patient's unclaimed charges to the patient.
    created_by : str, default="billing"
        Who issued it.

    Returns
    -------
    Invoice or None
        The invoice with its lines (amounts in the patient A/R currency), or ``None``
        when nothing is left to invoice.

    Raises
    ------
    InvalidInputError
        The items are in more than one currency (invoice each separately).
    """
    at = at or utcnow()
    session.flush()
    if self_pay:
        _move_self_pay_charges(session, patient_id, at=at, created_by=created_by)
    posting = LedgerPosting.__table__
    entry = JournalEntry.__table__
    invoiced = select(InvoiceLine.__table__.c.posting_id)
    rows = session.execute(
        select(
            posting.c.id,
            posting.c.debit,
            posting.c.currency,
            posting.c.claim_id,
            entry.c.source_ref,
            entry.c.description,
            entry.c.at,
        )
        .select_from(posting.join(entry, posting.c.journal_entry_id == entry.c.id))
        .where(
            posting.c.account_id == patient_ar(patient_id),
            posting.c.debit > 0,
            entry.c.kind != JournalKind.REFUND.value,
            entry.c.kind != JournalKind.REVERSAL.value,
            posting.c.id.not_in(invoiced),
            entry.c.at <= at,
        )
        .order_by(entry.c.at, posting.c.id)
    ).all()
    if not rows:
        return None
    currencies = {r.currency for r in rows}
    if len(currencies) > 1:
        raise InvalidInputError(
            f"Patient/{patient_id} owes in {', '.join(sorted(currencies))}: one invoice "
            "per currency"
        )
    dates = _service_dates(session, [r.claim_id for r in rows if r.claim_id])
    invoice = Invoice(
        id=str(uuid.uuid4()),
        patient_id=patient_id,
        issued_at=at,
        currency=rows[0].currency,
        total=sum((Decimal(r.debit).quantize(CENT) for r in rows), ZERO),
        status="issued",
        created_by=created_by,
    )
    for sequence, row in enumerate(rows, start=1):
        invoice.lines.append(
            InvoiceLine(
                sequence=sequence,
                posting_id=row.id,
                source_ref=row.source_ref,
                claim_id=row.claim_id,
                service_date=dates.get(row.claim_id) if row.claim_id else row.at.date(),
                description=row.description,
                amount=Decimal(row.debit).quantize(CENT),
                currency=row.currency,
            )
        )
    session.add(invoice)
    session.flush()
    return invoice


def _move_self_pay_charges(
    session: Session, patient_id: str, *, at: dt.datetime, created_by: str
) -> None:
    charges = ChargeItem.__table__
    on_claims = select(ClaimItem.__table__.c.charge_item_id).where(
        ClaimItem.__table__.c.charge_item_id.is_not(None)
    )
    entry = JournalEntry.__table__
    charged = select(entry.c.source_ref).where(entry.c.kind == JournalKind.CHARGE.value)
    rows = session.execute(
        select(
            charges.c.id, charges.c.total, charges.c.currency, charges.c.code, charges.c.facility_id
        ).where(
            charges.c.patient_id == patient_id,
            charges.c.status == ChargeItemStatus.BILLABLE.value,
            charges.c.id.not_in(on_claims),
            ("ChargeItem/" + charges.c.id).in_(charged),
        )
    ).all()
    specs = [
        JournalSpec(
            kind=JournalKind.PATIENT_RESPONSIBILITY,
            source_ref=f"ChargeItem/{row.id}",
            discriminator="self-pay",
            at=at,
            lines=[
                debit(patient_ar(patient_id), Decimal(row.total).quantize(CENT)),
                credit(account_id(AccountKind.UNBILLED_AR), Decimal(row.total).quantize(CENT)),
            ],
            currency=row.currency,
            created_by=created_by,
            description=f"self-pay charge {row.code}",
            facility_id=row.facility_id,
        )
        for row in rows
        if Decimal(row.total) > 0
    ]
    post_journals(session, specs)


def statement(session: Session, patient_id: str, *, as_of: dt.datetime) -> dict[str, Any]:
    """Return a patient statement: activity on the patient's account up to ``as_of``.

    Parameters
    ----------
    session : Session
        The caller's session.
    patient_id : str
        The patient.
    as_of : datetime
        Statement date (aware).

    Returns
    -------
    dict
        ``patient_id``, ``as_of`` (ISO date), ``currency`` (the account's; None if no activity),
        ``lines``: [{``date``, ``description``, ``source_ref``, ``charges``, ``credits``,
        ``balance``}] in time order (Decimal amounts; ``balance`` running, positive =
        owed, negative = a credit), ``balance_due`` (what the patient owes, never
        negative), ``credit_balance`` (what the account holds for the patient, never
        negative: an overpayment, to refund with :func:`post_refund` or apply to later
        charges; at most one of the two is non-zero), ``aging`` (buckets of the open
        items, see :func:`ar_aging`), ``invoices`` ([{id, issued_at, total}]).
    """
    if as_of.utcoffset() is None:
        raise InvalidInputError("as_of must be an aware datetime")
    session.flush()
    posting = LedgerPosting.__table__
    entry = JournalEntry.__table__
    rows = session.execute(
        select(
            entry.c.at,
            entry.c.description,
            entry.c.source_ref,
            posting.c.debit,
            posting.c.credit,
            posting.c.currency,
        )
        .select_from(posting.join(entry, posting.c.journal_entry_id == entry.c.id))
        .where(posting.c.account_id == patient_ar(patient_id), entry.c.at <= as_of)
        .order_by(entry.c.at, posting.c.id)
    ).all()
    balance = ZERO
    lines = []
    for at, description, source_ref, dr, cr, _ in rows:
        dr, cr = Decimal(dr).quantize(CENT), Decimal(cr).quantize(CENT)
        balance += dr - cr
        lines.append(
            {
                "date": at.astimezone(dt.UTC).date().isoformat(),
                "description": description,
                "source_ref": source_ref,
                "charges": dr,
                "credits": cr,
                "balance": balance,
            }
        )
    aging = ar_aging(session, as_of=as_of, by="patient")
    mine = next((r for r in aging["rows"] if r["patient_id"] == patient_id), None)
    invoices = session.execute(
        select(Invoice.id, Invoice.issued_at, Invoice.total)
        .where(Invoice.patient_id == patient_id, Invoice.issued_at <= as_of)
        .order_by(Invoice.issued_at)
    ).all()
    return {
        "patient_id": patient_id,
        "as_of": as_of.astimezone(dt.UTC).date().isoformat(),
        "currency": session.scalar(  # the account's (re-opened ones: see _ensure_accounts)
            select(Account.__table__.c.currency).where(
                Account.__table__.c.id == patient_ar(patient_id)
            )
        )
        if rows
        else None,
        "lines": lines,
        "balance_due": max(balance, ZERO),
        "credit_balance": max(-balance, ZERO),
        "aging": {label: (mine or {}).get(label, ZERO) for label, _, _ in AGING_BUCKETS},
        "invoices": [
            {"id": i.id, "issued_at": i.issued_at.isoformat(), "total": i.total} for i in invoices
        ],
    }
