"""Small synthetic factories for tests: one row per call, sensible defaults, overridable.

Every factory takes the session first, adds its row(s), flushes and returns them; none
commits. Ids default to fresh uuid4 strings. Data is synthetic (no PHI).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from healthos_core.billing.entities import (
    ChargemasterEntry,
    Claim,
    ClaimItem,
    ExplanationOfBenefit,
)
from healthos_core.record.entities import (
    Condition,
    Encounter,
    Location,
    MedicationRequest,
    Observation,
    Organization,
    Patient,
    PatientIdentifier,
    Task,
)

SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
CVX = "http://hl7.org/fhir/sid/cvx"

#: A fixed, aware default time so tests are deterministic.
T0 = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def make_organization(session: Session, **overrides: Any) -> Organization:
    """A facility (Organization) named "General Hospital" unless overridden."""
    values: dict[str, Any] = {"id": new_id(), "name": "General Hospital", "type_code": "prov"}
    values.update(overrides)
    org = Organization(**values)
    session.add(org)
    session.flush()
    return org


def make_location(session: Session, **overrides: Any) -> Location:
    """A ward (Location kind ``ward``)."""
    values: dict[str, Any] = {
        "id": new_id(),
        "name": "Ward A",
        "kind": "ward",
        "physical_type": "wa",
    }
    values.update(overrides)
    location = Location(**values)
    session.add(location)
    session.flush()
    return location


def make_patient(
    session: Session,
    *,
    identifiers: Iterable[tuple[str, str]] = (),
    **overrides: Any,
) -> Patient:
    """A patient born 1970-01-01; ``identifiers`` are ``(system, value)`` pairs."""
    values: dict[str, Any] = {
        "id": new_id(),
        "given": "Test",
        "family": "Patient",
        "gender": "female",
        "birth_date": dt.date(1970, 1, 1),
    }
    values.update(overrides)
    patient = Patient(
        **values,
        identifiers=[PatientIdentifier(system=s, value=v) for s, v in identifiers],
    )
    session.add(patient)
    session.flush()
    return patient


def make_encounter(
    session: Session,
    *,
    patient: Patient | None = None,
    **overrides: Any,
) -> Encounter:
    """An in-progress ambulatory encounter starting at :data:`T0` (creates a patient if needed).

    ``facility_id`` defaults to the patient's; ``patient_id`` may be given instead of ``patient``.
    """
    if patient is None and "patient_id" not in overrides:
        patient = make_patient(session, facility_id=overrides.get("facility_id"))
    patient_id = overrides.pop("patient_id", None) or (patient.id if patient else None)
    values: dict[str, Any] = {
        "id": new_id(),
        "patient_id": patient_id,
        "facility_id": patient.facility_id if patient else None,
        "status": "in-progress",
        "class_code": "AMB",
        "period_start": T0,
    }
    values.update(overrides)
    encounter = Encounter(**values)
    session.add(encounter)
    session.flush()
    return encounter


def make_medication_request(
    session: Session, *, patient_id: str, **overrides: Any
) -> MedicationRequest:
    """An active order for ibuprofen 200 mg tablets (RxNorm 310965)."""
    values: dict[str, Any] = {
        "id": new_id(),
        "patient_id": patient_id,
        "status": "active",
        "intent": "order",
        "code_system": RXNORM,
        "code": "310965",
        "display": "Ibuprofen 200 MG Oral Tablet",
    }
    values.update(overrides)
    request = MedicationRequest(**values)
    session.add(request)
    session.flush()
    return request


def chargemaster_row(row: Mapping[str, Any] | Sequence[Any]) -> dict[str, Any]:
    """Normalise a row given as a mapping or as ``(code, unit_price[, effective_from])``."""
    if isinstance(row, Mapping):
        values = dict(row)
    else:
        values = {"code": row[0], "unit_price": row[1]}
        if len(row) > 2:
            values["effective_from"] = row[2]
    values.setdefault("code_system", SNOMED)
    values.setdefault("currency", "USD")
    values.setdefault("effective_from", dt.date(2000, 1, 1))
    values["unit_price"] = Decimal(str(values["unit_price"]))
    return values


def make_chargemaster(
    session: Session, rows: Iterable[Mapping[str, Any] | Sequence[Any]]
) -> list[ChargemasterEntry]:
    """Chargemaster entries: SNOMED, USD and effective from 2000-01-01 unless given."""
    entries = [ChargemasterEntry(**chargemaster_row(row)) for row in rows]
    session.add_all(entries)
    session.flush()
    return entries


CSV_HEADER = (
    "code_system,code,description,unit_price,currency,revenue_code,tax_category,"
    "effective_from,effective_to"
)


def chargemaster_csv(lines: Iterable[str]) -> str:
    """A chargemaster CSV text: the standard header plus ``lines``."""
    return "\n".join([CSV_HEADER, *lines]) + "\n"


def make_claim(
    session: Session,
    *,
    patient_id: str,
    items: Iterable[Mapping[str, Any]] = (),
    **overrides: Any,
) -> Claim:
    """A Claim with ClaimItems; each item mapping takes ClaimItem's column names.

    ``sequence`` defaults to the position (1-based). Money values are given as strings
    or Decimals.
    """
    values: dict[str, Any] = {
        "id": new_id(),
        "patient_id": patient_id,
        "status": "active",
        "type_code": "institutional",
        "use": "claim",
        "currency": "USD",
    }
    values.update(overrides)
    if values.get("total") is not None:
        values["total"] = Decimal(str(values["total"]))
    claim = Claim(**values)
    for position, item in enumerate(items, start=1):
        data = dict(item)
        data.setdefault("sequence", position)
        for money in ("unit_price", "net", "quantity"):
            if data.get(money) is not None:
                data[money] = Decimal(str(data[money]))
        claim.items.append(ClaimItem(**data))
    session.add(claim)
    session.flush()
    return claim


def make_explanation_of_benefit(
    session: Session, *, claim: Claim, **overrides: Any
) -> ExplanationOfBenefit:
    """A complete ExplanationOfBenefit for ``claim`` (pass ``resource`` for the items)."""
    values: dict[str, Any] = {
        "id": new_id(),
        "patient_id": claim.patient_id,
        "claim_id": claim.id,
        "status": "active",
        "outcome": "complete",
        "currency": claim.currency,
    }
    values.update(overrides)
    eob = ExplanationOfBenefit(**values)
    session.add(eob)
    session.flush()
    return eob


def make_observation(
    session: Session,
    *,
    patient_id: str,
    code: str,
    value: float | None,
    effective_at: dt.datetime,
    **overrides: Any,
) -> Observation:
    """A final LOINC observation of ``patient_id`` (no encounter unless ``encounter_id``).

    ``unit`` defaults to ``None``; ``status`` to ``"final"``; ``category`` to
    ``"laboratory"``.
    """
    values: dict[str, Any] = {
        "id": new_id(),
        "patient_id": patient_id,
        "status": "final",
        "category": "laboratory",
        "code_system": LOINC,
        "code": code,
        "value": value,
        "effective_at": effective_at,
    }
    values.update(overrides)
    observation = Observation(**values)
    session.add(observation)
    session.flush()
    return observation


def make_condition(
    session: Session,
    *,
    patient_id: str,
    code: str,
    code_system: str = "http://hl7.org/fhir/sid/icd-10-cm",
    **overrides: Any,
) -> Condition:
    """A confirmed, active diagnosis of ``patient_id`` coded in ICD-10-CM unless overridden.

    ``recorded_at`` defaults to :data:`T0`.
    """
    values: dict[str, Any] = {
        "id": new_id(),
        "patient_id": patient_id,
        "code_system": code_system,
        "code": code,
        "clinical_status": "active",
        "verification_status": "confirmed",
        "recorded_at": T0,
    }
    values.update(overrides)
    condition = Condition(**values)
    session.add(condition)
    session.flush()
    return condition


def make_queue_point(session: Session, **overrides: Any) -> Location:
    """A queue point (Location kind ``queue``): an OPD clinic with a 30-minute target."""
    values: dict[str, Any] = {
        "id": new_id(),
        "name": "OPD Clinic",
        "kind": "queue",
        "service_type": "opd_clinic",
        "target_wait_minutes": 30,
    }
    values.update(overrides)
    return make_location(session, physical_type=None, **values)


def make_ward(session: Session, ward_type: str = "general_medicine", **overrides: Any) -> Location:
    """A ward (kind ``ward``) whose ``ward_type`` is the pool of its beds."""
    overrides.setdefault("managing_organization_id", overrides.get("facility_id"))
    return make_location(session, service_type=ward_type, **overrides)


def make_bed(session: Session, ward: Location, status: str = "U", **overrides: Any) -> Location:
    """A bed (kind ``bed``) in ``ward`` with HL7 v2-0116 ``status``; the ward's facility."""
    values: dict[str, Any] = {
        "name": "Bed",
        "kind": "bed",
        "physical_type": "bd",
        "part_of_id": ward.id,
        "operational_status": status,
        "facility_id": ward.facility_id,
        "managing_organization_id": ward.managing_organization_id,
    }
    values.update(overrides)
    return make_location(session, **values)


def make_ticket(
    session: Session,
    location: Location,
    *,
    arrived: dt.datetime = T0,
    called: dt.datetime | None = None,
    started: dt.datetime | None = None,
    ended: dt.datetime | None = None,
    left: dt.datetime | None = None,
    patient: Patient | None = None,
    **overrides: Any,
) -> Task:
    """A queue ticket (Task ``queue-ticket``) at ``location`` with the times given."""
    patient = patient or make_patient(session)
    status = (
        "cancelled"
        if left
        else "completed"
        if ended
        else "in-progress"
        if started
        else "ready"
        if called
        else "requested"
    )
    values: dict[str, Any] = {
        "id": new_id(),
        "status": status,
        "code": "queue-ticket",
        "patient_id": patient.id,
        "location_id": location.id,
        "priority": "routine",
        "arrived_at": arrived,
        "called_at": called,
        "service_started_at": started,
        "service_ended_at": ended,
        "left_at": left,
    }
    values.update(overrides)
    ticket = Task(**values)
    session.add(ticket)
    session.flush()
    return ticket
