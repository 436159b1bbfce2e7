"""Small synthetic FHIR R4 builders for the import/export tests (no PHI).

:func:`transaction_bundle` returns a transaction Bundle holding one of each resource
type HealthOS stores (Organization, Practitioner, Patient with identifiers, Encounter,
Condition, two Observations — a quantity and a blood-pressure panel —, Procedure,
MedicationRequest, Immunization, DiagnosticReport, AllergyIntolerance, Claim with
items and a diagnosis, ExplanationOfBenefit) plus a CarePlan, a type HealthOS does
not store. Every entry has a ``urn:uuid:`` fullUrl and every reference inside the
bundle uses it. Ids are derived from ``key`` so that two keys give disjoint records
and the same key gives the same ids (for idempotency tests).
"""

from __future__ import annotations

import copy
import gzip
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
UCUM = "http://unitsofmeasure.org"
NPI = "http://hl7.org/fhir/sid/us-npi"
SSN = "http://hl7.org/fhir/sid/us-ssn"
MRN = "http://hospital.example.org/mrn"
ORG_SYSTEM = "https://example.org/organizations"

_NAMESPACE = uuid.UUID("6f1c9a52-3c1e-4d6e-9a51-0d3c2b7e8a10")

#: Order of the entries in :func:`transaction_bundle` (index 9, the tenth, is Immunization).
ENTRY_NAMES = (
    "organization",
    "practitioner",
    "patient",
    "encounter",
    "condition",
    "observation",
    "bp_panel",
    "procedure",
    "medication_request",
    "immunization",
    "diagnostic_report",
    "allergy",
    "claim",
    "eob",
    "careplan",
)

#: Resource type of each entry name.
ENTRY_TYPES = {
    "organization": "Organization",
    "practitioner": "Practitioner",
    "patient": "Patient",
    "encounter": "Encounter",
    "condition": "Condition",
    "observation": "Observation",
    "bp_panel": "Observation",
    "procedure": "Procedure",
    "medication_request": "MedicationRequest",
    "immunization": "Immunization",
    "diagnostic_report": "DiagnosticReport",
    "allergy": "AllergyIntolerance",
    "claim": "Claim",
    "eob": "ExplanationOfBenefit",
    "careplan": "CarePlan",
}


@dataclass(frozen=True)
class BundleIds:
    """The FHIR ids used by :func:`transaction_bundle` for one ``key``."""

    key: str

    def __getattr__(self, name: str) -> str:
        if name not in ENTRY_TYPES:
            raise AttributeError(name)
        return fhir_id(self.key, name)

    def ref(self, name: str) -> str:
        """``"Type/id"`` of entry ``name``."""
        return f"{ENTRY_TYPES[name]}/{fhir_id(self.key, name)}"

    def urn(self, name: str) -> str:
        """``urn:uuid:`` fullUrl of entry ``name``."""
        return f"urn:uuid:{fhir_id(self.key, name)}"


def fhir_id(key: str, name: str) -> str:
    """A deterministic UUID id for entry ``name`` of the bundle built with ``key``."""
    return str(uuid.uuid5(_NAMESPACE, f"{key}:{name}"))


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _ref(target: str) -> dict[str, str]:
    return {"reference": target}


def organization(org_id: str, *, name: str = "Synthetic General Hospital") -> dict[str, Any]:
    """An active provider Organization with a business identifier ``ORG_SYSTEM|<id>``."""
    return {
        "resourceType": "Organization",
        "id": org_id,
        "identifier": [{"system": ORG_SYSTEM, "value": f"org-{org_id[:8]}"}],
        "active": True,
        "type": [
            _concept(
                "http://terminology.hl7.org/CodeSystem/organization-type",
                "prov",
                "Healthcare Provider",
            )
        ],
        "name": name,
    }


def practitioner(practitioner_id: str, *, npi: str = "9999999901") -> dict[str, Any]:
    """A Practitioner with an NPI."""
    return {
        "resourceType": "Practitioner",
        "id": practitioner_id,
        "identifier": [{"system": NPI, "value": npi}],
        "active": True,
        "name": [{"family": "Osler", "given": ["Wilma"], "prefix": ["Dr."]}],
        "gender": "female",
    }


def patient(
    patient_id: str,
    *,
    mrn: str | None = None,
    organization_ref: str | None = None,
    birth_date: str = "1961-04-12",
) -> dict[str, Any]:
    """A Patient with an MRN and an SSN identifier."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": [
            {
                "type": _concept(
                    "http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical Record Number"
                ),
                "system": MRN,
                "value": mrn or f"MRN-{patient_id[:8]}",
            },
            {
                "type": _concept(
                    "http://terminology.hl7.org/CodeSystem/v2-0203", "SS", "Social Security Number"
                ),
                "system": SSN,
                "value": "999-55-0101",
            },
        ],
        "name": [{"use": "official", "family": "Testperson", "given": ["Ada", "Marie"]}],
        "gender": "female",
        "birthDate": birth_date,
    }
    if organization_ref:
        resource["managingOrganization"] = _ref(organization_ref)
    return resource


def observation(
    observation_id: str,
    *,
    subject: str,
    encounter: str | None = None,
    code: str = "8302-2",
    display: str = "Body Height",
    value: Any = 176.4,
    unit: str = "cm",
    effective: str = "2024-03-01T09:10:00+00:00",
) -> dict[str, Any]:
    """A vital-sign Observation with a ``valueQuantity``."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": observation_id,
        "status": "final",
        "category": [
            _concept(
                "http://terminology.hl7.org/CodeSystem/observation-category",
                "vital-signs",
                "vital-signs",
            )
        ],
        "code": _concept(LOINC, code, display),
        "subject": _ref(subject),
        "effectiveDateTime": effective,
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }
    if encounter:
        resource["encounter"] = _ref(encounter)
    return resource


def transaction_bundle(
    key: str = "a",
    *,
    bundle_type: str = "transaction",
    conditional_organization: bool = False,
) -> dict[str, Any]:
    """A Bundle with one of every stored type plus a CarePlan (see the module docstring).

    Parameters
    ----------
    key : str
        Seed of the ids (see :class:`BundleIds`).
    bundle_type : str
        ``transaction`` (entries carry ``request``) or ``collection``.
    conditional_organization : bool
        Reference the Organization from the Encounter and the Claim as
        ``Organization?identifier=ORG_SYSTEM|<value>`` instead of by fullUrl.
    """
    ids = BundleIds(key)
    u = ids.urn
    org = organization(ids.organization)
    org_ref = (
        f"Organization?identifier={ORG_SYSTEM}|{org['identifier'][0]['value']}"
        if conditional_organization
        else u("organization")
    )
    resources: dict[str, dict[str, Any]] = {
        "organization": org,
        "practitioner": practitioner(ids.practitioner),
        "patient": patient(ids.patient, organization_ref=u("organization")),
        "encounter": {
            "resourceType": "Encounter",
            "id": ids.encounter,
            "status": "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "EMER",
            },
            "type": [_concept(SNOMED, "50849002", "Emergency room admission (procedure)")],
            "subject": _ref(u("patient")),
            "participant": [{"individual": _ref(u("practitioner"))}],
            "period": {"start": "2024-03-01T09:00:00+00:00", "end": "2024-03-01T13:30:00+02:00"},
            "reasonCode": [_concept(SNOMED, "233604007", "Pneumonia")],
            "serviceProvider": _ref(org_ref),
        },
        "condition": {
            "resourceType": "Condition",
            "id": ids.condition,
            "clinicalStatus": _concept(
                "http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"
            ),
            "verificationStatus": _concept(
                "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                "confirmed",
                "Confirmed",
            ),
            "code": _concept(SNOMED, "233604007", "Pneumonia"),
            "subject": _ref(u("patient")),
            "encounter": _ref(u("encounter")),
            "onsetDateTime": "2024-02-27T08:00:00+05:30",
            "recordedDate": "2024-03-01T09:20:00+00:00",
        },
        "observation": observation(
            ids.observation,
            subject=u("patient"),
            encounter=u("encounter"),
            code="8310-5",
            display="Body temperature",
            value=38.6,
            unit="Cel",
        ),
        "bp_panel": {
            "resourceType": "Observation",
            "id": ids.bp_panel,
            "status": "final",
            "category": [
                _concept(
                    "http://terminology.hl7.org/CodeSystem/observation-category",
                    "vital-signs",
                    "vital-signs",
                )
            ],
            "code": _concept(LOINC, "55284-4", "Blood Pressure"),
            "subject": _ref(u("patient")),
            "encounter": _ref(u("encounter")),
            "effectiveDateTime": "2024-03-01T09:12:00+00:00",
            "component": [
                {
                    "code": _concept(LOINC, "8480-6", "Systolic Blood Pressure"),
                    "valueQuantity": {
                        "value": 92,
                        "unit": "mm[Hg]",
                        "system": UCUM,
                        "code": "mm[Hg]",
                    },
                },
                {
                    "code": _concept(LOINC, "8462-4", "Diastolic Blood Pressure"),
                    "valueQuantity": {
                        "value": 58,
                        "unit": "mm[Hg]",
                        "system": UCUM,
                        "code": "mm[Hg]",
                    },
                },
            ],
        },
        "procedure": {
            "resourceType": "Procedure",
            "id": ids.procedure,
            "status": "completed",
            "code": _concept(SNOMED, "399208008", "Plain chest X-ray (procedure)"),
            "subject": _ref(u("patient")),
            "encounter": _ref(u("encounter")),
            "performedPeriod": {
                "start": "2024-03-01T09:30:00+00:00",
                "end": "2024-03-01T09:45:00+00:00",
            },
        },
        "medication_request": {
            "resourceType": "MedicationRequest",
            "id": ids.medication_request,
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": _concept(
                RXNORM, "308182", "Amoxicillin 250 MG Oral Capsule"
            ),
            "subject": _ref(u("patient")),
            "encounter": _ref(u("encounter")),
            "authoredOn": "2024-03-01T10:00:00+00:00",
            "requester": _ref(u("practitioner")),
        },
        "immunization": {
            "resourceType": "Immunization",
            "id": ids.immunization,
            "status": "completed",
            "vaccineCode": _concept(CVX, "140", "Influenza, seasonal, injectable"),
            "patient": _ref(u("patient")),
            "encounter": _ref(u("encounter")),
            "occurrenceDateTime": "2024-03-01T11:00:00+00:00",
            "primarySource": True,
        },
        "diagnostic_report": {
            "resourceType": "DiagnosticReport",
            "id": ids.diagnostic_report,
            "status": "final",
            "category": [
                _concept("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory")
            ],
            "code": _concept(LOINC, "85354-9", "Blood pressure panel"),
            "subject": _ref(u("patient")),
            "encounter": _ref(u("encounter")),
            "effectiveDateTime": "2024-03-01T09:12:00+00:00",
            "issued": "2024-03-01T09:15:00.000+00:00",
            "result": [_ref(u("bp_panel")), _ref(u("observation"))],
        },
        "allergy": {
            "resourceType": "AllergyIntolerance",
            "id": ids.allergy,
            "clinicalStatus": _concept(
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                "active",
                "Active",
            ),
            "verificationStatus": _concept(
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                "confirmed",
                "Confirmed",
            ),
            "type": "allergy",
            "category": ["food"],
            "criticality": "low",
            "code": _concept(SNOMED, "91935009", "Allergy to peanuts"),
            "patient": _ref(u("patient")),
            "recordedDate": "2020-05-04T10:00:00+00:00",
        },
        "claim": {
            "resourceType": "Claim",
            "id": ids.claim,
            "status": "active",
            "type": _concept(
                "http://terminology.hl7.org/CodeSystem/claim-type", "institutional", "Institutional"
            ),
            "use": "claim",
            "patient": _ref(u("patient")),
            "billablePeriod": {
                "start": "2024-03-01T09:00:00+00:00",
                "end": "2024-03-01T11:30:00+00:00",
            },
            "created": "2024-03-01T11:30:00+00:00",
            "provider": _ref(org_ref),
            "priority": _concept(
                "http://terminology.hl7.org/CodeSystem/processpriority", "normal", "Normal"
            ),
            "diagnosis": [{"sequence": 1, "diagnosisReference": _ref(u("condition"))}],
            "prescription": _ref(u("medication_request")),
            "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "medicare"}}],
            "item": [
                {
                    "sequence": 1,
                    "productOrService": _concept(
                        SNOMED, "50849002", "Emergency room admission (procedure)"
                    ),
                    "encounter": [_ref(u("encounter"))],
                    "net": {"value": 312.5, "currency": "USD"},
                },
                {
                    "sequence": 2,
                    "diagnosisSequence": [1],
                    "productOrService": _concept(
                        SNOMED, "399208008", "Plain chest X-ray (procedure)"
                    ),
                    "servicedDate": "2024-03-01",
                    "quantity": {"value": 1},
                    "unitPrice": {"value": 80.1, "currency": "USD"},
                    "net": {"value": 80.1, "currency": "USD"},
                },
            ],
            "total": {"value": 392.6, "currency": "USD"},
        },
        "eob": {
            "resourceType": "ExplanationOfBenefit",
            "id": ids.eob,
            "contained": [
                {
                    "resourceType": "Coverage",
                    "id": "coverage",
                    "status": "active",
                    "type": {"text": "medicare"},
                    "beneficiary": _ref(u("patient")),
                    "payor": [{"display": "medicare"}],
                }
            ],
            "status": "active",
            "type": _concept(
                "http://terminology.hl7.org/CodeSystem/claim-type", "institutional", "Institutional"
            ),
            "use": "claim",
            "patient": _ref(u("patient")),
            "created": "2024-03-02T08:00:00+00:00",
            "insurer": {"display": "medicare"},
            "provider": _ref(u("practitioner")),
            "claim": _ref(u("claim")),
            "outcome": "complete",
            "insurance": [{"focal": True, "coverage": {"reference": "#coverage"}}],
            "total": [
                {
                    "category": _concept(
                        "http://terminology.hl7.org/CodeSystem/adjudication",
                        "submitted",
                        "Submitted Amount",
                    ),
                    "amount": {"value": 392.6, "currency": "USD"},
                }
            ],
            "payment": {"amount": {"value": 301.15, "currency": "USD"}},
        },
        "careplan": {
            "resourceType": "CarePlan",
            "id": ids.careplan,
            "status": "active",
            "intent": "order",
            "subject": _ref(u("patient")),
            "encounter": _ref(u("encounter")),
            "addresses": [_ref(u("condition"))],
        },
    }
    entries = []
    for name in ENTRY_NAMES:
        resource = resources[name]
        entry: dict[str, Any] = {"fullUrl": u(name), "resource": resource}
        if bundle_type in ("transaction", "batch"):
            entry["request"] = {"method": "POST", "url": resource["resourceType"]}
        entries.append(entry)
    return {"resourceType": "Bundle", "type": bundle_type, "entry": entries}


def resolved(resource: dict[str, Any], key: str = "a") -> dict[str, Any]:
    """A copy of a bundle ``resource`` with its ``urn:uuid:`` references as ``"Type/id"``."""
    ids = BundleIds(key)
    by_urn = {ids.urn(name): ids.ref(name) for name in ENTRY_NAMES}
    out = copy.deepcopy(resource)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("reference"), str) and node["reference"] in by_urn:
                node["reference"] = by_urn[node["reference"]]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(out)
    return out


def entry_resource(bundle: dict[str, Any], name: str) -> dict[str, Any]:
    """The resource of entry ``name`` (see :data:`ENTRY_NAMES`) in ``bundle``."""
    return bundle["entry"][ENTRY_NAMES.index(name)]["resource"]


def write_json(path: Path, document: Any) -> Path:
    """Write ``document`` as JSON to ``path`` (gzip-compressed when it ends in ``.gz``)."""
    data = json.dumps(document).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def write_ndjson(path: Path, resources: list[dict[str, Any]]) -> Path:
    """Write ``resources`` one per line (gzip-compressed when ``path`` ends in ``.gz``)."""
    data = "".join(json.dumps(r) + "\n" for r in resources).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path
