"""Payers, contracts, coverage eligibility and prior authorisation (issue 3, items 1-2).

A payer is an :class:`~healthos_core.record.entities.Organization` (FHIR ``type`` ``pay``);
a patient's insurance is a :class:`~healthos_core.record.entities.Coverage`. This module
adds what the revenue cycle needs around them:

* :class:`Contract`: the terms HealthOS bills a payer by (allowed share of the charge per
  encounter class, patient coinsurance and copay, timely-filing limit in days, the
  service categories that need prior authorisation and the encounter classes exempt from
  it, the unit-limit, bundling and corrected-claim policies), loaded with
  :func:`load_contracts_csv` from the layout of ``shared/data/synthea-rcm/contracts.csv``;
* :class:`ServiceCode`: service code → service category, NUBC revenue code and the payer
  maximum of units per claim line (:func:`load_service_codes`, from
  ``service_categories.csv`` and ``unit_limits.csv``: "a code not listed has a limit of 1");
* :class:`BundlingEdit`: a component code not paid separately when billed with its
  comprehensive code on the same claim (:func:`load_bundling_edits_csv`, X12 CARC 97);
* :func:`check_eligibility`: which coverage is active on a service date (primary first);
* :class:`PriorAuthorization` and :func:`request_authorization`,
  :func:`decide_authorization`, :func:`expire_authorizations`,
  :func:`find_valid_authorization`: the request → approved / denied / expired / cancelled
  cycle with the payer's reference number, services and validity window. The kinds
  ``cashless-preauth`` and ``discharge-auth`` are the India TPA flows (IRDAI Master
  Circular on Health Insurance Products, 29 May 2024: decision within 1 hour, discharge
  authorisation within 3 hours), timed by the India market module from ``requested_at``
  and ``decided_at``.

Every loader validates the whole file before writing anything and raises one
:class:`~healthos_core.errors.InvalidInputError` naming the file, line and column of each
problem; loading the same file again updates the same rows (idempotent). Functions take
the session first, flush and never commit.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import io
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, Final

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from healthos_core.billing.entities import Claim, ClaimBillingStatus
from healthos_core.billing.money import check_currency, ledger_currency
from healthos_core.db import Base, utcnow
from healthos_core.errors import ConflictError, InvalidInputError, NotFoundError
from healthos_core.events import ClaimChanged, EventBus, default_bus
from healthos_core.record.entities import (
    Coverage,
    Encounter,
    EncounterClass,
    Organization,
    Patient,
)

__all__ = [
    "BUNDLING_EDIT_COLUMNS",
    "CLASS_CATEGORIES",
    "CONTRACT_COLUMNS",
    "DEFAULT_MAX_UNITS_PER_LINE",
    "SERVICE_CATEGORY_COLUMNS",
    "UNIT_LIMIT_COLUMNS",
    "AuthorizationKind",
    "AuthorizationStatus",
    "BundlingEdit",
    "Contract",
    "EligibilityResult",
    "PriorAuthorization",
    "ServiceCode",
    "check_eligibility",
    "coverage_active_on",
    "coverage_order",
    "decide_authorization",
    "expire_authorizations",
    "find_contract",
    "find_valid_authorization",
    "load_bundling_edits_csv",
    "load_contracts_csv",
    "load_service_codes",
    "pick_service_code",
    "request_authorization",
]

logger = logging.getLogger(__name__)

#: "a code not listed has a limit of 1" (``shared/data/synthea-rcm/README.md``, unit_limits.csv).
DEFAULT_MAX_UNITS_PER_LINE: Final = 1

CONTRACT_COLUMNS: Final = (
    "payer",
    "payer_organization_id",
    "plan_type",
    "coverage_type_code",
    "timely_filing_days",
    "allowed_pct_of_charge_AMB",
    "allowed_pct_of_charge_EMER",
    "allowed_pct_of_charge_IMP",
    "patient_coinsurance_pct",
    "copay_AMB",
    "copay_EMER",
    "copay_IMP",
    "prior_auth_categories",
    "prior_auth_exemptions",
    "unit_limit_policy",
    "bundling_edits",
    "corrected_claims",
)
#: Optional contract column: ISO 4217 currency of the copays: the ledger currency
#: (:func:`~healthos_core.billing.money.ledger_currency`), which an empty cell means.
_CONTRACT_OPTIONAL: Final = ("currency",)
SERVICE_CATEGORY_COLUMNS: Final = (
    "code_system",
    "code",
    "display",
    "service_category",
    "revenue_code",
)
UNIT_LIMIT_COLUMNS: Final = ("code_system", "code", "display", "max_units_per_line")
BUNDLING_EDIT_COLUMNS: Final = (
    "comprehensive_code",
    "comprehensive_display",
    "component_code",
    "component_display",
    "carc_if_billed",
)

_CENT: Final = Decimal("0.01")
_MAX_MONEY: Final = Decimal("999999999999.99")
_CURRENCY: Final = re.compile(r"[A-Z]{3}")
_REVENUE_CODE: Final = re.compile(r"\d{3,4}")
_TOKEN: Final = re.compile(r"[A-Za-z0-9_.\-]+")
_ADJUSTMENT: Final = re.compile(r"\b(CO|PR|OA|PI|CR)-([A-Z]?\d{1,3})\b")
_ENCOUNTER_CLASSES: Final = tuple(c.value for c in EncounterClass)
_CLASS_IN_TEXT: Final = re.compile(r"\b(" + "|".join(_ENCOUNTER_CLASSES) + r")\b")
_MAX_ERRORS_SHOWN: Final = 10
_CHUNK: Final = 500


# --------------------------------------------------------------------------- entities


class Contract(Base):
    """A payer contract: the terms claims to that payer are built, scrubbed and paid by.

    One contract per payer (``payer_id`` is unique). Percentages are fractions
    (``0.42`` = 42 %). Columns follow ``shared/data/synthea-rcm/contracts.csv``; the
    free-text policies are kept verbatim beside the values HealthOS derives from them.

    Attributes
    ----------
    payer_id : str
        The payer :class:`~healthos_core.record.entities.Organization`.
    timely_filing_days : int
        Days from the date of service within which the payer accepts a claim (late:
        X12 CARC 29). Medicare: 12 months (42 CFR 424.44); commercial limits are
        contract-specific, often 90-180 days (``shared/billing-facts.md`` §3).
    allowed_pct_amb, allowed_pct_emer, allowed_pct_imp : Decimal
        Allowed amount as a fraction of the billed charge, per encounter class.
    coinsurance_pct : Decimal
        Patient coinsurance as a fraction of the allowed amount (PR-2).
    copay_amb, copay_emer, copay_imp : Decimal
        Patient copay per claim, per encounter class, in ``currency`` (PR-3).
    prior_auth_categories : list of str
        Service categories (:attr:`ServiceCode.service_category`) that need prior
        authorisation (missing: CARC 197).
    prior_auth_exempt_classes : list of str
        Encounter classes that never need it (e.g. ``["EMER"]``).
    unit_limit_carc : str or None
        CARC the payer uses for units over :attr:`ServiceCode.max_units_per_line`
        (``"151"`` deny the line, ``"119"`` deny the excess units); ``None``: no payer limit.
    applies_bundling_edits : bool
        Whether :class:`BundlingEdit` pairs apply (CARC 97).
    filing_limit_applies_to_corrected : bool
        ``False`` when corrected claims (``Claim.related`` ``prior``) are exempt from the
        filing limit ("filing limit not re-applied").
    """

    __tablename__ = "contract"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    payer_id: Mapped[str] = mapped_column(ForeignKey("organization.id"), unique=True)
    payer_name: Mapped[str | None] = mapped_column(String(128))
    plan_type: Mapped[str | None] = mapped_column(String(128))
    coverage_type_code: Mapped[str | None] = mapped_column(String(32))
    timely_filing_days: Mapped[int] = mapped_column(Integer)
    allowed_pct_amb: Mapped[Decimal] = mapped_column(Numeric(7, 4))
    allowed_pct_emer: Mapped[Decimal] = mapped_column(Numeric(7, 4))
    allowed_pct_imp: Mapped[Decimal] = mapped_column(Numeric(7, 4))
    coinsurance_pct: Mapped[Decimal] = mapped_column(Numeric(7, 4))
    copay_amb: Mapped[Decimal]
    copay_emer: Mapped[Decimal]
    copay_imp: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    prior_auth_categories: Mapped[list[Any]]
    prior_auth_exempt_classes: Mapped[list[Any]]
    prior_auth_exemptions: Mapped[str | None] = mapped_column(String(512))
    unit_limit_policy: Mapped[str | None] = mapped_column(String(255))
    unit_limit_carc: Mapped[str | None] = mapped_column(String(8))
    bundling_policy: Mapped[str | None] = mapped_column(String(255))
    applies_bundling_edits: Mapped[bool] = mapped_column(Boolean, default=True)
    corrected_claims_policy: Mapped[str | None] = mapped_column(String(512))
    filing_limit_applies_to_corrected: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return (
            f"Contract(payer_id={self.payer_id!r}, filing={self.timely_filing_days}d, "
            f"prior_auth={self.prior_auth_categories!r})"
        )

    @property
    def reference(self) -> str:
        """``"Contract/<payer_id>"``: how scrubber evidence names a contract."""
        return f"Contract/{self.payer_id}"

    def allowed_pct(self, class_code: str) -> Decimal:
        """Return the allowed fraction of the charge for an encounter class (else AMB)."""
        if class_code == EncounterClass.EMER:
            return self.allowed_pct_emer
        if class_code == EncounterClass.IMP:
            return self.allowed_pct_imp
        return self.allowed_pct_amb

    def copay(self, class_code: str) -> Decimal:
        """Return the copay per claim for an encounter class (else AMB), in ``currency``."""
        if class_code == EncounterClass.EMER:
            return self.copay_emer
        if class_code == EncounterClass.IMP:
            return self.copay_imp
        return self.copay_amb

    def needs_prior_auth(self, category: str | None, class_code: str | None) -> bool:
        """Whether a service of ``category`` in an encounter of ``class_code`` needs one."""
        if category is None or category not in self.prior_auth_categories:
            return False
        return class_code not in self.prior_auth_exempt_classes


class ServiceCode(Base):
    """A billable service code with its service category, revenue code and unit limit.

    A code may be listed under several categories (synthea-rcm's charge master lists the
    problem-encounter code 185347001 as ``evaluation_management``, ``emergency`` and
    ``inpatient_admission``, by the kind of encounter), so rows are unique on
    ``(code_system, code, service_category)``; :func:`pick_service_code` chooses among
    them. ``max_units_per_line`` is the payer policy maximum of units on one claim line
    (``unit_limits.csv``, per code; a code not listed there has a limit of 1).
    """

    __tablename__ = "service_code"
    __table_args__ = (UniqueConstraint("code_system", "code", "service_category"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code_system: Mapped[str] = mapped_column(String(128))
    code: Mapped[str] = mapped_column(String(64), index=True)
    display: Mapped[str | None] = mapped_column(String(512))
    service_category: Mapped[str | None] = mapped_column(String(64))
    revenue_code: Mapped[str | None] = mapped_column(String(8))
    max_units_per_line: Mapped[int] = mapped_column(Integer, default=DEFAULT_MAX_UNITS_PER_LINE)

    def __repr__(self) -> str:
        return (
            f"ServiceCode(code={self.code!r}, category={self.service_category!r}, "
            f"max_units={self.max_units_per_line})"
        )


#: Encounter class → the service category of its encounter charge, used by
#: :func:`pick_service_code` when a code is listed under several categories.
CLASS_CATEGORIES: Final[dict[str, str]] = {
    EncounterClass.EMER.value: "emergency",
    EncounterClass.IMP.value: "inpatient_admission",
}


def pick_service_code(
    candidates: Sequence[ServiceCode],
    *,
    display: str | None = None,
    class_code: str | None = None,
) -> ServiceCode | None:
    """Choose the service-code row that applies to a charge.

    Parameters
    ----------
    candidates : sequence of ServiceCode
        The rows of one ``(code_system, code)``.
    display : str, optional
        The charge's display text.
    class_code : str, optional
        The encounter class (AMB, EMER, IMP …).

    Returns
    -------
    ServiceCode or None
        The only row; else the row of the category the encounter class implies
        (:data:`CLASS_CATEGORIES`: EMER → ``emergency``, IMP → ``inpatient_admission``);
        else, among the other rows, the one whose display equals ``display``
        (case-insensitive); else the first loaded. ``None`` when there is no row.
    """
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    implied = CLASS_CATEGORIES.get(class_code or "")
    if implied is not None:
        matching = [c for c in candidates if c.service_category == implied]
        if matching:
            return matching[0]
    others = [c for c in candidates if c.service_category not in CLASS_CATEGORIES.values()] or list(
        candidates
    )
    if display:
        same = [c for c in others if (c.display or "").casefold() == display.casefold()]
        if same:
            return same[0]
    return min(others, key=lambda c: c.id if c.id is not None else 0)


class BundlingEdit(Base):
    """A payer bundling pair: a component not paid separately beside its comprehensive code.

    ``component_code`` billed with ``comprehensive_code`` on one claim is not paid
    separately (group ``group_code``, CARC ``carc``, usually CO-97).
    """

    __tablename__ = "bundling_edit"
    __table_args__ = (UniqueConstraint("comprehensive_code", "component_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    comprehensive_code: Mapped[str] = mapped_column(String(64), index=True)
    comprehensive_display: Mapped[str | None] = mapped_column(String(512))
    component_code: Mapped[str] = mapped_column(String(64))
    component_display: Mapped[str | None] = mapped_column(String(512))
    group_code: Mapped[str] = mapped_column(String(2), default="CO")
    carc: Mapped[str] = mapped_column(String(8), default="97")

    def __repr__(self) -> str:
        return (
            f"BundlingEdit({self.comprehensive_code!r} ⊃ {self.component_code!r}, "
            f"{self.group_code}-{self.carc})"
        )


class AuthorizationKind(enum.StrEnum):
    """What an authorisation is for.

    ``prior-auth``: US prior authorisation / precertification (X12 278). ``cashless-preauth``
    and ``discharge-auth``: the India TPA cashless pre-authorisation and final discharge
    authorisation (IRDAI Master Circular on Health Insurance Products, 2024).
    """

    PRIOR_AUTH = "prior-auth"
    CASHLESS_PREAUTH = "cashless-preauth"
    DISCHARGE_AUTH = "discharge-auth"


class AuthorizationStatus(enum.StrEnum):
    """requested → approved / denied / cancelled; approved → expired / cancelled."""

    REQUESTED = "requested"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


#: Allowed decisions per current status (``expire_authorizations`` does ``expired``).
_AUTH_TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    AuthorizationStatus.REQUESTED: frozenset(
        {AuthorizationStatus.APPROVED, AuthorizationStatus.DENIED, AuthorizationStatus.CANCELLED}
    ),
    AuthorizationStatus.APPROVED: frozenset({AuthorizationStatus.CANCELLED}),
    AuthorizationStatus.DENIED: frozenset(),
    AuthorizationStatus.EXPIRED: frozenset(),
    AuthorizationStatus.CANCELLED: frozenset(),
}


class PriorAuthorization(Base):
    """A request to a payer to authorise services, and the payer's answer.

    Services are named by code (``service_codes``) and/or by service category
    (``service_categories``, as in :attr:`Contract.prior_auth_categories`). The validity
    window ``valid_from`` .. ``valid_to`` is inclusive on both ends; ``None`` leaves that
    end open (cashless authorisations hold for the admission).
    """

    __tablename__ = "prior_authorization"
    __table_args__ = (
        Index("ix_prior_authorization_patient_payer", "patient_id", "payer_id"),
        Index("ix_prior_authorization_reference", "reference_number"),
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patient.id"))
    coverage_id: Mapped[str | None] = mapped_column(ForeignKey("coverage.id"))
    payer_id: Mapped[str] = mapped_column(ForeignKey("organization.id"))
    encounter_id: Mapped[str | None] = mapped_column(ForeignKey("encounter.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24), default=AuthorizationKind.PRIOR_AUTH)
    status: Mapped[str] = mapped_column(String(16), default=AuthorizationStatus.REQUESTED)
    reference_number: Mapped[str | None] = mapped_column(String(64))
    service_codes: Mapped[list[Any]]
    service_categories: Mapped[list[Any]]
    valid_from: Mapped[dt.date | None] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    requested_amount: Mapped[Decimal | None]
    approved_amount: Mapped[Decimal | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    requested_at: Mapped[dt.datetime]
    requested_by: Mapped[str] = mapped_column(String(128))
    decided_at: Mapped[dt.datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(String(512))

    def __repr__(self) -> str:
        return (
            f"PriorAuthorization(id={self.id!r}, kind={self.kind!r}, status={self.status!r}, "
            f"reference_number={self.reference_number!r})"
        )

    @property
    def reference(self) -> str:
        """``"PriorAuthorization/<id>"``."""
        return f"PriorAuthorization/{self.id}"

    def covers(self, category_or_code: str) -> bool:
        """Whether the authorisation names this service code or service category."""
        return category_or_code in (self.service_codes or []) or category_or_code in (
            self.service_categories or []
        )

    def proves(self) -> bool:
        """Whether it proves authorisation: approved, or approved and since expired.

        An expired request that was never approved (no decision, no reference) does not.
        """
        if self.status == AuthorizationStatus.APPROVED:
            return True
        return self.status == AuthorizationStatus.EXPIRED and (
            self.decided_at is not None and self.reference_number is not None
        )

    def in_window(self, on: dt.date) -> bool:
        """Whether ``on`` lies in the validity window (inclusive; ``None`` = open end)."""
        return (self.valid_from is None or self.valid_from <= on) and (
            self.valid_to is None or on <= self.valid_to
        )


# --------------------------------------------------------------------------- CSV plumbing


class _Problems:
    """Collects ``file, line N, column 'c': problem`` messages and raises them once."""

    def __init__(self, source: str, what: str) -> None:
        self.source = source
        self.what = what
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
        count = len(self.messages)
        raise InvalidInputError(
            f"{self.what} not loaded, nothing was written ({count} problem"
            f"{'s' if count != 1 else ''}): {text}"
        )


CsvSource = str | os.PathLike[str] | IO[str] | IO[bytes]


def _read_text(path_or_file: CsvSource, what: str) -> tuple[str, str]:
    """Return ``(source name, text)`` of a path or an open text/binary file."""
    if isinstance(path_or_file, str | os.PathLike):
        path = Path(path_or_file)
        source = str(path)
        try:
            data: str | bytes = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"{what} file {source} does not exist") from None
        except OSError as exc:
            raise InvalidInputError(f"{source}: cannot read {what} file ({exc})") from None
    else:
        source = str(getattr(path_or_file, "name", f"<{what} stream>"))
        data = path_or_file.read()
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"{source}: not UTF-8 text (byte {exc.start}): save the CSV as UTF-8"
            ) from None
    return source, data.removeprefix("\ufeff")


def _csv_rows(
    source: str,
    text: str,
    required: Sequence[str],
    optional: Sequence[str] = (),
) -> tuple[list[tuple[int, dict[str, str]]], _Problems | None]:
    """Check the header and return ``[(line, {column: stripped cell})]`` of the data rows.

    Raises at once for header problems (nothing else can be read then); cell-count
    problems are returned in a :class:`_Problems` for the caller to merge.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InvalidInputError(f"{source}, line 1: not a valid CSV header ({exc})") from None
    if not header or not any(cell.strip() for cell in header):
        raise InvalidInputError(
            f"{source}: empty file; expected a header line with {', '.join(required)}"
        )
    names = [name.strip() for name in header]
    missing = [c for c in required if c not in names]
    unknown = [c for c in names if c not in required and c not in optional]
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
            f"{source}, line 1: {'; '.join(parts)} (expected: {', '.join(required)})"
        )
    rows: list[tuple[int, dict[str, str]]] = []
    problems: _Problems | None = None
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(names):
                problems = problems or _Problems(source, "")
                problems.add(
                    line, None, f"has {len(cells)} cells; the header has {len(names)} columns"
                )
                continue
            row = {name: cell.strip() for name, cell in zip(names, cells, strict=True)}
            for column in optional:
                row.setdefault(column, "")
            rows.append((line, row))
    except csv.Error as exc:
        raise InvalidInputError(
            f"{source}, line {reader.line_num}: not valid CSV ({exc})"
        ) from None
    return rows, problems


def _merge(into: _Problems, other: _Problems | None) -> None:
    if other is not None:
        into.messages.extend(other.messages)


def _text(
    row: dict[str, str],
    column: str,
    line: int,
    problems: _Problems,
    *,
    limit: int,
    required: bool,
) -> str | None:
    value = row[column]
    if not value:
        if required:
            problems.add(line, column, "is empty")
        return None
    if len(value) > limit:
        problems.add(line, column, f"is {len(value)} characters long; the limit is {limit}")
        return None
    return value


def _decimal(
    row: dict[str, str],
    column: str,
    line: int,
    problems: _Problems,
    *,
    check: Callable[[Decimal], str | None],
) -> Decimal | None:
    text = row[column]
    if not text:
        problems.add(line, column, "is empty")
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        problems.add(line, column, f"{text!r} is not a number")
        return None
    if not value.is_finite():
        problems.add(line, column, f"{text!r} is not a finite number")
        return None
    problem = check(value)
    if problem:
        problems.add(line, column, f"{text} {problem}")
        return None
    return value


def _fraction(value: Decimal) -> str | None:
    if value < 0 or value > 1:
        return "is not a fraction between 0 and 1 (write 42 % as 0.42)"
    return None


def _money_amount(value: Decimal) -> str | None:
    exponent = value.as_tuple().exponent
    if value < 0:
        return "is negative"
    if value > _MAX_MONEY:
        return f"exceeds {_MAX_MONEY}"
    if isinstance(exponent, int) and exponent < -2:
        return "has more than 2 decimal places"
    return None


def _positive_int(
    row: dict[str, str], column: str, line: int, problems: _Problems, *, minimum: int = 1
) -> int | None:
    text = row[column]
    if not text:
        problems.add(line, column, "is empty")
        return None
    if not re.fullmatch(r"\d+", text):
        problems.add(line, column, f"{text!r} is not a whole number")
        return None
    value = int(text)
    if value < minimum:
        problems.add(line, column, f"{value} is less than {minimum}")
        return None
    return value


def _revenue_code(row: dict[str, str], line: int, problems: _Problems) -> str | None:
    value = row["revenue_code"]
    if not value:
        return None
    if not _REVENUE_CODE.fullmatch(value):
        problems.add(line, "revenue_code", f"{value!r} is not a 4-digit NUBC revenue code")
        return None
    return value.zfill(4)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --------------------------------------------------------------------------- contracts


@dataclass(frozen=True, kw_only=True)
class _ContractRow:
    line: int
    values: dict[str, Any]


def _parse_categories(text: str, line: int, problems: _Problems) -> list[str]:
    if text.strip().lower() in {"", "none", "-"}:
        return []
    categories: list[str] = []
    for token in (t.strip() for t in text.split(";")):
        if not token:
            continue
        if not _TOKEN.fullmatch(token) or len(token) > 64:
            problems.add(
                line,
                "prior_auth_categories",
                f"{token!r} is not a service category name (letters, digits, '_', '-', '.'; "
                "separate several with ';', or write 'none')",
            )
            continue
        if token not in categories:
            categories.append(token)
    return categories


def _parse_exempt_classes(text: str, line: int, problems: _Problems) -> list[str]:
    if text.strip().lower() in {"", "none", "-"}:
        return []
    classes = list(dict.fromkeys(_CLASS_IN_TEXT.findall(text)))
    if not classes:
        problems.add(
            line,
            "prior_auth_exemptions",
            f"{text!r} names no encounter class: name the exempt classes "
            f"({', '.join(_ENCOUNTER_CLASSES)}), e.g. 'emergency encounters (EMER) never "
            "need prior authorization', or write 'none'",
        )
    return classes


def _parse_unit_policy(text: str, line: int, problems: _Problems) -> str | None:
    if text.strip().lower() in {"", "none", "-"}:
        return None
    found = _ADJUSTMENT.findall(text)
    if len(found) != 1:
        problems.add(
            line,
            "unit_limit_policy",
            f"{text!r} must name exactly one adjustment such as (CO-151) or (CO-119), or be 'none'",
        )
        return None
    return str(found[0][1])


def _parse_bundling(text: str, line: int, problems: _Problems) -> bool:
    lowered = text.strip().lower()
    if lowered in {"", "none", "no", "-"}:
        return False
    if lowered.startswith("applies"):
        return True
    problems.add(
        line,
        "bundling_edits",
        f"{text!r} is not understood: write 'applies bundling_edits.csv' or 'none'",
    )
    return False


def _parse_contract_row(raw: dict[str, str], line: int, problems: _Problems) -> _ContractRow | None:
    before = len(problems.messages)
    values: dict[str, Any] = {
        "payer_name": _text(raw, "payer", line, problems, limit=128, required=True),
        "payer_id": _text(raw, "payer_organization_id", line, problems, limit=64, required=True),
        "plan_type": _text(raw, "plan_type", line, problems, limit=128, required=False),
        "coverage_type_code": _text(
            raw, "coverage_type_code", line, problems, limit=32, required=False
        ),
        "timely_filing_days": _positive_int(raw, "timely_filing_days", line, problems),
    }
    for class_code in ("AMB", "EMER", "IMP"):
        values[f"allowed_pct_{class_code.lower()}"] = _decimal(
            raw, f"allowed_pct_of_charge_{class_code}", line, problems, check=_fraction
        )
        copay = _decimal(raw, f"copay_{class_code}", line, problems, check=_money_amount)
        values[f"copay_{class_code.lower()}"] = copay.quantize(_CENT) if copay is not None else None
    values["coinsurance_pct"] = _decimal(
        raw, "patient_coinsurance_pct", line, problems, check=_fraction
    )
    currency = (raw.get("currency") or "").upper()
    if currency and not _CURRENCY.fullmatch(currency):
        problems.add(line, "currency", f"{raw.get('currency')!r} is not an ISO 4217 code")
    else:
        try:
            currency = check_currency(currency, field="currency")
        except InvalidInputError as exc:
            problems.add(line, "currency", exc.message)
    values["currency"] = currency
    values["prior_auth_categories"] = _parse_categories(
        raw["prior_auth_categories"], line, problems
    )
    values["prior_auth_exemptions"] = _text(
        raw, "prior_auth_exemptions", line, problems, limit=512, required=False
    )
    values["prior_auth_exempt_classes"] = _parse_exempt_classes(
        raw["prior_auth_exemptions"], line, problems
    )
    values["unit_limit_policy"] = _text(
        raw, "unit_limit_policy", line, problems, limit=255, required=False
    )
    values["unit_limit_carc"] = _parse_unit_policy(raw["unit_limit_policy"], line, problems)
    values["bundling_policy"] = _text(
        raw, "bundling_edits", line, problems, limit=255, required=False
    )
    values["applies_bundling_edits"] = _parse_bundling(raw["bundling_edits"], line, problems)
    corrected = _text(raw, "corrected_claims", line, problems, limit=512, required=False)
    values["corrected_claims_policy"] = corrected
    values["filing_limit_applies_to_corrected"] = not (
        corrected is not None and "not re-applied" in corrected.lower()
    )
    if len(problems.messages) > before:
        return None
    return _ContractRow(line=line, values=values)


def load_contracts_csv(session: Session, path_or_file: CsvSource) -> int:
    """Load (insert or update) payer contracts from a CSV file, all or nothing.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session; rows are added and flushed, not committed.
    path_or_file : str, path-like or open file
        UTF-8 CSV with the columns of ``shared/data/synthea-rcm/contracts.csv``
        (:data:`CONTRACT_COLUMNS`, plus an optional ``currency``):

        * ``payer_organization_id``: id of a payer Organization already in the record;
        * ``timely_filing_days``: whole number of days ≥ 1;
        * ``allowed_pct_of_charge_{AMB,EMER,IMP}``, ``patient_coinsurance_pct``:
          fractions 0-1;
        * ``copay_{AMB,EMER,IMP}``: amounts ≥ 0 with at most 2 decimals;
        * ``prior_auth_categories``: service categories separated by ``;`` or ``none``;
        * ``prior_auth_exemptions``: text naming the exempt encounter classes in
          capitals, e.g. "emergency encounters (EMER) never need prior authorization";
        * ``unit_limit_policy``: text naming one adjustment, e.g. "deny line (CO-151)";
        * ``bundling_edits``: "applies bundling_edits.csv" or "none";
        * ``corrected_claims``: text; "filing limit not re-applied" exempts corrected
          claims from the filing limit.

    Returns
    -------
    int
        Number of contracts inserted or updated.

    Raises
    ------
    InvalidInputError
        A bad header or cell, a payer listed twice, or a payer not in the record. Every
        row is checked first; the message names file, line and column of each problem
        (the first 10, then a count) and nothing is written.
    NotFoundError
        The path does not exist.

    Notes
    -----
    Idempotent: a payer that already has a contract gets it updated.
    """
    source, text = _read_text(path_or_file, "contracts")
    rows, shape = _csv_rows(source, text, CONTRACT_COLUMNS, _CONTRACT_OPTIONAL)
    problems = _Problems(source, "contracts")
    _merge(problems, shape)
    parsed: list[_ContractRow] = []
    first: dict[str, int] = {}
    for line, raw in rows:
        row = _parse_contract_row(raw, line, problems)
        if row is None:
            continue
        payer_id = row.values["payer_id"]
        if payer_id in first:
            problems.add(
                line,
                "payer_organization_id",
                f"payer {payer_id!r} already has a contract on line {first[payer_id]}",
            )
            continue
        first[payer_id] = line
        parsed.append(row)
    known = _existing_ids(session, Organization, [r.values["payer_id"] for r in parsed])
    for row in parsed:
        if row.values["payer_id"] not in known:
            problems.add(
                row.line,
                "payer_organization_id",
                f"{row.values['payer_id']!r} is not an Organization in the record: import "
                "the payers (Organization resources) first",
            )
    problems.raise_if_any()
    existing = {
        c.payer_id: c
        for chunk in _chunks([r.values["payer_id"] for r in parsed])
        for c in session.scalars(select(Contract).where(Contract.payer_id.in_(chunk)))
    }
    for row in parsed:
        contract = existing.get(row.values["payer_id"])
        if contract is None:
            contract = Contract(payer_id=row.values["payer_id"])
            session.add(contract)
        for name, value in row.values.items():
            setattr(contract, name, value)
    session.flush()
    logger.info("contracts: %d loaded from %s", len(parsed), source)
    return len(parsed)


def _existing_ids(session: Session, entity: Any, ids: Iterable[str]) -> set[str]:
    wanted = sorted(set(ids))
    found: set[str] = set()
    for chunk in _chunks(wanted):
        found.update(session.scalars(select(entity.id).where(entity.id.in_(chunk))))
    return found


def find_contract(session: Session, payer_id: str | None) -> Contract | None:
    """Return the payer's contract, or ``None`` (also for ``payer_id=None``)."""
    if payer_id is None:
        return None
    return session.scalars(select(Contract).where(Contract.payer_id == payer_id)).first()


# --------------------------------------------------------------------------- service codes


def load_service_codes(
    session: Session,
    service_categories_csv: CsvSource,
    unit_limits_csv: CsvSource | None = None,
) -> int:
    """Load service codes (category, revenue code) and their unit limits, all or nothing.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session; rows are added and flushed, not committed.
    service_categories_csv : str, path-like or open file
        Columns :data:`SERVICE_CATEGORY_COLUMNS` (``code_system,code,display,
        service_category,revenue_code``), as ``shared/data/synthea-rcm/
        service_categories.csv``. ``revenue_code`` is a NUBC code (4 digits; 3 are
        zero-padded).
    unit_limits_csv : str, path-like or open file, optional
        Columns :data:`UNIT_LIMIT_COLUMNS` (``code_system,code,display,max_units_per_line``,
        whole number ≥ 1), as ``unit_limits.csv``. A code not listed has a limit of
        :data:`DEFAULT_MAX_UNITS_PER_LINE` (1) — the rule the synthea-rcm README states.
        A code listed here but not in the categories file is stored without a category.

    Returns
    -------
    int
        Number of service codes inserted or updated.

    Raises
    ------
    InvalidInputError
        A bad header or cell, a code listed twice under one category, or twice in the
        unit limits; names file, line and column. Nothing is written.
    NotFoundError
        A path does not exist.

    Notes
    -----
    Idempotent: ``(code_system, code, service_category)`` rows are updated in place. A
    code listed under several categories gets one row per category (see
    :func:`pick_service_code`); its unit limit applies to every row. A row loaded before
    and absent from both files is left as it is.
    """
    cat_source, cat_text = _read_text(service_categories_csv, "service categories")
    cat_rows, cat_shape = _csv_rows(cat_source, cat_text, SERVICE_CATEGORY_COLUMNS)
    problems = _Problems(cat_source, "service codes")
    _merge(problems, cat_shape)
    codes: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    first: dict[tuple[str, str, str | None], int] = {}
    for line, raw in cat_rows:
        before = len(problems.messages)
        system = _text(raw, "code_system", line, problems, limit=128, required=True)
        code = _text(raw, "code", line, problems, limit=64, required=True)
        display = _text(raw, "display", line, problems, limit=512, required=False)
        category = _text(raw, "service_category", line, problems, limit=64, required=True)
        revenue = _revenue_code(raw, line, problems)
        if len(problems.messages) > before or system is None or code is None:
            continue
        key = (system, code, category)
        if key in first:
            problems.add(
                line,
                "service_category",
                f"{system}|{code} in category {category!r} is already on line {first[key]}",
            )
            continue
        first[key] = line
        codes[key] = {
            "display": display,
            "revenue_code": revenue,
            "max_units_per_line": DEFAULT_MAX_UNITS_PER_LINE,
        }
    if unit_limits_csv is not None:
        lim_source, lim_text = _read_text(unit_limits_csv, "unit limits")
        lim_rows, lim_shape = _csv_rows(lim_source, lim_text, UNIT_LIMIT_COLUMNS)
        limit_problems = _Problems(lim_source, "service codes")
        _merge(limit_problems, lim_shape)
        seen: dict[tuple[str, str], int] = {}
        for line, raw in lim_rows:
            before = len(limit_problems.messages)
            system = _text(raw, "code_system", line, limit_problems, limit=128, required=True)
            code = _text(raw, "code", line, limit_problems, limit=64, required=True)
            display = _text(raw, "display", line, limit_problems, limit=512, required=False)
            units = _positive_int(raw, "max_units_per_line", line, limit_problems)
            if (
                len(limit_problems.messages) > before
                or system is None
                or code is None
                or units is None
            ):
                continue
            if (system, code) in seen:
                limit_problems.add(
                    line, "code", f"{system}|{code} is already on line {seen[(system, code)]}"
                )
                continue
            seen[(system, code)] = line
            rows_of_code = [k for k in codes if k[:2] == (system, code)]
            if not rows_of_code:
                codes[(system, code, None)] = {"display": display, "revenue_code": None}
                rows_of_code = [(system, code, None)]
            for key in rows_of_code:
                codes[key]["max_units_per_line"] = units
        problems.messages.extend(limit_problems.messages)
    problems.raise_if_any()
    existing: dict[tuple[str, str, str | None], ServiceCode] = {}
    for chunk in _chunks(sorted({code for _, code, _ in codes})):
        for row in session.scalars(select(ServiceCode).where(ServiceCode.code.in_(chunk))):
            existing[(row.code_system, row.code, row.service_category)] = row
    for (system, code, category), values in codes.items():
        service = existing.get((system, code, category))
        if service is None:
            service = ServiceCode(code_system=system, code=code, service_category=category)
            session.add(service)
        for name, value in values.items():
            setattr(service, name, value)
    session.flush()
    logger.info("service codes: %d loaded from %s", len(codes), cat_source)
    return len(codes)


# --------------------------------------------------------------------------- bundling


def load_bundling_edits_csv(session: Session, path_or_file: CsvSource) -> int:
    """Load payer bundling edits (component not paid with its comprehensive code).

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session; rows are added and flushed, not committed.
    path_or_file : str, path-like or open file
        Columns :data:`BUNDLING_EDIT_COLUMNS`, as ``shared/data/synthea-rcm/
        bundling_edits.csv``; ``carc_if_billed`` is a group code and CARC such as
        ``CO-97`` (X12 CARC 97: "The benefit for this service is included in the
        payment/allowance for another service/procedure").

    Returns
    -------
    int
        Number of edits inserted or updated.

    Raises
    ------
    InvalidInputError
        A bad header or cell, a pair listed twice, or a code bundled into itself; names
        file, line and column. Nothing is written.
    NotFoundError
        The path does not exist.

    Notes
    -----
    Idempotent on ``(comprehensive_code, component_code)``.
    """
    source, text = _read_text(path_or_file, "bundling edits")
    rows, shape = _csv_rows(source, text, BUNDLING_EDIT_COLUMNS)
    problems = _Problems(source, "bundling edits")
    _merge(problems, shape)
    edits: dict[tuple[str, str], dict[str, Any]] = {}
    first: dict[tuple[str, str], int] = {}
    for line, raw in rows:
        before = len(problems.messages)
        comprehensive = _text(raw, "comprehensive_code", line, problems, limit=64, required=True)
        component = _text(raw, "component_code", line, problems, limit=64, required=True)
        comprehensive_display = _text(
            raw, "comprehensive_display", line, problems, limit=512, required=False
        )
        component_display = _text(
            raw, "component_display", line, problems, limit=512, required=False
        )
        adjustment = raw["carc_if_billed"]
        match = _ADJUSTMENT.fullmatch(adjustment)
        if match is None:
            problems.add(
                line,
                "carc_if_billed",
                f"{adjustment!r} is not a group code and CARC such as CO-97",
            )
        if len(problems.messages) > before or comprehensive is None or component is None:
            continue
        if comprehensive == component:
            problems.add(line, "component_code", f"{component!r} cannot be bundled into itself")
            continue
        key = (comprehensive, component)
        if key in first:
            problems.add(
                line,
                "component_code",
                f"pair {comprehensive} ⊃ {component} is on line {first[key]} already",
            )
            continue
        first[key] = line
        assert match is not None  # noqa: S101 - checked above
        edits[key] = {
            "comprehensive_display": comprehensive_display,
            "component_display": component_display,
            "group_code": match.group(1),
            "carc": match.group(2),
        }
    problems.raise_if_any()
    existing = {
        (e.comprehensive_code, e.component_code): e for e in session.scalars(select(BundlingEdit))
    }
    for (comprehensive, component), values in edits.items():
        edit = existing.get((comprehensive, component))
        if edit is None:
            edit = BundlingEdit(comprehensive_code=comprehensive, component_code=component)
            session.add(edit)
        for name, value in values.items():
            setattr(edit, name, value)
    session.flush()
    logger.info("bundling edits: %d loaded from %s", len(edits), source)
    return len(edits)


# --------------------------------------------------------------------------- eligibility


def _day(value: dt.date | dt.datetime, name: str) -> dt.date:
    """Reduce a date or aware datetime to its (UTC) day."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInputError(
                f"{name}={value.isoformat()} is a naive datetime: pass a date or an aware datetime"
            )
        return value.astimezone(dt.UTC).date()
    if not isinstance(value, dt.date):
        raise InvalidInputError(f"{name} must be a date, got {type(value).__name__} {value!r}")
    return value


def _aware(value: dt.datetime | None, name: str) -> dt.datetime:
    if value is None:
        return utcnow()
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{name} must be an aware datetime, got {value!r}")
    return value.astimezone(dt.UTC)


def coverage_order(coverage: Coverage) -> int | None:
    """FHIR ``Coverage.order`` (1 = primary) from the received resource, else ``None``."""
    order = (coverage.resource or {}).get("order")
    if isinstance(order, int) and not isinstance(order, bool):
        return order
    return None


def coverage_active_on(coverage: Coverage, on: dt.date) -> tuple[bool, str | None, str]:
    """Whether ``coverage`` is in force on day ``on``: ``(active, CARC, reason)``.

    The period is inclusive on both ends and compared by UTC day (FHIR ``Period``: "the
    end is included"); no end means still active. A coverage whose ``status`` is not
    ``active`` (cancelled, draft, entered-in-error) is never in force. The CARC is the
    X12 code a payer would deny with: 26 "Expenses incurred prior to coverage" (before
    the start), 27 "Expenses incurred after coverage terminated" (after the end or not
    active).
    """
    ref = f"Coverage/{coverage.id}"
    if coverage.status != "active":
        return False, "27", f"{ref} has status {coverage.status!r}, not active"
    start = coverage.period_start.astimezone(dt.UTC).date() if coverage.period_start else None
    end = coverage.period_end.astimezone(dt.UTC).date() if coverage.period_end else None
    if start is not None and on < start:
        return False, "26", f"{ref} starts on {start.isoformat()}, after {on.isoformat()}"
    if end is not None and on > end:
        return False, "27", f"{ref} ended on {end.isoformat()}, before {on.isoformat()}"
    return True, None, f"{ref} is active on {on.isoformat()}"


@dataclass(frozen=True)
class EligibilityResult:
    """The answer of :func:`check_eligibility`.

    Attributes
    ----------
    patient_id : str
    on : datetime.date
        The service day asked about.
    eligible : bool
        A coverage is active on that day.
    coverage_id, payer_id : str or None
        The primary active coverage (lowest ``Coverage.order``) and its payer.
    coverage_ids : tuple of str
        Every active coverage, primary first (claims go to the primary only).
    reason : str
        Why, naming the coverage(s).
    carc : str or None
        When not eligible: the X12 CARC a claim would be denied with (26 before
        coverage, 27 after it ended, 31 no coverage with that payer at all).
    """

    patient_id: str
    on: dt.date
    eligible: bool
    coverage_id: str | None
    payer_id: str | None
    coverage_ids: tuple[str, ...]
    reason: str
    carc: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (dates as ISO strings)."""
        return {
            "patient_id": self.patient_id,
            "on": self.on.isoformat(),
            "eligible": self.eligible,
            "coverage_id": self.coverage_id,
            "payer_id": self.payer_id,
            "coverage_ids": list(self.coverage_ids),
            "reason": self.reason,
            "carc": self.carc,
        }


def _coverage_sort_key(coverage: Coverage) -> tuple[int, float, str]:
    order = coverage_order(coverage)
    start = coverage.period_start.timestamp() if coverage.period_start else float("-inf")
    return (order if order is not None else 1, -start, coverage.id)


def check_eligibility(
    session: Session,
    *,
    patient_id: str,
    on: dt.date | dt.datetime,
    payer_id: str | None = None,
) -> EligibilityResult:
    """Check whether a coverage of the patient is active on a date, and which is primary.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
    patient_id : str
        FHIR id of the patient.
    on : datetime.date or aware datetime
        Service date (a datetime is reduced to its UTC day).
    payer_id : str, optional
        Only consider coverage with this payer Organization.

    Returns
    -------
    EligibilityResult
        Active coverages ordered by FHIR ``Coverage.order`` (1 = primary; dual-eligible
        patients have Medicare as 1 and Medicaid as 2, synthea-rcm README), then by the
        latest start. When none is active, the reason names the nearest coverage and the
        CARC a claim would be denied with.

    Raises
    ------
    NotFoundError
        No such patient.
    InvalidInputError
        ``on`` is not a date or is a naive datetime.

    Examples
    --------
    >>> result = check_eligibility(session, patient_id="p1",  # doctest: +SKIP
    ...                            on=datetime.date(2019, 5, 1))
    >>> result.eligible, result.coverage_id  # doctest: +SKIP
    (True, 'cov-1')
    """
    day = _day(on, "on")
    if session.get(Patient, patient_id) is None:
        raise NotFoundError(f"Patient/{patient_id} does not exist")
    query = select(Coverage).where(Coverage.patient_id == patient_id)
    if payer_id is not None:
        query = query.where(Coverage.payor_id == payer_id)
    coverages = sorted(session.scalars(query), key=_coverage_sort_key)
    active = [c for c in coverages if coverage_active_on(c, day)[0]]
    if active:
        primary = active[0]
        others = f" (also active: {', '.join(c.id for c in active[1:])})" if active[1:] else ""
        return EligibilityResult(
            patient_id=patient_id,
            on=day,
            eligible=True,
            coverage_id=primary.id,
            payer_id=primary.payor_id,
            coverage_ids=tuple(c.id for c in active),
            reason=f"Coverage/{primary.id} is active on {day.isoformat()}{others}",
        )
    with_payer = f" with payer Organization/{payer_id}" if payer_id else ""
    if not coverages:
        return EligibilityResult(
            patient_id=patient_id,
            on=day,
            eligible=False,
            coverage_id=None,
            payer_id=payer_id,
            coverage_ids=(),
            reason=f"Patient/{patient_id} has no coverage on file{with_payer}",
            carc="31",
        )

    def distance(coverage: Coverage) -> int:
        start = coverage.period_start.astimezone(dt.UTC).date() if coverage.period_start else day
        end = coverage.period_end.astimezone(dt.UTC).date() if coverage.period_end else day
        return min(abs((start - day).days), abs((day - end).days))

    nearest = min(coverages, key=lambda c: (distance(c), c.id))
    _, carc, reason = coverage_active_on(nearest, day)
    return EligibilityResult(
        patient_id=patient_id,
        on=day,
        eligible=False,
        coverage_id=None,
        payer_id=payer_id,
        coverage_ids=(),
        reason=f"no coverage{with_payer} is active on {day.isoformat()}: {reason}",
        carc=carc,
    )


# --------------------------------------------------------------------------- authorisation


def _clean_list(values: Iterable[str] | None, name: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        raise InvalidInputError(f"{name} must be a list of strings, not the string {values!r}")
    out: list[str] = []
    for value in values:
        if not isinstance(value, str) or not value.strip() or len(value.strip()) > 64:
            raise InvalidInputError(f"{name} holds {value!r}: expected non-empty codes")
        if value.strip() not in out:
            out.append(value.strip())
    return out


def _optional_money(value: Decimal | str | None, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InvalidInputError(f"{name} {value!r} is not an amount") from None
    problem = _money_amount(amount) if amount.is_finite() else "is not finite"
    if problem:
        raise InvalidInputError(f"{name} {value} {problem}")
    return amount.quantize(_CENT)


def request_authorization(
    session: Session,
    *,
    patient_id: str,
    payer_id: str,
    requested_by: str,
    kind: str = AuthorizationKind.PRIOR_AUTH,
    coverage_id: str | None = None,
    encounter_id: str | None = None,
    service_codes: Sequence[str] | None = None,
    service_categories: Sequence[str] | None = None,
    valid_from: dt.date | None = None,
    valid_to: dt.date | None = None,
    requested_at: dt.datetime | None = None,
    requested_amount: Decimal | str | None = None,
    currency: str | None = None,
    reference_number: str | None = None,
    reason: str | None = None,
) -> PriorAuthorization:
    """Record a request for authorisation to a payer (status ``requested``).

    Parameters
    ----------
    session : sqlalchemy.orm.Session
    patient_id, payer_id : str
        The patient and the payer Organization.
    requested_by : str
        Who asked (user id or name; recorded).
    kind : {"prior-auth", "cashless-preauth", "discharge-auth"}, default="prior-auth"
    coverage_id : str, optional
        The patient's coverage with that payer.
    encounter_id : str, optional
        The patient's encounter the services are for.
    service_codes, service_categories : sequence of str
        What is to be authorised; at least one code or category.
    valid_from, valid_to : datetime.date, optional
        Requested validity window (inclusive); the payer's answer may set it.
    requested_at : aware datetime, optional
        Default now. Starts the IRDAI clocks for the India cashless kinds.
    requested_amount : Decimal, optional
        Estimate sent with a cashless pre-authorisation, in ``currency``.
    currency : str, optional
        ISO 4217: the ledger currency
        (:func:`~healthos_core.billing.money.ledger_currency`), the default when an
        amount is given; another currency is refused.
    reference_number : str, optional
        A tracking number issued at request time, if the payer gives one.
    reason : str, optional
        Clinical justification / provisional diagnosis.

    Returns
    -------
    PriorAuthorization

    Raises
    ------
    NotFoundError
        The patient, payer, coverage or encounter does not exist.
    InvalidInputError
        No service named; unknown kind; window ends before it starts; the coverage or
        encounter belongs to another patient, or the coverage to another payer; a
        currency other than the ledger's.
    """
    if kind not in {k.value for k in AuthorizationKind}:
        raise InvalidInputError(
            f"kind {kind!r} is not one of {', '.join(k.value for k in AuthorizationKind)}"
        )
    codes = _clean_list(service_codes, "service_codes")
    categories = _clean_list(service_categories, "service_categories")
    if not codes and not categories:
        raise InvalidInputError(
            "an authorisation request names no service: pass service_codes and/or "
            "service_categories"
        )
    if not requested_by or not requested_by.strip():
        raise InvalidInputError("requested_by is empty: say who requests the authorisation")
    start = _day(valid_from, "valid_from") if valid_from is not None else None
    end = _day(valid_to, "valid_to") if valid_to is not None else None
    if start and end and end < start:
        raise InvalidInputError(
            f"valid_to {end.isoformat()} is before valid_from {start.isoformat()}"
        )
    when = _aware(requested_at, "requested_at")
    if session.get(Patient, patient_id) is None:
        raise NotFoundError(f"Patient/{patient_id} does not exist")
    if session.get(Organization, payer_id) is None:
        raise NotFoundError(f"payer Organization/{payer_id} does not exist")
    if coverage_id is not None:
        coverage = session.get(Coverage, coverage_id)
        if coverage is None:
            raise NotFoundError(f"Coverage/{coverage_id} does not exist")
        if coverage.patient_id != patient_id:
            raise InvalidInputError(
                f"Coverage/{coverage_id} belongs to Patient/{coverage.patient_id}, "
                f"not Patient/{patient_id}"
            )
        if coverage.payor_id is not None and coverage.payor_id != payer_id:
            raise InvalidInputError(
                f"Coverage/{coverage_id} is with Organization/{coverage.payor_id}, "
                f"not the payer Organization/{payer_id}"
            )
    if encounter_id is not None:
        encounter = session.get(Encounter, encounter_id)
        if encounter is None:
            raise NotFoundError(f"Encounter/{encounter_id} does not exist")
        if encounter.patient_id != patient_id:
            raise InvalidInputError(
                f"Encounter/{encounter_id} belongs to Patient/{encounter.patient_id}, "
                f"not Patient/{patient_id}"
            )
    amount = _optional_money(requested_amount, "requested_amount")
    currency_code = (
        check_currency(currency, field="currency")
        if amount is not None or currency is not None
        else None
    )
    if reference_number is not None and (
        not reference_number.strip() or len(reference_number) > 64
    ):
        raise InvalidInputError(f"reference_number {reference_number!r} is empty or too long")
    authorization = PriorAuthorization(
        id=str(uuid.uuid4()),
        patient_id=patient_id,
        coverage_id=coverage_id,
        payer_id=payer_id,
        encounter_id=encounter_id,
        kind=str(kind),
        status=AuthorizationStatus.REQUESTED.value,
        reference_number=reference_number,
        service_codes=codes,
        service_categories=categories,
        valid_from=start,
        valid_to=end,
        requested_amount=amount,
        currency=currency_code,
        requested_at=when,
        requested_by=requested_by.strip()[:128],
        reason=reason[:512] if reason else None,
    )
    session.add(authorization)
    session.flush()
    return authorization


def decide_authorization(
    session: Session,
    authorization_id: str,
    *,
    status: str,
    actor: str,
    reference_number: str | None = None,
    valid_from: dt.date | None = None,
    valid_to: dt.date | None = None,
    reason: str | None = None,
    decided_at: dt.datetime | None = None,
    approved_amount: Decimal | str | None = None,
    bus: EventBus | None = None,
) -> PriorAuthorization:
    """Record the payer's decision (or the provider's cancellation) on an authorisation.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
    authorization_id : str
    status : {"approved", "denied", "cancelled"}
        ``approved`` and ``denied`` only from ``requested``; ``cancelled`` from
        ``requested`` or ``approved``. (``expired`` is set by
        :func:`expire_authorizations`.)
    actor : str
        Who recorded the decision (``decided_by``).
    reference_number : str, optional
        The payer's authorisation number; required to approve unless given at request.
    valid_from, valid_to : datetime.date, optional
        The approved window (inclusive), replacing the requested one. A ``prior-auth``
        approval needs both ends (from the request or here).
    reason : str, optional
        Required to deny or cancel.
    decided_at : aware datetime, optional
        Default now; not before ``requested_at``. Stops the IRDAI clock of the India kinds.
    approved_amount : Decimal, optional
        Amount approved (cashless), in the authorisation's currency.

    bus : EventBus, optional
        Where :class:`~healthos_core.events.ClaimChanged` goes for each of the patient's
        claims still in draft or submitted (a decision changes their denial risk);
        default :func:`~healthos_core.events.default_bus`.

    Returns
    -------
    PriorAuthorization

    Raises
    ------
    NotFoundError
        No such authorisation.
    ConflictError
        The transition is not allowed from the current status.
    InvalidInputError
        A required value is missing or inconsistent; nothing is changed.
    """
    authorization = session.get(PriorAuthorization, authorization_id)
    if authorization is None:
        raise NotFoundError(f"PriorAuthorization/{authorization_id} does not exist")
    allowed = _AUTH_TRANSITIONS.get(authorization.status, frozenset())
    if status not in {s.value for s in AuthorizationStatus}:
        raise InvalidInputError(f"status {status!r} is not one of approved, denied, cancelled")
    if status not in allowed:
        raise ConflictError(
            f"{authorization.reference} is {authorization.status}: it cannot become {status}"
            + (f" (allowed: {', '.join(sorted(allowed))})" if allowed else " (final status)")
        )
    if not actor or not actor.strip():
        raise InvalidInputError("actor is empty: say who records the decision")
    when = _aware(decided_at, "decided_at")
    if when < authorization.requested_at:
        raise InvalidInputError(
            f"decided_at {when.isoformat()} is before requested_at "
            f"{authorization.requested_at.isoformat()}"
        )
    start = _day(valid_from, "valid_from") if valid_from is not None else authorization.valid_from
    end = _day(valid_to, "valid_to") if valid_to is not None else authorization.valid_to
    number = reference_number if reference_number is not None else authorization.reference_number
    if number is not None and (not number.strip() or len(number) > 64):
        raise InvalidInputError(f"reference_number {number!r} is empty or too long")
    amount = _optional_money(approved_amount, "approved_amount")
    if status == AuthorizationStatus.APPROVED:
        if not number:
            raise InvalidInputError(
                f"approving {authorization.reference} needs the payer's reference_number"
            )
        if authorization.kind == AuthorizationKind.PRIOR_AUTH and (start is None or end is None):
            raise InvalidInputError(
                f"approving {authorization.reference} needs its validity window: pass "
                "valid_from and valid_to"
            )
        if start and end and end < start:
            raise InvalidInputError(
                f"valid_to {end.isoformat()} is before valid_from {start.isoformat()}"
            )
    elif not reason or not reason.strip():
        raise InvalidInputError(f"{status} {authorization.reference} needs a reason")
    authorization.status = status
    authorization.decided_at = when
    authorization.decided_by = actor.strip()[:128]
    authorization.reason = reason[:512] if reason else authorization.reason
    if status == AuthorizationStatus.APPROVED:
        authorization.reference_number = number
        authorization.valid_from = start
        authorization.valid_to = end
        if amount is not None:
            authorization.approved_amount = amount
            authorization.currency = authorization.currency or ledger_currency()
    session.flush()
    _publish_claims_of(session, authorization, bus if bus is not None else default_bus())
    return authorization


def _publish_claims_of(session: Session, authorization: PriorAuthorization, bus: EventBus) -> None:
    """Publish ``ClaimChanged`` for the patient's claims a decision can change (not yet paid)."""
    open_statuses = (ClaimBillingStatus.DRAFT.value, ClaimBillingStatus.SUBMITTED.value)
    query = select(Claim).where(
        Claim.patient_id == authorization.patient_id, Claim.billing_status.in_(open_statuses)
    )
    for claim in session.scalars(query.order_by(Claim.id)):
        bus.publish(ClaimChanged(claim=claim, change="authorization"), session)


def expire_authorizations(
    session: Session, *, as_of: dt.date | dt.datetime
) -> list[PriorAuthorization]:
    """Mark approved or still-requested authorisations whose window ended before ``as_of``.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
    as_of : datetime.date or aware datetime
        An authorisation with ``valid_to < as_of`` (UTC day) becomes ``expired``.

    Returns
    -------
    list of PriorAuthorization
        The authorisations expired now (running it again returns an empty list).

    Notes
    -----
    An expired authorisation still proves that services inside its window were
    authorised: :func:`find_valid_authorization` accepts it for those dates.
    """
    day = _day(as_of, "as_of")
    expired = list(
        session.scalars(
            select(PriorAuthorization)
            .where(
                PriorAuthorization.status.in_(
                    [AuthorizationStatus.APPROVED.value, AuthorizationStatus.REQUESTED.value]
                ),
                PriorAuthorization.valid_to.is_not(None),
                PriorAuthorization.valid_to < day,
            )
            .order_by(PriorAuthorization.valid_to, PriorAuthorization.id)
        )
    )
    for authorization in expired:
        authorization.status = AuthorizationStatus.EXPIRED.value
    session.flush()
    return expired


#: Statuses whose window proves authorisation: approved, and approved-then-expired.
_PROVING: Final = (AuthorizationStatus.APPROVED.value, AuthorizationStatus.EXPIRED.value)


def find_valid_authorization(
    session: Session,
    *,
    patient_id: str,
    payer_id: str,
    category_or_code: str,
    on: dt.date | dt.datetime,
) -> PriorAuthorization | None:
    """Return an authorisation that covers a service on a day, or ``None``.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
    patient_id, payer_id : str
    category_or_code : str
        A service code or a service category.
    on : datetime.date or aware datetime
        Date of service (UTC day).

    Returns
    -------
    PriorAuthorization or None
        An approved authorisation (or one approved and since expired: its window still
        covers the services done inside it) naming the code or category, whose window
        holds ``on``; the most recently decided first.

    Raises
    ------
    InvalidInputError
        ``on`` is not a date or is a naive datetime.
    """
    day = _day(on, "on")
    candidates = session.scalars(
        select(PriorAuthorization)
        .where(
            PriorAuthorization.patient_id == patient_id,
            PriorAuthorization.payer_id == payer_id,
            PriorAuthorization.status.in_(_PROVING),
            or_(PriorAuthorization.valid_from.is_(None), PriorAuthorization.valid_from <= day),
            or_(PriorAuthorization.valid_to.is_(None), PriorAuthorization.valid_to >= day),
        )
        .order_by(PriorAuthorization.decided_at.desc(), PriorAuthorization.id)
    )
    for authorization in candidates:
        if authorization.proves() and authorization.covers(category_or_code):
            return authorization
    return None
