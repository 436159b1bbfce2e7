"""The chargemaster (CDM): effective-dated prices per service code.

Three ways in and one way out:

* :func:`load_chargemaster_csv` loads a hospital's price list from CSV, all-or-nothing
  (SPEC §10 "a rejected input leaves the record exactly as it was");
* :func:`derive_chargemaster_from_claims` builds a price list from the amounts seen on
  imported claims, for data sets such as Synthea that ship claims but no chargemaster;
* :func:`price` / :func:`find_price` return the entry in force for a code on a date.

Effective dating (SPEC §4 "effective-dated prices per service code"): an entry applies
on ``effective_from <= day < effective_to`` (``effective_to`` exclusive, ``None`` =
open-ended). Where several entries of one code apply on a day, **the one with the latest
``effective_from`` wins**, so a new price list supersedes an older open-ended one without
having to close it first.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, Final

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from healthos_core.billing.entities import (
    ChargemasterEntry,
    Claim,
    ClaimItem,
    ExplanationOfBenefit,
)
from healthos_core.billing.money import check_currency, ledger_currency
from healthos_core.errors import InvalidInputError, NotFoundError, PricingError
from healthos_core.record.entities import MedicationRequest

__all__ = [
    "CSV_COLUMNS",
    "DERIVED_EFFECTIVE_FROM",
    "derive_chargemaster_from_claims",
    "find_price",
    "load_chargemaster_csv",
    "price",
]

logger = logging.getLogger(__name__)

#: The columns of a chargemaster CSV, in the documented order (all must be present).
CSV_COLUMNS: Final = (
    "code_system",
    "code",
    "description",
    "unit_price",
    "currency",
    "revenue_code",
    "tax_category",
    "effective_from",
    "effective_to",
)

#: Default ``effective_from`` of derived entries: before any record in the data sets we
#: use (Synthea encounters start in 1914), so every historical event can be priced, and
#: constant, so that re-deriving updates the same rows instead of adding new ones.
DERIVED_EFFECTIVE_FROM: Final = dt.date(1900, 1, 1)

_CENT: Final = Decimal("0.01")
#: ``Numeric(14, 2)``: at most 12 digits before the decimal point.
_MAX_PRICE: Final = Decimal("999999999999.99")
_CURRENCY: Final = re.compile(r"[A-Z]{3}")
#: NUBC UB-04 revenue codes are 4 digits (e.g. 0300 laboratory); spreadsheets often
#: drop the leading zero, so 3 digits are accepted and zero-padded.
_REVENUE_CODE: Final = re.compile(r"\d{3,4}")
_MAX_ERRORS_SHOWN: Final = 10
_CHUNK: Final = 500

_PHARMACY: Final = "pharmacy"
_RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
#: Claim statuses (FHIR R4 ``fm-status``) whose amounts are not a price anyone charged.
_VOID_CLAIM_STATUSES: Final = frozenset({"cancelled", "entered-in-error"})
#: EOB adjudication categories that carry the provider's submitted (list) charge: FHIR
#: ``adjudication`` code ``submitted`` and the CMS Blue Button line variable Synthea uses.
_SUBMITTED_CATEGORIES: Final = frozenset(
    {"submitted", "https://bluebutton.cms.gov/resources/variables/line_sbmtd_chrg_amt"}
)


# --------------------------------------------------------------------------- lookup


def _service_day(on: dt.date) -> dt.date:
    if isinstance(on, dt.datetime):
        if on.tzinfo is None or on.utcoffset() is None:
            raise InvalidInputError(
                f"on={on.isoformat()} is a naive datetime: pass a date or an aware datetime"
            )
        return on.astimezone(dt.UTC).date()
    if not isinstance(on, dt.date):
        raise InvalidInputError(f"on must be a date, got {type(on).__name__} {on!r}")
    return on


def find_price(
    session: Session, *, code_system: str, code: str, on: dt.date
) -> ChargemasterEntry | None:
    """Return the chargemaster entry in force for a code on a day, or ``None``.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        Any session.
    code_system : str
        Code system URI, e.g. ``"http://snomed.info/sct"``.
    code : str
        The service code.
    on : datetime.date
        The service day. An aware ``datetime`` is reduced to its UTC date.

    Returns
    -------
    ChargemasterEntry or None
        The entry with ``effective_from <= on < effective_to`` (``effective_to`` ``None``
        = open-ended); among several, the latest ``effective_from``.

    Raises
    ------
    InvalidInputError
        ``on`` is not a date or is a naive datetime.
    """
    day = _service_day(on)
    return session.scalars(
        _PRICE_ON, {"code_system": code_system, "code": code, "day": day}
    ).first()


#: The entry in force on a day (built once: building it cost as much as running it).
_PRICE_ON = (
    select(ChargemasterEntry)
    .where(
        ChargemasterEntry.code_system == bindparam("code_system"),
        ChargemasterEntry.code == bindparam("code"),
        ChargemasterEntry.effective_from <= bindparam("day"),
        or_(
            ChargemasterEntry.effective_to.is_(None),
            ChargemasterEntry.effective_to > bindparam("day"),
        ),
    )
    .order_by(ChargemasterEntry.effective_from.desc(), ChargemasterEntry.id.desc())
    .limit(1)
)


def price(session: Session, *, code_system: str, code: str, on: dt.date) -> ChargemasterEntry:
    """Return the chargemaster entry that prices a code on a day.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        Any session.
    code_system : str
        Code system URI.
    code : str
        The service code.
    on : datetime.date
        The service day (an aware ``datetime`` is reduced to its UTC date).
        ``effective_to`` is exclusive: an entry ending 2025-01-01 does not apply on that day.

    Returns
    -------
    ChargemasterEntry
        Its ``unit_price`` (Decimal, 2 places) is in ``currency``.

    Raises
    ------
    PricingError
        No entry applies on that day; the message names the code and the day.
    InvalidInputError
        ``on`` is not a date or is a naive datetime.

    Examples
    --------
    >>> entry = price(session, code_system="http://snomed.info/sct",  # doctest: +SKIP
    ...               code="73761001", on=datetime.date(2024, 3, 1))
    >>> entry.unit_price, entry.currency  # doctest: +SKIP
    (Decimal('1500.00'), 'USD')
    """
    entry = find_price(session, code_system=code_system, code=code, on=on)
    if entry is None:
        day = _service_day(on)
        raise PricingError(
            f"no chargemaster price for {code_system}|{code} on {day.isoformat()}: "
            "add an entry effective on that date (load_chargemaster_csv)"
        )
    return entry


# --------------------------------------------------------------------------- CSV


@dataclass(frozen=True, kw_only=True)
class _Row:
    line: int
    code_system: str
    code: str
    description: str | None
    unit_price: Decimal
    currency: str
    revenue_code: str | None
    tax_category: str | None
    effective_from: dt.date
    effective_to: dt.date | None

    @property
    def key(self) -> tuple[str, str, dt.date]:
        return (self.code_system, self.code, self.effective_from)


class _Problems:
    """Collects ``file, line N, column 'c': problem`` messages."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.messages: list[str] = []

    def add(self, line: int, column: str | None, problem: str) -> None:
        where = f"{self.source}, line {line}" + (f", column '{column}'" if column else "")
        self.messages.append(f"{where}: {problem}")

    def raise_if_any(self) -> None:
        if not self.messages:
            return
        shown = self.messages[:_MAX_ERRORS_SHOWN]
        more = len(self.messages) - len(shown)
        text = "; ".join(shown) + (f"; … and {more} more" if more else "")
        raise InvalidInputError(
            f"chargemaster not loaded, nothing was written ({len(self.messages)} problem"
            f"{'s' if len(self.messages) != 1 else ''}): {text}"
        )


def _read_text(path_or_file: str | os.PathLike[str] | IO[str] | IO[bytes]) -> tuple[str, str]:
    """Return ``(source name, text)`` of a path or an open text/binary file."""
    if isinstance(path_or_file, str | os.PathLike):
        path = Path(path_or_file)
        source = str(path)
        try:
            data: str | bytes = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"chargemaster file {source} does not exist") from None
        except OSError as exc:
            raise InvalidInputError(f"{source}: cannot read chargemaster file ({exc})") from None
    else:
        source = str(getattr(path_or_file, "name", "<chargemaster stream>"))
        data = path_or_file.read()
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"{source}: not UTF-8 text (byte {exc.start}): save the CSV as UTF-8"
            ) from None
    return source, data.removeprefix("\ufeff")


def _parse_date(text: str, column: str, line: int, problems: _Problems) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        problems.add(line, column, f"{text!r} is not a date: use YYYY-MM-DD")
        return None


def _parse_row(raw: dict[str, str], line: int, problems: _Problems) -> _Row | None:
    before = len(problems.messages)
    value = {k: v.strip() for k, v in raw.items()}

    def text(column: str, limit: int, *, required: bool) -> str | None:
        item = value[column]
        if not item:
            if required:
                problems.add(line, column, "is empty")
            return None
        if len(item) > limit:
            problems.add(line, column, f"is {len(item)} characters long; the limit is {limit}")
        return item

    code_system = text("code_system", 128, required=True)
    code = text("code", 64, required=True)
    description = text("description", 512, required=False)
    tax_category = text("tax_category", 32, required=False)

    unit_price: Decimal | None = None
    if not value["unit_price"]:
        problems.add(line, "unit_price", "is empty")
    else:
        try:
            unit_price = Decimal(value["unit_price"])
        except InvalidOperation:
            problems.add(line, "unit_price", f"{value['unit_price']!r} is not a number")
    if unit_price is not None:
        exponent = unit_price.as_tuple().exponent
        if not unit_price.is_finite():
            problems.add(line, "unit_price", f"{value['unit_price']!r} is not a finite amount")
        elif unit_price < 0:
            problems.add(line, "unit_price", f"{value['unit_price']} is negative")
        elif unit_price > _MAX_PRICE:
            problems.add(line, "unit_price", f"{value['unit_price']} exceeds {_MAX_PRICE}")
        elif isinstance(exponent, int) and exponent < -2:
            problems.add(
                line, "unit_price", f"{value['unit_price']} has more than 2 decimal places"
            )

    currency = value["currency"].upper()
    if currency and not _CURRENCY.fullmatch(currency):
        problems.add(
            line, "currency", f"{value['currency']!r} is not an ISO 4217 code such as USD or INR"
        )
    else:
        try:
            currency = check_currency(currency, field="currency")
        except InvalidInputError as exc:
            problems.add(line, "currency", exc.message)

    revenue_code = value["revenue_code"] or None
    if revenue_code is not None:
        if _REVENUE_CODE.fullmatch(revenue_code):
            revenue_code = revenue_code.zfill(4)
        else:
            problems.add(
                line, "revenue_code", f"{revenue_code!r} is not a 4-digit NUBC revenue code"
            )

    effective_from: dt.date | None = None
    if not value["effective_from"]:
        problems.add(line, "effective_from", "is empty: every price needs a start date")
    else:
        effective_from = _parse_date(value["effective_from"], "effective_from", line, problems)
    effective_to: dt.date | None = None
    if value["effective_to"]:
        effective_to = _parse_date(value["effective_to"], "effective_to", line, problems)
    if effective_from and effective_to and effective_to <= effective_from:
        problems.add(
            line,
            "effective_to",
            f"{effective_to.isoformat()} is not after effective_from "
            f"{effective_from.isoformat()} (effective_to is exclusive)",
        )

    if (
        len(problems.messages) > before
        or code_system is None
        or code is None
        or unit_price is None
        or effective_from is None
    ):
        return None
    return _Row(
        line=line,
        code_system=code_system,
        code=code,
        description=description,
        unit_price=unit_price.quantize(_CENT),
        currency=currency,
        revenue_code=revenue_code,
        tax_category=tax_category,
        effective_from=effective_from,
        effective_to=effective_to,
    )


def _read_rows(source: str, text: str) -> list[_Row]:
    """Parse and validate every row; raise once, naming every problem."""
    problems = _Problems(source)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InvalidInputError(f"{source}, line 1: not a valid CSV header ({exc})") from None
    if not header or not any(cell.strip() for cell in header):
        raise InvalidInputError(
            f"{source}: empty file; expected a header line with {', '.join(CSV_COLUMNS)}"
        )
    names = [name.strip() for name in header]
    missing = [c for c in CSV_COLUMNS if c not in names]
    unknown = [c for c in names if c not in CSV_COLUMNS]
    duplicated = sorted({c for c in names if names.count(c) > 1})
    if missing or unknown or duplicated:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(repr(c) for c in unknown)}")
        if duplicated:
            parts.append(f"repeated column(s) {', '.join(duplicated)}")
        raise InvalidInputError(
            f"{source}, line 1: {'; '.join(parts)} (expected: {', '.join(CSV_COLUMNS)})"
        )

    rows: list[_Row] = []
    first_line: dict[tuple[str, str, dt.date], int] = {}
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue  # blank line
            if len(cells) != len(names):
                problems.add(
                    line, None, f"has {len(cells)} cells; the header has {len(names)} columns"
                )
                continue
            row = _parse_row(dict(zip(names, cells, strict=True)), line, problems)
            if row is None:
                continue
            if row.key in first_line:
                problems.add(
                    line,
                    "effective_from",
                    f"{row.code_system}|{row.code} from {row.effective_from.isoformat()} "
                    f"is already on line {first_line[row.key]}",
                )
                continue
            first_line[row.key] = line
            rows.append(row)
    except csv.Error as exc:
        problems.add(reader.line_num, None, f"malformed CSV ({exc})")
    problems.raise_if_any()
    return rows


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _existing_entries(
    session: Session, keys: Iterable[tuple[str, str, dt.date]]
) -> dict[tuple[str, str, dt.date], ChargemasterEntry]:
    wanted = set(keys)
    codes = sorted({code for _, code, _ in wanted})
    found: dict[tuple[str, str, dt.date], ChargemasterEntry] = {}
    for chunk in _chunks(codes):
        for entry in session.scalars(
            select(ChargemasterEntry).where(ChargemasterEntry.code.in_(chunk))
        ):
            key = (entry.code_system, entry.code, entry.effective_from)
            if key in wanted:
                found[key] = entry
    return found


def load_chargemaster_csv(
    session: Session, path_or_file: str | os.PathLike[str] | IO[str] | IO[bytes]
) -> int:
    """Load (insert or update) chargemaster entries from a CSV file, all or nothing.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session; rows are added and flushed, not committed.
    path_or_file : str, path-like or open file
        UTF-8 CSV (a byte-order mark is allowed) with exactly the header
        ``code_system,code,description,unit_price,currency,revenue_code,tax_category,
        effective_from,effective_to``:

        * ``unit_price``: decimal ≥ 0 with at most 2 decimal places, in ``currency``;
        * ``currency``: ISO 4217 code (3 letters), the ledger currency
          (:func:`~healthos_core.billing.money.ledger_currency`, which an empty cell
          means); any other currency is a problem of its row;
        * ``revenue_code``: NUBC UB-04 revenue code, 4 digits (3 are zero-padded), optional;
        * ``effective_from``: ``YYYY-MM-DD``, required; ``effective_to``: exclusive end,
          optional, after ``effective_from``;
        * ``description``, ``tax_category``: optional text.

    Returns
    -------
    int
        Number of entries inserted or updated (one per data row; blank lines skipped).

    Raises
    ------
    InvalidInputError
        Any bad header, cell or duplicate row. Every row is validated before anything is
        written, so the database is untouched; the message names the file, line and
        column of each problem (the first 10, then a count).
    NotFoundError
        The path does not exist.

    Notes
    -----
    Loading is idempotent: a row whose ``(code_system, code, effective_from)`` is
    already in the chargemaster updates that entry (price, currency, description,
    revenue code, tax category, end date) instead of adding another.
    """
    source, text = _read_text(path_or_file)
    rows = _read_rows(source, text)
    existing = _existing_entries(session, (row.key for row in rows))
    for row in rows:
        entry = existing.get(row.key)
        if entry is None:
            entry = ChargemasterEntry(
                code_system=row.code_system, code=row.code, effective_from=row.effective_from
            )
            session.add(entry)
        entry.description = row.description
        entry.unit_price = row.unit_price
        entry.currency = row.currency
        entry.revenue_code = row.revenue_code
        entry.tax_category = row.tax_category
        entry.effective_to = row.effective_to
    session.flush()
    logger.info("chargemaster: %d entries loaded from %s", len(rows), source)
    return len(rows)


# --------------------------------------------------------------------------- derive


def _money(value: Any) -> Decimal | None:
    """Return a FHIR Money ``{"value": …}`` or a bare number as an exact Decimal (via ``str``)."""
    if isinstance(value, dict):
        value = value.get("value")
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _currency_of(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("currency"), str):
        return str(value["currency"]).upper()
    return None


def _codes(concept: Any) -> set[str]:
    if not isinstance(concept, dict):
        return set()
    return {
        str(c["code"])
        for c in concept.get("coding", []) or []
        if isinstance(c, dict) and c.get("code") is not None
    }


def _eob_line_amount(item: dict[str, Any]) -> tuple[Decimal, str | None] | None:
    """Return an EOB item's charge: ``net``, else its *submitted* adjudication amount."""
    net = _money(item.get("net"))
    if net is not None:
        return net, _currency_of(item.get("net"))
    for adjudication in item.get("adjudication", []) or []:
        if not isinstance(adjudication, dict):
            continue
        if _codes(adjudication.get("category")) & _SUBMITTED_CATEGORIES:
            amount = _money(adjudication.get("amount"))
            if amount is not None:
                return amount, _currency_of(adjudication.get("amount"))
    return None


def _resource_items(resource: dict[str, Any] | None) -> dict[int, dict[str, Any]]:
    items: dict[int, dict[str, Any]] = {}
    for item in (resource or {}).get("item", []) or []:
        if isinstance(item, dict) and isinstance(item.get("sequence"), int):
            items[item["sequence"]] = item
    return items


@dataclass
class _Observed:
    """Per-unit prices seen for one code, by currency."""

    display: str | None = None
    prices: dict[str, list[Decimal]] = field(default_factory=lambda: defaultdict(list))

    def add(self, amount: Decimal, currency: str, display: str | None) -> None:
        self.prices[currency].append(amount)
        if self.display is None and display:
            self.display = display


def _line(
    item: ClaimItem,
    eob_item: dict[str, Any] | None,
    claim_currency: str,
) -> tuple[Decimal, Decimal, str] | None:
    """Return ``(line amount, per-unit price, currency)`` of a priced line, else ``None``."""
    quantity = item.quantity if item.quantity is not None and item.quantity > 0 else None
    if item.unit_price is not None:
        unit = item.unit_price
        amount = item.net if item.net is not None else unit * (quantity or 1)
        return amount, unit, claim_currency
    if item.net is not None:
        return item.net, item.net / (quantity or 1), claim_currency
    if eob_item is not None and (
        not _codes(eob_item.get("productOrService"))
        or item.code in _codes(eob_item.get("productOrService"))
    ):
        found = _eob_line_amount(eob_item)
        if found is not None:
            amount, currency = found
            eob_quantity = _money(eob_item.get("quantity"))
            divisor = eob_quantity if eob_quantity and eob_quantity > 0 else (quantity or 1)
            return amount, amount / divisor, currency or claim_currency
    return None


def _is_encounter_line(item: ClaimItem, source: dict[str, Any] | None) -> bool:
    return bool(item.encounter_id) or bool(source and source.get("encounter"))


def _residual_recipient(
    session: Session,
    claim: Claim,
    unpriced: list[tuple[ClaimItem, dict[str, Any] | None]],
) -> tuple[str, str, str | None] | None:
    """Which code the unitemised part of a claim's total pays for (see module notes)."""
    if claim.type_code == _PHARMACY:
        reference = ((claim.resource or {}).get("prescription") or {}).get("reference", "")
        if isinstance(reference, str) and reference.startswith("MedicationRequest/"):
            request = session.get(MedicationRequest, reference.split("/", 1)[1])
            if request is not None and request.code_system and request.code:
                return request.code_system, request.code, request.display
        drugs = [item for item, _ in unpriced if item.code_system == _RXNORM]
        if len(drugs) == 1 and drugs[0].code_system and drugs[0].code:
            return drugs[0].code_system, drugs[0].code, drugs[0].display
        return None
    for item, source in unpriced:
        if _is_encounter_line(item, source) and item.code_system and item.code:
            return item.code_system, item.code, item.display
    services = [item for item, _ in unpriced if not item.diagnosis_sequence]
    if len(services) == 1 and services[0].code_system and services[0].code:
        return services[0].code_system, services[0].code, services[0].display
    return None


def derive_chargemaster_from_claims(
    session: Session, *, effective_from: dt.date | None = None
) -> int:
    """Build chargemaster entries from the prices on imported claims.

    For each ``(code_system, code)`` the derived unit price is the **median** of the
    per-unit prices observed on claims (``statistics.median`` over Decimals, rounded
    half-up to the cent), over the observations in the ledger currency
    (:func:`~healthos_core.billing.money.ledger_currency`): prices in another currency
    cannot be charged here, and a code observed only in other currencies gets no entry
    (their count is logged). The median resists the outliers Synthea's randomised costs
    produce (the same colonoscopy is billed anywhere from about 10,000 to 16,000 USD).

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session; entries are added or updated and flushed, not committed.
    effective_from : datetime.date, optional
        Start of the derived prices. Default :data:`DERIVED_EFFECTIVE_FROM`
        (1900-01-01): a backfill before any record, open-ended, that any entry with a
        later ``effective_from`` (e.g. a loaded CSV price list) supersedes.

    Returns
    -------
    int
        Number of entries inserted or updated.

    Raises
    ------
    InvalidInputError
        ``effective_from`` is not a date.

    Notes
    -----
    What is observed on each claim (cancelled / entered-in-error claims and
    ``use != "claim"`` are skipped), checked against the Synthea R4 sample in
    ``shared/data/synthea-fhir-r4`` (README there):

    1. **Itemised lines.** A ``ClaimItem`` with ``unit_price`` gives that price; else
       one with ``net`` gives ``net / quantity`` (quantity 1 when absent). Synthea
       prices procedure (SNOMED) and vaccine (CVX) lines this way.
    2. **EOB fallback.** A line with neither takes the ``net`` (else the *submitted*
       adjudication amount) of the ExplanationOfBenefit item with the same sequence
       and code: the amount the provider charged, not what the payer allowed or paid.
    3. **The unitemised rest of the total.** ``Claim.total`` minus the itemised lines
       is the part no line prices. Synthea leaves its encounter line (line 1, the
       Encounter.type code, with an ``encounter`` reference) unpriced, and the rest
       is exactly the visit fee (125.00 USD ambulatory/emergency, 75.00 inpatient
       in the sample). So the rest is attributed to:

       * on a **pharmacy** claim: the drug of the claim's ``prescription``
         (MedicationRequest, RxNorm) — Synthea's pharmacy claims carry only the
         encounter code as an item, and their total (255.00 USD) is the drug's cost;
         failing that, the one unpriced RxNorm line;
       * otherwise: the encounter line (a line with an ``encounter`` reference), else
         the only unpriced line that is not a diagnosis listing.

       A rest ≤ 0 is not an observation. Diagnosis lines (``diagnosisSequence`` only,
       no amount: Synthea lists findings this way) are never priced.

    Revenue code and tax category are unknown from claims and left empty (an existing
    entry's values are kept). Re-running updates the same ``(code_system, code,
    effective_from)`` rows, so it is idempotent.
    """
    start = DERIVED_EFFECTIVE_FROM if effective_from is None else effective_from
    if isinstance(start, dt.datetime) or not isinstance(start, dt.date):
        raise InvalidInputError(f"effective_from must be a datetime.date, got {start!r}")
    ledger = ledger_currency()

    claims = list(
        session.scalars(
            select(Claim)
            .where(Claim.use == "claim", Claim.status.not_in(_VOID_CLAIM_STATUSES))
            .order_by(Claim.id)
        )
    )
    items_by_claim: dict[str, list[ClaimItem]] = defaultdict(list)
    for chunk in _chunks([c.id for c in claims]):
        for item in session.scalars(
            select(ClaimItem).where(ClaimItem.claim_id.in_(chunk)).order_by(ClaimItem.sequence)
        ):
            items_by_claim[item.claim_id].append(item)
    eob_items: dict[str, dict[int, dict[str, Any]]] = {}
    for chunk in _chunks([c.id for c in claims]):
        for claim_id, resource in session.execute(
            select(ExplanationOfBenefit.claim_id, ExplanationOfBenefit.resource).where(
                ExplanationOfBenefit.claim_id.in_(chunk)
            )
        ):
            if claim_id is not None and claim_id not in eob_items:
                eob_items[claim_id] = _resource_items(resource)

    observed: dict[tuple[str, str], _Observed] = defaultdict(_Observed)
    skipped_rest = 0
    for claim in claims:
        currency = claim.currency or _currency_of((claim.resource or {}).get("total")) or ledger
        sources = _resource_items(claim.resource)
        eob = eob_items.get(claim.id, {})
        itemised = Decimal(0)
        unpriced: list[tuple[ClaimItem, dict[str, Any] | None]] = []
        for item in items_by_claim.get(claim.id, []):
            line = _line(item, eob.get(item.sequence), currency)
            if line is None:
                unpriced.append((item, sources.get(item.sequence)))
                continue
            amount, unit_price, line_currency = line
            itemised += amount
            if item.code_system and item.code and unit_price >= 0:
                observed[(item.code_system, item.code)].add(unit_price, line_currency, item.display)
        if claim.total is None:
            continue
        rest = claim.total - itemised
        if rest <= 0:
            continue
        recipient = _residual_recipient(session, claim, unpriced)
        if recipient is None:
            skipped_rest += 1
            continue
        code_system, code, display = recipient
        observed[(code_system, code)].add(rest, currency, display)

    foreign_only = sorted(key for key, seen in observed.items() if not seen.prices.get(ledger))
    for key in foreign_only:
        del observed[key]
    existing = _existing_entries(session, ((s, c, start) for s, c in observed))
    written = 0
    for (code_system, code), seen in sorted(observed.items()):
        currency = ledger
        median = Decimal(statistics.median(sorted(seen.prices[currency])))
        unit_price = median.quantize(_CENT, rounding=ROUND_HALF_UP)
        entry = existing.get((code_system, code, start))
        if entry is None:
            entry = ChargemasterEntry(code_system=code_system, code=code, effective_from=start)
            session.add(entry)
        entry.unit_price = unit_price
        entry.currency = currency
        if seen.display:
            entry.description = seen.display[:512]
        written += 1
    session.flush()
    if foreign_only:
        logger.info(
            "derive_chargemaster_from_claims: %d codes priced only in currencies other than "
            "the ledger currency %s were not derived",
            len(foreign_only),
            ledger,
        )
    if skipped_rest:
        logger.info(
            "derive_chargemaster_from_claims: %d claims had an unitemised amount with no "
            "line to attribute it to",
            skipped_rest,
        )
    return written
