"""Claims: build from an encounter's charges, scrub before submission, and the lifecycle.

* :func:`build_claim` turns an encounter's billable ``ChargeItem``s into a draft
  :class:`~healthos_core.billing.entities.Claim` to the primary payer active on the date of
  service, with the encounter's diagnoses (ICD-10-CM where the record has it) and the prior
  authorisation references the payer's contract needs.
* :func:`scrub_claim` runs the edits of :data:`SCRUBBER_EDITS` and returns each problem as a
  :class:`ClaimIssue` with the X12 CARC (and RARC) the payer would answer with.
* :func:`submit_claim`, :func:`record_adjudication_status`, :func:`correct_and_resubmit`,
  :func:`appeal_claim` and :func:`write_off_claim` move a claim through the states of
  :data:`TRANSITIONS` (SPEC §4: draft → submitted → paid / partial / denied →
  resubmitted / appealed / written-off), each appending a
  :class:`~healthos_core.billing.entities.ClaimStatusHistory` row (who, role, when, why).

Reference data shipped in ``healthos_core/data`` (see its README): the ICD-10-CM FY2026
code list (CDC/NCHS, public domain) and the CMS NCCI Medically Unlikely Edits for
practitioner services (Medicaid, 2026 Q1). Functions take the session first, flush and
never commit; money is ``Decimal``; times are aware UTC.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import gzip
import io
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.billing.entities import (
    ChargeItem,
    ChargeItemStatus,
    ChargemasterEntry,
    Claim,
    ClaimBillingStatus,
    ClaimDiagnosis,
    ClaimItem,
    ClaimStatusHistory,
)
from healthos_core.billing.ledger import claim_open_balance, post_claim_charge
from healthos_core.billing.ledger import write_off_claim as ledger_write_off_claim
from healthos_core.billing.payers import (
    DEFAULT_MAX_UNITS_PER_LINE,
    BundlingEdit,
    Contract,
    PriorAuthorization,
    ServiceCode,
    check_eligibility,
    coverage_active_on,
    coverage_order,
    find_valid_authorization,
    pick_service_code,
)
from healthos_core.db import utcnow
from healthos_core.errors import ConflictError, InvalidInputError, NotFoundError
from healthos_core.events import ClaimChanged, EventBus, default_bus
from healthos_core.record.entities import (
    Condition,
    Coverage,
    Encounter,
    EncounterClass,
    Procedure,
)

__all__ = [
    "CPT_SYSTEMS",
    "HCPCS_SYSTEMS",
    "ICD10CM_SYSTEM",
    "SCRUBBER_EDITS",
    "TRANSITIONS",
    "ClaimIssue",
    "DiagnosisInput",
    "EditInfo",
    "IssueSeverity",
    "ScrubFailedError",
    "appeal_claim",
    "build_claim",
    "claim_history",
    "correct_and_resubmit",
    "icd10cm_code",
    "list_claims",
    "mue_limit",
    "record_adjudication_status",
    "scrub_claim",
    "scrub_claims",
    "submit_claim",
    "write_off_claim",
]

ICD10CM_SYSTEM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
#: HCPCS Level II (FHIR R4 terminology URI, its https form, and the OID).
HCPCS_SYSTEMS: Final = frozenset(
    {
        "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
        "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
        "urn:oid:2.16.840.1.113883.6.285",
    }
)
#: CPT (HCPCS Level I), which the NCCI MUE table also lists.
CPT_SYSTEMS: Final = frozenset({"http://www.ama-assn.org/go/cpt", "urn:oid:2.16.840.1.113883.6.12"})

_CENT: Final = Decimal("0.01")
_CHUNK: Final = 500
_PCN_SYSTEM: Final = "https://hospital-os.example/fhir/sid/patient-control-number"
_CATEGORY_SYSTEM: Final = "https://hospital-os.example/fhir/CodeSystem/service-category"
_REVENUE_SYSTEM: Final = "https://www.nubc.org/CodeSystem/RevenueCodes"
_DIAGNOSIS_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/ex-diagnosistype"
_RELATED_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship"
_CLAIM_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/claim-type"
_PRIORITY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/processpriority"
#: Condition verification statuses that are not diagnoses to bill.
_NOT_DIAGNOSES: Final = frozenset({"refuted", "entered-in-error"})


# --------------------------------------------------------------------------- code sets


@cache
def _icd10cm() -> dict[str, tuple[str, bool]]:
    """``{code without dot: (code with dot, billable)}`` of ICD-10-CM FY2026 (April 2026)."""
    path = resources.files("healthos_core") / "data" / "icd10cm" / "icd10cm_2026_april_codes.csv.gz"
    with gzip.open(io.BytesIO(path.read_bytes()), "rt", encoding="utf-8") as handle:
        return {
            row["code"].replace(".", ""): (row["code"], row["billable"] == "1")
            for row in csv.DictReader(handle)
        }


@cache
def _billable_prefixes() -> dict[str, list[str]]:
    """Header code (no dot) → its billable descendants (dotted), for fix suggestions."""
    children: dict[str, list[str]] = defaultdict(list)
    codes = _icd10cm()
    for nodot, (dotted, billable) in codes.items():
        if not billable:
            continue
        for length in range(3, len(nodot)):
            prefix = nodot[:length]
            if prefix in codes and not codes[prefix][1]:
                children[prefix].append(dotted)
    return dict(children)


def icd10cm_code(code: str) -> tuple[str, bool] | None:
    """Look up an ICD-10-CM code (with or without its dot).

    Parameters
    ----------
    code : str
        E.g. ``"E11.9"`` or ``"E119"``.

    Returns
    -------
    tuple of (str, bool) or None
        ``(code with dot, billable)``, or ``None`` when the code is not in the FY2026
        code set (CDC/NCHS ICD-10-CM April 1, 2026 update, shipped in
        ``healthos_core/data/icd10cm``). Only billable (leaf) codes are valid on a claim.

    Examples
    --------
    >>> icd10cm_code("E119")
    ('E11.9', True)
    >>> icd10cm_code("E11")
    ('E11', False)
    >>> icd10cm_code("E11.99") is None
    True
    """
    return _icd10cm().get(code.strip().upper().replace(".", ""))


@cache
def _mue() -> dict[str, tuple[int, str]]:
    """``{HCPCS/CPT code: (MUE units per date of service, rationale)}``."""
    path = (
        resources.files("healthos_core")
        / "data"
        / "ncci-mue"
        / "mue_practitioner_medicaid_2026q1.csv.gz"
    )
    with gzip.open(io.BytesIO(path.read_bytes()), "rt", encoding="utf-8") as handle:
        return {
            row["hcpcs_code"].strip().upper(): (int(row["mue_value"]), row["mue_rationale"])
            for row in csv.DictReader(handle)
        }


def mue_limit(code: str) -> int | None:
    """Return the CMS NCCI MUE of a HCPCS/CPT code: maximum units per date of service.

    Source: CMS Medicaid NCCI MUE, practitioner services, 2026 Q1 (a code-prefix subset,
    8,253 codes; ``healthos_core/data/ncci-mue``). ``None`` means the code is not in the
    table, not that it is unlimited.

    Examples
    --------
    >>> mue_limit("20100")
    2
    """
    found = _mue().get(code.strip().upper())
    return found[0] if found else None


# --------------------------------------------------------------------------- issues


class IssueSeverity(enum.StrEnum):
    """How serious a scrubber issue is.

    ``error``: the payer is expected to deny or reject; fix before submitting.
    ``warning``: review; the claim can go.
    """

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class ClaimIssue:
    """One problem the scrubber found.

    Attributes
    ----------
    edit : str
        The edit's id (a key of :data:`SCRUBBER_EDITS`).
    severity : str
        :class:`IssueSeverity` value.
    sequence : int or None
        The claim line (``ClaimItem.sequence``), or ``None`` for the whole claim.
    message : str
        What is wrong and what to do.
    carc : str or None
        The X12 Claim Adjustment Reason Code the payer would deny with.
    rarc : str or None
        The X12 Remittance Advice Remark Code that usually comes with it.
    group_code : str or None
        The CAS group code (CO contractual, OA other).
    evidence : tuple of str
        ``"Type/id"`` references the finding rests on.
    """

    edit: str
    severity: str
    sequence: int | None
    message: str
    carc: str | None
    rarc: str | None = None
    group_code: str | None = "CO"
    evidence: tuple[str, ...] = ()

    @property
    def is_error(self) -> bool:
        """Whether the issue blocks submission."""
        return self.severity == IssueSeverity.ERROR

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "edit": self.edit,
            "severity": self.severity,
            "sequence": self.sequence,
            "message": self.message,
            "carc": self.carc,
            "rarc": self.rarc,
            "group_code": self.group_code,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class EditInfo:
    """What a scrubber edit checks, the CARC it predicts, and the source of the rule."""

    id: str
    carc: str | None
    rarc: str | None
    description: str
    source: str


#: Every scrubber edit, in the order they run. ``docs/claims.md`` explains each.
SCRUBBER_EDITS: Final[dict[str, EditInfo]] = {
    e.id: e
    for e in (
        EditInfo(
            "coverage-inactive",
            "27",
            "N30",
            "The claim's coverage is not in force on the date of service (26 before its start, "
            "27 after its end or not active, 31 no coverage on the claim).",
            "X12 CARC 26/27/31; FHIR Coverage.period (inclusive); synthea-rcm coverage.",
        ),
        EditInfo(
            "coverage-payer-mismatch",
            "109",
            None,
            "The claim's insurer is not the payer of the claim's coverage.",
            "X12 CARC 109 (claim not covered by this payer: send it to the correct payer).",
        ),
        EditInfo(
            "coverage-not-primary",
            "22",
            "MA04",
            "The claim goes to a secondary coverage while a primary one is active.",
            "FHIR Coverage.order; X12 CARC 22 (coordination of benefits); synthea-rcm README "
            "'claims go to the primary only'.",
        ),
        EditInfo(
            "contract-missing",
            None,
            None,
            "No contract is loaded for the payer: filing limit, prior-authorisation and "
            "unit-limit edits cannot run (warning).",
            "HealthOS.",
        ),
        EditInfo(
            "authorization-missing",
            "197",
            "M62",
            "A line whose service category the contract lists in prior_auth_categories has no "
            "valid authorisation (emergency encounters exempt); N54 when the reference given "
            "does not cover the service.",
            "Payer contract (contracts.csv prior_auth_categories / prior_auth_exemptions); "
            "X12 CARC 197 (CARC 15 is deactivated), RARC M62 / N54.",
        ),
        EditInfo(
            "filing-limit",
            "29",
            None,
            "Days from the date of service (the through date) to submission exceed the "
            "payer's timely_filing_days; corrected claims exempt where the contract says so.",
            "Contract timely_filing_days; 42 CFR 424.44 and CMS Pub. 100-04 ch. 1 §70 "
            "(Medicare 12 months, through date on institutional claims); X12 CARC 29.",
        ),
        EditInfo(
            "provider-missing",
            "16",
            "N257",
            "The claim names no billing provider.",
            "X12 837I billing provider (loop 2010AA) is required; CARC 16 + RARC N257.",
        ),
        EditInfo(
            "line-incomplete",
            "16",
            "M53",
            "The claim has no line or no date of service, or a line lacks a code, units or a "
            "charge.",
            "X12 837I service line (SV2) requirements; CARC 16 + RARC M20 / M53.",
        ),
        EditInfo(
            "diagnosis-missing",
            "16",
            "M76",
            "The claim carries no diagnosis.",
            "X12 837I principal diagnosis (HI segment) is required; CARC 16 + RARC M76.",
        ),
        EditInfo(
            "diagnosis-not-icd10cm",
            "16",
            "M76",
            "A diagnosis has no ICD-10-CM code (e.g. SNOMED CT only): an error for the "
            "principal diagnosis, a warning for the others (they cannot be sent on an 837).",
            "HIPAA code set rule 45 CFR 162.1002 (ICD-10-CM for diagnoses); CARC 16 + M76.",
        ),
        EditInfo(
            "diagnosis-invalid",
            "16",
            "M76",
            "A diagnosis code is not in the ICD-10-CM code set, is a non-billable header "
            "(RARC M81: code to the highest specificity), or is an external-cause code "
            "(V00-Y99) given as principal.",
            "CDC/NCHS ICD-10-CM FY2026 code set; ICD-10-CM Official Guidelines I.B.1 and "
            "I.C.20; CARC 16 + RARC M76 / M81.",
        ),
        EditInfo(
            "diagnosis-pointer",
            "16",
            "M76",
            "A line points to a diagnosis sequence that is not on the claim.",
            "FHIR Claim.item.diagnosisSequence; CARC 16 + RARC M76.",
        ),
        EditInfo(
            "duplicate",
            "18",
            None,
            "An earlier claim of the same patient has the same date of service and the same "
            "codes and is not in this claim's correction chain (a corrected claim is not "
            "compared with earlier submissions of its own encounter, same patient control "
            "number).",
            "X12 CARC 18 'Exact duplicate claim/service' (group OA).",
        ),
        EditInfo(
            "units-over-mue",
            "151",
            "N362",
            "Units of a HCPCS/CPT code on one date of service exceed the CMS MUE.",
            "CMS NCCI Medically Unlikely Edits (Medicaid practitioner, 2026 Q1); CARC 151 + "
            "RARC N362.",
        ),
        EditInfo(
            "units-over-limit",
            "151",
            "N362",
            "Units of a code on one date of service exceed the payer's maximum per line "
            "(ServiceCode.max_units_per_line; a code not listed has a limit of 1); CARC as "
            "the contract's unit_limit_policy (151 deny line, 119 deny excess + N640).",
            "Payer unit-limit policy (unit_limits.csv, contracts.csv unit_limit_policy).",
        ),
        EditInfo(
            "bundled",
            "97",
            "M15",
            "A component code is billed with its comprehensive code on the same claim.",
            "Payer bundling edits (bundling_edits.csv); X12 CARC 97 + RARC M15.",
        ),
    )
}


class ScrubFailedError(ConflictError):
    """A claim cannot be submitted: the scrubber found errors (listed in ``issues``)."""

    code = "claim-scrub-failed"

    def __init__(self, claim_id: str, issues: Sequence[ClaimIssue]) -> None:
        shown = "; ".join(
            f"{i.edit}{f' (line {i.sequence})' if i.sequence is not None else ''}: {i.message}"
            for i in issues[:5]
        )
        more = f"; … and {len(issues) - 5} more" if len(issues) > 5 else ""
        super().__init__(
            f"Claim/{claim_id} not submitted: {len(issues)} scrubber error"
            f"{'s' if len(issues) != 1 else ''}: {shown}{more}. Fix them, or pass "
            "override_edits with a reason"
        )
        self.claim_id = claim_id
        self.issues = list(issues)

    def problem_extensions(self) -> dict[str, Any]:
        """Return the claim id and the blocking issues (each :meth:`ClaimIssue.to_dict`)."""
        return {"claim_id": self.claim_id, "issues": [i.to_dict() for i in self.issues]}


# --------------------------------------------------------------------------- small helpers


def _aware(value: dt.datetime | None, name: str) -> dt.datetime:
    if value is None:
        return utcnow()
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{name} must be an aware datetime, got {value!r}")
    return value.astimezone(dt.UTC)


def _utc_day(value: dt.datetime | None) -> dt.date | None:
    return value.astimezone(dt.UTC).date() if value is not None else None


def _json_number(value: Decimal) -> int | float:
    """Return a JSON number for a FHIR resource (2-decimal amounts round-trip exactly)."""
    return int(value) if value == value.to_integral_value() else float(value)


def _require_text(value: str | None, name: str, what: str) -> str:
    if value is None or not str(value).strip():
        raise InvalidInputError(f"{name} is empty: {what}")
    return str(value).strip()


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _get_claim(session: Session, claim_id: str) -> Claim:
    claim = session.get(Claim, claim_id)
    if claim is None:
        raise NotFoundError(f"Claim/{claim_id} does not exist")
    return claim


def _diagnoses_of(session: Session, claim_id: str) -> list[ClaimDiagnosis]:
    return list(
        session.scalars(
            select(ClaimDiagnosis)
            .where(ClaimDiagnosis.claim_id == claim_id)
            .order_by(ClaimDiagnosis.sequence)
        )
    )


def _pre_auth_refs(claim: Claim) -> list[str]:
    """Every prior-authorisation reference the claim carries (column and resource)."""
    refs: list[str] = []
    if claim.pre_auth_ref:
        refs.append(claim.pre_auth_ref)
    for insurance in (claim.resource or {}).get("insurance") or []:
        for ref in insurance.get("preAuthRef") or []:
            if isinstance(ref, str) and ref not in refs:
                refs.append(ref)
    return refs


# --------------------------------------------------------------------------- FHIR form


def _concept(system: str | None, code: str | None, display: str | None) -> dict[str, Any]:
    coding = {k: v for k, v in (("system", system), ("code", code), ("display", display)) if v}
    concept: dict[str, Any] = {"coding": [coding]} if code else {}
    if display:
        concept["text"] = display
    return concept or {"text": "unknown"}


def _money(amount: Decimal | None, currency: str | None) -> dict[str, Any] | None:
    if amount is None:
        return None
    value: dict[str, Any] = {"value": _json_number(amount)}
    if currency:
        value["currency"] = currency
    return value


def _fhir_claim(
    claim: Claim, items: Sequence[ClaimItem], diagnoses: Sequence[ClaimDiagnosis]
) -> dict[str, Any]:
    """Return the FHIR R4 Claim of a claim HealthOS built (kept in ``Claim.resource``)."""
    refs = _pre_auth_refs(claim)
    insurance: dict[str, Any] = {
        "sequence": 1,
        "focal": True,
        "coverage": {"reference": f"Coverage/{claim.coverage_id}"}
        if claim.coverage_id
        else {"display": claim.coverage_display or "coverage not recorded"},
    }
    if refs:
        insurance["preAuthRef"] = refs
    resource: dict[str, Any] = {
        "resourceType": "Claim",
        "id": claim.id,
        "status": claim.status,
        "type": {"coding": [{"system": _CLAIM_TYPE_SYSTEM, "code": claim.type_code}]},
        "use": claim.use,
        "patient": {"reference": f"Patient/{claim.patient_id}"},
        "created": (claim.created or utcnow()).isoformat(),
        "provider": {"reference": f"Organization/{claim.provider_id}"}
        if claim.provider_id
        else {"display": "provider not recorded"},
        "priority": {"coding": [{"system": _PRIORITY_SYSTEM, "code": claim.priority or "normal"}]},
        "insurance": [insurance],
    }
    if claim.patient_control_number:
        resource["identifier"] = [{"system": _PCN_SYSTEM, "value": claim.patient_control_number}]
    period = {
        k: v.isoformat()
        for k, v in (("start", claim.billable_start), ("end", claim.billable_end))
        if v is not None
    }
    if period:
        resource["billablePeriod"] = period
    if claim.insurer_id:
        resource["insurer"] = {"reference": f"Organization/{claim.insurer_id}"}
    if claim.related_claim_id:
        resource["related"] = [
            {
                "claim": {"reference": f"Claim/{claim.related_claim_id}"},
                "relationship": {"coding": [{"system": _RELATED_SYSTEM, "code": "prior"}]},
            }
        ]
    if diagnoses:
        resource["diagnosis"] = [
            {
                "sequence": d.sequence,
                "diagnosisCodeableConcept": _concept(d.code_system, d.code, d.display),
                **(
                    {
                        "type": [
                            {"coding": [{"system": _DIAGNOSIS_TYPE_SYSTEM, "code": d.type_code}]}
                        ]
                    }
                    if d.type_code
                    else {}
                ),
            }
            for d in diagnoses
        ]
    procedures = sorted({i.procedure_id for i in items if i.procedure_id})
    if procedures:
        resource["procedure"] = [
            {"sequence": n, "procedureReference": {"reference": f"Procedure/{pid}"}}
            for n, pid in enumerate(procedures, start=1)
        ]
    out_items = []
    for item in items:
        line: dict[str, Any] = {
            "sequence": item.sequence,
            "productOrService": _concept(item.code_system, item.code, item.display),
        }
        if item.diagnosis_sequence:
            line["diagnosisSequence"] = list(item.diagnosis_sequence)
        if item.procedure_id:
            line["procedureSequence"] = [procedures.index(item.procedure_id) + 1]
        if item.revenue_code:
            line["revenue"] = {"coding": [{"system": _REVENUE_SYSTEM, "code": item.revenue_code}]}
        if item.category:
            line["category"] = {"coding": [{"system": _CATEGORY_SYSTEM, "code": item.category}]}
        if item.modifiers:
            line["modifier"] = [{"coding": [{"code": str(m)}]} for m in item.modifiers]
        if item.service_date:
            line["servicedDate"] = item.service_date.isoformat()
        if item.quantity is not None:
            line["quantity"] = {"value": _json_number(item.quantity)}
        for key, amount in (("unitPrice", item.unit_price), ("net", item.net)):
            money = _money(amount, claim.currency)
            if money:
                line[key] = money
        if item.encounter_id:
            line["encounter"] = [{"reference": f"Encounter/{item.encounter_id}"}]
        out_items.append(line)
    if out_items:
        resource["item"] = out_items
    total = _money(claim.total, claim.currency)
    if total:
        resource["total"] = total
    return resource


# --------------------------------------------------------------------------- build


@dataclass(frozen=True)
class DiagnosisInput:
    """A diagnosis to put on a claim (for :func:`correct_and_resubmit`).

    Parameters
    ----------
    code : str
        The code, e.g. ``"E11.9"``.
    code_system : str, default ICD-10-CM
    display : str, optional
    condition_id : str, optional
        The Condition it comes from.
    """

    code: str
    code_system: str = ICD10CM_SYSTEM
    display: str | None = None
    condition_id: str | None = None


def _condition_coding(condition: Condition) -> tuple[str | None, str | None, str | None]:
    """Return a Condition's ICD-10-CM coding if the record has one, else its own coding."""
    if condition.code_system == ICD10CM_SYSTEM and condition.code:
        return ICD10CM_SYSTEM, condition.code, condition.display
    for coding in ((condition.resource or {}).get("code") or {}).get("coding") or []:
        if (
            isinstance(coding, dict)
            and coding.get("system") == ICD10CM_SYSTEM
            and coding.get("code")
        ):
            return ICD10CM_SYSTEM, str(coding["code"]), coding.get("display")
    return condition.code_system, condition.code, condition.display


def _encounter_reason(encounter: Encounter) -> tuple[str | None, str | None, str | None] | None:
    concepts = (encounter.resource or {}).get("reasonCode") or []
    codings = [
        c
        for concept in concepts
        if isinstance(concept, dict)
        for c in concept.get("coding") or []
        if isinstance(c, dict) and c.get("code")
    ]
    for coding in codings:
        if coding.get("system") == ICD10CM_SYSTEM:
            return ICD10CM_SYSTEM, str(coding["code"]), coding.get("display")
    if codings:
        return codings[0].get("system"), str(codings[0]["code"]), codings[0].get("display")
    if encounter.reason_code:
        return None, encounter.reason_code, None
    return None


def _claim_diagnoses(
    session: Session, encounter: Encounter
) -> tuple[list[tuple[str | None, str | None, str | None, str | None]], dict[str, int]]:
    """``[(system, code, display, condition_id)]`` principal first, and condition → sequence."""
    conditions = [
        c
        for c in session.scalars(
            select(Condition).where(Condition.encounter_id == encounter.id).order_by(Condition.id)
        )
        if c.verification_status not in _NOT_DIAGNOSES
    ]
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    conditions.sort(
        key=lambda c: (
            0 if encounter.reason_code and c.code == encounter.reason_code else 1,
            c.recorded_at or c.onset_at or far,
            c.id,
        )
    )
    out: list[tuple[str | None, str | None, str | None, str | None]] = []
    sequence_of: dict[str, int] = {}
    seen: dict[tuple[str | None, str | None], int] = {}
    for condition in conditions:
        system, code, display = _condition_coding(condition)
        if not code:
            continue
        key = (system, code)
        if key in seen:
            sequence_of[condition.id] = seen[key]
            continue
        out.append((system, code, display, condition.id))
        seen[key] = len(out)
        sequence_of[condition.id] = len(out)
    if not out:
        reason = _encounter_reason(encounter)
        if reason is not None:
            out.append((*reason, None))
    return out, sequence_of


def _procedure_reason_sequence(
    session: Session, procedure_id: str | None, sequence_of: Mapping[str, int]
) -> int | None:
    if procedure_id is None:
        return None
    procedure = session.get(Procedure, procedure_id)
    for reason in (procedure.resource or {}).get("reasonReference") or [] if procedure else []:
        reference = str((reason or {}).get("reference", ""))
        if reference.startswith("Condition/"):
            found = sequence_of.get(reference.split("/", 1)[1])
            if found is not None:
                return found
    return None


def _service_codes(
    session: Session, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[ServiceCode]]:
    wanted = set(keys)
    found: dict[tuple[str, str], list[ServiceCode]] = defaultdict(list)
    for chunk in _chunks(sorted({code for _, code in wanted})):
        for row in session.scalars(
            select(ServiceCode).where(ServiceCode.code.in_(chunk)).order_by(ServiceCode.id)
        ):
            if (row.code_system, row.code) in wanted:
                found[(row.code_system, row.code)].append(row)
    return dict(found)


def _patient_control_number(encounter_id: str) -> str:
    """One per encounter, kept on corrected claims (synthea-rcm: ``PCN`` + 12 hex digits)."""
    return "PCN" + encounter_id.replace("-", "")[:12].upper()


def _history(
    session: Session,
    claim: Claim,
    to_status: str,
    *,
    actor: str,
    role: str | None,
    reason: str | None,
    at: dt.datetime,
    bus: EventBus | None,
) -> ClaimStatusHistory:
    """Record ``claim``'s move to ``to_status`` and publish :class:`ClaimChanged` on ``bus``.

    The event goes through the caller's transaction to the outbox (when the live path is
    wired), so the claim's denial risk is rescored once the change commits.
    """
    row = ClaimStatusHistory(
        claim_id=claim.id,
        from_status=claim.billing_status,
        to_status=to_status,
        actor=actor[:128],
        role=role[:32] if role else None,
        reason=reason[:512] if reason else None,
        at=at,
    )
    session.add(row)
    claim.billing_status = to_status
    (bus if bus is not None else default_bus()).publish(
        ClaimChanged(claim=claim, change=to_status), session
    )
    return row


def build_claim(
    session: Session,
    *,
    encounter_id: str,
    actor: str,
    role: str | None = None,
    coverage_id: str | None = None,
    claim_type: str = "institutional",
    modifiers: Mapping[str, Sequence[str]] | None = None,
    at: dt.datetime | None = None,
    bus: EventBus | None = None,
) -> Claim:
    """Build a draft claim from an encounter's billable charges.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
    encounter_id : str
    actor : str
        Who builds it (recorded in the claim's status history).
    role : str, optional
        The actor's role (e.g. ``"biller"``).
    coverage_id : str, optional
        Bill this coverage of the patient. Default: the primary coverage active on the
        first date of service (:func:`~healthos_core.billing.payers.check_eligibility`).
        A coverage given explicitly is used even if inactive; the scrubber reports it.
    claim_type : str, default="institutional"
        FHIR claim-type code (``institutional`` for hospital claims, ``professional``…).
    modifiers : mapping of str to sequence of str, optional
        Procedure modifiers (e.g. ``["59"]``) a coder applied, keyed by ChargeItem id.
    at : aware datetime, optional
        Creation time (``Claim.created``); default now.
    bus : EventBus, optional
        Where the :class:`~healthos_core.events.ClaimChanged` event goes (to the outbox
        when the live path is wired); default :func:`~healthos_core.events.default_bus`.

    Returns
    -------
    Claim
        ``billing_status`` ``draft``, one line per billable ChargeItem (the encounter's
        own charge first, then by service time): code, modifiers, units (quantity), unit
        price, net, service date (UTC day of the charge), service category and NUBC
        revenue code (:class:`~healthos_core.billing.payers.ServiceCode`, else the
        chargemaster entry), procedure, and diagnosis pointers (the condition a procedure
        was done for, else the principal diagnosis). Diagnoses come from the encounter's
        Conditions (ICD-10-CM where the record has a coding in it; otherwise the
        Condition's own code, e.g. SNOMED CT, which the scrubber flags), principal first
        (the Condition matching the encounter's reason), or from the encounter's reason
        code when it has no Condition. ``pre_auth_ref`` carries the reference of each
        valid authorisation the payer's contract needs for a line (all of them in the
        FHIR resource's ``insurance.preAuthRef``). The ChargeItems become ``billed``; a
        ``ClaimStatusHistory`` row records who built it.

    Raises
    ------
    NotFoundError
        No such encounter or coverage.
    ConflictError
        The encounter has no billable charge, or no coverage is active on the date of
        service and none was given, or the coverage names no payer Organization.
    InvalidInputError
        Charges in different currencies, a charge without a service date when the
        encounter has none either, a coverage of another patient, or a bad argument.
        Nothing is written.
    """
    actor = _require_text(actor, "actor", "say who builds the claim")
    created = _aware(at, "at")
    encounter = session.get(Encounter, encounter_id)
    if encounter is None:
        raise NotFoundError(f"Encounter/{encounter_id} does not exist")
    charges = list(
        session.scalars(
            select(ChargeItem).where(
                ChargeItem.encounter_id == encounter_id,
                ChargeItem.status == ChargeItemStatus.BILLABLE.value,
            )
        )
    )
    if not charges:
        raise ConflictError(
            f"Encounter/{encounter_id} has no billable charge: nothing to claim (charges "
            "already on a claim are 'billed')"
        )
    own = f"Encounter/{encounter_id}"
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    charges.sort(
        key=lambda c: (0 if c.service_ref == own else 1, c.occurred_at or far, c.entered_at, c.id)
    )
    currencies = sorted({c.currency for c in charges})
    if len(currencies) > 1:
        raise InvalidInputError(
            f"Encounter/{encounter_id} has charges in {', '.join(currencies)}: a claim has "
            "one currency; correct or split the charges"
        )
    default_day = _utc_day(encounter.period_start)
    days: dict[str, dt.date] = {}
    for charge in charges:
        day = _utc_day(charge.occurred_at) or default_day
        if day is None:
            raise InvalidInputError(
                f"ChargeItem/{charge.id} has no service time and Encounter/{encounter_id} no "
                "start: set occurred_at"
            )
        days[charge.id] = day
    first_day = min(days.values())
    modifiers = modifiers or {}
    unknown = sorted(set(modifiers) - {c.id for c in charges})
    if unknown:
        raise InvalidInputError(
            f"modifiers name ChargeItem(s) not billable on Encounter/{encounter_id}: "
            f"{', '.join(unknown)}"
        )
    for charge_id, values in modifiers.items():
        if isinstance(values, str) or not all(
            isinstance(m, str) and 0 < len(m) <= 4 for m in values
        ):
            raise InvalidInputError(
                f"modifiers of ChargeItem/{charge_id} must be a list of 2-character codes "
                f"such as ['59'], got {values!r}"
            )

    if coverage_id is not None:
        coverage = session.get(Coverage, coverage_id)
        if coverage is None:
            raise NotFoundError(f"Coverage/{coverage_id} does not exist")
        if coverage.patient_id != encounter.patient_id:
            raise InvalidInputError(
                f"Coverage/{coverage_id} belongs to Patient/{coverage.patient_id}, not to "
                f"the encounter's Patient/{encounter.patient_id}"
            )
    else:
        eligibility = check_eligibility(session, patient_id=encounter.patient_id, on=first_day)
        if not eligibility.eligible or eligibility.coverage_id is None:
            raise ConflictError(
                f"Encounter/{encounter_id}: {eligibility.reason}; bill the patient (self-pay) "
                "or pass coverage_id"
            )
        found_coverage = session.get(Coverage, eligibility.coverage_id)
        if found_coverage is None:
            raise NotFoundError(f"Coverage/{eligibility.coverage_id} does not exist")
        coverage = found_coverage
    if coverage.payor_id is None:
        raise ConflictError(
            f"Coverage/{coverage.id} names no payer Organization ({coverage.payor_display!r}): "
            "record the payer first"
        )
    contract = session.scalars(
        select(Contract).where(Contract.payer_id == coverage.payor_id)
    ).first()

    service = _service_codes(session, ((c.code_system, c.code) for c in charges))
    entry_ids = sorted({c.chargemaster_entry_id for c in charges if c.chargemaster_entry_id})
    entries = {
        e.id: e
        for chunk in _chunks(entry_ids)
        for e in session.scalars(select(ChargemasterEntry).where(ChargemasterEntry.id.in_(chunk)))
    }
    diagnoses, sequence_of = _claim_diagnoses(session, encounter)

    claim = Claim(
        id=str(uuid.uuid4()),
        patient_id=encounter.patient_id,
        encounter_id=encounter.id,
        facility_id=encounter.facility_id,
        status="active",
        type_code=claim_type,
        use="claim",
        created=created,
        billable_start=encounter.period_start,
        billable_end=encounter.period_end,
        provider_id=encounter.service_provider_id or encounter.facility_id,
        insurer_id=coverage.payor_id,
        coverage_id=coverage.id,
        coverage_display=coverage.payor_display,
        currency=currencies[0],
        patient_control_number=_patient_control_number(encounter.id),
        priority="stat" if encounter.class_code == EncounterClass.EMER else "normal",
        billing_status=None,
    )
    refs: list[str] = []
    total = Decimal(0)
    for sequence, charge in enumerate(charges, start=1):
        code_info = pick_service_code(
            service.get((charge.code_system, charge.code), []),
            display=charge.display,
            class_code=encounter.class_code,
        )
        entry = entries.get(charge.chargemaster_entry_id or -1)
        procedure_id = (
            charge.service_ref.split("/", 1)[1]
            if charge.service_ref and charge.service_ref.startswith("Procedure/")
            else None
        )
        pointer = _procedure_reason_sequence(session, procedure_id, sequence_of)
        category = code_info.service_category if code_info else None
        net = charge.total.quantize(_CENT)
        total += net
        claim.items.append(
            ClaimItem(
                sequence=sequence,
                code_system=charge.code_system,
                code=charge.code,
                display=charge.display,
                quantity=charge.quantity,
                unit_price=charge.unit_price,
                net=net,
                service_date=days[charge.id],
                encounter_id=encounter.id,
                charge_item_id=charge.id,
                diagnosis_sequence=[pointer or 1] if diagnoses else None,
                category=category,
                revenue_code=(code_info.revenue_code if code_info else None)
                or (entry.revenue_code if entry else None),
                modifiers=list(modifiers[charge.id]) if charge.id in modifiers else None,
                procedure_id=procedure_id,
            )
        )
        if contract is not None and contract.needs_prior_auth(category, encounter.class_code):
            for key in [k for k in (category, charge.code) if k]:
                found = find_valid_authorization(
                    session,
                    patient_id=encounter.patient_id,
                    payer_id=coverage.payor_id,
                    category_or_code=key,
                    on=days[charge.id],
                )
                if found is not None and found.reference_number:
                    if found.reference_number not in refs:
                        refs.append(found.reference_number)
                    break
    claim.total = total
    claim.pre_auth_ref = refs[0] if refs else None
    rows = [
        ClaimDiagnosis(
            claim_id=claim.id,
            sequence=n,
            code_system=system,
            code=code,
            display=display[:512] if display else None,
            condition_id=condition_id,
            type_code="principal" if n == 1 else None,
        )
        for n, (system, code, display, condition_id) in enumerate(diagnoses, start=1)
    ]
    claim.resource = _fhir_claim(claim, claim.items, rows)
    if refs:
        claim.resource["insurance"][0]["preAuthRef"] = refs
    session.add(claim)
    session.flush()
    session.add_all(rows)
    for charge in charges:
        charge.status = ChargeItemStatus.BILLED.value
    _history(
        session,
        claim,
        ClaimBillingStatus.DRAFT.value,
        actor=actor,
        role=role,
        reason=f"built from {len(charges)} charge(s) of Encounter/{encounter_id}",
        at=created,
        bus=bus,
    )
    session.flush()
    return claim


# --------------------------------------------------------------------------- scrubber


def _service_codes_all(session: Session) -> dict[tuple[str, str], list[ServiceCode]]:
    found: dict[tuple[str, str], list[ServiceCode]] = defaultdict(list)
    for row in session.scalars(select(ServiceCode).order_by(ServiceCode.id)):
        found[(row.code_system, row.code)].append(row)
    return dict(found)


@dataclass
class _Reference:
    """Reference tables the edits read, loaded once per scrub run."""

    contracts: dict[str, Contract]
    service_codes: dict[tuple[str, str], list[ServiceCode]]
    components: dict[str, list[BundlingEdit]]

    @classmethod
    def load(cls, session: Session) -> _Reference:
        components: dict[str, list[BundlingEdit]] = defaultdict(list)
        for edit in session.scalars(select(BundlingEdit).order_by(BundlingEdit.id)):
            components[edit.component_code].append(edit)
        return cls(
            contracts={c.payer_id: c for c in session.scalars(select(Contract))},
            service_codes=_service_codes_all(session),
            components=dict(components),
        )


@dataclass(frozen=True)
class _Other:
    """A revenue-cycle claim of the same patient, as the duplicate edit compares it."""

    claim: Claim
    first: dt.date | None
    codes: tuple[tuple[str, str], ...]


@dataclass
class _Facts:
    """What one claim's edits need beside the claim (loaded per claim or per batch)."""

    items: list[ClaimItem]
    diagnoses: list[ClaimDiagnosis]
    coverage: Coverage | None
    encounter: Encounter | None
    others: list[_Other] = field(default_factory=list)
    authorizations: list[PriorAuthorization] = field(default_factory=list)


def _service_dates(
    claim: Claim, items: Sequence[ClaimItem]
) -> tuple[dt.date | None, dt.date | None]:
    """``(first, through)`` date of service: line dates, else the billable period."""
    dates = [i.service_date for i in items if i.service_date is not None]
    start = _utc_day(claim.billable_start)
    end = _utc_day(claim.billable_end)
    first = min(dates) if dates else start
    candidates = [d for d in (*dates, end, start) if d is not None]
    return first, (max(candidates) if candidates else None)


def _codes_key(items: Sequence[ClaimItem]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((i.code_system or "", i.code or "") for i in items))


def _issue(
    edit: str,
    message: str,
    *,
    sequence: int | None = None,
    severity: str = IssueSeverity.ERROR,
    carc: str | None = None,
    rarc: str | None = None,
    group_code: str | None = "CO",
    evidence: Iterable[str] = (),
) -> ClaimIssue:
    info = SCRUBBER_EDITS[edit]
    return ClaimIssue(
        edit=edit,
        severity=str(severity),
        sequence=sequence,
        message=message,
        carc=carc if carc is not None else info.carc,
        rarc=rarc if rarc is not None else info.rarc,
        group_code=group_code if info.carc or carc else None,
        evidence=tuple(evidence),
    )


def _encounter_class(claim: Claim, encounter: Encounter | None) -> str | None:
    if encounter is not None:
        return encounter.class_code
    return EncounterClass.EMER.value if claim.priority == "stat" else None


def _edit_coverage(
    session: Session, claim: Claim, facts: _Facts, first: dt.date | None
) -> list[ClaimIssue]:
    issues: list[ClaimIssue] = []
    if first is None:
        return issues
    coverage = facts.coverage
    if coverage is None:
        eligibility = check_eligibility(
            session, patient_id=claim.patient_id, on=first, payer_id=claim.insurer_id
        )
        hint = (
            f"; Coverage/{eligibility.coverage_id} is active then: attach it"
            if eligibility.eligible
            else f"; {eligibility.reason}"
        )
        issues.append(
            _issue(
                "coverage-inactive",
                f"the claim names no coverage (member id) for the payer{hint}",
                carc="31",
                evidence=[f"Coverage/{eligibility.coverage_id}"] if eligibility.coverage_id else (),
            )
        )
        return issues
    ref = f"Coverage/{coverage.id}"
    if claim.insurer_id and coverage.payor_id and claim.insurer_id != coverage.payor_id:
        issues.append(
            _issue(
                "coverage-payer-mismatch",
                f"the claim goes to Organization/{claim.insurer_id} but {ref} is with "
                f"Organization/{coverage.payor_id}: send it to the coverage's payer",
                evidence=[ref],
            )
        )
    dates = sorted({i.service_date for i in facts.items if i.service_date} | {first})
    inactive = {d: coverage_active_on(coverage, d) for d in dates}
    if not inactive[first][0]:
        _, carc, reason = inactive[first]
        other = check_eligibility(session, patient_id=claim.patient_id, on=first)
        hint = (
            f"; Coverage/{other.coverage_id} (Organization/{other.payer_id}) is active then: "
            "rebill to it"
            if other.eligible and other.coverage_id != coverage.id
            else "; the patient has no active coverage then: bill the patient or check "
            "eligibility again"
        )
        issues.append(
            _issue(
                "coverage-inactive",
                f"coverage not in force on the date of service: {reason}{hint}",
                carc=carc,
                evidence=[ref, *([f"Coverage/{other.coverage_id}"] if other.coverage_id else [])],
            )
        )
        return issues
    for item in facts.items:
        if item.service_date and not inactive[item.service_date][0]:
            _, carc, reason = inactive[item.service_date]
            issues.append(
                _issue(
                    "coverage-inactive",
                    f"coverage not in force on this line's date: {reason}",
                    sequence=item.sequence,
                    carc=carc,
                    evidence=[ref],
                )
            )
    order = coverage_order(coverage)
    if order is not None and order > 1:
        primary = check_eligibility(session, patient_id=claim.patient_id, on=first)
        if primary.eligible and primary.coverage_id and primary.coverage_id != coverage.id:
            primary_coverage = session.get(Coverage, primary.coverage_id)
            primary_order = coverage_order(primary_coverage) if primary_coverage else None
            if primary_order is not None and primary_order < order:
                issues.append(
                    _issue(
                        "coverage-not-primary",
                        f"{ref} is order {order}; Coverage/{primary.coverage_id} (order "
                        f"{primary_order}) is primary on {first.isoformat()}: bill the primary "
                        "first and send this one its remittance",
                        evidence=[ref, f"Coverage/{primary.coverage_id}"],
                    )
                )
    return issues


def _covering(
    authorizations: Iterable[PriorAuthorization], keys: Sequence[str], day: dt.date
) -> PriorAuthorization | None:
    """Apply the rule of :func:`find_valid_authorization` to preloaded rows."""
    far = dt.datetime.min.replace(tzinfo=dt.UTC)
    ranked = sorted(authorizations, key=lambda a: a.decided_at or far, reverse=True)
    for key in keys:
        for authorization in ranked:
            if (
                authorization.proves()
                and authorization.in_window(day)
                and authorization.covers(key)
            ):
                return authorization
    return None


def _edit_authorization(
    claim: Claim,
    facts: _Facts,
    contract: Contract,
    reference: _Reference,
    first: dt.date | None,
) -> list[ClaimIssue]:
    issues: list[ClaimIssue] = []
    class_code = _encounter_class(claim, facts.encounter)
    refs = _pre_auth_refs(claim)
    for item in facts.items:
        code_info = pick_service_code(
            reference.service_codes.get((item.code_system or "", item.code or ""), []),
            display=item.display,
            class_code=class_code,
        )
        category = item.category or (code_info.service_category if code_info else None)
        if not contract.needs_prior_auth(category, class_code):
            continue
        day = item.service_date or first
        if day is None:
            continue
        keys = [k for k in (category, item.code) if k]
        found = _covering(facts.authorizations, keys, day)
        if found is not None:
            if found.reference_number not in refs:
                issues.append(
                    _issue(
                        "authorization-missing",
                        f"{category} needs prior authorisation ({contract.reference}); "
                        f"{found.reference} ({found.reference_number}) covers it but the "
                        "claim does not carry its reference: add it",
                        sequence=item.sequence,
                        severity=IssueSeverity.WARNING,
                        evidence=[found.reference, contract.reference],
                    )
                )
            continue
        on_record = [a for a in facts.authorizations if a.reference_number in refs]
        if refs and not on_record:
            continue  # a reference obtained outside HealthOS: accepted as given
        if on_record:
            why = "; ".join(
                f"{a.reference_number} is {a.status}"
                + (
                    f", for {', '.join(a.service_categories + a.service_codes)}"
                    if not any(a.covers(k) for k in keys)
                    else ""
                )
                + (
                    f", valid {a.valid_from or '…'} to {a.valid_to or '…'}"
                    if not a.in_window(day)
                    else ""
                )
                for a in on_record
            )
            issues.append(
                _issue(
                    "authorization-missing",
                    f"{category} on {day.isoformat()} needs prior authorisation "
                    f"({contract.reference}) and the reference on the claim does not cover "
                    f"it ({why}): obtain or correct the authorisation",
                    sequence=item.sequence,
                    rarc="N54",
                    evidence=[*(a.reference for a in on_record), contract.reference],
                )
            )
            continue
        issues.append(
            _issue(
                "authorization-missing",
                f"{category} needs prior authorisation under {contract.reference} "
                f"(exempt: {', '.join(contract.prior_auth_exempt_classes) or 'none'}; this "
                f"encounter is {class_code or 'unknown'}) and none is on the claim or on "
                f"record for {day.isoformat()}: request one or add its reference",
                sequence=item.sequence,
                evidence=[contract.reference],
            )
        )
    return issues


def _edit_filing(
    claim: Claim, contract: Contract, through: dt.date | None, as_of: dt.datetime
) -> list[ClaimIssue]:
    if through is None:
        return []
    if claim.related_claim_id and not contract.filing_limit_applies_to_corrected:
        return []
    sent = claim.submitted_at or as_of
    days = (sent.astimezone(dt.UTC).date() - through).days
    if days <= contract.timely_filing_days:
        return []
    verb = "submitted" if claim.submitted_at else f"as of {sent.date().isoformat()}"
    return [
        _issue(
            "filing-limit",
            f"{verb} {days} days after the date of service {through.isoformat()}; "
            f"{contract.reference} accepts claims within {contract.timely_filing_days} days",
            evidence=[contract.reference],
        )
    ]


def _edit_lines(
    claim: Claim, items: Sequence[ClaimItem], first: dt.date | None
) -> list[ClaimIssue]:
    issues: list[ClaimIssue] = []
    if claim.provider_id is None:
        issues.append(
            _issue(
                "provider-missing",
                "the claim names no billing provider: set the encounter's service provider",
            )
        )
    if not items:
        issues.append(_issue("line-incomplete", "the claim has no line", rarc="M20"))
        return issues
    if first is None:
        issues.append(
            _issue("line-incomplete", "the claim has no date of service on any line or period")
        )
    for item in items:
        if not item.code:
            issues.append(
                _issue(
                    "line-incomplete",
                    "line has no service code",
                    sequence=item.sequence,
                    rarc="M20",
                )
            )
        if item.quantity is None or item.quantity <= 0:
            issues.append(
                _issue(
                    "line-incomplete",
                    f"line has no positive units (quantity {item.quantity})",
                    sequence=item.sequence,
                )
            )
        if item.net is None and item.unit_price is None:
            issues.append(
                _issue("line-incomplete", "line has no charge", sequence=item.sequence, rarc="M79")
            )
    return issues


def _edit_diagnoses(
    items: Sequence[ClaimItem], diagnoses: Sequence[ClaimDiagnosis]
) -> list[ClaimIssue]:
    if not diagnoses:
        return [
            _issue(
                "diagnosis-missing",
                "the claim has no diagnosis: add the principal diagnosis (ICD-10-CM)",
            )
        ]
    issues: list[ClaimIssue] = []
    principal = min(diagnoses, key=lambda d: (d.type_code != "principal", d.sequence)).sequence
    for diagnosis in diagnoses:
        label = f"diagnosis {diagnosis.sequence}"
        evidence = [f"Condition/{diagnosis.condition_id}"] if diagnosis.condition_id else []
        is_principal = diagnosis.sequence == principal
        if diagnosis.code_system != ICD10CM_SYSTEM or not diagnosis.code:
            issues.append(
                _issue(
                    "diagnosis-not-icd10cm",
                    f"{label} ({diagnosis.code_system or 'no system'}|{diagnosis.code}"
                    f"{' ' + repr(diagnosis.display) if diagnosis.display else ''}) has no "
                    "ICD-10-CM code"
                    + (
                        ": the principal diagnosis must be coded in ICD-10-CM"
                        if is_principal
                        else ": code it in ICD-10-CM or it is left off the claim"
                    ),
                    severity=IssueSeverity.ERROR if is_principal else IssueSeverity.WARNING,
                    evidence=evidence,
                )
            )
            continue
        found = icd10cm_code(diagnosis.code)
        if found is None:
            issues.append(
                _issue(
                    "diagnosis-invalid",
                    f"{label} {diagnosis.code!r} is not an ICD-10-CM code (FY2026 code set)",
                    evidence=evidence,
                )
            )
            continue
        dotted, billable = found
        if not billable:
            children = _billable_prefixes().get(dotted.replace(".", ""), [])
            example = (
                f": use one of its {len(children)} billable codes ({children[0]} … {children[-1]})"
                if children
                else ""
            )
            issues.append(
                _issue(
                    "diagnosis-invalid",
                    f"{label} {dotted} is a header, not a billable ICD-10-CM code{example}",
                    rarc="M81",
                    evidence=evidence,
                )
            )
            continue
        if is_principal and dotted[0] in "VWXY":
            issues.append(
                _issue(
                    "diagnosis-invalid",
                    f"{label} {dotted} is an external-cause code: it is never the principal "
                    "diagnosis (ICD-10-CM Official Guidelines I.C.20); put the injury first",
                    evidence=evidence,
                )
            )
    known = {d.sequence for d in diagnoses}
    for item in items:
        missing = [p for p in item.diagnosis_sequence or [] if p not in known]
        if missing:
            issues.append(
                _issue(
                    "diagnosis-pointer",
                    f"line points to diagnosis {', '.join(str(p) for p in missing)}, which the "
                    f"claim does not have (it has {', '.join(str(s) for s in sorted(known))})",
                    sequence=item.sequence,
                )
            )
    return issues


def _family_root(claim: Claim, by_id: Mapping[str, Claim]) -> str:
    seen = {claim.id}
    current = claim
    while current.related_claim_id:
        if current.related_claim_id in seen:
            break
        seen.add(current.related_claim_id)
        parent = by_id.get(current.related_claim_id)
        if parent is None:
            return current.related_claim_id
        current = parent
    return current.id


def _edit_duplicate(claim: Claim, facts: _Facts, first: dt.date | None) -> list[ClaimIssue]:
    if first is None or not facts.items:
        return []
    by_id = {o.claim.id: o.claim for o in facts.others}
    by_id[claim.id] = claim
    root = _family_root(claim, by_id)
    key = _codes_key(facts.items)
    earlier = [
        o
        for o in facts.others
        if o.first == first
        and o.codes == key
        and o.claim.id != claim.id
        and o.claim.submitted_at is not None
        and (claim.submitted_at is None or o.claim.submitted_at < claim.submitted_at)
    ]
    for other in sorted(earlier, key=lambda o: (o.claim.submitted_at, o.claim.id)):
        if _family_root(other.claim, by_id) == root:
            continue
        if (
            claim.related_claim_id
            and claim.patient_control_number
            and other.claim.patient_control_number == claim.patient_control_number
        ):
            continue  # a corrected claim replaces every earlier submission of its encounter
        sent = other.claim.submitted_at
        return [
            _issue(
                "duplicate",
                f"Claim/{other.claim.id} (submitted {sent.date().isoformat() if sent else '?'}, "
                f"{other.claim.billing_status}) has the same patient, date of service "
                f"{first.isoformat()} and codes: correct that claim (related prior) instead "
                "of sending a new one",
                group_code="OA",
                evidence=[f"Claim/{other.claim.id}"],
            )
        ]
    return []


def _edit_units(
    claim: Claim,
    items: Sequence[ClaimItem],
    contract: Contract | None,
    reference: _Reference,
    first: dt.date | None,
) -> list[ClaimIssue]:
    groups: dict[tuple[str, str, dt.date | None], list[ClaimItem]] = defaultdict(list)
    for item in items:
        if item.code and item.quantity is not None:
            groups[(item.code_system or "", item.code, item.service_date or first)].append(item)
    issues: list[ClaimIssue] = []
    for (system, code, day), group in groups.items():
        units = sum((i.quantity or Decimal(0) for i in group), Decimal(0))
        lines = ", ".join(str(i.sequence) for i in group)
        where = f"line{'s' if len(group) > 1 else ''} {lines}"
        on = day.isoformat() if day else "the date of service"
        if system in HCPCS_SYSTEMS or system in CPT_SYSTEMS:
            limit = mue_limit(code)
            if limit is not None and units > limit:
                issues.append(
                    _issue(
                        "units-over-mue",
                        f"{units.normalize():f} units of {code} on {on} ({where}) exceed the "
                        f"CMS MUE of {limit}: bill at most {limit} or document medical necessity "
                        "for an appeal",
                        sequence=group[0].sequence,
                    )
                )
        if contract is None or contract.unit_limit_carc is None:
            continue
        rows = reference.service_codes.get((system, code), [])
        code_info = rows[0] if rows else None
        limit = code_info.max_units_per_line if code_info else DEFAULT_MAX_UNITS_PER_LINE
        if units > limit:
            carc = contract.unit_limit_carc
            issues.append(
                _issue(
                    "units-over-limit",
                    f"{units.normalize():f} units of {code} on {on} ({where}) exceed "
                    f"{contract.reference}'s limit of {limit} per line"
                    + ("" if code_info else " (code not in the payer's unit limits: limit 1)")
                    + f" ({contract.unit_limit_policy or 'CO-' + carc})",
                    sequence=group[0].sequence,
                    carc=carc,
                    rarc="N640" if carc == "119" else "N362",
                    evidence=[contract.reference],
                )
            )
    return issues


def _edit_bundling(
    items: Sequence[ClaimItem], contract: Contract | None, reference: _Reference
) -> list[ClaimIssue]:
    if contract is not None and not contract.applies_bundling_edits:
        return []
    codes = {i.code for i in items if i.code}
    issues: list[ClaimIssue] = []
    for item in items:
        for edit in reference.components.get(item.code or "", []):
            if edit.comprehensive_code in codes:
                with_line = next(i.sequence for i in items if i.code == edit.comprehensive_code)
                issues.append(
                    _issue(
                        "bundled",
                        f"{item.code} ({edit.component_display or item.display or 'component'}) "
                        f"is included in {edit.comprehensive_code} on line {with_line}: it is "
                        f"not paid separately ({edit.group_code}-{edit.carc}); drop the line",
                        sequence=item.sequence,
                        carc=edit.carc,
                        group_code=edit.group_code,
                    )
                )
                break
    return issues


def _scrub(
    session: Session,
    claim: Claim,
    facts: _Facts,
    reference: _Reference,
    as_of: dt.datetime,
) -> list[ClaimIssue]:
    first, through = _service_dates(claim, facts.items)
    contract = reference.contracts.get(claim.insurer_id or "")
    issues: list[ClaimIssue] = []
    issues += _edit_coverage(session, claim, facts, first)
    if contract is None:
        issues.append(
            _issue(
                "contract-missing",
                f"no contract is loaded for Organization/{claim.insurer_id}: filing-limit, "
                "prior-authorisation and payer unit-limit edits were not run "
                "(load_contracts_csv)",
                severity=IssueSeverity.WARNING,
            )
        )
    else:
        issues += _edit_authorization(claim, facts, contract, reference, first)
        issues += _edit_filing(claim, contract, through, as_of)
    issues += _edit_lines(claim, facts.items, first)
    issues += _edit_diagnoses(facts.items, facts.diagnoses)
    issues += _edit_duplicate(claim, facts, first)
    issues += _edit_units(claim, facts.items, contract, reference, first)
    issues += _edit_bundling(facts.items, contract, reference)
    order = {name: n for n, name in enumerate(SCRUBBER_EDITS)}
    return sorted(
        issues,
        key=lambda i: (order[i.edit], -1 if i.sequence is None else i.sequence),
    )


def _other_claims(
    session: Session, claims: Sequence[Claim]
) -> tuple[dict[str, list[_Other]], dict[str, list[ClaimItem]]]:
    """Revenue-cycle claims of the same patients by patient id, and every loaded claim's lines."""
    patients = sorted({c.patient_id for c in claims})
    found: dict[str, Claim] = {}
    for chunk in _chunks(patients):
        for other in session.scalars(
            select(Claim).where(Claim.patient_id.in_(chunk), Claim.billing_status.is_not(None))
        ):
            found[other.id] = other
    items: dict[str, list[ClaimItem]] = defaultdict(list)
    for chunk in _chunks(sorted(found)):
        for item in session.scalars(
            select(ClaimItem).where(ClaimItem.claim_id.in_(chunk)).order_by(ClaimItem.sequence)
        ):
            items[item.claim_id].append(item)
    out: dict[str, list[_Other]] = defaultdict(list)
    for other in found.values():
        lines = items.get(other.id, [])
        first, _ = _service_dates(other, lines)
        out[other.patient_id].append(_Other(other, first, _codes_key(lines)))
    return out, {claim_id: items.get(claim_id, []) for claim_id in found}


def scrub_claims(
    session: Session, claims: Sequence[Claim], *, as_of: dt.datetime | None = None
) -> dict[str, list[ClaimIssue]]:
    """Scrub many claims with shared reference tables (see :func:`scrub_claim`).

    Parameters
    ----------
    session : sqlalchemy.orm.Session
    claims : sequence of Claim
    as_of : aware datetime, optional
        Reference time for claims not yet submitted (default now).

    Returns
    -------
    dict
        Claim id → its issues (empty list: clean).
    """
    when = _aware(as_of, "as_of")
    reference = _Reference.load(session)
    ids = [c.id for c in claims]
    diagnoses: dict[str, list[ClaimDiagnosis]] = defaultdict(list)
    for chunk in _chunks(ids):
        for row in session.scalars(
            select(ClaimDiagnosis)
            .where(ClaimDiagnosis.claim_id.in_(chunk))
            .order_by(ClaimDiagnosis.sequence)
        ):
            diagnoses[row.claim_id].append(row)
    others, lines_of = _other_claims(session, claims)
    authorizations: dict[str, list[PriorAuthorization]] = defaultdict(list)
    patients = sorted({c.patient_id for c in claims})
    for chunk in _chunks(patients):
        for authorization in session.scalars(
            select(PriorAuthorization).where(PriorAuthorization.patient_id.in_(chunk))
        ):
            authorizations[authorization.patient_id].append(authorization)
    results: dict[str, list[ClaimIssue]] = {}
    for claim in claims:
        items = lines_of.get(claim.id)
        if items is None:
            items = sorted(claim.items, key=lambda i: i.sequence)
        facts = _Facts(
            items=items,
            diagnoses=diagnoses.get(claim.id, []),
            coverage=session.get(Coverage, claim.coverage_id) if claim.coverage_id else None,
            encounter=session.get(Encounter, claim.encounter_id) if claim.encounter_id else None,
            others=others.get(claim.patient_id, []),
            authorizations=[
                a
                for a in authorizations.get(claim.patient_id, [])
                if a.payer_id == claim.insurer_id
            ],
        )
        results[claim.id] = _scrub(session, claim, facts, reference, when)
    return results


def scrub_claim(
    session: Session, claim: Claim, *, as_of: dt.datetime | None = None
) -> list[ClaimIssue]:
    """Run every scrubber edit on a claim and return what a payer would object to.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
    claim : Claim
        Flushed claim (its lines and diagnoses are read from the database).
    as_of : aware datetime, optional
        Reference time for the filing limit of a claim not yet submitted (default now). A
        submitted claim is judged at its ``submitted_at``: what the payer saw.

    Returns
    -------
    list of ClaimIssue
        In :data:`SCRUBBER_EDITS` order, claim-level issues before line issues. Empty
        when the claim is clean. The edits (``docs/claims.md`` has the detail):

        * ``coverage-inactive`` (CARC 26/27/31), ``coverage-payer-mismatch`` (109),
          ``coverage-not-primary`` (22): the claim's coverage on the date of service;
        * ``contract-missing`` (warning): no contract loaded for the payer;
        * ``authorization-missing`` (197 + M62, or + N54 when the reference does not cover
          the service): a line whose service category the contract lists needs a valid
          authorisation (:func:`~healthos_core.billing.payers.find_valid_authorization`)
          or a reference on the claim; emergency encounters are exempt;
        * ``filing-limit`` (29): days from the through date of service to submission (or
          ``as_of``) over the contract's ``timely_filing_days``;
        * ``provider-missing``, ``line-incomplete`` (16);
        * ``diagnosis-missing``, ``diagnosis-not-icd10cm``, ``diagnosis-invalid``,
          ``diagnosis-pointer`` (16 + M76/M81), against the ICD-10-CM FY2026 code set;
        * ``duplicate`` (OA-18): an earlier claim, same patient, date and codes, not of
          this claim's correction chain;
        * ``units-over-mue`` (151 + N362, CMS MUE for HCPCS/CPT) and ``units-over-limit``
          (the contract's CARC, payer ServiceCode limit);
        * ``bundled`` (97 + M15): a component billed with its comprehensive code.

    Raises
    ------
    InvalidInputError
        ``as_of`` is naive.
    """
    return scrub_claims(session, [claim], as_of=as_of)[claim.id]


# --------------------------------------------------------------------------- lifecycle

_S = ClaimBillingStatus

#: Allowed ``billing_status`` transitions (SPEC §4). ``paid``/``partial``/``denied`` may
#: follow each other when the payer reprocesses a claim (835 CLP02 22 reversal, then a new
#: adjudication); a paid claim can be appealed (underpayment) or replaced by a corrected
#: claim. ``resubmitted`` and ``written-off`` are final: a corrected claim carries on.
TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    _S.DRAFT: frozenset({_S.SUBMITTED, _S.WRITTEN_OFF}),
    _S.SUBMITTED: frozenset({_S.PAID, _S.PARTIAL, _S.DENIED, _S.WRITTEN_OFF}),
    _S.PAID: frozenset({_S.PARTIAL, _S.DENIED, _S.APPEALED, _S.RESUBMITTED}),
    _S.PARTIAL: frozenset({_S.PAID, _S.DENIED, _S.APPEALED, _S.RESUBMITTED, _S.WRITTEN_OFF}),
    _S.DENIED: frozenset({_S.PAID, _S.PARTIAL, _S.APPEALED, _S.RESUBMITTED, _S.WRITTEN_OFF}),
    _S.APPEALED: frozenset({_S.PAID, _S.PARTIAL, _S.DENIED}),
    _S.RESUBMITTED: frozenset(),
    _S.WRITTEN_OFF: frozenset(),
}
_ADJUDICATED: Final = frozenset({_S.PAID.value, _S.PARTIAL.value, _S.DENIED.value})


def _check_transition(claim: Claim, to_status: str) -> None:
    current = claim.billing_status
    if current is None:
        raise ConflictError(
            f"Claim/{claim.id} is not in the revenue cycle (no billing status: a record-only "
            "claim): it cannot become " + to_status
        )
    allowed = TRANSITIONS.get(current, frozenset())
    if to_status not in allowed:
        listed = ", ".join(sorted(allowed)) if allowed else "none: it is final"
        raise ConflictError(
            f"Claim/{claim.id} is {current}: it cannot become {to_status} (allowed: {listed})"
        )


def submit_claim(
    session: Session,
    claim_id: str,
    *,
    actor: str,
    role: str | None = None,
    at: dt.datetime | None = None,
    override_edits: Iterable[str] = (),
    reason: str | None = None,
    bus: EventBus | None = None,
) -> Claim:
    """Scrub a draft claim and mark it submitted.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
    claim_id : str
    actor : str
        Who submits (recorded with ``role``).
    role : str, optional
    at : aware datetime, optional
        Submission time (``submitted_at``; the filing limit is judged on it). Default now.
    override_edits : iterable of str
        Edit ids whose errors the actor chooses to submit anyway (e.g. a payer that
        waived the rule); needs ``reason``.
    reason : str, optional
        Recorded in the status history; required with ``override_edits``.
    bus : EventBus, optional
        Where the :class:`~healthos_core.events.ClaimChanged` event goes (to the outbox
        when the live path is wired); default :func:`~healthos_core.events.default_bus`.

    Returns
    -------
    Claim
        ``billing_status`` ``submitted``; the ledger's
        :func:`~healthos_core.billing.ledger.post_claim_charge` has moved its charges to
        the payer's receivable in the same savepoint.

    Raises
    ------
    NotFoundError
        No such claim.
    ConflictError
        The claim is not a draft.
    ScrubFailedError
        The scrubber found errors not overridden (``.issues`` lists them); nothing changed.
    InvalidInputError
        An unknown edit id, or overrides without a reason.
    """
    actor = _require_text(actor, "actor", "say who submits the claim")
    when = _aware(at, "at")
    overrides = set(override_edits)
    unknown = sorted(overrides - set(SCRUBBER_EDITS))
    if unknown:
        raise InvalidInputError(
            f"override_edits names unknown edit(s) {', '.join(unknown)} (known: "
            f"{', '.join(SCRUBBER_EDITS)})"
        )
    if overrides and not (reason and reason.strip()):
        raise InvalidInputError("overriding scrubber edits needs a reason")
    claim = _get_claim(session, claim_id)
    _check_transition(claim, _S.SUBMITTED)
    issues = scrub_claim(session, claim, as_of=when)
    blocking = [i for i in issues if i.is_error and i.edit not in overrides]
    if blocking:
        raise ScrubFailedError(claim.id, blocking)
    overridden = sorted({i.edit for i in issues if i.is_error})
    warnings = sum(1 for i in issues if not i.is_error)
    note = f"scrubbed: {warnings} warning(s)" + (
        f"; errors overridden: {', '.join(overridden)}" if overridden else ""
    )
    with session.begin_nested():
        claim.submitted_at = when
        _history(
            session,
            claim,
            _S.SUBMITTED.value,
            actor=actor,
            role=role,
            reason=f"{reason.strip()} ({note})" if reason and reason.strip() else note,
            at=when,
            bus=bus,
        )
        session.flush()
        # The ledger moves the claim's charges from unbilled A/R to the payer's receivable
        # (a corrected claim posts nothing: its lines were charged on the original).
        post_claim_charge(session, claim, created_by=actor)
    return claim


def record_adjudication_status(
    session: Session,
    claim_id: str,
    *,
    status: str,
    actor: str,
    role: str | None = None,
    at: dt.datetime | None = None,
    reason: str | None = None,
    bus: EventBus | None = None,
) -> Claim:
    """Record the payer's adjudication of a claim: paid, partial or denied.

    Money is not posted here (remittance posting belongs to the ledger); this records the
    revenue-cycle state.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
    claim_id : str
    status : {"paid", "partial", "denied"}
    actor : str
        Who recorded it (a user, or e.g. ``"remittance-import"``).
    role : str, optional
    at : aware datetime, optional
        Default now.
    reason : str, optional
        E.g. the CARCs of a denial (``"CO-27"``).
    bus : EventBus, optional
        Where the :class:`~healthos_core.events.ClaimChanged` event goes (to the outbox
        when the live path is wired); default :func:`~healthos_core.events.default_bus`.

    Returns
    -------
    Claim
        With the new status. Recording the status the claim already has changes nothing
        (no history row), so re-importing a remittance is harmless.

    Raises
    ------
    NotFoundError
        No such claim.
    ConflictError
        Not allowed from the current status (e.g. paying a draft, or a written-off claim).
    InvalidInputError
        ``status`` is not paid, partial or denied.
    """
    if status not in _ADJUDICATED:
        raise InvalidInputError(
            f"status {status!r} is not an adjudication: use paid, partial or denied"
        )
    actor = _require_text(actor, "actor", "say who records the adjudication")
    when = _aware(at, "at")
    claim = _get_claim(session, claim_id)
    if claim.billing_status == status:
        return claim
    _check_transition(claim, status)
    _history(session, claim, status, actor=actor, role=role, reason=reason, at=when, bus=bus)
    session.flush()
    return claim


def appeal_claim(
    session: Session,
    claim_id: str,
    *,
    actor: str,
    reason: str,
    role: str | None = None,
    at: dt.datetime | None = None,
    bus: EventBus | None = None,
) -> Claim:
    """Record that a denied, partially paid or underpaid claim was appealed to the payer.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
    claim_id : str
    actor : str
    reason : str
        The grounds of the appeal (required).
    role : str, optional
    at : aware datetime, optional
        Default now.
    bus : EventBus, optional
        Where the :class:`~healthos_core.events.ClaimChanged` event goes (to the outbox
        when the live path is wired); default :func:`~healthos_core.events.default_bus`.

    Returns
    -------
    Claim
        ``billing_status`` ``appealed``; the payer's answer comes through
        :func:`record_adjudication_status`.

    Raises
    ------
    NotFoundError, ConflictError, InvalidInputError
        No such claim; not paid/partial/denied; no reason.
    """
    actor = _require_text(actor, "actor", "say who appeals")
    reason = _require_text(reason, "reason", "give the grounds of the appeal")
    when = _aware(at, "at")
    claim = _get_claim(session, claim_id)
    _check_transition(claim, _S.APPEALED)
    _history(
        session, claim, _S.APPEALED.value, actor=actor, role=role, reason=reason, at=when, bus=bus
    )
    session.flush()
    return claim


def write_off_claim(
    session: Session,
    claim_id: str,
    *,
    actor: str,
    reason: str,
    role: str | None = None,
    at: dt.datetime | None = None,
    bus: EventBus | None = None,
) -> Claim:
    """Give up collecting a claim from the payer (e.g. past the filing or appeal limit).

    Parameters
    ----------
    session : sqlalchemy.orm.Session
    claim_id : str
    actor : str
    reason : str
        Why (required; e.g. "CO-29 timely filing, not appealable").
    role : str, optional
    at : aware datetime, optional
        Default now.
    bus : EventBus, optional
        Where the :class:`~healthos_core.events.ClaimChanged` event goes (to the outbox
        when the live path is wired); default :func:`~healthos_core.events.default_bus`.

    Returns
    -------
    Claim
        ``billing_status`` ``written-off`` (final). The open payer balance is written off
        through :func:`healthos_core.billing.ledger.write_off_claim` (Dr denial_write_off /
        Cr payer_ar) in the same savepoint; a draft has no payer balance.

    Raises
    ------
    NotFoundError, ConflictError, InvalidInputError
        No such claim; not draft/submitted/partial/denied; no reason.
    """
    actor = _require_text(actor, "actor", "say who writes the claim off")
    reason = _require_text(reason, "reason", "say why the claim is written off")
    when = _aware(at, "at")
    claim = _get_claim(session, claim_id)
    _check_transition(claim, _S.WRITTEN_OFF)
    with session.begin_nested():
        _history(
            session,
            claim,
            _S.WRITTEN_OFF.value,
            actor=actor,
            role=role,
            reason=reason,
            at=when,
            bus=bus,
        )
        session.flush()
        # The ledger writes off the open payer balance (Dr denial_write_off / Cr payer_ar;
        # a corrected claim's balance sits on its original).
        target = claim.related_claim_id or claim.id
        if claim_open_balance(session, target) > 0:
            ledger_write_off_claim(session, claim.id, actor=actor, reason=reason, at=when)
        # LEDGER: a draft claim (never submitted) has no payer balance; its charges stay in
        # unbilled A/R, and ledger.py offers no function to write those off.
    return claim


_LINE_FIELDS: Final = frozenset(
    {
        "code_system",
        "code",
        "display",
        "quantity",
        "unit_price",
        "modifiers",
        "diagnosis_sequence",
        "service_date",
        "revenue_code",
        "category",
    }
)


def _decimal(value: Any, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InvalidInputError(f"{name} {value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise InvalidInputError(f"{name} {value!r} must be a finite amount ≥ 0")
    return number


def _corrected_line(sequence: int, source: ClaimItem, update: Mapping[str, Any]) -> ClaimItem:
    unknown = sorted(set(update) - _LINE_FIELDS)
    if unknown:
        raise InvalidInputError(
            f"line {source.sequence}: cannot correct {', '.join(unknown)} (correctable: "
            f"{', '.join(sorted(_LINE_FIELDS))})"
        )
    values: dict[str, Any] = {
        name: getattr(source, name)
        for name in (*_LINE_FIELDS, "encounter_id", "charge_item_id", "procedure_id")
    }
    values.update(update)
    quantity = _decimal(values["quantity"] if values["quantity"] is not None else 1, "quantity")
    if quantity == 0:
        raise InvalidInputError(f"line {source.sequence}: quantity must be positive")
    unit_price = (
        _decimal(values["unit_price"], "unit_price") if values["unit_price"] is not None else None
    )
    if "quantity" in update or "unit_price" in update or source.net is None:
        net = (
            (quantity * unit_price).quantize(_CENT, rounding=ROUND_HALF_UP)
            if unit_price is not None
            else source.net
        )
    else:
        net = source.net
    service_date = values["service_date"]
    if service_date is not None and (
        isinstance(service_date, dt.datetime) or not isinstance(service_date, dt.date)
    ):
        raise InvalidInputError(f"line {source.sequence}: service_date must be a date")
    for name in ("modifiers", "diagnosis_sequence"):
        if values[name] is not None and (
            isinstance(values[name], str) or not isinstance(values[name], Sequence)
        ):
            raise InvalidInputError(f"line {source.sequence}: {name} must be a list")
    return ClaimItem(
        sequence=sequence,
        code_system=values["code_system"],
        code=values["code"],
        display=values["display"],
        quantity=quantity,
        unit_price=unit_price,
        net=net,
        service_date=service_date,
        encounter_id=values["encounter_id"],
        charge_item_id=values["charge_item_id"],
        diagnosis_sequence=list(values["diagnosis_sequence"])
        if values["diagnosis_sequence"]
        else None,
        category=values["category"],
        revenue_code=values["revenue_code"],
        modifiers=list(values["modifiers"]) if values["modifiers"] else None,
        procedure_id=values["procedure_id"],
    )


def correct_and_resubmit(
    session: Session,
    claim_id: str,
    *,
    actor: str,
    reason: str,
    role: str | None = None,
    at: dt.datetime | None = None,
    coverage_id: str | None = None,
    pre_auth_ref: str | None = None,
    diagnoses: Sequence[DiagnosisInput | str] | None = None,
    line_updates: Mapping[int, Mapping[str, Any]] | None = None,
    lines: Iterable[int] | None = None,
    override_edits: Iterable[str] = (),
    bus: EventBus | None = None,
) -> Claim:
    """Send a corrected claim for an adjudicated one (FHIR ``Claim.related`` ``prior``).

    Parameters
    ----------
    session : sqlalchemy.orm.Session
    claim_id : str
        The paid, partially paid or denied claim to correct.
    actor : str
    reason : str
        What was corrected (required; recorded on both claims).
    role : str, optional
    at : aware datetime, optional
        Submission time of the corrected claim. Default now.
    coverage_id : str, optional
        Bill another coverage of the patient (its payer becomes the insurer).
    pre_auth_ref : str, optional
        The authorisation reference to add.
    diagnoses : sequence of DiagnosisInput or str, optional
        Replace the diagnoses (a string is an ICD-10-CM code); the first is principal.
    line_updates : mapping of int to mapping, optional
        Changes per original line sequence: ``code_system``, ``code``, ``display``,
        ``quantity``, ``unit_price`` (net is recomputed), ``modifiers``,
        ``diagnosis_sequence``, ``service_date``, ``revenue_code``, ``category``.
    lines : iterable of int, optional
        The original lines being reconsidered (default all), renumbered from 1.
    override_edits : iterable of str
        As in :func:`submit_claim`.
    bus : EventBus, optional
        Where the :class:`~healthos_core.events.ClaimChanged` event goes (to the outbox
        when the live path is wired); default :func:`~healthos_core.events.default_bus`.

    Returns
    -------
    Claim
        The new claim, ``submitted``, with ``related_claim_id`` = the original and the
        same patient control number. The original becomes ``resubmitted``.

    Raises
    ------
    NotFoundError
        No such claim or coverage.
    ConflictError
        The original is not paid, partial or denied.
    ScrubFailedError
        The corrected claim still fails the scrubber; nothing is written.
    InvalidInputError
        A bad correction (unknown line or field, empty selection, no reason). Nothing is
        written.

    Notes
    -----
    The filing limit is not applied to a corrected claim when the payer's contract says
    so ("filing limit not re-applied", synthea-rcm contracts.csv).
    """
    actor = _require_text(actor, "actor", "say who corrects the claim")
    reason = _require_text(reason, "reason", "say what was corrected")
    when = _aware(at, "at")
    original = _get_claim(session, claim_id)
    _check_transition(original, _S.RESUBMITTED)
    originals = sorted(original.items, key=lambda i: i.sequence)
    by_sequence = {i.sequence: i for i in originals}
    chosen = sorted(set(lines)) if lines is not None else [i.sequence for i in originals]
    missing = [s for s in chosen if s not in by_sequence]
    updates = dict(line_updates or {})
    missing += [s for s in updates if s not in by_sequence]
    if missing:
        raise InvalidInputError(
            f"Claim/{claim_id} has no line {', '.join(str(s) for s in sorted(set(missing)))}"
        )
    if not chosen:
        raise InvalidInputError("lines selects no line: a corrected claim needs at least one")
    not_chosen = sorted(set(updates) - set(chosen))
    if not_chosen:
        raise InvalidInputError(
            f"line_updates names line(s) {', '.join(map(str, not_chosen))} that lines leaves out"
        )
    new_items = [
        _corrected_line(n, by_sequence[s], updates.get(s, {})) for n, s in enumerate(chosen, 1)
    ]
    insurer_id = original.insurer_id
    coverage_display = original.coverage_display
    if coverage_id is not None:
        coverage = session.get(Coverage, coverage_id)
        if coverage is None:
            raise NotFoundError(f"Coverage/{coverage_id} does not exist")
        if coverage.patient_id != original.patient_id:
            raise InvalidInputError(
                f"Coverage/{coverage_id} belongs to Patient/{coverage.patient_id}, not to "
                f"Patient/{original.patient_id}"
            )
        insurer_id = coverage.payor_id or insurer_id
        coverage_display = coverage.payor_display
    if pre_auth_ref is not None and (not pre_auth_ref.strip() or len(pre_auth_ref) > 64):
        raise InvalidInputError(f"pre_auth_ref {pre_auth_ref!r} is empty or too long")
    dx_values: list[tuple[str | None, str | None, str | None, str | None]]
    if diagnoses is not None:
        inputs = [DiagnosisInput(d) if isinstance(d, str) else d for d in diagnoses]
        for d in inputs:
            if not isinstance(d, DiagnosisInput) or not d.code.strip():
                raise InvalidInputError(f"diagnoses holds {d!r}: give codes or DiagnosisInput")
        dx_values = [(d.code_system, d.code.strip(), d.display, d.condition_id) for d in inputs]
    else:
        dx_values = [
            (d.code_system, d.code, d.display, d.condition_id)
            for d in _diagnoses_of(session, original.id)
        ]
    known = set(range(1, len(dx_values) + 1))
    for item in new_items:
        if item.diagnosis_sequence and diagnoses is not None:
            item.diagnosis_sequence = [p for p in item.diagnosis_sequence if p in known] or (
                [1] if dx_values else None
            )
    refs = _pre_auth_refs(original)
    if pre_auth_ref is not None and pre_auth_ref.strip() not in refs:
        refs.insert(0, pre_auth_ref.strip())
    currency = original.currency
    with session.begin_nested():
        corrected = Claim(
            id=str(uuid.uuid4()),
            patient_id=original.patient_id,
            encounter_id=original.encounter_id,
            facility_id=original.facility_id,
            status="active",
            type_code=original.type_code,
            use=original.use,
            created=when,
            billable_start=original.billable_start,
            billable_end=original.billable_end,
            provider_id=original.provider_id,
            insurer_id=insurer_id,
            coverage_id=coverage_id or original.coverage_id,
            coverage_display=coverage_display,
            currency=currency,
            related_claim_id=original.id,
            patient_control_number=original.patient_control_number,
            priority=original.priority,
            pre_auth_ref=refs[0] if refs else None,
            billing_status=None,
        )
        corrected.items.extend(new_items)
        corrected.total = sum((i.net or Decimal(0) for i in new_items), Decimal(0))
        rows = [
            ClaimDiagnosis(
                claim_id=corrected.id,
                sequence=n,
                code_system=system,
                code=code,
                display=display[:512] if display else None,
                condition_id=condition_id,
                type_code="principal" if n == 1 else None,
            )
            for n, (system, code, display, condition_id) in enumerate(dx_values, start=1)
        ]
        corrected.resource = _fhir_claim(corrected, new_items, rows)
        if refs:
            corrected.resource["insurance"][0]["preAuthRef"] = refs
        session.add(corrected)
        session.flush()
        session.add_all(rows)
        _history(
            session,
            corrected,
            _S.DRAFT.value,
            actor=actor,
            role=role,
            reason=f"corrected claim of Claim/{original.id}: {reason}",
            at=when,
            bus=bus,
        )
        session.flush()
        submit_claim(
            session,
            corrected.id,
            actor=actor,
            role=role,
            at=when,
            override_edits=override_edits,
            reason=reason if set(override_edits) else None,
        )
        _history(
            session,
            original,
            _S.RESUBMITTED.value,
            actor=actor,
            role=role,
            reason=f"corrected by Claim/{corrected.id}: {reason}",
            at=when,
            bus=bus,
        )
        session.flush()
    return corrected


# --------------------------------------------------------------------------- queries


def list_claims(
    session: Session,
    *,
    status: str | None = None,
    payer_id: str | None = None,
    patient_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Claim]:
    """Claims in the revenue cycle, newest first, filtered by billing status, payer, patient.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
    status : str, optional
        A :class:`~healthos_core.billing.entities.ClaimBillingStatus` value.
    payer_id, patient_id : str, optional
    limit : int, default=100
        At most 1000.
    offset : int, default=0

    Returns
    -------
    list of Claim

    Raises
    ------
    InvalidInputError
        Unknown status, or limit/offset out of range.
    """
    if status is not None and status not in {s.value for s in ClaimBillingStatus}:
        raise InvalidInputError(
            f"status {status!r} is not one of {', '.join(s.value for s in ClaimBillingStatus)}"
        )
    if not 1 <= limit <= 1000 or offset < 0:
        raise InvalidInputError("limit must be 1..1000 and offset ≥ 0")
    query = select(Claim).where(Claim.billing_status.is_not(None))
    if status is not None:
        query = query.where(Claim.billing_status == status)
    if payer_id is not None:
        query = query.where(Claim.insurer_id == payer_id)
    if patient_id is not None:
        query = query.where(Claim.patient_id == patient_id)
    query = query.order_by(Claim.created.desc(), Claim.id).limit(limit).offset(offset)
    return list(session.scalars(query))


def claim_history(session: Session, claim_id: str) -> list[ClaimStatusHistory]:
    """Return a claim's status changes in the order they were recorded.

    Raises
    ------
    NotFoundError
        No such claim.
    """
    _get_claim(session, claim_id)
    return list(
        session.scalars(
            select(ClaimStatusHistory)
            .where(ClaimStatusHistory.claim_id == claim_id)
            .order_by(ClaimStatusHistory.id)
        )
    )
