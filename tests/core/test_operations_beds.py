"""Beds in the record: HL7 v2 table 0116 statuses, pools, thresholds and the as-of census.

Occupancy comes from the encounters' location history (not the stored status); every
other status from the bed's ``Location.operationalStatus``. Every test runs on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from healthos_core.errors import ConflictError, InvalidInputError, NotFoundError
from healthos_core.fhir.exporter import to_fhir
from healthos_core.fhir.importer import validate_resource
from healthos_core.operations import codes as ops
from healthos_core.operations.beds import (
    BedPool,
    bed_census,
    create_bed,
    create_ward,
    record_admit_decision,
    set_bed_status,
    set_expected_discharge,
    set_pool_threshold,
)
from healthos_core.record.entities import Encounter, Location
from healthos_core.record.movements import transfer
from tests.factories import T0, make_bed, make_encounter, make_organization, make_patient, make_ward

HOUR = dt.timedelta(hours=1)


def when(hours: float) -> dt.datetime:
    return T0 + hours * HOUR


def pools(census: list[BedPool]) -> dict[str, BedPool]:
    return {p.pool: p for p in census}


@pytest.fixture
def wards(session: Session) -> dict[str, Location]:
    """org-1: general medicine beds g0-g4 (U, U, K, I, C) and ICU beds i0, i1 (U, U)."""
    org = make_organization(session, id="org-1")
    general = make_ward(session, id="w-gen", facility_id=org.id)
    icu = make_ward(session, "icu", id="w-icu", name="ICU", facility_id=org.id)
    for index, status in enumerate("UUKIC"):
        make_bed(session, general, status, id=f"g{index}")
    for index in range(2):
        make_bed(session, icu, id=f"i{index}")
    return {"general": general, "icu": icu}


def admitted(session: Session, bed: str, start: dt.datetime, **overrides: object) -> Encounter:
    return make_encounter(
        session, class_code="IMP", location_id=bed, period_start=start, **overrides
    )


def test_census_counts_statuses_and_occupancy_from_location_history(
    session: Session, wards: dict[str, Location]
) -> None:
    admitted(session, "g0", when(0), id="e1")
    admitted(session, "g1", when(0), id="e2")
    transfer(session, "e2", "i0", when(2))  # moved to ICU at 11:00
    admitted(
        session, "g1", when(-24), id="e3", status="finished", period_end=when(-1)
    )  # discharged before T0
    census = pools(bed_census(session, at=when(1)))
    general, icu = census["general_medicine"], census["icu"]
    assert general.by_status == {
        "occupied": 2,
        "unoccupied": 0,
        "housekeeping": 1,
        "isolated": 1,
        "closed": 1,
    }
    assert (general.beds, general.available, general.occupied) == (5, 4, 2)
    assert general.occupancy == 0.5 and general.threshold == 0.85 and not general.over_threshold
    assert (icu.beds, icu.available, icu.occupied, icu.occupancy) == (2, 2, 0, 0.0)
    assert icu.threshold == 0.80
    # After the transfer, g1 is free and i0 taken.
    census = pools(bed_census(session, at=when(3)))
    assert census["general_medicine"].by_status["occupied"] == 1
    assert census["general_medicine"].by_status["unoccupied"] == 1
    assert (census["icu"].occupied, census["icu"].occupancy) == (1, 0.5)
    # Before T0: only e3, at g1.
    census = pools(bed_census(session, at=when(-2)))
    assert census["general_medicine"].occupied == 1 and census["icu"].occupied == 0
    assert bed_census(session, at=when(1), facility_id="org-2") == []


def test_a_patient_in_a_bed_outweighs_its_stored_status(
    session: Session, wards: dict[str, Location]
) -> None:
    admitted(session, "g4", when(0))  # stored C (closed), but a patient is there
    session.get(Location, "g0").operational_status = "O"  # type: ignore[union-attr]
    session.flush()  # stored O, nobody there
    general = pools(bed_census(session, at=when(1)))["general_medicine"]
    assert general.by_status == {
        "occupied": 1,
        "unoccupied": 2,
        "housekeeping": 1,
        "isolated": 1,
        "closed": 0,
    }
    assert (general.available, general.occupancy) == (5, 0.2)


def test_thresholds_default_per_pool_and_stored_per_facility(
    session: Session, wards: dict[str, Location]
) -> None:
    admitted(session, "i0", when(0))
    admitted(session, "i1", when(0))
    admitted(session, "g0", when(0))
    admitted(session, "g1", when(0))
    census = pools(bed_census(session, at=when(1)))
    assert (census["icu"].occupancy, census["icu"].over_threshold) == (1.0, True)
    assert (census["general_medicine"].occupancy, census["general_medicine"].over_threshold) == (
        0.5,
        False,
    )
    set_pool_threshold(session, "general_medicine", 0.6)  # every facility
    set_pool_threshold(session, "general_medicine", 0.45, facility_id="org-1")
    general = pools(bed_census(session, at=when(1)))["general_medicine"]
    assert (general.threshold, general.over_threshold) == (0.45, True)
    set_pool_threshold(session, "general_medicine", 0.5, facility_id="org-1")  # updated
    general = pools(bed_census(session, at=when(1)))["general_medicine"]
    assert (general.threshold, general.over_threshold) == (0.5, False)  # above, not at
    with pytest.raises(InvalidInputError, match=r"threshold=1\.2"):
        set_pool_threshold(session, "icu", 1.2)
    with pytest.raises(InvalidInputError, match="pool 'cardiac'"):
        set_pool_threshold(session, "cardiac", 0.8)
    with pytest.raises(NotFoundError):
        set_pool_threshold(session, "icu", 0.8, facility_id="nowhere")


def test_expected_discharges_in_the_next_24_hours(
    session: Session, wards: dict[str, Location]
) -> None:
    admitted(session, "g0", when(0), id="e1")
    admitted(session, "g1", when(0), id="e2")
    admitted(session, "i0", when(0), id="e3")
    set_expected_discharge(session, "e1", when(1 + 24))  # exactly 24 h after 10:00: counted
    set_expected_discharge(session, "e2", when(1 + 30))
    set_expected_discharge(session, "e3", when(0.5))  # already past at 10:00
    encounter = session.get(Encounter, "e1")
    assert encounter is not None and encounter.expected_discharge_at == when(25)
    resource = to_fhir(encounter)
    validate_resource(resource, label="Encounter")
    assert {"url": ops.EXPECTED_DISCHARGE_EXTENSION, "valueDateTime": "2024-03-02T10:00:00Z"} in (
        resource["extension"]
    )
    census = pools(bed_census(session, at=when(1)))
    assert census["general_medicine"].expected_discharges_24h == 1
    assert census["icu"].expected_discharges_24h == 0
    assert pools(bed_census(session, at=when(8)))["general_medicine"].expected_discharges_24h == 2
    with pytest.raises(InvalidInputError, match="before the encounter started"):
        set_expected_discharge(session, "e1", when(-1))


def test_ed_boarding_is_an_admit_decision_without_a_bed(
    session: Session, wards: dict[str, Location]
) -> None:
    patient = make_patient(session, facility_id="org-1")
    # serviceProvider is the facility the FHIR mapping reads back.
    boarder = make_encounter(
        session, patient=patient, class_code="EMER", id="ed1", service_provider_id="org-1"
    )
    record_admit_decision(session, "ed1", when(0.5), pool="icu")
    default_pool = make_encounter(
        session, class_code="EMER", id="ed2", facility_id="org-1", service_provider_id="org-1"
    )
    record_admit_decision(session, "ed2", when(0.5))
    in_a_bed = make_encounter(
        session,
        class_code="EMER",
        id="ed3",
        facility_id="org-1",
        service_provider_id="org-1",
        location_id="g0",
    )
    record_admit_decision(session, in_a_bed.id, when(0.5))
    make_encounter(session, class_code="EMER", facility_id="org-1")  # no decision
    assert boarder.admit_decision_at == when(0.5) and boarder.admit_to_pool == "icu"
    assert default_pool.admit_to_pool is None
    census = pools(bed_census(session, at=when(1), facility_id="org-1"))
    assert census["icu"].ed_boarding == 1
    assert census["general_medicine"].ed_boarding == 1
    assert census["general_medicine"].occupied == 1  # ed3 is in bed g0
    assert all(p.ed_boarding == 0 for p in bed_census(session, at=when(0.25)))
    with pytest.raises(InvalidInputError, match="not an emergency"):
        record_admit_decision(session, admitted(session, "g1", when(0)).id, when(1))


def test_bed_status_goes_through_the_write_path_as_v2_0116(
    session: Session, wards: dict[str, Location]
) -> None:
    bed = set_bed_status(session, "g0", "K", at=when(1))
    assert (bed.operational_status, bed.kind, bed.part_of_id, bed.facility_id) == (
        "K",
        "bed",
        "w-gen",
        "org-1",
    )
    resource = to_fhir(bed)
    validate_resource(resource, label="Location")
    assert resource["operationalStatus"] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0116",
        "code": "K",
        "display": "Contaminated",
    }
    assert pools(bed_census(session, at=when(1)))["general_medicine"].by_status["housekeeping"] == 2
    admitted(session, "g1", when(0))
    with pytest.raises(ConflictError, match="is occupied"):
        set_bed_status(session, "g1", "U", at=when(1))
    with pytest.raises(ConflictError, match="is occupied"):
        set_bed_status(session, "g1", "C", at=when(1))
    assert set_bed_status(session, "g1", "I", at=when(1)).operational_status == "I"
    with pytest.raises(InvalidInputError, match="comes from the record"):
        set_bed_status(session, "g2", "O")
    with pytest.raises(InvalidInputError, match="table 0116"):
        set_bed_status(session, "g2", "X")
    with pytest.raises(InvalidInputError, match="not a bed"):
        set_bed_status(session, "w-gen", "C")
    with pytest.raises(NotFoundError):
        set_bed_status(session, "nowhere", "C")


def test_wards_and_beds_created_through_the_write_path(session: Session) -> None:
    make_organization(session, id="org-9")
    ward = create_ward(session, name="Maternity", ward_type="maternity", facility_id="org-9")
    bed = create_bed(session, name="M1", ward_id=ward.id, status="K")
    assert (ward.kind, ward.physical_type, ward.service_type) == ("ward", "wa", "maternity")
    assert (bed.kind, bed.physical_type, bed.facility_id) == ("bed", "bd", "org-9")
    validate_resource(to_fhir(bed), label="Location")
    (pool,) = bed_census(session, at=when(0))
    assert (pool.pool, pool.facility_id, pool.beds, pool.by_status["housekeeping"]) == (
        "maternity",
        "org-9",
        1,
        1,
    )
    assert pool.occupancy == 0.0
    with pytest.raises(InvalidInputError, match="ward_type 'cardiac'"):
        create_ward(session, name="X", ward_type="cardiac", facility_id="org-9")
    with pytest.raises(InvalidInputError, match="comes from the record"):
        create_bed(session, name="M2", ward_id=ward.id, status="O")
