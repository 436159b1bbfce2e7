"""HealthOS core: one live record per patient and the billing truth.

Importing this package registers every entity on :data:`healthos_core.db.Base`'s
metadata, and nothing else: no event handler, no import hook. A program that writes
clinical or financial facts wires charge capture, the outbox (for rescoring) and
remittance posting once with
:func:`wire_live_path` (:mod:`healthos_core.wiring`). It imports no web or
machine-learning packages.
"""

from healthos_core.advisory import SuggestionAction, SuggestionRecord
from healthos_core.billing.entities import (
    ChargeItem,
    ChargeItemStatus,
    ChargemasterEntry,
    Claim,
    ClaimBillingStatus,
    ClaimDiagnosis,
    ClaimItem,
    ClaimResponse,
    ClaimStatusHistory,
    ExplanationOfBenefit,
)
from healthos_core.db import Base, make_engine, make_session_factory, session_scope
from healthos_core.errors import (
    ConflictError,
    FhirValidationError,
    HealthOSError,
    InvalidInputError,
    NotFoundError,
    PricingError,
)
from healthos_core.operations.entities import BedPoolThreshold, QueueRoster
from healthos_core.outbox import OutboxEvent
from healthos_core.record.entities import (
    AllergyIntolerance,
    Appointment,
    Condition,
    Coverage,
    DiagnosticReport,
    Encounter,
    EncounterClass,
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
from healthos_core.settings import Settings, get_settings
from healthos_core.vocabulary import SuggestionStatus
from healthos_core.wiring import Wiring, unwire, wire_live_path

__all__ = [
    "AllergyIntolerance",
    "Appointment",
    "Base",
    "BedPoolThreshold",
    "ChargeItem",
    "ChargeItemStatus",
    "ChargemasterEntry",
    "Claim",
    "ClaimBillingStatus",
    "ClaimDiagnosis",
    "ClaimItem",
    "ClaimResponse",
    "ClaimStatusHistory",
    "Condition",
    "ConflictError",
    "Coverage",
    "DiagnosticReport",
    "Encounter",
    "EncounterClass",
    "ExplanationOfBenefit",
    "FhirValidationError",
    "HealthOSError",
    "Immunization",
    "InvalidInputError",
    "Location",
    "MedicationAdministration",
    "MedicationRequest",
    "NotFoundError",
    "Observation",
    "Organization",
    "OutboxEvent",
    "Patient",
    "PatientIdentifier",
    "Practitioner",
    "PricingError",
    "Procedure",
    "QueueRoster",
    "Settings",
    "SuggestionAction",
    "SuggestionRecord",
    "SuggestionStatus",
    "Task",
    "Wiring",
    "get_settings",
    "make_engine",
    "make_session_factory",
    "session_scope",
    "unwire",
    "wire_live_path",
]
