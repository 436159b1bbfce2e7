"""The CDS Hooks services of HealthOS: discovery, and the cards of each hook.

Three services (CDS Hooks 2.0.1 §Discovery; hooks from the HL7 hook library):

================================ ===================== =============================================
id                               hook                  cards
================================ ===================== =============================================
``healthos-patient-view``        ``patient-view``      the patient's open clinical suggestions
``healthos-order-sign``          ``order-sign``        prior authorisation missing, denial risk of
                                                       the resulting claim, duplicate orders
``healthos-encounter-discharge`` ``encounter-discharge`` unbilled charges, documentation missing
                                                       for the claim, readmission risk
================================ ===================== =============================================

Which cards a caller gets follows who may read which suggestions
(:mod:`healthos_core.access`): a clinician gets the clinical ones, a finance user the
finance ones (``docs/cds-hooks.md``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.advisory import SuggestionRecord, list_suggestions, save_suggestions
from healthos_core.billing.entities import ChargeItem, ChargeItemStatus, Claim, ClaimItem
from healthos_core.errors import InvalidInputError
from healthos_core.record.entities import Encounter, Patient
from reasoning.cds.cards import Card, card_from_record, card_from_suggestion
from reasoning.cds.orders import check_draft_orders, encounter_has_diagnosis, read_drafts
from reasoning.cds.prefetch import (
    PrefetchUnavailableError,
    bundle_resources,
    context_id,
    prefetched,
    reference_id,
    safe_text,
)
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion

__all__ = [
    "CLINICAL_AUDIENCES",
    "SERVICES",
    "CdsService",
    "HookCall",
    "encounter_discharge",
    "order_sign",
    "patient_view",
]

#: Audiences of clinical suggestions.
CLINICAL_AUDIENCES: Final = frozenset({"clinician", "nurse"})
#: Open and acknowledged suggestions still ask for a decision: they become cards.
_UNDECIDED: Final = ("open", "acknowledged")
_MAX_CARDS: Final = 50
#: Stored suggestion kinds shown at discharge (besides the live checks).
_DISCHARGE_KINDS: Final = (
    "clinical.readmission",
    "clinical.lace",
    "finance.revenue_leakage",
    "finance.denial_risk",
)
DISCHARGE_SOURCE: Final = Source(
    name="cds_encounter_discharge",
    version="1.0.0",
    reference="HealthOS claim scrubber edits (X12 CARC 16); UB-04 FL 17 discharge status",
)


@dataclass(frozen=True, kw_only=True)
class CdsService:
    """One CDS service as discovery describes it (CDS Hooks 2.0.1 §Response)."""

    id: str
    hook: str
    title: str
    description: str
    prefetch: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return the discovery entry."""
        return {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
            "prefetch": dict(self.prefetch),
        }


_PATIENT: Final = "Patient/{{context.patientId}}"
_ENCOUNTER: Final = "Encounter/{{context.encounterId}}"
#: The services, by id.
SERVICES: Final[dict[str, CdsService]] = {
    s.id: s
    for s in (
        CdsService(
            id="healthos-patient-view",
            hook="patient-view",
            title="HealthOS clinical suggestions",
            description="The patient's open clinical suggestions (NEWS2, qSOFA, SIRS, AKI, "
            "LACE, deterioration and readmission models), each with its factors and evidence",
            prefetch={"patient": _PATIENT},
        ),
        CdsService(
            id="healthos-order-sign",
            hook="order-sign",
            title="HealthOS order checks",
            description="For the draft orders: prior authorisation the payer's contract needs "
            "and is missing, the claim edits that would deny the resulting claim, and "
            "duplicates of recent orders",
            prefetch={
                "patient": _PATIENT,
                "encounter": _ENCOUNTER,
                "coverage": "Coverage?patient={{context.patientId}}&status=active",
            },
        ),
        CdsService(
            id="healthos-encounter-discharge",
            hook="encounter-discharge",
            title="HealthOS discharge checks",
            description="Before discharge: charges not on a claim, documentation the claim "
            "needs (diagnosis, discharge disposition), readmission risk",
            prefetch={
                "patient": _PATIENT,
                "encounter": _ENCOUNTER,
                "conditions": "Condition?encounter={{context.encounterId}}",
            },
        ),
    )
}


@dataclass(frozen=True, kw_only=True)
class HookCall:
    """One call of a service (CDS Hooks 2.0.1 §HTTP Request), as the service reads it.

    Parameters
    ----------
    context : mapping
        The hook's context (``patientId``, ``encounterId``, ``userId``, ``draftOrders``).
    prefetch : mapping or None
        Prefetched resources by key, ``None`` when none were sent.
    audiences : collection of str
        The audiences whose suggestions the caller may read.
    now : datetime
        Aware UTC time of the call.
    """

    context: Mapping[str, Any]
    prefetch: Mapping[str, Any] | None
    audiences: Collection[str]
    now: dt.datetime


def _patient(session: Session, call: HookCall) -> tuple[str, bool]:
    """Return the patient id and whether the record holds it; 412 if nobody knows it."""
    patient_id = context_id(call.context, "patientId")
    assert patient_id is not None  # noqa: S101 - required above
    sent = prefetched(call.prefetch, "patient", "Patient", patient_id)
    in_record = session.get(Patient, patient_id) is not None
    if sent is None and not in_record:
        raise PrefetchUnavailableError(
            f"Patient/{patient_id} is neither in the prefetch ('patient') nor in HealthOS's "
            "record: send it as prefetch 'patient', or import the patient"
        )
    return patient_id, in_record


def _encounter(
    session: Session, call: HookCall, patient_id: str, *, required: bool
) -> tuple[str | None, Encounter | None, str | None, dict[str, Any] | None]:
    """Return the encounter id, its record row, its class and its prefetched resource."""
    encounter_id = context_id(call.context, "encounterId", required=required)
    if encounter_id is None:
        return None, None, None, None
    sent = prefetched(call.prefetch, "encounter", "Encounter", encounter_id)
    row = session.get(Encounter, encounter_id)
    if row is not None and row.patient_id != patient_id:
        raise InvalidInputError(
            f"context.encounterId: Encounter/{encounter_id} is not Patient/{patient_id}'s"
        )
    if sent is not None:
        subject = sent.get("subject")
        if subject is not None and reference_id(subject, "Patient") not in (None, patient_id):
            raise InvalidInputError(
                f"prefetch.encounter (Encounter/{encounter_id}) is another patient's"
            )
        klass = sent.get("class")
        code = klass.get("code") if isinstance(klass, Mapping) else None
        class_code = safe_text(code, "prefetch.encounter.class.code", limit=16) if code else None
        return encounter_id, row, class_code, sent
    if row is None:
        if required:
            raise PrefetchUnavailableError(
                f"Encounter/{encounter_id} is neither in the prefetch ('encounter') nor in "
                "HealthOS's record: send it as prefetch 'encounter'"
            )
        return encounter_id, None, None, None
    return encounter_id, row, row.class_code, None


def patient_view(session: Session, call: HookCall) -> list[Card]:
    """Return the cards of ``patient-view``: the patient's open clinical suggestions.

    Open and acknowledged suggestions (still undecided) of the clinical audiences the
    caller may read, most urgent first (:func:`~healthos_core.advisory.list_suggestions`),
    at most 50. With ``context.encounterId``, only that encounter's suggestions and those
    not about an encounter.

    Raises
    ------
    PrefetchUnavailableError
        The patient is neither prefetched nor in the record (412).
    InvalidInputError
        ``context.patientId`` is missing or not a FHIR id.
    """
    patient_id, _ = _patient(session, call)
    encounter_id = context_id(call.context, "encounterId", required=False)
    audiences = sorted(CLINICAL_AUDIENCES & set(call.audiences))
    records, _ = list_suggestions(
        session, audience=audiences, patient_id=patient_id, status=_UNDECIDED, limit=_MAX_CARDS
    )
    return [
        card_from_record(r)
        for r in records
        if r.kind.startswith("clinical.")
        and (
            encounter_id is None
            or r.subject == f"Encounter/{encounter_id}"
            or not r.subject.startswith("Encounter/")
        )
    ]


def order_sign(session: Session, call: HookCall) -> list[Card]:
    """Return the cards of ``order-sign`` for ``context.draftOrders`` and store their suggestions.

    See :mod:`reasoning.cds.orders` for the checks. The suggestions are stored
    (:func:`~healthos_core.advisory.save_suggestions`; the same drafts give the same ids),
    so feedback on a card reaches its suggestion. Flushes; the caller commits.

    Raises
    ------
    PrefetchUnavailableError
        No ``context.draftOrders``, or the patient is neither prefetched nor in the record.
    InvalidInputError
        The context or prefetch is malformed (named in the message).
    """
    patient_id, in_record = _patient(session, call)
    drafts = read_drafts(call.context, patient_id)
    _, encounter, class_code, _ = _encounter(session, call, patient_id, required=False)
    diagnosis = encounter_has_diagnosis(session, encounter.id) if encounter is not None else None
    coverage = call.prefetch.get("coverage") if call.prefetch else None
    user = call.context.get("userId")
    findings = check_draft_orders(
        session,
        patient_id=patient_id,
        patient_in_record=in_record,
        encounter=encounter,
        encounter_class=class_code,
        drafts=drafts,
        coverage_bundle=coverage,
        conditions_known=diagnosis,
        user=safe_text(user, "context.userId", limit=255) if user is not None else None,
        now=call.now,
    )
    if findings:
        save_suggestions(session, [f.suggestion for f in findings])
    return [
        card_from_suggestion(f.suggestion, f.actions)
        for f in findings
        if str(f.suggestion.audience) in call.audiences
    ]


def _conditions(session: Session, call: HookCall, encounter_id: str) -> tuple[bool, str]:
    """Whether the encounter has a diagnosis, and where that was read."""
    sent = call.prefetch.get("conditions") if call.prefetch else None
    if sent is not None:
        found = any(
            r["resourceType"] == "Condition"
            for _, r in bundle_resources(sent, "prefetch.conditions")
        )
        return found, "prefetch 'conditions'"
    return encounter_has_diagnosis(session, encounter_id), "the record"


def _unbilled(session: Session, encounter_id: str) -> list[ChargeItem]:
    """Billable charges of the encounter that no claim line carries."""
    on_claims = select(ClaimItem.charge_item_id).where(ClaimItem.charge_item_id.is_not(None))
    return list(
        session.scalars(
            select(ChargeItem)
            .where(
                ChargeItem.encounter_id == encounter_id,
                ChargeItem.status == ChargeItemStatus.BILLABLE.value,
                ChargeItem.id.not_in(on_claims),
            )
            .order_by(ChargeItem.occurred_at, ChargeItem.id)
        )
    )


def _discharge_findings(
    session: Session,
    call: HookCall,
    patient_id: str,
    encounter_id: str,
    encounter: Encounter | None,
    class_code: str | None,
    sent: Mapping[str, Any] | None,
) -> list[Suggestion]:
    findings: list[Suggestion] = []
    facility = encounter.facility_id if encounter is not None else None
    subject = f"Encounter/{encounter_id}"
    if encounter is not None:
        charges = _unbilled(session, encounter_id)
        if charges:
            currency = charges[0].currency
            total = sum((c.total for c in charges if c.currency == currency), Decimal(0))
            factors = tuple(
                Factor(
                    name=f"ChargeItem/{c.id}",
                    value=format(c.total, "f"),
                    contribution=float(c.total),
                    unit=c.currency,
                    text=f"{c.display or c.code} ({c.code})",
                )
                for c in charges
            )
            findings.append(
                Suggestion(
                    kind="cds.unbilled_charges",
                    audience=Audience.FINANCE,
                    severity=Severity.WARNING,
                    subject=subject,
                    summary=f"{len(charges)} charge{'s' if len(charges) > 1 else ''} not on "
                    f"any claim: {format(total, 'f')} {currency} unbilled at discharge"[:140],
                    explanation=Explanation(
                        method="rule:unbilled_charges",
                        factors=factors,
                        evidence=tuple(f"ChargeItem/{c.id}" for c in charges),
                    ),
                    recommended_action="Build the encounter's claim with these charges "
                    "(POST /api/v1/claims) once coding is complete",
                    source=DISCHARGE_SOURCE,
                    patient_id=patient_id,
                    facility_id=facility,
                    amount_at_stake=total,
                    currency=currency,
                    created_at=call.now,
                )
            )
    missing: list[Factor] = []
    has_diagnosis, where = _conditions(session, call, encounter_id)
    if not has_diagnosis:
        missing.append(
            Factor(
                name="rule:diagnosis_missing",
                value="16",
                contribution=0.0,
                unit="X12 CARC",
                text=f"no diagnosis (Condition) for the encounter in {where}",
            )
        )
    disposition: object = None
    if sent is not None:
        stay = sent.get("hospitalization")
        disposition = stay.get("dischargeDisposition") if isinstance(stay, Mapping) else None
    elif encounter is not None:
        disposition = encounter.discharge_disposition
    if class_code == "IMP" and not disposition:
        missing.append(
            Factor(
                name="rule:discharge_disposition_missing",
                value="16",
                contribution=0.0,
                unit="X12 CARC",
                text="no discharge disposition: an inpatient claim needs the patient's "
                "discharge status (UB-04 form locator 17)",
            )
        )
    if missing:
        names = " and ".join(
            "diagnosis" if f.name == "rule:diagnosis_missing" else "discharge disposition"
            for f in missing
        )
        findings.append(
            Suggestion(
                kind="cds.discharge_documentation",
                audience=Audience.CLINICIAN,
                severity=Severity.WARNING,
                subject=subject,
                summary=f"Document the {names} before discharge: the claim cannot be coded "
                "without it (CARC 16)",
                explanation=Explanation(
                    method="rule:discharge_documentation",
                    factors=tuple(missing),
                    evidence=(subject, f"Patient/{patient_id}"),
                ),
                recommended_action=f"Record the {names} on the encounter before discharge",
                source=DISCHARGE_SOURCE,
                patient_id=patient_id,
                facility_id=facility,
                created_at=call.now,
            )
        )
    return findings


def _stored_for_discharge(
    session: Session, call: HookCall, encounter_id: str
) -> list[SuggestionRecord]:
    """Undecided stored suggestions about the encounter or its claims, of the shown kinds."""
    claims = list(session.scalars(select(Claim.id).where(Claim.encounter_id == encounter_id)))
    subjects = [f"Encounter/{encounter_id}", *(f"Claim/{c}" for c in claims)]
    records: list[SuggestionRecord] = []
    for subject in subjects:
        found, _ = list_suggestions(
            session,
            audience=sorted(call.audiences),
            subject=subject,
            status=_UNDECIDED,
            limit=_MAX_CARDS,
        )
        records += [r for r in found if r.kind in _DISCHARGE_KINDS]
    return records


def encounter_discharge(session: Session, call: HookCall) -> list[Card]:
    """Return the cards of ``encounter-discharge`` and store the suggestions of its checks.

    Live checks: billable charges of the encounter on no claim (``cds.unbilled_charges``,
    finance), documentation the claim needs (``cds.discharge_documentation``, clinician:
    a diagnosis, from prefetch ``conditions`` or the record; for inpatients a discharge
    disposition). Stored: the encounter's undecided readmission (model and LACE),
    revenue-leakage and its claims' denial-risk suggestions. Only the audiences the
    caller may read are returned; all live findings are stored. Flushes.

    Raises
    ------
    PrefetchUnavailableError
        The patient or the encounter is neither prefetched nor in the record (412).
    InvalidInputError
        ``context.patientId`` or ``context.encounterId`` is missing or malformed.
    """
    patient_id, _ = _patient(session, call)
    encounter_id, encounter, class_code, sent = _encounter(session, call, patient_id, required=True)
    assert encounter_id is not None  # noqa: S101 - required
    findings = _discharge_findings(
        session, call, patient_id, encounter_id, encounter, class_code, sent
    )
    if findings:
        save_suggestions(session, findings)
    cards = [card_from_suggestion(s) for s in findings if str(s.audience) in call.audiences]
    cards += [card_from_record(r) for r in _stored_for_discharge(session, call, encounter_id)]
    return cards


#: The card builder of each service.
HANDLERS: Final = {
    "healthos-patient-view": patient_view,
    "healthos-order-sign": order_sign,
    "healthos-encounter-discharge": encounter_discharge,
}


def cards_json(cards: Sequence[Card], base_url: str) -> dict[str, Any]:
    """Return the CDS Hooks response body (2.0.1 §CDS Service Response) of ``cards``."""
    return {"cards": [c.to_json(base_url) for c in cards]}
