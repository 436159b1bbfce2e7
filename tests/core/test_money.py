"""One currency per ledger (issue 9, item 1): the rule, and the paths outside the ledger.

``healthos_core.billing.money`` answers which currency the deployment keeps its money
in; contracts, authorisations and charge capture ask it before writing. The ledger's own
paths (payments, refunds, charges, claims, write-offs, remittances) are tested in
``test_ledger.py`` and ``test_remittance.py``.
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from healthos_core.billing.capture import CaptureSettings, register
from healthos_core.billing.entities import ChargeItem
from healthos_core.billing.ledger import JournalEntry
from healthos_core.billing.markets import MARKET_EXTENSION_URL
from healthos_core.billing.money import (
    CLOCK_SKEW,
    check_currency,
    check_payment_time,
    earliest_payment_time,
    ledger_currency,
)
from healthos_core.billing.payers import load_contracts_csv, request_authorization
from healthos_core.errors import InvalidInputError
from healthos_core.events import EventBus
from healthos_core.record.entities import Organization, Procedure
from healthos_core.record.service import record_procedure
from tests.conftest import SHARED_DATA, table_counts
from tests.factories import SNOMED, T0, make_chargemaster, make_encounter, make_organization

RCM = SHARED_DATA / "synthea-rcm"
GOOD_CONTRACT = (
    "Acme Private PPO,payer-acme-ppo,Commercial PPO,HIP,120,0.7,0.75,0.8,0.15,20,50,100,"
    "inpatient_admission,,,,"
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "USD"),
        ({"HEALTHOS_MARKET": "IN"}, "INR"),
        ({"HEALTHOS_MARKET": "UK"}, "GBP"),
        ({"HEALTHOS_MARKET": "IN", "HEALTHOS_CURRENCY": "usd"}, "USD"),  # configured wins
    ],
)
def test_ledger_currency_is_the_markets_unless_configured(
    settings_env: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name in ("HEALTHOS_MARKET", "HEALTHOS_CURRENCY"):
        settings_env.delenv(name, raising=False)
    for name, value in env.items():
        settings_env.setenv(name, value)
    assert ledger_currency() == expected
    assert check_currency(None) == check_currency(expected.lower()) == expected


def test_a_malformed_configured_currency_is_refused(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("HEALTHOS_CURRENCY", "dollars")
    with pytest.raises(InvalidInputError, match="HEALTHOS_CURRENCY='dollars' is not an ISO 4217"):
        ledger_currency()


def test_a_facility_must_keep_the_deployments_currency() -> None:
    def facility(code: str) -> Organization:
        extension = [{"url": MARKET_EXTENSION_URL, "valueCode": code}]
        return Organization(id="f1", name="H", resource={"extension": extension})

    assert ledger_currency(facility=facility("US")) == "USD"
    with pytest.raises(InvalidInputError, match="market IN keeps its money in INR, but"):
        check_currency("USD", facility=facility("IN"))


@pytest.mark.parametrize("given", ["EUR", "XXX", "GBP"])
def test_check_currency_names_the_field_the_value_and_the_expected_currency(given: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        check_currency(given, field="body.currency")
    assert str(raised.value).startswith(
        f"body.currency {given!r} is refused: HealthOS keeps its money in USD"
    )


def test_payment_time_bounds() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert check_payment_time(now + CLOCK_SKEW, now=now) == now + CLOCK_SKEW
    assert check_payment_time(earliest_payment_time(), now=now) == earliest_payment_time()
    with pytest.raises(InvalidInputError, match="is in the future"):
        check_payment_time(now + CLOCK_SKEW + dt.timedelta(seconds=1), now=now)
    with pytest.raises(InvalidInputError, match="is before 2011-01-01"):
        check_payment_time(earliest_payment_time() - dt.timedelta(seconds=1), now=now)


@pytest.mark.parametrize("currency", ["EUR", "XXX"])
def test_contract_copays_in_another_currency_are_refused(
    session: Session, engine: Engine, currency: str
) -> None:
    make_organization(session, id="payer-acme-ppo", name="Acme", type_code="pay")
    session.commit()
    header = (RCM / "contracts.csv").read_text(encoding="utf-8").splitlines()[0]
    text = io.StringIO(f"{header},currency\n{GOOD_CONTRACT},{currency}\n")
    text.name = "contracts.csv"
    before = table_counts(engine)
    with pytest.raises(InvalidInputError, match=f"column 'currency'.*'{currency}' is refused"):
        load_contracts_csv(session, text)
    session.rollback()
    assert table_counts(engine) == before


def test_an_authorization_amount_in_another_currency_is_refused(session: Session) -> None:
    make_organization(session, id="payer-acme-ppo", name="Acme", type_code="pay")
    patient = make_encounter(session).patient_id
    with pytest.raises(InvalidInputError, match=r"currency 'INR' is refused.* in USD"):
        request_authorization(
            session,
            patient_id=patient,
            payer_id="payer-acme-ppo",
            requested_by="desk",
            kind="cashless-preauth",
            service_categories=["inpatient_admission"],
            requested_amount="150000",
            currency="INR",
            requested_at=T0,
        )
    request = request_authorization(
        session,
        patient_id=patient,
        payer_id="payer-acme-ppo",
        requested_by="desk",
        service_categories=["inpatient_admission"],
        requested_amount="1500",
        requested_at=T0,
    )
    assert request.currency == "USD"


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
def test_capture_never_charges_a_price_kept_in_another_currency(
    session: Session, strict: bool
) -> None:
    # an entry loaded before the one-currency rule (loads now refuse it)
    make_chargemaster(session, [{"code": "73761001", "unit_price": "900", "currency": "EUR"}])
    encounter = make_encounter(session)
    bus = EventBus()
    register(bus, settings=CaptureSettings(strict=strict))

    def record() -> None:
        record_procedure(
            session,
            encounter_id=encounter.id,
            code_system=SNOMED,
            code="73761001",
            display="Colonoscopy",
            performed_at=T0 + dt.timedelta(hours=1),
            bus=bus,
        )

    if strict:
        with pytest.raises(InvalidInputError, match="currency 'EUR' is refused"):
            record()
        return
    record()  # the clinical fact is recorded, without a charge
    assert session.scalar(select(func.count()).select_from(Procedure)) == 1
    assert session.scalar(select(func.count()).select_from(ChargeItem)) == 0
    assert session.scalar(select(func.count()).select_from(JournalEntry)) == 0


def test_money_without_a_currency_is_read_and_written_in_the_ledger_currency(
    settings_env: pytest.MonkeyPatch,
) -> None:
    # A ChargeItem imported without priceOverride.currency, and a price exported without
    # one, are in the deployment's currency, not a hard-coded USD.
    from healthos_core.fhir.exporter import _money
    from healthos_core.fhir.mapping import MappingContext, map_charge_item

    settings_env.delenv("HEALTHOS_CURRENCY", raising=False)
    settings_env.setenv("HEALTHOS_MARKET", "UK")
    charge = {
        "resourceType": "ChargeItem",
        "id": "ci-1",
        "status": "billable",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1"}]},
        "priceOverride": {"value": 12.5},
    }
    rows = map_charge_item(charge, MappingContext()).rows["charge_item"]
    assert [row["currency"] for row in rows] == ["GBP"]
    assert _money(Decimal("12.50"), None) == {"value": 12.5, "currency": "GBP"}
