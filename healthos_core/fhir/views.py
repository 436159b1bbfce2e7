"""What each role may read and write through FHIR (minimum necessary, ``docs/fhir.md``).

The FHIR API serves the same record as the rest of the API, under the same policy
(:mod:`healthos_core.access`, ``docs/access.md``): a role reads only the resource types
its work needs (:data:`READABLE_TYPES`), and of a Patient only the identifiers and
demographics its :class:`~healthos_core.access.RecordView` shows; an Encounter's
``reasonCode`` only where the view shows it. No role sees a government identifier (SSN,
driver's licence, passport). Writing is :data:`WRITABLE_TYPES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import ColumnElement

from healthos_core.access import (
    IdentifierCategory,
    RecordView,
    identifier_category,
    record_view,
    visible_identifier,
)
from healthos_core.errors import PermissionDeniedError

#: The record's directory: where a resource comes from, who provided it.
_DIRECTORY: Final = frozenset({"Organization", "Location", "Practitioner"})
#: Clinical resource types (treatment).
CLINICAL_TYPES: Final = frozenset(
    {
        "Patient",
        "Encounter",
        "Condition",
        "Observation",
        "Procedure",
        "MedicationRequest",
        "MedicationAdministration",
        "Immunization",
        "DiagnosticReport",
        "AllergyIntolerance",
    }
)
#: Operations resource types: queue tickets (Task) and Appointments (``docs/operations.md``).
OPERATIONS_TYPES: Final = frozenset({"Task", "Appointment"})
#: Billing resource types (payment).
BILLING_TYPES: Final = frozenset(
    {"Coverage", "ChargeItem", "Claim", "ExplanationOfBenefit", "ClaimResponse"}
)

#: Role → the resource types it may read. Clinicians and nurses read the clinical
#: record; finance reads what a claim is built from (the patient, the encounter, its
#: diagnoses and procedures) and the billing record, not vital signs or results;
#: operations and admin find patients and encounters. Other roles read nothing (403).
READABLE_TYPES: Final[dict[str, frozenset[str]]] = {
    "clinician": CLINICAL_TYPES | OPERATIONS_TYPES | _DIRECTORY,
    "nurse": CLINICAL_TYPES | OPERATIONS_TYPES | _DIRECTORY,
    "finance": frozenset({"Patient", "Encounter", "Condition", "Procedure"})
    | BILLING_TYPES
    | _DIRECTORY,
    "operations": frozenset({"Patient", "Encounter"}) | OPERATIONS_TYPES | _DIRECTORY,
    "admin": frozenset({"Patient", "Encounter"}) | OPERATIONS_TYPES | _DIRECTORY,
}

#: Role → the resource types it may write (create, update, transaction, batch). ``admin``
#: is the account of interfaces that feed the record (an EHR, a lab system, a payer):
#: every type. Clinicians and nurses record care, finance the billing record.
WRITABLE_TYPES: Final[dict[str, frozenset[str]]] = {
    "clinician": CLINICAL_TYPES | OPERATIONS_TYPES | _DIRECTORY,
    "nurse": (CLINICAL_TYPES - {"Patient"}) | OPERATIONS_TYPES,
    "finance": BILLING_TYPES,
    "admin": CLINICAL_TYPES | OPERATIONS_TYPES | BILLING_TYPES | _DIRECTORY,
}

#: Patient elements shown only to roles that see demographics.
_DEMOGRAPHIC_ELEMENTS: Final = (
    "gender",
    "birthDate",
    "deceasedBoolean",
    "deceasedDateTime",
    "address",
    "telecom",
    "maritalStatus",
    "multipleBirthBoolean",
    "multipleBirthInteger",
    "communication",
    "extension",
    "photo",
    "contact",
)


@dataclass(frozen=True, slots=True)
class FhirView:
    """What one role reads and writes through FHIR.

    Attributes
    ----------
    role : str
        The caller's role.
    readable : frozenset of str
        Resource types it may read.
    writable : frozenset of str
        Resource types it may write.
    record : RecordView or None
        What it sees of patients and encounters (``None``: it reads none).
    """

    role: str
    readable: frozenset[str]
    writable: frozenset[str]
    record: RecordView | None

    def may_read(self, resource_type: str) -> bool:
        """Whether the role may read ``resource_type``."""
        return resource_type in self.readable

    def check_type(self, resource_type: str) -> None:
        """Refuse a type the role may not read (403).

        Raises
        ------
        PermissionDeniedError
            Naming the types the role may read.
        """
        if resource_type not in self.readable:
            allowed = ", ".join(sorted(self.readable)) or "none"
            raise PermissionDeniedError(
                f"the {self.role} role may not read {resource_type}; it reads: {allowed}"
            )

    def check_write(self, resource_type: str) -> None:
        """Refuse a type the role may not write (403).

        Raises
        ------
        PermissionDeniedError
            Naming the types the role may write.
        """
        if resource_type not in self.writable:
            allowed = ", ".join(sorted(self.writable)) or "none"
            raise PermissionDeniedError(
                f"the {self.role} role may not write {resource_type}; it writes: {allowed}"
            )

    def identifier_condition(self) -> ColumnElement[bool]:
        """Return the SQL condition on the patient identifiers this role may see (and search)."""
        categories = self.record.identifiers if self.record is not None else frozenset()
        return visible_identifier(categories)

    def redact(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Remove from ``resource`` what this role may not see (changes it in place).

        Patient: identifiers outside the role's categories, and demographics for roles
        that do not see them; Encounter: ``reasonCode`` and ``reasonReference`` for roles
        that do not see the reason.
        """
        record = self.record
        resource_type = resource.get("resourceType")
        if resource_type == "Patient":
            categories = record.identifiers if record is not None else frozenset()
            kept = [i for i in resource.get("identifier") or [] if _category(i) in categories]
            if kept:
                resource["identifier"] = kept
            else:
                resource.pop("identifier", None)
            if record is None or not record.demographics:
                for element in _DEMOGRAPHIC_ELEMENTS:
                    resource.pop(element, None)
            resource.pop("text", None)  # the narrative repeats what is redacted
        elif resource_type == "Encounter" and (record is None or not record.encounter_reason):
            resource.pop("reasonCode", None)
            resource.pop("reasonReference", None)
        return resource


def _category(identifier: Any) -> Any:
    if not isinstance(identifier, dict):
        return None
    codings = (
        ((identifier.get("type") or {}).get("coding") or [{}])
        if isinstance(identifier.get("type"), dict)
        else [{}]
    )
    code = codings[0].get("code") if codings and isinstance(codings[0], dict) else None
    return identifier_category(str(identifier.get("system") or ""), code)


def fhir_view(role: str) -> FhirView:
    """Return what ``role`` reads and writes through FHIR.

    Raises
    ------
    PermissionDeniedError
        If the role may use no FHIR route (``leadership``, ``data_scientist``,
        ``patient``).
    """
    readable = READABLE_TYPES.get(role, frozenset())
    writable = WRITABLE_TYPES.get(role, frozenset())
    if not readable and not writable:
        roles = ", ".join(sorted(set(READABLE_TYPES) | set(WRITABLE_TYPES)))
        raise PermissionDeniedError(f"the {role} role may not use FHIR; roles that may: {roles}")
    record = record_view(role) if role in READABLE_TYPES else None
    return FhirView(role=role, readable=readable, writable=writable, record=record)


#: The role that may run a Bulk Data export (``$export``): the whole record, of every
#: type, for the system's own operations (a backup, moving the record to another
#: HealthOS server, the analytics warehouse). Government identifiers stay out, as for
#: every other read (no role's work needs them), unless the server is set to move the
#: whole record (``Settings.bulk_export_government_identifiers``); the source system's
#: own ids are always kept (re-imports match patients on them).
BULK_EXPORT_ROLE: Final = "admin"


def bulk_export_view(role: str, *, government_identifiers: bool = False) -> FhirView:
    """Return what a Bulk Data export by ``role`` holds.

    Parameters
    ----------
    role : str
        The caller's role.
    government_identifiers : bool, default=False
        Keep SSN, driver's licence and passport numbers (a move of the whole record:
        ``Settings.bulk_export_government_identifiers``); by default they are left out.

    Raises
    ------
    PermissionDeniedError
        If ``role`` is not :data:`BULK_EXPORT_ROLE`.
    """
    if role != BULK_EXPORT_ROLE:
        raise PermissionDeniedError(
            f"the {role} role may not run a bulk export; the {BULK_EXPORT_ROLE} role may"
        )
    everything = CLINICAL_TYPES | OPERATIONS_TYPES | BILLING_TYPES | _DIRECTORY
    identifiers = frozenset(IdentifierCategory)
    if not government_identifiers:
        identifiers -= {IdentifierCategory.GOVERNMENT}
    record = RecordView(
        identifiers=identifiers,
        demographics=True,
        encounter_reason=True,
        observations=True,
    )
    return FhirView(role=role, readable=everything, writable=frozenset(), record=record)
