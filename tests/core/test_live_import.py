"""Back-load versus live import, and the origin of clinical events (issue 10, item 1).

A plain import is a back-load of history: no event, no charge. ``origin="live"`` publishes
the record service's events in the bundle's transaction, so the same Procedure imported
live or recorded through :func:`~healthos_core.record.service.record_procedure` posts the
same ChargeItem, and importing it again changes nothing.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.billing.capture import CaptureSettings
from healthos_core.billing.entities import ChargeItem
from healthos_core.events import ClinicalEvent, EventBus, ProcedurePerformed, default_bus
from healthos_core.fhir.importer import import_paths
from healthos_core.record.entities import Procedure
from healthos_core.record.service import admit, record_procedure
from healthos_core.wiring import Wiring, wire_live_path
from tests.conftest import table_counts, truncate_all
from tests.core.fhir_factories import (
    SNOMED,
    BundleIds,
    organization,
    patient,
    transaction_bundle,
    write_json,
)
from tests.factories import make_chargemaster, make_encounter

T0 = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)
PERFORMED = T0 + dt.timedelta(minutes=30)
VISIT = ("50849002", "Emergency room admission (procedure)")
X_RAY = ("399208008", "Plain chest X-ray (procedure)")
PRICES = [(VISIT[0], "310.00"), (X_RAY[0], "120.55")]


class Spy:
    """Records every event published on a bus: ``(type, subject, origin)``."""

    def __init__(self, bus: EventBus) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.bus = bus
        bus.subscribe(ClinicalEvent, self)

    def __call__(self, event: ClinicalEvent, session: Session) -> None:
        self.seen.append((type(event).__name__, event.subject_ref, event.origin))

    def close(self) -> None:
        self.bus.unsubscribe(ClinicalEvent, self)


@pytest.fixture
def spy(live_path: Wiring) -> Any:
    """A spy on the wired default bus (after charge capture)."""
    watcher = Spy(live_path.bus)
    yield watcher
    watcher.close()


def visit_entries(
    key: str, *, with_visit: bool = True, start: dt.datetime = T0
) -> list[dict[str, Any]]:
    """Bundle entries: a facility, a patient and (``with_visit``) an open ER visit.

    The visit begins at ``start`` and has a chest X-ray 30 minutes later.
    """
    ids = BundleIds(key)
    u = ids.urn
    entries = [
        {"fullUrl": u("organization"), "resource": organization(ids.organization)},
        {
            "fullUrl": u("patient"),
            "resource": patient(ids.patient, organization_ref=u("organization")),
        },
    ]
    if with_visit:
        entries += [
            {
                "fullUrl": u("encounter"),
                "resource": {
                    "resourceType": "Encounter",
                    "id": ids.encounter,
                    "status": "in-progress",
                    "class": {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": "EMER",
                    },
                    "type": [
                        {"coding": [{"system": SNOMED, "code": VISIT[0], "display": VISIT[1]}]}
                    ],
                    "subject": {"reference": u("patient")},
                    "period": {"start": start.isoformat()},
                    "serviceProvider": {"reference": u("organization")},
                },
            },
            {
                "fullUrl": u("procedure"),
                "resource": {
                    "resourceType": "Procedure",
                    "id": ids.procedure,
                    "status": "completed",
                    "code": {"coding": [{"system": SNOMED, "code": X_RAY[0], "display": X_RAY[1]}]},
                    "subject": {"reference": u("patient")},
                    "encounter": {"reference": u("encounter")},
                    "performedDateTime": (start + (PERFORMED - T0)).isoformat(),
                },
            },
        ]
    return entries


def write_bundle(path: Path, entries: list[dict[str, Any]]) -> Path:
    return write_json(path, {"resourceType": "Bundle", "type": "collection", "entry": entries})


def charges(session_factory: sessionmaker[Session]) -> dict[str, tuple[Any, ...]]:
    """Every ChargeItem by its service_ref, with what billing reads of it."""
    with session_factory() as session:
        return {
            c.service_ref or "": (
                c.status,
                c.code_system,
                c.code,
                c.display,
                c.quantity,
                c.unit_price,
                c.total,
                c.currency,
                c.patient_id,
                c.encounter_id,
                c.facility_id,
                c.occurred_at,
            )
            for c in session.scalars(select(ChargeItem))
        }


def price_list(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        make_chargemaster(session, PRICES)


def test_default_import_is_a_backload_no_event_no_charge(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path, spy: Spy
) -> None:
    price_list(session_factory)
    bundle = write_json(tmp_path / "a.json", transaction_bundle("a"))
    report = import_paths(session_factory, [bundle])
    assert report.rejected == [] and report.imported["Procedure"] == 1
    assert spy.seen == []
    assert table_counts(engine)["charge_item"] == 0


def test_live_import_posts_the_charges_the_record_service_posts(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path, spy: Spy
) -> None:
    ids = BundleIds("v")
    # Through the library: the facility and the patient exist, the visit and the X-ray
    # are recorded with the record service on the wired default bus.
    price_list(session_factory)
    people = write_bundle(tmp_path / "people.json", visit_entries("v", with_visit=False))
    assert import_paths(session_factory, [people]).rejected == []
    with session_factory.begin() as session:
        admit(
            session,
            patient_id=ids.patient,
            class_code="EMER",
            start=T0,
            facility_id=ids.organization,
            type_code=VISIT[0],
            type_display=VISIT[1],
            id=ids.encounter,
        )
        record_procedure(
            session,
            encounter_id=ids.encounter,
            code_system=SNOMED,
            code=X_RAY[0],
            display=X_RAY[1],
            performed_at=PERFORMED,
            id=ids.procedure,
        )
    through_service = charges(session_factory)
    service_events = list(spy.seen)
    assert set(through_service) == {ids.ref("encounter"), ids.ref("procedure")}
    x_ray = through_service[ids.ref("procedure")]
    assert (x_ray[2], x_ray[5], x_ray[6]) == (X_RAY[0], Decimal("120.55"), Decimal("120.55"))

    # The same facts as a live feed into an empty database.
    truncate_all(engine)
    spy.seen.clear()
    price_list(session_factory)
    visit = write_bundle(tmp_path / "visit.json", visit_entries("v"))
    report = import_paths(session_factory, [visit], origin="live")
    assert report.rejected == []
    assert charges(session_factory) == through_service
    assert (
        spy.seen
        == service_events
        == [
            ("EncounterStarted", ids.ref("encounter"), "live"),
            ("ProcedurePerformed", ids.ref("procedure"), "live"),
        ]
    )

    # Importing it again publishes the events again and posts nothing new.
    counts = table_counts(engine)
    assert import_paths(session_factory, [visit], origin="live").rejected == []
    assert table_counts(engine) == counts
    assert charges(session_factory) == through_service


def test_live_import_of_a_finished_visit_charges_each_billable_event_once(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path, spy: Spy
) -> None:
    ids = BundleIds("a")
    price_list(session_factory)
    bundle = write_json(tmp_path / "a.json", transaction_bundle("a"))
    assert import_paths(session_factory, [bundle], origin="live").rejected == []
    published = {(kind, ref) for kind, ref, origin in spy.seen if origin == "live"}
    assert {
        ("EncounterStarted", ids.ref("encounter")),
        ("EncounterFinished", ids.ref("encounter")),
        ("ProcedurePerformed", ids.ref("procedure")),
        ("ObservationRecorded", ids.ref("observation")),
        ("ObservationRecorded", ids.ref("bp_panel")),
        ("ClaimChanged", ids.ref("claim")),  # the bundle's Claim: its denial risk is rescored
    } == published
    assert sorted(charges(session_factory)) == sorted([ids.ref("encounter"), ids.ref("procedure")])


def test_a_unit_whose_live_event_is_refused_is_rejected_whole(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    bus = EventBus()
    wire_live_path(bus, capture_settings=CaptureSettings(strict=True))
    with session_factory.begin() as session:
        make_chargemaster(session, [PRICES[0]])  # the X-ray has no price
    before = table_counts(engine)
    visit = write_bundle(tmp_path / "visit.json", visit_entries("s"))
    report = import_paths(session_factory, [visit], origin="live", bus=bus)
    assert len(report.rejected) == 1
    assert f"no chargemaster price for {SNOMED}|{X_RAY[0]}" in report.rejected[0]["reason"]
    assert table_counts(engine) == before


def test_backload_events_are_not_charged(session: Session, live_path: Wiring) -> None:
    make_chargemaster(session, PRICES)
    encounter = make_encounter(session, period_start=T0)
    procedure = Procedure(
        id="p-backload",
        patient_id=encounter.patient_id,
        encounter_id=encounter.id,
        status="completed",
        code_system=SNOMED,
        code=X_RAY[0],
        performed_start=PERFORMED,
    )
    session.add(procedure)
    session.flush()
    default_bus().publish(ProcedurePerformed(procedure=procedure, origin="backload"), session)
    assert session.scalars(select(ChargeItem)).all() == []
    default_bus().publish(ProcedurePerformed(procedure=procedure), session)
    assert [c.service_ref for c in session.scalars(select(ChargeItem))] == ["Procedure/p-backload"]


def test_an_unknown_origin_is_refused(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="origin 'replay'"):
        import_paths(session_factory, [], origin="replay")  # type: ignore[arg-type]
