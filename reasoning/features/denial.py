"""Features of the claim denial-risk models: one vector per claim, one per claim line.

The only feature code of the ``denial`` and ``denial_line`` models: training
(:mod:`models.denial`), evaluation, the finance scorer
(:mod:`reasoning.finance.denial_scorer`) and the benchmark all call it.

Two steps, kept apart so their costs can be measured apart:

1. :func:`load_context` reads, in a handful of column queries, the claims to score and
   their context in the record: the patients' other revenue-cycle claims and lines
   (duplicates), diagnoses, encounter class, Coverage periods, the payer contracts
   (:class:`~healthos_core.billing.payers.Contract`), service codes and unit limits,
   bundling edits, prior authorisations, and the payers' earlier answers
   (:class:`~healthos_core.billing.entities.ClaimResponse` and its ``denied``
   adjudications) — only answers created before ``as_of``.
2. :func:`build` turns that context into the feature matrices with numpy, vectorised.

No leakage of the future
------------------------
A claim is judged at its own submission time (``Claim.submitted_at``; a claim not yet
submitted at ``as_of``). The patient's and the payer's prior denials count only
responses created **before** that moment; duplicates are looked for only among claims
submitted before it (as the scrubber's duplicate edit does); the filing delay is the
submission day minus the through date of service.

The deterministic scrubber edits (:data:`healthos_core.billing.claims.SCRUBBER_EDITS`)
are recomputed here as features, vectorised, with the same rules: coverage not in force
on a date of service (X12 CARC 26/27/31; FHIR Coverage.period, inclusive), payer
mismatch (CARC 109), secondary coverage billed first (CARC 22), prior authorisation
required by the contract and absent (CARC 197, contracts.csv ``prior_auth_categories``),
timely filing (CARC 29, contract ``timely_filing_days``, corrected claims exempt where
the contract says so), missing or invalid diagnosis and incomplete lines (CARC 16, X12
837I HI and SV2 segments), exact duplicates (CARC 18), units over the payer's per-line
limit (CARC 151/119, unit_limits.csv) and bundled pairs (CARC 97, bundling_edits.csv).

Explanation groups
------------------
Every feature belongs to one explanation group (:data:`FEATURE_GROUPS`,
:data:`LINE_FEATURE_GROUPS`) and every group to one CARC group of the finance worklist
(:data:`CARC_GROUP_OF`): ``eligibility`` (CARC 26/27/31/109/22), ``authorization``
(197), ``timely_filing`` (29), ``coding`` (16), ``duplicate`` (18), ``bundling`` (97),
``units`` (151/119) and ``other``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.billing.claims import ICD10CM_SYSTEM, icd10cm_code
from healthos_core.billing.entities import Claim, ClaimDiagnosis, ClaimItem, ClaimResponse
from healthos_core.billing.money import ledger_currency
from healthos_core.billing.payers import (
    DEFAULT_MAX_UNITS_PER_LINE,
    BundlingEdit,
    Contract,
    PriorAuthorization,
    ServiceCode,
)
from healthos_core.billing.remittance import ClaimResponseAdjudication
from healthos_core.record.entities import Coverage, Encounter

__all__ = [
    "CARC_GROUPS",
    "CARC_GROUP_OF",
    "CATEGORIES",
    "FEATURE_GROUPS",
    "FEATURE_NAMES",
    "LINE_FEATURE_GROUPS",
    "LINE_FEATURE_NAMES",
    "DenialContext",
    "DenialFeatures",
    "build",
    "load_context",
]

#: Service categories of the charge master (synthea-rcm ``service_categories.csv``).
CATEGORIES: Final = (
    "advanced_imaging",
    "cardiac_procedure",
    "diagnostic_imaging",
    "emergency",
    "evaluation_management",
    "immunization",
    "inpatient_admission",
    "laboratory",
    "minor_procedure",
    "obstetric_procedure",
    "oncology",
    "specialty_therapy",
    "surgical_procedure",
)
#: Encounter classes (v3 ActCode) and coverage types (contracts.csv ``coverage_type_code``).
CLASSES: Final = ("AMB", "EMER", "IMP")
PLAN_TYPES: Final = ("PUBLICPOL", "MCPOL", "HIP")
#: The worklist's predicted-CARC groups, in display order.
CARC_GROUPS: Final = (
    "eligibility",
    "authorization",
    "timely_filing",
    "coding",
    "duplicate",
    "bundling",
    "units",
    "other",
)

_CLAIM_FEATURES: Final[tuple[tuple[str, str], ...]] = (
    # eligibility: X12 CARC 26/27/31/109/22
    ("coverage_missing", "coverage"),
    ("coverage_inactive", "coverage"),
    ("coverage_days_before_start", "coverage"),
    ("coverage_days_after_end", "coverage"),
    ("coverage_payer_mismatch", "coverage"),
    ("coverage_not_primary", "coverage"),
    ("other_coverage_active", "coverage"),
    # authorisation: CARC 197
    ("auth_required_lines", "authorization"),
    ("auth_present", "authorization"),
    ("auth_missing_lines", "authorization"),
    # timely filing: CARC 29
    ("filing_days", "filing"),
    ("filing_limit_days", "filing"),
    ("filing_margin_days", "filing"),
    ("filing_over_limit", "filing"),
    # coding / completeness: CARC 16
    ("n_diagnoses", "diagnosis"),
    ("diagnosis_missing", "diagnosis"),
    ("principal_not_valid_icd10cm", "diagnosis"),
    ("secondary_not_valid_icd10cm", "diagnosis"),
    ("diagnosis_pointer_invalid", "diagnosis"),
    ("lines_incomplete", "completeness"),
    ("provider_missing", "completeness"),
    # duplicate: CARC 18
    ("duplicate", "duplicate"),
    ("same_day_claims_before", "duplicate"),
    # bundling: CARC 97
    ("bundled_lines", "bundling"),
    # units: CARC 151/119
    ("units_over_limit_lines", "units"),
    ("max_units_ratio", "units"),
    # context
    *((f"plan_{p.lower()}", "payer") for p in PLAN_TYPES),
    ("payer_auth_categories", "payer"),
    *((f"class_{c.lower()}", "encounter_class") for c in CLASSES),
    ("priority_stat", "encounter_class"),
    *((f"lines_{c}", "services") for c in CATEGORIES),
    ("n_lines", "services"),
    ("total_units", "services"),
    ("log_total", "amount"),
    ("log_max_line", "amount"),
    ("corrected", "resubmission"),
    ("original_denied", "resubmission"),
    ("patient_prior_claims", "patient_history"),
    ("patient_prior_denials", "patient_history"),
    ("patient_prior_denial_rate", "patient_history"),
    ("payer_prior_denial_rate", "payer_history"),
)
_LINE_FEATURES: Final[tuple[tuple[str, str], ...]] = (
    ("line_is_encounter", "line_service"),
    *((f"line_{c}", "line_service") for c in CATEGORIES),
    ("line_units", "units"),
    ("line_unit_limit", "units"),
    ("line_units_over_limit", "units"),
    ("line_bundled", "bundling"),
    ("line_auth_required", "authorization"),
    ("line_auth_missing", "authorization"),
    ("line_coverage_inactive", "coverage"),
    ("line_log_net", "line_amount"),
    ("line_share_of_total", "line_amount"),
)

#: Claim model: feature → explanation group.
FEATURE_GROUPS: Final[dict[str, str]] = dict(_CLAIM_FEATURES)
FEATURE_NAMES: Final[tuple[str, ...]] = tuple(name for name, _ in _CLAIM_FEATURES)
#: Line model: the claim's features, then the line's own.
LINE_FEATURE_GROUPS: Final[dict[str, str]] = {**dict(_CLAIM_FEATURES), **dict(_LINE_FEATURES)}
LINE_FEATURE_NAMES: Final[tuple[str, ...]] = FEATURE_NAMES + tuple(n for n, _ in _LINE_FEATURES)

#: Explanation group → the worklist's CARC group (:data:`CARC_GROUPS`).
CARC_GROUP_OF: Final[dict[str, str]] = {
    "coverage": "eligibility",
    "authorization": "authorization",
    "filing": "timely_filing",
    "diagnosis": "coding",
    "completeness": "coding",
    "duplicate": "duplicate",
    "bundling": "bundling",
    "units": "units",
}

_DAY: Final = 86_400.0
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()
_CHUNK: Final = 500
#: Prior of the payer's denial rate (Beta pseudo-counts): rate 11 % over 20 claims.
_PAYER_PRIOR: Final = (2.2, 20.0)


def _day(value: dt.date | dt.datetime | None) -> float:
    """Days since 1970-01-01 (UTC day of a datetime); NaN for None."""
    if value is None:
        return math.nan
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return float(aware.astimezone(dt.UTC).date().toordinal() - _EPOCH_ORDINAL)
    return float(value.toordinal() - _EPOCH_ORDINAL)


def _ts(value: dt.datetime | None) -> float:
    """Seconds since the epoch (naive values are UTC); NaN for None."""
    if value is None:
        return math.nan
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return aware.timestamp()


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


@dataclass(frozen=True, slots=True)
class ContractTerms:
    """What the features need of one payer contract (:class:`Contract`)."""

    payer_id: str
    timely_filing_days: int
    prior_auth_categories: frozenset[str]
    prior_auth_exempt_classes: frozenset[str]
    unit_limit_carc: str | None
    applies_bundling_edits: bool
    filing_limit_applies_to_corrected: bool
    coverage_type_code: str | None
    payer_name: str | None


@dataclass(kw_only=True)
class DenialContext:
    """Claims and their record context, column-wise (built by :func:`load_context`).

    Claim arrays have one entry per claim ``c`` (the claims to score, ``target``, and the
    same patients' other revenue-cycle claims); line arrays one per claim line, with
    ``line_claim`` the index of its claim; diagnosis arrays likewise with ``diag_claim``.
    Times are seconds since the epoch (``*_ts``) or days since 1970-01-01 (``*_day``),
    NaN when unknown.
    """

    as_of: dt.datetime
    claim_id: list[str]
    patient_id: list[str]
    insurer_id: list[str]
    coverage_id: list[str]
    class_code: list[str]
    related_id: list[str]
    control_number: list[str]
    currency: list[str]
    target: np.ndarray
    submitted_ts: np.ndarray
    billable_start_day: np.ndarray
    billable_end_day: np.ndarray
    total: np.ndarray
    total_amount: list[Decimal | None]
    pre_auth: np.ndarray
    provider_missing: np.ndarray
    priority_stat: np.ndarray
    line_claim: np.ndarray
    line_sequence: np.ndarray
    line_system: list[str]
    line_code: list[str]
    line_category: list[str]
    line_quantity: np.ndarray
    line_net: np.ndarray
    line_has_charge: np.ndarray
    line_day: np.ndarray
    line_pointers: list[list[int] | None]
    line_procedure: list[str]
    diag_claim: np.ndarray
    diag_sequence: np.ndarray
    diag_system: list[str]
    diag_code: list[str]
    diag_principal: np.ndarray
    coverages: dict[str, list[tuple[str, str, bool, float, float, int | None]]]
    contracts: dict[str, ContractTerms]
    unit_limits: dict[tuple[str, str], int]
    code_category: dict[tuple[str, str], str]
    bundling: dict[str, list[tuple[str, str]]]
    authorizations: dict[tuple[str, str], list[PriorAuthorization]]
    #: Earlier answers: (claim id, created ts, whole-claim denied) for the patients'
    #: claims; and per payer, sorted created ts with cumulative denials.
    responses: dict[str, tuple[float, bool]]
    payer_response_ts: dict[str, np.ndarray]
    payer_response_denied: dict[str, np.ndarray]

    @property
    def n_claims(self) -> int:
        """Number of claims loaded (targets and context)."""
        return len(self.claim_id)


def _response_denied(outcome: str | None, claim_level_denied: bool) -> bool:
    """Whole claim denied or rejected: outcome ``error`` or a claim-level denial.

    synthea-rcm README, ClaimResponse: ``error`` = rejected as unprocessable (the CARC in
    ``error[].code``); "claim-level denials also appear in ClaimResponse.adjudication[]
    (category ``denied``)"; a claim whose every submitted dollar is denied line by line
    counts as denied too (as :mod:`healthos_core.billing.remittance` sets ``denied``).
    """
    return outcome == "error" or claim_level_denied


def load_context(
    session: Session,
    claim_ids: Sequence[str] | None = None,
    *,
    as_of: dt.datetime | None = None,
) -> DenialContext:
    """Read the claims to score and their record context in a few column queries.

    Parameters
    ----------
    session : Session
        Read only.
    claim_ids : sequence of str, optional
        The claims to score (default: every claim with a ``billing_status``).
    as_of : aware datetime, optional
        The moment the record is read at (default now): payer answers created after it
        are ignored, and a claim not submitted by then is judged at ``as_of``.

    Returns
    -------
    DenialContext
    """
    now = as_of or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise ValueError("as_of must be timezone-aware (UTC)")
    now_ts = now.timestamp()
    columns = (
        Claim.id,
        Claim.patient_id,
        Claim.insurer_id,
        Claim.coverage_id,
        Claim.related_claim_id,
        Claim.patient_control_number,
        Claim.currency,
        Claim.submitted_at,
        Claim.created,
        Claim.billable_start,
        Claim.billable_end,
        Claim.total,
        Claim.pre_auth_ref,
        Claim.provider_id,
        Claim.priority,
        Claim.encounter_id,
        Claim.billing_status,
    )
    if claim_ids is None:
        targets_rows = list(
            session.execute(select(*columns).where(Claim.billing_status.is_not(None)))
        )
    else:
        targets_rows = []
        for chunk in _chunks(list(dict.fromkeys(claim_ids))):
            targets_rows += list(session.execute(select(*columns).where(Claim.id.in_(chunk))))
    wanted = {row[0] for row in targets_rows}
    patients = sorted({row[1] for row in targets_rows})
    rows = list(targets_rows)
    if claim_ids is not None:
        for chunk in _chunks(patients):
            rows += [
                r
                for r in session.execute(
                    select(*columns).where(
                        Claim.patient_id.in_(chunk), Claim.billing_status.is_not(None)
                    )
                )
                if r[0] not in wanted
            ]
    rows.sort(key=lambda r: (r[1], r[0]))
    index = {row[0]: i for i, row in enumerate(rows)}
    ids = list(index)
    encounter_ids = sorted({r[15] for r in rows if r[15]})
    classes: dict[str, str] = {}
    for chunk in _chunks(encounter_ids):
        for encounter_id, class_code in session.execute(
            select(Encounter.id, Encounter.class_code).where(Encounter.id.in_(chunk))
        ):
            classes[encounter_id] = class_code

    def submitted(row: Any) -> float:
        ts = _ts(row[7])
        return ts if not math.isnan(ts) and ts <= now_ts else now_ts

    # lines
    line_rows: list[Any] = []
    diag_rows: list[Any] = []
    for chunk in _chunks(ids):
        line_rows += session.execute(
            select(
                ClaimItem.claim_id,
                ClaimItem.sequence,
                ClaimItem.code_system,
                ClaimItem.code,
                ClaimItem.category,
                ClaimItem.quantity,
                ClaimItem.net,
                ClaimItem.unit_price,
                ClaimItem.service_date,
                ClaimItem.diagnosis_sequence,
                ClaimItem.procedure_id,
            ).where(ClaimItem.claim_id.in_(chunk))
        ).all()
        diag_rows += session.execute(
            select(
                ClaimDiagnosis.claim_id,
                ClaimDiagnosis.sequence,
                ClaimDiagnosis.code_system,
                ClaimDiagnosis.code,
                ClaimDiagnosis.type_code,
            ).where(ClaimDiagnosis.claim_id.in_(chunk))
        ).all()
    line_rows.sort(key=lambda r: (index[r[0]], r[1]))
    diag_rows.sort(key=lambda r: (index[r[0]], r[1]))

    coverages: dict[str, list[tuple[str, str, bool, float, float, int | None]]] = defaultdict(list)
    for chunk in _chunks(patients):
        for cov in session.scalars(select(Coverage).where(Coverage.patient_id.in_(chunk))):
            order = (cov.resource or {}).get("order")
            coverages[cov.patient_id].append(
                (
                    cov.id,
                    cov.payor_id or "",
                    cov.status == "active",
                    _day(cov.period_start),
                    _day(cov.period_end),
                    order if isinstance(order, int) and not isinstance(order, bool) else None,
                )
            )
    contracts = {
        c.payer_id: ContractTerms(
            payer_id=c.payer_id,
            timely_filing_days=int(c.timely_filing_days),
            prior_auth_categories=frozenset(c.prior_auth_categories or ()),
            prior_auth_exempt_classes=frozenset(c.prior_auth_exempt_classes or ()),
            unit_limit_carc=c.unit_limit_carc,
            applies_bundling_edits=bool(c.applies_bundling_edits),
            filing_limit_applies_to_corrected=bool(c.filing_limit_applies_to_corrected),
            coverage_type_code=c.coverage_type_code,
            payer_name=c.payer_name,
        )
        for c in session.scalars(select(Contract))
    }
    unit_limits: dict[tuple[str, str], int] = {}
    code_category: dict[tuple[str, str], str] = {}
    for code in session.scalars(select(ServiceCode).order_by(ServiceCode.id)):
        key = (code.code_system, code.code)
        unit_limits.setdefault(key, int(code.max_units_per_line))
        if code.service_category:
            code_category.setdefault(key, code.service_category)
    bundling: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for edit in session.scalars(select(BundlingEdit).order_by(BundlingEdit.id)):
        bundling[edit.component_code].append((edit.comprehensive_code, edit.carc))
    authorizations: dict[tuple[str, str], list[PriorAuthorization]] = defaultdict(list)
    for chunk in _chunks(patients):
        for auth in session.scalars(
            select(PriorAuthorization).where(PriorAuthorization.patient_id.in_(chunk))
        ):
            authorizations[(auth.patient_id, auth.payer_id)].append(auth)

    # payer answers known at as_of: all payers (payer history), claim-level denials
    response_rows = session.execute(
        select(
            ClaimResponse.claim_id, ClaimResponse.created, ClaimResponse.outcome, Claim.insurer_id
        )
        .join(Claim, Claim.id == ClaimResponse.claim_id)
        .where(ClaimResponse.created <= now)
    ).all()
    denied_claims: set[str] = set()
    denied_amount: dict[str, float] = defaultdict(float)
    for claim_id, sequence, amount in session.execute(
        select(
            ClaimResponseAdjudication.claim_id,
            ClaimResponseAdjudication.item_sequence,
            ClaimResponseAdjudication.amount,
        ).where(ClaimResponseAdjudication.category == "denied")
    ):
        if sequence is None:
            denied_claims.add(claim_id)
        else:
            denied_amount[claim_id] += float(amount)
    claim_totals = {
        claim_id: float(total)
        for claim_id, total in session.execute(
            select(Claim.id, Claim.total).where(
                Claim.id.in_(select(ClaimResponse.claim_id).where(ClaimResponse.created <= now))
            )
        )
        if total is not None
    }
    # every submitted dollar denied line by line is a whole-claim denial too
    denied_claims |= {
        claim_id
        for claim_id, amount in denied_amount.items()
        if claim_id in claim_totals and amount >= claim_totals[claim_id] - 0.005
    }
    responses: dict[str, tuple[float, bool]] = {}
    by_payer: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for answered_claim, created, outcome, insurer in response_rows:
        if answered_claim is None:
            continue
        claim_id = str(answered_claim)
        ts = _ts(created)
        denied = _response_denied(outcome, claim_id in denied_claims)
        by_payer[insurer or ""].append((ts, denied))
        if claim_id in index:
            previous = responses.get(claim_id)
            if previous is None or ts < previous[0]:
                responses[claim_id] = (ts, denied)
    payer_ts: dict[str, np.ndarray] = {}
    payer_denied: dict[str, np.ndarray] = {}
    for payer, answers in by_payer.items():
        answers.sort()
        payer_ts[payer] = np.array([a[0] for a in answers], dtype=np.float64)
        payer_denied[payer] = np.concatenate(
            [[0], np.cumsum([a[1] for a in answers], dtype=np.int64)]
        )

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    currency = ledger_currency()

    return DenialContext(
        as_of=now,
        claim_id=ids,
        patient_id=[r[1] for r in rows],
        insurer_id=[text(r[2]) for r in rows],
        coverage_id=[text(r[3]) for r in rows],
        class_code=[
            classes.get(r[15] or "", "") or ("EMER" if r[14] == "stat" else "") for r in rows
        ],
        related_id=[text(r[4]) for r in rows],
        control_number=[text(r[5]) for r in rows],
        currency=[text(r[6]) or currency for r in rows],
        target=np.array([r[0] in wanted for r in rows], dtype=bool),
        submitted_ts=np.array([submitted(r) for r in rows], dtype=np.float64),
        billable_start_day=np.array([_day(r[9]) for r in rows], dtype=np.float64),
        billable_end_day=np.array([_day(r[10]) for r in rows], dtype=np.float64),
        total=np.array([math.nan if r[11] is None else float(r[11]) for r in rows]),
        total_amount=[r[11] for r in rows],
        pre_auth=np.array([bool(r[12]) for r in rows], dtype=bool),
        provider_missing=np.array([r[13] is None for r in rows], dtype=bool),
        priority_stat=np.array([r[14] == "stat" for r in rows], dtype=bool),
        line_claim=np.array([index[r[0]] for r in line_rows], dtype=np.intp),
        line_sequence=np.array([r[1] for r in line_rows], dtype=np.int64),
        line_system=[text(r[2]) for r in line_rows],
        line_code=[text(r[3]) for r in line_rows],
        line_category=[text(r[4]) for r in line_rows],
        line_quantity=np.array(
            [math.nan if r[5] is None else float(r[5]) for r in line_rows], dtype=np.float64
        ),
        line_net=np.array(
            [
                float(r[6]) if r[6] is not None else (float(r[7]) if r[7] is not None else 0.0)
                for r in line_rows
            ],
            dtype=np.float64,
        ),
        line_has_charge=np.array([r[6] is not None or r[7] is not None for r in line_rows]),
        line_day=np.array([_day(r[8]) for r in line_rows], dtype=np.float64),
        line_pointers=[list(r[9]) if r[9] else None for r in line_rows],
        line_procedure=[text(r[10]) for r in line_rows],
        diag_claim=np.array([index[r[0]] for r in diag_rows], dtype=np.intp),
        diag_sequence=np.array([r[1] for r in diag_rows], dtype=np.int64),
        diag_system=[text(r[2]) for r in diag_rows],
        diag_code=[text(r[3]) for r in diag_rows],
        diag_principal=np.array([r[4] == "principal" for r in diag_rows], dtype=bool),
        coverages=dict(coverages),
        contracts=contracts,
        unit_limits=unit_limits,
        code_category=code_category,
        bundling=dict(bundling),
        authorizations=dict(authorizations),
        responses=responses,
        payer_response_ts=payer_ts,
        payer_response_denied=payer_denied,
    )


@dataclass(frozen=True, kw_only=True)
class DenialFeatures:
    """Feature matrices of the target claims of a :class:`DenialContext`.

    Attributes
    ----------
    claim_ids, patient_ids : list of str
        One per row of ``X`` (the target claims, in context order).
    X : numpy.ndarray
        ``(n_claims, len(FEATURE_NAMES))`` float64.
    line_X : numpy.ndarray
        ``(n_lines, len(LINE_FEATURE_NAMES))`` float64: every line of the target claims.
    line_row : numpy.ndarray
        Row of ``X`` of each line.
    line_sequence : numpy.ndarray
        ``ClaimItem.sequence`` of each line.
    rows : numpy.ndarray
        Context claim index of each row of ``X``.
    line_index : numpy.ndarray
        Context line index of each row of ``line_X``.
    duplicate_of : dict of str to str
        Claim id → the earlier claim it duplicates.
    auth_missing_lines, over_limit_lines, bundled_lines, inactive_lines : dict
        Claim id → the sequences of lines each edit flags (for the fix text).
    """

    claim_ids: list[str]
    patient_ids: list[str]
    X: np.ndarray
    line_X: np.ndarray
    line_row: np.ndarray
    line_sequence: np.ndarray
    rows: np.ndarray
    line_index: np.ndarray
    duplicate_of: dict[str, str]
    auth_missing_lines: dict[str, list[int]]
    over_limit_lines: dict[str, list[int]]
    bundled_lines: dict[str, list[tuple[int, str]]]
    inactive_lines: dict[str, list[int]]

    def column(self, name: str) -> np.ndarray:
        """Return one claim feature column by name."""
        return self.X[:, FEATURE_NAMES.index(name)]


_icd_cache: dict[str, bool] = {}


def _pair(key: str) -> tuple[str, str]:
    system, _, code = key.partition("|")
    return system, code


def _valid_icd10cm(system: str, code: str, *, principal: bool) -> bool:
    """ICD-10-CM code, billable, and (principal) not an external-cause code (V00-Y99)."""
    if system != ICD10CM_SYSTEM or not code:
        return False
    key = f"{code}|{principal}"
    found = _icd_cache.get(key)
    if found is None:
        hit = icd10cm_code(code)
        found = hit is not None and hit[1] and not (principal and hit[0][0] in "VWXY")
        _icd_cache[key] = found
    return found


def _codes(values: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Integer code of each string and the distinct strings (first-seen order)."""
    seen: dict[str, int] = {}
    out = np.fromiter((seen.setdefault(v, len(seen)) for v in values), np.intp, len(values))
    return out, list(seen)


def _per_claim(values: np.ndarray, owners: np.ndarray, n: int) -> np.ndarray:
    """Sum of ``values`` per owning claim (``np.bincount`` with weights)."""
    if len(owners) == 0:
        return np.zeros(n)
    return np.bincount(owners, weights=np.asarray(values, dtype=np.float64), minlength=n)


_HASH_SEED: Final = 20271


def build(ctx: DenialContext) -> DenialFeatures:
    """Compute the claim and line feature matrices of the context's target claims.

    Vectorised over claims and lines with numpy (string columns are coded once to
    integers); only the rare paths (claims sharing a duplicate key, a recorded prior
    authorisation, a bundling component) loop in Python.
    """
    n = ctx.n_claims
    nl = len(ctx.line_claim)
    lc = ctx.line_claim
    f: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------- dates of service
    line_day = ctx.line_day
    first = np.full(n, np.inf)
    through = np.full(n, -np.inf)
    known = ~np.isnan(line_day)
    np.minimum.at(first, lc[known], line_day[known])
    np.maximum.at(through, lc[known], line_day[known])
    first = np.where(np.isfinite(first), first, ctx.billable_start_day)
    through = np.fmax(np.where(np.isfinite(through), through, np.nan), ctx.billable_end_day)
    through = np.fmax(through, ctx.billable_start_day)
    line_when = np.where(known, line_day, first[lc])

    # ---------------------------------------------------------------- contract terms, by payer
    payer_code, payer_names = _codes(ctx.insurer_id)
    terms = [ctx.contracts.get(p) for p in payer_names]
    has_contract_p = np.array([t is not None for t in terms] + [False], dtype=bool)
    limit_p = np.array([t.timely_filing_days if t else np.nan for t in terms] + [np.nan])
    units_p = np.array([t is not None and t.unit_limit_carc is not None for t in terms] + [False])
    bundling_p = np.array([t is None or t.applies_bundling_edits for t in terms] + [True])
    corrected_exempt_p = np.array(
        [t is not None and not t.filing_limit_applies_to_corrected for t in terms] + [False]
    )
    n_auth_p = np.array([len(t.prior_auth_categories) if t else np.nan for t in terms] + [np.nan])
    plan_p = [t.coverage_type_code if t else None for t in terms] + [None]
    class_code, class_names = _codes(ctx.class_code)
    category_index = {cat: i for i, cat in enumerate(CATEGORIES)}
    n_cat = len(CATEGORIES)
    # needs[payer, class, category]: the contract lists the category and the class is not exempt
    needs_pcc = np.zeros((len(terms) + 1, len(class_names) + 1, n_cat + 1), dtype=bool)
    for p, t in enumerate(terms):
        if t is None:
            continue
        for k, klass in enumerate(class_names):
            if klass in t.prior_auth_exempt_classes:
                continue
            for cat in t.prior_auth_categories:
                if cat in category_index:
                    needs_pcc[p, k, category_index[cat]] = True
    has_contract = has_contract_p[payer_code]
    filing_limit = limit_p[payer_code]

    # ---------------------------------------------------------------- coverage
    # the claim's own coverage
    coverage_rows = {cov[0]: cov for covs in ctx.coverages.values() for cov in covs}
    own = [coverage_rows.get(cid) for cid in ctx.coverage_id]
    cov_missing = np.array([o is None for o in own], dtype=bool)
    cov_status_bad = np.array([o is not None and not o[2] for o in own], dtype=bool)
    cov_start = np.array([o[3] if o is not None else np.nan for o in own])
    cov_end = np.array([o[4] if o is not None else np.nan for o in own])
    cov_order = np.array([o[5] if o is not None and o[5] is not None else np.nan for o in own])
    mismatch = np.array(
        [
            o is not None and bool(o[1]) and bool(p) and o[1] != p
            for o, p in zip(own, ctx.insurer_id, strict=True)
        ],
        dtype=bool,
    )
    # the patients' other coverages: one pair per (claim, coverage of the same patient)
    patient_code, patient_names = _codes(ctx.patient_id)
    pair_claim: list[np.ndarray] = []
    pair_cov: list[tuple[str, bool, float, float, float]] = []
    claims_of = np.argsort(patient_code, kind="stable")
    bounds = np.searchsorted(patient_code[claims_of], np.arange(len(patient_names) + 1))
    for p, name in enumerate(patient_names):
        covs = ctx.coverages.get(name)
        if not covs:
            continue
        claim_rows = claims_of[bounds[p] : bounds[p + 1]]
        for cov in covs:
            pair_claim.append(claim_rows)
            pair_cov.extend(
                [(cov[0], cov[2], cov[3], cov[4], np.nan if cov[5] is None else cov[5])]
                * len(claim_rows)
            )
    other_active = np.zeros(n, dtype=bool)
    not_primary = np.zeros(n, dtype=bool)
    if pair_claim:
        pc = np.concatenate(pair_claim)
        p_id = [v[0] for v in pair_cov]
        p_ok = np.array([v[1] for v in pair_cov], dtype=bool)
        p_start = np.array([v[2] for v in pair_cov])
        p_end = np.array([v[3] for v in pair_cov])
        p_order = np.array([v[4] for v in pair_cov])
        is_own = np.array([a == ctx.coverage_id[c] for a, c in zip(p_id, pc.tolist(), strict=True)])
        day = first[pc]
        with np.errstate(invalid="ignore"):
            active = p_ok & ~is_own & ~(day < p_start) & ~(day > p_end)
            lower = active & (cov_order[pc] > 1) & (p_order < cov_order[pc])
        np.logical_or.at(other_active, pc, active)
        np.logical_or.at(not_primary, pc, lower)
    with np.errstate(invalid="ignore"):
        before = np.where(first < cov_start, cov_start - first, 0.0)
        last = np.fmax(through, first)
        after = np.where(last > cov_end, last - cov_end, 0.0)
        line_inactive = (line_when < cov_start[lc]) | (line_when > cov_end[lc])
    line_inactive |= cov_status_bad[lc] | cov_missing[lc]
    cov_inactive = cov_missing | cov_status_bad | (before > 0) | (after > 0)
    cov_inactive |= _per_claim(line_inactive, lc, n) > 0
    f["coverage_missing"] = cov_missing
    f["coverage_inactive"] = cov_inactive
    f["coverage_days_before_start"] = before
    f["coverage_days_after_end"] = after
    f["coverage_payer_mismatch"] = mismatch
    f["coverage_not_primary"] = not_primary
    f["other_coverage_active"] = other_active

    # ---------------------------------------------------------------- lines: codes and categories
    line_key, code_names = _codes(
        [f"{s}|{c}" for s, c in zip(ctx.line_system, ctx.line_code, strict=True)]
    )
    code_pairs = [_pair(k) for k in code_names]
    code_category = np.array(
        [category_index.get(ctx.code_category.get(pair, ""), -1) for pair in code_pairs] + [-1],
        dtype=np.intp,
    )
    code_limit = np.array(
        [ctx.unit_limits.get(pair, DEFAULT_MAX_UNITS_PER_LINE) for pair in code_pairs] + [1],
        dtype=np.float64,
    )
    given_cat = np.array([category_index.get(c, -2) if c else -2 for c in ctx.line_category])
    line_cat = np.where(given_cat == -2, code_category[line_key], given_cat)
    cat_onehot = np.zeros((nl, n_cat))
    ok = line_cat >= 0
    cat_onehot[np.flatnonzero(ok), line_cat[ok]] = 1.0
    claim_cats = np.zeros((n, n_cat))
    np.add.at(claim_cats, lc, cat_onehot)

    # ---------------------------------------------------------------- authorisation
    needs = needs_pcc[payer_code[lc], class_code[lc], np.where(ok, line_cat, n_cat)]
    line_auth_missing = needs & ~ctx.pre_auth[lc]
    for position in np.flatnonzero(needs).tolist():
        c = int(lc[position])
        recorded = ctx.authorizations.get((ctx.patient_id[c], ctx.insurer_id[c]))
        if not recorded:
            continue
        when = line_when[position]
        on = dt.date.fromordinal(int(when) + _EPOCH_ORDINAL) if not math.isnan(when) else None
        keys = [k for k in (CATEGORIES[line_cat[position]], ctx.line_code[position]) if k]
        covering = on is not None and any(
            a.proves() and a.in_window(on) and any(a.covers(k) for k in keys) for a in recorded
        )
        line_auth_missing[position] = not covering and not ctx.pre_auth[c]
    f["auth_required_lines"] = _per_claim(needs, lc, n)
    f["auth_present"] = ctx.pre_auth
    f["auth_missing_lines"] = _per_claim(line_auth_missing, lc, n)

    # ---------------------------------------------------------------- timely filing
    filing_days = np.floor(ctx.submitted_ts / _DAY) - through
    corrected = np.array([bool(r) for r in ctx.related_id], dtype=bool)
    exempt = corrected & corrected_exempt_p[payer_code]
    with np.errstate(invalid="ignore"):
        f["filing_over_limit"] = (filing_days > filing_limit) & ~exempt & has_contract
    f["filing_days"] = filing_days
    f["filing_limit_days"] = filing_limit
    f["filing_margin_days"] = filing_limit - filing_days

    # ---------------------------------------------------------------- diagnoses
    dc = ctx.diag_claim
    n_diag = _per_claim(np.ones(len(dc)), dc, n)
    rank = ctx.diag_sequence - np.where(ctx.diag_principal, 10**9, 0)
    best = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(best, dc, rank)
    is_principal = rank == best[dc]
    diag_key, diag_names = _codes(
        [f"{s}|{c}" for s, c in zip(ctx.diag_system, ctx.diag_code, strict=True)]
    )
    valid_any = np.array(
        [_valid_icd10cm(*_pair(k), principal=False) for k in diag_names] + [False], dtype=bool
    )
    valid_principal = np.array(
        [_valid_icd10cm(*_pair(k), principal=True) for k in diag_names] + [False], dtype=bool
    )
    valid = np.where(is_principal, valid_principal[diag_key], valid_any[diag_key])
    f["n_diagnoses"] = n_diag
    f["diagnosis_missing"] = n_diag == 0
    f["principal_not_valid_icd10cm"] = _per_claim(is_principal & ~valid, dc, n) > 0
    f["secondary_not_valid_icd10cm"] = _per_claim(~is_principal & ~valid, dc, n)
    max_seq = np.zeros(n)
    np.maximum.at(max_seq, dc, ctx.diag_sequence)
    pointer_bad = np.zeros(n)
    for position, pointers in enumerate(ctx.line_pointers):
        if pointers and (max(pointers) > max_seq[lc[position]] or min(pointers) < 1):
            pointer_bad[lc[position]] += 1
    f["diagnosis_pointer_invalid"] = pointer_bad

    # ---------------------------------------------------------------- completeness
    quantity = np.nan_to_num(ctx.line_quantity, nan=0.0)
    no_code = np.array([not code for code in ctx.line_code], dtype=bool)
    incomplete = no_code | ~(quantity > 0) | ~ctx.line_has_charge
    n_lines = _per_claim(np.ones(nl), lc, n)
    f["lines_incomplete"] = _per_claim(incomplete, lc, n) + (n_lines == 0) + np.isnan(first)
    f["provider_missing"] = ctx.provider_missing

    # ---------------------------------------------------------------- units (per code and day)
    limits = code_limit[line_key]
    group_key = np.stack(
        [lc, line_key, np.nan_to_num(line_when, nan=-1e9).astype(np.int64)], axis=1
    )
    if nl:
        _, inverse = np.unique(group_key, axis=0, return_inverse=True)
        group_of = np.asarray(inverse).reshape(-1)
        group_units: np.ndarray = np.bincount(group_of, weights=quantity)[group_of]
    else:
        group_units = np.zeros(0)
    line_over = (group_units > limits) & units_p[payer_code[lc]]
    f["units_over_limit_lines"] = _per_claim(line_over, lc, n)
    ratio = np.zeros(n)
    np.maximum.at(ratio, lc, group_units / limits)
    f["max_units_ratio"] = ratio

    # ---------------------------------------------------------------- bundling
    line_bundled = np.zeros(nl, dtype=bool)
    bundled_with: dict[int, str] = {}
    component = np.array([bool(ctx.bundling.get(code)) for code in ctx.line_code], dtype=bool)
    component &= bundling_p[payer_code[lc]]
    line_start = np.searchsorted(lc, np.arange(n + 1))
    for position in np.flatnonzero(component).tolist():
        c = int(lc[position])
        codes = set(ctx.line_code[line_start[c] : line_start[c + 1]])
        for comprehensive, _carc in ctx.bundling[ctx.line_code[position]]:
            if comprehensive in codes:
                line_bundled[position] = True
                bundled_with[position] = comprehensive
                break
    f["bundled_lines"] = _per_claim(line_bundled, lc, n)

    # ---------------------------------------------------------------- duplicates
    # key: patient, first date of service, the multiset of line codes (order-free hash)
    rng = np.random.default_rng(_HASH_SEED)
    code_hash = rng.integers(1, 2**62, size=len(code_names) + 1, dtype=np.int64)
    claim_hash = np.zeros(n, dtype=np.int64)
    np.add.at(claim_hash, lc, code_hash[line_key])
    dup_key = np.stack(
        [patient_code, np.nan_to_num(first, nan=-1e9).astype(np.int64), claim_hash], axis=1
    )
    _, dup_group, dup_count = np.unique(dup_key, axis=0, return_inverse=True, return_counts=True)
    dup_group = np.asarray(dup_group).reshape(-1)
    candidates = np.flatnonzero((dup_count[dup_group] > 1) & (n_lines > 0) & ~np.isnan(first))
    members_of: dict[int, list[int]] = defaultdict(list)
    for c in candidates.tolist():
        members_of[int(dup_group[c])].append(c)
    duplicate = np.zeros(n, dtype=bool)
    same_day_before = np.zeros(n)
    duplicate_of: dict[str, str] = {}
    index = {cid: i for i, cid in enumerate(ctx.claim_id)}
    for group_members in members_of.values():
        members = list(group_members)
        roots = {m: _root(m, ctx.claim_id, ctx.related_id, index) for m in members}
        for c in members:
            earlier = sorted(
                (ctx.submitted_ts[o], ctx.claim_id[o], o)
                for o in members
                if o != c and ctx.submitted_ts[o] < ctx.submitted_ts[c]
            )
            for _when, other_id, o in earlier:
                if roots[o] == roots[c]:
                    continue
                if (
                    ctx.related_id[c]
                    and ctx.control_number[c]
                    and ctx.control_number[o] == ctx.control_number[c]
                ):
                    continue
                same_day_before[c] += 1
                if not duplicate[c]:
                    duplicate[c] = True
                    duplicate_of[ctx.claim_id[c]] = other_id
    f["duplicate"] = duplicate
    f["same_day_claims_before"] = same_day_before

    # ---------------------------------------------------------------- context
    for plan in PLAN_TYPES:
        f[f"plan_{plan.lower()}"] = np.array([p == plan for p in plan_p])[payer_code]
    f["payer_auth_categories"] = n_auth_p[payer_code]
    for klass in CLASSES:
        f[f"class_{klass.lower()}"] = (
            np.array([k == klass for k in class_names])[class_code] if n else np.zeros(0)
        )
    f["priority_stat"] = ctx.priority_stat
    for i, cat in enumerate(CATEGORIES):
        f[f"lines_{cat}"] = claim_cats[:, i]
    f["n_lines"] = n_lines
    f["total_units"] = _per_claim(quantity, lc, n)
    total = np.where(np.isnan(ctx.total), 0.0, ctx.total)
    # amounts and rates are rounded (1 % of an amount, 0.1 % of a rate): no loss for a
    # biller, and far fewer distinct values to explain in a batch
    f["log_total"] = np.round(np.log1p(np.maximum(total, 0.0)), 2)
    max_line = np.zeros(n)
    np.maximum.at(max_line, lc, ctx.line_net)
    f["log_max_line"] = np.round(np.log1p(np.maximum(max_line, 0.0)), 2)
    f["corrected"] = corrected

    # ---------------------------------------------------------------- history (before submission)
    answered = np.array([cid in ctx.responses for cid in ctx.claim_id], dtype=bool)
    answer_ts = np.array(
        [
            ctx.responses[cid][0] if a else np.nan
            for cid, a in zip(ctx.claim_id, answered, strict=True)
        ]
    )
    answer_denied = np.array(
        [
            ctx.responses[cid][1] if a else False
            for cid, a in zip(ctx.claim_id, answered, strict=True)
        ],
        dtype=bool,
    )
    scale = 1e10  # seconds since 1970 stay below 1e10 until the year 2286
    order = np.flatnonzero(answered)
    keys = patient_code[order] * scale + answer_ts[order]
    sort = np.argsort(keys, kind="stable")
    keys = keys[sort]
    denied_cum = np.concatenate([[0], np.cumsum(answer_denied[order][sort])])
    upper = np.searchsorted(keys, patient_code * scale + ctx.submitted_ts, side="left")
    lower = np.searchsorted(keys, patient_code * scale - 1.0, side="left")
    prior_claims = (upper - lower).astype(np.float64)
    prior_denials = (denied_cum[upper] - denied_cum[lower]).astype(np.float64)
    original_denied = np.zeros(n, dtype=bool)
    for c in np.flatnonzero(corrected).tolist():
        original = ctx.responses.get(ctx.related_id[c])
        original_denied[c] = (
            original is not None and original[1] and original[0] < ctx.submitted_ts[c]
        )
    payer_rate = np.full(n, _PAYER_PRIOR[0] / _PAYER_PRIOR[1])
    for p, payer in enumerate(payer_names):
        ts = ctx.payer_response_ts.get(payer)
        if ts is None:
            continue
        mine = payer_code == p
        seen = np.searchsorted(ts, ctx.submitted_ts[mine], side="left")
        denied_seen = ctx.payer_response_denied[payer][seen]
        payer_rate[mine] = (denied_seen + _PAYER_PRIOR[0]) / (seen + _PAYER_PRIOR[1])
    f["original_denied"] = original_denied
    f["patient_prior_claims"] = prior_claims
    f["patient_prior_denials"] = prior_denials
    f["patient_prior_denial_rate"] = np.round((prior_denials + 0.11) / (prior_claims + 1.0), 3)
    f["payer_prior_denial_rate"] = np.round(payer_rate, 3)

    X_all = np.empty((n, len(FEATURE_NAMES)))
    for i, name in enumerate(FEATURE_NAMES):
        X_all[:, i] = f[name]
    rows = np.flatnonzero(ctx.target)
    X = X_all[rows]

    # ---------------------------------------------------------------- lines of the targets
    li = np.flatnonzero(ctx.target[lc])
    row_of_claim = np.full(n, -1, dtype=np.intp)
    row_of_claim[rows] = np.arange(len(rows))
    owner = lc[li]
    safe_total = np.where(total > 0, total, 1.0)
    own_columns = [
        ctx.line_sequence[li] == 1,
        *(cat_onehot[li, i] for i in range(n_cat)),
        quantity[li],
        limits[li],
        line_over[li],
        line_bundled[li],
        needs[li],
        line_auth_missing[li],
        line_inactive[li],
        np.log1p(np.maximum(ctx.line_net[li], 0.0)),
        np.where(total[owner] > 0, ctx.line_net[li] / safe_total[owner], 0.0),
    ]
    line_X = np.empty((len(li), len(LINE_FEATURE_NAMES)))
    line_X[:, : len(FEATURE_NAMES)] = X_all[owner]
    for j, column in enumerate(own_columns, start=len(FEATURE_NAMES)):
        line_X[:, j] = column

    target_line = ctx.target[lc]

    def per_claim(mask: np.ndarray) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(list)
        for position in np.flatnonzero(mask & target_line).tolist():
            out[ctx.claim_id[lc[position]]].append(int(ctx.line_sequence[position]))
        return dict(out)

    bundled_lines: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for position, comprehensive in bundled_with.items():
        c = int(lc[position])
        if ctx.target[c]:
            bundled_lines[ctx.claim_id[c]].append((int(ctx.line_sequence[position]), comprehensive))
    return DenialFeatures(
        claim_ids=[ctx.claim_id[r] for r in rows],
        patient_ids=[ctx.patient_id[r] for r in rows],
        X=X,
        line_X=line_X,
        line_row=row_of_claim[owner],
        line_sequence=ctx.line_sequence[li],
        rows=rows,
        line_index=li,
        duplicate_of={k: v for k, v in duplicate_of.items() if ctx.target[index[k]]},
        auth_missing_lines=per_claim(line_auth_missing),
        over_limit_lines=per_claim(line_over),
        bundled_lines=dict(bundled_lines),
        inactive_lines=per_claim(line_inactive & ~cov_missing[lc]),
    )


def _root(claim: int, ids: list[str], related: list[str], index: dict[str, int]) -> str:
    """Return the first claim of a correction chain (``related_claim_id`` links), by id."""
    seen = {claim}
    current = claim
    while related[current]:
        parent = index.get(related[current])
        if parent is None:
            return related[current]
        if parent in seen:
            break
        seen.add(parent)
        current = parent
    return ids[current]
