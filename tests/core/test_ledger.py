"""The double-entry ledger: refusals, flows, aging, invoices, and a hypothesis property test."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from healthos_core.billing.capture import register
from healthos_core.billing.entities import ChargeItem, Claim
from healthos_core.billing.ledger import (
    SOURCE_REF_PATTERN,
    Invoice,
    JournalEntry,
    LedgerPosting,
    Line,
    account_balance,
    ar_aging,
    balances,
    build_invoice,
    claim_open_balance,
    credit,
    debit,
    patient_ar,
    payer_ar,
    post_charge,
    post_claim_charge,
    post_journal,
    post_patient_payment,
    post_refund,
    reverse_journal,
    statement,
    trial_balance,
    write_off_claim,
)
from healthos_core.billing.remittance import post_claim_response
from healthos_core.db import Base, make_engine
from healthos_core.errors import ConflictError, InvalidInputError, NotFoundError
from healthos_core.events import EventBus
from healthos_core.record.service import record_procedure
from healthos_core.settings import get_settings
from tests.conftest import table_counts
from tests.core.test_remittance import adj, denied_line, fhir_response, paid_line
from tests.factories import (
    SNOMED,
    T0,
    make_chargemaster,
    make_claim,
    make_encounter,
    make_organization,
    make_patient,
    new_id,
)

D = Decimal
PAYER = "payer-ledger-test"
AT = dt.datetime(2021, 3, 1, 12, 0, tzinfo=dt.UTC)


def two_lines(amount: str, *, patient_id: str) -> list[Line]:
    return [debit("cash", D(amount)), credit(patient_ar(patient_id), D(amount))]


@pytest.fixture
def people(session: Session) -> tuple[str, str]:
    make_organization(session, id=PAYER, name="Ledger Test Payer", type_code="pay")
    return make_patient(session).id, PAYER


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("lines", "currency", "source", "message"),
    [
        (
            [debit("cash", D("10.00")), credit("revenue", D("9.99"))],
            "USD",
            "Invoice/i1",
            "debits 10.00 ≠ credits 9.99",
        ),
        (
            [debit("cash", D("-5.00")), credit("revenue", D("-5.00"))],
            "USD",
            "Invoice/i1",
            "negative amount",
        ),
        (
            [debit("cash", 5.0), credit("revenue", 5.0)],
            "USD",
            "Invoice/i1",  # type: ignore[arg-type]
            "never a float",
        ),
        (
            [debit("cash", D("1.005")), credit("revenue", D("1.005"))],
            "USD",
            "Invoice/i1",
            "fractions of a cent",
        ),
        (
            [debit("cash", D("5.00")), Line("revenue", credit=D("5.00"), currency="INR")],
            "USD",
            "Invoice/i1",
            "mixed currencies",
        ),
        (
            [debit("cash", D("5.00")), credit("revenue", D("5.00"))],
            "USD",
            "",
            "no posting without a source event",
        ),
        (
            [debit("cash", D("5.00")), credit("revenue", D("5.00"))],
            "USD",
            "just text",
            "no posting without a source event",
        ),
        ([debit("cash", D("5.00"))], "USD", "Invoice/i1", "at least two lines"),
        (
            [Line("cash", debit=D("5"), credit=D("5")), credit("revenue", D("0.00"))],
            "USD",
            "Invoice/i1",
            "not both and not neither",
        ),
        (
            [debit("petty_cash", D("5.00")), credit("revenue", D("5.00"))],
            "USD",
            "Invoice/i1",
            "is not a ledger account",
        ),
        (
            [debit("payer_ar", D("5.00")), credit("revenue", D("5.00"))],
            "USD",
            "Invoice/i1",
            "payer_ar:<owner id>",
        ),
        (
            [debit("cash", D("5.00")), credit("revenue", D("5.00"))],
            "usd",
            "Invoice/i1",
            "not ISO 4217",
        ),
    ],
)
def test_post_journal_refuses_and_writes_nothing(
    session: Session, engine: Engine, lines: list[Line], currency: str, source: str, message: str
) -> None:
    session.commit()
    before = table_counts(engine)
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        post_journal(
            session,
            kind="patient_payment",
            source_ref=source,
            at=AT,
            lines=lines,
            currency=currency,
        )
    session.rollback()
    assert table_counts(engine) == before


def test_post_journal_refuses_naive_time_and_unknown_kind(session: Session) -> None:
    lines = [debit("cash", D("1.00")), credit("revenue", D("1.00"))]
    with pytest.raises(InvalidInputError, match="aware"):
        post_journal(
            session,
            kind="charge",
            source_ref="Invoice/1",
            at=dt.datetime(2021, 1, 1),
            lines=lines,
            currency="USD",
        )
    with pytest.raises(InvalidInputError, match="unknown journal kind"):
        post_journal(
            session, kind="gift", source_ref="Invoice/1", at=AT, lines=lines, currency="USD"
        )


def test_reposting_a_source_is_a_no_op_and_other_amounts_conflict(
    session: Session, people: tuple[str, str]
) -> None:
    patient_id, _ = people
    first = post_journal(
        session,
        kind="patient_payment",
        source_ref="PaymentReconciliation/p1",
        at=AT,
        lines=two_lines("20.00", patient_id=patient_id),
        currency="USD",
    )
    again = post_journal(
        session,
        kind="patient_payment",
        source_ref="PaymentReconciliation/p1",
        at=AT,
        lines=two_lines("20.00", patient_id=patient_id),
        currency="USD",
    )
    assert again.id == first.id
    assert len(session.scalars(select(LedgerPosting)).all()) == 2
    with pytest.raises(ConflictError, match="already posted with other amounts"):
        post_journal(
            session,
            kind="patient_payment",
            source_ref="PaymentReconciliation/p1",
            at=AT,
            lines=two_lines("25.00", patient_id=patient_id),
            currency="USD",
        )
    # A different discriminator is a different entry.
    post_journal(
        session,
        kind="patient_payment",
        source_ref="PaymentReconciliation/p1",
        discriminator="second",
        at=AT,
        lines=two_lines("5.00", patient_id=patient_id),
        currency="USD",
    )
    assert account_balance(session, "cash") == D("25.00")


def test_receivable_of_an_unknown_patient_or_payer_is_refused(session: Session) -> None:
    with pytest.raises(NotFoundError, match="Patient/nobody does not exist"):
        post_patient_payment(
            session,
            "nobody",
            D("5.00"),
            source_ref="PaymentReconciliation/p",
            at=AT,
            currency="USD",
        )
    with pytest.raises(NotFoundError, match="Organization/no-payer does not exist"):
        post_journal(
            session,
            kind="charge",
            source_ref="Claim/c1",
            at=AT,
            currency="USD",
            lines=[debit(payer_ar("no-payer"), D("1.00")), credit("revenue", D("1.00"))],
        )


def test_an_account_keeps_one_currency(session: Session, settings_env: pytest.MonkeyPatch) -> None:
    post_journal(
        session,
        kind="charge",
        source_ref="ChargeItem/a",
        at=AT,
        currency="USD",
        lines=[debit("unbilled_ar", D("1.00")), credit("revenue", D("1.00"))],
    )
    # the deployment's currency changes: accounts opened in USD still refuse INR
    settings_env.setenv("HEALTHOS_CURRENCY", "INR")
    get_settings.cache_clear()
    with pytest.raises(InvalidInputError, match="kept in USD, not INR"):
        post_journal(
            session,
            kind="charge",
            source_ref="ChargeItem/b",
            at=AT,
            currency="INR",
            lines=[debit("unbilled_ar", D("1.00")), credit("revenue", D("1.00"))],
        )


# ------------------------------------------------- one currency, sane dates (issue 9)


def in_currency(settings_env: pytest.MonkeyPatch, currency: str | None) -> None:
    """Make ``currency`` the deployment's (``None``: back to the market's, USD)."""
    if currency is None:
        settings_env.delenv("HEALTHOS_CURRENCY", raising=False)
    else:
        settings_env.setenv("HEALTHOS_CURRENCY", currency)
    get_settings.cache_clear()


def legacy_euro_claim(session: Session, settings_env: pytest.MonkeyPatch, patient_id: str) -> Claim:
    """A claim charged to payer A/R in EUR before the one-currency rule (EUR was kept then)."""
    in_currency(settings_env, "EUR")
    charge = charge_item(session, patient_id, "80.00", currency="EUR")
    claim = make_claim(
        session,
        patient_id=patient_id,
        insurer_id=PAYER,
        billing_status="submitted",
        created=AT,
        submitted_at=AT,
        currency="EUR",
        total="80.00",
        items=[{"charge_item_id": charge.id, "net": "80.00", "code": "1", "code_system": SNOMED}],
    )
    post_claim_charge(session, claim)
    in_currency(settings_env, None)
    return claim


def _pay(session: Session, patient_id: str, claim: Claim) -> None:
    post_patient_payment(
        session, patient_id, D("10"), source_ref="PaymentReconciliation/p", at=AT, currency="EUR"
    )


def _refund(session: Session, patient_id: str, claim: Claim) -> None:
    post_refund(
        session, patient_id, D("10"), source_ref="PaymentReconciliation/r", at=AT, currency="XXX"
    )


def _journal(session: Session, patient_id: str, claim: Claim) -> None:
    post_journal(
        session,
        kind="patient_payment",
        source_ref="PaymentReconciliation/j",
        at=AT,
        currency="EUR",
        lines=two_lines("10.00", patient_id=patient_id),
    )


def _charge(session: Session, patient_id: str, claim: Claim) -> None:
    charge_item(session, patient_id, "10.00", currency="EUR")


def _claim(session: Session, patient_id: str, claim: Claim) -> None:
    imported = make_claim(
        session,
        patient_id=patient_id,
        insurer_id=PAYER,
        billing_status="submitted",
        currency="EUR",
        total="10.00",
        items=[{"code_system": SNOMED, "code": "1", "net": "10.00"}],
    )
    post_claim_charge(session, imported)


def _write_off(session: Session, patient_id: str, claim: Claim) -> None:
    write_off_claim(session, claim.id, actor="u1", reason="bad debt")


def _remittance(session: Session, patient_id: str, claim: Claim) -> None:
    response = fhir_response(claim.id, patient_id, {1: paid_line("80.00", "60.00")}, payer=PAYER)
    euro = json.loads(json.dumps(response).replace('"currency": "USD"', '"currency": "EUR"'))
    post_claim_response(session, euro)


@pytest.mark.parametrize(
    "path",
    [_pay, _refund, _journal, _charge, _claim, _write_off, _remittance],
    ids=lambda f: f.__name__.strip("_"),
)
def test_money_in_another_currency_is_refused_on_every_ledger_path(
    session: Session,
    engine: Engine,
    settings_env: pytest.MonkeyPatch,
    people: tuple[str, str],
    path: Any,
) -> None:
    patient_id, _ = people
    claim = legacy_euro_claim(session, settings_env, patient_id)
    session.commit()
    before = table_counts(engine)
    with pytest.raises(InvalidInputError, match=r"currency.* '(EUR|XXX)' is refused.* USD"):
        path(session, patient_id, claim)
    session.rollback()
    assert table_counts(engine) == before
    # and the ledger still takes the ledger currency from everyone
    post_patient_payment(
        session, patient_id, D("5"), source_ref="PaymentReconciliation/ok", at=AT, currency="USD"
    )
    assert account_balance(session, "cash") == D("5.00")


def test_the_ledger_currency_follows_the_market(
    session: Session, settings_env: pytest.MonkeyPatch, people: tuple[str, str]
) -> None:
    patient_id, _ = people
    settings_env.setenv("HEALTHOS_MARKET", "IN")
    get_settings.cache_clear()
    entry = post_patient_payment(
        session, patient_id, D("500"), source_ref="PaymentReconciliation/inr", at=AT, currency="INR"
    )
    assert {p.currency for p in entry.postings} == {"INR"}
    with pytest.raises(
        InvalidInputError, match="'USD' is refused: HealthOS keeps its money in INR"
    ):
        post_patient_payment(
            session,
            patient_id,
            D("5"),
            source_ref="PaymentReconciliation/usd",
            at=AT,
            currency="USD",
        )


def test_a_foreign_entry_posted_before_the_rule_can_still_be_reversed(
    session: Session, settings_env: pytest.MonkeyPatch, people: tuple[str, str]
) -> None:
    patient_id, _ = people
    in_currency(settings_env, "EUR")
    wrong = post_patient_payment(
        session, patient_id, D("10"), source_ref="PaymentReconciliation/eur", at=AT, currency="EUR"
    )
    in_currency(settings_env, None)
    reversal = reverse_journal(session, wrong.id, reason="taken in the wrong currency")
    assert {(p.currency, p.debit, p.credit) for p in reversal.postings} == {
        ("EUR", D("0.00"), D("10.00")),
        ("EUR", D("10.00"), D("0.00")),
    }
    assert account_balance(session, "cash") == D("0.00")


def test_a_ledger_locked_by_a_foreign_payment_is_repaired_by_reversing_it(
    session: Session, settings_env: pytest.MonkeyPatch, people: tuple[str, str]
) -> None:
    patient_id, _ = people
    other = make_patient(session).id
    in_currency(settings_env, "XXX")  # the issue-9 payment, booked before the rule
    wrong = post_patient_payment(
        session, patient_id, D("10"), source_ref="PaymentReconciliation/xxx", at=AT, currency="XXX"
    )
    in_currency(settings_env, None)
    with pytest.raises(InvalidInputError, match=r"account cash is kept in XXX, not USD.*reverse"):
        post_patient_payment(
            session, other, D("5"), source_ref="PaymentReconciliation/u1", at=AT, currency="USD"
        )
    reverse_journal(session, wrong.id, reason="taken in the wrong currency")
    post_patient_payment(
        session, other, D("5"), source_ref="PaymentReconciliation/u1", at=AT, currency="USD"
    )
    post_patient_payment(
        session, patient_id, D("7"), source_ref="PaymentReconciliation/u2", at=AT, currency="USD"
    )
    assert account_balance(session, "cash") == D("12.00")
    assert {a: v["currency"] for a, v in _currencies(session).items()} == {
        "cash": "USD",
        patient_ar(patient_id): "USD",
        patient_ar(other): "USD",
    }
    assert trial_balance(session)["balanced"] is True
    repaired = statement(session, patient_id, as_of=dt.datetime.now(dt.UTC))
    assert (repaired["currency"], repaired["credit_balance"]) == ("USD", D("7.00"))


def _currencies(session: Session) -> dict[str, dict[str, str]]:
    from healthos_core.billing.ledger import Account

    session.expire_all()
    return {a.id: {"currency": a.currency} for a in session.scalars(select(Account))}


NOW = dt.datetime.now(dt.UTC)


@pytest.mark.parametrize("post", [post_patient_payment, post_refund], ids=["payment", "refund"])
@pytest.mark.parametrize(
    ("at", "message"),
    [
        (dt.datetime(9999, 12, 31, tzinfo=dt.UTC), "is in the future"),
        (NOW + dt.timedelta(hours=1), "is in the future"),
        (dt.datetime(1900, 1, 1, tzinfo=dt.UTC), "is before 2011-01-01"),
        (dt.datetime(2010, 12, 31, 23, 59, tzinfo=dt.UTC), "is before 2011-01-01"),
    ],
    ids=["9999-12-31", "in-an-hour", "1900-01-01", "before-billing-start"],
)
def test_payment_and_refund_times_must_be_sane(
    session: Session,
    engine: Engine,
    people: tuple[str, str],
    post: Any,
    at: dt.datetime,
    message: str,
) -> None:
    patient_id, _ = people
    post_patient_payment(
        session, patient_id, D("30"), source_ref="PaymentReconciliation/a", at=AT, currency="USD"
    )
    session.commit()
    before = table_counts(engine)
    with pytest.raises(InvalidInputError, match=f"^at .*{message}"):
        post(
            session,
            patient_id,
            D("10"),
            source_ref="PaymentReconciliation/b",
            at=at,
            currency="USD",
        )
    session.rollback()
    assert table_counts(engine) == before


def test_payment_times_at_the_bounds_are_accepted(
    session: Session, people: tuple[str, str]
) -> None:
    patient_id, _ = people
    for number, at in enumerate(
        [dt.datetime(2011, 1, 1, tzinfo=dt.UTC), dt.datetime.now(dt.UTC) + dt.timedelta(minutes=4)]
    ):
        post_patient_payment(
            session,
            patient_id,
            D("1"),
            source_ref=f"PaymentReconciliation/b{number}",
            at=at,
            currency="USD",
        )
    assert account_balance(session, patient_ar(patient_id)) == D("-2.00")


def test_statement_shows_an_overpayment_as_a_credit_balance(
    session: Session, people: tuple[str, str]
) -> None:
    patient_id, _ = people
    post_patient_payment(
        session, patient_id, D("30"), source_ref="PaymentReconciliation/c", at=AT, currency="USD"
    )
    credit_only = statement(session, patient_id, as_of=AT + dt.timedelta(days=1))
    charge_item(session, patient_id, "45.00", occurred_at=AT + dt.timedelta(days=2))
    post_journal(
        session,
        kind="charge",
        source_ref="Invoice/self-pay",
        at=AT + dt.timedelta(days=2),
        currency="USD",
        lines=[debit(patient_ar(patient_id), D("45.00")), credit("unbilled_ar", D("45.00"))],
    )
    owing = statement(session, patient_id, as_of=AT + dt.timedelta(days=3))

    assert (credit_only["balance_due"], credit_only["credit_balance"]) == (D("0.00"), D("30.00"))
    assert credit_only["lines"][-1]["balance"] == D("-30.00")
    assert (owing["balance_due"], owing["credit_balance"]) == (D("15.00"), D("0.00"))


def test_trial_balance_detects_an_entry_written_around_the_ledger(session: Session) -> None:
    entry = post_journal(
        session,
        kind="charge",
        source_ref="ChargeItem/x",
        at=AT,
        currency="USD",
        lines=[debit("unbilled_ar", D("3.00")), credit("revenue", D("3.00"))],
    )
    assert trial_balance(session)["balanced"] is True
    session.execute(
        insert(LedgerPosting),
        [
            {
                "journal_entry_id": entry.id,
                "account_id": "revenue",
                "debit": D("0"),
                "credit": D("0.01"),
                "currency": "USD",
                "claim_id": None,
            }
        ],
    )
    check = trial_balance(session)
    assert check["balanced"] is False
    assert check["unbalanced_entries"] == [entry.id]
    assert (check["debits"], check["credits"]) == (D("3.00"), D("3.01"))


def test_reverse_journal_swaps_the_sides(session: Session) -> None:
    entry = post_journal(
        session,
        kind="charge",
        source_ref="ChargeItem/x",
        at=AT,
        currency="USD",
        lines=[debit("unbilled_ar", D("3.00")), credit("revenue", D("3.00"))],
    )
    reversal = reverse_journal(session, entry.id, reason="entered in error")
    assert reversal.kind == "reversal" and reversal.source_ref == "ChargeItem/x"
    assert reverse_journal(session, entry.id).id == reversal.id  # twice: no-op
    assert account_balance(session, "revenue") == D("0.00")
    assert account_balance(session, "unbilled_ar") == D("0.00")
    with pytest.raises(InvalidInputError, match="is a reversal"):
        reverse_journal(session, reversal.id)


# --------------------------------------------------------------------------- flows


def test_charge_capture_posts_unbilled_ar_and_revenue(session: Session) -> None:
    make_chargemaster(session, [("73761001", "1250.40")])
    encounter = make_encounter(session)
    bus = EventBus()
    register(bus)
    procedure = record_procedure(
        session,
        encounter_id=encounter.id,
        code_system=SNOMED,
        code="73761001",
        display="Colonoscopy",
        performed_at=T0 + dt.timedelta(hours=1),
        bus=bus,
    )
    (charge,) = session.scalars(select(ChargeItem)).all()
    assert charge.service_ref == f"Procedure/{procedure.id}"
    (entry,) = session.scalars(select(JournalEntry)).all()
    assert (entry.kind, entry.source_ref, entry.at) == (
        "charge",
        f"ChargeItem/{charge.id}",
        T0 + dt.timedelta(hours=1),
    )
    assert account_balance(session, "unbilled_ar") == D("1250.40")
    assert account_balance(session, "revenue") == D("1250.40")
    assert post_charge(session, charge).id == entry.id  # idempotent


def charge_item(session: Session, patient_id: str, total: str, **kw: Any) -> ChargeItem:
    charge = ChargeItem(
        id=new_id(),
        patient_id=patient_id,
        status="billable",
        code_system=SNOMED,
        code=kw.pop("code", "1"),
        quantity=D(1),
        unit_price=D(total),
        total=D(total),
        currency=kw.pop("currency", "USD"),
        occurred_at=kw.pop("occurred_at", AT),
        entered_at=AT,
        **kw,
    )
    session.add(charge)
    session.flush()
    post_charge(session, charge)
    return charge


def claim_of_charges(
    session: Session,
    patient_id: str,
    charges: list[ChargeItem],
    *,
    nets: list[str] | None = None,
    service: dt.datetime = AT,
    related: str | None = None,
) -> Claim:
    nets_ = [D(n) for n in nets] if nets else [c.total for c in charges]
    claim = make_claim(
        session,
        patient_id=patient_id,
        insurer_id=PAYER,
        billing_status="submitted",
        created=service,
        submitted_at=service,
        billable_start=service,
        related_claim_id=related,
        total=sum(nets_, D("0")),
        items=[
            {"charge_item_id": c.id, "net": n, "code": c.code, "code_system": SNOMED}
            for c, n in zip(charges, nets_, strict=True)
        ],
    )
    post_claim_charge(session, claim)
    return claim


def test_claim_of_charges_moves_unbilled_to_payer_ar(
    session: Session, people: tuple[str, str]
) -> None:
    patient_id, payer = people
    a = charge_item(session, patient_id, "100.00")
    b = charge_item(session, patient_id, "50.00")
    claim = claim_of_charges(session, patient_id, [a, b], nets=["100.00", "55.00"])
    kinds = {
        e.kind
        for e in session.scalars(
            select(JournalEntry).where(JournalEntry.source_ref == f"Claim/{claim.id}")
        )
    }
    assert kinds == {"claim_submission"}
    assert account_balance(session, "unbilled_ar") == D("0.00")
    assert account_balance(session, payer_ar(payer)) == D("155.00")
    assert account_balance(session, "revenue") == D("155.00")  # +5.00 price difference
    assert claim_open_balance(session, claim.id) == D("155.00")
    assert post_claim_charge(session, claim) == 0  # idempotent


def test_write_off_closes_a_denied_claim(session: Session, people: tuple[str, str]) -> None:
    patient_id, payer = people
    claim = claim_of_charges(session, patient_id, [charge_item(session, patient_id, "80.00")])
    post_claim_response(
        session,
        fhir_response(
            claim.id, patient_id, {1: denied_line("80.00", carc="29", rarc=None)}, payer=payer
        ),
    )
    with pytest.raises(InvalidInputError, match=re.escape("open balance is 80.00")):
        write_off_claim(session, claim.id, actor="u1", reason="x", amount=D("90.00"))
    write_off_claim(
        session, claim.id, actor="u1", reason="CO-29 timely filing, appeal lost", amount=D("30.00")
    )
    session.refresh(claim)
    assert claim.billing_status == "denied"
    write_off_claim(session, claim.id, actor="u1", reason="CO-29 timely filing, appeal lost")
    session.refresh(claim)
    assert claim.billing_status == "written-off"
    assert claim_open_balance(session, claim.id) == D("0.00")
    assert account_balance(session, "denial_write_off") == D("80.00")
    with pytest.raises(InvalidInputError, match=re.escape("open balance is 0.00")):
        write_off_claim(session, claim.id, actor="u1", reason="again")


def test_patient_payment_overpayment_and_refund(session: Session, people: tuple[str, str]) -> None:
    patient_id, _ = people
    account = patient_ar(patient_id)
    post_journal(
        session,
        kind="patient_responsibility",
        source_ref="ClaimResponse/r1",
        at=AT,
        currency="USD",
        lines=[debit(account, D("30.00")), credit("unbilled_ar", D("30.00"))],
    )
    post_patient_payment(
        session,
        patient_id,
        D("50.00"),
        source_ref="PaymentReconciliation/p1",
        at=AT,
        currency="USD",
    )
    assert account_balance(session, account) == D("-20.00")
    with pytest.raises(InvalidInputError, match=re.escape("exceeds the credit balance 20.00")):
        post_refund(
            session,
            patient_id,
            D("25.00"),
            source_ref="PaymentReconciliation/r1",
            at=AT,
            currency="USD",
        )
    post_refund(
        session,
        patient_id,
        D("15.00"),
        source_ref="PaymentReconciliation/r1",
        at=AT,
        currency="USD",
    )
    post_refund(
        session,
        patient_id,
        D("5.00"),
        source_ref="PaymentReconciliation/r2",
        at=AT,
        currency="USD",
        payable=True,
    )
    assert account_balance(session, account) == D("0.00")
    assert account_balance(session, "cash") == D("35.00")
    assert account_balance(session, "refunds_payable") == D("5.00")
    with pytest.raises(InvalidInputError, match="must be positive"):
        post_patient_payment(
            session,
            patient_id,
            D("0"),
            source_ref="PaymentReconciliation/p2",
            at=AT,
            currency="USD",
        )


def test_ar_aging_buckets_by_service_date_per_payer(
    session: Session, people: tuple[str, str]
) -> None:
    patient_id, payer = people
    as_of = dt.datetime(2021, 7, 31, tzinfo=dt.UTC)
    for days, amount in [
        (0, "1.00"),
        (30, "2.00"),
        (31, "4.00"),
        (75, "8.00"),
        (120, "16.00"),
        (121, "32.00"),
        (400, "64.00"),
    ]:
        service = as_of - dt.timedelta(days=days)
        claim_of_charges(
            session,
            patient_id,
            [charge_item(session, patient_id, amount, occurred_at=service)],
            service=service,
        )
    aging = ar_aging(session, as_of=as_of, by="payer")
    (row,) = aging["rows"]
    assert row["payer_id"] == payer
    assert [row[b] for b in aging["buckets"]] == [
        D("3.00"),
        D("4.00"),
        D("8.00"),
        D("16.00"),
        D("96.00"),
    ]
    assert row["total"] == D("127.00")
    assert aging["totals"]["USD"]["total"] == D("127.00")
    # Before the later claims were made, they are not in the aging.
    early = ar_aging(session, as_of=as_of - dt.timedelta(days=200), by="payer")
    assert early["rows"][0]["total"] == D("64.00")
    with pytest.raises(InvalidInputError, match="aging by"):
        ar_aging(session, as_of=as_of, by="facility")


def test_patient_aging_settles_the_oldest_items_first(
    session: Session, people: tuple[str, str]
) -> None:
    patient_id, _ = people
    account = patient_ar(patient_id)
    as_of = dt.datetime(2021, 7, 31, tzinfo=dt.UTC)
    for n, (days, amount) in enumerate([(100, "10.00"), (40, "20.00"), (5, "40.00")]):
        post_journal(
            session,
            kind="patient_responsibility",
            source_ref=f"ClaimResponse/r{n}",
            at=as_of - dt.timedelta(days=days),
            currency="USD",
            lines=[debit(account, D(amount)), credit("unbilled_ar", D(amount))],
        )
    post_patient_payment(
        session,
        patient_id,
        D("15.00"),
        source_ref="PaymentReconciliation/p",
        at=as_of - dt.timedelta(days=1),
        currency="USD",
    )
    (row,) = ar_aging(session, as_of=as_of, by="patient")["rows"]
    assert (row["0-30"], row["31-60"], row["91-120"], row["total"]) == (
        D("40.00"),
        D("15.00"),
        D("0.00"),
        D("55.00"),
    )


def test_invoice_and_statement(session: Session, people: tuple[str, str]) -> None:
    patient_id, payer = people
    claim = claim_of_charges(
        session,
        patient_id,
        [charge_item(session, patient_id, "200.00"), charge_item(session, patient_id, "100.00")],
    )
    post_claim_response(
        session,
        fhir_response(
            claim.id,
            patient_id,
            {
                1: paid_line("200.00", "80.00", "24.00", pr_carc="2"),
                2: paid_line("100.00", "40.00", "15.00", pr_carc="3"),
            },
            payer=payer,
        ),
    )
    self_pay = charge_item(session, patient_id, "12.50")
    invoice = build_invoice(session, patient_id, at=AT + dt.timedelta(days=30), self_pay=True)
    assert invoice is not None
    assert invoice.total == D("51.50")
    assert [line.amount for line in invoice.lines] == [D("39.00"), D("12.50")]
    assert "coinsurance (PR-2) 24.00" in (invoice.lines[0].description or "")
    assert "co-payment (PR-3) 15.00" in (invoice.lines[0].description or "")
    assert invoice.lines[1].source_ref == f"ChargeItem/{self_pay.id}"
    assert account_balance(session, "unbilled_ar") == D("0.00")
    assert build_invoice(session, patient_id, at=AT + dt.timedelta(days=31)) is None
    post_patient_payment(
        session,
        patient_id,
        D("20.00"),
        source_ref=f"Invoice/{invoice.id}",
        at=AT + dt.timedelta(days=40),
        currency="USD",
    )
    summary = statement(session, patient_id, as_of=AT + dt.timedelta(days=45))
    assert summary["balance_due"] == D("31.50")
    assert [line["balance"] for line in summary["lines"]] == [D("39.00"), D("51.50"), D("31.50")]
    assert summary["invoices"][0]["total"] == D("51.50")
    assert sum(summary["aging"].values(), D("0")) == D("31.50")
    assert session.get(Invoice, invoice.id) is not None


# --------------------------------------------------------------------------- property test

OPERATIONS = (
    "charge",
    "submit",
    "pay",
    "adjust",
    "patient_responsibility",
    "deny",
    "correct",
    "write_off",
    "patient_payment",
    "refund",
)


@dataclass
class Model:
    """What the ledger must show, kept independently of it (amounts in cents)."""

    revenue: int = 0
    payer_paid: int = 0
    contractual: int = 0
    written_off: int = 0
    patient_paid: int = 0
    refunded: int = 0
    unbilled: dict[str, list[ChargeItem]] = field(default_factory=dict)
    open_claims: list[Claim] = field(default_factory=list)
    adjudicated: list[tuple[Claim, list[tuple[int, str]]]] = field(default_factory=list)
    counter: int = 0


def cents(value: Decimal) -> int:
    return int(value * 100)


def money(value: int) -> Decimal:
    return (D(value) / 100).quantize(D("0.01"))


def respond(session: Session, claim: Claim, rng: random.Random, mode: str, model: Model) -> None:
    """Adjudicate every line of ``claim`` in ``mode``: split each net at random."""
    lines: dict[int, list[dict[str, Any]]] = {}
    denied: list[tuple[int, str]] = []
    for item in claim.items:
        net = cents(item.net or D(0))
        if mode == "deny" or (mode != "pay" and rng.random() < 0.2):
            lines[item.sequence] = denied_line(str(money(net)), carc="16", rarc="M76")
            denied.append((item.sequence, str(money(net))))
            continue
        contractual = rng.randint(0, net) if mode in ("adjust", "patient_responsibility") else 0
        patient = rng.randint(0, net - contractual) if mode == "patient_responsibility" else 0
        if mode == "pay" and rng.random() < 0.5:
            contractual = rng.randint(0, net)
        benefit = net - contractual - patient
        line = [adj("submitted", str(money(net))), adj("eligible", str(money(net - contractual)))]
        if contractual:
            line.append(adj("contractual", str(money(contractual)), carc="45", group="CO"))
        if patient:
            line.append(adj("patient-responsibility", str(money(patient)), carc="2", group="PR"))
        line.append(adj("benefit", str(money(benefit))))
        lines[item.sequence] = line
        model.payer_paid += benefit
        model.contractual += contractual
    post_claim_response(
        session,
        fhir_response(
            claim.id,
            claim.patient_id,
            lines,
            payer=PAYER,
            outcome="partial" if denied and len(denied) < len(lines) else "complete",
        ),
    )
    model.adjudicated.append((claim, denied))


def apply(
    session: Session, model: Model, patients: list[str], op: str, who: int, value: int
) -> bool:
    """Apply one operation to the ledger and the model; return whether it acted."""
    rng = random.Random(value)
    patient_id = patients[who % len(patients)]
    model.counter += 1
    at = AT + dt.timedelta(days=model.counter)
    if op == "charge":
        charge = charge_item(session, patient_id, str(money(value)), occurred_at=at)
        model.unbilled.setdefault(patient_id, []).append(charge)
        model.revenue += value
        return True
    if op == "submit":
        charges = model.unbilled.pop(patient_id, [])
        if not charges:
            return False
        nets = [c.total + money(rng.randint(-50, 50)) for c in charges]
        nets = [n if n > 0 else c.total for n, c in zip(nets, charges, strict=True)]
        claim = claim_of_charges(
            session, patient_id, charges, nets=[str(n) for n in nets], service=at
        )
        model.revenue += sum(cents(n) - cents(c.total) for n, c in zip(nets, charges, strict=True))
        model.open_claims.append(claim)
        return True
    if op in ("pay", "adjust", "patient_responsibility", "deny"):
        if not model.open_claims:
            return False
        claim = model.open_claims.pop(who % len(model.open_claims))
        respond(session, claim, rng, op, model)
        return True
    if op == "correct":
        candidates = [(c, d) for c, d in model.adjudicated if d]
        if not candidates:
            return False
        original, denied = candidates[who % len(candidates)]
        model.adjudicated.remove((original, denied))
        corrected = make_claim(
            session,
            patient_id=original.patient_id,
            insurer_id=PAYER,
            billing_status="submitted",
            related_claim_id=original.id,
            created=at,
            submitted_at=at,
            total=sum((D(n) for _, n in denied), D("0")),
            items=[{"sequence": s, "net": D(n), "code": "1"} for s, n in denied],
        )
        assert post_claim_charge(session, corrected) == 0  # charged on the original
        model.open_claims.append(corrected)
        return True
    if op == "write_off":
        for claim, _ in model.adjudicated:
            open_balance = claim_open_balance(session, claim.related_claim_id or claim.id)
            if open_balance > 0:
                amount = min(open_balance, money(value))
                write_off_claim(
                    session, claim.id, actor="prop", reason="test", amount=amount, at=at
                )
                model.written_off += cents(amount)
                return True
        return False
    if op == "patient_payment":
        post_patient_payment(
            session,
            patient_id,
            money(value),
            currency="USD",
            at=at,
            source_ref=f"PaymentReconciliation/pay-{model.counter}",
        )
        model.patient_paid += value
        return True
    assert op == "refund"
    credit_balance = -account_balance(session, patient_ar(patient_id))
    if credit_balance <= 0:
        return False
    amount = min(credit_balance, money(value))
    post_refund(
        session,
        patient_id,
        amount,
        currency="USD",
        at=at,
        source_ref=f"PaymentReconciliation/refund-{model.counter}",
    )
    model.refunded += cents(amount)
    return True


def check_invariants(session: Session, model: Model) -> int:
    """Assert the ledger invariants; return the number of journal entries."""
    check = trial_balance(session)
    assert check["balanced"], check
    assert check["debits"] == check["credits"]
    assert check["unbalanced_entries"] == []
    by_account = balances(session)
    ar = sum(
        (
            v
            for k, v in by_account.items()
            if k.split(":")[0] in ("unbilled_ar", "payer_ar", "patient_ar")
        ),
        D("0"),
    )
    # A/R = charges − payments − adjustments − write-offs + refunds
    assert ar == money(
        model.revenue
        - model.payer_paid
        - model.patient_paid
        - model.contractual
        - model.written_off
        + model.refunded
    )
    assert by_account.get("revenue", D("0")) == money(model.revenue)
    assert by_account.get("cash", D("0")) == money(
        model.payer_paid + model.patient_paid - model.refunded
    )
    assert by_account.get("contractual_allowance", D("0")) == money(model.contractual)
    assert by_account.get("denial_write_off", D("0")) == money(model.written_off)
    # No posting without a source event.
    for source_ref in session.scalars(select(JournalEntry.source_ref)):
        assert SOURCE_REF_PATTERN.match(source_ref), source_ref
    orphans = session.scalars(
        select(LedgerPosting.id).where(
            LedgerPosting.journal_entry_id.not_in(select(JournalEntry.id))
        )
    ).all()
    assert orphans == []
    return int(check["entries"])


#: Charges and submissions come more often, so later operations have claims to act on.
operation_lists = st.lists(
    st.tuples(
        st.sampled_from(("charge", "charge", "submit", "submit", *OPERATIONS)),
        st.integers(0, 7),
        st.integers(1, 250_000),
    ),
    min_size=8,
    max_size=40,
)


def run_sequence(engine: Engine, ops: list[tuple[str, int, int]]) -> None:
    with Session(engine) as session:
        session.begin()
        try:
            make_organization(session, id=PAYER, name="Ledger Test Payer", type_code="pay")
            patients = [make_patient(session).id, make_patient(session).id]
            model = Model()
            entries = 0
            for op, who, value in ops:
                if apply(session, model, patients, op, who, value):
                    event(f"applied: {op}")
                entries = check_invariants(session, model)
            event(f"journal entries: {min(entries // 10 * 10, 40)}+")
        finally:
            session.rollback()


@pytest.fixture(scope="module")
def plain_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A SQLite database of its own (tables from the entities), rolled back per example."""
    path: Path = tmp_path_factory.mktemp("ledger") / "property.db"
    engine = make_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@settings(max_examples=500, deadline=None)
@given(ops=operation_lists)
def test_ledger_invariants_hold_after_every_operation_sqlite(
    plain_sqlite: Engine, ops: list[tuple[str, int, int]]
) -> None:
    run_sequence(plain_sqlite, ops)


def test_ledger_invariants_hold_after_every_operation_on_both_backends(engine: Engine) -> None:
    @settings(
        max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(ops=operation_lists)
    def run(ops: list[tuple[str, int, int]]) -> None:
        run_sequence(engine, ops)

    run()
