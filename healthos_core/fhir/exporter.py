"""Export a patient's record as a FHIR R4 Bundle (``Patient/$everything`` shape).

Resources that came in through FHIR are returned as received (references as
``"Type/id"``) with HealthOS's current state laid over them (status, period);
resources created through the library are built from their columns. The result
validates with ``fhir.resources`` R4B models.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core import terminology as t
from healthos_core.billing.entities import (
    ChargeItem,
    Claim,
    ClaimResponse,
    ExplanationOfBenefit,
)
from healthos_core.billing.money import ledger_currency
from healthos_core.errors import NotFoundError
from healthos_core.fhir.refs import format_datetime
from healthos_core.operations import codes as ops
from healthos_core.record.entities import (
    AllergyIntolerance,
    Appointment,
    Condition,
    Coverage,
    DiagnosticReport,
    Encounter,
    Immunization,
    Location,
    MedicationAdministration,
    MedicationRequest,
    Observation,
    Organization,
    Patient,
    Practitioner,
    Procedure,
    RecordMixin,
    Task,
)

#: Patient compartment: entity, and the column holding the patient id.
COMPARTMENT: tuple[type[RecordMixin], ...] = (
    Coverage,
    Encounter,
    Condition,
    Observation,
    Procedure,
    MedicationRequest,
    MedicationAdministration,
    Immunization,
    DiagnosticReport,
    AllergyIntolerance,
    ChargeItem,
    Claim,
    ExplanationOfBenefit,
    ClaimResponse,
    Task,
    Appointment,
)


def _concept(system: str | None, code: str | None, display: str | None) -> dict[str, Any]:
    coding = {k: v for k, v in (("system", system), ("code", code), ("display", display)) if v}
    concept: dict[str, Any] = {"coding": [coding]} if coding.get("code") else {}
    if display:
        concept["text"] = display
    return concept or {"text": "unknown"}


def _reference(resource_type: str, resource_id: str | None) -> dict[str, str] | None:
    return {"reference": f"{resource_type}/{resource_id}"} if resource_id else None


def _period(start: dt.datetime | None, end: dt.datetime | None) -> dict[str, str] | None:
    value = {k: format_datetime(v) for k, v in (("start", start), ("end", end)) if v}
    return value or None  # type: ignore[return-value]


def _money(amount: Decimal | None, currency: str | None) -> dict[str, Any] | None:
    if amount is None:
        return None
    return {"value": float(amount), "currency": currency or ledger_currency()}


#: FHIR R4 identifier type codes (HL7 v2 table 0203: ``MR``, ``SS`` …).
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
#: FHIR R4 ``discharge-disposition`` code system (Encounter.hospitalization).
DISCHARGE_DISPOSITION = "http://terminology.hl7.org/CodeSystem/discharge-disposition"


def _clean(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if v is not None and v != [] and v != {}}


def _patient(e: Patient) -> dict[str, Any]:
    name = {"family": e.family, "given": e.given.split(" ") if e.given else None}
    return _clean(
        {
            "name": [_clean(name)] if e.family or e.given else None,
            "gender": e.gender,
            "birthDate": e.birth_date.isoformat() if e.birth_date else None,
            "deceasedDateTime": format_datetime(e.deceased_at),
            "identifier": [
                _clean(
                    {
                        "type": {"coding": [{"system": IDENTIFIER_TYPE, "code": i.type_code}]}
                        if i.type_code
                        else None,
                        "system": i.system or None,
                        "value": i.value,
                    }
                )
                for i in e.identifiers
            ],
            "managingOrganization": _reference("Organization", e.facility_id),
        }
    )


def _encounter(e: Encounter) -> dict[str, Any]:
    return _clean(
        {
            "status": e.status,
            "class": {
                "system": t.V3_ACT_CODE,
                "code": e.class_code,
            },
            "type": [_concept("http://snomed.info/sct", e.type_code, e.type_display)]
            if e.type_code
            else None,
            "subject": _reference("Patient", e.patient_id),
            "period": _period(e.period_start, e.period_end),
            "serviceProvider": _reference("Organization", e.service_provider_id),
            "location": [_encounter_location(e)] if e.location_id else None,
            "hospitalization": {
                "dischargeDisposition": _concept(
                    DISCHARGE_DISPOSITION, e.discharge_disposition, None
                )
            }
            if e.discharge_disposition
            else None,
        }
    )


def _encounter_location(e: Encounter) -> dict[str, Any]:
    """Return the encounter's current place as an ``Encounter.location`` entry."""
    closed = e.status in ("finished", "cancelled", "entered-in-error")
    return _clean(
        {
            "location": _reference("Location", e.location_id),
            "status": "completed" if closed else "active",
            "period": _period(e.period_start, e.period_end if closed else None),
        }
    )


def _observation(e: Observation) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "status": e.status,
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": e.category,
                    }
                ]
            }
        ]
        if e.category
        else None,
        "code": _concept(e.code_system, e.code, e.display),
        "subject": _reference("Patient", e.patient_id),
        "encounter": _reference("Encounter", e.encounter_id),
        "effectiveDateTime": format_datetime(e.effective_at),
    }
    if e.value is not None:
        resource["valueQuantity"] = _clean(
            {
                "value": e.value,
                "unit": e.unit,
                "system": "http://unitsofmeasure.org",
                "code": e.unit,
            }
        )
    elif e.value_code is not None:
        resource["valueCodeableConcept"] = {"coding": [{"code": e.value_code}]}
    elif e.value_string is not None:
        resource["valueString"] = e.value_string
    if e.components:
        resource["component"] = [
            {
                "code": _concept(c.get("system"), c.get("code"), c.get("display")),
                "valueQuantity": _clean(
                    {
                        "value": c.get("value"),
                        "unit": c.get("unit"),
                        "system": "http://unitsofmeasure.org",
                        "code": c.get("unit"),
                    }
                ),
            }
            for c in e.components
        ]
    return _clean(resource)


def _coded_event(
    e: Any, *, code_key: str, subject_key: str = "subject", encounter_key: str = "encounter"
) -> dict[str, Any]:
    return {
        "status": getattr(e, "status", None),
        code_key: _concept(e.code_system, e.code, e.display),
        subject_key: _reference("Patient", e.patient_id),
        encounter_key: _reference("Encounter", getattr(e, "encounter_id", None)),
    }


def _procedure(e: Procedure) -> dict[str, Any]:
    resource = _coded_event(e, code_key="code")
    resource["performedPeriod"] = _period(e.performed_start, e.performed_end)
    return _clean(resource)


def _medication_administration(e: MedicationAdministration) -> dict[str, Any]:
    resource = _coded_event(e, code_key="medicationCodeableConcept", encounter_key="context")
    if e.effective_end and e.effective_end != e.effective_start:
        resource["effectivePeriod"] = _period(e.effective_start, e.effective_end)
    else:
        resource["effectiveDateTime"] = format_datetime(e.effective_start)
    resource["request"] = _reference("MedicationRequest", e.request_id)
    if e.dose_value is not None:
        resource["dosage"] = {"dose": _clean({"value": e.dose_value, "unit": e.dose_unit})}
    return _clean(resource)


def _medication_request(e: MedicationRequest) -> dict[str, Any]:
    resource = _coded_event(e, code_key="medicationCodeableConcept")
    resource.update(intent=e.intent, authoredOn=format_datetime(e.authored_on))
    return _clean(resource)


def _condition(e: Condition) -> dict[str, Any]:
    resource = _coded_event(e, code_key="code")
    resource.pop("status")
    resource["onsetDateTime"] = format_datetime(e.onset_at)
    if e.clinical_status:
        resource["clinicalStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": e.clinical_status,
                }
            ]
        }
    return _clean(resource)


def _charge_item(e: ChargeItem) -> dict[str, Any]:
    return _clean(
        {
            "status": e.status,
            "code": _concept(e.code_system, e.code, e.display),
            "subject": _reference("Patient", e.patient_id),
            "context": _reference("Encounter", e.encounter_id),
            "occurrenceDateTime": format_datetime(e.occurred_at),
            "enteredDate": format_datetime(e.entered_at),
            "quantity": {"value": float(e.quantity)},
            "priceOverride": _money(e.unit_price, e.currency),
            "service": [{"reference": e.service_ref}] if e.service_ref else None,
        }
    )


def _organization(e: Organization) -> dict[str, Any]:
    return _clean(
        {"name": e.name, "active": e.active, "partOf": _reference("Organization", e.part_of_id)}
    )


def _location(e: Location) -> dict[str, Any]:
    types = [
        {"coding": [{"system": system, "code": code}]}
        for system, code in (
            (ops.LOCATION_KIND_SYSTEM, e.kind),
            (ops.SERVICE_TYPE_SYSTEM, e.service_type),
        )
        if code
    ]
    target = (
        [
            {
                "url": ops.TARGET_WAIT_EXTENSION,
                "valueDuration": {
                    "value": e.target_wait_minutes,
                    "unit": "min",
                    "system": "http://unitsofmeasure.org",
                    "code": "min",
                },
            }
        ]
        if e.target_wait_minutes is not None
        else None
    )
    status = (
        {
            "system": ops.BED_STATUS_SYSTEM,
            "code": e.operational_status,
            "display": ops.BED_STATUS_DISPLAY.get(e.operational_status, e.operational_status),
        }
        if e.operational_status
        else None
    )
    return _clean(
        {
            "extension": target,
            "name": e.name,
            "status": e.status,
            "operationalStatus": status,
            "type": types,
            "partOf": _reference("Location", e.part_of_id),
            "managingOrganization": _reference("Organization", e.managing_organization_id),
            "physicalType": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                        "code": e.physical_type,
                    }
                ]
            }
            if e.physical_type
            else None,
        }
    )


def _practitioner(e: Practitioner) -> dict[str, Any]:
    name = _clean({"family": e.family, "given": e.given.split(" ") if e.given else None})
    return _clean({"name": [name] if name else None, "gender": e.gender})


def _coverage(e: Coverage) -> dict[str, Any]:
    return _clean(
        {
            "status": e.status,
            "beneficiary": _reference("Patient", e.patient_id),
            "payor": [
                _reference("Organization", e.payor_id) or {"display": e.payor_display or "unknown"}
            ],
            "period": _period(e.period_start, e.period_end),
            "subscriberId": e.subscriber_id,
        }
    )


BUILDERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "Patient": _patient,
    "Encounter": _encounter,
    "Observation": _observation,
    "Procedure": _procedure,
    "MedicationAdministration": _medication_administration,
    "MedicationRequest": _medication_request,
    "Condition": _condition,
    "ChargeItem": _charge_item,
    "Organization": _organization,
    "Location": _location,
    "Practitioner": _practitioner,
    "Coverage": _coverage,
}

#: Columns whose current value overrides the received resource on export.
OVERLAY: dict[str, Callable[[Any], dict[str, Any]]] = {
    "Encounter": lambda e: _clean(
        {
            "status": e.status,
            "period": _period(e.period_start, e.period_end),
            "hospitalization": {
                **((e.resource or {}).get("hospitalization") or {}),
                "dischargeDisposition": _concept(
                    DISCHARGE_DISPOSITION, e.discharge_disposition, None
                ),
            }
            if e.discharge_disposition
            else None,
        }
    ),
}


def to_fhir(entity: RecordMixin) -> dict[str, Any]:
    """Return the FHIR R4 resource dict of ``entity``.

    Raises
    ------
    NotFoundError
        If the entity was not received through FHIR and has no builder (such rows are
        only created by importing FHIR).
    """
    resource_type = type(entity).__name__
    if entity.resource:
        resource = dict(entity.resource)
        if hasattr(entity, "status") and "status" in resource:
            resource["status"] = entity.status
        overlay = OVERLAY.get(resource_type)
        if overlay is not None:
            resource.update(overlay(entity))
    else:
        builder = BUILDERS.get(resource_type)
        if builder is None:
            raise NotFoundError(f"{resource_type}/{entity.id} has no FHIR representation")
        resource = builder(entity)
    resource["resourceType"] = resource_type
    resource["id"] = entity.id
    return resource


def export_patient(session: Session, patient_id: str) -> dict[str, Any]:
    """Return the patient's record as a FHIR R4 ``searchset`` Bundle (``$everything``).

    The bundle holds the Patient (search mode ``match``), every resource in the
    patient's compartment, and the Organizations, Practitioners and Locations they
    reference (mode ``include``).

    Parameters
    ----------
    session : Session
    patient_id : str
        FHIR id of the patient.

    Returns
    -------
    dict
        A Bundle resource that validates with ``fhir.resources.R4B.bundle.Bundle``.

    Raises
    ------
    NotFoundError
        If there is no such patient.
    """
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFoundError(f"Patient/{patient_id} does not exist")
    resources: list[dict[str, Any]] = [to_fhir(patient)]
    referenced: dict[str, set[str]] = {
        "Organization": set(),
        "Practitioner": set(),
        "Location": set(),
    }
    # The Patient's own references too (managingOrganization, generalPractitioner).
    _collect(resources[0], referenced)
    for entity_type in COMPARTMENT:
        column = entity_type.patient_id  # type: ignore[attr-defined]
        rows = session.scalars(
            select(entity_type).where(column == patient_id).order_by(entity_type.id)
        )
        for row in rows:
            resource = to_fhir(row)
            resources.append(resource)
            _collect(resource, referenced)
    referenced_types: tuple[tuple[str, type[RecordMixin]], ...] = (
        ("Organization", Organization),
        ("Practitioner", Practitioner),
        ("Location", Location),
    )
    for resource_type, entity in referenced_types:
        ids = sorted(referenced[resource_type])
        if ids:
            for row in session.scalars(select(entity).where(entity.id.in_(ids))):
                resources.append(to_fhir(row))
    entries = [
        {
            "fullUrl": f"urn:uuid:{r['id']}" if _is_uuid(r["id"]) else None,
            "resource": r,
            "search": {"mode": "match" if r["resourceType"] == "Patient" else "include"},
        }
        for r in resources
    ]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        "entry": [_clean(entry) for entry in entries],
    }


def _collect(node: Any, referenced: dict[str, set[str]]) -> None:
    if isinstance(node, dict):
        reference = node.get("reference")
        if isinstance(reference, str) and "/" in reference:
            resource_type, _, resource_id = reference.partition("/")
            if resource_type in referenced:
                referenced[resource_type].add(resource_id)
        for value in node.values():
            if isinstance(value, (dict, list)):
                _collect(value, referenced)
    elif isinstance(node, list):
        for item in node:
            _collect(item, referenced)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
