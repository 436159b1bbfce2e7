"""United Kingdom (England): NHS Payment Scheme pricing, HRG unit price × market forces factor.

Sources are those collected in ``shared/billing-facts.md`` §5:

* The Health and Care Act 2022 replaced the National Tariff Payment System with the NHS
  Payment Scheme (NHSPS); the 2023/25 NHSPS is in force from 1 April 2023 (amended for
  2024/25). NHS England, "NHS Payment Scheme" and "2023/25 NHS Payment Scheme (amended)".
  The stored copy of the latter, section 1 para 3, gives its period as 1 April 2023 to
  31 March 2025.
* Activity is priced in Healthcare Resource Groups (HRGs) at NHSPS unit prices (100 % of
  unit prices for activity-based payment and the API elective variable element), and a
  Market Forces Factor (MFF) adjusts for unavoidable regional cost differences of the
  provider. There is no patient co-pay: "billing" is activity recording → grouping →
  pricing against commissioners (HSJ glossary; Grašič, Mason & Street, Health Economics
  Review 2015;5:15, doi:10.1186/s13561-015-0050-x).

HealthOS therefore prices an activity as ``unit price × MFF``, computed exactly in
``Decimal`` and rounded once, at the end, to the penny, half up. The rounding step is a
HealthOS convention: neither billing-facts.md nor the stored NHSPS pages state a rounding
rule; check it against NHSPS Annex D ("Prices and cost adjustments") before relying on
pennies.

Tariff CSV (:func:`load_tariff_csv`), UTF-8, header exactly
``hrg_code,description,unit_price_gbp,effective_from,effective_to``:

* ``hrg_code``: the HRG (letters and digits, e.g. ``AB12C``), required, case-folded to upper;
* ``description``: optional text;
* ``unit_price_gbp``: decimal ≥ 0, at most 2 decimal places, in GBP, required;
* ``effective_from``: ``YYYY-MM-DD``, required; ``effective_to``: ``YYYY-MM-DD``, optional,
  **exclusive** (as in the chargemaster), after ``effective_from``. Periods of one HRG may
  not overlap;
* lines starting with ``#`` are comments; blank lines are skipped.

MFF CSV (:func:`load_mff_csv`), header exactly ``facility_id,mff``: the facility's
Organization id and its MFF, a decimal > 0.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import ClassVar, Final

from healthos_core.billing.markets import (
    Market,
    MarketCode,
    TaxableCharge,
    TaxLine,
    round_money,
)
from healthos_core.errors import InvalidInputError, NotFoundError, PricingError

__all__ = [
    "MFF_COLUMNS",
    "NHSPS_2023_25_FROM",
    "NHSPS_2023_25_TO",
    "SAMPLE_TARIFF",
    "TARIFF_COLUMNS",
    "Tariff",
    "TariffEntry",
    "UKMarket",
    "load_mff_csv",
    "load_tariff_csv",
    "price_activity",
]

logger = logging.getLogger(__name__)

TARIFF_COLUMNS: Final = (
    "hrg_code",
    "description",
    "unit_price_gbp",
    "effective_from",
    "effective_to",
)
MFF_COLUMNS: Final = ("facility_id", "mff")
#: The 2023/25 NHSPS period: from 1 April 2023; ``effective_to`` (exclusive) 1 April 2025.
NHSPS_2023_25_FROM: Final = dt.date(2023, 4, 1)
NHSPS_2023_25_TO: Final = dt.date(2025, 4, 1)
#: The sample tariff shipped with HealthOS (format and scheme period only: no prices).
SAMPLE_TARIFF: Final = (
    Path(__file__).resolve().parents[2] / "data" / "markets" / "nhsps-tariff-sample.csv"
)

_HRG: Final = re.compile(r"[A-Z0-9]{2,16}")
_ISO_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_MAX_PRICE: Final = Decimal("999999999999.99")
_MAX_ERRORS_SHOWN: Final = 10
_PRICING_SOURCE: Final = (
    "NHS Payment Scheme 2023/25 (NHS England): HRG unit price × market forces factor"
)


# --------------------------------------------------------------------------- tariff


@dataclass(frozen=True, kw_only=True)
class TariffEntry:
    """One HRG unit price over an effective period.

    Attributes
    ----------
    hrg_code : str
        Healthcare Resource Group code (upper case).
    description : str or None
        Free text.
    unit_price : Decimal
        NHSPS unit price in GBP, before the market forces factor.
    effective_from : datetime.date
        First day the price applies.
    effective_to : datetime.date or None
        First day it no longer applies (exclusive); ``None`` = open-ended.
    line : int
        Line of the CSV file the entry came from (0 if built in code).
    """

    hrg_code: str
    description: str | None = None
    unit_price: Decimal
    effective_from: dt.date
    effective_to: dt.date | None = None
    line: int = 0

    def applies_on(self, day: dt.date) -> bool:
        """Whether ``effective_from <= day < effective_to``."""
        return self.effective_from <= day and (self.effective_to is None or day < self.effective_to)

    def _period(self) -> str:
        end = self.effective_to.isoformat() if self.effective_to else "open-ended"
        return f"[{self.effective_from.isoformat()}, {end})"


@dataclass(frozen=True)
class Tariff:
    """An NHSPS unit-price tariff: HRG unit prices with effective periods.

    Parameters
    ----------
    source : str
        Where it came from (file path), for messages.
    entries : tuple of TariffEntry
        Non-overlapping periods per HRG (checked by :func:`load_tariff_csv`).
    """

    source: str
    entries: tuple[TariffEntry, ...]
    _by_code: dict[str, tuple[TariffEntry, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Index the entries by HRG code."""
        grouped: dict[str, list[TariffEntry]] = {}
        for entry in self.entries:
            grouped.setdefault(entry.hrg_code, []).append(entry)
        index = {
            code: tuple(sorted(rows, key=lambda e: e.effective_from))
            for code, rows in grouped.items()
        }
        object.__setattr__(self, "_by_code", index)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, hrg_code: object) -> bool:
        return isinstance(hrg_code, str) and hrg_code.strip().upper() in self._by_code

    @property
    def hrg_codes(self) -> frozenset[str]:
        """The HRG codes the tariff prices (on any day)."""
        return frozenset(self._by_code)

    def find(self, hrg_code: str, on: dt.date) -> TariffEntry:
        """Return the entry in force for an HRG on a day.

        Parameters
        ----------
        hrg_code : str
            HRG code (case-insensitive).
        on : datetime.date
            The day the activity is priced on.

        Returns
        -------
        TariffEntry
            The one entry with ``effective_from <= on < effective_to``.

        Raises
        ------
        PricingError
            The HRG is not in the tariff, or the tariff has no price for it on ``on``
            (the message lists the periods it does have).
        InvalidInputError
            ``on`` is not a date.
        """
        day = _activity_day(on)
        code = hrg_code.strip().upper()
        rows = self._by_code.get(code)
        if not rows:
            raise PricingError(
                f"HRG {code!r} is not in tariff {self.source} ({len(self._by_code)} HRGs): "
                "check the HRG code, or load the tariff that prices it"
            )
        for entry in rows:
            if entry.applies_on(day):
                return entry
        periods = ", ".join(entry._period() for entry in rows)
        raise PricingError(
            f"HRG {code!r} has no unit price on {day.isoformat()} in tariff {self.source}: "
            f"its prices apply over {periods}"
        )


def _activity_day(on: dt.date) -> dt.date:
    if isinstance(on, dt.datetime) or not isinstance(on, dt.date):
        raise InvalidInputError(
            f"on must be a date (the day the activity is priced on), got {type(on).__name__} {on!r}"
        )
    return on


class _Problems:
    """Collects ``file, line N, column C: message`` problems and raises them once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.messages: list[str] = []

    def add(self, line: int, column: str | None, message: str) -> None:
        where = f"{self.source}, line {line}" + (f", column {column}" if column else "")
        self.messages.append(f"{where}: {message}")

    def raise_if_any(self) -> None:
        if not self.messages:
            return
        shown = self.messages[:_MAX_ERRORS_SHOWN]
        more = len(self.messages) - len(shown)
        tail = f"\n… and {more} more problem(s)" if more else ""
        raise InvalidInputError(
            f"{len(self.messages)} problem(s); nothing was loaded:\n" + "\n".join(shown) + tail
        )


def _read_text(path: str | os.PathLike[str]) -> tuple[str, str]:
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise NotFoundError(f"{source}: no such file") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{source}: not UTF-8 text ({exc.reason})") from None
    return source, text


def _uncommented(text: str) -> Iterator[str]:
    """Yield the lines of ``text``, with ``#`` comment lines blanked (line numbers kept)."""
    for line in io.StringIO(text, newline=""):
        yield "\n" if line.lstrip().startswith("#") else line


def _rows(
    source: str, text: str, columns: tuple[str, ...], problems: _Problems
) -> Iterator[tuple[int, dict[str, str]]]:
    """Check the header, then yield ``(line, {column: stripped cell})`` per data row."""
    reader = csv.reader(_uncommented(text), strict=True)
    header: list[str] | None = None
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = [cell.strip() for cell in cells]
                missing = [c for c in columns if c not in header]
                unknown = [c for c in header if c not in columns]
                repeated = sorted({c for c in header if header.count(c) > 1})
                if missing or unknown or repeated:
                    parts = []
                    if missing:
                        parts.append(f"missing column(s) {', '.join(missing)}")
                    if unknown:
                        parts.append(f"unknown column(s) {', '.join(map(repr, unknown))}")
                    if repeated:
                        parts.append(f"repeated column(s) {', '.join(repeated)}")
                    raise InvalidInputError(
                        f"{source}, line {reader.line_num}: {'; '.join(parts)} "
                        f"(expected: {','.join(columns)})"
                    )
                continue
            if len(cells) != len(header):
                problems.add(
                    reader.line_num,
                    None,
                    f"has {len(cells)} cells; the header has {len(header)} columns",
                )
                continue
            yield (
                reader.line_num,
                {name: cell.strip() for name, cell in zip(header, cells, strict=True)},
            )
    except csv.Error as exc:
        problems.add(reader.line_num, None, f"malformed CSV ({exc})")
    if header is None:
        raise InvalidInputError(f"{source}: no header line; expected {','.join(columns)}")


def _date(value: str, column: str, line: int, problems: _Problems) -> dt.date | None:
    if _ISO_DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    problems.add(line, column, f"{value!r} is not a date in YYYY-MM-DD form")
    return None


def _decimal(value: str, column: str, line: int, problems: _Problems) -> Decimal | None:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        problems.add(
            line, column, f"{value!r} is not a decimal number (write 1234.56, no £ or commas)"
        )
        return None
    return amount


def load_tariff_csv(path: str | os.PathLike[str]) -> Tariff:
    """Load an NHSPS unit-price tariff from CSV, validating every row first.

    Parameters
    ----------
    path : str or path-like
        UTF-8 CSV with the columns ``hrg_code,description,unit_price_gbp,effective_from,
        effective_to`` (any order; see the module docstring for each column). Lines
        starting with ``#`` are comments.

    Returns
    -------
    Tariff
        All entries of the file. A file with a header and no rows gives an empty tariff
        (the shipped sample, :data:`SAMPLE_TARIFF`, is one: billing-facts.md gives no HRG
        prices).

    Raises
    ------
    NotFoundError
        No such file.
    InvalidInputError
        A bad header, cell, duplicate or overlapping period. Nothing is returned unless
        every row is valid; the message names the file, line and column of each problem
        (the first 10, then a count).

    Examples
    --------
    >>> load_tariff_csv(SAMPLE_TARIFF).hrg_codes
    frozenset()
    """
    source, text = _read_text(path)
    problems = _Problems(source)
    entries: list[TariffEntry] = []
    for line, row in _rows(source, text, TARIFF_COLUMNS, problems):
        before = len(problems.messages)
        code = row["hrg_code"].upper()
        if not code:
            problems.add(line, "hrg_code", "is empty: every row needs an HRG code")
        elif not _HRG.fullmatch(code):
            problems.add(
                line, "hrg_code", f"{row['hrg_code']!r} is not an HRG code (letters and digits)"
            )
        price: Decimal | None = None
        if not row["unit_price_gbp"]:
            problems.add(line, "unit_price_gbp", "is empty: every row needs a unit price")
        else:
            price = _decimal(row["unit_price_gbp"], "unit_price_gbp", line, problems)
        if price is not None:
            exponent = price.as_tuple().exponent
            if price < 0:
                problems.add(line, "unit_price_gbp", f"{row['unit_price_gbp']} is negative")
            elif price > _MAX_PRICE:
                problems.add(
                    line, "unit_price_gbp", f"{row['unit_price_gbp']} exceeds {_MAX_PRICE}"
                )
            elif isinstance(exponent, int) and exponent < -2:
                problems.add(
                    line,
                    "unit_price_gbp",
                    f"{row['unit_price_gbp']} has more than 2 decimal places",
                )
        start: dt.date | None = None
        if not row["effective_from"]:
            problems.add(line, "effective_from", "is empty: every price needs a start date")
        else:
            start = _date(row["effective_from"], "effective_from", line, problems)
        end: dt.date | None = None
        if row["effective_to"]:
            end = _date(row["effective_to"], "effective_to", line, problems)
        if start is not None and end is not None and end <= start:
            problems.add(
                line,
                "effective_to",
                f"{end.isoformat()} is not after effective_from {start.isoformat()} "
                "(effective_to is exclusive)",
            )
        if len(problems.messages) > before or price is None or start is None:
            continue
        entries.append(
            TariffEntry(
                hrg_code=code,
                description=row["description"] or None,
                unit_price=price.quantize(Decimal("0.01")),
                effective_from=start,
                effective_to=end,
                line=line,
            )
        )
    _check_overlaps(entries, problems)
    problems.raise_if_any()
    if not entries:
        logger.warning("tariff %s has no price rows", source)
    return Tariff(source, tuple(entries))


def _check_overlaps(entries: list[TariffEntry], problems: _Problems) -> None:
    by_code: dict[str, list[TariffEntry]] = {}
    for entry in entries:
        by_code.setdefault(entry.hrg_code, []).append(entry)
    for rows in by_code.values():
        rows.sort(key=lambda e: (e.effective_from, e.line))
        reach = rows[0]  # the entry seen so far whose period ends last
        for later in rows[1:]:
            if reach.effective_to is None or later.effective_from < reach.effective_to:
                problems.add(
                    later.line,
                    "effective_from",
                    f"HRG {later.hrg_code} period {later._period()} overlaps "
                    f"{reach._period()} on line {reach.line}: close the earlier period "
                    "with effective_to",
                )
            if reach.effective_to is not None and (
                later.effective_to is None or later.effective_to > reach.effective_to
            ):
                reach = later


def load_mff_csv(path: str | os.PathLike[str]) -> dict[str, Decimal]:
    """Load the market forces factor of each facility from CSV.

    Parameters
    ----------
    path : str or path-like
        UTF-8 CSV with the header ``facility_id,mff``: the facility's Organization id and
        its MFF (a decimal > 0, any number of places). ``#`` lines are comments.

    Returns
    -------
    dict of str to Decimal
        Facility id → MFF.

    Raises
    ------
    NotFoundError
        No such file.
    InvalidInputError
        A bad header, an empty facility id, an MFF that is not a positive decimal, or a
        facility listed twice; the message names file, line and column.
    """
    source, text = _read_text(path)
    problems = _Problems(source)
    factors: dict[str, Decimal] = {}
    first_line: dict[str, int] = {}
    for line, row in _rows(source, text, MFF_COLUMNS, problems):
        facility = row["facility_id"]
        if not facility:
            problems.add(line, "facility_id", "is empty")
            continue
        if facility in first_line:
            problems.add(
                line, "facility_id", f"{facility!r} is already on line {first_line[facility]}"
            )
            continue
        first_line[facility] = line
        if not row["mff"]:
            problems.add(line, "mff", "is empty")
            continue
        mff = _decimal(row["mff"], "mff", line, problems)
        if mff is not None and mff <= 0:
            problems.add(line, "mff", f"{row['mff']} is not positive")
        elif mff is not None:
            factors[facility] = mff
    problems.raise_if_any()
    return factors


def _check_mff(mff: Decimal) -> Decimal:
    if not isinstance(mff, Decimal) or not mff.is_finite() or mff <= 0:
        raise InvalidInputError(
            f"mff={mff!r} must be a positive Decimal such as Decimal('1.0234'), never a float"
        )
    return mff


def price_activity(tariff: Tariff, *, hrg_code: str, on: dt.date, mff: Decimal) -> Decimal:
    """Price one unit of activity: HRG unit price × the provider's market forces factor.

    Parameters
    ----------
    tariff : Tariff
        From :func:`load_tariff_csv`.
    hrg_code : str
        The HRG the activity grouped to (case-insensitive).
    on : datetime.date
        The day whose tariff applies (effective dating; a ``datetime`` is refused so the
        caller decides which day of a spell is priced).
    mff : Decimal
        The provider's market forces factor (> 0).

    Returns
    -------
    Decimal
        ``unit_price × mff`` in GBP, computed exactly and rounded once to the penny, half
        up (:func:`~healthos_core.billing.markets.round_money`; a HealthOS convention, see
        the module docstring).

    Raises
    ------
    PricingError
        The HRG is not in the tariff, or has no price on ``on``.
    InvalidInputError
        ``on`` is not a date, or ``mff`` is not a positive ``Decimal``.

    Examples
    --------
    >>> tariff = Tariff("example", (TariffEntry(hrg_code="XX01A", unit_price=Decimal("1000.00"),
    ...                                         effective_from=dt.date(2023, 4, 1)),))
    >>> price_activity(tariff, hrg_code="XX01A", on=dt.date(2024, 1, 1), mff=Decimal("1.0235"))
    Decimal('1023.50')
    """
    factor = _check_mff(mff)
    entry = tariff.find(hrg_code, on)
    return round_money(entry.unit_price * factor)


# --------------------------------------------------------------------------- market


class UKMarket(Market):
    """United Kingdom (England): GBP, NHSPS pricing, no tax lines.

    Parameters
    ----------
    tariff : Tariff or None, default=None
        The NHSPS unit-price tariff; ``None`` prices everything from the chargemaster.
    mff_by_facility : mapping of str to Decimal or None, default=None
        Facility (Organization) id → market forces factor, e.g. from :func:`load_mff_csv`.
    """

    code: ClassVar[MarketCode] = "UK"
    name: ClassVar[str] = "United Kingdom (England, NHS Payment Scheme)"
    currency: ClassVar[str] = "GBP"

    def __init__(
        self,
        tariff: Tariff | None = None,
        mff_by_facility: Mapping[str, Decimal] | None = None,
    ) -> None:
        self.tariff = tariff
        self.mff_by_facility = dict(mff_by_facility or {})

    def tax_lines(self, charge: TaxableCharge) -> list[TaxLine]:
        """Return no tax lines: NHS activity is priced against commissioners, no patient charge.

        billing-facts.md gives no UK VAT rules; HealthOS adds none.
        """
        return []

    def mff(self, facility_id: str | None) -> Decimal:
        """Return a facility's market forces factor.

        Raises
        ------
        PricingError
            The facility has none configured.
        """
        if facility_id is None or facility_id not in self.mff_by_facility:
            raise PricingError(
                f"no market forces factor for facility {facility_id!r}: add it to the MFF "
                "CSV (facility_id,mff) loaded with load_mff_csv"
            )
        return _check_mff(self.mff_by_facility[facility_id])

    def price_service(
        self,
        *,
        code: str,
        on: dt.date,
        list_price: Decimal | None,
        facility_id: str | None = None,
    ) -> Decimal:
        """Price an HRG from the tariff × the facility's MFF; anything else from the chargemaster.

        Parameters
        ----------
        code : str
            An HRG code in the tariff, or another service code.
        on : datetime.date
            Day the tariff is looked up on.
        list_price : Decimal or None
            The chargemaster price (used for codes the tariff does not price, e.g. local
            payment arrangements or private patients).
        facility_id : str or None, default=None
            The provider facility, whose MFF applies.

        Returns
        -------
        Decimal
            GBP, rounded to the penny.

        Raises
        ------
        PricingError
            No MFF for the facility of an HRG activity, no tariff price on ``on``, or no
            chargemaster price for a non-HRG code.
        """
        if self.tariff is not None and code in self.tariff:
            return price_activity(self.tariff, hrg_code=code, on=on, mff=self.mff(facility_id))
        return super().price_service(
            code=code, on=on, list_price=list_price, facility_id=facility_id
        )

    def __repr__(self) -> str:
        size = len(self.tariff) if self.tariff is not None else 0
        return f"UKMarket(tariff_entries={size}, facilities_with_mff={len(self.mff_by_facility)})"
