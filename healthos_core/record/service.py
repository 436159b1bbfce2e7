"""The record service: write clinical events and publish them on the event bus.

Every write function follows the same order (style-anchors §8 "Event bus: keep it
boring"):

1. **validate** the domain rules (unknown ids → :class:`~healthos_core.errors.NotFoundError`,
   state conflicts such as a finished encounter → :class:`~healthos_core.errors.ConflictError`,
   naive datetimes or end before start → :class:`~healthos_core.errors.InvalidInputError`),
   before anything is written;
2. build the FHIR R4 resource of the fact (:func:`healthos_core.fhir.exporter.to_fhir`), and
   write it through **the one write path**, :func:`healthos_core.fhir.importer.import_unit`
   with ``origin="live"``: validated with ``fhir.resources``, upserted as the importer maps
   it, and its ``live`` events published from :mod:`healthos_core.events` in the same
   savepoint; subscribers (charge capture, once :func:`healthos_core.wiring.wire_live_path`
   has wired it) write in the same transaction. A FHIR ``POST``, a transaction Bundle and
   ``healthos import --live`` call the same function, so every path stores the same rows
   and posts the same charges;
3. return the stored entity.

Writing the same fact again with the same id is idempotent: the stored entity is
returned and nothing is written or published. The same id with other content is a
:class:`~healthos_core.errors.ConflictError`.

The caller owns the session and the transaction (style-anchors rule 3): nothing here
commits. If a subscriber raises, the exception reaches the caller, who must roll back;
``with session.begin(): ...`` does so, and then neither the clinical event nor its
charges exist.

Times must be timezone-aware; they are stored as UTC (SPEC §3). Ids default to
``uuid4`` strings and otherwise must be FHIR ids (``[A-Za-z0-9.-]{1,64}``, FHIR R4
datatype ``id``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, defer, joinedload

from healthos_core.db import Base
from healthos_core.errors import ConflictError, InvalidInputError, NotFoundError
from healthos_core.events import EventBus
from healthos_core.record.entities import (
    Condition,
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
    Procedure,
)
from healthos_core.record.write_path import write_entity

__all__ = [
    "CLOSED_ENCOUNTER_STATUSES",
    "LOINC",
    "TimelineEntry",
    "admit",
    "discharge",
    "encounter_timeline",
    "get_patient",
    "record_medication_administration",
    "record_observation",
    "record_procedure",
    "register_patient",
]

#: LOINC code system URI (FHIR R4 terminology page "Using LOINC with HL7 Standards").
LOINC: Final = "http://loinc.org"

#: FHIR R4 ``administrative-gender`` value set (required binding of Patient.gender).
GENDERS: Final = frozenset({"male", "female", "other", "unknown"})

#: FHIR R4 ``observation-category`` codes (preferred binding of Observation.category).
OBSERVATION_CATEGORIES: Final = frozenset(
    {
        "social-history",
        "vital-signs",
        "imaging",
        "laboratory",
        "procedure",
        "survey",
        "exam",
        "therapy",
        "activity",
    }
)

#: Encounter statuses (FHIR R4 ``encounter-status``) after which no new clinical event
#: may be recorded on the encounter and it cannot be discharged again.
CLOSED_ENCOUNTER_STATUSES: Final = frozenset({"finished", "cancelled", "entered-in-error"})

#: FHIR R4 datatype ``id``: 1–64 letters, digits, ``-`` and ``.``.
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


# --------------------------------------------------------------------------- helpers


def _new_id(entity: type[Base], given: str | None) -> str:
    """Return ``given`` (validated as a FHIR id) or a fresh uuid4 string."""
    if given is None:
        return str(uuid.uuid4())
    if not isinstance(given, str) or not _FHIR_ID.fullmatch(given):
        raise InvalidInputError(
            f"invalid {entity.__name__} id {given!r}: a FHIR id is 1-64 characters "
            "from A-Z, a-z, 0-9, '-' and '.'"
        )
    return given


def _aware_utc(value: Any, name: str) -> dt.datetime:
    """Return ``value`` as an aware UTC datetime, refusing naive or non-datetime values."""
    if not isinstance(value, dt.datetime):
        raise InvalidInputError(
            f"{name} must be a timezone-aware datetime, got {type(value).__name__} {value!r}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(
            f"{name}={value.isoformat()} is naive: pass a timezone-aware datetime "
            "(e.g. datetime(..., tzinfo=datetime.UTC))"
        )
    return value.astimezone(dt.UTC)


def _optional_aware_utc(value: Any, name: str) -> dt.datetime | None:
    return None if value is None else _aware_utc(value, name)


def _as_utc(value: dt.datetime) -> dt.datetime:
    """Return ``value`` aware: stored times are (UTCDateTime); unflushed ones may be naive."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _required_text(value: Any, name: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} is required and must be a non-empty string")
    text = value.strip()
    if len(text) > max_length:
        raise InvalidInputError(f"{name} is {len(text)} characters long; the limit is {max_length}")
    return text


def _optional_text(value: Any, name: str, max_length: int) -> str | None:
    if value is None:
        return None
    return _required_text(value, name, max_length)


def _check_end_after_start(start: dt.datetime | None, end: dt.datetime | None, what: str) -> None:
    if start is not None and end is not None and end < _as_utc(start):
        raise InvalidInputError(
            f"{what} ends at {end.isoformat()}, before it starts at {_as_utc(start).isoformat()}"
        )


def _organization(session: Session, facility_id: str | None) -> str | None:
    if facility_id is None:
        return None
    if session.get(Organization, facility_id) is None:
        raise NotFoundError(f"facility Organization/{facility_id} does not exist")
    return facility_id


def _open_encounter(session: Session, encounter_id: str, action: str) -> Encounter:
    """Return the encounter, refusing unknown or closed ones."""
    encounter = session.get(Encounter, encounter_id)
    if encounter is None:
        raise NotFoundError(f"Encounter/{encounter_id} does not exist: cannot {action}")
    if encounter.status in CLOSED_ENCOUNTER_STATUSES:
        raise ConflictError(
            f"Encounter/{encounter_id} is {encounter.status}: cannot {action} on a closed "
            "encounter (record it on a new encounter)"
        )
    return encounter


def _check_during_encounter(encounter: Encounter, at: dt.datetime, name: str) -> None:
    if encounter.period_start is not None and at < _as_utc(encounter.period_start):
        raise InvalidInputError(
            f"{name}={at.isoformat()} is before Encounter/{encounter.id} started at "
            f"{_as_utc(encounter.period_start).isoformat()}"
        )


def _finite_number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInputError(f"{name} must be finite, got {value!r}")
    return number


def _identifier_rows(identifiers: Iterable[Any]) -> list[tuple[str, str, str | None]]:
    rows: list[tuple[str, str, str | None]] = []
    for index, item in enumerate(identifiers):
        if isinstance(item, Mapping):
            system = item.get("system", "")
            value, type_code = item.get("value"), item.get("type_code")
        elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) in (2, 3):
            system, value = item[0], item[1]
            type_code = item[2] if len(item) == 3 else None
        else:
            raise InvalidInputError(
                f"identifiers[{index}] must be (system, value), (system, value, type_code) "
                f"or a mapping with 'system' and 'value', got {item!r}"
            )
        if system is None:
            system = ""
        if not isinstance(system, str) or len(system) > 255:
            raise InvalidInputError(
                f"identifiers[{index}].system must be a string of at most 255 characters"
            )
        value = _required_text(value, f"identifiers[{index}].value", 128)
        type_code = _optional_text(type_code, f"identifiers[{index}].type_code", 16)
        if any(r[0] == system and r[1] == value for r in rows):
            raise InvalidInputError(f"identifiers[{index}] repeats {system}|{value}")
        rows.append((system, value, type_code))
    return rows


# --------------------------------------------------------------------------- writes


def register_patient(
    session: Session,
    *,
    given: str,
    family: str,
    gender: str,
    birth_date: dt.date,
    identifiers: Iterable[tuple[str, str] | tuple[str, str, str | None] | Mapping[str, Any]] = (),
    id: str | None = None,
    facility_id: str | None = None,
) -> Patient:
    """Register a patient with their business identifiers (MRN, national ids).

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session; the patient is added and flushed, not committed.
    given, family : str
        Given and family name (≤128 characters each).
    gender : {"male", "female", "other", "unknown"}
        FHIR R4 administrative gender (required value set).
    birth_date : datetime.date
        Date of birth; not in the future (UTC today).
    identifiers : iterable, default=()
        ``(system, value)``, ``(system, value, type_code)`` or mappings with keys
        ``system``, ``value`` and optional ``type_code`` (v2-0203, e.g. ``"MR"``).
        A ``system|value`` pair must not belong to another patient.
    id : str, optional
        FHIR id; default a new uuid4 string.
    facility_id : str, optional
        The registering facility (an existing Organization id).

    Returns
    -------
    Patient
        The flushed patient, identifiers loaded.

    Raises
    ------
    InvalidInputError
        Bad gender, birth date, id or identifier.
    NotFoundError
        ``facility_id`` is not an Organization.
    ConflictError
        ``id`` is taken, or an identifier already belongs to another patient.

    Examples
    --------
    >>> patient = register_patient(  # doctest: +SKIP
    ...     session, given="Asha", family="Rao", gender="female",
    ...     birth_date=datetime.date(1980, 5, 17), identifiers=[("urn:mrn", "12345", "MR")])
    """
    given = _required_text(given, "given", 128)
    family = _required_text(family, "family", 128)
    if gender not in GENDERS:
        raise InvalidInputError(
            f"gender {gender!r} is not a FHIR administrative gender: use one of {sorted(GENDERS)}"
        )
    if isinstance(birth_date, dt.datetime) or not isinstance(birth_date, dt.date):
        raise InvalidInputError(f"birth_date must be a datetime.date, got {birth_date!r}")
    if birth_date > dt.datetime.now(dt.UTC).date():
        raise InvalidInputError(f"birth_date {birth_date.isoformat()} is in the future")
    rows = _identifier_rows(identifiers)
    facility_id = _organization(session, facility_id)
    patient_id = _new_id(Patient, id)
    for system, value, _ in rows:
        owner = session.scalar(
            select(PatientIdentifier.patient_id)
            .where(PatientIdentifier.system == system, PatientIdentifier.value == value)
            .limit(1)
        )
        if owner is not None and owner != patient_id:
            raise ConflictError(
                f"identifier {system}|{value} already belongs to Patient/{owner}: "
                "look that patient up instead of registering a new one"
            )

    patient = Patient(
        id=patient_id,
        given=given,
        family=family,
        gender=gender,
        birth_date=birth_date,
        facility_id=facility_id,
        identifiers=[
            PatientIdentifier(system=system, value=value, type_code=type_code)
            for system, value, type_code in rows
        ],
    )
    return write_entity(session, patient, None)


def admit(
    session: Session,
    *,
    patient_id: str,
    class_code: str,
    start: dt.datetime,
    facility_id: str | None = None,
    location_id: str | None = None,
    type_code: str | None = None,
    type_display: str | None = None,
    id: str | None = None,
    bus: EventBus | None = None,
) -> Encounter:
    """Start an encounter (status ``in-progress``) and publish :class:`EncounterStarted`.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session (flushed, not committed).
    patient_id : str
        An existing Patient id.
    class_code : {"AMB", "EMER", "IMP", "OBSENC", "HH", "VR"}
        FHIR v3 ActCode encounter class (:class:`~healthos_core.record.entities.EncounterClass`).
    start : datetime.datetime
        Timezone-aware start time; stored as UTC.
    facility_id : str, optional
        The providing facility (Organization id); default the patient's facility.
        Also stored as the encounter's service provider.
    location_id : str, optional
        Current ward, bed or clinic (an existing Location id).
    type_code, type_display : str, optional
        Encounter type, a SNOMED CT code as Synthea and US claims use it (e.g.
        ``"185349003"`` check-up); charge capture prices the visit fee by it.
    id : str, optional
        FHIR id; default a new uuid4 string.
    bus : EventBus, optional
        Where to publish; default :func:`~healthos_core.events.default_bus`.

    Returns
    -------
    Encounter
        The flushed encounter.

    Raises
    ------
    NotFoundError
        Unknown patient, facility or location.
    InvalidInputError
        Unknown class, naive ``start`` or bad id.
    ConflictError
        ``id`` is taken.
    """
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFoundError(f"Patient/{patient_id} does not exist: register the patient first")
    try:
        encounter_class = EncounterClass(class_code)
    except ValueError:
        raise InvalidInputError(
            f"class_code {class_code!r} is not an encounter class: use one of "
            f"{[c.value for c in EncounterClass]}"
        ) from None
    start = _aware_utc(start, "start")
    facility_id = _organization(session, facility_id if facility_id else patient.facility_id)
    if location_id is not None and session.get(Location, location_id) is None:
        raise NotFoundError(f"Location/{location_id} does not exist")
    type_code = _optional_text(type_code, "type_code", 64)
    type_display = _optional_text(type_display, "type_display", 512)
    encounter_id = _new_id(Encounter, id)

    encounter = Encounter(
        id=encounter_id,
        patient_id=patient_id,
        facility_id=facility_id,
        service_provider_id=facility_id,
        status="in-progress",
        class_code=encounter_class.value,
        type_code=type_code,
        type_display=type_display,
        period_start=start,
        location_id=location_id,
    )
    return write_entity(session, encounter, bus)


def record_procedure(
    session: Session,
    *,
    encounter_id: str,
    code_system: str,
    code: str,
    display: str | None,
    performed_at: dt.datetime,
    performed_end: dt.datetime | None = None,
    id: str | None = None,
    bus: EventBus | None = None,
) -> Procedure:
    """Record a performed procedure and publish :class:`ProcedurePerformed`.

    With charge capture subscribed to ``bus`` (:func:`healthos_core.wiring.wire_live_path`
    does it for the default bus; the API and the CLI call it), a ``ChargeItem`` priced by
    ``code`` on the UTC date of ``performed_at`` is posted in the same transaction.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session (flushed, not committed).
    encounter_id : str
        An existing, open encounter; the procedure takes its patient and facility.
    code_system : str
        Code system URI, e.g. ``"http://snomed.info/sct"``.
    code : str
        The procedure code (≤64 characters).
    display : str or None
        Human-readable name.
    performed_at : datetime.datetime
        Aware start time; not before the encounter started.
    performed_end : datetime.datetime, optional
        Aware end time; not before ``performed_at``.
    id : str, optional
        FHIR id; default a new uuid4 string.
    bus : EventBus, optional
        Where to publish; default :func:`~healthos_core.events.default_bus`.

    Returns
    -------
    Procedure
        The flushed procedure (status ``completed``).

    Raises
    ------
    NotFoundError
        Unknown encounter.
    ConflictError
        The encounter is finished, cancelled or entered-in-error; or ``id`` is taken.
    InvalidInputError
        Naive or out-of-order times, missing code.
    PricingError
        Only from a strict charge-capture subscriber when the code has no price.
    """
    encounter = _open_encounter(session, encounter_id, "record a procedure")
    code_system = _required_text(code_system, "code_system", 128)
    code = _required_text(code, "code", 64)
    display = _optional_text(display, "display", 512)
    performed_at = _aware_utc(performed_at, "performed_at")
    performed_end = _optional_aware_utc(performed_end, "performed_end")
    _check_during_encounter(encounter, performed_at, "performed_at")
    _check_end_after_start(performed_at, performed_end, "the procedure")
    procedure_id = _new_id(Procedure, id)

    procedure = Procedure(
        id=procedure_id,
        patient_id=encounter.patient_id,
        encounter_id=encounter.id,
        facility_id=encounter.facility_id,
        status="completed",
        code_system=code_system,
        code=code,
        display=display,
        performed_start=performed_at,
        performed_end=performed_end,
    )
    return write_entity(session, procedure, bus)


def record_medication_administration(
    session: Session,
    *,
    encounter_id: str,
    code_system: str,
    code: str,
    display: str | None,
    effective_at: dt.datetime,
    effective_end: dt.datetime | None = None,
    dose_value: float | None = None,
    dose_unit: str | None = None,
    request_id: str | None = None,
    id: str | None = None,
    bus: EventBus | None = None,
) -> MedicationAdministration:
    """Record a dose given to the patient and publish :class:`MedicationAdministered`.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session (flushed, not committed).
    encounter_id : str
        An existing, open encounter.
    code_system : str
        Usually RxNorm, ``"http://www.nlm.nih.gov/research/umls/rxnorm"``.
    code : str
        The medication code.
    display : str or None
        Human-readable name.
    effective_at : datetime.datetime
        Aware time the dose was given (start); not before the encounter started.
    effective_end : datetime.datetime, optional
        Aware end of an infusion; not before ``effective_at``.
    dose_value : float, optional
        Dose quantity, > 0, in ``dose_unit`` (required with ``dose_value``; UCUM code
        such as ``"mg"``).
    dose_unit : str, optional
        UCUM unit of ``dose_value``.
    request_id : str, optional
        The MedicationRequest (order) this dose fulfils; must exist.
    id : str, optional
        FHIR id; default a new uuid4 string.
    bus : EventBus, optional
        Where to publish; default :func:`~healthos_core.events.default_bus`.

    Returns
    -------
    MedicationAdministration
        The flushed administration (status ``completed``).

    Raises
    ------
    NotFoundError
        Unknown encounter or request.
    ConflictError
        The encounter is closed, or ``id`` is taken.
    InvalidInputError
        Naive or out-of-order times, missing code, bad dose.
    PricingError
        Only from a strict charge-capture subscriber when the code has no price.
    """
    encounter = _open_encounter(session, encounter_id, "record a medication administration")
    code_system = _required_text(code_system, "code_system", 128)
    code = _required_text(code, "code", 64)
    display = _optional_text(display, "display", 512)
    effective_at = _aware_utc(effective_at, "effective_at")
    effective_end = _optional_aware_utc(effective_end, "effective_end")
    _check_during_encounter(encounter, effective_at, "effective_at")
    _check_end_after_start(effective_at, effective_end, "the administration")
    dose: float | None = None
    if dose_value is not None:
        dose = _finite_number(dose_value, "dose_value")
        if dose <= 0:
            raise InvalidInputError(f"dose_value must be > 0, got {dose_value!r}")
        dose_unit = _required_text(dose_unit, "dose_unit (required with dose_value)", 32)
    else:
        dose_unit = _optional_text(dose_unit, "dose_unit", 32)
    if request_id is not None and session.get(MedicationRequest, request_id) is None:
        raise NotFoundError(f"MedicationRequest/{request_id} does not exist")
    administration_id = _new_id(MedicationAdministration, id)

    administration = MedicationAdministration(
        id=administration_id,
        patient_id=encounter.patient_id,
        encounter_id=encounter.id,
        facility_id=encounter.facility_id,
        request_id=request_id,
        status="completed",
        code_system=code_system,
        code=code,
        display=display,
        effective_start=effective_at,
        effective_end=effective_end,
        dose_value=dose,
        dose_unit=dose_unit,
    )
    return write_entity(session, administration, bus)


def _components(components: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    if components is None:
        return None
    if isinstance(components, str | bytes | Mapping) or not isinstance(components, Sequence):
        raise InvalidInputError("components must be a list of {'code', 'value', 'unit'} mappings")
    rows: list[dict[str, Any]] = []
    for index, component in enumerate(components):
        if not isinstance(component, Mapping):
            raise InvalidInputError(f"components[{index}] must be a mapping, got {component!r}")
        unknown = set(component) - {"code", "value", "unit", "code_system", "display"}
        if unknown:
            raise InvalidInputError(f"components[{index}] has unknown keys {sorted(unknown)}")
        row: dict[str, Any] = {
            "code": _required_text(component.get("code"), f"components[{index}].code", 64),
            "value": _finite_number(component.get("value"), f"components[{index}].value"),
            "unit": _optional_text(component.get("unit"), f"components[{index}].unit", 32),
        }
        for key, column in (("code_system", "system"), ("display", "display")):
            if component.get(key) is not None:
                row[column] = _required_text(component[key], f"components[{index}].{key}", 512)
        rows.append(row)
    return rows


def record_observation(
    session: Session,
    *,
    encounter_id: str,
    code: str,
    value: float | None,
    unit: str | None,
    effective_at: dt.datetime,
    category: str = "vital-signs",
    components: Sequence[Mapping[str, Any]] | None = None,
    code_system: str = LOINC,
    display: str | None = None,
    value_code: str | None = None,
    id: str | None = None,
    bus: EventBus | None = None,
) -> Observation:
    """Record a vital sign, lab result or other observation; publish :class:`ObservationRecorded`.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session (flushed, not committed).
    encounter_id : str
        An existing, open encounter.
    code : str
        The observation code, LOINC by default (e.g. ``"8867-4"`` heart rate).
    value : float or None
        Numeric value in ``unit``; ``None`` for a coded answer (``value_code``) or a
        panel given as ``components`` (e.g. blood pressure ``55284-4``).
    unit : str or None
        UCUM unit of ``value`` (e.g. ``"/min"``, ``"mm[Hg]"``).
    effective_at : datetime.datetime
        Aware clinically relevant time; not before the encounter started.
    category : str, default="vital-signs"
        FHIR ``observation-category`` code: vital-signs, laboratory, survey, exam, …
    components : sequence of mappings, optional
        Panel parts ``{"code", "value", "unit"}`` (optionally ``code_system``, ``display``).
    code_system : str, default="http://loinc.org"
        Code system URI of ``code``.
    display : str, optional
        Human-readable name.
    value_code : str, optional
        A coded answer (``valueCodeableConcept``), e.g. the ACVPU level ``"A"`` … ``"U"``
        of LOINC ``67775-7`` level of responsiveness (RCP NEWS2 2017, Chart 1).
    id : str, optional
        FHIR id; default a new uuid4 string.
    bus : EventBus, optional
        Where to publish; default :func:`~healthos_core.events.default_bus`.

    Returns
    -------
    Observation
        The flushed observation (status ``final``).

    Raises
    ------
    NotFoundError
        Unknown encounter.
    ConflictError
        The encounter is closed, or ``id`` is taken.
    InvalidInputError
        Naive time, unknown category, non-numeric value, both a value and a value code,
        or none of value, value code and components.
    """
    encounter = _open_encounter(session, encounter_id, "record an observation")
    code = _required_text(code, "code", 64)
    code_system = _required_text(code_system, "code_system", 128)
    display = _optional_text(display, "display", 512)
    if category not in OBSERVATION_CATEGORIES:
        raise InvalidInputError(
            f"category {category!r} is not a FHIR observation category: use one of "
            f"{sorted(OBSERVATION_CATEGORIES)}"
        )
    number = None if value is None else _finite_number(value, "value")
    value_code = _optional_text(value_code, "value_code", 64)
    parts = _components(components)
    if number is None and value_code is None and not parts:
        raise InvalidInputError(f"observation {code} needs a value, a value_code or components")
    if number is not None and value_code is not None:
        raise InvalidInputError(f"observation {code} has a value and a value_code: give one")
    unit = _optional_text(unit, "unit", 32)
    effective_at = _aware_utc(effective_at, "effective_at")
    _check_during_encounter(encounter, effective_at, "effective_at")
    observation_id = _new_id(Observation, id)

    observation = Observation(
        id=observation_id,
        patient_id=encounter.patient_id,
        encounter_id=encounter.id,
        facility_id=encounter.facility_id,
        status="final",
        category=category,
        code_system=code_system,
        code=code,
        display=display,
        effective_at=effective_at,
        value=number,
        unit=unit,
        value_code=value_code,
        components=parts,
    )
    return write_entity(session, observation, bus)


def discharge(
    session: Session,
    *,
    encounter_id: str,
    end: dt.datetime,
    disposition: str | None = None,
    bus: EventBus | None = None,
) -> Encounter:
    """Finish an encounter and publish :class:`EncounterFinished`.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session (flushed, not committed).
    encounter_id : str
        An existing, open encounter.
    end : datetime.datetime
        Aware end time; not before the encounter's start.
    disposition : str, optional
        FHIR ``discharge-disposition`` code (``home``, ``snf``, ``exp`` …; the binding
        is extensible, so local codes of ≤32 characters are accepted).
    bus : EventBus, optional
        Where to publish; default :func:`~healthos_core.events.default_bus`.

    Returns
    -------
    Encounter
        The flushed encounter, status ``finished``.

    Raises
    ------
    NotFoundError
        Unknown encounter.
    ConflictError
        The encounter is already finished, cancelled or entered-in-error.
    InvalidInputError
        Naive ``end`` or ``end`` before the start.
    """
    encounter = _open_encounter(session, encounter_id, "discharge")
    end = _aware_utc(end, "end")
    _check_end_after_start(encounter.period_start, end, f"Encounter/{encounter_id}")
    disposition = _optional_text(disposition, "disposition", 32)

    finished = Encounter(
        **{c.key: getattr(encounter, c.key) for c in Encounter.__mapper__.column_attrs},
    )
    finished.status = "finished"
    finished.period_end = end
    finished.discharge_disposition = disposition
    return write_entity(session, finished, bus, replace=True)


# --------------------------------------------------------------------------- reads

#: A patient with its identifiers (joined) and without the stored FHIR resource. Built
#: once: building the statement cost more than running it (``bench/bench_api.py``).
_PATIENT_BY_ID = (
    select(Patient)
    .where(Patient.id == bindparam("patient_id"))
    .options(joinedload(Patient.identifiers), defer(Patient.resource))
)


def get_patient(session: Session, id: str) -> Patient:
    """Return a patient by id.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        Any session.
    id : str
        The patient's FHIR id.

    Returns
    -------
    Patient
        With ``identifiers`` loaded, in the same query (a join: one round trip, where
        the relationship's default ``selectin`` loading costs a second query); the
        stored FHIR ``resource`` is deferred, read only if accessed.

    Raises
    ------
    NotFoundError
        No such patient.
    """
    patient = session.scalars(_PATIENT_BY_ID, {"patient_id": id}).unique().one_or_none()
    if patient is None:
        raise NotFoundError(f"Patient/{id} does not exist")
    return patient


@dataclass(frozen=True, kw_only=True)
class TimelineEntry:
    """One line of an encounter's timeline.

    Attributes
    ----------
    at : datetime.datetime or None
        When it happened (aware UTC); ``None`` if the source gave no time (sorted last).
    kind : str
        ``encounter-started``, ``encounter-finished``, ``procedure``,
        ``medication-administration``, ``observation``, ``immunization``, ``condition``
        or ``diagnostic-report``.
    ref : str
        ``"Type/id"`` of the record.
    code : str or None
        Its primary code (the encounter type for the encounter lines).
    display : str or None
        Its display text.
    entity : object
        The entity itself.
    """

    at: dt.datetime | None
    kind: str
    ref: str
    code: str | None
    display: str | None
    entity: Any


def encounter_timeline(session: Session, encounter_id: str) -> list[TimelineEntry]:
    """Return everything recorded on an encounter, in time order.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        Any session.
    encounter_id : str
        The encounter.

    Returns
    -------
    list of TimelineEntry
        The start, then procedures, medication administrations, observations,
        immunizations, conditions and diagnostic reports by time, then the end (if
        finished). Ties keep that order; entries without a time come last.

    Raises
    ------
    NotFoundError
        No such encounter.
    """
    encounter = session.get(Encounter, encounter_id)
    if encounter is None:
        raise NotFoundError(f"Encounter/{encounter_id} does not exist")
    entries: list[TimelineEntry] = [
        TimelineEntry(
            at=encounter.period_start,
            kind="encounter-started",
            ref=encounter.reference,
            code=encounter.type_code,
            display=encounter.type_display,
            entity=encounter,
        )
    ]

    def add(kind: str, rows: Iterable[Any], time_attr: str) -> None:
        for row in rows:
            entries.append(
                TimelineEntry(
                    at=getattr(row, time_attr),
                    kind=kind,
                    ref=row.reference,
                    code=row.code,
                    display=row.display,
                    entity=row,
                )
            )

    add(
        "procedure",
        session.scalars(select(Procedure).where(Procedure.encounter_id == encounter_id)),
        "performed_start",
    )
    add(
        "medication-administration",
        session.scalars(
            select(MedicationAdministration).where(
                MedicationAdministration.encounter_id == encounter_id
            )
        ),
        "effective_start",
    )
    add(
        "observation",
        session.scalars(select(Observation).where(Observation.encounter_id == encounter_id)),
        "effective_at",
    )
    add(
        "immunization",
        session.scalars(select(Immunization).where(Immunization.encounter_id == encounter_id)),
        "occurrence_at",
    )
    add(
        "condition",
        session.scalars(select(Condition).where(Condition.encounter_id == encounter_id)),
        "recorded_at",
    )
    add(
        "diagnostic-report",
        session.scalars(
            select(DiagnosticReport).where(DiagnosticReport.encounter_id == encounter_id)
        ),
        "effective_at",
    )
    if encounter.status == "finished" or encounter.period_end is not None:
        entries.append(
            TimelineEntry(
                at=encounter.period_end,
                kind="encounter-finished",
                ref=encounter.reference,
                code=encounter.type_code,
                display=encounter.type_display,
                entity=encounter,
            )
        )

    last = dt.datetime.max.replace(tzinfo=dt.UTC)
    # sorted() is stable: ties keep the insertion order above.
    return sorted(
        entries,
        key=lambda e: (
            e.kind != "encounter-started",
            e.kind == "encounter-finished",
            _as_utc(e.at) if e.at is not None else last,
        ),
    )
