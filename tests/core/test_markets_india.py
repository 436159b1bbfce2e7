"""India market: golden GST cases and IRDAI cashless clocks, from billing-facts.md §4.

GST sources: Notification No. 12/2017-CT(Rate) Sl. No. 74 (health care exempt); GST Council
47th meeting, from 18.07.2022, Notification No. 04/2022-CT(Rate) (room rent excluding
ICU/CCU/ICCU/NICU above INR 5,000 per day per patient: 5 % without ITC "on the amount charged
for the room"). Clocks: IRDAI Master Circular on Health Insurance, 29 May 2024 (cashless
authorisation within 1 hour; discharge authorisation within 3 hours of the request).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from healthos_core.billing.entities import ChargeItem, ChargemasterEntry
from healthos_core.billing.markets import TaxableCharge, TaxLine, get_market
from healthos_core.billing.markets.india import (
    ROOM_RENT_GST_FROM,
    IndiaMarket,
    gst_tax_lines,
    tpa_clock,
)
from healthos_core.errors import InvalidInputError

ON = dt.date(2024, 8, 1)
IST = ZoneInfo("Asia/Kolkata")


def charge(
    price: str,
    category: str | None,
    *,
    quantity: str = "1",
    location_kind: str | None = None,
    on: dt.date | None = ON,
    separate_supply: bool = True,
    currency: str = "INR",
) -> TaxableCharge:
    return TaxableCharge(
        code="X",
        unit_price=Decimal(price),
        quantity=Decimal(quantity),
        currency=currency,
        tax_category=category,
        location_kind=location_kind,
        service_date=on,
        separate_supply=separate_supply,
    )


def only(lines: list[TaxLine]) -> TaxLine:
    assert len(lines) == 1
    return lines[0]


# --------------------------------------------------------------------------- GST golden cases


def test_gst_room_rent_of_exactly_5000_a_day_is_exempt() -> None:
    line = only(gst_tax_lines(charge("5000.00", "room")))
    assert line.tax_code == "GST-EXEMPT"
    assert line.rate_percent == 0
    assert line.amount == Decimal("0.00")
    assert line.taxable_amount == Decimal("5000.00")
    assert line.rule == "IN-GST-ROOM-RENT-UPTO-5000"


def test_gst_room_rent_of_5001_is_taxed_5_percent_on_the_whole_room_charge() -> None:
    # "taxed ... on the amount charged for the room": 5 % of 5,001, not of the 1 above 5,000.
    line = only(gst_tax_lines(charge("5001.00", "room")))
    assert line.tax_code == "GST"
    assert line.rate_percent == Decimal("5")
    assert line.taxable_amount == Decimal("5001.00")
    assert line.amount == Decimal("250.05")
    assert line.input_tax_credit is False
    assert line.rule == "IN-GST-ROOM-RENT"
    assert "04/2022" in line.source
    assert line.currency == "INR"


def test_gst_room_rent_one_paisa_above_the_threshold_is_taxed() -> None:
    line = only(gst_tax_lines(charge("5000.01", "room-rent")))
    assert line.tax_code == "GST"
    assert line.amount == Decimal("250.00")  # 250.0005 rounded half up to the paisa


def test_gst_room_rent_aiims_example_6000_a_day_for_three_days() -> None:
    # AIIMS Delhi, July 2022 (Mint): "Room rent: 6,000 + GST 5% = 6,300 per day".
    line = only(gst_tax_lines(charge("6000", "room", quantity="3")))
    assert line.taxable_amount == Decimal("18000.00")
    assert line.amount == Decimal("900.00")
    assert line.taxable_amount / 3 + line.amount / 3 == Decimal("6300")


def test_gst_threshold_is_per_day_not_per_stay() -> None:
    # 4 days at 4,000 = 16,000 for the stay, but 4,000 a day: exempt.
    line = only(gst_tax_lines(charge("4000", "room", quantity="4")))
    assert line.tax_code == "GST-EXEMPT"
    assert line.taxable_amount == Decimal("16000.00")


@pytest.mark.parametrize("kind", ["icu", "ICU", "ccu", "iccu", "nicu"])
def test_gst_intensive_care_room_above_5000_is_exempt_by_location(kind: str) -> None:
    line = only(gst_tax_lines(charge("12000", "room", location_kind=kind)))
    assert line.tax_code == "GST-EXEMPT"
    assert line.amount == 0
    assert line.rule == "IN-GST-ICU-ROOM-EXEMPT"
    assert "ICU/CCU/ICCU/NICU" in line.source


@pytest.mark.parametrize("category", ["room-icu", "room-ccu", "room-iccu", "room-nicu"])
def test_gst_intensive_care_room_above_5000_is_exempt_by_category(category: str) -> None:
    line = only(gst_tax_lines(charge("9000", category, location_kind="ward")))
    assert line.tax_code == "GST-EXEMPT"


def test_gst_ward_location_does_not_exempt_a_room_above_5000() -> None:
    assert only(gst_tax_lines(charge("5500", "room", location_kind="ward"))).tax_code == "GST"


def test_gst_room_rent_levy_starts_on_18_july_2022() -> None:
    before = only(gst_tax_lines(charge("7000", "room", on=dt.date(2022, 7, 17))))
    first_day = only(gst_tax_lines(charge("7000", "room", on=ROOM_RENT_GST_FROM)))
    assert before.tax_code == "GST-EXEMPT"
    assert first_day.tax_code == "GST"
    assert first_day.amount == Decimal("350.00")


@pytest.mark.parametrize(
    ("category", "rate", "amount"),
    [
        ("gst-12", Decimal("12"), Decimal("36.00")),  # 3 × 100.00 at 12 %
        ("gst-5", Decimal("5"), Decimal("15.00")),
        ("GST-18", Decimal("18"), Decimal("54.00")),
        ("gst-0", Decimal("0"), Decimal("0.00")),  # nil-rated life-saving drug
    ],
)
def test_gst_medicine_supplied_separately_is_taxed_at_its_own_rate(
    category: str, rate: Decimal, amount: Decimal
) -> None:
    line = only(gst_tax_lines(charge("100.00", category, quantity="3")))
    assert line.tax_code == "GST"
    assert line.rate_percent == rate
    assert line.taxable_amount == Decimal("300.00")
    assert line.amount == amount
    assert line.input_tax_credit is True


def test_gst_medicine_rate_rounds_half_up_to_the_paisa() -> None:
    # 5 % of 10.10 = 0.505 -> 0.51 (half up; banker's rounding would give 0.50)
    line = only(gst_tax_lines(charge("10.10", "gst-5")))
    assert line.amount == Decimal("0.51")


def test_gst_is_levied_on_the_amount_charged_when_it_differs_from_price_times_days() -> None:
    discounted = TaxableCharge(
        code="ROOM",
        unit_price=Decimal("6000"),
        quantity=Decimal("2"),
        amount=Decimal("11000.00"),
        currency="INR",
        tax_category="room",
        service_date=ON,
    )
    line = only(gst_tax_lines(discounted))
    assert (line.taxable_amount, line.amount) == (Decimal("11000.00"), Decimal("550.00"))


def test_gst_room_discounted_to_5000_a_day_or_less_is_exempt() -> None:
    # list price 6,000 a day, charged 9,800 for 2 days = 4,900 a day: under the threshold.
    discounted = TaxableCharge(
        code="ROOM",
        unit_price=Decimal("6000"),
        quantity=Decimal("2"),
        amount=Decimal("9800.00"),
        currency="INR",
        tax_category="room",
        service_date=ON,
    )
    assert only(gst_tax_lines(discounted)).tax_code == "GST-EXEMPT"


def test_gst_medicine_in_an_inpatient_composite_supply_takes_the_exemption() -> None:
    line = only(gst_tax_lines(charge("100.00", "gst-12", separate_supply=False)))
    assert line.tax_code == "GST-EXEMPT"
    assert line.rule == "IN-GST-COMPOSITE-HEALTHCARE"


@pytest.mark.parametrize(
    "category", [None, "", "exempt", "consultation", "Laboratory", "diagnostics", "procedure"]
)
def test_gst_consultation_and_other_health_care_services_are_exempt(
    category: str | None,
) -> None:
    line = only(gst_tax_lines(charge("1500", category)))
    assert line.tax_code == "GST-EXEMPT"
    assert line.amount == Decimal("0.00")
    assert line.input_tax_credit is False
    assert line.rule == "IN-GST-HEALTHCARE-EXEMPT"
    assert "12/2017" in line.source and "Sl. No. 74" in line.source


def test_gst_no_charge_that_is_taxed_at_5_percent_room_rate_gets_input_tax_credit() -> None:
    lines = [only(gst_tax_lines(charge(price, "room"))) for price in ("5000.01", "5001", "25000")]
    assert all(line.rate_percent == 5 and not line.input_tax_credit for line in lines)


def test_gst_unknown_tax_category_is_refused_with_the_vocabulary() -> None:
    with pytest.raises(InvalidInputError, match=r"not an India GST category.*gst-<rate>"):
        gst_tax_lines(charge("100", "vat-20"))


def test_gst_charge_not_in_inr_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="in USD"):
        gst_tax_lines(charge("6000", "room", currency="USD"))


def test_taxable_charge_refuses_float_amounts() -> None:
    with pytest.raises(InvalidInputError, match=r"unit_price=6000\.0 is not a finite Decimal"):
        TaxableCharge(code="R", unit_price=6000.0, currency="INR")  # type: ignore[arg-type]


def test_india_market_taxes_a_stored_charge_item_with_its_chargemaster_category() -> None:
    entry = ChargemasterEntry(
        code_system="local",
        code="ROOM-DELUXE",
        unit_price=Decimal("5001.00"),
        currency="INR",
        tax_category="room",
        effective_from=dt.date(2024, 1, 1),
    )
    item = ChargeItem(
        id="c1",
        patient_id="p1",
        code_system="local",
        code="ROOM-DELUXE",
        quantity=Decimal("2"),
        unit_price=Decimal("5001.00"),
        total=Decimal("10002.00"),
        currency="INR",
        occurred_at=dt.datetime(2024, 8, 1, 20, 0, tzinfo=dt.UTC),
    )
    market = get_market("IN")
    assert isinstance(market, IndiaMarket)
    assert market.currency == "INR"
    taxable = TaxableCharge.from_charge_item(item, entry, location_kind="ward")
    assert taxable.reference == "ChargeItem/c1"
    assert taxable.service_date == dt.date(2024, 8, 1)
    line = only(market.tax_lines(taxable))
    assert (line.taxable_amount, line.amount) == (Decimal("10002.00"), Decimal("500.10"))
    icu = TaxableCharge.from_charge_item(item, entry, location_kind="icu")
    assert only(market.tax_lines(icu)).tax_code == "GST-EXEMPT"


# --------------------------------------------------------------------------- TPA clocks

T0 = dt.datetime(2024, 8, 1, 10, 0, tzinfo=IST)


def after(**delta: int) -> dt.datetime:
    return T0 + dt.timedelta(**delta)


def test_tpa_cashless_preauth_decided_at_59_minutes_is_on_time() -> None:
    clock = tpa_clock("cashless-preauth", T0, after(minutes=59), now=after(hours=5))
    assert clock.due_at == after(hours=1)
    assert clock.decided_within is True
    assert clock.breached is False
    assert clock.minutes_remaining_or_overdue == 1
    assert clock.status == "met"
    assert "1 hour" in clock.source


def test_tpa_cashless_preauth_decided_at_exactly_60_minutes_is_on_time() -> None:
    clock = tpa_clock("cashless-preauth", T0, after(minutes=60), now=after(hours=5))
    assert (clock.decided_within, clock.breached, clock.minutes_remaining_or_overdue) == (
        True,
        False,
        0,
    )


def test_tpa_cashless_preauth_decided_at_61_minutes_is_breached() -> None:
    clock = tpa_clock("cashless-preauth", T0, after(minutes=61), now=after(hours=5))
    assert clock.decided_within is False
    assert clock.breached is True
    assert clock.minutes_remaining_or_overdue == -1
    assert clock.overdue_minutes == 1
    assert clock.status == "breached"


def test_tpa_discharge_auth_decided_at_2h59_is_on_time() -> None:
    clock = tpa_clock("discharge-auth", T0, after(hours=2, minutes=59), now=after(hours=4))
    assert clock.due_at == after(hours=3)
    assert (clock.decided_within, clock.breached, clock.minutes_remaining_or_overdue) == (
        True,
        False,
        1,
    )


def test_tpa_discharge_auth_decided_at_3h01_is_breached_and_names_the_consequence() -> None:
    clock = tpa_clock("discharge-auth", T0, after(hours=3, minutes=1), now=after(hours=4))
    assert (clock.decided_within, clock.breached, clock.minutes_remaining_or_overdue) == (
        False,
        True,
        -1,
    )
    assert "shareholders' funds" in clock.source


def test_tpa_undecided_request_before_due_is_running_with_minutes_remaining() -> None:
    clock = tpa_clock("discharge-auth", T0, now=after(hours=1, minutes=15))
    assert clock.decided_at is None
    assert clock.decided_within is None
    assert clock.breached is False
    assert clock.minutes_remaining_or_overdue == 105
    assert clock.status == "running"


def test_tpa_undecided_request_past_due_is_breached_with_overdue_minutes() -> None:
    clock = tpa_clock("cashless-preauth", T0, now=after(hours=1, minutes=25))
    assert clock.decided_within is None
    assert clock.breached is True
    assert clock.minutes_remaining_or_overdue == -25
    assert clock.overdue_minutes == 25
    assert clock.status == "breached"


def test_tpa_undecided_request_30_seconds_past_due_shows_one_overdue_minute() -> None:
    clock = tpa_clock("cashless-preauth", T0, now=after(hours=1, seconds=30))
    assert clock.breached is True
    assert clock.minutes_remaining_or_overdue == -1


def test_tpa_clock_works_across_time_zones() -> None:
    decided_utc = (T0 + dt.timedelta(minutes=45)).astimezone(dt.UTC)
    clock = tpa_clock("cashless-preauth", T0, decided_utc, now=decided_utc)
    assert clock.decided_within is True
    assert clock.minutes_remaining_or_overdue == 15


@pytest.mark.parametrize("which", ["requested_at", "decided_at", "now"])
def test_tpa_clock_refuses_naive_datetimes(which: str) -> None:
    values = {"requested_at": T0, "decided_at": after(minutes=10), "now": after(minutes=20)}
    values[which] = values[which].replace(tzinfo=None)
    with pytest.raises(InvalidInputError, match=rf"{which}=.* is naive"):
        tpa_clock(
            "cashless-preauth", values["requested_at"], values["decided_at"], now=values["now"]
        )


def test_tpa_clock_refuses_us_prior_auth_and_unknown_kinds() -> None:
    with pytest.raises(InvalidInputError, match="no IRDAI clock for kind 'prior-auth'"):
        tpa_clock("prior-auth", T0, now=T0)


def test_tpa_clock_refuses_a_decision_before_the_request() -> None:
    with pytest.raises(InvalidInputError, match="before requested_at"):
        tpa_clock("discharge-auth", T0, after(minutes=-5), now=T0)


def test_tpa_clock_refuses_now_before_an_undecided_request() -> None:
    with pytest.raises(InvalidInputError, match="has not started"):
        tpa_clock("discharge-auth", T0, now=after(minutes=-1))


def test_india_market_exposes_the_clock() -> None:
    market = IndiaMarket()
    clock = market.tpa_clock("cashless-preauth", T0, now=after(minutes=20))
    assert clock.minutes_remaining_or_overdue == 40
