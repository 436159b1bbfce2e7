"""Concurrent money: payments and remittances for one patient from parallel clients.

Each worker is a thread with its own session and transaction (its own connection), as
the API's workers are; a barrier releases them together. Whatever the interleaving, no
update may be lost, the ledger stays balanced, a payment ``reference`` or ClaimResponse
posted by two clients at once is booked once, and the loser gets the existing entry or
a clean domain error, never an ``IntegrityError`` or a lock error.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.billing.entities import Claim
from healthos_core.billing.ledger import (
    JournalEntry,
    account_balance,
    patient_ar,
    payer_ar,
    post_patient_payment,
    post_refund,
    trial_balance,
)
from healthos_core.billing.remittance import ClaimResponseAdjudication
from healthos_core.db import make_session_factory, session_scope
from healthos_core.errors import ConflictError, FhirValidationError, InvalidInputError
from healthos_core.fhir.importer import import_document
from tests.core.test_remittance import PAYER, fhir_claim, fhir_response, paid_line
from tests.factories import make_organization, make_patient, new_id

WORKERS = 8
AT = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)


def run_together(factory: sessionmaker[Session], jobs: list[Callable[[Session], Any]]) -> list[Any]:
    """Run each job in its own thread and transaction, all released at once.

    Returns each job's result, or the exception it raised (not re-raised). The sessions
    are writers (:func:`~healthos_core.db.make_session_factory`), as the API's are.
    """
    barrier = threading.Barrier(len(jobs))
    writers = make_session_factory(factory.kw["bind"], writer=True)

    def run(job: Callable[[Session], Any]) -> Any:
        barrier.wait(timeout=30)
        try:
            with session_scope(writers) as session:
                return job(session)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(run, jobs))


def unexpected(results: list[Any], allowed: tuple[type[Exception], ...] = ()) -> list[str]:
    return [
        f"{type(r).__name__}: {str(r).splitlines()[0]}"
        for r in results
        if isinstance(r, Exception) and not isinstance(r, allowed)
    ]


@pytest.fixture
def patient_id(session_factory: sessionmaker[Session]) -> str:
    """A committed patient with no ledger account yet, and the payer."""
    with session_scope(session_factory) as session:
        make_organization(session, id=PAYER, name="Test PPO", type_code="pay")
        return make_patient(session).id


def test_parallel_payments_for_one_patient_lose_nothing(
    session_factory: sessionmaker[Session], patient_id: str
) -> None:
    """8 clients pay at once (the first payments open the accounts): every one is booked."""

    def pay(reference: str, amount: str) -> Callable[[Session], Any]:
        def job(session: Session) -> str:
            return post_patient_payment(
                session,
                patient_id,
                Decimal(amount),
                source_ref=reference,
                at=AT,
                currency="USD",
            ).id

        return job

    rounds = 3
    expected = Decimal("0")
    for r in range(rounds):
        jobs = [pay(f"PaymentReconciliation/p-{r}-{w}", f"{w + 1}.25") for w in range(WORKERS)]
        expected += sum((Decimal(f"{w + 1}.25") for w in range(WORKERS)), Decimal("0"))
        results = run_together(session_factory, jobs)
        assert unexpected(results) == []

    with session_scope(session_factory) as session:
        assert account_balance(session, patient_ar(patient_id)) == -expected
        assert account_balance(session, "cash") == expected
        count = session.scalar(select(func.count()).select_from(JournalEntry))
        assert count == rounds * WORKERS
        assert trial_balance(session)["balanced"]


def test_one_payment_reference_from_parallel_clients_is_booked_once(
    session_factory: sessionmaker[Session], patient_id: str
) -> None:
    """A retried payment sent by 8 clients at once: one entry; each gets it back."""

    def job(session: Session) -> str:
        return post_patient_payment(
            session,
            patient_id,
            Decimal("40.00"),
            source_ref="PaymentReconciliation/retried",
            at=AT,
            currency="USD",
        ).id

    results = run_together(session_factory, [job] * WORKERS)
    assert unexpected(results) == []
    assert len(set(results)) == 1
    with session_scope(session_factory) as session:
        assert session.scalar(select(func.count()).select_from(JournalEntry)) == 1
        assert account_balance(session, patient_ar(patient_id)) == Decimal("-40.00")
        assert trial_balance(session)["balanced"]


def test_one_reference_for_two_patients_at_once_is_one_entry_and_a_clean_conflict(
    session_factory: sessionmaker[Session], patient_id: str
) -> None:
    """The same reference sent for two patients by 8 clients: one entry, the rest 409s."""
    with session_scope(session_factory) as session:
        other = make_patient(session).id

    def pay(patient: str) -> Callable[[Session], Any]:
        def job(session: Session) -> str:
            return post_patient_payment(
                session,
                patient,
                Decimal("15.00"),
                source_ref="PaymentReconciliation/mixed-up",
                at=AT,
                currency="USD",
            ).id

        return job

    results = run_together(session_factory, [pay(patient_id), pay(other)] * (WORKERS // 2))
    assert unexpected(results, (ConflictError,)) == []
    assert len({r for r in results if isinstance(r, str)}) == 1
    with session_scope(session_factory) as session:
        assert session.scalar(select(func.count()).select_from(JournalEntry)) == 1
        assert trial_balance(session)["balanced"]


def test_parallel_refunds_never_exceed_the_credit_balance(
    session_factory: sessionmaker[Session], patient_id: str
) -> None:
    """A 30.00 credit and 8 clients refunding 10.00 each at once: exactly 3 succeed."""
    with session_scope(session_factory) as session:
        post_patient_payment(
            session,
            patient_id,
            Decimal("30.00"),
            source_ref="PaymentReconciliation/over",
            at=AT,
            currency="USD",
        )

    def refund(n: int) -> Callable[[Session], Any]:
        def job(session: Session) -> str:
            return post_refund(
                session,
                patient_id,
                Decimal("10.00"),
                source_ref=f"PaymentReconciliation/refund-{n}",
                at=AT,
                currency="USD",
            ).id

        return job

    results = run_together(session_factory, [refund(n) for n in range(WORKERS)])
    assert unexpected(results, (InvalidInputError,)) == []
    assert sum(1 for r in results if isinstance(r, str)) == 3
    with session_scope(session_factory) as session:
        assert account_balance(session, patient_ar(patient_id)) == Decimal("0.00")
        assert trial_balance(session)["balanced"]


@pytest.mark.usefixtures("live_path")  # remittance posting, as the API's lifespan wires it
def test_parallel_remittances_for_one_patient_post_each_claim_once(
    session_factory: sessionmaker[Session], patient_id: str
) -> None:
    """Remittances for one patient's claims from 8 clients at once, payments interleaved.

    Claims 0-3 get one response each; claim 4 gets the same response from two clients
    (idempotent: posted once); claim 5 two different responses (one posts, the other is
    refused: a claim is adjudicated once). Two payments go in between.
    """
    claim_ids = [new_id() for _ in range(6)]
    with session_scope(session_factory) as session:
        for claim_id in claim_ids:
            import_document(session, fhir_claim(claim_id, patient_id, ["100.00"]))

    def respond(claim_id: str, response_id: str) -> Callable[[Session], Any]:
        resource = fhir_response(
            claim_id,
            patient_id,
            {1: paid_line("100.00", "30.00", "20.00")},
            response_id=response_id,
        )

        def job(session: Session) -> str:
            import_document(session, resource)
            return response_id

        return job

    def pay(n: int) -> Callable[[Session], Any]:
        def job(session: Session) -> str:
            return post_patient_payment(
                session,
                patient_id,
                Decimal("5.00"),
                source_ref=f"PaymentReconciliation/between-{n}",
                at=AT,
                currency="USD",
            ).id

        return job

    same = new_id()
    jobs = [respond(claim_ids[i], new_id()) for i in range(4)]
    jobs += [respond(claim_ids[4], same), respond(claim_ids[4], same)]
    jobs += [respond(claim_ids[5], new_id()), respond(claim_ids[5], new_id())]
    jobs += [pay(1), pay(2)]
    results = run_together(session_factory, jobs)
    assert unexpected(results, (FhirValidationError,)) == []
    refused = [r for r in results[:8] if isinstance(r, FhirValidationError)]
    assert len(refused) == 1 and "already adjudicated" in str(refused[0])
    assert isinstance(results[6], str) != isinstance(results[7], str)

    with session_scope(session_factory) as session:
        per_claim = dict(
            session.execute(
                select(
                    ClaimResponseAdjudication.claim_id,
                    func.count(func.distinct(ClaimResponseAdjudication.claim_response_id)),
                ).group_by(ClaimResponseAdjudication.claim_id)
            ).all()
        )
        assert per_claim == dict.fromkeys(claim_ids, 1)
        statuses = set(session.scalars(select(Claim.billing_status)))
        assert statuses == {"paid"}
        # 6 claims x (100 charged - 50 paid - 30 contractual - 20 moved to the patient).
        assert account_balance(session, payer_ar(PAYER)) == Decimal("0.00")
        assert account_balance(session, patient_ar(patient_id)) == Decimal("110.00")
        assert account_balance(session, "cash") == Decimal("310.00")
        assert trial_balance(session)["balanced"]
