"""Revenue leakage: money the hospital earned and is not collecting, each case with its evidence.

:func:`find_leakage` reads the record (never writes it) as of a moment and returns one
:class:`~reasoning.suggestion.Suggestion` (kind ``finance.revenue_leakage``, audience
finance, ``band`` = the leakage kind) per finding; :class:`LeakageScorer` is the same as a
:class:`~reasoning.base.Scorer`. Every query is a bulk read (a handful of queries for
the whole record, batched ``IN`` lists), so the whole ``shared/data/synthea-rcm`` record
(14,626 encounters, 24,581 claims, 10,231 payer answers) is scored in seconds.

Kinds
-----
``missed_charge``
    A performed clinical event — a completed Procedure, a completed
    MedicationAdministration, or a final laboratory Observation whose chargemaster entry
    marks it billable (:func:`healthos_core.billing.capture.is_billable_lab`) — of an
    encounter that **has been billed**, that is on no line of the encounter's claims: no
    line names it (``ClaimItem.procedure_id``) or its ChargeItem (``charge_item_id``),
    and no unlinked line of the same code has a quantity left to cover it. For an
    encounter **not yet billed** whose charges are being captured (it has ChargeItems), an
    event with no ChargeItem (``ChargeItem.service_ref``) is a missed charge too.
    Amount: the expected allowed amount of the missing line (its charge × the payer's
    allowed percentage for the encounter class).
``unbilled_encounter``
    A finished, insured encounter with charges and no claim ``unbilled_days`` after
    discharge (a discharged-not-final-billed account past the bill hold). Amount: the
    expected allowed amount of the whole encounter.
``late_charge``
    A ChargeItem entered more than ``late_charge_days`` after the service. Amount: its
    expected allowed amount (what rides on it reaching the claim in time).
``underpayment``
    A claim the payer paid below the contract: for every line it accepted (billed minus
    denied), the expected payment is the contract's allowed amount minus coinsurance
    (and the copay, once per claim, on the first lines), each rounded to the cent; a
    shortfall of more than ``underpayment_tolerance`` per accepted line is flagged — a
    gap the payer left unexplained (the ``underpaid`` adjudication) as much as a CO-45
    write-off at a lower rate than the contract's. Amount: the shortfall.
``unworked_denial``
    A claim denied as a whole for a correctable reason (``correctable_carcs``) that
    ``denial_followup_days`` after the denial has neither a corrected claim
    (``Claim.related_claim_id``) nor an appeal or write-off (its billing status at
    ``as_of``). Amount: the expected payment of the claim under the contract.
``charge_without_event``
    An active ChargeItem whose ``service_ref`` names no clinical event, an event that is
    not in the record, or one entered in error / not done; or a claim line naming a
    Procedure that is not in the record or was not done. Amount: the charge (what would
    have to be refunded).

What is not billable
--------------------
* **History before ``billing_start``** (default 2011-01-01, the start of billing in
  ``shared/data/synthea-rcm``): events and encounters that started earlier are ignored.
* **Self-pay encounters**: an encounter whose source system's own claim names self-pay
  (Synthea ``no_insurance``) or, lacking such a claim, that has no Coverage in force on
  its day is invoiced to the patient, not claimed: it is never an unbilled encounter and
  its events never missed charges.
* An insured source claim on a day between two Coverage periods (a lapse) is billed to
  the payer of the Coverage on file before it; the explanation says so.
* Nothing that happens after ``as_of`` is seen: encounters, events and charges after it,
  claims created, payer answers received and status changes made after it.

Amounts use the payer's :class:`~healthos_core.billing.payers.Contract` (allowed
percentage of charge by encounter class, coinsurance, copay); prices come from the
record: a ChargeItem, else the source system's own claim line for the event (Synthea's
institutional claim), else the chargemaster entry in force on the day. An event with no
price is still reported, with no amount.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar, Final

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from healthos_core.billing.capture import is_billable_lab
from healthos_core.billing.chargemaster import find_price
from healthos_core.billing.entities import (
    ChargeItem,
    ChargemasterEntry,
    Claim,
    ClaimItem,
    ClaimResponse,
    ClaimStatusHistory,
)
from healthos_core.billing.ledger import id_batches, in_ids
from healthos_core.billing.money import ledger_currency
from healthos_core.billing.payers import Contract
from healthos_core.billing.remittance import ClaimResponseAdjudication
from healthos_core.errors import InvalidInputError
from healthos_core.record.entities import (
    Coverage,
    Encounter,
    MedicationAdministration,
    Observation,
    Procedure,
)
from reasoning.base import Scorer, resolve_as_of
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion

__all__ = [
    "CORRECTABLE_CARCS",
    "DEFAULT_BILLING_START",
    "SELF_PAY_MARKERS",
    "LeakageKind",
    "LeakageScorer",
    "LeakageThresholds",
    "expected_payment",
    "find_leakage",
]


class LeakageKind(enum.StrEnum):
    """The kinds of revenue leakage (the suggestion's ``band``)."""

    MISSED_CHARGE = "missed_charge"
    UNBILLED_ENCOUNTER = "unbilled_encounter"
    LATE_CHARGE = "late_charge"
    UNDERPAYMENT = "underpayment"
    UNWORKED_DENIAL = "unworked_denial"
    CHARGE_WITHOUT_EVENT = "charge_without_event"


#: The first day billed in ``shared/data/synthea-rcm`` (README "Scope and time frame":
#: encounters from 2011-01-01 on; older Synthea history is not billed).
DEFAULT_BILLING_START: Final = dt.date(2011, 1, 1)

#: Denial CARCs a biller can recover by correcting the claim or appealing (X12 external
#: code source 139): 16 claim lacks information / billing error, 252 attachment or other
#: documentation required, 197 precertification/authorization absent (retro-authorisation
#: or appeal), 15 authorization number missing/invalid, 4/11/146 modifier or diagnosis
#: inconsistent/invalid, 125 submission/billing error, 50 not deemed a medical necessity
#: (appeal with the clinical documentation). Not correctable: 18 duplicate (nothing is
#: owed twice), 26/27 no coverage on the day (bill the right payer or the patient), 29
#: filing limit expired, 96/204 not covered (the patient's liability).
CORRECTABLE_CARCS: Final = frozenset({"4", "11", "15", "16", "50", "125", "146", "197", "252"})

#: Source-claim coverage texts meaning self-pay (Synthea writes ``no_insurance``).
SELF_PAY_MARKERS: Final = frozenset(
    {"no_insurance", "no insurance", "self-pay", "self pay", "selfpay", "uninsured"}
)

_CARC_TEXT: Final = {
    "4": "procedure code inconsistent with the modifier",
    "11": "diagnosis inconsistent with the procedure",
    "15": "authorization number missing or invalid",
    "16": "claim lacks information or has billing errors",
    "50": "not deemed a medical necessity",
    "125": "submission/billing error",
    "146": "diagnosis invalid for the date of service",
    "197": "precertification/authorization absent",
    "252": "attachment/other documentation required",
}

_CENT: Final = Decimal("0.01")
_ZERO: Final = Decimal("0.00")
#: Claim statuses (FHIR ``fm-status``) and ChargeItem statuses that are void.
_VOID_CLAIM: Final = ("cancelled", "entered-in-error")
_VOID_CHARGE: Final = ("entered-in-error", "aborted", "not-billable")
#: Billing statuses that mean a denial was worked: corrected, appealed or written off.
_WORKED: Final = frozenset({"resubmitted", "appealed", "written-off"})
_DRAFT: Final = "draft"
_PHARMACY: Final = "pharmacy"
#: Event statuses that mean the event did not happen (FHIR R4 value sets).
_NOT_DONE: Final = {
    "Procedure": frozenset({"not-done", "entered-in-error", "preparation"}),
    "MedicationAdministration": frozenset({"not-done", "entered-in-error"}),
    "Observation": frozenset({"entered-in-error", "cancelled", "registered"}),
    "Encounter": frozenset({"cancelled", "entered-in-error", "planned"}),
    "Immunization": frozenset({"not-done", "entered-in-error"}),
}
_LAB_STATUSES: Final = ("final", "amended", "corrected")
_SEVERITY: Final = {
    LeakageKind.MISSED_CHARGE: Severity.WARNING,
    LeakageKind.UNBILLED_ENCOUNTER: Severity.WARNING,
    LeakageKind.LATE_CHARGE: Severity.INFO,
    LeakageKind.UNDERPAYMENT: Severity.WARNING,
    LeakageKind.UNWORKED_DENIAL: Severity.WARNING,
    LeakageKind.CHARGE_WITHOUT_EVENT: Severity.WARNING,
}


@dataclass(frozen=True, kw_only=True)
class LeakageThresholds:
    """The rules' parameters, each with its default and where it comes from.

    Parameters
    ----------
    billing_start : datetime.date, default=2011-01-01
        Encounters and events that started before this UTC day are history, not billed
        (``shared/data/synthea-rcm/README.md``, "Scope and time frame").
    unbilled_days : int, default=5
        Days after discharge an insured encounter may wait for its claim (the bill hold).
        Hospitals hold a discharged account "typically three to five days" to complete
        documentation, charges and coding before the claim (the discharged-not-final-billed
        hold; HFMA figure as cited by scienceinsights.org and mbwrcm.com, "a DNFB average
        above 3–5 days can significantly disrupt revenue flow"); the upper end is used.
    late_charge_days : int, default=5
        Days after the service a charge may be entered. A charge entered after the bill
        hold misses the claim; best-in-class charge lag is under 2 days and "over 5 days
        creates timely-filing risk" (medprecisionbilling.com glossary "Charge lag"; MGMA
        median 3–5 days for high performers, as cited by myhealthcarebilling.com).
    denial_followup_days : int, default=30
        Days after the payer's denial by which it must be corrected, appealed or written
        off. Payer appeal deadlines run "30, 60, or 90 days, depending on the payer"
        (homrcm.com, "The 48-hour claim denial window"); Medicare's redetermination limit
        is 120 days from the remittance (42 CFR 405.942; Noridian "Redetermination").
        The shortest common payer window is used, so a denial is flagged while it can still
        be recovered everywhere.
    correctable_carcs : frozenset of str, default=CORRECTABLE_CARCS
        Denial CARCs a corrected claim or an appeal can recover (see
        :data:`CORRECTABLE_CARCS`; ``shared/billing-facts.md`` §1 maps the denial causes to
        CARCs).
    underpayment_tolerance : Decimal, default=Decimal("0.01")
        Shortfall per accepted claim line (in the claim currency) that is rounding, not
        leakage: the allowed amount and the coinsurance of each line are rounded to the
        cent, and payers round halves differently (half-up, half-even, binary floating
        point), so each line may differ by up to a cent from
        :func:`expected_payment`. A claim is underpaid when the shortfall exceeds this
        amount times its accepted lines.
    flag_corrected_denials : bool, default=False
        Whether a *corrected* claim that is denied again is an unworked denial. By default
        only first submissions are: the claim was already worked once, and a repeat denial
        goes to the appeal worklist of the denial scorer (``synthea-rcm`` labels give
        corrected claims rework status ``n/a``).
    """

    billing_start: dt.date = DEFAULT_BILLING_START
    unbilled_days: int = 5
    late_charge_days: int = 5
    denial_followup_days: int = 30
    correctable_carcs: frozenset[str] = CORRECTABLE_CARCS
    underpayment_tolerance: Decimal = Decimal("0.01")
    flag_corrected_denials: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.billing_start, dt.datetime) or not isinstance(
            self.billing_start, dt.date
        ):
            raise InvalidInputError(f"billing_start must be a date, got {self.billing_start!r}")
        for name in ("unbilled_days", "late_charge_days", "denial_followup_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"{name} must be a non-negative integer, got {value!r}")
        try:
            tolerance = Decimal(str(self.underpayment_tolerance))
        except ArithmeticError as exc:
            raise InvalidInputError(
                f"underpayment_tolerance must be an amount, got {self.underpayment_tolerance!r}"
            ) from exc
        if tolerance < 0:
            raise InvalidInputError("underpayment_tolerance must not be negative")
        object.__setattr__(self, "underpayment_tolerance", tolerance)
        object.__setattr__(
            self, "correctable_carcs", frozenset(str(c) for c in self.correctable_carcs)
        )

    @classmethod
    def from_kwargs(cls, values: dict[str, Any]) -> LeakageThresholds:
        """Build from keyword arguments, naming any unknown one.

        Raises
        ------
        InvalidInputError
            An argument is not a threshold, or a value is invalid.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInputError(
                f"unknown leakage threshold(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(known))}"
            )
        return cls(**values)


# --------------------------------------------------------------------------- helpers


def _cent(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _money(amount: Decimal | None, currency: str) -> str:
    if amount is None:
        return "no price"
    return f"{currency} {amount:,.2f}"


def _day(value: dt.datetime | None) -> dt.date | None:
    return value.astimezone(dt.UTC).date() if value is not None else None


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _batched(session: Session, ids: Iterable[str]) -> Iterator[Sequence[str]]:
    yield from id_batches(session, sorted(set(ids)))


def _summary(text: str) -> str:
    return text if len(text) <= 140 else text[:137] + "..."


def expected_payment(
    charges: Sequence[Decimal], contract: Contract, class_code: str | None
) -> tuple[Decimal, Decimal]:
    """Return the contract's allowed amount and expected payment for claim lines.

    Parameters
    ----------
    charges : sequence of Decimal
        The billed charge of each line the payer should pay, in line order.
    contract : Contract
        The payer's contract.
    class_code : str or None
        The encounter class (AMB, EMER, IMP; else AMB rates).

    Returns
    -------
    tuple of Decimal
        ``(allowed, payment)``: per line, allowed = charge × allowed percentage and
        coinsurance = allowed × coinsurance percentage, each rounded half-up to the cent;
        the copay is taken once per claim from the first lines (a line pays at least 0).
        As ``shared/data/synthea-rcm/README.md`` ("Balancing") defines the expected
        payment.
    """
    pct = contract.allowed_pct(class_code or "AMB")
    coinsurance = contract.coinsurance_pct
    copay_left = Decimal(contract.copay(class_code or "AMB"))
    allowed_total = _ZERO
    paid_total = _ZERO
    for charge in charges:
        allowed = _cent(charge * pct)
        line = allowed - _cent(allowed * coinsurance)
        take = min(copay_left, max(line, _ZERO))
        copay_left -= take
        allowed_total += allowed
        paid_total += max(line - take, _ZERO)
    return allowed_total, paid_total


# --------------------------------------------------------------------------- record rows


@dataclass(frozen=True, slots=True)
class _Enc:
    id: str
    patient_id: str
    status: str
    class_code: str
    start: dt.datetime | None
    end: dt.datetime | None
    facility_id: str | None

    @property
    def day(self) -> dt.date | None:
        return _day(self.start)


@dataclass(frozen=True, slots=True)
class _Claim:
    id: str
    patient_id: str
    encounter_id: str | None
    insurer_id: str | None
    coverage_id: str | None
    created: dt.datetime | None
    related_claim_id: str | None
    billing_status: str | None
    total: Decimal | None
    currency: str
    facility_id: str | None


@dataclass(frozen=True, slots=True)
class _Cov:
    id: str
    payor_id: str | None
    start: dt.date | None
    end: dt.date | None
    order: int


@dataclass(frozen=True, slots=True)
class _Payer:
    payer_id: str
    coverage_id: str | None
    lapse: bool
    via: str


@dataclass(frozen=True, slots=True)
class _Event:
    type: str
    id: str
    patient_id: str
    encounter_id: str
    code_system: str | None
    code: str | None
    display: str | None
    at: dt.datetime | None

    @property
    def reference(self) -> str:
        return f"{self.type}/{self.id}"


@dataclass(frozen=True, slots=True)
class _Charge:
    id: str
    patient_id: str
    encounter_id: str | None
    code: str
    display: str | None
    total: Decimal
    currency: str
    service_ref: str | None
    occurred_at: dt.datetime | None
    entered_at: dt.datetime | None
    facility_id: str | None


class _Record:
    """What every rule reads, loaded once in bulk."""

    def __init__(self, session: Session, now: dt.datetime, limits: LeakageThresholds) -> None:
        self.session = session
        self.now = now
        self.limits = limits
        self.start = dt.datetime.combine(limits.billing_start, dt.time(), tzinfo=dt.UTC)
        self.contracts = {c.payer_id: c for c in session.scalars(select(Contract))}
        self.coverage_display: dict[str, str | None] = {}
        self._payers: dict[str, _Payer | None] = {}
        self.encounters = self._encounters()
        self.billing = self._claims(billing=True)
        self.by_encounter: dict[str, list[_Claim]] = defaultdict(list)
        for claim in self.billing.values():
            if claim.encounter_id:
                self.by_encounter[claim.encounter_id].append(claim)
        for claims in self.by_encounter.values():
            claims.sort(key=lambda c: (c.created or self.now, c.id))
        self.source: dict[str, list[_Claim]] = defaultdict(list)
        for claim in self._claims(billing=False).values():
            if claim.encounter_id in self.encounters:
                self.source[claim.encounter_id].append(claim)
        self.coverage = self._coverage({e.patient_id for e in self.encounters.values()})
        self.charges = self._charges()
        self.charges_by_encounter: dict[str, list[_Charge]] = defaultdict(list)
        self.charges_by_ref: dict[str, list[_Charge]] = defaultdict(list)
        for charge in self.charges.values():
            if charge.encounter_id:
                self.charges_by_encounter[charge.encounter_id].append(charge)
            if charge.service_ref:
                self.charges_by_ref[charge.service_ref].append(charge)

    # ----------------------------------------------------------------- loading

    def _encounters(self) -> dict[str, _Enc]:
        rows = self.session.execute(
            select(
                Encounter.id,
                Encounter.patient_id,
                Encounter.status,
                Encounter.class_code,
                Encounter.period_start,
                Encounter.period_end,
                Encounter.facility_id,
            ).where(
                Encounter.period_start.is_not(None),
                Encounter.period_start >= self.start,
                Encounter.period_start <= self.now,
            )
        )
        return {
            r.id: _Enc(
                r.id,
                r.patient_id,
                r.status,
                r.class_code,
                _aware(r.period_start),
                _aware(r.period_end),
                r.facility_id,
            )
            for r in rows
        }

    def _claims(self, *, billing: bool) -> dict[str, _Claim]:
        query = select(
            Claim.id,
            Claim.patient_id,
            Claim.encounter_id,
            Claim.insurer_id,
            Claim.coverage_id,
            Claim.created,
            Claim.related_claim_id,
            Claim.billing_status,
            Claim.total,
            Claim.currency,
            Claim.facility_id,
            Claim.coverage_display,
        ).where(
            Claim.status.not_in(_VOID_CLAIM),
            Claim.use == "claim",
            or_(Claim.created.is_(None), Claim.created <= self.now),
        )
        if billing:
            query = query.where(Claim.billing_status.is_not(None))
        else:
            query = query.where(
                Claim.billing_status.is_(None),
                Claim.encounter_id.is_not(None),
                or_(Claim.type_code.is_(None), Claim.type_code != _PHARMACY),
            )
        out: dict[str, _Claim] = {}
        currency = ledger_currency()
        for r in self.session.execute(query):
            out[r.id] = _Claim(
                r.id,
                r.patient_id,
                r.encounter_id,
                r.insurer_id,
                r.coverage_id,
                _aware(r.created),
                r.related_claim_id,
                r.billing_status,
                r.total,
                r.currency or currency,
                r.facility_id,
            )
            if not billing:
                self.coverage_display[r.id] = r.coverage_display
        return out

    def _coverage(self, patient_ids: Iterable[str]) -> dict[str, list[_Cov]]:
        out: dict[str, list[_Cov]] = defaultdict(list)
        for batch in _batched(self.session, patient_ids):
            for r in self.session.execute(
                select(
                    Coverage.id,
                    Coverage.patient_id,
                    Coverage.payor_id,
                    Coverage.period_start,
                    Coverage.period_end,
                    Coverage.resource,
                ).where(
                    in_ids(self.session, Coverage.patient_id, batch), Coverage.status == "active"
                )
            ):
                order = (r.resource or {}).get("order")
                out[r.patient_id].append(
                    _Cov(
                        r.id,
                        r.payor_id,
                        _day(_aware(r.period_start)),
                        _day(_aware(r.period_end)),
                        order if isinstance(order, int) and not isinstance(order, bool) else 99,
                    )
                )
        return out

    def _charges(self) -> dict[str, _Charge]:
        rows = self.session.execute(
            select(
                ChargeItem.id,
                ChargeItem.patient_id,
                ChargeItem.encounter_id,
                ChargeItem.code,
                ChargeItem.display,
                ChargeItem.total,
                ChargeItem.currency,
                ChargeItem.service_ref,
                ChargeItem.occurred_at,
                ChargeItem.entered_at,
                ChargeItem.facility_id,
            ).where(
                ChargeItem.status.not_in(_VOID_CHARGE),
                ChargeItem.entered_at <= self.now,
                or_(ChargeItem.occurred_at.is_(None), ChargeItem.occurred_at >= self.start),
            )
        )
        return {
            r.id: _Charge(
                r.id,
                r.patient_id,
                r.encounter_id,
                r.code,
                r.display,
                r.total,
                r.currency,
                r.service_ref,
                _aware(r.occurred_at),
                _aware(r.entered_at),
                r.facility_id,
            )
            for r in rows
        }

    # ----------------------------------------------------------------- questions

    def self_pay(self, encounter: _Enc) -> bool:
        """Return whether the source system's own claim says self-pay."""
        return any(
            (self.coverage_display.get(c.id) or "").strip().lower() in SELF_PAY_MARKERS
            for c in self.source.get(encounter.id, [])
        )

    def payer(self, encounter: _Enc) -> _Payer | None:
        """Return the payer an encounter is billed to, or ``None`` when it is self-pay."""
        if encounter.id not in self._payers:
            self._payers[encounter.id] = self._payer(encounter)
        return self._payers[encounter.id]

    def _payer(self, encounter: _Enc) -> _Payer | None:
        if self.self_pay(encounter):
            return None
        claims = self.by_encounter.get(encounter.id)
        if claims:
            latest = claims[-1]
            if latest.insurer_id:
                return _Payer(latest.insurer_id, latest.coverage_id, False, f"Claim/{latest.id}")
        day = encounter.day
        covers = self.coverage.get(encounter.patient_id, [])
        if day is None:
            return None
        active = [
            c
            for c in covers
            if c.payor_id
            and (c.start is None or c.start <= day)
            and (c.end is None or day <= c.end)
        ]
        if active:
            best = min(active, key=lambda c: (c.order, -(c.start or dt.date.min).toordinal()))
            return _Payer(best.payor_id or "", best.id, False, f"Coverage/{best.id}")
        insured_source = any(
            (self.coverage_display.get(c.id) or "").strip()
            for c in self.source.get(encounter.id, [])
        )
        if not insured_source:
            return None
        before = [c for c in covers if c.payor_id and c.end is not None and c.end < day]
        if not before:
            return None
        last = max(before, key=lambda c: (c.end or dt.date.min, -c.order))
        return _Payer(last.payor_id or "", last.id, True, f"Coverage/{last.id}")

    def billed(self, encounter_id: str) -> list[_Claim]:
        """Return the encounter's claims in the revenue cycle (not drafts), oldest first."""
        return [c for c in self.by_encounter.get(encounter_id, []) if c.billing_status != _DRAFT]

    def payer_name(self, payer_id: str) -> str:
        contract = self.contracts.get(payer_id)
        return (contract.payer_name if contract and contract.payer_name else None) or (
            f"Organization/{payer_id}"
        )

    def allowed(self, charge: Decimal | None, payer_id: str | None, class_code: str) -> Decimal:
        """Return the expected allowed amount of a charge (the charge when no contract)."""
        if charge is None:
            return _ZERO
        contract = self.contracts.get(payer_id or "")
        if contract is None:
            return _cent(charge)
        return _cent(charge * contract.allowed_pct(class_code))

    def status_at(self, claim_ids: Collection[str]) -> dict[str, str | None]:
        """Return the billing status of each claim at ``now``, from its status history.

        The last change made by ``now``; when every change came later, the status the
        first of them left; with no history, the claim's current ``billing_status``.
        """
        changes: dict[str, list[tuple[dt.datetime, int, str | None, str]]] = defaultdict(list)
        for batch in _batched(self.session, claim_ids):
            for r in self.session.execute(
                select(
                    ClaimStatusHistory.claim_id,
                    ClaimStatusHistory.from_status,
                    ClaimStatusHistory.to_status,
                    ClaimStatusHistory.at,
                    ClaimStatusHistory.id,
                ).where(in_ids(self.session, ClaimStatusHistory.claim_id, batch))
            ):
                at = _aware(r.at) or self.now
                changes[r.claim_id].append((at, r.id, r.from_status, r.to_status))
        result: dict[str, str | None] = {}
        for claim_id in claim_ids:
            rows = sorted(changes.get(claim_id, []))
            done = [row for row in rows if row[0] <= self.now]
            if done:
                result[claim_id] = done[-1][3]
            elif rows:
                result[claim_id] = rows[0][2]
            else:
                claim = self.billing.get(claim_id)
                result[claim_id] = claim.billing_status if claim else None
        return result

    def latest_responses(self, claim_ids: Collection[str]) -> dict[str, Any]:
        """Return the latest payer answer (received by ``now``) of each claim."""
        out: dict[str, Any] = {}
        for batch in _batched(self.session, claim_ids):
            for r in self.session.execute(
                select(
                    ClaimResponse.id,
                    ClaimResponse.claim_id,
                    ClaimResponse.outcome,
                    ClaimResponse.created,
                    ClaimResponse.payment_amount,
                ).where(
                    in_ids(self.session, ClaimResponse.claim_id, batch),
                    or_(ClaimResponse.created.is_(None), ClaimResponse.created <= self.now),
                    ClaimResponse.status != "entered-in-error",
                )
            ):
                known = out.get(r.claim_id)
                key = (_aware(r.created) or dt.datetime.min.replace(tzinfo=dt.UTC), r.id)
                if known is None or key > (
                    _aware(known.created) or dt.datetime.min.replace(tzinfo=dt.UTC),
                    known.id,
                ):
                    out[r.claim_id] = r
        return out

    def adjudications(self, response_ids: Collection[str]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = defaultdict(list)
        for batch in _batched(self.session, response_ids):
            for r in self.session.execute(
                select(
                    ClaimResponseAdjudication.claim_response_id,
                    ClaimResponseAdjudication.ordinal,
                    ClaimResponseAdjudication.item_sequence,
                    ClaimResponseAdjudication.category,
                    ClaimResponseAdjudication.carc,
                    ClaimResponseAdjudication.amount,
                ).where(in_ids(self.session, ClaimResponseAdjudication.claim_response_id, batch))
            ):
                out[r.claim_response_id].append(r)
        for rows in out.values():
            rows.sort(key=lambda a: a.ordinal)
        return out

    def claim_lines(self, claim_ids: Collection[str]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = defaultdict(list)
        for batch in _batched(self.session, claim_ids):
            for r in self.session.execute(
                select(
                    ClaimItem.claim_id,
                    ClaimItem.sequence,
                    ClaimItem.code_system,
                    ClaimItem.code,
                    ClaimItem.display,
                    ClaimItem.quantity,
                    ClaimItem.unit_price,
                    ClaimItem.net,
                    ClaimItem.procedure_id,
                    ClaimItem.charge_item_id,
                ).where(in_ids(self.session, ClaimItem.claim_id, batch))
            ):
                out[r.claim_id].append(r)
        for rows in out.values():
            rows.sort(key=lambda line: line.sequence)
        return out


def _line_amount(line: Any) -> Decimal | None:
    if line.net is not None:
        return Decimal(line.net)
    if line.unit_price is not None:
        return _cent(Decimal(line.unit_price) * Decimal(line.quantity or 1))
    return None


# --------------------------------------------------------------------------- the finder


class _Finder:
    def __init__(self, record: _Record, source: Source) -> None:
        self.r = record
        self.source = source
        self.error_codes: dict[str, list[str]] = defaultdict(list)

    def suggestion(
        self,
        kind: LeakageKind,
        *,
        subject: str,
        patient_id: str | None,
        facility_id: str | None,
        amount: Decimal | None,
        currency: str,
        summary: str,
        action: str,
        evidence: Iterable[str],
        factors: Sequence[Factor],
    ) -> Suggestion:
        return Suggestion(
            kind=LeakageScorer.kind,
            audience=Audience.FINANCE,
            severity=_SEVERITY[kind],
            subject=subject,
            summary=_summary(summary),
            explanation=Explanation(
                method="rule:revenue_leakage",
                factors=tuple(factors),
                evidence=tuple(dict.fromkeys(e for e in evidence if e)),
            ),
            recommended_action=action,
            source=self.source,
            score=float(amount) if amount is not None else 0.0,
            band=str(kind),
            patient_id=patient_id,
            facility_id=facility_id,
            amount_at_stake=amount,
            currency=currency,
            created_at=self.r.now,
        )

    # ----------------------------------------------------------------- missed_charge

    def _events(self) -> list[_Event]:
        r = self.r
        events: list[_Event] = []
        for row in r.session.execute(
            select(
                Procedure.id,
                Procedure.patient_id,
                Procedure.encounter_id,
                Procedure.code_system,
                Procedure.code,
                Procedure.display,
                Procedure.performed_start,
            ).where(
                Procedure.status == "completed",
                Procedure.encounter_id.is_not(None),
                or_(Procedure.performed_start.is_(None), Procedure.performed_start <= r.now),
            )
        ):
            events.append(
                _Event(
                    "Procedure",
                    row[0],
                    row[1],
                    row[2] or "",
                    row[3],
                    row[4],
                    row[5],
                    _aware(row[6]),
                )
            )
        for row in r.session.execute(
            select(
                MedicationAdministration.id,
                MedicationAdministration.patient_id,
                MedicationAdministration.encounter_id,
                MedicationAdministration.code_system,
                MedicationAdministration.code,
                MedicationAdministration.display,
                MedicationAdministration.effective_start,
            ).where(
                MedicationAdministration.status == "completed",
                MedicationAdministration.encounter_id.is_not(None),
                or_(
                    MedicationAdministration.effective_start.is_(None),
                    MedicationAdministration.effective_start <= r.now,
                ),
            )
        ):
            events.append(
                _Event(
                    "MedicationAdministration",
                    row[0],
                    row[1],
                    row[2] or "",
                    row[3],
                    row[4],
                    row[5],
                    _aware(row[6]),
                )
            )
        lab_codes = sorted(
            {
                (e.code_system, e.code)
                for e in r.session.scalars(
                    select(ChargemasterEntry).where(
                        or_(
                            ChargemasterEntry.revenue_code.like("030%"),
                            ChargemasterEntry.revenue_code.like("031%"),
                            ChargemasterEntry.revenue_code.like("30%"),
                            ChargemasterEntry.revenue_code.like("31%"),
                            ChargemasterEntry.tax_category.is_not(None),
                        )
                    )
                )
                if is_billable_lab(e)
            }
        )
        if lab_codes:
            lab_keys = set(lab_codes)
            for batch in _batched(r.session, [code for _, code in lab_codes]):
                for row in r.session.execute(
                    select(
                        Observation.id,
                        Observation.patient_id,
                        Observation.encounter_id,
                        Observation.code_system,
                        Observation.code,
                        Observation.display,
                        Observation.effective_at,
                    ).where(
                        in_ids(r.session, Observation.code, batch),
                        Observation.status.in_(_LAB_STATUSES),
                        Observation.encounter_id.is_not(None),
                        or_(Observation.effective_at.is_(None), Observation.effective_at <= r.now),
                    )
                ):
                    if (row.code_system, row.code) in lab_keys:
                        events.append(
                            _Event(
                                "Observation",
                                row[0],
                                row[1],
                                row[2] or "",
                                row[3],
                                row[4],
                                row[5],
                                _aware(row[6]),
                            )
                        )
        return [
            e
            for e in events
            if e.encounter_id in r.encounters
            and (e.at is None or e.at >= r.start)
            and r.encounters[e.encounter_id].status not in _NOT_DONE["Encounter"]
        ]

    def missed_charges(self) -> list[Suggestion]:
        r = self.r
        events = self._events()
        if not events:
            return []
        lines = r.claim_lines(list(r.billing))
        linked_procedures: set[str] = set()
        linked_charges: set[str] = set()
        unlinked: dict[tuple[str, str | None, str | None], Decimal] = defaultdict(Decimal)
        for claim_id, claim_lines in lines.items():
            encounter_id = r.billing[claim_id].encounter_id
            on_claim: dict[tuple[str, str | None, str | None], Decimal] = defaultdict(Decimal)
            for line in claim_lines:
                if line.procedure_id:
                    linked_procedures.add(line.procedure_id)
                elif line.charge_item_id:
                    linked_charges.add(line.charge_item_id)
                elif encounter_id:
                    on_claim[(encounter_id, line.code_system, line.code)] += Decimal(
                        line.quantity or 1
                    )
            # A corrected claim repeats its original's lines: the largest claim counts.
            for key, quantity in on_claim.items():
                unlinked[key] = max(unlinked[key], quantity)
        claimed_refs = {
            r.charges[c].service_ref
            for c in linked_charges
            if c in r.charges and r.charges[c].service_ref
        }
        candidates: list[_Event] = []
        for event in sorted(events, key=lambda e: (e.encounter_id, e.at or r.now, e.id)):
            encounter = r.encounters[event.encounter_id]
            if r.payer(encounter) is None:
                continue
            if event.type == "Procedure" and event.id in linked_procedures:
                continue
            if event.reference in claimed_refs:
                continue
            billed = r.billed(event.encounter_id)
            if billed:
                key = (event.encounter_id, event.code_system, event.code)
                if unlinked.get(key, Decimal(0)) >= 1:
                    unlinked[key] -= 1
                    continue
                candidates.append(event)
            elif r.charges_by_encounter.get(event.encounter_id) and not r.charges_by_ref.get(
                event.reference
            ):
                candidates.append(event)
        prices = self._prices(candidates)
        out = []
        for event in candidates:
            payer = r.payer(r.encounters[event.encounter_id])
            if payer is not None:
                out.append(self._missed(event, payer, prices.get(event.reference)))
        return out

    def _prices(self, events: Sequence[_Event]) -> dict[str, tuple[Decimal, str, str]]:
        """Price of each event: ``(charge, currency, where from)``."""
        r = self.r
        out: dict[str, tuple[Decimal, str, str]] = {}
        for event in events:
            charges = r.charges_by_ref.get(event.reference)
            if charges:
                total = sum((c.total for c in charges), _ZERO)
                out[event.reference] = (total, charges[0].currency, f"ChargeItem/{charges[0].id}")
        procedure_ids = [e.id for e in events if e.type == "Procedure" and e.reference not in out]
        for batch in _batched(r.session, procedure_ids):
            for row in r.session.execute(
                select(
                    ClaimItem.claim_id,
                    ClaimItem.sequence,
                    ClaimItem.procedure_id,
                    ClaimItem.net,
                    ClaimItem.unit_price,
                    ClaimItem.quantity,
                    Claim.currency,
                )
                .join(Claim, Claim.id == ClaimItem.claim_id)
                .where(
                    in_ids(r.session, ClaimItem.procedure_id, batch),
                    Claim.billing_status.is_(None),
                    Claim.status.not_in(_VOID_CLAIM),
                )
            ):
                amount = _line_amount(row)
                ref = f"Procedure/{row.procedure_id}"
                if amount is not None and ref not in out:
                    out[ref] = (
                        amount,
                        row.currency or ledger_currency(),
                        f"Claim/{row.claim_id} line {row.sequence}",
                    )
        for event in events:
            if event.reference in out or not event.code_system or not event.code:
                continue
            on = event.at or r.encounters[event.encounter_id].start
            if on is None:
                continue
            entry = find_price(r.session, code_system=event.code_system, code=event.code, on=on)
            if entry is not None:
                out[event.reference] = (
                    Decimal(entry.unit_price),
                    entry.currency,
                    f"chargemaster {entry.code} from {entry.effective_from.isoformat()}",
                )
        return out

    def _missed(
        self, event: _Event, payer: _Payer, price: tuple[Decimal, str, str] | None
    ) -> Suggestion:
        r = self.r
        encounter = r.encounters[event.encounter_id]
        billed = r.billed(encounter.id)
        claim = billed[-1] if billed else None
        charge, currency, where = price if price else (None, ledger_currency(), "")
        amount = r.allowed(charge, payer.payer_id, encounter.class_code) if charge else None
        contract = r.contracts.get(payer.payer_id)
        code = f"{event.code or 'no code'}" + (f" {event.display}" if event.display else "")
        day = _day(event.at) or encounter.day
        if claim is not None:
            action = (
                f"Add a charge for {event.reference} (code {code}, {day}) to Claim/{claim.id} "
                f"and send {r.payer_name(payer.payer_id)} a corrected claim"
            )
            summary = (
                f"Missed charge: {event.type} {event.code or ''} not on Claim/{claim.id[:8]} "
                f"({_money(amount, currency)} expected allowed)"
            )
        else:
            action = (
                f"Post a charge for {event.reference} (code {code}, {day}) to "
                f"Encounter/{encounter.id} before its claim is submitted"
            )
            summary = (
                f"Missed charge: {event.type} {event.code or ''} has no ChargeItem "
                f"({_money(amount, currency)} expected allowed)"
            )
        factors = [
            Factor(
                name="charge",
                value=str(charge) if charge is not None else None,
                contribution=float(amount or 0),
                unit=currency,
                text=(
                    f"charge {_money(charge, currency)} ({where})"
                    if charge is not None
                    else "no price for the code in the record or the chargemaster"
                ),
            ),
            Factor(
                name="allowed_pct",
                value=float(contract.allowed_pct(encounter.class_code)) if contract else 1.0,
                contribution=0.0,
                text=(
                    f"{r.payer_name(payer.payer_id)} allows "
                    f"{contract.allowed_pct(encounter.class_code):.0%} of charge for "
                    f"{encounter.class_code} encounters"
                    if contract
                    else "no contract for the payer: the charge itself is at stake"
                ),
            ),
        ]
        evidence = [
            event.reference,
            f"Encounter/{encounter.id}",
            *(f"Claim/{c.id}" for c in billed),
            *(f"ChargeItem/{c.id}" for c in r.charges_by_ref.get(event.reference, [])),
        ]
        return self.suggestion(
            LeakageKind.MISSED_CHARGE,
            subject=event.reference,
            patient_id=event.patient_id,
            facility_id=encounter.facility_id,
            amount=amount,
            currency=currency,
            summary=summary,
            action=action,
            evidence=evidence,
            factors=factors,
        )

    # ----------------------------------------------------------------- unbilled_encounter

    def unbilled_encounters(self) -> list[Suggestion]:
        r = self.r
        hold = dt.timedelta(days=r.limits.unbilled_days)
        out = []
        for encounter in sorted(r.encounters.values(), key=lambda e: (e.start or r.now, e.id)):
            if encounter.status != "finished":
                continue
            ended = encounter.end or encounter.start
            if ended is None or ended + hold > r.now or r.billed(encounter.id):
                continue
            payer = r.payer(encounter)
            if payer is None:
                continue
            charges = r.charges_by_encounter.get(encounter.id, [])
            if charges:
                charge = sum((c.total for c in charges), _ZERO)
                currency = charges[0].currency
                basis = [f"ChargeItem/{c.id}" for c in charges]
                where = f"{len(charges)} ChargeItems"
            else:
                sources = [c for c in r.source.get(encounter.id, []) if c.total]
                if not sources:
                    continue
                charge = sum((c.total or _ZERO for c in sources), _ZERO)
                currency = sources[0].currency
                basis = [f"Claim/{c.id}" for c in sources]
                where = "the source system's own claim " + ", ".join(basis)
            if charge <= 0:
                continue
            out.append(self._unbilled(encounter, payer, charge, currency, basis, where, ended))
        return out

    def _unbilled(
        self,
        encounter: _Enc,
        payer: _Payer,
        charge: Decimal,
        currency: str,
        basis: list[str],
        where: str,
        ended: dt.datetime,
    ) -> Suggestion:
        r = self.r
        amount = r.allowed(charge, payer.payer_id, encounter.class_code)
        contract = r.contracts.get(payer.payer_id)
        waited = (r.now - ended).days
        name = r.payer_name(payer.payer_id)
        service_day = encounter.day
        deadline = (
            service_day + dt.timedelta(days=contract.timely_filing_days)
            if contract and service_day
            else None
        )
        action = f"Submit a claim for Encounter/{encounter.id} ({service_day}) to {name}" + (
            f" under Coverage/{payer.coverage_id}" if payer.coverage_id else ""
        )
        if deadline is not None and contract is not None:
            verb = "passed on" if deadline < r.now.date() else "ends"
            action += (
                f"; the payer's {contract.timely_filing_days}-day filing limit {verb} {deadline}"
            )
        if payer.lapse:
            action += " (verify eligibility first: no coverage on file for the day)"
        factors = [
            Factor(
                name="days_unbilled",
                value=float(waited),
                contribution=0.0,
                unit="d",
                text=(
                    f"{waited} days since discharge without a claim "
                    f"(bill hold {r.limits.unbilled_days} days)"
                ),
            ),
            Factor(
                name="charges",
                value=str(charge),
                contribution=float(amount),
                unit=currency,
                text=f"charges {_money(charge, currency)} from {where}",
            ),
            Factor(
                name="payer",
                value=payer.payer_id,
                contribution=0.0,
                text=(
                    f"{name} ({payer.via}"
                    + (", the coverage on file before a lapse" if payer.lapse else "")
                    + ")"
                    + (
                        f" allows {contract.allowed_pct(encounter.class_code):.0%} of charge"
                        if contract
                        else ", no contract on file"
                    )
                ),
            ),
        ]
        severity_deadline = deadline is not None and deadline <= r.now.date() + dt.timedelta(
            days=30
        )
        suggestion = self.suggestion(
            LeakageKind.UNBILLED_ENCOUNTER,
            subject=f"Encounter/{encounter.id}",
            patient_id=encounter.patient_id,
            facility_id=encounter.facility_id,
            amount=amount,
            currency=currency,
            summary=(
                f"Unbilled {encounter.class_code} encounter of {service_day}: no claim after "
                f"{waited} days ({_money(amount, currency)} expected allowed)"
            ),
            action=action,
            evidence=[
                f"Encounter/{encounter.id}",
                f"Coverage/{payer.coverage_id}" if payer.coverage_id else "",
                *basis,
            ],
            factors=factors,
        )
        if severity_deadline:
            return _with_severity(suggestion, Severity.CRITICAL)
        return suggestion

    # ----------------------------------------------------------------- late_charge

    def late_charges(self) -> list[Suggestion]:
        r = self.r
        late = dt.timedelta(days=r.limits.late_charge_days)
        out = []
        for charge in sorted(r.charges.values(), key=lambda c: (c.entered_at or r.now, c.id)):
            if charge.occurred_at is None or charge.entered_at is None:
                continue
            if charge.entered_at - charge.occurred_at <= late:
                continue
            encounter = r.encounters.get(charge.encounter_id or "")
            payer = r.payer(encounter) if encounter else None
            if encounter is not None and payer is None:
                continue  # self-pay: invoiced to the patient
            class_code = encounter.class_code if encounter else "AMB"
            amount = r.allowed(charge.total, payer.payer_id if payer else None, class_code)
            lag = (charge.entered_at - charge.occurred_at).days
            billed = r.billed(charge.encounter_id) if charge.encounter_id else []
            after_claim = [
                c for c in billed if c.created is not None and c.created < charge.entered_at
            ]
            if after_claim:
                action = (
                    f"Charge ChargeItem/{charge.id} was entered after Claim/{after_claim[0].id} "
                    "was submitted: add it to a corrected claim"
                )
            else:
                where = f"Encounter/{charge.encounter_id}" if charge.encounter_id else "its service"
                action = (
                    f"Check ChargeItem/{charge.id} reaches the claim for "
                    f"{where}"
                    f" and find why it was entered {lag} days after the service"
                )
            out.append(
                self.suggestion(
                    LeakageKind.LATE_CHARGE,
                    subject=f"ChargeItem/{charge.id}",
                    patient_id=charge.patient_id,
                    facility_id=charge.facility_id,
                    amount=amount,
                    currency=charge.currency,
                    summary=(
                        f"Late charge: {charge.code} entered {lag} days after service "
                        f"({_money(charge.total, charge.currency)})"
                    ),
                    action=action,
                    evidence=[
                        f"ChargeItem/{charge.id}",
                        charge.service_ref or "",
                        f"Encounter/{charge.encounter_id}" if charge.encounter_id else "",
                        *(f"Claim/{c.id}" for c in after_claim),
                    ],
                    factors=[
                        Factor(
                            name="charge_lag",
                            value=float(lag),
                            contribution=0.0,
                            unit="d",
                            text=(
                                f"entered {charge.entered_at.date()} for a service on "
                                f"{charge.occurred_at.date()} (limit "
                                f"{r.limits.late_charge_days} days)"
                            ),
                        ),
                        Factor(
                            name="charge",
                            value=str(charge.total),
                            contribution=float(amount),
                            unit=charge.currency,
                            text=f"charge {_money(charge.total, charge.currency)}",
                        ),
                    ],
                )
            )
        return out

    # ----------------------------------------------------------------- charge_without_event

    def charges_without_event(self) -> list[Suggestion]:
        r = self.r
        refs: dict[str, set[str]] = defaultdict(set)
        for charge in r.charges.values():
            if charge.service_ref and "/" in charge.service_ref:
                kind, _, ident = charge.service_ref.partition("/")
                refs[kind].add(ident)
        found = self._statuses(refs)
        out = []
        for charge in sorted(r.charges.values(), key=lambda c: c.id):
            ref = charge.service_ref
            if ref and "/" in ref:
                status = found.get(ref)
                if status is not None and status not in _NOT_DONE.get(ref.split("/", 1)[0], ()):
                    continue
                why = (
                    f"{ref} is not in the record"
                    if status is None
                    else f"{ref} has status {status!r}: it did not happen"
                )
            else:
                why = "the charge names no clinical event"
            if charge.encounter_id and charge.encounter_id in r.encounters:
                if r.payer(r.encounters[charge.encounter_id]) is None:
                    continue
            out.append(
                self._without_event(
                    subject=f"ChargeItem/{charge.id}",
                    patient_id=charge.patient_id,
                    facility_id=charge.facility_id,
                    amount=charge.total,
                    currency=charge.currency,
                    code=charge.code,
                    why=why,
                    evidence=[f"ChargeItem/{charge.id}", ref or ""],
                    action=(
                        f"Reverse ChargeItem/{charge.id} (code {charge.code}) unless "
                        "documentation of the service is found; if it was billed, refund"
                    ),
                )
            )
        out.extend(self._claim_lines_without_event())
        return out

    def _statuses(self, refs: dict[str, set[str]]) -> dict[str, str]:
        tables: dict[str, Any] = {
            "Procedure": Procedure,
            "MedicationAdministration": MedicationAdministration,
            "Observation": Observation,
            "Encounter": Encounter,
        }
        found: dict[str, str] = {}
        for kind, ids in refs.items():
            entity = tables.get(kind)
            if entity is None:
                from healthos_core.record.entities import Immunization

                if kind != "Immunization":
                    continue
                entity = Immunization
            for batch in _batched(self.r.session, ids):
                for ident, status in self.r.session.execute(
                    select(entity.id, entity.status).where(in_ids(self.r.session, entity.id, batch))
                ):
                    found[f"{kind}/{ident}"] = status
        return found

    def _claim_lines_without_event(self) -> list[Suggestion]:
        r = self.r
        rows = list(
            r.session.execute(
                select(
                    ClaimItem.claim_id,
                    ClaimItem.sequence,
                    ClaimItem.code,
                    ClaimItem.net,
                    ClaimItem.unit_price,
                    ClaimItem.quantity,
                    ClaimItem.procedure_id,
                    Procedure.status,
                    Procedure.id.label("found"),
                )
                .join(Claim, Claim.id == ClaimItem.claim_id)
                .outerjoin(Procedure, Procedure.id == ClaimItem.procedure_id)
                .where(
                    ClaimItem.procedure_id.is_not(None),
                    Claim.billing_status.is_not(None),
                    Claim.status.not_in(_VOID_CLAIM),
                    or_(Claim.created.is_(None), Claim.created <= r.now),
                    or_(
                        Procedure.id.is_(None),
                        Procedure.status.in_(sorted(_NOT_DONE["Procedure"])),
                    ),
                )
            )
        )
        out = []
        for row in rows:
            claim = r.billing.get(row.claim_id)
            if claim is None:
                continue
            encounter = r.encounters.get(claim.encounter_id or "")
            if encounter is None:
                continue  # before billing start or after as_of
            ref = f"Procedure/{row.procedure_id}"
            why = (
                f"{ref} is not in the record"
                if row.found is None
                else f"{ref} has status {row.status!r}: it did not happen"
            )
            out.append(
                self._without_event(
                    subject=f"Claim/{row.claim_id}",
                    patient_id=claim.patient_id,
                    facility_id=claim.facility_id,
                    amount=_line_amount(row),
                    currency=claim.currency,
                    code=row.code or "",
                    why=why,
                    evidence=[f"Claim/{row.claim_id}", ref],
                    action=(
                        f"Remove line {row.sequence} (code {row.code}) from Claim/{row.claim_id} "
                        "with a corrected claim, or document the procedure; refund if paid"
                    ),
                )
            )
        return out

    def _without_event(
        self,
        *,
        subject: str,
        patient_id: str,
        facility_id: str | None,
        amount: Decimal | None,
        currency: str,
        code: str,
        why: str,
        evidence: list[str],
        action: str,
    ) -> Suggestion:
        return self.suggestion(
            LeakageKind.CHARGE_WITHOUT_EVENT,
            subject=subject,
            patient_id=patient_id,
            facility_id=facility_id,
            amount=amount,
            currency=currency,
            summary=f"Charge without a clinical event: {code} ({_money(amount, currency)})",
            action=action,
            evidence=evidence,
            factors=[
                Factor(
                    name="event",
                    value=why,
                    contribution=float(amount or 0),
                    unit=currency,
                    text=why,
                )
            ],
        )

    # ----------------------------------------------------------------- payer answers

    def _answered(self) -> tuple[dict[str, Any], dict[str, list[Any]]]:
        r = self.r
        responses = r.latest_responses(list(r.billing))
        adjudications = r.adjudications([resp.id for resp in responses.values()])
        rejected = [resp.id for resp in responses.values() if resp.outcome == "error"]
        for batch in _batched(r.session, rejected):
            for ident, resource in r.session.execute(
                select(ClaimResponse.id, ClaimResponse.resource).where(
                    in_ids(r.session, ClaimResponse.id, batch)
                )
            ):
                for error in (resource or {}).get("error") or []:
                    for coding in (error.get("code") or {}).get("coding") or []:
                        if coding.get("code"):
                            self.error_codes[ident].append(str(coding["code"]))
        return responses, adjudications

    def _whole_denial(self, response: Any, adjudications: list[Any]) -> list[str] | None:
        """Return the denial CARCs when the whole claim was denied or rejected, else None."""
        claim_level = [a for a in adjudications if a.item_sequence is None]
        denied = [a for a in claim_level if a.category == "denied"]
        if response.outcome != "error" and not denied:
            return None
        carcs = [a.carc for a in denied if a.carc]
        carcs.extend(self.error_codes.get(response.id, []))
        if not carcs:
            carcs = [a.carc for a in adjudications if a.category == "denied" and a.carc]
        return sorted(set(carcs), key=lambda c: (len(c), c))

    def underpayments(
        self, responses: dict[str, Any], adjudications: dict[str, list[Any]]
    ) -> list[Suggestion]:
        r = self.r
        statuses = r.status_at(list(responses))
        out = []
        for claim_id in sorted(responses):
            claim = r.billing[claim_id]
            response = responses[claim_id]
            rows = adjudications.get(response.id, [])
            contract = r.contracts.get(claim.insurer_id or "")
            if contract is None or not rows or self._whole_denial(response, rows) is not None:
                continue
            if statuses.get(claim_id) in ("appealed", "written-off"):
                continue
            encounter = r.encounters.get(claim.encounter_id or "")
            if encounter is None:
                continue
            per_line: dict[int, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
            for a in rows:
                if a.item_sequence is not None:
                    per_line[a.item_sequence][a.category] += Decimal(a.amount)
            accepted = []
            for sequence in sorted(per_line):
                line = per_line[sequence]
                charge = line["submitted"] - line["denied"]
                if charge > 0:
                    accepted.append(charge)
            allowed, expected = expected_payment(accepted, contract, encounter.class_code)
            paid = sum((line["benefit"] for line in per_line.values()), _ZERO)
            eligible = sum((line["eligible"] for line in per_line.values()), _ZERO)
            unexplained = sum((line["underpaid"] for line in per_line.values()), _ZERO)
            shortfall = expected - paid
            if shortfall <= r.limits.underpayment_tolerance * max(len(accepted), 1):
                continue
            out.append(
                self._underpayment(
                    claim,
                    response,
                    encounter,
                    contract,
                    allowed=allowed,
                    expected=expected,
                    paid=paid,
                    eligible=eligible,
                    unexplained=unexplained,
                    shortfall=shortfall,
                )
            )
        return out

    def _underpayment(
        self,
        claim: _Claim,
        response: Any,
        encounter: _Enc,
        contract: Contract,
        *,
        allowed: Decimal,
        expected: Decimal,
        paid: Decimal,
        eligible: Decimal,
        unexplained: Decimal,
        shortfall: Decimal,
    ) -> Suggestion:
        r = self.r
        cur = claim.currency
        name = r.payer_name(contract.payer_id)
        received = _day(_aware(response.created))
        low_rate = eligible + _CENT < allowed
        reason = (
            f"allowed {_money(eligible, cur)} against the contract's {_money(allowed, cur)} "
            f"({contract.allowed_pct(encounter.class_code):.0%} of charge)"
            if low_rate
            else f"{_money(unexplained, cur)} paid below the allowed amount with no reason code"
        )
        return self.suggestion(
            LeakageKind.UNDERPAYMENT,
            subject=f"Claim/{claim.id}",
            patient_id=claim.patient_id,
            facility_id=claim.facility_id or encounter.facility_id,
            amount=shortfall,
            currency=cur,
            summary=(
                f"Underpaid by {_money(shortfall, cur)}: {name} paid {_money(paid, cur)} of "
                f"{_money(expected, cur)} expected"
            ),
            action=(
                f"Dispute the underpayment of {_money(shortfall, cur)} on Claim/{claim.id} with "
                f"{name} (ClaimResponse/{response.id} of {received}: allowed "
                f"{_money(eligible, cur)}, paid {_money(paid, cur)}; contract allows "
                f"{_money(allowed, cur)}, expected payment {_money(expected, cur)})"
            ),
            evidence=[
                f"Claim/{claim.id}",
                f"ClaimResponse/{response.id}",
                f"Encounter/{encounter.id}",
                contract.reference,
            ],
            factors=[
                Factor(
                    name="shortfall",
                    value=str(shortfall),
                    contribution=float(shortfall),
                    unit=cur,
                    text=reason,
                ),
                Factor(
                    name="expected_payment",
                    value=str(expected),
                    contribution=0.0,
                    unit=cur,
                    text=(
                        f"contract: allowed {contract.allowed_pct(encounter.class_code):.0%}, "
                        f"coinsurance {contract.coinsurance_pct:.0%}, copay "
                        f"{_money(Decimal(contract.copay(encounter.class_code)), cur)} "
                        f"({encounter.class_code}) on the accepted lines"
                    ),
                ),
                Factor(
                    name="paid",
                    value=str(paid),
                    contribution=0.0,
                    unit=cur,
                    text=f"paid {_money(paid, cur)}",
                ),
            ],
        )

    def unworked_denials(
        self, responses: dict[str, Any], adjudications: dict[str, list[Any]]
    ) -> list[Suggestion]:
        r = self.r
        window = dt.timedelta(days=r.limits.denial_followup_days)
        corrected: dict[str, list[_Claim]] = defaultdict(list)
        for claim in r.billing.values():
            if claim.related_claim_id:
                corrected[claim.related_claim_id].append(claim)
        candidates: dict[str, tuple[Any, list[str]]] = {}
        for claim_id, response in responses.items():
            claim = r.billing[claim_id]
            if claim.related_claim_id and not r.limits.flag_corrected_denials:
                continue
            if corrected.get(claim_id):
                continue
            carcs = self._whole_denial(response, adjudications.get(response.id, []))
            if not carcs or not set(carcs) & r.limits.correctable_carcs:
                continue
            denied_at = _aware(response.created)
            if denied_at is None or denied_at + window > r.now:
                continue
            if claim.encounter_id not in r.encounters:
                continue
            candidates[claim_id] = (response, carcs)
        statuses = r.status_at(list(candidates))
        live = {c: v for c, v in candidates.items() if statuses.get(c) not in _WORKED}
        lines = r.claim_lines(list(live))
        out = []
        for claim_id in sorted(live):
            response, carcs = live[claim_id]
            claim = r.billing[claim_id]
            encounter = r.encounters[claim.encounter_id or ""]
            contract = r.contracts.get(claim.insurer_id or "")
            charges = [a for a in (_line_amount(line) for line in lines.get(claim_id, [])) if a]
            if contract is not None:
                allowed, expected = expected_payment(charges, contract, encounter.class_code)
            else:
                allowed = expected = sum(charges, _ZERO)
            out.append(
                self._unworked(claim, response, encounter, carcs, allowed, expected, contract)
            )
        return out

    def _unworked(
        self,
        claim: _Claim,
        response: Any,
        encounter: _Enc,
        carcs: list[str],
        allowed: Decimal,
        expected: Decimal,
        contract: Contract | None,
    ) -> Suggestion:
        r = self.r
        cur = claim.currency
        denied_on = _day(_aware(response.created)) or r.now.date()
        waited = (r.now.date() - denied_on).days
        correctable = [c for c in carcs if c in r.limits.correctable_carcs]
        reasons = "; ".join(
            f"CARC {c}" + (f" ({_CARC_TEXT[c]})" if c in _CARC_TEXT else "") for c in correctable
        )
        name = r.payer_name(claim.insurer_id or "")
        return self.suggestion(
            LeakageKind.UNWORKED_DENIAL,
            subject=f"Claim/{claim.id}",
            patient_id=claim.patient_id,
            facility_id=claim.facility_id or encounter.facility_id,
            amount=expected,
            currency=cur,
            summary=(
                f"Unworked denial: CARC {'/'.join(carcs)} on {denied_on}, {waited} days ago "
                f"({_money(expected, cur)} expected payment)"
            ),
            action=(
                f"Appeal or correct Claim/{claim.id} denied CARC {'/'.join(correctable)} on "
                f"{denied_on} by {name} (ClaimResponse/{response.id}): {reasons}; "
                f"{waited} days without a corrected claim, an appeal or a write-off, check "
                "the payer's appeal window"
            ),
            evidence=[
                f"Claim/{claim.id}",
                f"ClaimResponse/{response.id}",
                f"Encounter/{encounter.id}",
                contract.reference if contract else "",
            ],
            factors=[
                Factor(
                    name="denial",
                    value="/".join(carcs),
                    contribution=float(expected),
                    unit="X12 CARC",
                    text=f"whole claim denied on {denied_on}: {reasons}",
                ),
                Factor(
                    name="days_since_denial",
                    value=float(waited),
                    contribution=0.0,
                    unit="d",
                    text=(
                        f"{waited} days with no corrected claim, appeal or write-off "
                        f"(follow-up limit {r.limits.denial_followup_days} days)"
                    ),
                ),
                Factor(
                    name="expected_payment",
                    value=str(expected),
                    contribution=0.0,
                    unit=cur,
                    text=(
                        f"contract allowed {_money(allowed, cur)}, expected payment "
                        f"{_money(expected, cur)}"
                        if contract
                        else "no contract on file: the billed charges are at stake"
                    ),
                ),
            ],
        )


def _with_severity(suggestion: Suggestion, severity: Severity) -> Suggestion:
    return replace(suggestion, severity=severity)


# --------------------------------------------------------------------------- public API


def find_leakage(
    session: Session,
    *,
    as_of: dt.datetime | None = None,
    kinds: Collection[str] | None = None,
    **thresholds: Any,
) -> list[Suggestion]:
    """Find revenue leakage in the record as of a moment.

    Parameters
    ----------
    session : Session
        Read only: nothing is added, changed or flushed.
    as_of : datetime, optional
        Aware moment the record is read at (default now). ``shared/data/synthea-rcm``
        is as of 2021-07-31.
    kinds : collection of str, optional
        Only these :class:`LeakageKind` values (default all six).
    **thresholds
        Fields of :class:`LeakageThresholds` (``billing_start``, ``unbilled_days``,
        ``late_charge_days``, ``denial_followup_days``, ``correctable_carcs``,
        ``underpayment_tolerance``, ``flag_corrected_denials``), each with its sourced
        default.

    Returns
    -------
    list of Suggestion
        Kind ``finance.revenue_leakage``, ``band`` = the leakage kind, ordered by kind
        then amount at stake (largest first).

    Raises
    ------
    InvalidInputError
        ``as_of`` is naive, a kind or threshold is unknown, or a threshold is invalid.
    """
    limits = LeakageThresholds.from_kwargs(thresholds)
    return LeakageScorer(kinds=kinds, thresholds=limits).score(session, as_of=as_of)


class LeakageScorer(Scorer):
    """Revenue leakage findings (SPEC §5 "Revenue leakage") for the finance worklist.

    Parameters
    ----------
    kinds : collection of str, optional
        Only these :class:`LeakageKind` values (default all).
    thresholds : LeakageThresholds, optional
        The rules' parameters (default :class:`LeakageThresholds` ()).
    **overrides
        Single threshold fields, applied over ``thresholds``.

    Notes
    -----
    See the module docstring for each rule, its amount and what is not billable. The
    ``score`` of a suggestion is its amount at stake (a worklist orders by it).
    """

    name: ClassVar[str] = "revenue_leakage"
    kind: ClassVar[str] = "finance.revenue_leakage"
    version: ClassVar[str] = "1.0.0"
    reference: ClassVar[str | None] = (
        "HealthOS revenue-leakage rules; synthea-rcm leakage.csv definitions; HFMA DNFB "
        "bill hold; 42 CFR 405.942; X12 CARC"
    )

    def __init__(
        self,
        *,
        kinds: Collection[str] | None = None,
        thresholds: LeakageThresholds | None = None,
        **overrides: Any,
    ) -> None:
        self.kinds = kinds
        self.thresholds = thresholds
        self.overrides = overrides

    def _limits(self) -> LeakageThresholds:
        base = self.thresholds or LeakageThresholds()
        if not self.overrides:
            return base
        values = {f.name: getattr(base, f.name) for f in fields(base)}
        values.update(self.overrides)
        return LeakageThresholds.from_kwargs(values)

    def _kinds(self) -> list[LeakageKind]:
        if self.kinds is None:
            return list(LeakageKind)
        known = {k.value for k in LeakageKind}
        wanted = [str(k) for k in self.kinds]
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise InvalidInputError(
                f"unknown leakage kind(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return [k for k in LeakageKind if k.value in wanted]

    def score(self, session: Session, *, as_of: dt.datetime | None = None) -> list[Suggestion]:
        """Return the leakage findings as of ``as_of``.

        Parameters
        ----------
        session : Session
            Read only.
        as_of : datetime, optional
            Aware moment to read the record at (default: now).

        Returns
        -------
        list of Suggestion
            Ordered by kind (as :class:`LeakageKind` lists them), then amount at stake,
            largest first.

        Raises
        ------
        InvalidInputError
            ``as_of`` is naive, or a kind or threshold is unknown or invalid.
        """
        now = resolve_as_of(as_of)
        kinds = self._kinds()
        limits = self._limits()
        if not kinds:
            return []
        with session.no_autoflush:
            record = _Record(session, now, limits)
            finder = _Finder(
                record, Source(name=self.name, version=self.version, reference=self.reference)
            )
            found: dict[LeakageKind, list[Suggestion]] = {}
            if LeakageKind.MISSED_CHARGE in kinds:
                found[LeakageKind.MISSED_CHARGE] = finder.missed_charges()
            if LeakageKind.UNBILLED_ENCOUNTER in kinds:
                found[LeakageKind.UNBILLED_ENCOUNTER] = finder.unbilled_encounters()
            if LeakageKind.LATE_CHARGE in kinds:
                found[LeakageKind.LATE_CHARGE] = finder.late_charges()
            if {LeakageKind.UNDERPAYMENT, LeakageKind.UNWORKED_DENIAL} & set(kinds):
                responses, adjudications = finder._answered()
                if LeakageKind.UNDERPAYMENT in kinds:
                    found[LeakageKind.UNDERPAYMENT] = finder.underpayments(responses, adjudications)
                if LeakageKind.UNWORKED_DENIAL in kinds:
                    found[LeakageKind.UNWORKED_DENIAL] = finder.unworked_denials(
                        responses, adjudications
                    )
            if LeakageKind.CHARGE_WITHOUT_EVENT in kinds:
                found[LeakageKind.CHARGE_WITHOUT_EVENT] = finder.charges_without_event()
        out: list[Suggestion] = []
        for kind in kinds:
            out.extend(
                sorted(
                    found.get(kind, []),
                    key=lambda s: (-(s.amount_at_stake or _ZERO), s.subject),
                )
            )
        return out
