"""API shapes of the revenue cycle: coverage, authorisations, claims, remittances, ledger.

Amounts leave as decimal strings to the cent (``"125.00"``) in the currency beside them,
never as floats; amounts come in as JSON numbers or decimal strings with at most two
decimal places. Times are aware UTC. The shapes are built from core entities and result
dicts by the ``from_…`` class methods, so internal columns (contract terms, stored FHIR
resources) never reach a response by accident.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from healthos_core.billing.claims import ClaimIssue
from healthos_core.billing.entities import (
    Claim,
    ClaimDiagnosis,
    ClaimItem,
    ClaimStatusHistory,
)
from healthos_core.billing.ledger import Account, Invoice, JournalEntry
from healthos_core.billing.markets.india import TpaClock
from healthos_core.billing.payers import EligibilityResult, PriorAuthorization
from healthos_core.record.entities import Coverage
from serving.schemas.common import IsoDate, IsoDateTime, ProblemDetails

_CENT = Decimal("0.01")

AuthorizationKindName = Literal["prior-auth", "cashless-preauth", "discharge-auth"]
AuthorizationStatusName = Literal["requested", "approved", "denied", "expired", "cancelled"]
ClaimStatusName = Literal[
    "draft", "submitted", "paid", "partial", "denied", "resubmitted", "appealed", "written-off"
]
#: FHIR claim-type codes (http://terminology.hl7.org/CodeSystem/claim-type).
ClaimTypeName = Literal["institutional", "oral", "pharmacy", "professional", "vision"]
ClockStatusName = Literal["running", "met", "breached"]

#: A positive amount to the cent (a JSON number or a decimal string).
PositiveAmount = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]
#: Units of a claim line (up to 3 decimal places).
Quantity = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=3)]
#: A non-negative amount to the cent.
Amount = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["USD"])]
Code = Annotated[str, Field(min_length=1, max_length=64)]
Reason = Annotated[str, Field(min_length=1, max_length=500)]
#: A ``"Type/id"`` reference to the event behind a ledger entry.
SourceRef = Annotated[
    str,
    Field(
        pattern=r"^[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}$",
        examples=["PaymentReconciliation/rcpt-2025-0001"],
    ),
]


def money(amount: Decimal | None) -> str | None:
    """Return an amount as a decimal string to the cent (``None`` stays ``None``)."""
    return None if amount is None else format(Decimal(amount).quantize(_CENT), "f")


def money_text(amount: Decimal) -> str:
    """Return an amount that is never ``None`` as a decimal string to the cent."""
    return format(Decimal(amount).quantize(_CENT), "f")


def quantity_text(quantity: Decimal | None) -> str | None:
    """Return a quantity without trailing zeros (``Decimal("2.000")`` → ``"2"``)."""
    if quantity is None:
        return None
    text = format(Decimal(quantity), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


# --------------------------------------------------------------------------- coverage


class CoveragePublic(BaseModel):
    """A patient's insurance (FHIR Coverage): payer, plan, subscriber and period.

    ``order`` is FHIR ``Coverage.order`` (1 = primary) where the source gave it.
    """

    id: str
    patient_id: str
    status: str
    type_code: str | None = None
    payer_id: str | None = Field(default=None, description="The payer Organization")
    payer_display: str | None = None
    plan: str | None = None
    subscriber_id: str | None = None
    period_start: dt.datetime | None = None
    period_end: dt.datetime | None = None
    order: int | None = None

    @classmethod
    def from_entity(cls, coverage: Coverage, *, order: int | None) -> CoveragePublic:
        """Build from a :class:`~healthos_core.record.entities.Coverage` and its order."""
        return cls(
            id=coverage.id,
            patient_id=coverage.patient_id,
            status=coverage.status,
            type_code=coverage.type_code,
            payer_id=coverage.payor_id,
            payer_display=coverage.payor_display,
            plan=coverage.plan,
            subscriber_id=coverage.subscriber_id,
            period_start=coverage.period_start,
            period_end=coverage.period_end,
            order=order,
        )


class CoveragesPublic(BaseModel):
    """A patient's coverages, primary first; ``count`` is their number."""

    data: list[CoveragePublic]
    count: int


class EligibilityPublic(BaseModel):
    """Whether a coverage of the patient is active on a service date, and which is primary.

    When not eligible, ``carc`` is the X12 CARC a claim would be denied with (26 before
    the coverage, 27 after it ended, 31 no coverage) and ``reason`` names the coverage.
    """

    patient_id: str
    on: dt.date
    eligible: bool
    coverage_id: str | None = None
    payer_id: str | None = None
    coverage_ids: list[str] = Field(default=[], description="Active coverages, primary first")
    reason: str
    carc: str | None = None

    @classmethod
    def from_result(cls, result: EligibilityResult) -> EligibilityPublic:
        """Build from :class:`~healthos_core.billing.payers.EligibilityResult`."""
        return cls.model_validate(result.to_dict())


# --------------------------------------------------------------------------- authorisations


class AuthorizationCreate(BaseModel):
    """A request for authorisation to a payer (US prior auth or an India TPA cashless flow).

    Name at least one service code or service category. ``requested_at`` (default now)
    starts the IRDAI clock of ``cashless-preauth`` (1 hour) and ``discharge-auth``
    (3 hours).
    """

    model_config = ConfigDict(extra="forbid")

    patient_id: Code
    payer_id: Code
    kind: AuthorizationKindName = "prior-auth"
    coverage_id: Code | None = None
    encounter_id: Code | None = None
    service_codes: list[Code] = Field(default=[], max_length=100)
    service_categories: list[Code] = Field(default=[], max_length=100)
    valid_from: IsoDate | None = None
    valid_to: IsoDate | None = None
    requested_at: IsoDateTime | None = None
    requested_amount: Amount | None = Field(default=None, examples=["45000.00"])
    currency: CurrencyCode | None = None
    reference_number: Code | None = None
    reason: Reason | None = Field(default=None, description="Clinical justification")


class AuthorizationDecision(BaseModel):
    """The payer's decision, or the provider's cancellation.

    ``approved`` needs the payer's ``reference_number`` (unless given at request) and, for
    ``prior-auth``, a validity window; ``denied`` and ``cancelled`` need a ``reason``.
    """

    model_config = ConfigDict(extra="forbid")

    status: Literal["approved", "denied", "cancelled"]
    reference_number: Code | None = None
    valid_from: IsoDate | None = None
    valid_to: IsoDate | None = None
    reason: Reason | None = None
    decided_at: IsoDateTime | None = Field(default=None, description="Default now")
    approved_amount: Amount | None = None


class AuthorizationExpire(BaseModel):
    """Expire approved or pending authorisations whose window ended before ``as_of``."""

    model_config = ConfigDict(extra="forbid")

    as_of: IsoDate | None = Field(default=None, description="Default today (UTC)")


class TpaClockPublic(BaseModel):
    """The IRDAI decision clock of an India cashless request (1 h pre-auth, 3 h discharge).

    ``minutes_remaining_or_overdue`` is signed: positive = minutes to spare, negative =
    minutes overdue, measured to the decision or, while undecided, to the response time.
    """

    status: ClockStatusName
    due_at: dt.datetime
    breached: bool
    minutes_remaining_or_overdue: int
    decided_within: bool | None = None
    limit_minutes: int
    source: str

    @classmethod
    def from_clock(cls, clock: TpaClock) -> TpaClockPublic:
        """Build from :class:`~healthos_core.billing.markets.india.TpaClock`."""
        return cls(
            status=clock.status,
            due_at=clock.due_at,
            breached=clock.breached,
            minutes_remaining_or_overdue=clock.minutes_remaining_or_overdue,
            decided_within=clock.decided_within,
            limit_minutes=int(clock.limit.total_seconds() // 60),
            source=clock.source,
        )


class AuthorizationPublic(BaseModel):
    """An authorisation request and the payer's answer.

    ``clock`` is set for the India kinds ``cashless-preauth`` and ``discharge-auth``
    (``None`` for US ``prior-auth``, whose timing comes from the payer contract).
    """

    id: str
    patient_id: str
    payer_id: str
    coverage_id: str | None = None
    encounter_id: str | None = None
    kind: AuthorizationKindName
    status: AuthorizationStatusName
    reference_number: str | None = None
    service_codes: list[str] = []
    service_categories: list[str] = []
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    requested_amount: str | None = Field(default=None, examples=["45000.00"])
    approved_amount: str | None = None
    currency: str | None = None
    requested_at: dt.datetime
    requested_by: str
    decided_at: dt.datetime | None = None
    decided_by: str | None = None
    reason: str | None = None
    clock: TpaClockPublic | None = None

    @classmethod
    def from_entity(
        cls, authorization: PriorAuthorization, *, clock: TpaClock | None
    ) -> AuthorizationPublic:
        """Build from a :class:`~healthos_core.billing.payers.PriorAuthorization`."""
        return cls(
            id=authorization.id,
            patient_id=authorization.patient_id,
            payer_id=authorization.payer_id,
            coverage_id=authorization.coverage_id,
            encounter_id=authorization.encounter_id,
            kind=authorization.kind,
            status=authorization.status,
            reference_number=authorization.reference_number,
            service_codes=list(authorization.service_codes or []),
            service_categories=list(authorization.service_categories or []),
            valid_from=authorization.valid_from,
            valid_to=authorization.valid_to,
            requested_amount=money(authorization.requested_amount),
            approved_amount=money(authorization.approved_amount),
            currency=authorization.currency,
            requested_at=authorization.requested_at,
            requested_by=authorization.requested_by,
            decided_at=authorization.decided_at,
            decided_by=authorization.decided_by,
            reason=authorization.reason,
            clock=None if clock is None else TpaClockPublic.from_clock(clock),
        )


class AuthorizationsPublic(BaseModel):
    """A page of authorisations, newest request first; ``count`` ignores the page."""

    data: list[AuthorizationPublic]
    count: int


# --------------------------------------------------------------------------- claims


class ClaimCreate(BaseModel):
    """Build a draft claim from an encounter's billable charges.

    By default the claim goes to the primary coverage active on the first date of
    service; ``modifiers`` are procedure modifiers keyed by ChargeItem id.
    """

    model_config = ConfigDict(extra="forbid")

    encounter_id: Code
    coverage_id: Code | None = None
    claim_type: ClaimTypeName = "institutional"
    modifiers: dict[str, list[Annotated[str, Field(min_length=1, max_length=8)]]] | None = Field(
        default=None, examples=[{"charge-item-id": ["59"]}]
    )


class ClaimSubmitCreate(BaseModel):
    """Submit a draft claim; ``override_edits`` (with a ``reason``) submits despite those edits."""

    model_config = ConfigDict(extra="forbid")

    override_edits: list[Code] = Field(default=[], max_length=20)
    reason: Reason | None = None


class ClaimActionCreate(BaseModel):
    """Why a claim is appealed or written off (required)."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason


class ClaimLineUpdate(BaseModel):
    """Changes to one line of a corrected claim (net is recomputed)."""

    model_config = ConfigDict(extra="forbid")

    code_system: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    code: Code | None = None
    display: Annotated[str, Field(max_length=512)] | None = None
    quantity: Quantity | None = None
    unit_price: Amount | None = None
    modifiers: list[Annotated[str, Field(min_length=1, max_length=8)]] | None = None
    diagnosis_sequence: list[Annotated[StrictInt, Field(ge=1)]] | None = None
    service_date: IsoDate | None = None
    revenue_code: Annotated[str, Field(pattern=r"^\d{3,4}$")] | None = None
    category: Code | None = None


class ClaimCorrectionCreate(BaseModel):
    """A corrected claim for an adjudicated one (FHIR ``Claim.related`` ``prior``).

    ``diagnoses`` replaces the diagnoses (ICD-10-CM codes, principal first);
    ``line_updates`` is keyed by the original line's sequence; ``lines`` chooses the
    original lines to send again (default all).
    """

    model_config = ConfigDict(extra="forbid")

    reason: Reason
    coverage_id: Code | None = None
    pre_auth_ref: Code | None = None
    diagnoses: list[Code] | None = Field(default=None, max_length=25, examples=[["E11.9"]])
    line_updates: dict[int, ClaimLineUpdate] | None = None
    lines: list[Annotated[int, Field(ge=1)]] | None = None
    override_edits: list[Code] = Field(default=[], max_length=20)

    def line_changes(self) -> dict[int, dict[str, Any]] | None:
        """Return ``line_updates`` as plain mappings of the fields given."""
        if self.line_updates is None:
            return None
        return {
            sequence: update.model_dump(exclude_unset=True)
            for sequence, update in self.line_updates.items()
        }


class ClaimLinePublic(BaseModel):
    """One claim line: service code, modifiers, units, unit price, net and date of service."""

    sequence: int
    code_system: str | None = None
    code: str | None = None
    display: str | None = None
    modifiers: list[str] = []
    quantity: str | None = Field(default=None, examples=["1"])
    unit_price: str | None = Field(default=None, examples=["125.00"])
    net: str | None = Field(default=None, examples=["125.00"])
    service_date: dt.date | None = None
    category: str | None = Field(default=None, description="Service category")
    revenue_code: str | None = Field(default=None, description="NUBC revenue code")
    diagnosis_sequence: list[int] = Field(default=[], description="Diagnosis pointers")
    charge_item_id: str | None = None
    procedure_id: str | None = None

    @classmethod
    def from_entity(cls, item: ClaimItem) -> ClaimLinePublic:
        """Build from a :class:`~healthos_core.billing.entities.ClaimItem`."""
        return cls(
            sequence=item.sequence,
            code_system=item.code_system,
            code=item.code,
            display=item.display,
            modifiers=[str(m) for m in item.modifiers or []],
            quantity=quantity_text(item.quantity),
            unit_price=money(item.unit_price),
            net=money(item.net),
            service_date=item.service_date,
            category=item.category,
            revenue_code=item.revenue_code,
            diagnosis_sequence=[int(p) for p in item.diagnosis_sequence or []],
            charge_item_id=item.charge_item_id,
            procedure_id=item.procedure_id,
        )


class ClaimDiagnosisPublic(BaseModel):
    """A diagnosis on a claim, ICD-10-CM where the record has it; sequence 1 is principal."""

    sequence: int
    code_system: str | None = None
    code: str | None = None
    display: str | None = None
    type: str | None = Field(default=None, examples=["principal"])
    condition_id: str | None = None

    @classmethod
    def from_entity(cls, diagnosis: ClaimDiagnosis) -> ClaimDiagnosisPublic:
        """Build from a :class:`~healthos_core.billing.entities.ClaimDiagnosis`."""
        return cls(
            sequence=diagnosis.sequence,
            code_system=diagnosis.code_system,
            code=diagnosis.code,
            display=diagnosis.display,
            type=diagnosis.type_code,
            condition_id=diagnosis.condition_id,
        )


def _pre_auth_refs(claim: Claim) -> list[str]:
    """Return a claim's authorisation references (FHIR ``insurance[].preAuthRef``, its own)."""
    refs: list[str] = []
    for insurance in (claim.resource or {}).get("insurance") or []:
        if isinstance(insurance, dict):
            refs.extend(str(r) for r in insurance.get("preAuthRef") or [] if r)
    if claim.pre_auth_ref and claim.pre_auth_ref not in refs:
        refs.insert(0, claim.pre_auth_ref)
    return refs


class ClaimPublic(BaseModel):
    """A claim to a payer with its lines and diagnoses.

    ``billing_status`` is the revenue-cycle state (draft → submitted → paid / partial /
    denied → resubmitted / appealed / written-off); ``related_claim_id`` points a
    corrected claim to the claim it replaces.
    """

    id: str
    patient_id: str
    encounter_id: str | None = None
    facility_id: str | None = None
    billing_status: ClaimStatusName | None = None
    status: str
    type_code: str | None = None
    created: dt.datetime | None = None
    submitted_at: dt.datetime | None = None
    billable_start: dt.datetime | None = None
    billable_end: dt.datetime | None = None
    provider_id: str | None = None
    payer_id: str | None = Field(default=None, description="The insurer Organization")
    coverage_id: str | None = None
    coverage_display: str | None = None
    total: str | None = Field(default=None, examples=["350.50"])
    currency: str | None = None
    related_claim_id: str | None = None
    patient_control_number: str | None = None
    pre_auth_refs: list[str] = []
    lines: list[ClaimLinePublic] = []
    diagnoses: list[ClaimDiagnosisPublic] = []

    @classmethod
    def from_entity(
        cls,
        claim: Claim,
        *,
        lines: Iterable[ClaimItem],
        diagnoses: Iterable[ClaimDiagnosis],
    ) -> ClaimPublic:
        """Build from a :class:`~healthos_core.billing.entities.Claim` and its rows."""
        return cls(
            id=claim.id,
            patient_id=claim.patient_id,
            encounter_id=claim.encounter_id,
            facility_id=claim.facility_id,
            billing_status=claim.billing_status,
            status=claim.status,
            type_code=claim.type_code,
            created=claim.created,
            submitted_at=claim.submitted_at,
            billable_start=claim.billable_start,
            billable_end=claim.billable_end,
            provider_id=claim.provider_id,
            payer_id=claim.insurer_id,
            coverage_id=claim.coverage_id,
            coverage_display=claim.coverage_display,
            total=money(claim.total),
            currency=claim.currency,
            related_claim_id=claim.related_claim_id,
            patient_control_number=claim.patient_control_number,
            pre_auth_refs=_pre_auth_refs(claim),
            lines=[ClaimLinePublic.from_entity(i) for i in sorted(lines, key=lambda i: i.sequence)],
            diagnoses=[
                ClaimDiagnosisPublic.from_entity(d)
                for d in sorted(diagnoses, key=lambda d: d.sequence)
            ],
        )


class ClaimsPublic(BaseModel):
    """A page of claims in the revenue cycle, newest first; ``count`` ignores the page."""

    data: list[ClaimPublic]
    count: int


class ClaimIssuePublic(BaseModel):
    """A problem the scrubber found, with the X12 CARC/RARC a payer would answer with.

    ``sequence`` is the claim line, ``None`` for the whole claim; ``evidence`` holds the
    ``"Type/id"`` references the finding rests on.
    """

    edit: str = Field(examples=["authorization-missing"])
    severity: Literal["error", "warning"]
    sequence: int | None = None
    message: str
    carc: str | None = Field(default=None, examples=["197"])
    rarc: str | None = Field(default=None, examples=["M62"])
    group_code: str | None = Field(default=None, examples=["CO"])
    evidence: list[str] = []

    @classmethod
    def from_issue(cls, issue: ClaimIssue) -> ClaimIssuePublic:
        """Build from :class:`~healthos_core.billing.claims.ClaimIssue`."""
        return cls.model_validate(issue.to_dict())


class ClaimScrubPublic(BaseModel):
    """What the scrubber found on a claim; ``clean`` when nothing blocks submission."""

    claim_id: str
    clean: bool = Field(description="No error-severity issue (warnings allowed)")
    errors: int
    warnings: int
    issues: list[ClaimIssuePublic]

    @classmethod
    def from_issues(cls, claim_id: str, issues: Sequence[ClaimIssue]) -> ClaimScrubPublic:
        """Build from a claim id and its :class:`~healthos_core.billing.claims.ClaimIssue` list."""
        errors = sum(1 for i in issues if i.is_error)
        return cls(
            claim_id=claim_id,
            clean=errors == 0,
            errors=errors,
            warnings=len(issues) - errors,
            issues=[ClaimIssuePublic.from_issue(i) for i in issues],
        )


class ScrubFailedProblem(ProblemDetails):
    """409 problem details of a claim the scrubber blocks, with the blocking ``issues``."""

    claim_id: str
    issues: list[ClaimIssuePublic]


class ClaimStatusHistoryPublic(BaseModel):
    """One change of a claim's billing status: from, to, who (and role), when and why."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    claim_id: str
    from_status: str | None = None
    to_status: str
    actor: str
    role: str | None = None
    reason: str | None = None
    at: dt.datetime

    @classmethod
    def from_entity(cls, row: ClaimStatusHistory) -> ClaimStatusHistoryPublic:
        """Build from a :class:`~healthos_core.billing.entities.ClaimStatusHistory` row."""
        return cls.model_validate(row)


class ClaimStatusHistoriesPublic(BaseModel):
    """A claim's status changes in the order they were recorded."""

    data: list[ClaimStatusHistoryPublic]
    count: int


# --------------------------------------------------------------------------- remittances


class RemittanceClaimPublic(BaseModel):
    """A claim answered by a posted ClaimResponse, and its billing status after posting."""

    claim_response_id: str
    claim_id: str | None = None
    outcome: str | None = None
    payment: str | None = Field(default=None, examples=["172.50"])
    currency: str | None = None
    billing_status: ClaimStatusName | None = None


class RemittanceResultPublic(BaseModel):
    """What importing a remittance did: responses stored and posted, and the claims' status.

    ``created`` responses are new; the others were stored before (re-posting a response
    with the same amounts is a no-op). ``journal_entries`` counts the ledger entries of
    these responses (payment, contractual adjustment, patient responsibility).
    """

    source: str
    responses: int
    created: int
    journal_entries: int
    claims: list[RemittanceClaimPublic]


# --------------------------------------------------------------------------- ledger


class CurrencyTotalsPublic(BaseModel):
    """Debits and credits of one currency."""

    debits: str
    credits: str
    balanced: bool


class TrialBalancePublic(BaseModel):
    """Total debits and credits of the ledger; ``balanced`` also checks every entry.

    ``unbalanced_entries`` lists (at most 20) journal entries whose debits differ from
    their credits: always empty unless the tables were written around the ledger.
    """

    as_of: dt.datetime | None = None
    debits: str = Field(examples=["1250.00"])
    credits: str = Field(examples=["1250.00"])
    balanced: bool
    by_currency: dict[str, CurrencyTotalsPublic]
    entries: int
    unbalanced_entries: list[str]

    @classmethod
    def from_result(
        cls, result: Mapping[str, Any], *, as_of: dt.datetime | None
    ) -> TrialBalancePublic:
        """Build from :func:`~healthos_core.billing.ledger.trial_balance`'s dict."""
        return cls(
            as_of=as_of,
            debits=money_text(result["debits"]),
            credits=money_text(result["credits"]),
            balanced=result["balanced"],
            by_currency={
                currency: CurrencyTotalsPublic(
                    debits=money_text(v["debits"]),
                    credits=money_text(v["credits"]),
                    balanced=v["balanced"],
                )
                for currency, v in sorted(result["by_currency"].items())
            },
            entries=result["entries"],
            unbalanced_entries=[str(e) for e in result["unbalanced_entries"]],
        )


class AccountPublic(BaseModel):
    """A ledger account and its balance on its normal side.

    ``id`` is ``<kind>`` or ``<kind>:<owner>`` (``payer_ar:payer-medicare``,
    ``patient_ar:<patient id>``). A/R, cash and allowances are debit-normal; revenue
    and liabilities credit-normal. A negative patient A/R balance is a credit to refund.
    """

    id: str
    kind: str
    name: str | None = None
    currency: str
    normal_balance: Literal["debit", "credit"]
    patient_id: str | None = None
    payer_id: str | None = None
    facility_id: str | None = None
    balance: str = Field(examples=["350.50"])

    @classmethod
    def from_entity(cls, account: Account, *, balance: Decimal) -> AccountPublic:
        """Build from a :class:`~healthos_core.billing.ledger.Account` and its balance."""
        return cls(
            id=account.id,
            kind=account.kind,
            name=account.name,
            currency=account.currency,
            normal_balance=account.normal_balance,
            patient_id=account.patient_id,
            payer_id=account.payer_id,
            facility_id=account.facility_id,
            balance=money_text(balance),
        )


class AccountsPublic(BaseModel):
    """Ledger accounts by id; ``count`` is their number."""

    data: list[AccountPublic]
    count: int


class PostingPublic(BaseModel):
    """One line of a journal entry: a debit or a credit to one account."""

    account_id: str
    debit: str
    credit: str
    currency: str
    claim_id: str | None = None


class JournalEntryPublic(BaseModel):
    """A balanced ledger entry with the source event that caused it (``"Type/id"``)."""

    id: str
    kind: str
    source_ref: str
    at: dt.datetime
    created_by: str
    description: str | None = None
    postings: list[PostingPublic]

    @classmethod
    def from_entity(cls, entry: JournalEntry) -> JournalEntryPublic:
        """Build from a :class:`~healthos_core.billing.ledger.JournalEntry` with its postings."""
        return cls(
            id=entry.id,
            kind=entry.kind,
            source_ref=entry.source_ref,
            at=entry.at,
            created_by=entry.created_by,
            description=entry.description,
            postings=[
                PostingPublic(
                    account_id=p.account_id,
                    debit=money_text(p.debit),
                    credit=money_text(p.credit),
                    currency=p.currency,
                    claim_id=p.claim_id,
                )
                for p in entry.postings
            ],
        )


class ArAgingRowPublic(BaseModel):
    """Open A/R of one payer (or patient) in one currency, by age bucket."""

    payer_id: str | None = None
    patient_id: str | None = None
    currency: str
    buckets: dict[str, str] = Field(examples=[{"0-30": "100.00", "120+": "0.00"}])
    total: str


class ArAgingTotalsPublic(BaseModel):
    """Open A/R of one currency, by age bucket."""

    buckets: dict[str, str]
    total: str


class ArAgingPublic(BaseModel):
    """A/R aging in buckets of days since the service date: 0-30, 31-60, 61-90, 91-120, 120+.

    ``by="payer"`` ages each claim's open payer A/R from its service date; ``by="patient"``
    ages patient balances, payments settling the oldest items first.
    """

    as_of: dt.date
    by: Literal["payer", "patient"]
    buckets: list[str]
    rows: list[ArAgingRowPublic]
    totals: dict[str, ArAgingTotalsPublic] = Field(description="Per currency")

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> ArAgingPublic:
        """Build from :func:`~healthos_core.billing.ledger.ar_aging`'s dict."""
        labels: list[str] = list(result["buckets"])
        id_key = f"{result['by']}_id"
        return cls(
            as_of=dt.date.fromisoformat(result["as_of"]),
            by=result["by"],
            buckets=labels,
            rows=[
                ArAgingRowPublic(
                    **{id_key: row[id_key]},
                    currency=row["currency"],
                    buckets={label: money_text(row[label]) for label in labels},
                    total=money_text(row["total"]),
                )
                for row in result["rows"]
            ],
            totals={
                currency: ArAgingTotalsPublic(
                    buckets={label: money_text(values[label]) for label in labels},
                    total=money_text(values["total"]),
                )
                for currency, values in sorted(result["totals"].items())
            },
        )


# --------------------------------------------------------------------------- patient accounts


class InvoiceLinePublic(BaseModel):
    """One item billed to the patient (patient responsibility or a self-pay charge)."""

    sequence: int
    source_ref: str
    claim_id: str | None = None
    service_date: dt.date | None = None
    description: str | None = None
    amount: str
    currency: str


class InvoicePublic(BaseModel):
    """A patient invoice: everything owed and not yet invoiced, billed at once."""

    id: str
    patient_id: str
    issued_at: dt.datetime
    currency: str
    total: str
    status: str
    created_by: str
    lines: list[InvoiceLinePublic]

    @classmethod
    def from_entity(cls, invoice: Invoice) -> InvoicePublic:
        """Build from a :class:`~healthos_core.billing.ledger.Invoice` with its lines."""
        return cls(
            id=invoice.id,
            patient_id=invoice.patient_id,
            issued_at=invoice.issued_at,
            currency=invoice.currency,
            total=money_text(invoice.total),
            status=invoice.status,
            created_by=invoice.created_by,
            lines=[
                InvoiceLinePublic(
                    sequence=line.sequence,
                    source_ref=line.source_ref,
                    claim_id=line.claim_id,
                    service_date=line.service_date,
                    description=line.description,
                    amount=money_text(line.amount),
                    currency=line.currency,
                )
                for line in invoice.lines
            ],
        )


class InvoiceCreate(BaseModel):
    """Invoice a patient; ``self_pay`` first bills their unclaimed charges to them."""

    model_config = ConfigDict(extra="forbid")

    self_pay: StrictBool = False


class StatementLinePublic(BaseModel):
    """One movement on the patient's account; ``balance`` runs (+ owed, − credit)."""

    date: dt.date
    description: str | None = None
    source_ref: str
    charges: str
    credits: str
    balance: str


class StatementInvoicePublic(BaseModel):
    """An invoice issued to the patient."""

    id: str
    issued_at: dt.datetime
    total: str


class StatementPublic(BaseModel):
    """A patient statement: account activity, balance due or credit balance, and aging.

    ``balance_due`` (what the patient owes) and ``credit_balance`` (an overpayment held
    for the patient, to refund or apply) are never negative and at most one is non-zero.
    """

    patient_id: str
    as_of: dt.date
    currency: str | None = None
    lines: list[StatementLinePublic]
    balance_due: str = Field(description="Owed by the patient; never negative")
    credit_balance: str = Field(description="Paid beyond what is owed (refundable); never negative")
    aging: dict[str, str]
    invoices: list[StatementInvoicePublic]

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> StatementPublic:
        """Build from :func:`~healthos_core.billing.ledger.statement`'s dict."""
        return cls(
            patient_id=result["patient_id"],
            as_of=dt.date.fromisoformat(result["as_of"]),
            currency=result["currency"],
            lines=[
                StatementLinePublic(
                    date=dt.date.fromisoformat(line["date"]),
                    description=line["description"],
                    source_ref=line["source_ref"],
                    charges=money_text(line["charges"]),
                    credits=money_text(line["credits"]),
                    balance=money_text(line["balance"]),
                )
                for line in result["lines"]
            ],
            balance_due=money_text(result["balance_due"]),
            credit_balance=money_text(result["credit_balance"]),
            aging={label: money_text(value) for label, value in result["aging"].items()},
            invoices=[
                StatementInvoicePublic(
                    id=i["id"],
                    issued_at=dt.datetime.fromisoformat(i["issued_at"]),
                    total=money_text(i["total"]),
                )
                for i in result["invoices"]
            ],
        )


class PaymentCreate(BaseModel):
    """A payment received from the patient.

    ``reference`` names the payment event (``"PaymentReconciliation/<receipt id>"``);
    posting the same reference again is a no-op, so a retried request never books twice.
    Without one, a new reference is made.
    """

    model_config = ConfigDict(extra="forbid")

    amount: PositiveAmount = Field(examples=["25.00"])
    currency: CurrencyCode | None = Field(
        default=None,
        description="Must be the ledger currency (HEALTHOS_CURRENCY, else the market's), "
        "the default; another is refused (422)",
    )
    at: IsoDateTime | None = Field(
        default=None,
        description="When received; default now. Not in the future (5 minutes of clock "
        "skew allowed), not before HEALTHOS_LEAKAGE_BILLING_START (422)",
    )
    reference: SourceRef | None = None
    description: Annotated[str, Field(max_length=255)] | None = None


class RefundCreate(BaseModel):
    """A refund of the patient's credit balance (an overpayment).

    ``payable=true`` books it as owed (refunds payable) rather than paid out.
    """

    model_config = ConfigDict(extra="forbid")

    amount: PositiveAmount = Field(examples=["10.00"])
    currency: CurrencyCode | None = Field(
        default=None, description="As for a payment: the ledger currency only"
    )
    at: IsoDateTime | None = Field(
        default=None, description="When; default now. The same bounds as a payment's"
    )
    reference: SourceRef | None = None
    payable: StrictBool = False


# --------------------------------------------------------------------------- report


class LedgerCheckPublic(BaseModel):
    """Total debits and credits of the ledger and whether they (and every entry) balance."""

    debits: str
    credits: str
    balanced: bool


class ArTotalsPublic(BaseModel):
    """Open A/R: unbilled, payer, patient and total."""

    unbilled: str
    payer: str
    patient: str
    total: str


class DenialRatePublic(BaseModel):
    """Initial claims a payer answered, those it denied whole, and the rate (4 decimals)."""

    payer: str | None = None
    claims: int
    denied: int
    rate: str = Field(examples=["0.1023"])


class BillingReportPublic(BaseModel):
    """Totals of the revenue cycle (``healthos billing report --json``), decimal strings.

    ``charges`` gross charges; ``claimed`` billed to payers on initial claims; ``paid``
    payer payments (= the sum of ``ClaimResponse.payment.amount``); ``adjusted``
    contractual adjustments (CO-45); ``denied`` line amounts payers denied; ``underpaid``
    allowed but unpaid without an adjustment; ``written_off`` denial write-offs;
    ``ar_by_bucket`` payer A/R aged by service date; ``ar_by_payer`` the same per payer
    (``{"payer": name, "0-30": …, "total": …}``); ``initial_denial_rate_by_payer`` keyed
    by payer Organization id plus ``"all"``; ``ledger`` the trial-balance check. Keys the
    report adds later pass through unchanged.
    """

    model_config = ConfigDict(extra="allow")

    as_of: dt.datetime
    currency: str | None = Field(default=None, description='"mixed" with several currencies')
    charges: str
    claimed: str
    paid: str
    adjusted: str
    patient_responsibility: str | None = None
    denied: str
    underpaid: str | None = None
    written_off: str
    patient_paid: str | None = None
    refunded: str | None = None
    ar: ArTotalsPublic | None = None
    ar_by_bucket: dict[str, str]
    ar_by_payer: dict[str, dict[str, str | None]] = {}
    patient_ar_by_bucket: dict[str, str] = {}
    initial_denial_rate_by_payer: dict[str, DenialRatePublic]
    ledger: LedgerCheckPublic
