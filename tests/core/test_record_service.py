"""Record service: validation before writing, entity fields, events published in-transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.errors import ConflictError, InvalidInputError, NotFoundError
from healthos_core.events import (
    ClinicalEvent,
    EncounterFinished,
    EncounterStarted,
    EventBus,
    MedicationAdministered,
    ObservationRecorded,
    ProcedurePerformed,
    default_bus,
)
from healthos_core.fhir.exporter import to_fhir
from healthos_core.record.entities import (
    Encounter,
    MedicationAdministration,
    Observation,
    Patient,
    Procedure,
)
from healthos_core.record.service import (
    admit,
    discharge,
    encounter_timeline,
    get_patient,
    record_medication_administration,
    record_observation,
    record_procedure,
    register_patient,
)
from tests.conftest import table_counts
from tests.factories import (
    RXNORM,
    SNOMED,
    T0,
    make_encounter,
    make_location,
    make_medication_request,
    make_organization,
    make_patient,
)

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


class Recorder:
    """Collects every event published on a bus, checking the entity is already flushed."""

    def __init__(self, bus: EventBus) -> None:
        self.events: list[ClinicalEvent] = []
        bus.subscribe(ClinicalEvent, self)

    def __call__(self, event: ClinicalEvent, session: Session) -> None:
        entity = event.entity
        # Published after flush: the row is visible to a query in the same transaction.
        found = session.scalar(select(type(entity)).where(type(entity).id == entity.id))
        assert found is entity
        self.events.append(event)


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def recorder(bus: EventBus) -> Recorder:
    return Recorder(bus)


@pytest.fixture
def encounter(session: Session) -> Encounter:
    with session.begin():
        facility = make_organization(session)
        patient = make_patient(session, facility_id=facility.id)
        return make_encounter(session, patient=patient, type_code="185349003")


# --------------------------------------------------------------------------- patients


def test_register_patient_stores_identifiers_and_reads_back(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    with session.begin():
        facility = make_organization(session)
        patient = register_patient(
            session,
            given="Asha",
            family="Rao",
            gender="female",
            birth_date=dt.date(1980, 5, 17),
            identifiers=[
                ("urn:oid:hospital-mrn", "MRN-001", "MR"),
                {"system": "https://abdm.gov.in/abha", "value": "91-1234-5678-9012"},
            ],
            facility_id=facility.id,
        )
    assert len(patient.id) == 36  # uuid4 string by default
    with session_factory() as fresh:
        stored = get_patient(fresh, patient.id)
        assert (stored.given, stored.family, stored.gender) == ("Asha", "Rao", "female")
        assert stored.birth_date == dt.date(1980, 5, 17)
        assert stored.facility_id == facility.id
        assert sorted((i.system, i.value, i.type_code) for i in stored.identifiers) == [
            ("https://abdm.gov.in/abha", "91-1234-5678-9012", None),
            ("urn:oid:hospital-mrn", "MRN-001", "MR"),
        ]


def test_register_patient_refuses_duplicate_id_and_identifier(session: Session) -> None:
    with session.begin():
        register_patient(
            session,
            id="p-1",
            given="A",
            family="B",
            gender="male",
            birth_date=dt.date(1990, 1, 1),
            identifiers=[("urn:mrn", "42")],
        )
    with pytest.raises(ConflictError, match="Patient/p-1 already exists"):
        register_patient(
            session, id="p-1", given="C", family="D", gender="male", birth_date=dt.date(1990, 1, 1)
        )
    with pytest.raises(ConflictError, match=r"urn:mrn\|42 already belongs to Patient/p-1"):
        register_patient(
            session,
            given="C",
            family="D",
            gender="male",
            birth_date=dt.date(1990, 1, 1),
            identifiers=[("urn:mrn", "42")],
        )


@pytest.mark.parametrize(
    ("overrides", "error", "fragment"),
    [
        ({"gender": "F"}, InvalidInputError, "administrative gender"),
        ({"birth_date": dt.date(2999, 1, 1)}, InvalidInputError, "in the future"),
        ({"birth_date": "1980-01-01"}, InvalidInputError, "datetime.date"),
        ({"given": " "}, InvalidInputError, "given is required"),
        ({"id": "has space"}, InvalidInputError, "FHIR id"),
        ({"identifiers": [("urn:mrn",)]}, InvalidInputError, r"identifiers\[0\]"),
        ({"identifiers": [("urn:mrn", "1"), ("urn:mrn", "1")]}, InvalidInputError, "repeats"),
        ({"facility_id": "nowhere"}, NotFoundError, "Organization/nowhere"),
    ],
)
def test_register_patient_validates_before_writing(
    session: Session,
    engine: Engine,
    overrides: dict[str, Any],
    error: type[Exception],
    fragment: str,
) -> None:
    before = table_counts(engine)
    values: dict[str, Any] = {
        "given": "A",
        "family": "B",
        "gender": "female",
        "birth_date": dt.date(1990, 1, 1),
    }
    values.update(overrides)
    with pytest.raises(error, match=fragment):
        with session.begin():
            register_patient(session, **values)
    assert table_counts(engine) == before


def test_get_patient_unknown_raises_not_found(session: Session) -> None:
    with pytest.raises(NotFoundError, match="Patient/missing does not exist"):
        get_patient(session, "missing")


# --------------------------------------------------------------------------- admit / discharge


def test_admit_starts_encounter_and_publishes(
    session: Session, bus: EventBus, recorder: Recorder, session_factory: sessionmaker[Session]
) -> None:
    with session.begin():
        facility = make_organization(session)
        ward = make_location(session, managing_organization_id=facility.id)
        patient = make_patient(session, facility_id=facility.id)
        start = dt.datetime(2024, 3, 1, 14, 30, tzinfo=IST)
        encounter = admit(
            session,
            patient_id=patient.id,
            class_code="IMP",
            start=start,
            location_id=ward.id,
            type_code="183495009",
            type_display="Non-urgent orthopedic admission",
            bus=bus,
        )

    assert [type(e) for e in recorder.events] == [EncounterStarted]
    assert recorder.events[0].entity is encounter
    assert recorder.events[0].subject_ref == f"Encounter/{encounter.id}"
    with session_factory() as fresh:
        stored = fresh.get(Encounter, encounter.id)
        assert stored is not None
        assert stored.status == "in-progress"
        assert stored.class_code == "IMP"
        assert stored.patient_id == patient.id
        assert stored.facility_id == facility.id  # defaults to the patient's facility
        assert stored.service_provider_id == facility.id
        assert stored.location_id == ward.id
        assert stored.type_code == "183495009"
        # Stored as the same instant, read back as aware UTC on both backends.
        assert stored.period_start == start
        assert stored.period_start is not None and stored.period_start.utcoffset() == dt.timedelta(
            0
        )
        assert stored.period_start.hour == 9


@pytest.mark.parametrize(
    ("overrides", "error", "fragment"),
    [
        ({"patient_id": "ghost"}, NotFoundError, "Patient/ghost does not exist"),
        ({"class_code": "XYZ"}, InvalidInputError, "not an encounter class"),
        ({"start": dt.datetime(2024, 3, 1, 9)}, InvalidInputError, "naive"),
        ({"start": "2024-03-01T09:00Z"}, InvalidInputError, "timezone-aware datetime"),
        ({"facility_id": "nowhere"}, NotFoundError, "Organization/nowhere"),
        ({"location_id": "nowhere"}, NotFoundError, "Location/nowhere"),
    ],
)
def test_admit_validates_before_writing(
    session: Session,
    engine: Engine,
    bus: EventBus,
    recorder: Recorder,
    overrides: dict[str, Any],
    error: type[Exception],
    fragment: str,
) -> None:
    with session.begin():
        patient = make_patient(session)
    before = table_counts(engine)
    values: dict[str, Any] = {"patient_id": patient.id, "class_code": "AMB", "start": T0}
    values.update(overrides)
    with pytest.raises(error, match=fragment):
        with session.begin():
            admit(session, bus=bus, **values)
    assert table_counts(engine) == before
    assert recorder.events == []


def test_admit_refuses_taken_id(session: Session, encounter: Encounter) -> None:
    with pytest.raises(ConflictError, match=f"Encounter/{encounter.id} already exists"):
        admit(session, patient_id=encounter.patient_id, class_code="AMB", start=T0, id=encounter.id)


def test_discharge_finishes_and_publishes(
    session: Session, encounter: Encounter, bus: EventBus, recorder: Recorder
) -> None:
    end = T0 + dt.timedelta(hours=2)
    with session.begin():
        result = discharge(session, encounter_id=encounter.id, end=end, disposition="home", bus=bus)
    assert result.status == "finished"
    assert result.period_end == end
    assert result.discharge_disposition == "home"
    assert [type(e) for e in recorder.events] == [EncounterFinished]


def test_discharge_errors(session: Session, engine: Engine, encounter: Encounter) -> None:
    before = table_counts(engine)
    with pytest.raises(NotFoundError, match="Encounter/ghost"):
        discharge(session, encounter_id="ghost", end=T0)
    with pytest.raises(InvalidInputError, match="before it starts"):
        discharge(session, encounter_id=encounter.id, end=T0 - dt.timedelta(minutes=1))
    with pytest.raises(InvalidInputError, match="naive"):
        discharge(session, encounter_id=encounter.id, end=dt.datetime(2024, 3, 1, 12))
    session.rollback()
    assert table_counts(engine) == before
    with session.begin():
        discharge(session, encounter_id=encounter.id, end=T0)  # end == start is allowed
    with pytest.raises(ConflictError, match="is finished"):
        discharge(session, encounter_id=encounter.id, end=T0 + dt.timedelta(hours=1))


# --------------------------------------------------------------------------- clinical events


def test_record_procedure_copies_patient_and_facility_and_publishes(
    session: Session, encounter: Encounter, bus: EventBus, recorder: Recorder
) -> None:
    with session.begin():
        procedure = record_procedure(
            session,
            encounter_id=encounter.id,
            code_system=SNOMED,
            code="73761001",
            display="Colonoscopy",
            performed_at=T0 + dt.timedelta(minutes=30),
            performed_end=T0 + dt.timedelta(minutes=75),
            bus=bus,
        )
    assert procedure.patient_id == encounter.patient_id
    assert procedure.facility_id == encounter.facility_id is not None
    assert procedure.encounter_id == encounter.id
    assert procedure.status == "completed"
    assert (procedure.code_system, procedure.code) == (SNOMED, "73761001")
    assert [type(e) for e in recorder.events] == [ProcedurePerformed]
    assert recorder.events[0].subject_ref == f"Procedure/{procedure.id}"


@pytest.mark.parametrize(
    ("overrides", "error", "fragment"),
    [
        ({"encounter_id": "ghost"}, NotFoundError, "Encounter/ghost does not exist"),
        ({"performed_at": dt.datetime(2024, 3, 1, 10)}, InvalidInputError, "naive"),
        ({"performed_at": T0 - dt.timedelta(days=1)}, InvalidInputError, "before Encounter/"),
        (
            {"performed_end": T0 - dt.timedelta(minutes=1), "performed_at": T0},
            InvalidInputError,
            "ends at .* before it starts",
        ),
        ({"code": ""}, InvalidInputError, "code is required"),
        ({"id": "bad id!"}, InvalidInputError, "FHIR id"),
    ],
)
def test_record_procedure_validates_before_writing(
    session: Session,
    engine: Engine,
    encounter: Encounter,
    bus: EventBus,
    recorder: Recorder,
    overrides: dict[str, Any],
    error: type[Exception],
    fragment: str,
) -> None:
    before = table_counts(engine)
    values: dict[str, Any] = {
        "encounter_id": encounter.id,
        "code_system": SNOMED,
        "code": "73761001",
        "display": "Colonoscopy",
        "performed_at": T0 + dt.timedelta(hours=1),
    }
    values.update(overrides)
    with pytest.raises(error, match=fragment):
        with session.begin():
            record_procedure(session, bus=bus, **values)
    assert table_counts(engine) == before
    assert recorder.events == []


@pytest.mark.parametrize("status", ["finished", "cancelled", "entered-in-error"])
def test_events_on_closed_encounter_conflict(session: Session, engine: Engine, status: str) -> None:
    with session.begin():
        closed = make_encounter(session, status=status)
    before = table_counts(engine)
    at = T0 + dt.timedelta(hours=1)
    with pytest.raises(ConflictError, match=f"is {status}"):
        record_procedure(
            session,
            encounter_id=closed.id,
            code_system=SNOMED,
            code="1",
            display=None,
            performed_at=at,
        )
    with pytest.raises(ConflictError):
        record_medication_administration(
            session,
            encounter_id=closed.id,
            code_system=RXNORM,
            code="1",
            display=None,
            effective_at=at,
        )
    with pytest.raises(ConflictError):
        record_observation(
            session, encounter_id=closed.id, code="8867-4", value=80, unit="/min", effective_at=at
        )
    session.rollback()
    assert table_counts(engine) == before


def test_record_medication_administration(
    session: Session, encounter: Encounter, bus: EventBus, recorder: Recorder
) -> None:
    with session.begin():
        request = make_medication_request(
            session, patient_id=encounter.patient_id, encounter_id=encounter.id
        )
        given = record_medication_administration(
            session,
            encounter_id=encounter.id,
            code_system=RXNORM,
            code="310965",
            display="Ibuprofen 200 MG Oral Tablet",
            effective_at=T0 + dt.timedelta(minutes=10),
            dose_value=400,
            dose_unit="mg",
            request_id=request.id,
            bus=bus,
        )
    stored = session.get(MedicationAdministration, given.id)
    assert stored is not None
    assert (stored.dose_value, stored.dose_unit, stored.request_id) == (400.0, "mg", request.id)
    assert stored.patient_id == encounter.patient_id
    assert stored.facility_id == encounter.facility_id
    assert stored.status == "completed"
    assert [type(e) for e in recorder.events] == [MedicationAdministered]


@pytest.mark.parametrize(
    ("overrides", "error", "fragment"),
    [
        ({"dose_value": 0, "dose_unit": "mg"}, InvalidInputError, "must be > 0"),
        ({"dose_value": 5}, InvalidInputError, "dose_unit"),
        ({"dose_value": float("nan"), "dose_unit": "mg"}, InvalidInputError, "finite"),
        ({"dose_value": "5", "dose_unit": "mg"}, InvalidInputError, "must be a number"),
        ({"request_id": "ghost"}, NotFoundError, "MedicationRequest/ghost"),
        (
            {"effective_end": T0},
            InvalidInputError,
            "ends at",
        ),
    ],
)
def test_record_medication_administration_validates(
    session: Session,
    engine: Engine,
    encounter: Encounter,
    overrides: dict[str, Any],
    error: type[Exception],
    fragment: str,
) -> None:
    before = table_counts(engine)
    values: dict[str, Any] = {
        "encounter_id": encounter.id,
        "code_system": RXNORM,
        "code": "310965",
        "display": None,
        "effective_at": T0 + dt.timedelta(minutes=10),
    }
    values.update(overrides)
    with pytest.raises(error, match=fragment):
        with session.begin():
            record_medication_administration(session, **values)
    assert table_counts(engine) == before


def test_record_observation_value_and_components(
    session: Session, encounter: Encounter, bus: EventBus, recorder: Recorder
) -> None:
    with session.begin():
        pulse = record_observation(
            session,
            encounter_id=encounter.id,
            code="8867-4",
            value=88,
            unit="/min",
            effective_at=T0 + dt.timedelta(minutes=5),
            bus=bus,
        )
        pressure = record_observation(
            session,
            encounter_id=encounter.id,
            code="55284-4",
            value=None,
            unit=None,
            effective_at=T0 + dt.timedelta(minutes=5),
            components=[
                {"code": "8480-6", "value": 128, "unit": "mm[Hg]"},
                {"code": "8462-4", "value": 82, "unit": "mm[Hg]"},
            ],
            bus=bus,
        )
    stored = session.get(Observation, pressure.id)
    assert stored is not None
    assert stored.components == [  # as the FHIR importer stores them: one shape
        {"system": None, "code": "8480-6", "display": None, "value": 128.0, "unit": "mm[Hg]"},
        {"system": None, "code": "8462-4", "display": None, "value": 82.0, "unit": "mm[Hg]"},
    ]
    assert (pulse.code_system, pulse.category, pulse.status, pulse.value) == (
        "http://loinc.org",
        "vital-signs",
        "final",
        88.0,
    )
    assert pulse.facility_id == encounter.facility_id
    assert [type(e) for e in recorder.events] == [ObservationRecorded, ObservationRecorded]


def test_record_observation_stores_a_coded_answer(session: Session, encounter: Encounter) -> None:
    """The ACVPU level of LOINC 67775-7, as the NEWS2 scorer reads it (value_code)."""
    with session.begin():
        level = record_observation(
            session,
            encounter_id=encounter.id,
            code="67775-7",
            value=None,
            unit=None,
            value_code="V",
            effective_at=T0 + dt.timedelta(minutes=3),
        )
    stored = session.get(Observation, level.id)
    assert stored is not None
    assert (stored.value, stored.value_code) == (None, "V")
    assert to_fhir(stored)["valueCodeableConcept"] == {"coding": [{"code": "V"}]}


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"category": "vitals"}, "not a FHIR observation category"),
        ({"value": None}, "needs a value, a value_code or components"),
        ({"value_code": "A"}, "has a value and a value_code"),
        ({"value": None, "value_code": " "}, "value_code is required"),
        ({"value": True}, "must be a number"),
        ({"value": float("inf")}, "finite"),
        ({"components": [{"code": "8480-6"}]}, r"components\[0\].value"),
        ({"components": [{"code": "8480-6", "value": 1, "colour": "red"}]}, "unknown keys"),
        ({"effective_at": dt.datetime(2024, 3, 1, 10)}, "naive"),
    ],
)
def test_record_observation_validates(
    session: Session,
    engine: Engine,
    encounter: Encounter,
    overrides: dict[str, Any],
    fragment: str,
) -> None:
    before = table_counts(engine)
    values: dict[str, Any] = {
        "encounter_id": encounter.id,
        "code": "8867-4",
        "value": 80,
        "unit": "/min",
        "effective_at": T0 + dt.timedelta(minutes=1),
    }
    values.update(overrides)
    with pytest.raises(InvalidInputError, match=fragment):
        with session.begin():
            record_observation(session, **values)
    assert table_counts(engine) == before


def test_default_bus_is_used_when_none_given(session: Session, encounter: Encounter) -> None:
    seen: list[ClinicalEvent] = []

    def spy(event: ClinicalEvent, _session: Session) -> None:
        seen.append(event)

    default_bus().subscribe(ObservationRecorded, spy)
    try:
        with session.begin():
            record_observation(
                session,
                encounter_id=encounter.id,
                code="8867-4",
                value=70,
                unit="/min",
                effective_at=T0,
            )
    finally:
        default_bus().unsubscribe(ObservationRecorded, spy)
    assert len(seen) == 1


def test_handler_error_rolls_back_the_clinical_event(
    session: Session, engine: Engine, encounter: Encounter, bus: EventBus
) -> None:
    def refuse(event: ProcedurePerformed, _session: Session) -> None:
        raise RuntimeError("downstream failure")

    bus.subscribe(ProcedurePerformed, refuse)
    before = table_counts(engine)
    with pytest.raises(RuntimeError, match="downstream failure"):
        with session.begin():
            record_procedure(
                session,
                encounter_id=encounter.id,
                code_system=SNOMED,
                code="73761001",
                display=None,
                performed_at=T0,
                bus=bus,
            )
    assert table_counts(engine) == before
    assert session.scalars(select(Procedure)).all() == []


# --------------------------------------------------------------------------- timeline


def test_encounter_timeline_orders_events(
    session: Session, encounter: Encounter, bus: EventBus
) -> None:
    with session.begin():
        later = record_procedure(
            session,
            encounter_id=encounter.id,
            code_system=SNOMED,
            code="73761001",
            display="Colonoscopy",
            performed_at=T0 + dt.timedelta(hours=1),
            bus=bus,
        )
        earlier = record_observation(
            session,
            encounter_id=encounter.id,
            code="8867-4",
            value=80,
            unit="/min",
            effective_at=T0 + dt.timedelta(minutes=5),
            bus=bus,
        )
        dose = record_medication_administration(
            session,
            encounter_id=encounter.id,
            code_system=RXNORM,
            code="310965",
            display="Ibuprofen",
            effective_at=T0 + dt.timedelta(minutes=30),
            bus=bus,
        )
        discharge(session, encounter_id=encounter.id, end=T0 + dt.timedelta(hours=2), bus=bus)

    timeline = encounter_timeline(session, encounter.id)
    assert [(e.kind, e.ref) for e in timeline] == [
        ("encounter-started", f"Encounter/{encounter.id}"),
        ("observation", f"Observation/{earlier.id}"),
        ("medication-administration", f"MedicationAdministration/{dose.id}"),
        ("procedure", f"Procedure/{later.id}"),
        ("encounter-finished", f"Encounter/{encounter.id}"),
    ]
    assert timeline[3].code == "73761001"
    assert all(e.at is not None and e.at.utcoffset() == dt.timedelta(0) for e in timeline)
    with pytest.raises(NotFoundError):
        encounter_timeline(session, "ghost")


def test_register_patient_returns_patient_entity(session: Session) -> None:
    patient = register_patient(
        session, given="X", family="Y", gender="unknown", birth_date=dt.date(2000, 2, 29), id="x.1"
    )
    assert isinstance(patient, Patient)
    assert patient.reference == "Patient/x.1"
