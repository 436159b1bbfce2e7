"""``order-sign``: what a clinician should know about the draft orders before signing.

For the draft orders of ``context.draftOrders`` (a Bundle of MedicationRequest and
ServiceRequest resources, CDS Hooks ``order-sign`` 1.0 context), three checks, each a
suggestion for the clinician, stored so the card's feedback can find it:

* **prior authorisation** (``cds.prior_authorization``): the patient's primary coverage
  active today (prefetch ``coverage``, else the record's) has a payer contract that needs
  prior authorisation for the order's service category (:attr:`Contract.prior_auth_categories`,
  not for an exempt encounter class), and no approved authorisation on file covers it
  (:func:`~healthos_core.billing.payers.find_valid_authorization`). The card's suggestion
  creates a FHIR ``Claim`` with ``use = preauthorization`` (the request to the payer);
* **denial risk of the resulting claim** (``cds.claim_denial_risk``): the claim-scrubber
  edits that would deny the claim these orders produce (HealthOS claim scrubber,
  ``docs/claims.md``): no active coverage on the service date (X12 CARC 26/27/31),
  prior authorisation missing (CARC 197), no diagnosis on the encounter or the order
  (CARC 16), a duplicate service (CARC 18). Each edit is a factor with its CARC;
* **duplicate of a recent order** (``cds.duplicate_order``): the same medication
  ordered for the patient in the last :data:`DUPLICATE_DAYS` days (the record's
  MedicationRequests), the same procedure performed in that window (Procedures), or the
  same code twice among the drafts. The card's suggestion deletes the draft.

TODO(denial-model): the denial-risk model scores claims already built; a draft claim's
probability needs the claim features from orders, not yet built.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.billing.payers import (
    ServiceCode,
    check_eligibility,
    find_contract,
    find_valid_authorization,
    pick_service_code,
)
from healthos_core.errors import InvalidInputError
from healthos_core.record.entities import Condition, Encounter, MedicationRequest, Procedure
from reasoning.cds.cards import Action, CardSuggestion
from reasoning.cds.prefetch import (
    PrefetchUnavailableError,
    bundle_resources,
    fhir_code,
    fhir_datetime,
    reference_id,
    safe_text,
)
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion

__all__ = ["DUPLICATE_DAYS", "DraftOrder", "OrderFinding", "check_draft_orders", "read_drafts"]

#: An order of the same code within this many days is a possible duplicate.
DUPLICATE_DAYS: Final = 30
#: Statuses of a recorded MedicationRequest that still count as ordered.
_ORDERED: Final = ("active", "completed", "on-hold", "draft")
SOURCE: Final = Source(
    name="cds_order_sign",
    version="1.0.0",
    reference="HealthOS claim scrubber edits (X12 CARC 16, 18, 26, 27, 31, 197); payer contracts",
)
_ORDER_TYPES: Final = ("MedicationRequest", "ServiceRequest")


@dataclass(frozen=True, slots=True)
class DraftOrder:
    """One draft order of ``context.draftOrders``.

    Attributes
    ----------
    resource_type : {"MedicationRequest", "ServiceRequest"}
    id : str
        The EHR's id of the draft (``"draft-<entry index>"`` when it has none).
    system, code, display : str or None
        The first coding of ``medicationCodeableConcept`` / ``code``.
    has_reason : bool
        The order names a reason (``reasonCode`` / ``reasonReference``): a diagnosis.
    resource : dict
        The draft as sent.
    """

    resource_type: str
    id: str
    system: str | None
    code: str | None
    display: str | None
    has_reason: bool
    resource: dict[str, Any]

    @property
    def reference(self) -> str:
        """``"MedicationRequest/<id>"``."""
        return f"{self.resource_type}/{self.id}"

    @property
    def label(self) -> str:
        """The order in words (its display, else its code)."""
        return self.display or self.code or self.reference


@dataclass(frozen=True, slots=True)
class OrderFinding:
    """A suggestion about draft orders and the concrete actions of its card."""

    suggestion: Suggestion
    actions: tuple[CardSuggestion, ...] = ()


def read_drafts(context: Mapping[str, Any], patient_id: str) -> list[DraftOrder]:
    """Return the draft MedicationRequests and ServiceRequests of ``context.draftOrders``.

    Other resource types are skipped (they are not orders this service checks).

    Raises
    ------
    PrefetchUnavailableError
        ``context.draftOrders`` is missing: there is nothing to check (412).
    InvalidInputError
        It is not a Bundle, an order names another patient, or a text cannot be stored.
    """
    bundle = context.get("draftOrders")
    if bundle is None:
        raise PrefetchUnavailableError(
            "order-sign needs context.draftOrders (a Bundle of the draft orders); none was sent"
        )
    drafts: list[DraftOrder] = []
    for index, resource in bundle_resources(bundle, "context.draftOrders"):
        kind = resource["resourceType"]
        if kind not in _ORDER_TYPES:
            continue
        where = f"context.draftOrders.entry[{index}].resource"
        subject = resource.get("subject")
        if subject is not None and reference_id(subject, "Patient") not in (None, patient_id):
            raise InvalidInputError(f"{where}.subject names another patient than context.patientId")
        raw_id = resource.get("id")
        rid = safe_text(raw_id, f"{where}.id", limit=64) if raw_id is not None else f"draft-{index}"
        concept = resource.get(
            "medicationCodeableConcept" if kind == "MedicationRequest" else "code"
        )
        coded = fhir_code(concept, f"{where}.code")
        system, code, display = coded if coded is not None else (None, None, None)
        drafts.append(
            DraftOrder(
                resource_type=kind,
                id=rid,
                system=system,
                code=code,
                display=display,
                has_reason=bool(resource.get("reasonCode") or resource.get("reasonReference")),
                resource=resource,
            )
        )
    return drafts


@dataclass(frozen=True, slots=True)
class _Payer:
    payer_id: str
    coverage_id: str | None
    source: str  # "prefetch" or "record"


def _primary_coverage(
    session: Session,
    patient_id: str,
    coverage_bundle: object,
    on: dt.datetime,
    in_record: bool,
) -> tuple[_Payer | None, str, str | None]:
    """Return the primary payer active on ``on``, the reason, and the CARC when none.

    From the prefetched ``coverage`` Bundle when sent, else from the record.
    """
    day = on.date()
    if coverage_bundle is not None:
        active: list[tuple[int, str, str | None]] = []
        for _, resource in bundle_resources(coverage_bundle, "prefetch.coverage"):
            if resource["resourceType"] != "Coverage" or resource.get("status") != "active":
                continue
            payors = resource.get("payor") or []
            payer = (
                reference_id(payors[0], "Organization")
                if isinstance(payors, list) and payors
                else None
            )
            if payer is None:
                continue
            period = resource.get("period")
            if not isinstance(period, Mapping):
                period = {}
            start, end = fhir_datetime(period.get("start")), fhir_datetime(period.get("end"))
            if (start and start.date() > day) or (end and end.date() < day):
                continue
            order = resource.get("order")
            rid = resource.get("id")
            active.append(
                (
                    order if isinstance(order, int) else 1,
                    payer,
                    safe_text(rid, "prefetch.coverage.id", limit=64)
                    if isinstance(rid, str)
                    else None,
                )
            )
        if not active:
            return None, f"no Coverage in prefetch 'coverage' is active on {day.isoformat()}", "27"
        order, payer, rid = min(active, key=lambda a: (a[0], a[1]))
        return _Payer(payer, rid, "prefetch"), f"Coverage/{rid} (prefetch) is primary", None
    if not in_record:
        return None, "the patient's coverage is neither prefetched nor in the record", None
    result = check_eligibility(session, patient_id=patient_id, on=on)
    if not result.eligible or result.payer_id is None:
        return None, result.reason, result.carc
    return _Payer(result.payer_id, result.coverage_id, "record"), result.reason, None


def _category(session: Session, draft: DraftOrder, class_code: str | None) -> str | None:
    if draft.code is None:
        return None
    rows = list(session.scalars(select(ServiceCode).where(ServiceCode.code == draft.code)))
    row = pick_service_code(rows, display=draft.display, class_code=class_code)
    return None if row is None else row.service_category


def _preauthorization_claim(
    draft: DraftOrder,
    patient_id: str,
    payer: _Payer,
    user: str | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """Return a FHIR R4 ``Claim`` with ``use = preauthorization`` for one draft order."""
    coding = {
        k: v
        for k, v in (("system", draft.system), ("code", draft.code), ("display", draft.display))
        if v
    }
    claim: dict[str, Any] = {
        "resourceType": "Claim",
        "status": "draft",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "pharmacy"
                    if draft.resource_type == "MedicationRequest"
                    else "professional",
                }
            ]
        },
        "use": "preauthorization",
        "patient": {"reference": f"Patient/{patient_id}"},
        "created": now.date().isoformat(),
        "insurer": {"reference": f"Organization/{payer.payer_id}"},
        "priority": {"coding": [{"code": "normal"}]},
        "item": [
            {
                "sequence": 1,
                "productOrService": {"coding": [coding]},
            }
        ],
    }
    if user:
        claim["provider"] = {"reference": user}
    if payer.coverage_id:
        claim["insurance"] = [
            {
                "sequence": 1,
                "focal": True,
                "coverage": {"reference": f"Coverage/{payer.coverage_id}"},
            }
        ]
    return claim


def _recent_duplicate(
    session: Session, patient_id: str, draft: DraftOrder, now: dt.datetime
) -> str | None:
    """Return the reference of a recent order of the same code, or ``None``."""
    if draft.code is None:
        return None
    since = now - dt.timedelta(days=DUPLICATE_DAYS)
    if draft.resource_type == "MedicationRequest":
        found = session.scalars(
            select(MedicationRequest.id)
            .where(
                MedicationRequest.patient_id == patient_id,
                MedicationRequest.code == draft.code,
                MedicationRequest.status.in_(_ORDERED),
                MedicationRequest.authored_on >= since,
                MedicationRequest.authored_on <= now,
                MedicationRequest.id != draft.id,
            )
            .order_by(MedicationRequest.authored_on.desc())
            .limit(1)
        ).first()
        return None if found is None else f"MedicationRequest/{found}"
    performed = session.scalars(
        select(Procedure.id)
        .where(
            Procedure.patient_id == patient_id,
            Procedure.code == draft.code,
            Procedure.performed_start >= since,
            Procedure.performed_start <= now,
        )
        .order_by(Procedure.performed_start.desc())
        .limit(1)
    ).first()
    return None if performed is None else f"Procedure/{performed}"


def _summary(text: str) -> str:
    return text if len(text) <= 140 else text[:139] + "…"


def check_draft_orders(
    session: Session,
    *,
    patient_id: str,
    patient_in_record: bool,
    encounter: Encounter | None,
    encounter_class: str | None,
    drafts: Sequence[DraftOrder],
    coverage_bundle: object,
    conditions_known: bool | None,
    user: str | None,
    now: dt.datetime,
) -> list[OrderFinding]:
    """Check draft orders for prior authorisation, claim denial edits and duplicates.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        Read only.
    patient_id : str
    patient_in_record : bool
        Whether HealthOS's record holds the patient (else only prefetched data is used).
    encounter : Encounter or None
        The record's encounter of ``context.encounterId``.
    encounter_class : str or None
        Its class (AMB, EMER, IMP …), from the prefetch or the record.
    drafts : sequence of DraftOrder
    coverage_bundle : dict or None
        Prefetch ``coverage`` (a Bundle), ``None`` when not sent.
    conditions_known : bool or None
        Whether the encounter has a diagnosis (``None``: no encounter to ask).
    user : str or None
        ``context.userId`` (``"Practitioner/…"``), the provider of a prior-auth request.
    now : datetime
        Aware UTC: the service date.

    Returns
    -------
    list of OrderFinding
        Prior-authorisation findings first, then the claim's denial risk, then duplicates.
    """
    evidence_base = (f"Patient/{patient_id}",)
    findings: list[OrderFinding] = []
    payer, coverage_reason, coverage_carc = _primary_coverage(
        session, patient_id, coverage_bundle, now, patient_in_record
    )
    contract = find_contract(session, payer.payer_id) if payer is not None else None
    edits: list[Factor] = []
    edit_evidence: list[str] = []
    if payer is None and coverage_carc is not None:
        edits.append(
            Factor(
                name="rule:coverage_inactive",
                value=coverage_carc,
                contribution=0.0,
                unit="X12 CARC",
                text=f"no active coverage: {coverage_reason}",
            )
        )
    seen_codes: dict[str, DraftOrder] = {}
    for draft in drafts:
        refs = (draft.reference, *evidence_base)
        # Prior authorisation the payer's contract needs and is missing.
        category = _category(session, draft, encounter_class) if contract is not None else None
        if (
            contract is not None
            and payer is not None
            and category is not None
            and contract.needs_prior_auth(category, encounter_class)
        ):
            found = None
            if patient_in_record:
                for covers in dict.fromkeys((category, draft.code or category)):
                    found = found or find_valid_authorization(
                        session,
                        patient_id=patient_id,
                        payer_id=payer.payer_id,
                        category_or_code=covers,
                        on=now,
                    )
            if found is None:
                payer_name = contract.payer_name or f"Organization/{payer.payer_id}"
                factor = Factor(
                    name="rule:prior_auth_missing",
                    value="197",
                    contribution=0.0,
                    unit="X12 CARC",
                    text=f"{payer_name} needs prior authorisation for {category}; none on file",
                )
                edits.append(factor)
                edit_evidence.append(draft.reference)
                suggestion = Suggestion(
                    kind="cds.prior_authorization",
                    audience=Audience.CLINICIAN,
                    severity=Severity.WARNING,
                    subject=draft.reference,
                    summary=_summary(
                        f"Prior authorisation needed: {payer_name} requires it for "
                        f"{category} ({draft.label})"
                    ),
                    explanation=Explanation(
                        method="rule:prior_authorization",
                        factors=(
                            factor,
                            Factor(
                                name="service_category",
                                value=category,
                                contribution=0.0,
                                text=f"{draft.label} is billed as {category}",
                            ),
                            Factor(
                                name="coverage",
                                value=payer.coverage_id or payer.payer_id,
                                contribution=0.0,
                                text=coverage_reason,
                            ),
                        ),
                        evidence=(*refs, contract.reference),
                    ),
                    recommended_action=(
                        f"Request prior authorisation from {payer_name} before the service, "
                        "or the claim line is denied (CARC 197)"
                    ),
                    source=SOURCE,
                    patient_id=patient_id,
                    facility_id=encounter.facility_id if encounter is not None else None,
                    created_at=now,
                )
                action = Action(
                    type="create",
                    description=f"Request prior authorisation of {draft.label} from {payer_name}",
                    resource=_preauthorization_claim(draft, patient_id, payer, user, now),
                )
                findings.append(
                    OrderFinding(
                        suggestion,
                        (CardSuggestion(label="Request prior authorisation", actions=(action,)),),
                    )
                )
        # A duplicate of a recent order, or of another draft.
        duplicate_of = None
        if draft.code is not None:
            twin = seen_codes.get(draft.code)
            duplicate_of = twin.reference if twin is not None else None
            seen_codes.setdefault(draft.code, draft)
        if duplicate_of is None and patient_in_record:
            duplicate_of = _recent_duplicate(session, patient_id, draft, now)
        if duplicate_of is not None:
            factor = Factor(
                name="rule:duplicate_order",
                value=duplicate_of,
                contribution=0.0,
                text=f"{draft.label} ({draft.code}) already ordered or done: {duplicate_of}",
            )
            edits.append(
                Factor(
                    name="rule:duplicate_service",
                    value="18",
                    contribution=0.0,
                    unit="X12 CARC",
                    text=f"duplicate of {duplicate_of}",
                )
            )
            edit_evidence.append(draft.reference)
            suggestion = Suggestion(
                kind="cds.duplicate_order",
                audience=Audience.CLINICIAN,
                severity=Severity.WARNING,
                subject=draft.reference,
                summary=_summary(f"Possible duplicate: {draft.label} ({duplicate_of})"),
                explanation=Explanation(
                    method="rule:duplicate_order",
                    factors=(factor,),
                    evidence=(*refs, duplicate_of),
                ),
                recommended_action=(
                    f"Check {duplicate_of}; remove this draft if it repeats it "
                    f"(same code within {DUPLICATE_DAYS} days)"
                ),
                source=SOURCE,
                patient_id=patient_id,
                facility_id=encounter.facility_id if encounter is not None else None,
                created_at=now,
            )
            action = Action(
                type="delete",
                description=f"Remove the duplicate draft order {draft.label}",
                resource_id=draft.reference,
            )
            findings.append(
                OrderFinding(
                    suggestion, (CardSuggestion(label="Remove the draft", actions=(action,)),)
                )
            )
    if conditions_known is False and not all(d.has_reason for d in drafts):
        edits.append(
            Factor(
                name="rule:diagnosis_missing",
                value="16",
                contribution=0.0,
                unit="X12 CARC",
                text="no diagnosis on the encounter or the orders: the claim cannot be coded",
            )
        )
    if edits and drafts:
        critical = any(f.name == "rule:coverage_inactive" for f in edits)
        carcs = ", ".join(dict.fromkeys(str(f.value) for f in edits if f.unit == "X12 CARC"))
        subject = f"Encounter/{encounter.id}" if encounter is not None else f"Patient/{patient_id}"
        evidence = (*dict.fromkeys(edit_evidence or [d.reference for d in drafts]), *evidence_base)
        suggestion = Suggestion(
            kind="cds.claim_denial_risk",
            audience=Audience.CLINICIAN,
            severity=Severity.CRITICAL if critical else Severity.WARNING,
            subject=subject,
            summary=_summary(
                f"Claim for these orders would be denied: {len(edits)} "
                f"edit{'s' if len(edits) > 1 else ''} (CARC {carcs})"
            ),
            explanation=Explanation(
                method="rule:claim_scrubber", factors=tuple(edits), evidence=evidence
            ),
            recommended_action="Fix each edit before signing: "
            + "; ".join(f.text or f.name for f in edits),
            source=SOURCE,
            score=float(len(edits)),
            band="deny" if critical or len(edits) > 1 else "review",
            patient_id=patient_id,
            facility_id=encounter.facility_id if encounter is not None else None,
            created_at=now,
        )
        findings.append(OrderFinding(suggestion))
    return sorted(findings, key=lambda f: _ORDER.index(f.suggestion.kind))


_ORDER: Final = ("cds.prior_authorization", "cds.claim_denial_risk", "cds.duplicate_order")


def encounter_has_diagnosis(session: Session, encounter_id: str) -> bool:
    """Whether the record holds a Condition of the encounter."""
    return (
        session.scalars(
            select(Condition.id).where(Condition.encounter_id == encounter_id).limit(1)
        ).first()
        is not None
    )
