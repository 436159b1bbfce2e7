"""Remittance posting: payer adjudications (FHIR ClaimResponse, X12 835) into the ledger.

A payer's answer to a claim arrives as a FHIR R4 ``ClaimResponse`` whose
``item[].adjudication[]`` carry, per claim line, the amounts the payer ``submitted``
(billed), found ``eligible`` (allowed) and paid (``benefit``), and the adjustments with
their X12 group code and CARC/RARC (``../shared/data/synthea-rcm/README.md``,
"Conventions"). :func:`post_claim_responses` validates a batch of them completely
**before** writing anything, then stores each adjudication as a
:class:`ClaimResponseAdjudication` row, posts the ledger entries and moves each claim's
``billing_status`` with a ``ClaimStatusHistory`` row (actor ``remittance``).

Validation (any failure rejects the whole batch, naming the response and the problem)
--------------------------------------------------------------------------------------
* the claim exists (``request`` → ``Claim/<id>``), is in the revenue cycle
  (``billing_status`` set and not ``draft``), is the patient's and was sent to the
  payer that answers (``insurer``);
* the claim has no other posted adjudication, unless it was appealed;
* every line (``itemSequence``) is a line of the claim; every category is one of the
  conventions; amounts are non-negative, to the cent, in the claim's currency;
* every adjustment has a CARC from the X12 list (``healthos_core/data/x12/carc.csv``),
  a CAS group code (CO, PR, OA, PI) that fits its category (patient responsibility is
  PR; contractual is CO or PI; a denial is not PR), and any RARC is in the X12 list
  (``rarc.csv``); ``error[].code`` CARCs too;
* each line balances, to the cent (X12 835 005010X221A1 balancing: billed charge = paid
  + the sum of the CAS adjustments; ``../shared/billing-facts.md`` §3)::

      submitted = benefit + contractual + patient responsibility + denied

  A line that reports its allowed amount (``eligible``) is checked on both sides:
  ``submitted = eligible + contractual + denied`` must hold exactly and ``benefit +
  patient responsibility`` may not exceed ``eligible``. When the payer paid less than
  it allowed, with no adjustment explaining the gap (what synthea-rcm calls an
  underpayment "with no valid reason"), the gap is kept as an adjudication of category
  ``underpaid`` (no CARC) and stays open in payer A/R for follow-up; ``strict=True``
  rejects such a line instead, as a strict 835 balancing check would;
* ``payment.amount`` = the sum of the line benefits (0 when there is no payment).

Postings (source ``ClaimResponse/<id>``, one entry per kind, see :mod:`.ledger`)
--------------------------------------------------------------------------------
benefit → Dr cash / Cr payer_ar; contractual (CO-45) → Dr contractual_allowance /
Cr payer_ar; patient responsibility (PR-1 deductible, PR-2 coinsurance, PR-3
co-payment) → Dr patient_ar / Cr payer_ar. Denied and underpaid amounts are not
posted: they stay in payer A/R until corrected, appealed or written off. The payer A/R
lines name the claim they settle: for a corrected claim (``Claim.related``,
relationship ``prior``) that is its original, whose open balance the corrected claim's
answer settles (the corrected claim itself was never charged again).

Claim status
------------
``error`` outcome, every submitted dollar denied, or a claim-level denial with nothing
paid → ``denied``; some line denied or outcome ``partial`` → ``partial``; otherwise
``paid``. An adjudicated claim that has a corrected claim moves on to ``resubmitted``
(when the corrected claim is imported, or when the original's answer arrives after
it). Re-posting a response that is already posted is a no-op; a response with the same
id and other amounts is rejected (payer reversals are not posted automatically).

X12 835
-------
:func:`post_835` reads an 835 file with ``pyx12`` (HIPAA X12 parser and validator,
PyPI ``pyx12``), turns each claim payment (CLP loop 2100 with its SVC lines and CAS
adjustments) into the same ClaimResponse shape and posts it the same way.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import gc
import io
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

from sqlalchemy import ForeignKey, Integer, String, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from healthos_core.billing.entities import (
    Claim,
    ClaimBillingStatus,
    ClaimItem,
    ClaimResponse,
)
from healthos_core.billing.ledger import (
    CENT,
    ZERO,
    AccountKind,
    JournalKind,
    JournalSpec,
    _claim_rows,
    _ClaimRow,
    _money,
    _sum,
    account_id,
    bulk_insert,
    cast_table,
    credit,
    debit,
    id_batches,
    in_ids,
    patient_ar,
    payer_ar,
    post_claim_charges,
    post_journals,
    record_billing_status,
)
from healthos_core.billing.money import check_currency, ledger_currency
from healthos_core.db import Base, lock_rows, utcnow
from healthos_core.errors import (
    ConflictError,
    FhirValidationError,
    InvalidInputError,
    NotFoundError,
)
from healthos_core.fhir.importer import (
    import_hooks,
    register_import_hook,
    unregister_import_hook,
)

__all__ = [
    "ADJUDICATION_SYSTEM",
    "CARC_SYSTEM",
    "GROUP_CODE_EXTENSION",
    "HOSPITAL_ADJUDICATION_SYSTEM",
    "RARC_SYSTEM",
    "REMARK_CODE_EXTENSION",
    "AdjudicationCategory",
    "ClaimResponseAdjudication",
    "RemittanceSummary",
    "carc_codes",
    "group_codes",
    "post_835",
    "post_claim_response",
    "post_claim_responses",
    "post_imported_claims",
    "rarc_codes",
    "register_remittance_hooks",
    "remittance_hooks_registered",
    "unregister_remittance_hooks",
]

logger = logging.getLogger(__name__)

#: HL7 adjudication value set (submitted, eligible, benefit …).
ADJUDICATION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/adjudication"
#: HealthOS adjustment categories (denied, contractual, patient-responsibility).
HOSPITAL_ADJUDICATION_SYSTEM: Final = (
    "https://hospital-os.example/fhir/CodeSystem/adjudication-category"
)
CARC_SYSTEM: Final = "https://x12.org/codes/claim-adjustment-reason-codes"
RARC_SYSTEM: Final = "https://x12.org/codes/remittance-advice-remark-codes"
GROUP_CODE_SYSTEM: Final = "https://x12.org/codes/claim-adjustment-group-codes"
GROUP_CODE_EXTENSION: Final = "https://hospital-os.example/fhir/StructureDefinition/cas-group-code"
REMARK_CODE_EXTENSION: Final = "https://hospital-os.example/fhir/StructureDefinition/remark-code"


class AdjudicationCategory(enum.StrEnum):
    """Categories of a :class:`ClaimResponseAdjudication`."""

    SUBMITTED = "submitted"
    ELIGIBLE = "eligible"
    BENEFIT = "benefit"
    DENIED = "denied"
    CONTRACTUAL = "contractual"
    PATIENT_RESPONSIBILITY = "patient-responsibility"
    #: Derived by HealthOS: allowed − paid − patient responsibility, unexplained.
    UNDERPAID = "underpaid"


_C = AdjudicationCategory
#: Category → the code system it must come in (synthea-rcm README conventions).
_CATEGORY_SYSTEM: Final = {
    _C.SUBMITTED: ADJUDICATION_SYSTEM,
    _C.ELIGIBLE: ADJUDICATION_SYSTEM,
    _C.BENEFIT: ADJUDICATION_SYSTEM,
    _C.DENIED: HOSPITAL_ADJUDICATION_SYSTEM,
    _C.CONTRACTUAL: HOSPITAL_ADJUDICATION_SYSTEM,
    _C.PATIENT_RESPONSIBILITY: HOSPITAL_ADJUDICATION_SYSTEM,
}
_CATEGORY_BY_CODING: Final = {(system, str(c)): c for c, system in _CATEGORY_SYSTEM.items()}
_ADJUSTMENTS: Final = frozenset({_C.DENIED, _C.CONTRACTUAL, _C.PATIENT_RESPONSIBILITY})
#: CAS group codes that fit each adjustment category (X12 835 CAS01).
_GROUPS_FOR: Final = {
    _C.CONTRACTUAL: frozenset({"CO", "PI"}),
    _C.PATIENT_RESPONSIBILITY: frozenset({"PR"}),
    _C.DENIED: frozenset({"CO", "OA", "PI"}),
}
#: Patient-responsibility CARCs with a plain-language name for invoices.
_PR_NAMES: Final = {"1": "deductible", "2": "coinsurance", "3": "co-payment"}
_OPEN_FOR_ADJUDICATION: Final = frozenset(
    {ClaimBillingStatus.SUBMITTED.value, ClaimBillingStatus.APPEALED.value}
)
#: Statuses an original leaves for ``resubmitted`` when its corrected claim arrives (the
#: claims lifecycle, :data:`healthos_core.billing.claims.TRANSITIONS`).
_ADJUDICATED: Final = frozenset(
    {
        ClaimBillingStatus.PAID.value,
        ClaimBillingStatus.PARTIAL.value,
        ClaimBillingStatus.DENIED.value,
    }
)
_NOT_IN_CYCLE: Final = (None, ClaimBillingStatus.DRAFT.value)


# --------------------------------------------------------------------------- code lists


def _read_codes(name: str) -> frozenset[str]:
    text = resources.files("healthos_core").joinpath(f"data/x12/{name}").read_text("utf-8")
    return frozenset(row["code"].strip() for row in csv.DictReader(io.StringIO(text)))


@cache
def carc_codes() -> frozenset[str]:
    """Return the X12 Claim Adjustment Reason Codes HealthOS accepts (291 codes).

    From ``healthos_core/data/x12/carc.csv`` (X12 external code source 139; origin and
    licence in ``healthos_core/data/README.md``).
    """
    return _read_codes("carc.csv")


@cache
def rarc_codes() -> frozenset[str]:
    """Return the X12 Remittance Advice Remark Codes HealthOS accepts (1,083 codes).

    From ``healthos_core/data/x12/rarc.csv`` (X12 external code source 411).
    """
    return _read_codes("rarc.csv")


@cache
def group_codes() -> frozenset[str]:
    """Return the X12 835 CAS claim adjustment group codes (CO, PR, OA, PI, CR)."""
    return _read_codes("group_codes.csv")


# --------------------------------------------------------------------------- entity


class ClaimResponseAdjudication(Base):
    """One adjudication amount of a ClaimResponse, line by line, with group code and codes.

    ``item_sequence`` is the claim line (``None`` = claim level); ``category`` an
    :class:`AdjudicationCategory`; ``group_code`` the X12 CAS group (CO/PR/OA/PI);
    ``carc`` the X12 CARC; ``rarc`` the X12 RARC(s), space-separated when the payer gave
    more than one; ``ordinal`` the position in the response (the key, with the response).
    """

    __tablename__ = "claim_response_adjudication"
    claim_response_id: Mapped[str] = mapped_column(
        ForeignKey("claim_response.id", ondelete="CASCADE"), primary_key=True
    )
    ordinal: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The claim of the response, denormalised for queries; the response row carries the
    # foreign key (one trigger per row here would slow bulk posting on PostgreSQL).
    claim_id: Mapped[str] = mapped_column(String(64))
    item_sequence: Mapped[int | None] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(32))
    group_code: Mapped[str | None] = mapped_column(String(2))
    carc: Mapped[str | None] = mapped_column(String(8))
    rarc: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))

    def __repr__(self) -> str:
        return (
            f"ClaimResponseAdjudication(claim_response_id={self.claim_response_id!r}, "
            f"item={self.item_sequence}, {self.category} {self.group_code or ''}"
            f"{'-' + self.carc if self.carc else ''} {self.amount} {self.currency})"
        )


_ADJUDICATION_COLUMNS: Final = (
    "claim_response_id",
    "ordinal",
    "claim_id",
    "item_sequence",
    "category",
    "group_code",
    "carc",
    "rarc",
    "amount",
    "currency",
)

# --------------------------------------------------------------------------- parsing


@dataclass(slots=True)
class _Adjudication:
    ordinal: int
    item_sequence: int | None
    category: AdjudicationCategory
    amount: Decimal
    currency: str | None
    group_code: str | None = None
    carc: str | None = None
    rarc: str | None = None

    def key(self) -> tuple[Any, ...]:
        return (
            self.ordinal,
            self.item_sequence,
            str(self.category),
            self.group_code,
            self.carc,
            self.rarc,
            self.amount,
        )


@dataclass
class _Response:
    id: str
    label: str
    claim_id: str
    patient_id: str | None
    insurer_id: str | None
    created: dt.datetime | None
    outcome: str
    disposition: str | None
    payment: Decimal
    payment_currency: str | None
    adjudications: list[_Adjudication] = field(default_factory=list)
    error_carcs: list[str] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)


def _ref_id(value: Any, resource_type: str) -> str | None:
    reference = (value or {}).get("reference") if isinstance(value, dict) else None
    if not isinstance(reference, str):
        return None
    head, _, tail = reference.rstrip("/").rpartition("/")
    if not tail or not head.endswith(resource_type):
        return None
    return tail


def _decimal(value: Any, label: str, what: str = "") -> Decimal:
    """Return ``value`` as a Decimal to the cent; errors name ``label`` and ``what``."""
    try:
        amount = Decimal(str(value)) if not isinstance(value, bool) and value is not None else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        shown = "missing" if value is None else f"{value!r} is not a number"
        raise InvalidInputError(f"{label} {what}".rstrip() + f": amount {shown}")
    rounded = amount.quantize(CENT)
    if amount != rounded:
        raise InvalidInputError(
            f"{label} {what}".rstrip() + f": amount {amount} has fractions of a cent"
        )
    if amount < 0:
        raise InvalidInputError(
            f"{label} {what}".rstrip() + f": negative amount {amount} (a reversal): reverse "
            "the earlier ClaimResponse instead"
        )
    return rounded


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _extension_code(adjudication: dict[str, Any], url_suffix: str) -> list[str]:
    codes = []
    for extension in adjudication.get("extension") or []:
        if str(extension.get("url", "")).endswith(url_suffix):
            coding = extension.get("valueCoding") or {}
            code = coding.get("code") or extension.get("valueCode")
            if code:
                codes.append(str(code).strip())
    return codes


def _parse_adjudication(
    raw: dict[str, Any], *, ordinal: int, item_sequence: int | None, label: str
) -> _Adjudication:
    codings = (raw.get("category") or {}).get("coding") or []
    category: AdjudicationCategory | None = None
    for coding in codings:
        category = _CATEGORY_BY_CODING.get((coding.get("system"), coding.get("code")))
        if category is not None:
            break
    if category is None:
        shown = ", ".join(f"{c.get('system')}|{c.get('code')}" for c in codings) or "none"
        raise InvalidInputError(
            f"{label}: adjudication category {shown} is not one HealthOS posts "
            f"(submitted/eligible/benefit in {ADJUDICATION_SYSTEM}; denied/contractual/"
            f"patient-responsibility in {HOSPITAL_ADJUDICATION_SYSTEM})"
        )
    money = raw.get("amount") or {}
    amount = _decimal(money.get("value"), label, category)
    adjudication = _Adjudication(
        ordinal=ordinal,
        item_sequence=item_sequence,
        category=category,
        amount=amount,
        currency=money.get("currency"),
    )
    if category not in _ADJUSTMENTS:
        return adjudication
    carcs = [
        str(c.get("code")).strip()
        for c in (raw.get("reason") or {}).get("coding") or []
        if c.get("system") == CARC_SYSTEM and c.get("code") is not None
    ]
    if not carcs:
        raise InvalidInputError(
            f"{label}: {category} {amount} has no reason code (CARC in {CARC_SYSTEM})"
        )
    carc = carcs[0]
    if carc not in carc_codes():
        raise InvalidInputError(f"{label}: unknown CARC {carc} (not an X12 CARC)")
    groups = _extension_code(raw, "/cas-group-code")
    if len(groups) != 1:
        raise InvalidInputError(
            f"{label}: {category} CARC {carc} needs exactly one CAS group code "
            f"(extension {GROUP_CODE_EXTENSION}), found {len(groups)}"
        )
    group = groups[0]
    if group not in group_codes():
        raise InvalidInputError(f"{label}: unknown CAS group code {group}")
    if group not in _GROUPS_FOR[category]:
        raise InvalidInputError(
            f"{label}: {category} with group code {group}-{carc}: {category} takes "
            f"{'/'.join(sorted(_GROUPS_FOR[category]))}"
        )
    rarcs = _extension_code(raw, "/remark-code")
    for rarc in rarcs:
        if rarc not in rarc_codes():
            raise InvalidInputError(f"{label}: unknown RARC {rarc} (not an X12 RARC)")
    adjudication.group_code = group
    adjudication.carc = carc
    adjudication.rarc = " ".join(rarcs)[:64] or None
    return adjudication


def _parse(resource: dict[str, Any]) -> _Response:
    """Parse one ClaimResponse (no database access). Raises InvalidInputError."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "ClaimResponse":
        raise InvalidInputError("not a FHIR ClaimResponse")
    response_id = str(resource.get("id") or "")
    if not response_id:
        raise InvalidInputError("ClaimResponse without an id")
    label = f"ClaimResponse/{response_id}"
    claim_id = _ref_id(resource.get("request"), "Claim")
    if claim_id is None:
        raise InvalidInputError(f"{label}: request does not name a Claim")
    outcome = str(resource.get("outcome") or "")
    if outcome not in ("queued", "complete", "error", "partial"):
        raise InvalidInputError(f"{label}: outcome {outcome!r} is not a FHIR outcome")
    payment = resource.get("payment") or {}
    money = payment.get("amount") or {}
    parsed = _Response(
        id=response_id,
        label=label,
        claim_id=claim_id,
        patient_id=_ref_id(resource.get("patient"), "Patient"),
        insurer_id=_ref_id(resource.get("insurer"), "Organization"),
        created=_parse_time(resource.get("created")),
        outcome=outcome,
        disposition=resource.get("disposition"),
        payment=_decimal(money.get("value"), label, "payment") if money else ZERO,
        payment_currency=money.get("currency"),
        resource=resource,
    )
    ordinal = 0
    seen: set[int] = set()
    for item in resource.get("item") or []:
        try:
            sequence = int(item["itemSequence"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"{label}: an item has no itemSequence") from exc
        if sequence in seen:
            raise InvalidInputError(f"{label}: line {sequence} is adjudicated twice")
        seen.add(sequence)
        line_label = f"{label} line {sequence}"
        for raw in item.get("adjudication") or []:
            ordinal += 1
            parsed.adjudications.append(
                _parse_adjudication(raw, ordinal=ordinal, item_sequence=sequence, label=line_label)
            )
    for raw in resource.get("adjudication") or []:
        ordinal += 1
        parsed.adjudications.append(
            _parse_adjudication(
                raw, ordinal=ordinal, item_sequence=None, label=f"{label} claim level"
            )
        )
    for error in resource.get("error") or []:
        for coding in (error.get("code") or {}).get("coding") or []:
            if coding.get("system") == CARC_SYSTEM:
                code = str(coding.get("code")).strip()
                if code not in carc_codes():
                    raise InvalidInputError(f"{label}: error: unknown CARC {code}")
                parsed.error_carcs.append(code)
    return parsed


@dataclass
class _LineAmounts:
    amounts: dict[AdjudicationCategory, Decimal] = field(
        default_factory=lambda: defaultdict(lambda: ZERO)
    )
    categories: set[AdjudicationCategory] = field(default_factory=set)


def _line_amounts(parsed: _Response) -> dict[int, _LineAmounts]:
    lines: dict[int, _LineAmounts] = {}
    for adjudication in parsed.adjudications:
        if adjudication.item_sequence is None:
            continue
        line = lines.setdefault(adjudication.item_sequence, _LineAmounts())
        line.amounts[adjudication.category] += adjudication.amount
        line.categories.add(adjudication.category)
    for sequence, line in lines.items():
        if _C.SUBMITTED not in line.categories:
            raise InvalidInputError(f"{parsed.label} line {sequence}: no submitted amount")
    return lines


def _balance(parsed: _Response, *, strict: bool) -> list[_Adjudication]:
    """Check every line's balance; return the derived ``underpaid`` adjudications."""
    underpaid: list[_Adjudication] = []
    ordinal = len(parsed.adjudications)
    benefits = ZERO
    for sequence, line in sorted(_line_amounts(parsed).items()):
        amounts = line.amounts
        submitted = amounts[_C.SUBMITTED]
        eligible = amounts[_C.ELIGIBLE]
        paid = amounts[_C.BENEFIT]
        contractual = amounts[_C.CONTRACTUAL]
        patient = amounts[_C.PATIENT_RESPONSIBILITY]
        denied = amounts[_C.DENIED]
        benefits += paid
        eligible_given = _C.ELIGIBLE in line.categories
        where = f"{parsed.label} line {sequence}"
        if eligible_given and submitted != eligible + contractual + denied:
            raise InvalidInputError(
                f"{where}: submitted {submitted} ≠ eligible {eligible} + contractual "
                f"{contractual} + denied {denied}"
            )
        gap = submitted - (paid + contractual + patient + denied)
        if gap == 0:
            continue
        if gap < 0 or strict or not eligible_given:
            raise InvalidInputError(
                f"{where}: submitted {submitted} ≠ benefit {paid} + contractual {contractual}"
                f" + patient {patient} + denied {denied}"
            )
        ordinal += 1
        underpaid.append(
            _Adjudication(
                ordinal=ordinal,
                item_sequence=sequence,
                category=_C.UNDERPAID,
                amount=gap,
                currency=None,
            )
        )
    if parsed.payment != benefits:
        raise InvalidInputError(
            f"{parsed.label}: payment.amount {parsed.payment} ≠ sum of line benefits {benefits}"
        )
    return underpaid


def _status_of(parsed: _Response) -> str:
    submitted = paid = patient = denied = ZERO
    claim_level_denial = False
    for a in parsed.adjudications:
        if a.item_sequence is None:
            claim_level_denial |= a.category is _C.DENIED
            continue
        if a.category is _C.SUBMITTED:
            submitted += a.amount
        elif a.category is _C.BENEFIT:
            paid += a.amount
        elif a.category is _C.PATIENT_RESPONSIBILITY:
            patient += a.amount
        elif a.category is _C.DENIED:
            denied += a.amount
    if (
        parsed.outcome == "error"
        or (submitted > 0 and denied == submitted)
        or (claim_level_denial and paid == 0 and patient == 0)
    ):
        return ClaimBillingStatus.DENIED.value
    if denied > 0 or parsed.outcome == "partial":
        return ClaimBillingStatus.PARTIAL.value
    return ClaimBillingStatus.PAID.value


def _status_of_rows(session: Session, response_ids: Iterable[str]) -> dict[str, bool]:
    """Whether each posted response denied its claim whole (from the stored rows).

    Same rule as :func:`_status_of` without the outcome (the caller checks ``error``):
    every submitted dollar denied, or a claim-level denial with nothing paid.
    """
    table = ClaimResponseAdjudication.__table__
    ids = sorted(set(response_ids))
    sums: dict[str, dict[tuple[str, bool], Decimal]] = defaultdict(dict)
    for chunk in id_batches(session, ids):
        rows = session.execute(
            select(
                table.c.claim_response_id,
                table.c.category,
                table.c.item_sequence.is_(None),
                _sum(session, table.c.amount),
            )
            .where(in_ids(session, table.c.claim_response_id, chunk))
            .group_by(table.c.claim_response_id, table.c.category, table.c.item_sequence.is_(None))
        )
        for response_id, category, claim_level, amount in rows:
            sums[response_id][(category, bool(claim_level))] = _money(session, amount)
    out: dict[str, bool] = {}
    for response_id in ids:
        found = sums.get(response_id, {})

        def line(
            category: AdjudicationCategory, found: dict[tuple[str, bool], Decimal] = found
        ) -> Decimal:
            return found.get((category.value, False), ZERO)

        submitted = line(_C.SUBMITTED)
        nothing_paid = line(_C.BENEFIT) == 0 and line(_C.PATIENT_RESPONSIBILITY) == 0
        out[response_id] = (submitted > 0 and line(_C.DENIED) == submitted) or (
            (_C.DENIED.value, True) in found and nothing_paid
        )
    return out


# --------------------------------------------------------------------------- posting


@dataclass
class RemittanceSummary:
    """What posting a batch of ClaimResponses did.

    Attributes
    ----------
    responses : int
        ClaimResponses given.
    posted : int
        Newly posted.
    already_posted : int
        Skipped: posted before with the same amounts (idempotent re-import).
    queued : int
        Skipped: outcome ``queued`` (not adjudicated yet).
    journal_entries : int
        Ledger entries written.
    underpaid_lines : int
        Lines paid below the allowed amount with no adjustment explaining it.
    underpaid_amount : Decimal
        Their total (left open in payer A/R).
    status_changes : int
        ``ClaimStatusHistory`` rows written.
    """

    responses: int = 0
    posted: int = 0
    already_posted: int = 0
    queued: int = 0
    journal_entries: int = 0
    underpaid_lines: int = 0
    underpaid_amount: Decimal = ZERO
    status_changes: int = 0


def _existing_adjudications(
    session: Session, response_ids: list[str]
) -> dict[str, list[tuple[Any, ...]]]:
    table = ClaimResponseAdjudication.__table__
    out: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for chunk in id_batches(session, response_ids):
        rows = session.execute(
            select(
                table.c.claim_response_id,
                table.c.ordinal,
                table.c.item_sequence,
                table.c.category,
                table.c.group_code,
                table.c.carc,
                table.c.rarc,
                table.c.amount,
            ).where(in_ids(session, table.c.claim_response_id, chunk))
        )
        for row in rows:
            out[row[0]].append((*row[1:7], Decimal(row[7]).quantize(CENT)))
    return out


def _adjudicated_claims(session: Session, claim_ids: list[str]) -> dict[str, str]:
    """Claims that already have a posted adjudication: claim id → a response id."""
    table = ClaimResponseAdjudication.__table__
    responses = ClaimResponse.__table__
    posted = select(table.c.ordinal).where(table.c.claim_response_id == responses.c.id).exists()
    out: dict[str, str] = {}
    for chunk in id_batches(session, claim_ids):
        for claim_id_, response_id in session.execute(
            select(responses.c.claim_id, responses.c.id).where(
                in_ids(session, responses.c.claim_id, chunk), posted
            )
        ):
            out[claim_id_] = response_id
    return out


def _claim_lines(session: Session, claim_ids: list[str]) -> dict[str, set[int]]:
    table = ClaimItem.__table__
    out: dict[str, set[int]] = defaultdict(set)
    for chunk in id_batches(session, claim_ids):
        for claim_id_, sequence in session.execute(
            select(table.c.claim_id, table.c.sequence).where(
                in_ids(session, table.c.claim_id, chunk)
            )
        ):
            out[claim_id_].add(sequence)
    return out


def _corrected_claims_of(session: Session, claim_ids: list[str]) -> dict[str, str]:
    """Original claim id → id of a corrected claim that points to it."""
    table = Claim.__table__
    out: dict[str, str] = {}
    for chunk in id_batches(session, claim_ids):
        for corrected, original in session.execute(
            select(table.c.id, table.c.related_claim_id).where(
                in_ids(session, table.c.related_claim_id, chunk)
            )
        ):
            out[original] = corrected
    return out


def _ensure_response_rows(session: Session, parsed: Sequence[_Response]) -> None:
    """Store ClaimResponse rows for responses given directly (not through the importer)."""
    from healthos_core.fhir.mapping import MappingContext, map_claim_response

    table = cast_table(ClaimResponse.__table__)
    ids = [p.id for p in parsed]
    existing: set[str] = set()
    for chunk in id_batches(session, ids):
        existing.update(
            session.scalars(select(table.c.id).where(in_ids(session, table.c.id, chunk)))
        )
    rows = []
    now = utcnow()
    for p in parsed:
        if p.id in existing:
            continue
        mapped = map_claim_response(p.resource, MappingContext())
        for row in mapped.rows[table.name]:
            rows.append({**row, "created_at": now, "updated_at": now})
    if rows:
        session.execute(insert(table), rows)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch is parsed and posted.

    A batch allocates hundreds of thousands of short-lived, acyclic objects (dicts,
    Decimals, rows); the collector's repeated passes over them cost 10–20% of the
    posting time and reclaim nothing. Reference counting still frees them; the collector
    is re-enabled (if it was on) when the batch ends, even on error.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def post_claim_responses(
    session: Session,
    resources: Iterable[dict[str, Any]],
    *,
    source: str | None = None,
    strict: bool = False,
) -> RemittanceSummary:
    """Validate and post a batch of FHIR ClaimResponses (all or nothing).

    Parameters
    ----------
    session : Session
        The caller's session (flushed, never committed). Responses that are not stored
        yet get their ``claim_response`` row here; the importer stores them first.
    resources : iterable of dict
        FHIR R4 ClaimResponse resources (references ``"Type/id"``). A response id given
        twice counts once (the last one).
    source : str, optional
        The file the batch came from (named in errors).
    strict : bool, default=False
        Reject a line paid below its allowed amount without an adjustment explaining
        the gap, instead of keeping the gap as ``underpaid``.

    Returns
    -------
    RemittanceSummary

    Raises
    ------
    FhirValidationError
        With a one-line reason naming the ClaimResponse and the problem (unknown or
        unbilled claim, a line that does not balance, an unknown CARC/RARC/group code,
        payment ≠ sum of benefits, already posted with other amounts, …). Nothing is
        written.

    Examples
    --------
    >>> post_claim_responses(session, [claim_response])  # doctest: +SKIP
    RemittanceSummary(responses=1, posted=1, ...)
    """
    session.flush()
    try:
        with _gc_paused():
            return _post(session, list(resources), strict=strict)
    except (InvalidInputError, ConflictError, NotFoundError) as exc:
        if isinstance(exc, FhirValidationError) and exc.source is None and source is None:
            raise
        reason = exc.reason if isinstance(exc, FhirValidationError) else exc.message
        raise FhirValidationError(reason, source=source) from exc


def _post(session: Session, resources: list[dict[str, Any]], *, strict: bool) -> RemittanceSummary:
    summary = RemittanceSummary(responses=len(resources))
    by_id: dict[str, _Response] = {}
    for resource in resources:
        parsed = _parse(resource)
        by_id[parsed.id] = parsed
    queued = [p for p in by_id.values() if p.outcome == "queued"]
    summary.queued = len(queued)
    batch = [p for p in by_id.values() if p.outcome != "queued"]
    if not batch:
        return summary

    claim_ids = sorted({p.claim_id for p in batch})
    # Remittances for one claim queue here (PostgreSQL row lock), so two answers posted at
    # once are checked one after the other: a claim is adjudicated once.
    lock_rows(session, Claim.__table__, claim_ids)  # type: ignore[arg-type]
    claims = _claim_rows(session, claim_ids)
    originals_needed = sorted(
        {c.related_claim_id for c in claims.values() if c.related_claim_id} - set(claims)
    )
    originals = _claim_rows(session, originals_needed) if originals_needed else {}
    all_claims: dict[str, _ClaimRow] = {**claims, **originals}
    existing = _existing_adjudications(session, [p.id for p in batch])
    adjudicated = _adjudicated_claims(session, claim_ids)
    lines_of = _claim_lines(session, claim_ids)

    to_post: list[tuple[_Response, _ClaimRow, list[_Adjudication]]] = []
    claim_in_batch: dict[str, str] = {}
    for parsed in batch:
        label = parsed.label
        claim = claims.get(parsed.claim_id)
        if claim is None:
            raise InvalidInputError(f"{label}: Claim/{parsed.claim_id} does not exist")
        if claim.billing_status in _NOT_IN_CYCLE:
            raise InvalidInputError(
                f"{label}: Claim/{claim.id} is not in the revenue cycle (billing status "
                f"{claim.billing_status or 'none'}): submit it before posting its remittance"
            )
        if parsed.patient_id and parsed.patient_id != claim.patient_id:
            raise InvalidInputError(
                f"{label}: names Patient/{parsed.patient_id} but Claim/{claim.id} is for "
                f"Patient/{claim.patient_id}"
            )
        if parsed.insurer_id and claim.insurer_id and parsed.insurer_id != claim.insurer_id:
            raise InvalidInputError(
                f"{label}: comes from Organization/{parsed.insurer_id} but Claim/{claim.id} "
                f"was sent to Organization/{claim.insurer_id}"
            )
        currency = claim.currency
        for a in parsed.adjudications:
            a.currency = a.currency or currency
            if a.currency != currency:
                raise InvalidInputError(
                    f"{label}: an amount in {a.currency}, Claim/{claim.id} is in {currency}"
                )
        if parsed.payment and (parsed.payment_currency or currency) != currency:
            raise InvalidInputError(
                f"{label}: payment in {parsed.payment_currency}, Claim/{claim.id} is in {currency}"
            )
        # The amounts are in the claim's currency; the ledger takes only its own.
        check_currency(currency, field=f"{label}: currency (that of Claim/{claim.id})")
        unknown_lines = {
            a.item_sequence
            for a in parsed.adjudications
            if a.item_sequence is not None and a.item_sequence not in lines_of.get(claim.id, set())
        }
        if unknown_lines:
            raise InvalidInputError(
                f"{label}: line {min(unknown_lines)} is not a line of Claim/{claim.id}"
            )
        underpaid = _balance(parsed, strict=strict)
        for a in underpaid:
            a.currency = currency
        stored = existing.get(parsed.id)
        if stored is not None:
            given = sorted(a.key() for a in [*parsed.adjudications, *underpaid])
            if sorted(stored) != given:
                raise InvalidInputError(
                    f"{label} was already posted with other amounts: posted remittances are "
                    "not changed in place (a payer's new answer comes as a new ClaimResponse)"
                )
            summary.already_posted += 1
            continue
        if claim.id in claim_in_batch:
            raise InvalidInputError(
                f"{label}: Claim/{claim.id} is also answered by "
                f"ClaimResponse/{claim_in_batch[claim.id]} in this batch"
            )
        claim_in_batch[claim.id] = parsed.id
        previous = adjudicated.get(claim.id)
        if previous is not None and claim.billing_status not in _OPEN_FOR_ADJUDICATION:
            raise InvalidInputError(
                f"{label}: Claim/{claim.id} was already adjudicated by "
                f"ClaimResponse/{previous} (status {claim.billing_status}); a new "
                "adjudication follows an appeal"
            )
        target = all_claims.get(claim.related_claim_id or "", claim)
        if not target.insurer_id:
            raise InvalidInputError(f"{label}: Claim/{target.id} names no payer")
        if target.currency != currency:
            raise InvalidInputError(
                f"{label}: Claim/{claim.id} is in {currency}, its original Claim/{target.id} "
                f"in {target.currency}"
            )
        to_post.append((parsed, claim, underpaid))
    if not to_post:
        return summary

    _ensure_response_rows(session, [p for p, _, _ in to_post])
    rows: list[tuple[Any, ...]] = []
    specs: list[JournalSpec] = []
    changes: list[tuple[str, str | None, str, str | None, dt.datetime]] = []
    corrected_of = _corrected_claims_of(session, [c.id for _, c, _ in to_post])
    for parsed, claim, underpaid in to_post:
        currency = claim.currency or ""
        rows.extend(
            (
                parsed.id,
                a.ordinal,
                claim.id,
                a.item_sequence,
                a.category.value,
                a.group_code,
                a.carc,
                a.rarc,
                a.amount,
                currency,
            )
            for a in (*parsed.adjudications, *underpaid)
        )
        summary.underpaid_lines += len(underpaid)
        summary.underpaid_amount += sum((a.amount for a in underpaid), ZERO)
        specs.extend(
            _journal_specs(parsed, claim, all_claims.get(claim.related_claim_id or "", claim))
        )
        at = parsed.created or utcnow()
        reason = parsed.disposition or f"outcome {parsed.outcome}"
        status = _status_of(parsed)
        if status != claim.billing_status:
            changes.append((claim.id, claim.billing_status, status, reason, at))
        if claim.id in corrected_of:
            changes.append(
                (
                    claim.id,
                    status,
                    ClaimBillingStatus.RESUBMITTED.value,
                    f"corrected claim Claim/{corrected_of[claim.id]}",
                    at,
                )
            )
    bulk_insert(
        session,
        ClaimResponseAdjudication.__table__,  # type: ignore[arg-type]
        rows,
        columns=_ADJUDICATION_COLUMNS,
    )
    summary.journal_entries = len(post_journals(session, specs))
    record_billing_status(session, changes, actor="remittance")
    summary.status_changes = len(changes)
    summary.posted = len(to_post)
    return summary


def _journal_specs(parsed: _Response, claim: _ClaimRow, target: _ClaimRow) -> list[JournalSpec]:
    """Ledger entries of one response: payment, contractual and patient responsibility."""
    totals: dict[AdjudicationCategory, Decimal] = defaultdict(lambda: ZERO)
    patient_parts: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for a in parsed.adjudications:
        if a.item_sequence is None:
            continue
        totals[a.category] += a.amount
        if a.category is _C.PATIENT_RESPONSIBILITY:
            patient_parts[a.carc or "?"] += a.amount
    payer = payer_ar(target.insurer_id or "")
    currency = claim.currency or ""
    common: dict[str, Any] = {
        "source_ref": f"ClaimResponse/{parsed.id}",
        "at": parsed.created or utcnow(),
        "currency": currency,
        "created_by": "remittance",
        "facility_id": target.facility_id,
    }
    on_claim = f"Claim/{claim.id}"
    specs = []
    if totals[_C.BENEFIT] > 0:
        amount = totals[_C.BENEFIT]
        specs.append(
            JournalSpec(
                kind=JournalKind.PAYMENT,
                lines=[
                    debit(account_id(AccountKind.CASH), amount, claim_id=target.id),
                    credit(payer, amount, claim_id=target.id),
                ],
                description=f"payment from {target.insurer_id} for {on_claim}",
                **common,
            )
        )
    if totals[_C.CONTRACTUAL] > 0:
        amount = totals[_C.CONTRACTUAL]
        specs.append(
            JournalSpec(
                kind=JournalKind.CONTRACTUAL_ADJUSTMENT,
                lines=[
                    debit(
                        account_id(AccountKind.CONTRACTUAL_ALLOWANCE), amount, claim_id=target.id
                    ),
                    credit(payer, amount, claim_id=target.id),
                ],
                description=f"contractual adjustment (CO-45) on {on_claim}",
                **common,
            )
        )
    if totals[_C.PATIENT_RESPONSIBILITY] > 0:
        amount = totals[_C.PATIENT_RESPONSIBILITY]
        parts = ", ".join(
            f"{_PR_NAMES.get(carc, 'patient responsibility')} (PR-{carc}) {value}"
            for carc, value in sorted(patient_parts.items())
        )
        service = target.billable_start or target.created
        specs.append(
            JournalSpec(
                kind=JournalKind.PATIENT_RESPONSIBILITY,
                lines=[
                    debit(patient_ar(claim.patient_id), amount, claim_id=target.id),
                    credit(payer, amount, claim_id=target.id),
                ],
                description=f"{parts} on {on_claim}"
                + (f" ({service.date().isoformat()})" if service else ""),
                **common,
            )
        )
    return specs


def post_claim_response(
    session: Session, resource_or_entity: dict[str, Any] | ClaimResponse, *, strict: bool = False
) -> RemittanceSummary:
    """Validate and post one ClaimResponse (a FHIR resource dict or a stored entity).

    Parameters
    ----------
    session : Session
        The caller's session (flushed, never committed).
    resource_or_entity : dict or ClaimResponse
        The resource, or a stored :class:`ClaimResponse` (its ``resource`` is read).
    strict : bool, default=False
        See :func:`post_claim_responses`.

    Returns
    -------
    RemittanceSummary

    Raises
    ------
    FhirValidationError
        See :func:`post_claim_responses`; nothing is written.
    """
    if isinstance(resource_or_entity, ClaimResponse):
        if not resource_or_entity.resource:
            raise FhirValidationError(
                f"ClaimResponse/{resource_or_entity.id} keeps no FHIR resource to post"
            )
        resource = resource_or_entity.resource
    else:
        resource = resource_or_entity
    return post_claim_responses(session, [resource], strict=strict)


# --------------------------------------------------------------------------- claims


def post_imported_claims(
    session: Session, resources: Sequence[dict[str, Any]], *, source: str | None = None
) -> int:
    """Post the charges of imported Claims entering the revenue cycle.

    Claims with a ``billing_status`` (the importer sets ``submitted`` on a claim that
    names its payer Organization) and no ChargeItems behind them are charged: Dr
    payer_ar / Cr revenue, source ``Claim/<id>`` (:func:`~.ledger.post_claim_charges`).
    A corrected claim charges nothing; its original, if already adjudicated, moves to
    ``resubmitted``. Idempotent.

    Parameters
    ----------
    session : Session
        The caller's session.
    resources : sequence of dict
        The FHIR Claims just stored.
    source : str, optional
        File name for error messages.

    Returns
    -------
    int
        Journal entries written.

    Raises
    ------
    FhirValidationError
        A claim cannot be charged (no payer, total ≠ lines, changed after charging).
    """
    ids = [str(r["id"]) for r in resources if r.get("id")]
    if not ids:
        return 0
    try:
        written = post_claim_charges(session, ids, created_by="import")
    except (InvalidInputError, ConflictError, NotFoundError) as exc:
        raise FhirValidationError(exc.message, source=source) from exc
    claims = _claim_rows(session, ids)
    originals = _claim_rows(
        session, sorted({c.related_claim_id for c in claims.values() if c.related_claim_id})
    )
    changes = []
    for claim in claims.values():
        original = originals.get(claim.related_claim_id or "")
        if (
            original is not None
            and claim.billing_status not in _NOT_IN_CYCLE
            and original.billing_status in _ADJUDICATED
        ):
            changes.append(
                (
                    original.id,
                    original.billing_status,
                    ClaimBillingStatus.RESUBMITTED.value,
                    f"corrected claim Claim/{claim.id}",
                    claim.submitted_at or claim.created or utcnow(),
                )
            )
    record_billing_status(session, changes, actor="remittance")
    return written


# --------------------------------------------------------------------------- hooks


def _claim_response_hook(session: Session, resources: list[dict[str, Any]], source: str) -> None:
    post_claim_responses(session, resources, source=source)


def _claim_hook(session: Session, resources: list[dict[str, Any]], source: str) -> None:
    post_imported_claims(session, resources, source=source)


_HOOKS: Final = (("Claim", _claim_hook), ("ClaimResponse", _claim_response_hook))


def register_remittance_hooks() -> None:
    """Post imported Claims and ClaimResponses to the ledger in the import's savepoint.

    Importing this module does not do it: :func:`healthos_core.wiring.wire_live_path`
    calls this (the API's lifespan and the ``healthos`` commands wire it). Idempotent.
    """
    for resource_type, hook in _HOOKS:
        register_import_hook(resource_type, hook)


def unregister_remittance_hooks() -> None:
    """Stop posting imported Claims and ClaimResponses (e.g. for a baseline benchmark)."""
    for resource_type, hook in _HOOKS:
        unregister_import_hook(resource_type, hook)


def remittance_hooks_registered() -> bool:
    """Return whether imported Claims and ClaimResponses are posted (both hooks are in)."""
    return all(hook in import_hooks(resource_type) for resource_type, hook in _HOOKS)


# --------------------------------------------------------------------------- X12 835

#: CAS reason codes posted as contractual adjustments when the group is CO or PI
#: (CARC 45: charge exceeds fee schedule/maximum allowable or contracted fee); other
#: CO/OA/PI adjustments are denials (kept in A/R), PR adjustments patient responsibility.
CONTRACTUAL_CARCS: Final = frozenset({"45"})
#: CLP02 claim status codes of a processed claim (X12 835 CLP02; 4 = denied).
_PROCESSED_CLP02: Final = frozenset({"1", "2", "3", "19", "20", "21"})
_NAMESPACE_835: Final = uuid.UUID("6b0e2c1a-9f3d-5e8b-a1c4-7d2f0b9e3a55")
_PAYMENT_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/ex-paymenttype"


@dataclass
class _ServiceLine:
    svc: list[str]
    cas: list[list[str]] = field(default_factory=list)
    rarc: list[str] = field(default_factory=list)
    ref_6r: str | None = None
    allowed: str | None = None


@dataclass
class _ClaimPayment:
    clp: list[str]
    cas: list[list[str]] = field(default_factory=list)
    lines: list[_ServiceLine] = field(default_factory=list)


def _element(values: list[str], index: int) -> str:
    return values[index] if index < len(values) and values[index] else ""


def _amount(text: str, what: str) -> Decimal:
    try:
        return Decimal(text or "0").quantize(CENT)
    except InvalidOperation as exc:
        raise InvalidInputError(f"{what}: {text!r} is not an amount") from exc


def _entry(code: str, amount: Decimal, currency: str) -> dict[str, Any]:
    system = (
        ADJUDICATION_SYSTEM
        if code in ("submitted", "eligible", "benefit")
        else (HOSPITAL_ADJUDICATION_SYSTEM)
    )
    return {
        "category": {"coding": [{"system": system, "code": code}]},
        "amount": {"value": float(amount), "currency": currency},
    }


def _adjustment(
    category: str, group: str, carc: str, amount: Decimal, currency: str, rarcs: Sequence[str]
) -> dict[str, Any]:
    entry = _entry(category, amount, currency)
    entry["reason"] = {"coding": [{"system": CARC_SYSTEM, "code": carc}], "text": f"{group}-{carc}"}
    entry["extension"] = [
        {"url": GROUP_CODE_EXTENSION, "valueCoding": {"system": GROUP_CODE_SYSTEM, "code": group}},
        *(
            {"url": REMARK_CODE_EXTENSION, "valueCoding": {"system": RARC_SYSTEM, "code": r}}
            for r in rarcs
        ),
    ]
    return entry


def _cas_triplets(cas: list[str], what: str) -> Iterable[tuple[str, str, Decimal]]:
    """(group, CARC, amount) of a CAS segment (CAS01 group, then up to 6 triplets)."""
    group = _element(cas, 1)
    for position in range(2, len(cas), 3):
        carc = _element(cas, position)
        if carc:
            yield group, carc, _amount(_element(cas, position + 1), what)


def _claim_response_from_835(
    session: Session, payment: _ClaimPayment, *, trace: str, paid_on: dt.date | None
) -> dict[str, Any]:
    """Build a FHIR ClaimResponse from one 835 claim payment (CLP loop 2100).

    The claim is the newest with patient control number CLP01 that is waiting for an
    answer (``submitted`` or ``appealed``), else the newest with that number. Each SVC
    line is matched to the claim line named by its REF*6R (line item control number),
    else by position. CAS adjustments become ``patient-responsibility`` (group PR),
    ``contractual`` (CO/PI with CARC 45) or ``denied`` (any other); LQ*HE remarks become
    RARCs; AMT*B6 is the allowed (``eligible``) amount.

    Raises
    ------
    InvalidInputError
        No claim with that number; a reversal (CLP02 22); no service lines; a line that
        is not on the claim.
    """
    elements = payment.clp
    pcn = _element(elements, 1)
    status_code = _element(elements, 2)
    what = f"835 claim {pcn}"
    if status_code == "22":
        raise InvalidInputError(
            f"{what}: reversals (CLP02 22) are not posted automatically; reverse the "
            "original ClaimResponse's journal entries (reverse_journal)"
        )
    if not payment.lines:
        raise InvalidInputError(
            f"{what} has no service lines (SVC): HealthOS posts line-level remittances"
        )
    candidates = (
        session.execute(
            select(Claim).where(Claim.patient_control_number == pcn).order_by(Claim.created.desc())
        )
        .scalars()
        .all()
    )
    if not candidates:
        raise InvalidInputError(f"{what}: no claim with this patient control number")
    claim = next(
        (c for c in candidates if c.billing_status in _OPEN_FOR_ADJUDICATION), candidates[0]
    )
    currency = claim.currency or ledger_currency()
    sequences = {item.sequence for item in claim.items}
    items = []
    for index, line in enumerate(payment.lines, start=1):
        reference = line.ref_6r or ""
        sequence = int(reference) if reference.isdigit() else index
        if sequence not in sequences:
            raise InvalidInputError(f"{what}: service line {sequence} is not on Claim/{claim.id}")
        submitted = _amount(_element(line.svc, 2), what)
        paid = _amount(_element(line.svc, 3), what)
        adjustments = []
        for cas in line.cas:
            for group, carc, amount in _cas_triplets(cas, what):
                if group == "PR":
                    category = "patient-responsibility"
                elif group in ("CO", "PI") and carc in CONTRACTUAL_CARCS:
                    category = "contractual"
                else:
                    category = "denied"
                adjustments.append((category, group, carc, amount))
        reductions = sum((a[3] for a in adjustments if a[0] != "patient-responsibility"), ZERO)
        eligible = _amount(line.allowed, what) if line.allowed else submitted - reductions
        adjudication = [
            _entry("submitted", submitted, currency),
            _entry("eligible", eligible, currency),
        ]
        for position, (category, group, carc, amount) in enumerate(adjustments):
            rarcs = line.rarc if position == 0 else ()
            adjudication.append(_adjustment(category, group, carc, amount, currency, rarcs))
        adjudication.append(_entry("benefit", paid, currency))
        items.append({"itemSequence": sequence, "adjudication": adjudication})
    paid_total = _amount(_element(elements, 4), what)
    day = paid_on or dt.datetime.now(dt.UTC).date()
    created = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    key = f"{trace}|{pcn}|{_element(elements, 7)}"
    resource: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "id": str(uuid.uuid5(_NAMESPACE_835, key)),
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": claim.type_code or "institutional",
                }
            ]
        },
        "use": "claim",
        "patient": {"reference": f"Patient/{claim.patient_id}"},
        "created": created.isoformat(),
        "insurer": {"reference": f"Organization/{claim.insurer_id}"},
        "request": {"reference": f"Claim/{claim.id}"},
        "outcome": "complete" if status_code in _PROCESSED_CLP02 | {"4"} else "partial",
        "disposition": f"835 CLP02 {status_code}, payer claim {_element(elements, 7)}, "
        f"trace {trace}",
        "item": items,
    }
    if paid_total > 0:
        resource["payment"] = {
            "type": {"coding": [{"system": _PAYMENT_TYPE_SYSTEM, "code": "complete"}]},
            "date": day.isoformat(),
            "amount": {"value": float(paid_total), "currency": currency},
        }
    if status_code == "4":
        claim_level = [
            _adjustment("denied", group, carc, amount, currency, ())
            for cas in payment.cas
            for group, carc, amount in _cas_triplets(cas, what)
            if group != "PR"
        ]
        denied = _amount(_element(elements, 3), what)
        resource["adjudication"] = claim_level or [
            _adjustment("denied", "CO", "16", denied, currency, ())
        ]
    return resource


def _x12_errors(node: Any) -> list[str]:
    """Messages of every error ``pyx12``'s error handler recorded, in tree order."""
    found: list[str] = []
    stack = [node]
    while stack:
        current = stack.pop()
        for error in getattr(current, "errors", None) or []:
            found.append(str(error[1]) if len(error) > 1 else str(error))
        stack.extend(reversed(list(getattr(current, "children", None) or [])))
        stack.extend(reversed(list(getattr(current, "elements", None) or [])))
    return found


def _read_835(path: Path) -> tuple[list[_ClaimPayment], str, dt.date | None]:
    try:
        import pyx12.error_handler
        import pyx12.params
        import pyx12.x12context
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InvalidInputError(
            "reading X12 835 files needs the 'pyx12' package (pip install pyx12)"
        ) from exc
    errh = pyx12.error_handler.err_handler()
    payments: list[_ClaimPayment] = []
    trace = ""
    paid_on: dt.date | None = None
    current: _ClaimPayment | None = None
    line: _ServiceLine | None = None
    with path.open(encoding="ascii") as handle:
        reader = pyx12.x12context.X12ContextReader(pyx12.params.params(), errh, handle)
        for node in reader.iter_segments():
            segment = node.seg_data
            if segment is None:
                continue
            tag = segment.get_seg_id() or ""
            values = [tag] + [
                segment.get_value(f"{tag}{i:02d}") or "" for i in range(1, len(segment) + 1)
            ]
            if tag == "ST" and _element(values, 1) != "835":
                raise InvalidInputError(
                    f"{path.name}: transaction set {_element(values, 1)} is not an 835"
                )
            if tag == "BPR" and _element(values, 16):
                paid_on = dt.datetime.strptime(values[16], "%Y%m%d").date()
            elif tag == "TRN":
                trace = _element(values, 2)
            elif tag == "CLP":
                current = _ClaimPayment(values)
                payments.append(current)
                line = None
            elif tag == "SVC" and current is not None:
                line = _ServiceLine(values)
                current.lines.append(line)
            elif tag == "CAS" and current is not None:
                (line or current).cas.append(values)
            elif tag == "REF" and line is not None and _element(values, 1) == "6R":
                line.ref_6r = _element(values, 2)
            elif tag == "AMT" and line is not None and _element(values, 1) == "B6":
                line.allowed = _element(values, 2)
            elif tag == "LQ" and line is not None and _element(values, 1) == "HE":
                line.rarc.append(_element(values, 2))
    errors = _x12_errors(errh)
    if errors:
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidInputError(f"{path.name}: X12 error: {errors[0]}{more}")
    return payments, trace, paid_on


def post_835(session: Session, path: Path | str, *, strict: bool = False) -> RemittanceSummary:
    """Post an X12 835 (005010X221A1) remittance file, read and validated with ``pyx12``.

    ``pyx12`` (PyPI ``pyx12``, a maintained HIPAA X12 parser and validator) checks the
    file against its 835 map; every claim payment (CLP loop 2100) becomes a FHIR
    ClaimResponse (:func:`_claim_response_from_835`) and the batch is posted by
    :func:`post_claim_responses`: same validation, all or nothing, idempotent (the
    response id is derived from TRN02, CLP01 and CLP07).

    Parameters
    ----------
    session : Session
        The caller's session (flushed, never committed).
    path : Path or str
        The 835 file (ASCII).
    strict : bool, default=False
        See :func:`post_claim_responses`.

    Returns
    -------
    RemittanceSummary

    Raises
    ------
    FhirValidationError
        ``pyx12`` is missing, the file has X12 errors or is not an 835, a claim payment
        names no known claim, or a response fails remittance validation (a line that
        does not balance, an unknown CARC …). Nothing is written.
    """
    path = Path(path)
    try:
        payments, trace, paid_on = _read_835(path)
        if not payments:
            raise InvalidInputError(f"{path.name}: no claim payment (CLP) found")
        resources = [
            _claim_response_from_835(session, p, trace=trace, paid_on=paid_on) for p in payments
        ]
    except InvalidInputError as exc:
        raise FhirValidationError(exc.message, source=str(path)) from exc
    return post_claim_responses(session, resources, source=str(path), strict=strict)
