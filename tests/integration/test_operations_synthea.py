"""Queues and beds over a real record: Synthea v3 (synthea-v3-au-csv-fhir) encounters.

No shared dataset has bed-level Locations, queue tickets or Appointments: Synthea v2.4
encounters (synthea-fhir-r4) carry no ``Encounter.location``, and Synthea v3's point at
whole hospitals (``Location`` with no type), PhysioNet 2012 ICU stays have no location at
all. What the real data does test is the reading of real location histories (entries
without a period, times with +10:00/+11:00 offsets, conditional references) and that real
hospital Locations are never taken for beds or queue points. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.fhir.importer import import_document
from healthos_core.operations.beds import bed_census, location_at, occupied_beds
from healthos_core.operations.board import queue_status
from healthos_core.record.entities import Encounter, Location

pytestmark = pytest.mark.integration

#: Two of the ten patients: one with an inpatient (IMP) stay, one with emergency visits.
PATIENTS = (
    "Rickie717_Walsh511_6c434506-fb4b-3e3f-c19d-553dec3b6c17.json.gz",
    "Alfred550_West559_6872def5-772f-427c-3053-de6e1c71ce0a.json.gz",
)


def _unit(folder: Path, name: str) -> dict[str, Any]:
    """One patient's transaction bundle with the hospitals and practitioners it names.

    The patient bundles reference them conditionally (``Organization?identifier=…``), which
    HealthOS resolves within one unit.
    """
    entries: list[dict[str, Any]] = []
    for shared in folder.glob("*Information*.json"):
        entries += json.loads(shared.read_text(encoding="utf-8"))["entry"]
    with gzip.open(folder / name, "rt", encoding="utf-8") as handle:
        entries += json.load(handle)["entry"]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def test_real_location_histories_read_as_of_and_hospitals_are_not_beds(
    session: Session, shared_data: Path
) -> None:
    folder = shared_data / "synthea-v3-au-csv-fhir" / "fhir"
    for name in PATIENTS:
        import_document(session, _unit(folder, name), source=name)
    stays = session.scalars(
        select(Encounter).where(Encounter.class_code.in_(("EMER", "IMP"))).order_by(Encounter.id)
    ).all()
    assert {s.class_code for s in stays} == {"EMER", "IMP"}
    locations = session.scalars(select(Location)).all()
    assert locations and {loc.kind for loc in locations} == {None}
    hospitals = {loc.id for loc in locations}
    for stay in stays:
        assert stay.period_start is not None and stay.period_end is not None
        middle = stay.period_start + (stay.period_end - stay.period_start) / 2
        where = location_at(stay, middle)
        assert where == stay.location_id and where in hospitals
        # While the stay lasts its hospital is "occupied" by it; after it ends, it is not.
        assert occupied_beds(session, [where], middle) == {where}
        assert occupied_beds(session, [where], stay.period_end) == set()
        assert bed_census(session, at=middle) == []  # a hospital is not a bed
        assert queue_status(session, at=middle) == []
