"""Money is taken only in the ledger currency (issue 9 item 1), on sane dates (item 9).

A payment in another currency (``EUR``, or ``XXX``, "no currency") used to be booked,
which made the shared ``cash`` account an ``XXX`` account and refused every later USD
payment for every patient. The API now refuses it with a 422 naming the field, the value
and the expected currency, and writes nothing. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.billing.entities import ChargeItem
from healthos_core.billing.ledger import post_charge
from healthos_core.db import session_scope
from healthos_core.settings import Settings
from tests.conftest import table_counts
from tests.factories import SNOMED, chargemaster_csv, make_organization, make_patient, new_id

TOKENS = {"tok-finance-0001": "finance", "tok-admin-0001": "admin"}
SETTINGS = Settings(environment="test", api_tokens=TOKENS)  # type: ignore[arg-type]
FINANCE = {"Authorization": "Bearer tok-finance-0001"}
API = "/api/v1"


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    from serving.main import create_app

    return create_app(SETTINGS, engine=engine)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def _self_pay_charge(session: Session, patient_id: str, facility_id: str, price: str) -> None:
    """A USD self-pay charge on no claim, posted to the ledger."""
    charge = ChargeItem(
        id=new_id(),
        patient_id=patient_id,
        facility_id=facility_id,
        status="billable",
        code_system=SNOMED,
        code="185349003",
        quantity=Decimal("1"),
        unit_price=Decimal(price),
        total=Decimal(price),
        currency="USD",
        service_ref=f"Patient/{patient_id}",
        occurred_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
    )
    session.add(charge)
    session.flush()
    post_charge(session, charge)


@pytest.fixture
def patients(session_factory: sessionmaker[Session]) -> tuple[str, str]:
    """Two patients of one facility; the second owes a 40.00 USD self-pay charge."""
    with session_scope(session_factory) as session:
        facility = make_organization(session)
        first = make_patient(session, facility_id=facility.id)
        second = make_patient(session, facility_id=facility.id)
        _self_pay_charge(session, second.id, facility.id, "40.00")
        return first.id, second.id


@pytest.mark.parametrize("route", ["payments", "refunds"])
@pytest.mark.parametrize("currency", ["EUR", "XXX"])
def test_money_in_another_currency_is_refused_and_locks_nothing(
    client: TestClient, engine: Engine, patients: tuple[str, str], route: str, currency: str
) -> None:
    first, second = patients
    before = table_counts(engine)

    foreign = client.post(
        f"{API}/patients/{first}/{route}",
        json={"amount": "10", "currency": currency},
        headers=FINANCE,
    )

    assert foreign.status_code == 422, foreign.text
    detail = foreign.json()["detail"]
    assert "currency" in detail and repr(currency) in detail and "USD" in detail
    assert table_counts(engine) == before  # nothing written
    # the ledger still takes USD for everyone, and self-pay invoicing still works
    paid = client.post(f"{API}/patients/{first}/payments", json={"amount": "10"}, headers=FINANCE)
    explicit = client.post(
        f"{API}/patients/{second}/payments",
        json={"amount": "5.00", "currency": "USD"},
        headers=FINANCE,
    )
    invoice = client.post(
        f"{API}/patients/{second}/invoices", json={"self_pay": True}, headers=FINANCE
    )
    assert (paid.status_code, explicit.status_code) == (201, 201), (paid.text, explicit.text)
    assert invoice.status_code == 201, invoice.text
    assert invoice.json()["currency"] == "USD"


@pytest.mark.parametrize("route", ["payments", "refunds"])
@pytest.mark.parametrize(
    ("at", "message"),
    [
        ("9999-12-31T00:00:00Z", "is in the future"),
        ("1900-01-01T00:00:00Z", "is before 2011-01-01"),
    ],
    ids=["9999-12-31", "1900-01-01"],
)
def test_payments_and_refunds_dated_far_away_are_refused(
    client: TestClient,
    engine: Engine,
    patients: tuple[str, str],
    route: str,
    at: str,
    message: str,
) -> None:
    first, _ = patients
    paid = client.post(f"{API}/patients/{first}/payments", json={"amount": "20"}, headers=FINANCE)
    assert paid.status_code == 201, paid.text
    before = table_counts(engine)

    response = client.post(
        f"{API}/patients/{first}/{route}", json={"amount": "10", "at": at}, headers=FINANCE
    )

    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("at ") and message in response.json()["detail"]
    assert table_counts(engine) == before


def test_a_payment_with_nothing_owed_shows_as_a_credit_balance(
    client: TestClient, patients: tuple[str, str]
) -> None:
    first, second = patients
    invoice = client.post(
        f"{API}/patients/{second}/invoices", json={"self_pay": True}, headers=FINANCE
    )
    assert invoice.status_code == 201, invoice.text  # the second now owes 40.00
    for patient, amount in ((first, "30.00"), (second, "25.00")):
        paid = client.post(
            f"{API}/patients/{patient}/payments", json={"amount": amount}, headers=FINANCE
        )
        assert paid.status_code == 201, paid.text

    nothing_owed = client.get(f"{API}/patients/{first}/statement", headers=FINANCE).json()
    owing = client.get(f"{API}/patients/{second}/statement", headers=FINANCE).json()

    assert (nothing_owed["balance_due"], nothing_owed["credit_balance"]) == ("0.00", "30.00")
    assert (owing["balance_due"], owing["credit_balance"]) == ("15.00", "0.00")  # 40 − 25


def test_the_command_line_refuses_a_chargemaster_in_another_currency(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from serving.cli import app

    csv_path = tmp_path / "prices.csv"
    csv_path.write_text(
        chargemaster_csv(
            [
                f"{SNOMED},185349003,Visit,125.00,USD,,,2024-01-01,",
                f"{SNOMED},X,Euro,9,EUR,,,2024-01-01,",
            ]
        ),
        encoding="utf-8",
    )
    db = f"sqlite:///{tmp_path}/cli.db"
    result = CliRunner().invoke(app, ["chargemaster", "load", str(csv_path), "--db", db])
    assert result.exit_code != 0
    assert "line 3, column 'currency': currency 'EUR' is refused" in " ".join(result.output.split())
    assert "nothing was written" in " ".join(result.output.split())


def test_an_authorization_amount_in_another_currency_is_422(
    client: TestClient, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_scope(session_factory) as session:
        payer = make_organization(session, name="Payer", type_code="pay").id
        patient = make_patient(session).id
    before = table_counts(engine)
    response = client.post(
        f"{API}/authorizations",
        json={
            "patient_id": patient,
            "payer_id": payer,
            "kind": "cashless-preauth",
            "service_categories": ["inpatient_admission"],
            "requested_amount": "45000.00",
            "currency": "INR",
        },
        headers=FINANCE,
    )
    assert response.status_code == 422, response.text
    assert "currency 'INR' is refused: HealthOS keeps its money in USD" in response.json()["detail"]
    assert table_counts(engine) == before
