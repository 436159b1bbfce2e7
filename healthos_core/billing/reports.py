"""Billing totals for finance: the figures of ``healthos billing report --json``.

Every amount comes from the ledger (:mod:`.ledger`) or, for amounts the ledger does not
post (denied, underpaid), from the stored adjudications (:mod:`.remittance`), and is
returned as a decimal string (``"1234.50"``), never a float.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from healthos_core.billing.entities import Claim, ClaimResponse
from healthos_core.billing.ledger import (
    AGING_BUCKETS,
    AR_KINDS,
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
from healthos_core.record.entities import Encounter, Organization

__all__ = [
    "LedgerFlows",
    "RemittedClaim",
    "billing_report",
    "claim_facility",
    "clean_claim_rate",
    "daily_ledger_flows",
    "initial_denial_rates",
    "net_days_in_ar",
    "remitted_claims",
]

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


_ENCOUNTERS: Final = Encounter.__table__


def claim_facility() -> ColumnElement[Any]:
    """Return the facility of a claim (SQL): its ``facility_id``, else its encounter's.

    A claim imported apart from its encounter's bundle may not carry the facility the
    encounter has; select from ``claim`` outer-joined to ``encounter`` on
    ``claim.encounter_id`` to use it.
    """
    claims = Claim.__table__
    return func.coalesce(claims.c.facility_id, _ENCOUNTERS.c.facility_id)


@dataclass(frozen=True, slots=True)
class RemittedClaim:
    """An initial claim with a posted ClaimResponse: the population of the claim rates.

    ``responded_at`` is when its latest response (up to the report's moment) was created;
    ``denied`` whether that response denied the claim whole or rejected it; ``rejected``
    whether it was rejected as unprocessable (outcome ``error``: the payer's front-end
    edits refused it); ``corrected`` whether a corrected claim (``Claim.related``) was
    created for it by then (manual rework).
    """

    claim_id: str
    payer_id: str | None
    facility_id: str | None
    responded_at: dt.datetime | None
    denied: bool
    rejected: bool
    corrected: bool

    @property
    def clean(self) -> bool:
        """Accepted at first submission with no manual rework (HFMA MAP Key CL-1)."""
        return not self.rejected and not self.corrected


def remitted_claims(
    session: Session, *, as_of: dt.datetime | None = None, since: dt.datetime | None = None
) -> list[RemittedClaim]:
    """Return the initial claims with a posted response: the one population of the rates.

    *Initial* claims are claims in the revenue cycle that are not corrected claims (no
    ``related_claim_id``) and have a posted ClaimResponse. A claim is *denied* when the
    payer denied it whole or rejected it: its latest response has outcome ``error``, or
    every submitted dollar denied, or a claim-level denial with nothing paid — the
    synthea-rcm README's ``denied`` label ("whole claim denied or rejected"). Partly
    denied claims and contractual CO-45 reductions are not denials (counting CO-45
    inflates the rate by about an order of magnitude; ``../shared/billing-facts.md`` §1).
    Used by :func:`initial_denial_rates`, :func:`clean_claim_rate` and the KPIs
    (:mod:`healthos_core.kpis.claims`): one definition, one place.

    Parameters
    ----------
    session : Session
        The caller's session.
    as_of : datetime, optional
        Only responses (and corrected claims) created up to then; default all.
    since : datetime, optional
        Only claims whose latest response (up to ``as_of``) was created after then
        (exclusive), for a period ``(since, as_of]``; default no lower bound.

    Returns
    -------
    list of RemittedClaim
        One per initial claim, in no particular order.
    """
    claims = Claim.__table__
    responses = ClaimResponse.__table__
    stmt = (
        select(
            claims.c.id,
            claims.c.insurer_id,
            claim_facility(),
            responses.c.id,
            responses.c.outcome,
            responses.c.created,
        )
        .select_from(
            claims.join(responses, responses.c.claim_id == claims.c.id).outerjoin(
                _ENCOUNTERS, claims.c.encounter_id == _ENCOUNTERS.c.id
            )
        )
        .where(
            claims.c.related_claim_id.is_(None),
            claims.c.billing_status.is_not(None),
            claims.c.billing_status != "draft",
        )
        .order_by(responses.c.created)
    )
    if as_of is not None:
        stmt = stmt.where(responses.c.created <= as_of)
    latest: dict[str, tuple[str | None, str | None, str, str | None, dt.datetime | None]] = {}
    for claim_id, insurer_id, facility_id, response_id, outcome, created in session.execute(stmt):
        latest[claim_id] = (insurer_id, facility_id, response_id, outcome, created)
    if since is not None:
        latest = {
            claim_id: row
            for claim_id, row in latest.items()
            if row[4] is not None and _utc(row[4]) > since
        }
    corrected_stmt = select(claims.c.related_claim_id).where(claims.c.related_claim_id.is_not(None))
    if as_of is not None:
        corrected_stmt = corrected_stmt.where(
            (claims.c.created <= as_of) | claims.c.created.is_(None)
        )
    corrected = set(session.scalars(corrected_stmt))
    denied_by_response = _status_of_rows(session, {row[2] for row in latest.values()})
    return [
        RemittedClaim(
            claim_id=claim_id,
            payer_id=insurer_id,
            facility_id=facility_id,
            responded_at=None if created is None else _utc(created),
            denied=outcome == "error" or denied_by_response.get(response_id, False),
            rejected=outcome == "error",
            corrected=claim_id in corrected,
        )
        for claim_id, (insurer_id, facility_id, response_id, outcome, created) in latest.items()
    ]


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def initial_denial_rates(
    session: Session, *, as_of: dt.datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Return the initial denial rate per payer, from the posted remittances.

    Initial denial rate = initial claims denied ÷ initial claims remitted (HFMA MAP Keys,
    "initial denial rate"); who counts as initial and as denied is
    :func:`remitted_claims`.

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
    names = {
        row.id: row.name for row in session.execute(select(Organization.id, Organization.name))
    }
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for claim in remitted_claims(session, as_of=as_of):
        key = claim.payer_id or "unknown"
        counts[key][0] += 1
        counts[key][1] += int(claim.denied)
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


def clean_claim_rate(session: Session, *, as_of: dt.datetime | None = None) -> dict[str, Any]:
    """Return the clean-claim rate of the initial claims remitted up to ``as_of``.

    HFMA MAP Key CL-1 "clean claim rate": claims that pass edits requiring no manual
    intervention ÷ claims accepted into the claims processing tool. HealthOS sees two
    manual interventions: the payer's front-end edits rejecting the claim (response
    outcome ``error``) and a corrected claim submitted for it; a clean claim has neither
    (:attr:`RemittedClaim.clean`). The population is that of :func:`remitted_claims`.

    Returns
    -------
    dict
        ``{"claims": int, "clean": int, "rate": "0.9512"}`` (4 decimals; ``"0.0000"``
        with no claims, as :func:`initial_denial_rates`).
    """
    claims = remitted_claims(session, as_of=as_of)
    clean = sum(1 for claim in claims if claim.clean)
    return {"claims": len(claims), "clean": clean, "rate": _rate(clean, len(claims))}


@dataclass(slots=True)
class LedgerFlows:
    """What the ledger moved on one day for one facility (amounts in the ledger currency).

    ``ar`` net change of A/R (unbilled + payer + patient: debits − credits); ``revenue``
    net patient service revenue (gross charges − contractual allowances − denial
    write-offs); ``cash`` net cash (receipts − refunds paid); ``payer_paid`` and
    ``patient_paid`` cash received from payers and patients; ``patient_responsibility``
    moved from payers to patients (PR).
    """

    ar: Decimal = ZERO
    revenue: Decimal = ZERO
    cash: Decimal = ZERO
    payer_paid: Decimal = ZERO
    patient_paid: Decimal = ZERO
    patient_responsibility: Decimal = ZERO


_AR_KINDS: Final = frozenset(k.value for k in AR_KINDS)
_CONTRA_REVENUE: Final = frozenset(
    {AccountKind.CONTRACTUAL_ALLOWANCE.value, AccountKind.DENIAL_WRITE_OFF.value}
)


def daily_ledger_flows(
    session: Session, *, as_of: dt.datetime | None = None
) -> dict[tuple[str | None, dt.date], LedgerFlows]:
    """Return the ledger's flows per facility and UTC day, up to ``as_of``.

    An entry belongs to its ``facility_id``, else to the facility of the claim its
    postings carry (payer A/R, payments and adjustments name their claim); entries with
    neither are under ``None``. A/R at the end of a day is the sum of ``ar`` up to that
    day; revenue or cash over a period the sum of the days in it.

    Parameters
    ----------
    session : Session
        The caller's session (read only).
    as_of : datetime, optional
        Only entries dated (``JournalEntry.at``) up to then; default all.

    Returns
    -------
    dict
        ``(facility id or None, day) → LedgerFlows``.
    """
    posting = LedgerPosting.__table__
    account = Account.__table__
    entry = JournalEntry.__table__
    claim = Claim.__table__
    stmt = (
        select(
            entry.c.id,
            entry.c.at,
            entry.c.kind,
            entry.c.facility_id,
            account.c.kind,
            posting.c.debit,
            posting.c.credit,
            claim_facility(),
        )
        .select_from(
            posting.join(account, posting.c.account_id == account.c.id)
            .join(entry, posting.c.journal_entry_id == entry.c.id)
            .outerjoin(claim, posting.c.claim_id == claim.c.id)
            .outerjoin(_ENCOUNTERS, claim.c.encounter_id == _ENCOUNTERS.c.id)
        )
        .order_by(entry.c.id)
    )
    if as_of is not None:
        stmt = stmt.where(entry.c.at <= as_of)
    flows: dict[tuple[str | None, dt.date], LedgerFlows] = defaultdict(LedgerFlows)

    def book(rows: list[Any]) -> None:
        facility = rows[0][3] or next((r[7] for r in rows if r[7] is not None), None)
        day = _utc(rows[0][1]).date()
        f = flows[(facility, day)]
        for _, _, entry_kind, _, kind, debit, credit, _ in rows:
            debit, credit = Decimal(debit or 0), Decimal(credit or 0)
            if kind in _AR_KINDS:
                f.ar += debit - credit
            elif kind == AccountKind.REVENUE.value:
                f.revenue += credit - debit
            elif kind in _CONTRA_REVENUE:
                f.revenue -= debit - credit
            elif kind == AccountKind.CASH.value:
                f.cash += debit - credit
                if entry_kind == JournalKind.PAYMENT.value:
                    f.payer_paid += debit - credit
                elif entry_kind == JournalKind.PATIENT_PAYMENT.value:
                    f.patient_paid += debit - credit
            if (
                kind == AccountKind.PATIENT_AR.value
                and entry_kind == JournalKind.PATIENT_RESPONSIBILITY.value
            ):
                f.patient_responsibility += debit - credit

    current: list[Any] = []
    for row in session.execute(stmt):
        if current and row[0] != current[0][0]:
            book(current)
            current = []
        current.append(row)
    if current:
        book(current)
    return dict(flows)


#: Days of revenue averaged for net days in A/R (HFMA: the last 90 days).
AR_DAYS_WINDOW: Final = 90


def net_days_in_ar(
    net_ar: Decimal, net_revenue: Decimal, days: int = AR_DAYS_WINDOW
) -> Decimal | None:
    """Return net days in A/R: net A/R ÷ average daily net patient service revenue.

    HFMA MAP Key "Net days in accounts receivable": net A/R ÷ (net patient service
    revenue of the last ``days`` days ÷ ``days``). ``None`` when that revenue is not
    positive (the ratio has no meaning). Two decimals.

    Examples
    --------
    >>> net_days_in_ar(Decimal("45000"), Decimal("90000"))
    Decimal('45.00')
    """
    if net_revenue <= 0:
        return None
    return (net_ar / (net_revenue / Decimal(days))).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _ar_days_report(session: Session, as_of: dt.datetime | None) -> dict[str, Any]:
    """Build the report's ``net_days_in_ar`` block from :func:`daily_ledger_flows`."""
    flows = daily_ledger_flows(session, as_of=as_of)
    end = (as_of or utcnow()).astimezone(dt.UTC).date()
    start = end - dt.timedelta(days=AR_DAYS_WINDOW - 1)
    net_ar = sum((f.ar for f in flows.values()), ZERO)
    revenue = sum((f.revenue for (_, day), f in flows.items() if start <= day <= end), ZERO)
    days = net_days_in_ar(net_ar, revenue)
    return {
        "net_ar": _text(net_ar),
        "net_revenue_90d": _text(revenue),
        "days": None if days is None else str(days),
    }


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
        ``clean_claim_rate``
            see :func:`clean_claim_rate`.
        ``net_days_in_ar``
            ``{"net_ar", "net_revenue_90d", "days"}``: A/R ÷ (net patient service revenue
            of the 90 days ending on ``as_of``'s UTC date ÷ 90), :func:`net_days_in_ar`
            (``days`` ``None`` without revenue).
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
        "clean_claim_rate": clean_claim_rate(session, as_of=as_of),
        "net_days_in_ar": _ar_days_report(session, as_of),
        "ledger": {
            "debits": _text(balance["debits"]),
            "credits": _text(balance["credits"]),
            "balanced": balance["balanced"],
        },
    }
