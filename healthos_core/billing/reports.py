"""Billing totals for finance: the figures of ``healthos billing report --json``.

Every amount comes from the ledger (:mod:`.ledger`) or, for amounts the ledger does not
post (denied, underpaid), from the stored adjudications (:mod:`.remittance`), and is
returned as a decimal string (``"1234.50"``), never a float.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.billing.entities import Claim, ClaimResponse
from healthos_core.billing.ledger import (
    AGING_BUCKETS,
    ZERO,
    Account,
    AccountKind,
    JournalEntry,
    JournalKind,
    LedgerPosting,
    _money,
    _sum,
    ar_aging,
    trial_balance,
)
from healthos_core.billing.remittance import (
    AdjudicationCategory,
    ClaimResponseAdjudication,
    _status_of_rows,
)
from healthos_core.db import utcnow
from healthos_core.record.entities import Organization

__all__ = ["billing_report", "initial_denial_rates"]

_RATE: Final = Decimal("0.0001")


def _text(amount: Decimal) -> str:
    return str(amount.quantize(Decimal("0.01")))


def _ledger_sum(
    session: Session,
    *,
    side: str,
    account_kind: AccountKind,
    entry_kinds: tuple[JournalKind, ...] | None = None,
    as_of: dt.datetime | None,
) -> Decimal:
    posting = LedgerPosting.__table__
    account = Account.__table__
    entry = JournalEntry.__table__
    column = posting.c.debit if side == "debit" else posting.c.credit
    stmt = (
        select(_sum(session, column))
        .select_from(
            posting.join(account, posting.c.account_id == account.c.id).join(
                entry, posting.c.journal_entry_id == entry.c.id
            )
        )
        .where(account.c.kind == account_kind.value)
    )
    if entry_kinds is not None:
        stmt = stmt.where(entry.c.kind.in_([k.value for k in entry_kinds]))
    if as_of is not None:
        stmt = stmt.where(entry.c.at <= as_of)
    return _money(session, session.scalar(stmt))


def _net(
    session: Session, account_kind: AccountKind, as_of: dt.datetime | None, *, debit_normal: bool
) -> Decimal:
    dr = _ledger_sum(session, side="debit", account_kind=account_kind, as_of=as_of)
    cr = _ledger_sum(session, side="credit", account_kind=account_kind, as_of=as_of)
    return dr - cr if debit_normal else cr - dr


def _adjudicated_sum(
    session: Session, category: AdjudicationCategory, as_of: dt.datetime | None
) -> Decimal:
    table = ClaimResponseAdjudication.__table__
    responses = ClaimResponse.__table__
    stmt = (
        select(_sum(session, table.c.amount))
        .select_from(table.join(responses, table.c.claim_response_id == responses.c.id))
        .where(table.c.category == category.value, table.c.item_sequence.is_not(None))
    )
    if as_of is not None:
        stmt = stmt.where(responses.c.created <= as_of)
    return _money(session, session.scalar(stmt))


def initial_denial_rates(
    session: Session, *, as_of: dt.datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Return the initial denial rate per payer, from the posted remittances.

    *Initial* claims are claims in the revenue cycle that are not corrected claims
    (no ``related_claim_id``) and have a posted ClaimResponse. A claim is *denied* when
    the payer denied it whole or rejected it: its latest response has outcome
    ``error``, or every submitted dollar denied, or a claim-level denial with nothing
    paid — the synthea-rcm README's ``denied`` label ("whole claim denied or
    rejected"). Partly denied claims and contractual CO-45 reductions are not denials
    (counting CO-45 inflates the rate by about an order of magnitude;
    ``../shared/billing-facts.md`` §1).

    Parameters
    ----------
    session : Session
        The caller's session.
    as_of : datetime, optional
        Only responses created up to then.

    Returns
    -------
    dict
        Payer Organization id → ``{"payer": name, "claims": int, "denied": int,
        "rate": "0.1023"}`` (rate = denied / claims, 4 decimals), plus ``"all"``.
    """
    claims = Claim.__table__
    responses = ClaimResponse.__table__
    stmt = (
        select(claims.c.id, claims.c.insurer_id, responses.c.id, responses.c.outcome)
        .select_from(claims.join(responses, responses.c.claim_id == claims.c.id))
        .where(
            claims.c.related_claim_id.is_(None),
            claims.c.billing_status.is_not(None),
            claims.c.billing_status != "draft",
        )
        .order_by(responses.c.created)
    )
    if as_of is not None:
        stmt = stmt.where(responses.c.created <= as_of)
    latest: dict[str, tuple[str | None, str, str | None]] = {}
    for claim_id, insurer_id, response_id, outcome in session.execute(stmt):
        latest[claim_id] = (insurer_id, response_id, outcome)
    denied_by_response = _status_of_rows(session, {r for _, r, _ in latest.values()})
    names = {
        row.id: row.name for row in session.execute(select(Organization.id, Organization.name))
    }
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for insurer_id, response_id, outcome in latest.values():
        key = insurer_id or "unknown"
        counts[key][0] += 1
        if outcome == "error" or denied_by_response.get(response_id, False):
            counts[key][1] += 1
    out: dict[str, dict[str, Any]] = {}
    total = [0, 0]
    for payer, (n, denied) in sorted(counts.items()):
        total[0] += n
        total[1] += denied
        out[payer] = {
            "payer": names.get(payer),
            "claims": n,
            "denied": denied,
            "rate": _rate(denied, n),
        }
    out["all"] = {
        "payer": None,
        "claims": total[0],
        "denied": total[1],
        "rate": _rate(*total[::-1]),
    }
    return out


def _rate(denied: int, claims: int) -> str:
    if claims == 0:
        return "0.0000"
    return str((Decimal(denied) / Decimal(claims)).quantize(_RATE, rounding=ROUND_HALF_UP))


def billing_report(session: Session, *, as_of: dt.datetime | None = None) -> dict[str, Any]:
    """Totals of the revenue cycle and the ledger check (``healthos billing report``).

    Parameters
    ----------
    session : Session
        The caller's session (read only).
    as_of : datetime, optional
        Only ledger entries and responses up to then; the A/R aging date (default now).

    Returns
    -------
    dict
        JSON-ready; amounts are decimal strings in the ledger currency (``currency``;
        ``"mixed"`` when there is more than one, then totals add across currencies):

        ``charges``
            gross charges (revenue credits − debits).
        ``claimed``
            billed to payers on initial claims (payer A/R debits of ``charge`` and
            ``claim_submission`` entries); corrected claims re-bill, not add.
        ``paid``
            payer payments (cash debits of ``payment`` entries) = sum of
            ``ClaimResponse.payment.amount``.
        ``adjusted``
            contractual adjustments (CO-45).
        ``patient_responsibility``
            moved from payers to patients (PR).
        ``denied``
            line amounts payers denied, all responses (not posted: still in A/R unless
            recovered or written off).
        ``underpaid``
            allowed but unpaid without an adjustment (still in payer A/R).
        ``written_off``
            denial write-offs.
        ``patient_paid``, ``refunded``
            patient payments and refunds.
        ``ar``
            open A/R: ``{"unbilled", "payer", "patient", "total"}``.
        ``ar_by_bucket``
            payer A/R aged by claim service date: ``{"0-30": …, …, "120+": …}``.
        ``ar_by_payer``
            the same per payer: ``{payer id: {"payer": name, buckets…, "total"}}``.
        ``patient_ar_by_bucket``
            patient A/R aged the same way.
        ``initial_denial_rate_by_payer``
            see :func:`initial_denial_rates`.
        ``ledger``
            ``{"debits", "credits", "balanced"}`` (:func:`~.ledger.trial_balance`).
    """
    session.flush()
    aging_date = as_of or utcnow()

    def total(kind: AccountKind, side: str, *kinds: JournalKind) -> Decimal:
        return _ledger_sum(
            session, side=side, account_kind=kind, entry_kinds=kinds or None, as_of=as_of
        )

    charges = _net(session, AccountKind.REVENUE, as_of, debit_normal=False)
    claimed = total(AccountKind.PAYER_AR, "debit", JournalKind.CHARGE, JournalKind.CLAIM_SUBMISSION)
    paid = total(AccountKind.CASH, "debit", JournalKind.PAYMENT)
    adjusted = _net(session, AccountKind.CONTRACTUAL_ALLOWANCE, as_of, debit_normal=True)
    written_off = _net(session, AccountKind.DENIAL_WRITE_OFF, as_of, debit_normal=True)
    patient = total(AccountKind.PATIENT_AR, "debit", JournalKind.PATIENT_RESPONSIBILITY)
    patient_paid = total(AccountKind.CASH, "debit", JournalKind.PATIENT_PAYMENT)
    refunded = total(AccountKind.PATIENT_AR, "debit", JournalKind.REFUND)
    ar = {
        "unbilled": _net(session, AccountKind.UNBILLED_AR, as_of, debit_normal=True),
        "payer": _net(session, AccountKind.PAYER_AR, as_of, debit_normal=True),
        "patient": _net(session, AccountKind.PATIENT_AR, as_of, debit_normal=True),
    }
    ar["total"] = sum(ar.values(), ZERO)
    payer_aging = ar_aging(session, as_of=aging_date, by="payer")
    patient_aging = ar_aging(session, as_of=aging_date, by="patient")
    names = {
        row.id: row.name for row in session.execute(select(Organization.id, Organization.name))
    }
    balance = trial_balance(session, as_of=as_of)
    currencies = sorted(balance["by_currency"])
    labels = [label for label, _, _ in AGING_BUCKETS]

    def bucket_totals(aging: dict[str, Any]) -> dict[str, str]:
        sums = dict.fromkeys(labels, ZERO)
        for values in aging["totals"].values():
            for label in labels:
                sums[label] += values[label]
        return {label: _text(value) for label, value in sums.items()}

    by_payer: dict[str, dict[str, Any]] = {}
    for row in payer_aging["rows"]:
        entry = by_payer.setdefault(
            row["payer_id"],
            {"payer": names.get(row["payer_id"]), **dict.fromkeys(labels, ZERO), "total": ZERO},
        )
        for label in [*labels, "total"]:
            entry[label] += row[label]
    return {
        "as_of": aging_date.astimezone(dt.UTC).isoformat(),
        "currency": currencies[0] if len(currencies) == 1 else ("mixed" if currencies else None),
        "charges": _text(charges),
        "claimed": _text(claimed),
        "paid": _text(paid),
        "adjusted": _text(adjusted),
        "patient_responsibility": _text(patient),
        "denied": _text(_adjudicated_sum(session, AdjudicationCategory.DENIED, as_of)),
        "underpaid": _text(_adjudicated_sum(session, AdjudicationCategory.UNDERPAID, as_of)),
        "written_off": _text(written_off),
        "patient_paid": _text(patient_paid),
        "refunded": _text(refunded),
        "ar": {key: _text(value) for key, value in ar.items()},
        "ar_by_bucket": bucket_totals(payer_aging),
        "ar_by_payer": {
            payer: {
                key: (_text(value) if isinstance(value, Decimal) else value)
                for key, value in entry.items()
            }
            for payer, entry in sorted(by_payer.items())
        },
        "patient_ar_by_bucket": bucket_totals(patient_aging),
        "initial_denial_rate_by_payer": initial_denial_rates(session, as_of=as_of),
        "ledger": {
            "debits": _text(balance["debits"]),
            "credits": _text(balance["credits"]),
            "balanced": balance["balanced"],
        },
    }
