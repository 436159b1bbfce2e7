"""Pure mapping from FHIR R4 resource dicts to HealthOS table rows.

Each mapper takes a resource whose references were already resolved to
``"Type/id"`` and returns the rows to upsert, keyed by table name. The stored
``resource`` column keeps the whole resource, so export is lossless.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import FromClause, Table

from healthos_core.billing.entities import (
    ChargeItem,
    Claim,
    ClaimBillingStatus,
    ClaimDiagnosis,
    ClaimItem,
    ClaimResponse,
    ExplanationOfBenefit,
)
from healthos_core.billing.money import ledger_currency
from healthos_core.fhir.refs import (
    coded_columns,
    first_coding,
    money,
    parse_date,
    parse_datetime,
    period,
    ref_id,
)
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
    PatientIdentifier,
    Practitioner,
    Procedure,
    Task,
)

Row = dict[str, Any]


@dataclass
class MappingContext:
    """What a mapper may know beyond its resource: the facility of each encounter."""

    encounter_facility: dict[str, str | None] = field(default_factory=dict)


@dataclass
class Mapped:
    """Rows produced from one resource: ``{table name: [row, ...]}``."""

    rows: dict[str, list[Row]] = field(default_factory=dict)

    def add(self, table: FromClause, row: Row) -> None:
        """Append ``row`` for ``table``."""
        self.rows.setdefault(str(getattr(table, "name", table)), []).append(row)


def _concept_code(concept: dict[str, Any] | None) -> str | None:
    return first_coding(concept).get("code")


def _first_name(resource: dict[str, Any]) -> tuple[str | None, str | None]:
    names = resource.get("name") or []
    if not names:
        return None, None
    name = names[0]
    given = " ".join(name.get("given") or []) or None
    return name.get("family"), given


def _base(resource: dict[str, Any], facility_id: str | None = None) -> Row:
    return {"id": resource["id"], "resource": resource, "facility_id": facility_id}


def _encounter_facility(resource: dict[str, Any], ctx: MappingContext) -> str | None:
    encounter_id = ref_id(resource.get("encounter") or resource.get("context"), "Encounter")
    return ctx.encounter_facility.get(encounter_id) if encounter_id else None


def map_organization(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """Organization → ``organization`` (``partOf`` builds facility → network → region)."""
    out = Mapped()
    row = _base(r, r["id"])
    row.update(
        name=r.get("name"),
        type_code=_concept_code((r.get("type") or [None])[0]),
        active=r.get("active", True),
        part_of_id=ref_id(r.get("partOf"), "Organization"),
    )
    out.add(Organization.__table__, row)
    return out


def _coding_of(concepts: list[dict[str, Any]] | None, system: str) -> str | None:
    """Return the code of the first coding from ``system`` in a list of CodeableConcepts."""
    for concept in concepts or []:
        for coding in (concept or {}).get("coding") or []:
            if coding.get("system") == system and coding.get("code"):
                return str(coding["code"])
    return None


def _extension(r: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next((e for e in r.get("extension") or [] if e.get("url") == url), None)


def _extension_time(r: dict[str, Any], url: str) -> dt.datetime | None:
    found = _extension(r, url)
    return parse_datetime(found.get("valueDateTime")) if found else None


def _target_minutes(r: dict[str, Any]) -> int | None:
    """Return the queue-target-wait extension's ``valueDuration`` in minutes (min or h)."""
    found = _extension(r, ops.TARGET_WAIT_EXTENSION)
    duration = (found or {}).get("valueDuration") or {}
    value = duration.get("value")
    if value is None:
        return None
    unit = duration.get("code") or duration.get("unit") or "min"
    factor = {"min": 1, "h": 60, "s": 1 / 60}.get(str(unit))
    if factor is None:
        raise ValueError(f"queue target wait unit {unit!r}: use 'min' or 'h' (UCUM)")
    return round(float(value) * factor)


def map_location(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """Location → ``location`` (kind, service type and wait target from ``type``/extension)."""
    out = Mapped()
    org = ref_id(r.get("managingOrganization"), "Organization")
    row = _base(r, org)
    types = r.get("type") or []
    row.update(
        name=r.get("name"),
        kind=_coding_of(types, ops.LOCATION_KIND_SYSTEM) or _concept_code((types or [None])[0]),
        service_type=_coding_of(types, ops.SERVICE_TYPE_SYSTEM),
        target_wait_minutes=_target_minutes(r),
        physical_type=_concept_code(r.get("physicalType")),
        status=r.get("status", "active"),
        operational_status=(r.get("operationalStatus") or {}).get("code"),
        part_of_id=ref_id(r.get("partOf"), "Location"),
        managing_organization_id=org,
    )
    out.add(Location.__table__, row)
    return out


def map_practitioner(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """Practitioner → ``practitioner`` (NPI from the us-npi identifier)."""
    out = Mapped()
    family, given = _first_name(r)
    npi = next(
        (
            i.get("value")
            for i in r.get("identifier") or []
            if i.get("system") == "http://hl7.org/fhir/sid/us-npi"
        ),
        None,
    )
    row = _base(r)
    row.update(family=family, given=given, npi=npi, gender=r.get("gender"))
    out.add(Practitioner.__table__, row)
    return out


def map_patient(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """Patient → ``patient`` + one ``patient_identifier`` row per identifier."""
    out = Mapped()
    family, given = _first_name(r)
    row = _base(r, ref_id(r.get("managingOrganization"), "Organization"))
    row.update(
        family=family,
        given=given,
        gender=r.get("gender"),
        birth_date=parse_date(r.get("birthDate")),
        deceased_at=parse_datetime(r.get("deceasedDateTime")),
    )
    out.add(Patient.__table__, row)
    for identifier in r.get("identifier") or []:
        if identifier.get("value") is None:
            continue
        out.add(
            PatientIdentifier.__table__,
            {
                "patient_id": r["id"],
                "system": identifier.get("system") or "",
                "value": str(identifier["value"])[:128],
                "type_code": _concept_code(identifier.get("type")),
            },
        )
    return out


def map_coverage(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """Coverage → ``coverage`` (first payor; ``class`` of type plan as the plan)."""
    out = Mapped()
    payors = r.get("payor") or [{}]
    plan = next(
        (c.get("value") for c in r.get("class") or [] if _concept_code(c.get("type")) == "plan"),
        None,
    )
    start, end = period(r.get("period"))
    row = _base(r)
    row.update(
        patient_id=ref_id(r.get("beneficiary"), "Patient"),
        status=r.get("status", "active"),
        type_code=_concept_code(r.get("type")) or (r.get("type") or {}).get("text"),
        payor_id=ref_id(payors[0]) if ref_id(payors[0]) else None,
        payor_display=payors[0].get("display"),
        plan=plan,
        subscriber_id=r.get("subscriberId"),
        period_start=start,
        period_end=end,
    )
    if row["payor_id"] is not None and not payors[0].get("reference", "").startswith(
        "Organization/"
    ):
        row["payor_id"] = None
    out.add(Coverage.__table__, row)
    return out


def map_encounter(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """Encounter → ``encounter``; the facility is ``serviceProvider``."""
    out = Mapped()
    facility = ref_id(r.get("serviceProvider"), "Organization")
    start, end = period(r.get("period"))
    type_coding = first_coding((r.get("type") or [None])[0])
    participants = r.get("participant") or []
    practitioner = next(
        (
            ref_id(p.get("individual"))
            for p in participants
            if (p.get("individual") or {}).get("reference", "").startswith("Practitioner/")
        ),
        None,
    )
    locations = r.get("location") or []
    location = ref_id(locations[-1].get("location"), "Location") if locations else None
    hospitalization = r.get("hospitalization") or {}
    row = _base(r, facility)
    row.update(
        patient_id=ref_id(r.get("subject"), "Patient"),
        status=r["status"],
        class_code=(r.get("class") or {}).get("code") or "AMB",
        type_code=type_coding.get("code"),
        type_display=(type_coding.get("display") or "")[:512] or None,
        period_start=start,
        period_end=end,
        service_provider_id=facility,
        practitioner_id=practitioner,
        location_id=location,
        admit_source=_concept_code(hospitalization.get("admitSource")),
        discharge_disposition=_concept_code(hospitalization.get("dischargeDisposition")),
        reason_code=_concept_code((r.get("reasonCode") or [None])[0]),
        expected_discharge_at=_extension_time(r, ops.EXPECTED_DISCHARGE_EXTENSION),
        admit_decision_at=_extension_time(r, ops.ADMIT_DECISION_EXTENSION),
        admit_to_pool=(_extension(r, ops.ADMIT_TO_POOL_EXTENSION) or {}).get("valueCode"),
    )
    ctx.encounter_facility[r["id"]] = facility
    out.add(Encounter.__table__, row)
    return out


def map_condition(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """Condition → ``condition``."""
    out = Mapped()
    row = _base(r, _encounter_facility(r, ctx))
    row.update(coded_columns(r.get("code")))
    row.update(
        patient_id=ref_id(r.get("subject"), "Patient"),
        encounter_id=ref_id(r.get("encounter"), "Encounter"),
        clinical_status=_concept_code(r.get("clinicalStatus")),
        verification_status=_concept_code(r.get("verificationStatus")),
        onset_at=parse_datetime(r.get("onsetDateTime")),
        abatement_at=parse_datetime(r.get("abatementDateTime")),
        recorded_at=parse_datetime(r.get("recordedDate")),
    )
    out.add(Condition.__table__, row)
    return out


def _quantity_component(component: dict[str, Any]) -> dict[str, Any]:
    coding = first_coding(component.get("code"))
    quantity = component.get("valueQuantity") or {}
    return {
        "system": coding.get("system"),
        "code": coding.get("code"),
        "display": coding.get("display"),
        "value": quantity.get("value"),
        "unit": quantity.get("code") or quantity.get("unit"),
    }


def map_observation(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """Observation → ``observation`` (quantity, coded or string value; components)."""
    out = Mapped()
    quantity = r.get("valueQuantity") or {}
    categories = r.get("category") or []
    effective = r.get("effectiveDateTime") or r.get("effectiveInstant")
    if effective is None and r.get("effectivePeriod"):
        effective = r["effectivePeriod"].get("start")
    row = _base(r, _encounter_facility(r, ctx))
    row.update(coded_columns(r.get("code")))
    value = quantity.get("value")
    row.update(
        patient_id=ref_id(r.get("subject"), "Patient"),
        encounter_id=ref_id(r.get("encounter"), "Encounter"),
        status=r["status"],
        category=_concept_code(categories[0]) if categories else None,
        effective_at=parse_datetime(effective),
        value=float(value) if value is not None else None,
        unit=quantity.get("code") or quantity.get("unit"),
        value_code=_concept_code(r.get("valueCodeableConcept")),
        value_string=r.get("valueString"),
        components=[_quantity_component(c) for c in r["component"]] if r.get("component") else None,
        quality_flag=None,
    )
    out.add(Observation.__table__, row)
    return out


def map_procedure(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """Procedure → ``procedure``."""
    out = Mapped()
    start, end = period(r.get("performedPeriod"))
    if start is None:
        start = end = parse_datetime(r.get("performedDateTime"))
    row = _base(r, _encounter_facility(r, ctx))
    row.update(coded_columns(r.get("code")))
    row.update(
        patient_id=ref_id(r.get("subject"), "Patient"),
        encounter_id=ref_id(r.get("encounter"), "Encounter"),
        status=r["status"],
        performed_start=start,
        performed_end=end,
    )
    out.add(Procedure.__table__, row)
    return out


def map_medication_request(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """MedicationRequest → ``medication_request`` (code from medicationCodeableConcept)."""
    out = Mapped()
    row = _base(r, _encounter_facility(r, ctx))
    row.update(coded_columns(r.get("medicationCodeableConcept")))
    requester = r.get("requester") or {}
    row.update(
        patient_id=ref_id(r.get("subject"), "Patient"),
        encounter_id=ref_id(r.get("encounter"), "Encounter"),
        status=r["status"],
        intent=r["intent"],
        authored_on=parse_datetime(r.get("authoredOn")),
        requester_id=ref_id(requester)
        if requester.get("reference", "").startswith("Practitioner/")
        else None,
    )
    out.add(MedicationRequest.__table__, row)
    return out


def map_medication_administration(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """MedicationAdministration → ``medication_administration``."""
    out = Mapped()
    start, end = period(r.get("effectivePeriod"))
    if start is None:
        start = end = parse_datetime(r.get("effectiveDateTime"))
    dose = (r.get("dosage") or {}).get("dose") or {}
    row = _base(r, _encounter_facility({"encounter": r.get("context")}, ctx))
    row.update(coded_columns(r.get("medicationCodeableConcept")))
    row.update(
        patient_id=ref_id(r.get("subject"), "Patient"),
        encounter_id=ref_id(r.get("context"), "Encounter"),
        request_id=ref_id(r.get("request"), "MedicationRequest"),
        status=r["status"],
        effective_start=start,
        effective_end=end,
        dose_value=float(dose["value"]) if dose.get("value") is not None else None,
        dose_unit=dose.get("code") or dose.get("unit"),
    )
    out.add(MedicationAdministration.__table__, row)
    return out


def map_immunization(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """Immunization → ``immunization`` (CVX code)."""
    out = Mapped()
    row = _base(r, _encounter_facility(r, ctx))
    row.update(coded_columns(r.get("vaccineCode")))
    row.update(
        patient_id=ref_id(r.get("patient"), "Patient"),
        encounter_id=ref_id(r.get("encounter"), "Encounter"),
        status=r["status"],
        occurrence_at=parse_datetime(r.get("occurrenceDateTime")),
    )
    out.add(Immunization.__table__, row)
    return out


def map_diagnostic_report(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """DiagnosticReport → ``diagnostic_report`` (result Observation ids as a list)."""
    out = Mapped()
    categories = r.get("category") or []
    row = _base(r, _encounter_facility(r, ctx))
    row.update(coded_columns(r.get("code")))
    row.update(
        patient_id=ref_id(r.get("subject"), "Patient"),
        encounter_id=ref_id(r.get("encounter"), "Encounter"),
        status=r["status"],
        category=_concept_code(categories[0]) if categories else None,
        effective_at=parse_datetime(r.get("effectiveDateTime")),
        issued_at=parse_datetime(r.get("issued")),
        result_ids=[ref_id(x) for x in r.get("result") or []] or None,
    )
    out.add(DiagnosticReport.__table__, row)
    return out


def map_allergy_intolerance(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """AllergyIntolerance → ``allergy_intolerance``."""
    out = Mapped()
    row = _base(r)
    row.update(coded_columns(r.get("code")))
    categories = r.get("category") or []
    row.update(
        patient_id=ref_id(r.get("patient"), "Patient"),
        clinical_status=_concept_code(r.get("clinicalStatus")),
        criticality=r.get("criticality"),
        category=categories[0] if categories else None,
        recorded_at=parse_datetime(r.get("recordedDate")),
    )
    out.add(AllergyIntolerance.__table__, row)
    return out


def map_task(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """Task → ``task``: a queue ticket's times (``docs/operations.md``)."""
    out = Mapped()
    started, ended = period(r.get("executionPeriod"))
    row = _base(r, _encounter_facility(r, ctx))
    row.update(
        status=r["status"],
        code=_concept_code(r.get("code")),
        patient_id=ref_id(r.get("for"), "Patient"),
        encounter_id=ref_id(r.get("encounter"), "Encounter"),
        location_id=ref_id(r.get("location"), "Location"),
        priority=r.get("priority"),
        arrived_at=parse_datetime(r.get("authoredOn")),
        called_at=_extension_time(r, ops.CALLED_EXTENSION),
        service_started_at=started,
        service_ended_at=ended,
        left_at=_extension_time(r, ops.LEFT_EXTENSION),
    )
    out.add(Task.__table__, row)
    return out


def map_appointment(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """Appointment → ``appointment`` (the first Patient and Location participants)."""
    out = Mapped()
    actors = [(p.get("actor") or {}) for p in r.get("participant") or []]
    patient = next((ref_id(a, "Patient") for a in actors if _is_ref(a, "Patient")), None)
    location = next((ref_id(a, "Location") for a in actors if _is_ref(a, "Location")), None)
    row = _base(r)
    row.update(
        status=r["status"],
        patient_id=patient,
        location_id=location,
        start=parse_datetime(r.get("start")),
        end=parse_datetime(r.get("end")),
    )
    out.add(Appointment.__table__, row)
    return out


def _is_ref(actor: dict[str, Any], resource_type: str) -> bool:
    return str(actor.get("reference", "")).startswith(f"{resource_type}/")


def _service_date(item: dict[str, Any]) -> dt.date | None:
    if item.get("servicedDate"):
        return parse_date(item["servicedDate"])
    start, _ = period(item.get("servicedPeriod"))
    return start.date() if start else None


ICD10CM_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"


def _coding_in(concept: dict[str, Any] | None, system: str) -> dict[str, Any]:
    for coding in (concept or {}).get("coding") or []:
        if coding.get("system") == system:
            return dict(coding)
    return first_coding(concept)


def _claim_diagnosis_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    for diagnosis in r.get("diagnosis") or []:
        coding = _coding_in(diagnosis.get("diagnosisCodeableConcept"), ICD10CM_SYSTEM)
        types = diagnosis.get("type") or []
        rows.append(
            {
                "claim_id": r["id"],
                "sequence": int(diagnosis["sequence"]),
                "code_system": coding.get("system"),
                "code": coding.get("code"),
                "display": (coding.get("display") or "")[:512] or None,
                "condition_id": ref_id(diagnosis.get("diagnosisReference"), "Condition"),
                "type_code": _concept_code(types[0]) if types else None,
            }
        )
    return rows


def _procedure_ids(r: dict[str, Any]) -> dict[int, str | None]:
    return {
        int(p["sequence"]): ref_id(p.get("procedureReference"), "Procedure")
        for p in r.get("procedure") or []
        if p.get("sequence") is not None
    }


def _claim_item_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    procedures = _procedure_ids(r)
    for item in r.get("item") or []:
        coding = first_coding(item.get("productOrService"))
        net, _ = money(item.get("net"))
        unit_price, _ = money(item.get("unitPrice"))
        quantity = (item.get("quantity") or {}).get("value")
        encounters = item.get("encounter") or []
        rows.append(
            {
                "claim_id": r["id"],
                "sequence": int(item["sequence"]),
                "code_system": coding.get("system"),
                "code": coding.get("code"),
                "display": (coding.get("display") or "")[:512] or None,
                "quantity": Decimal(str(quantity)) if quantity is not None else None,
                "unit_price": unit_price,
                "net": net,
                "service_date": _service_date(item),
                "encounter_id": ref_id(encounters[0], "Encounter") if encounters else None,
                "charge_item_id": None,
                "diagnosis_sequence": item.get("diagnosisSequence"),
                "category": _concept_code(item.get("category")),
                "revenue_code": _concept_code(item.get("revenue")),
                "modifiers": [_concept_code(x) for x in item.get("modifier") or []] or None,
                "procedure_id": next(
                    (procedures.get(int(s)) for s in item.get("procedureSequence") or []), None
                ),
            }
        )
    return rows


def _claim_encounter(r: dict[str, Any]) -> str | None:
    for item in r.get("item") or []:
        for encounter in item.get("encounter") or []:
            found = ref_id(encounter, "Encounter")
            if found:
                return found
    return None


def map_claim(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """Claim → ``claim`` + ``claim_item`` rows (one per item sequence)."""
    out = Mapped()
    total, currency = money(r.get("total"))
    start, end = period(r.get("billablePeriod"))
    insurance = (r.get("insurance") or [{}])[0]
    coverage = insurance.get("coverage") or {}
    insurer = r.get("insurer") or {}
    related = next((ref_id(x.get("claim")) for x in r.get("related") or [] if x.get("claim")), None)
    encounter_id = _claim_encounter(r)
    row = _base(r, ctx.encounter_facility.get(encounter_id) if encounter_id else None)
    row.update(
        patient_id=ref_id(r.get("patient"), "Patient"),
        encounter_id=encounter_id,
        status=r["status"],
        type_code=_concept_code(r.get("type")),
        use=r.get("use", "claim"),
        created=parse_datetime(r.get("created")),
        billable_start=start,
        billable_end=end,
        provider_id=ref_id(r.get("provider")),
        insurer_id=ref_id(insurer)
        if insurer.get("reference", "").startswith("Organization/")
        else None,
        coverage_id=ref_id(coverage)
        if coverage.get("reference", "").startswith("Coverage/")
        else None,
        coverage_display=coverage.get("display"),
        total=total,
        currency=currency,
        related_claim_id=related,
        billing_status=_billing_status(r),
        submitted_at=parse_datetime(r.get("created")) if _billing_status(r) else None,
        pre_auth_ref=next(iter(insurance.get("preAuthRef") or []), None),
        patient_control_number=next(
            (
                i.get("value")
                for i in r.get("identifier") or []
                if str(i.get("system", "")).endswith("patient-control-number")
            ),
            None,
        ),
        priority=_concept_code(r.get("priority")),
    )
    out.add(Claim.__table__, row)
    for item_row in _claim_item_rows(r):
        out.add(ClaimItem.__table__, item_row)
    for diagnosis_row in _claim_diagnosis_rows(r):
        out.add(ClaimDiagnosis.__table__, diagnosis_row)
    return out


def _billing_status(r: dict[str, Any]) -> str | None:
    """Return ``submitted`` for a Claim that names its payer Organization, else None.

    Claims that name no insurer Organization (e.g. Synthea's own claims, which give the
    payer only as coverage display text) are kept in the record, not billed by HealthOS.
    """
    insurer = str((r.get("insurer") or {}).get("reference", ""))
    if (
        r.get("use", "claim") == "claim"
        and r.get("status") == "active"
        and insurer.startswith("Organization/")
    ):
        return str(ClaimBillingStatus.SUBMITTED)
    return None


def _total(r: dict[str, Any], category: str) -> tuple[Decimal | None, str | None]:
    for entry in r.get("total") or []:
        if _concept_code(entry.get("category")) == category:
            return money(entry.get("amount"))
    return None, None


def map_explanation_of_benefit(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """ExplanationOfBenefit → ``explanation_of_benefit``."""
    out = Mapped()
    submitted, currency = _total(r, "submitted")
    payment, pay_currency = money((r.get("payment") or {}).get("amount"))
    row = _base(r)
    row.update(
        patient_id=ref_id(r.get("patient"), "Patient"),
        claim_id=ref_id(r.get("claim"), "Claim"),
        status=r["status"],
        outcome=r.get("outcome"),
        created=parse_datetime(r.get("created")),
        insurer_display=(r.get("insurer") or {}).get("display"),
        total_submitted=submitted,
        total_payment=payment,
        currency=currency or pay_currency,
    )
    out.add(ExplanationOfBenefit.__table__, row)
    return out


def map_claim_response(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """ClaimResponse → ``claim_response`` (line adjudications stay in ``resource``)."""
    out = Mapped()
    amount, currency = money((r.get("payment") or {}).get("amount"))
    row = _base(r)
    row.update(
        patient_id=ref_id(r.get("patient"), "Patient"),
        claim_id=ref_id(r.get("request"), "Claim"),
        status=r["status"],
        outcome=r.get("outcome"),
        disposition=(r.get("disposition") or "")[:512] or None,
        created=parse_datetime(r.get("created")),
        payment_amount=amount,
        currency=currency,
    )
    out.add(ClaimResponse.__table__, row)
    return out


def map_charge_item(r: dict[str, Any], ctx: MappingContext) -> Mapped:
    """ChargeItem → ``charge_item`` (``service[0]`` as the clinical event)."""
    out = Mapped()
    coding = first_coding(r.get("code"))
    price, currency = money(r.get("priceOverride"))
    quantity = Decimal(str((r.get("quantity") or {}).get("value", 1)))
    services = r.get("service") or []
    row = _base(r, _encounter_facility({"encounter": r.get("context")}, ctx))
    row.update(
        patient_id=ref_id(r.get("subject"), "Patient"),
        encounter_id=ref_id(r.get("context"), "Encounter"),
        status=r["status"],
        code_system=coding.get("system") or "",
        code=coding.get("code") or "",
        display=coding.get("display"),
        quantity=quantity,
        unit_price=price if price is not None else Decimal("0.00"),
        total=(price * quantity).quantize(Decimal("0.01"))
        if price is not None
        else Decimal("0.00"),
        currency=currency or ledger_currency(),
        service_ref=services[0].get("reference") if services else None,
        occurred_at=parse_datetime(r.get("occurrenceDateTime")),
        entered_at=parse_datetime(r.get("enteredDate")) or parse_datetime("1970-01-01"),
        chargemaster_entry_id=None,
    )
    out.add(ChargeItem.__table__, row)
    return out


Mapper = Callable[[dict[str, Any], MappingContext], Mapped]

#: Supported resource types, in the order their rows must be written (referents first).
MAPPERS: dict[str, Mapper] = {
    "Organization": map_organization,
    "Location": map_location,
    "Practitioner": map_practitioner,
    "Patient": map_patient,
    "Coverage": map_coverage,
    "Encounter": map_encounter,
    "Condition": map_condition,
    "Observation": map_observation,
    "Procedure": map_procedure,
    "MedicationRequest": map_medication_request,
    "MedicationAdministration": map_medication_administration,
    "Immunization": map_immunization,
    "DiagnosticReport": map_diagnostic_report,
    "AllergyIntolerance": map_allergy_intolerance,
    "Claim": map_claim,
    "ExplanationOfBenefit": map_explanation_of_benefit,
    "ClaimResponse": map_claim_response,
    "ChargeItem": map_charge_item,
    "Task": map_task,
    "Appointment": map_appointment,
}

#: Resource type → its entity's table.
TABLES: dict[str, Table] = {
    "Organization": Organization.__table__,  # type: ignore[dict-item]
    "Location": Location.__table__,  # type: ignore[dict-item]
    "Practitioner": Practitioner.__table__,  # type: ignore[dict-item]
    "Patient": Patient.__table__,  # type: ignore[dict-item]
    "Coverage": Coverage.__table__,  # type: ignore[dict-item]
    "Encounter": Encounter.__table__,  # type: ignore[dict-item]
    "Condition": Condition.__table__,  # type: ignore[dict-item]
    "Observation": Observation.__table__,  # type: ignore[dict-item]
    "Procedure": Procedure.__table__,  # type: ignore[dict-item]
    "MedicationRequest": MedicationRequest.__table__,  # type: ignore[dict-item]
    "MedicationAdministration": MedicationAdministration.__table__,  # type: ignore[dict-item]
    "Immunization": Immunization.__table__,  # type: ignore[dict-item]
    "DiagnosticReport": DiagnosticReport.__table__,  # type: ignore[dict-item]
    "AllergyIntolerance": AllergyIntolerance.__table__,  # type: ignore[dict-item]
    "Claim": Claim.__table__,  # type: ignore[dict-item]
    "ExplanationOfBenefit": ExplanationOfBenefit.__table__,  # type: ignore[dict-item]
    "ClaimResponse": ClaimResponse.__table__,  # type: ignore[dict-item]
    "ChargeItem": ChargeItem.__table__,  # type: ignore[dict-item]
    "Task": Task.__table__,  # type: ignore[dict-item]
    "Appointment": Appointment.__table__,  # type: ignore[dict-item]
}

#: Child tables written after their parents, with their natural keys.
CHILD_KEYS: dict[str, tuple[str, ...]] = {
    PatientIdentifier.__tablename__: ("patient_id", "system", "value"),
    ClaimItem.__tablename__: ("claim_id", "sequence"),
    ClaimDiagnosis.__tablename__: ("claim_id", "sequence"),
}

#: Columns HealthOS owns once a row exists: a re-import never overwrites them
#: (a claim's revenue-cycle state moves on through adjudication, not through its source).
PRESERVED_ON_UPDATE: dict[str, frozenset[str]] = {
    Claim.__tablename__: frozenset({"billing_status"}),
}
