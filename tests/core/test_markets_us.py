"""US market and market selection (billing-facts.md §3: X12 5010, 42 CFR 424.44, CARC 29)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest

from healthos_core.billing.markets import (
    MARKET_CODES,
    MARKET_EXTENSION_URL,
    TaxableCharge,
    facility_market_code,
    get_market,
    round_money,
)
from healthos_core.billing.markets.india import IndiaMarket
from healthos_core.billing.markets.uk import UKMarket
from healthos_core.billing.markets.us import (
    CARC_SYSTEM,
    CARC_TIMELY_FILING,
    CAS_GROUP_CODES,
    HCPCS_SYSTEM,
    ICD10CM_SYSTEM,
    RARC_SYSTEM,
    X12_835,
    X12_837I,
    X12_837P,
    USMarket,
    filing_deadline,
    medicare_filing_deadline,
)
from healthos_core.errors import InvalidInputError, PricingError
from healthos_core.record.entities import Organization
from healthos_core.settings import get_settings


@pytest.fixture
def market_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Let a test set HEALTHOS_MARKET; settings are re-read before and after."""
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def facility(code: str | None) -> Organization:
    resource: dict[str, object] = {"resourceType": "Organization", "id": "f1"}
    if code is not None:
        resource["extension"] = [{"url": MARKET_EXTENSION_URL, "valueCode": code}]
    return Organization(id="f1", name="Hospital", resource=resource)


# --------------------------------------------------------------------------- US rules


def test_us_market_levies_no_tax_on_a_hospital_charge() -> None:
    market = get_market("US")
    assert isinstance(market, USMarket)
    assert (market.code, market.currency) == ("US", "USD")
    room = TaxableCharge(
        code="0110", unit_price=Decimal("6000"), currency="USD", tax_category="room"
    )
    assert market.tax_lines(room) == []


def test_us_claim_code_systems_and_x12_versions() -> None:
    assert ICD10CM_SYSTEM == "http://hl7.org/fhir/sid/icd-10-cm"
    assert HCPCS_SYSTEM == "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
    # Same URIs as the shared synthea-rcm ClaimResponses.
    assert CARC_SYSTEM == "https://x12.org/codes/claim-adjustment-reason-codes"
    assert RARC_SYSTEM == "https://x12.org/codes/remittance-advice-remark-codes"
    assert (X12_837P, X12_837I, X12_835) == ("005010X222A1", "005010X223A2", "005010X221A1")
    assert CAS_GROUP_CODES == {"CO", "PR", "OA", "PI", "CR"}
    assert CARC_TIMELY_FILING == "29"
    assert USMarket.diagnosis_system == ICD10CM_SYSTEM


def test_us_filing_deadline_comes_from_the_contract_days() -> None:
    assert filing_deadline(dt.date(2024, 1, 31), limit_days=90) == dt.date(2024, 4, 30)
    assert filing_deadline(dt.date(2024, 1, 31), limit_days=180) == dt.date(2024, 7, 29)


@pytest.mark.parametrize("bad", [0, -30, 90.0, True])
def test_us_filing_deadline_refuses_a_bad_limit(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="positive number of days"):
        filing_deadline(dt.date(2024, 1, 1), limit_days=bad)  # type: ignore[arg-type]


def test_us_filing_deadline_refuses_a_datetime() -> None:
    with pytest.raises(InvalidInputError, match="must be a date"):
        filing_deadline(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), limit_days=90)


@pytest.mark.parametrize(
    ("service", "deadline"),
    [
        (dt.date(2024, 3, 15), dt.date(2025, 3, 15)),
        (dt.date(2024, 2, 29), dt.date(2025, 2, 28)),  # no 29 Feb 2025
        (dt.date(2023, 12, 31), dt.date(2024, 12, 31)),
    ],
)
def test_us_medicare_filing_deadline_is_12_months_after_service(
    service: dt.date, deadline: dt.date
) -> None:
    assert medicare_filing_deadline(service) == deadline


def test_us_pricing_hook_is_the_chargemaster_price() -> None:
    market = USMarket()
    price = market.price_service(code="99213", on=dt.date(2024, 1, 1), list_price=Decimal("125"))
    assert price == Decimal("125.00")
    with pytest.raises(PricingError, match="no chargemaster price for '99213'"):
        market.price_service(code="99213", on=dt.date(2024, 1, 1), list_price=None)


def test_round_money_is_half_up_and_refuses_floats() -> None:
    assert round_money(Decimal("0.005")) == Decimal("0.01")
    assert round_money(Decimal("2.675")) == Decimal("2.68")
    with pytest.raises(InvalidInputError, match="never a float"):
        round_money(2.675)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- market selection


def test_get_market_defaults_to_healthos_market(market_env: pytest.MonkeyPatch) -> None:
    market_env.delenv("HEALTHOS_MARKET", raising=False)
    get_settings.cache_clear()
    assert isinstance(get_market(), USMarket)
    market_env.setenv("HEALTHOS_MARKET", "IN")
    get_settings.cache_clear()
    assert isinstance(get_market(), IndiaMarket)


def test_get_market_prefers_the_facility_extension_over_settings(
    market_env: pytest.MonkeyPatch,
) -> None:
    market_env.setenv("HEALTHOS_MARKET", "US")
    get_settings.cache_clear()
    assert isinstance(get_market(facility=facility("IN")), IndiaMarket)
    assert isinstance(get_market(facility=facility("uk")), UKMarket)
    assert isinstance(get_market(facility=facility(None)), USMarket)
    assert isinstance(get_market(facility=Organization(id="f2")), USMarket)  # no resource


def test_get_market_explicit_code_wins_over_the_facility() -> None:
    assert isinstance(get_market("US", facility=facility("IN")), USMarket)


def test_get_market_reads_a_plain_fhir_organization_dict() -> None:
    extensions = [{"url": "x", "valueCode": "UK"}]
    org = {"resourceType": "Organization", "extension": extensions}
    assert facility_market_code(org) is None
    extensions.append({"url": MARKET_EXTENSION_URL, "valueCode": "IN"})
    assert get_market(facility=org).code == "IN"


def test_get_market_refuses_unknown_codes_naming_where_they_came_from() -> None:
    with pytest.raises(InvalidInputError, match=r"unknown market 'FR' \(from code\)"):
        get_market("FR")
    with pytest.raises(InvalidInputError, match=r"'DE' \(from facility extension\)"):
        get_market(facility=facility("DE"))


def test_facility_extension_without_value_is_refused() -> None:
    org = {"extension": [{"url": MARKET_EXTENSION_URL}]}
    with pytest.raises(InvalidInputError, match="has no valueCode"):
        get_market(facility=org)


def test_every_market_code_has_a_market_with_its_currency() -> None:
    currencies = {code: get_market(code).currency for code in MARKET_CODES}
    assert currencies == {"US": "USD", "IN": "INR", "UK": "GBP"}
