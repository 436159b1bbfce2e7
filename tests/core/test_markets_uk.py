"""UK market: NHS Payment Scheme pricing, HRG unit price × market forces factor.

billing-facts.md §5 gives the rule and the 2023/25 scheme period but no HRG prices, so the
HRG codes and prices below are synthetic test inputs (``XX01A`` …); what is golden is the
rule: unit price × MFF, exact in Decimal, rounded once to the penny, half up; effective
dating with an exclusive end.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from healthos_core.billing.markets import TaxableCharge, get_market
from healthos_core.billing.markets.uk import (
    MFF_COLUMNS,
    NHSPS_2023_25_FROM,
    NHSPS_2023_25_TO,
    SAMPLE_TARIFF,
    TARIFF_COLUMNS,
    Tariff,
    TariffEntry,
    UKMarket,
    load_mff_csv,
    load_tariff_csv,
    price_activity,
)
from healthos_core.errors import InvalidInputError, NotFoundError, PricingError

HEADER = ",".join(TARIFF_COLUMNS)


def write(tmp_path: Path, text: str, name: str = "tariff.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def tariff(tmp_path: Path) -> Tariff:
    return load_tariff_csv(
        write(
            tmp_path,
            "# synthetic test tariff\n"
            f"{HEADER}\n"
            "XX01A,Synthetic spell A 2023/24,1000.00,2023-04-01,2024-04-01\n"
            "XX01A,Synthetic spell A 2024/25,1050.00,2024-04-01,2025-04-01\n"
            "xx02b,Synthetic attendance,100.10,2023-04-01,\n",
        )
    )


# --------------------------------------------------------------------------- pricing


def test_nhsps_price_is_unit_price_times_mff(tariff: Tariff) -> None:
    price = price_activity(tariff, hrg_code="XX01A", on=dt.date(2023, 10, 1), mff=Decimal("1.0235"))
    assert price == Decimal("1023.50")


def test_nhsps_price_rounds_once_to_the_penny_half_up(tariff: Tariff) -> None:
    # 100.10 × 1.05 = 105.105 -> 105.11 (half up; banker's rounding would give 105.10)
    assert price_activity(
        tariff, hrg_code="XX02B", on=dt.date(2024, 1, 1), mff=Decimal("1.05")
    ) == Decimal("105.11")
    # 1000.00 × 1.012345 = 1012.345 -> 1012.35; the MFF is not rounded first (1.01 -> 1010.00)
    assert price_activity(
        tariff, hrg_code="XX01A", on=dt.date(2024, 1, 1), mff=Decimal("1.012345")
    ) == Decimal("1012.35")


def test_nhsps_mff_of_one_is_the_unit_price(tariff: Tariff) -> None:
    assert price_activity(
        tariff, hrg_code="xx01a", on=dt.date(2024, 1, 1), mff=Decimal("1")
    ) == Decimal("1000.00")


def test_nhsps_effective_dating_uses_an_exclusive_end(tariff: Tariff) -> None:
    one = Decimal("1")
    last_day = price_activity(tariff, hrg_code="XX01A", on=dt.date(2024, 3, 31), mff=one)
    first_day = price_activity(tariff, hrg_code="XX01A", on=dt.date(2024, 4, 1), mff=one)
    assert (last_day, first_day) == (Decimal("1000.00"), Decimal("1050.00"))


def test_nhsps_no_price_outside_the_tariff_periods(tariff: Tariff) -> None:
    with pytest.raises(
        PricingError, match=r"no unit price on 2023-03-31.*\[2023-04-01, 2024-04-01\)"
    ):
        price_activity(tariff, hrg_code="XX01A", on=dt.date(2023, 3, 31), mff=Decimal("1"))
    with pytest.raises(PricingError, match="no unit price on 2025-04-01"):
        price_activity(tariff, hrg_code="XX01A", on=dt.date(2025, 4, 1), mff=Decimal("1"))


def test_nhsps_unknown_hrg_is_a_pricing_error(tariff: Tariff) -> None:
    with pytest.raises(PricingError, match=r"HRG 'ZZ99Z' is not in tariff .*tariff.csv \(2 HRGs\)"):
        price_activity(tariff, hrg_code="ZZ99Z", on=dt.date(2024, 1, 1), mff=Decimal("1"))


@pytest.mark.parametrize("mff", [1.02, Decimal("0"), Decimal("-1"), Decimal("NaN"), "1.02"])
def test_nhsps_mff_must_be_a_positive_decimal(tariff: Tariff, mff: object) -> None:
    with pytest.raises(InvalidInputError, match="positive Decimal"):
        price_activity(tariff, hrg_code="XX01A", on=dt.date(2024, 1, 1), mff=mff)  # type: ignore[arg-type]


def test_nhsps_pricing_day_must_be_a_date_not_a_datetime(tariff: Tariff) -> None:
    with pytest.raises(InvalidInputError, match="must be a date"):
        price_activity(
            tariff,
            hrg_code="XX01A",
            on=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
            mff=Decimal("1"),
        )


def test_tariff_built_in_code_prices_too() -> None:
    tariff = Tariff(
        "in-code",
        (
            TariffEntry(
                hrg_code="XX03C", unit_price=Decimal("2500.00"), effective_from=NHSPS_2023_25_FROM
            ),
        ),
    )
    assert "xx03c" in tariff
    assert price_activity(
        tariff, hrg_code="XX03C", on=NHSPS_2023_25_TO, mff=Decimal("0.98")
    ) == Decimal("2450.00")


# --------------------------------------------------------------------------- the UK market


def test_uk_market_prices_hrgs_by_facility_mff_and_other_codes_from_the_chargemaster(
    tariff: Tariff,
) -> None:
    market = UKMarket(tariff, {"trust-north": Decimal("0.9876"), "trust-london": Decimal("1.1500")})
    on = dt.date(2024, 6, 1)
    assert market.price_service(
        code="XX01A", on=on, list_price=None, facility_id="trust-london"
    ) == Decimal("1207.50")  # 1050.00 × 1.15
    assert market.price_service(
        code="XX01A", on=on, list_price=None, facility_id="trust-north"
    ) == Decimal("1036.98")  # 1050.00 × 0.9876 = 1036.98
    assert market.price_service(
        code="PRIVATE-ROOM", on=on, list_price=Decimal("450"), facility_id="trust-north"
    ) == Decimal("450.00")
    with pytest.raises(PricingError, match="no market forces factor for facility 'trust-west'"):
        market.price_service(code="XX01A", on=on, list_price=None, facility_id="trust-west")


def test_uk_market_has_no_tax_lines_and_prices_in_gbp() -> None:
    market = get_market("UK")
    assert isinstance(market, UKMarket)
    assert market.currency == "GBP"
    assert market.tariff is None
    assert (
        market.tax_lines(TaxableCharge(code="XX01A", unit_price=Decimal("1"), currency="GBP")) == []
    )


# --------------------------------------------------------------------------- CSV validation


def test_tariff_csv_reports_every_bad_cell_with_file_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{HEADER}\n"
        "XX01A,ok,1000.00,2023-04-01,2024-04-01\n"  # line 2
        ",no code,10,2023-04-01,\n"  # line 3
        'XX02B,pounds,"£1,000",2023-04-01,\n'  # line 4
        "XX03C,negative,-5,2023-04-01,\n"  # line 5
        "XX04D,three places,10.005,2023-04-01,\n"  # line 6
        "XX05E,bad date,10,01/04/2023,\n"  # line 7
        "XX06F,end before start,10,2024-04-01,2024-04-01\n"  # line 8
        "XX07 G,space,10,2023-04-01,\n"  # line 9
        "XX08H,short row,10\n"  # line 10
        "XX01A,overlap,1100.00,2024-01-01,\n",  # line 11
    )
    with pytest.raises(InvalidInputError) as raised:
        load_tariff_csv(path)
    message = str(raised.value)
    assert "nothing was loaded" in message
    expected = [
        (3, "hrg_code", "is empty"),
        (4, "unit_price_gbp", "'£1,000' is not a decimal number"),
        (5, "unit_price_gbp", "-5 is negative"),
        (6, "unit_price_gbp", "more than 2 decimal places"),
        (7, "effective_from", "'01/04/2023' is not a date in YYYY-MM-DD form"),
        (8, "effective_to", "is not after effective_from"),
        (9, "hrg_code", "'XX07 G' is not an HRG code"),
        (11, "effective_from", "overlaps [2023-04-01, 2024-04-01) on line 2"),
    ]
    for line, column, text in expected:
        assert f"{path}, line {line}, column {column}: " in message
        assert text in message
    assert f"{path}, line 10: has 3 cells; the header has 5 columns" in message
    assert "problem(s)" in message


def test_tariff_csv_counts_problems_beyond_the_first_ten(tmp_path: Path) -> None:
    rows = "".join(f"XX{i:02d}A,bad,abc,2023-04-01,\n" for i in range(12))
    with pytest.raises(InvalidInputError, match=r"(?s)12 problem\(s\).*and 2 more problem"):
        load_tariff_csv(write(tmp_path, f"{HEADER}\n{rows}"))


def test_tariff_csv_refuses_a_wrong_header(tmp_path: Path) -> None:
    path = write(tmp_path, "hrg,description,unit_price_gbp,effective_from,effective_to\n")
    with pytest.raises(
        InvalidInputError, match=r"line 1: missing column\(s\) hrg_code; unknown column\(s\) 'hrg'"
    ):
        load_tariff_csv(path)


def test_tariff_csv_header_line_number_counts_comment_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "# a comment\n# another\nhrg_code,price\n")
    with pytest.raises(InvalidInputError, match=r"tariff.csv, line 3: missing column"):
        load_tariff_csv(path)


def test_tariff_csv_line_numbers_count_comments_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, f"# note\n{HEADER}\n\n# mid comment\nXX01A,x,oops,2023-04-01,\n")
    with pytest.raises(InvalidInputError, match=r"line 5, column unit_price_gbp"):
        load_tariff_csv(path)


def test_tariff_csv_columns_in_any_order_and_open_ended(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "effective_to,unit_price_gbp,hrg_code,effective_from,description\n"
        ",99.9,XX09Z,2023-04-01,\n",
    )
    tariff = load_tariff_csv(path)
    (entry,) = tariff.entries
    assert entry == TariffEntry(
        hrg_code="XX09Z",
        description=None,
        unit_price=Decimal("99.90"),
        effective_from=dt.date(2023, 4, 1),
        effective_to=None,
        line=2,
    )


def test_tariff_csv_malformed_quoting_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, f'{HEADER}\nXX01A,ok,1.00,2023-04-01,\nXX02B,"unterminated,1,2023-04-01,\n'
    )
    with pytest.raises(InvalidInputError, match=r"line \d+: malformed CSV"):
        load_tariff_csv(path)


def test_tariff_csv_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such file"):
        load_tariff_csv(tmp_path / "nope.csv")
    with pytest.raises(InvalidInputError, match="no header line"):
        load_tariff_csv(write(tmp_path, "# only a comment\n\n"))


def test_shipped_sample_tariff_has_the_documented_columns_and_no_invented_prices() -> None:
    tariff = load_tariff_csv(SAMPLE_TARIFF)
    assert len(tariff) == 0
    text = SAMPLE_TARIFF.read_text(encoding="utf-8")
    assert HEADER in text.splitlines()
    assert "billing-facts.md" in text and "NO HRG unit price" in text
    with pytest.raises(PricingError, match=r"\(0 HRGs\)"):
        price_activity(tariff, hrg_code="XX01A", on=dt.date(2024, 1, 1), mff=Decimal("1"))


def test_mff_csv_loads_decimals_per_facility(tmp_path: Path) -> None:
    path = write(
        tmp_path, f"# MFF\n{','.join(MFF_COLUMNS)}\ntrust-a,1.0234567\ntrust-b,0.95\n", "mff.csv"
    )
    factors = load_mff_csv(path)
    assert factors == {"trust-a": Decimal("1.0234567"), "trust-b": Decimal("0.95")}
    assert all(isinstance(v, Decimal) for v in factors.values())


def test_mff_csv_errors_name_file_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "facility_id,mff\ntrust-a,1.02\ntrust-a,1.03\ntrust-b,0\ntrust-c,abc\n,1\ntrust-d,\n",
        "mff.csv",
    )
    with pytest.raises(InvalidInputError) as raised:
        load_mff_csv(path)
    message = str(raised.value)
    assert f"{path}, line 3, column facility_id: 'trust-a' is already on line 2" in message
    assert f"{path}, line 4, column mff: 0 is not positive" in message
    assert f"{path}, line 5, column mff: 'abc' is not a decimal number" in message
    assert f"{path}, line 6, column facility_id: is empty" in message
    assert f"{path}, line 7, column mff: is empty" in message
