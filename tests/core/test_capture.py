"""Charge capture: clinical events post priced ChargeItems in the caller's transaction."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.billing.capture import (
    CaptureSettings,
    capture_procedure,
    is_billable_lab,
    register,
    unregister,
)
from healthos_core.billing.chargemaster import derive_chargemaster_from_claims
from healthos_core.billing.entities import ChargeItem, ChargemasterEntry
from healthos_core.db import utcnow
from healthos_core.errors import PricingError
from healthos_core.events import (
    EncounterStarted,
    EventBus,
    MedicationAdministered,
    ObservationRecorded,
    ProcedurePerformed,
    default_bus,
)
from healthos_core.record.entities import Encounter, MedicationAdministration, Procedure
from healthos_core.record.service import (
    admit,
    discharge,
    record_medication_administration,
    record_observation,
    record_procedure,
)
from healthos_core.wiring import Wiring, wire_live_path
from tests.conftest import table_counts
from tests.core.test_chargemaster import PATIENT_ID, load_synthea_sample_claims
from tests.factories import (
    LOINC,
    RXNORM,
    SNOMED,
    T0,
    make_chargemaster,
    make_encounter,
    make_organization,
    make_patient,
)

COLONOSCOPY = "73761001"
CHECKUP = "185349003"
GLUCOSE = "2345-7"
IBUPROFEN = "310965"


def charges(session: Session) -> list[ChargeItem]:
    return list(session.scalars(select(ChargeItem).order_by(ChargeItem.entered_at)))


@pytest.fixture
def capture_bus() -> EventBus:
    """A private bus with non-strict charge capture (the default bus is left alone)."""
    bus = EventBus()
    register(bus)
    return bus


@pytest.fixture
def strict_bus() -> EventBus:
    bus = EventBus()
    register(bus, settings=CaptureSettings(strict=True))
    return bus


@pytest.fixture
def encounter(session: Session) -> Encounter:
    """An open encounter at a facility, and a small chargemaster (USD, from 2000-01-01)."""
    with session.begin():
        make_chargemaster(
            session,
            [
                {
                    "code": COLONOSCOPY,
                    "unit_price": "1234.56",
                    "description": "Colonoscopy",
                    "revenue_code": "0360",
                },
                {
                    "code": CHECKUP,
                    "unit_price": "125.00",
                    "description": "Check-up visit",
                    "revenue_code": "0510",
                },
                {
                    "code_system": RXNORM,
                    "code": IBUPROFEN,
                    "unit_price": "0.35",
                    "description": "Ibuprofen 200 MG Oral Tablet",
                },
                {
                    "code_system": LOINC,
                    "code": GLUCOSE,
                    "unit_price": "18.40",
                    "description": "Glucose, serum",
                    "revenue_code": "0300",
                },
                {
                    "code_system": LOINC,
                    "code": "29463-7",
                    "unit_price": "3.00",
                    "description": "Body weight (priced, but not a lab)",
                    "revenue_code": "0510",
                },
            ],
        )
        facility = make_organization(session)
        patient = make_patient(session, facility_id=facility.id)
        return make_encounter(session, patient=patient, type_code=CHECKUP)


def do_procedure(
    session: Session, encounter: Encounter, bus: EventBus | None, **kw: object
) -> Procedure:
    values: dict[str, object] = {
        "encounter_id": encounter.id,
        "code_system": SNOMED,
        "code": COLONOSCOPY,
        "display": "Colonoscopy",
        "performed_at": T0 + dt.timedelta(hours=1),
    }
    values.update(kw)
    return record_procedure(session, bus=bus, **values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- charge content


def test_procedure_posts_one_priced_charge(
    session: Session,
    encounter: Encounter,
    capture_bus: EventBus,
    session_factory: sessionmaker[Session],
) -> None:
    before = utcnow()
    with session.begin():
        procedure = do_procedure(session, encounter, capture_bus)
    after = utcnow()

    with session_factory() as fresh:
        (charge,) = fresh.scalars(select(ChargeItem))
        entry = fresh.scalars(
            select(ChargemasterEntry).where(ChargemasterEntry.code == COLONOSCOPY)
        ).one()
        assert charge.status == "billable"
        assert charge.service_ref == f"Procedure/{procedure.id}"
        assert charge.patient_id == encounter.patient_id
        assert charge.encounter_id == encounter.id
        assert charge.facility_id == encounter.facility_id is not None
        assert (charge.code_system, charge.code) == (SNOMED, COLONOSCOPY)
        assert charge.display == "Colonoscopy"
        assert charge.quantity == Decimal("1")
        # Money is an exact Decimal to the cent on both backends.
        assert isinstance(charge.unit_price, Decimal) and isinstance(charge.total, Decimal)
        assert charge.unit_price == Decimal("1234.56") and str(charge.unit_price) == "1234.56"
        assert charge.total == Decimal("1234.56") and str(charge.total) == "1234.56"
        assert charge.currency == "USD"
        assert charge.chargemaster_entry_id == entry.id
        assert charge.occurred_at == T0 + dt.timedelta(hours=1)
        assert charge.occurred_at is not None and charge.occurred_at.utcoffset() == dt.timedelta(0)
        assert before <= charge.entered_at <= after


def test_medication_administration_posts_charge_quantity_one(
    session: Session, encounter: Encounter, capture_bus: EventBus
) -> None:
    with session.begin():
        given = record_medication_administration(
            session,
            encounter_id=encounter.id,
            code_system=RXNORM,
            code=IBUPROFEN,
            display="Ibuprofen",
            effective_at=T0 + dt.timedelta(minutes=20),
            dose_value=400,
            dose_unit="mg",
            bus=capture_bus,
        )
    (charge,) = charges(session)
    assert charge.service_ref == f"MedicationAdministration/{given.id}"
    assert (charge.code_system, charge.code) == (RXNORM, IBUPROFEN)
    assert (charge.quantity, charge.unit_price, charge.total) == (
        Decimal("1"),
        Decimal("0.35"),
        Decimal("0.35"),
    )
    assert charge.occurred_at == T0 + dt.timedelta(minutes=20)


def test_admit_posts_visit_fee_when_type_is_priced(
    session: Session, encounter: Encounter, capture_bus: EventBus
) -> None:
    with session.begin():
        priced = admit(
            session,
            patient_id=encounter.patient_id,
            class_code="AMB",
            start=T0,
            type_code=CHECKUP,
            bus=capture_bus,
        )
        unpriced = admit(
            session,
            patient_id=encounter.patient_id,
            class_code="EMER",
            start=T0,
            type_code="50849002",
            bus=capture_bus,
        )
        untyped = admit(
            session, patient_id=encounter.patient_id, class_code="AMB", start=T0, bus=capture_bus
        )
    (fee,) = charges(session)
    assert fee.service_ref == f"Encounter/{priced.id}"
    assert fee.encounter_id == priced.id
    assert (fee.code, fee.total, fee.currency) == (CHECKUP, Decimal("125.00"), "USD")
    assert fee.occurred_at == T0
    assert fee.facility_id == priced.facility_id
    assert unpriced.id and untyped.id  # recorded without a charge, no error


def test_lab_observation_is_charged_only_when_chargemaster_marks_a_lab(
    session: Session, encounter: Encounter, capture_bus: EventBus
) -> None:
    with session.begin():
        make_chargemaster(
            session,
            [
                {
                    "code_system": LOINC,
                    "code": "718-7",
                    "unit_price": "9.99",
                    "tax_category": "laboratory",
                }
            ],
        )
        glucose = record_observation(
            session,
            encounter_id=encounter.id,
            code=GLUCOSE,
            value=5.4,
            unit="mmol/L",
            effective_at=T0,
            category="laboratory",
            bus=capture_bus,
        )
        hemoglobin = record_observation(
            session,
            encounter_id=encounter.id,
            code="718-7",
            value=13.5,
            unit="g/dL",
            effective_at=T0,
            category="laboratory",
            bus=capture_bus,
        )
        # Priced but with a non-lab revenue code, and an unpriced vital sign: no charge.
        record_observation(
            session,
            encounter_id=encounter.id,
            code="29463-7",
            value=70,
            unit="kg",
            effective_at=T0,
            bus=capture_bus,
        )
        record_observation(
            session,
            encounter_id=encounter.id,
            code="8867-4",
            value=72,
            unit="/min",
            effective_at=T0,
            bus=capture_bus,
        )
    by_ref = {c.service_ref: c for c in charges(session)}
    assert set(by_ref) == {f"Observation/{glucose.id}", f"Observation/{hemoglobin.id}"}
    assert by_ref[f"Observation/{glucose.id}"].total == Decimal("18.40")
    assert by_ref[f"Observation/{hemoglobin.id}"].total == Decimal("9.99")


@pytest.mark.parametrize(
    ("revenue_code", "tax_category", "billable"),
    [
        ("0300", None, True),
        ("0305", None, True),
        ("0310", None, True),  # 031X laboratory pathology
        ("300", None, True),  # leading zero lost in a spreadsheet
        ("0320", None, False),  # radiology
        (None, "Lab", True),
        (None, "exempt", False),
        (None, None, False),
    ],
)
def test_is_billable_lab(
    revenue_code: str | None, tax_category: str | None, billable: bool
) -> None:
    entry = ChargemasterEntry(
        code_system=LOINC,
        code="x",
        unit_price=Decimal(1),
        currency="USD",
        revenue_code=revenue_code,
        tax_category=tax_category,
        effective_from=dt.date(2000, 1, 1),
    )
    assert is_billable_lab(entry) is billable


def test_discharge_posts_no_charge(
    session: Session, encounter: Encounter, capture_bus: EventBus
) -> None:
    with session.begin():
        discharge(
            session, encounter_id=encounter.id, end=T0 + dt.timedelta(hours=1), bus=capture_bus
        )
    assert charges(session) == []


# --------------------------------------------------------------------------- effective dating


def test_charge_uses_price_in_force_on_service_date(
    session: Session, capture_bus: EventBus
) -> None:
    with session.begin():
        make_chargemaster(
            session,
            [
                {
                    "code": "X",
                    "unit_price": "100.00",
                    "effective_from": dt.date(2023, 1, 1),
                    "effective_to": dt.date(2024, 1, 1),
                },
                {"code": "X", "unit_price": "110.00", "effective_from": dt.date(2024, 1, 1)},
            ],
        )
        encounter = make_encounter(
            session, period_start=dt.datetime(2023, 12, 31, 12, tzinfo=dt.UTC)
        )
        last_day = do_procedure(
            session,
            encounter,
            capture_bus,
            code="X",
            performed_at=dt.datetime(2023, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        )
        # 2024-01-01 02:00 in India is 2023-12-31 20:30 UTC: priced on its UTC date.
        ist = dt.timezone(dt.timedelta(hours=5, minutes=30))
        india = do_procedure(
            session,
            encounter,
            capture_bus,
            code="X",
            performed_at=dt.datetime(2024, 1, 1, 2, 0, tzinfo=ist),
        )
        first_day = do_procedure(
            session,
            encounter,
            capture_bus,
            code="X",
            performed_at=dt.datetime(2024, 1, 1, 0, 0, tzinfo=dt.UTC),
        )
    totals = {c.service_ref: c.total for c in charges(session)}
    assert totals == {
        f"Procedure/{last_day.id}": Decimal("100.00"),
        f"Procedure/{india.id}": Decimal("100.00"),
        f"Procedure/{first_day.id}": Decimal("110.00"),
    }


# --------------------------------------------------------------------------- no price


def test_unpriced_procedure_is_recorded_without_charge(
    session: Session, encounter: Encounter, capture_bus: EventBus
) -> None:
    with session.begin():
        procedure = do_procedure(session, encounter, capture_bus, code="999999")
    assert session.get(Procedure, procedure.id) is not None
    assert charges(session) == []


def test_strict_mode_raises_and_rolls_back_the_event(
    session: Session, engine: Engine, encounter: Encounter, strict_bus: EventBus
) -> None:
    before = table_counts(engine)
    with pytest.raises(PricingError) as raised:
        with session.begin():
            do_procedure(session, encounter, strict_bus, code="999999")
    assert f"{SNOMED}|999999 on 2024-03-01" in str(raised.value)
    assert table_counts(engine) == before
    with pytest.raises(PricingError, match="310966"):
        with session.begin():
            record_medication_administration(
                session,
                encounter_id=encounter.id,
                code_system=RXNORM,
                code="310966",
                display=None,
                effective_at=T0,
                bus=strict_bus,
            )
    assert table_counts(engine) == before
    # Strict mode does not apply to the conditional charges.
    with session.begin():
        admit(
            session,
            patient_id=encounter.patient_id,
            class_code="AMB",
            start=T0,
            type_code="unpriced-visit",
            bus=strict_bus,
        )
        record_observation(
            session,
            encounter_id=encounter.id,
            code="8867-4",
            value=60,
            unit="/min",
            effective_at=T0,
            bus=strict_bus,
        )
    assert charges(session) == []


# --------------------------------------------------------------------------- transactions


def test_failure_after_charge_rolls_back_procedure_and_charge(
    session: Session,
    engine: Engine,
    encounter: Encounter,
    capture_bus: EventBus,
    session_factory: sessionmaker[Session],
) -> None:
    before = table_counts(engine)
    procedure_id = None
    with pytest.raises(RuntimeError, match="later step failed"):
        with session.begin():
            procedure = do_procedure(session, encounter, capture_bus)
            procedure_id = procedure.id
            # Both are in the transaction before the failure ...
            assert [c.service_ref for c in charges(session)] == [f"Procedure/{procedure.id}"]
            raise RuntimeError("later step failed")
    # ... and neither survives it.
    assert table_counts(engine) == before
    with session_factory() as fresh:
        assert fresh.get(Procedure, procedure_id) is None
        assert fresh.scalar(select(func.count()).select_from(ChargeItem)) == 0


def test_failing_handler_after_capture_rolls_back_both(
    session: Session,
    engine: Engine,
    encounter: Encounter,
    capture_bus: EventBus,
    session_factory: sessionmaker[Session],
) -> None:
    posted: list[int] = []

    def audit_that_fails(event: ProcedurePerformed, session: Session) -> None:
        # Runs after capture (subscription order): the charge is already in the session.
        posted.append(len(charges(session)))
        raise RuntimeError("audit sink unavailable")

    capture_bus.subscribe(ProcedurePerformed, audit_that_fails)
    before = table_counts(engine)
    with pytest.raises(RuntimeError, match="audit sink unavailable"):
        with session.begin():
            do_procedure(session, encounter, capture_bus)
    assert posted == [1]
    assert table_counts(engine) == before
    with session_factory() as fresh:
        assert fresh.scalar(select(func.count()).select_from(Procedure)) == 0
        assert fresh.scalar(select(func.count()).select_from(ChargeItem)) == 0


def test_event_and_charge_commit_together(
    session: Session,
    encounter: Encounter,
    capture_bus: EventBus,
    session_factory: sessionmaker[Session],
) -> None:
    with session.begin():
        procedure = do_procedure(session, encounter, capture_bus)
    with session_factory() as fresh:
        assert fresh.get(Procedure, procedure.id) is not None
        assert fresh.scalars(select(ChargeItem.service_ref)).all() == [f"Procedure/{procedure.id}"]


def test_recapture_of_same_event_posts_no_second_charge(
    session: Session, encounter: Encounter, capture_bus: EventBus
) -> None:
    with session.begin():
        procedure = do_procedure(session, encounter, capture_bus)
        capture_bus.publish(ProcedurePerformed(procedure=procedure), session)
        assert capture_procedure(session, procedure) is None
    assert len(charges(session)) == 1


# --------------------------------------------------------------------------- registration


def _captures_per_event_type(bus: EventBus) -> list[int]:
    return [
        sum(type(getattr(h, "__self__", None)).__name__ == "ChargeCapture" for h in bus.handlers(t))
        for t in (EncounterStarted, ProcedurePerformed, MedicationAdministered, ObservationRecorded)
    ]


def test_wiring_twice_registers_capture_once(live_path: Wiring) -> None:
    assert wire_live_path().capture is live_path.capture
    register()
    register(default_bus())
    assert _captures_per_event_type(default_bus()) == [1, 1, 1, 1]


def test_capture_registration_survives_module_reexecution() -> None:
    # In a child process, so re-executing the module cannot disturb this one.
    code = textwrap.dedent(
        """
        import importlib
        import healthos_core
        import healthos_core.billing.capture as capture
        from healthos_core.events import default_bus
        from healthos_core.wiring import wire_live_path
        wire_live_path()
        importlib.reload(capture)
        importlib.reload(capture)
        capture.register()
        print(sum(len(default_bus().handlers(t)) for t in capture._EVENT_TYPES))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "4"


def test_default_bus_captures_without_passing_a_bus(
    session: Session, encounter: Encounter, live_path: Wiring
) -> None:
    with session.begin():
        procedure = do_procedure(session, encounter, None)
        given = record_medication_administration(
            session,
            encounter_id=encounter.id,
            code_system=RXNORM,
            code=IBUPROFEN,
            display=None,
            effective_at=T0,
        )
    refs = sorted(c.service_ref or "" for c in charges(session))
    assert refs == sorted([f"Procedure/{procedure.id}", f"MedicationAdministration/{given.id}"])
    assert session.get(MedicationAdministration, given.id) is not None


def test_register_with_new_settings_replaces_capture_on_that_bus(
    session: Session, encounter: Encounter
) -> None:
    bus = EventBus()
    lenient = register(bus)
    assert register(bus) is lenient
    strict = register(bus, settings=CaptureSettings(strict=True))
    assert strict is not lenient and strict.settings.strict
    assert len(bus.handlers(ProcedurePerformed)) == 1
    with pytest.raises(PricingError):
        do_procedure(session, encounter, bus, code="999999")
    session.rollback()
    unregister(bus)
    assert bus.handlers(ProcedurePerformed) == ()
    with session.begin():
        do_procedure(session, encounter, bus, code="999999")  # no capture: recorded, no charge
    assert charges(session) == []


def test_capture_settings_can_switch_off_conditional_charges(
    session: Session, encounter: Encounter
) -> None:
    bus = EventBus()
    register(bus, settings=CaptureSettings(charge_encounters=False, charge_lab_observations=False))
    with session.begin():
        admit(
            session,
            patient_id=encounter.patient_id,
            class_code="AMB",
            start=T0,
            type_code=CHECKUP,
            bus=bus,
        )
        record_observation(
            session,
            encounter_id=encounter.id,
            code=GLUCOSE,
            value=5.0,
            unit="mmol/L",
            effective_at=T0,
            category="laboratory",
            bus=bus,
        )
    assert charges(session) == []


# --------------------------------------------------------------------------- derived prices


def test_derived_chargemaster_prices_the_encounter_fee(
    session: Session, capture_bus: EventBus
) -> None:
    """Claims in, chargemaster derived, a new visit of that type gets the Synthea fee."""
    with session.begin():
        load_synthea_sample_claims(session)
        derive_chargemaster_from_claims(session)
        visit = admit(
            session,
            patient_id=PATIENT_ID,
            class_code="AMB",
            start=dt.datetime(2021, 3, 1, 9, tzinfo=dt.UTC),
            type_code=CHECKUP,
            bus=capture_bus,
        )
        knee = record_procedure(
            session,
            encounter_id=visit.id,
            code_system=SNOMED,
            code="699253003",
            display="Surgical manipulation of knee",
            performed_at=dt.datetime(2021, 3, 1, 10, tzinfo=dt.UTC),
            bus=capture_bus,
        )
    totals = {c.service_ref: (c.total, c.currency) for c in charges(session)}
    assert totals == {
        f"Encounter/{visit.id}": (Decimal("125.00"), "USD"),
        f"Procedure/{knee.id}": (Decimal("15947.33"), "USD"),
    }
