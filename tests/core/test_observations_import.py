"""Long-format measurements become Observations; implausible values are flagged, not facts."""

from __future__ import annotations

import datetime as dt
import io
import tarfile
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core import terminology as t
from healthos_core.errors import InvalidInputError
from healthos_core.observations_import import (
    LongRow,
    import_physionet2012,
    load_mapping,
    observation_rows,
)
from healthos_core.record.entities import Encounter, Location, Observation, Patient

T0 = dt.datetime(2012, 1, 1, tzinfo=dt.UTC)


def _write_physionet(folder: Path, records: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / "set-a.tar.gz", "w:gz") as archive:
        for record_id, body in records.items():
            data = body.encode()
            info = tarfile.TarInfo(f"set-a/{record_id}.txt")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    (folder / "Outcomes-a.txt").write_text(
        "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n"
        + "".join(f"{r},10,3,5,-1,0\n" for r in records)
    )
    return folder


RECORD = """Time,Parameter,Value
00:00,RecordID,132539
00:00,Age,54
00:00,Gender,0
00:00,Height,-1
00:00,ICUType,4
00:00,Weight,70
00:07,HR,88
00:07,FiO2,0.5
00:07,MechVent,1
00:37,HR,0
01:07,Temp,-1
01:07,SaO2,97
02:00,Unknown,3
"""


def test_shipped_mapping_maps_the_news2_parameters() -> None:
    mapping = load_mapping()
    assert mapping["HR"].code == t.HEART_RATE
    assert mapping["RespRate"].code == t.RESPIRATORY_RATE
    assert mapping["SaO2"].code == t.OXYGEN_SATURATION
    assert mapping["NISysABP"].code == t.SYSTOLIC_BP
    assert mapping["SysABP"].code == t.INVASIVE_SYSTOLIC_BP
    assert mapping["GCS"].code == t.GCS_TOTAL
    assert mapping["FiO2"].scale == 100 and mapping["FiO2"].unit == "%"
    assert mapping["Lactate"].unit == "mmol/L"


def test_load_mapping_names_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "parameter,system,code,display,unit,category,scale,min,max\nHR,s,c,d,u,v,1,abc,3\n"
    )
    with pytest.raises(InvalidInputError, match=r"m\.csv, line 2"):
        load_mapping(path)
    path.write_text("parameter,code\nHR,1\n")
    with pytest.raises(InvalidInputError, match="lacks column"):
        load_mapping(path)


def test_observation_rows_flag_implausible_and_count_unmapped() -> None:
    flagged: Counter[str] = Counter()
    unmapped: Counter[str] = Counter()
    rows = observation_rows(
        [
            LongRow("p", T0, "HR", 80),
            LongRow("p", T0, "HR", 0),
            LongRow("p", T0, "Foo", 1),
            LongRow("p", T0, "FiO2", 0.4),
        ],
        load_mapping(),
        encounter_id="e",
        facility_id=None,
        id_prefix="x",
        flagged=flagged,
        unmapped=unmapped,
    )
    assert [r["status"] for r in rows] == ["final", "entered-in-error", "final"]
    assert rows[1]["quality_flag"] == "implausible: 0 outside [1, 300]"
    assert rows[2]["value"] == pytest.approx(40.0)
    assert flagged == Counter({"HR": 1})
    assert unmapped == Counter({"Foo": 1})


def test_import_physionet2012_builds_patient_icu_encounter_and_observations(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    folder = _write_physionet(tmp_path / "pn", {"132539": RECORD})
    report = import_physionet2012(session_factory, folder)
    assert report.imported["Patient"] == 1
    assert report.flagged == Counter({"HR": 1, "Temp": 1})
    assert report.unmapped == Counter({"Unknown": 1})
    with session_factory() as session:
        patient = session.get(Patient, "physionet-2012-132539")
        assert patient is not None and patient.gender == "female"
        encounter = session.get(Encounter, "physionet-2012-132539-icu")
        assert encounter is not None
        assert (encounter.class_code, encounter.status) == ("IMP", "finished")
        location = session.get(Location, encounter.location_id)
        assert location is not None and location.name == "Surgical ICU"
        facts = session.scalars(
            select(Observation).where(Observation.status == "final").order_by(Observation.id)
        ).all()
        # Weight descriptor, HR 88, FiO2, MechVent, SaO2 (Height -1 is unknown, not a row).
        assert sorted(o.code or "" for o in facts) == sorted(
            [
                t.BODY_WEIGHT,
                t.HEART_RATE,
                t.INHALED_OXYGEN_CONCENTRATION,
                t.MECHANICAL_VENTILATION,
                t.OXYGEN_SATURATION,
            ]
        )
        hr = next(o for o in facts if o.code == t.HEART_RATE)
        assert hr.effective_at == T0 + dt.timedelta(minutes=7)
        assert hr.unit == "/min"
        flagged = session.scalars(
            select(Observation).where(Observation.quality_flag.is_not(None))
        ).all()
        assert {o.status for o in flagged} == {"entered-in-error"}
        assert len(flagged) == 2


def test_import_physionet2012_twice_changes_nothing(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    folder = _write_physionet(tmp_path / "pn", {"132539": RECORD})
    import_physionet2012(session_factory, folder)
    with session_factory() as session:
        before = session.scalar(select(func.count()).select_from(Observation))
    import_physionet2012(session_factory, folder)
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Observation)) == before


@pytest.mark.integration
def test_import_physionet2012_real_slice(
    shared_data: Path, session_factory: sessionmaker[Session]
) -> None:
    folder = shared_data / "physionet-2012-icu-mortality"
    report = import_physionet2012(session_factory, folder, limit=25)
    assert report.imported["Patient"] == 25
    assert report.imported["Observation"] > 25 * 100
    with session_factory() as session:
        hr = session.scalars(
            select(Observation.value).where(
                Observation.code == t.HEART_RATE, Observation.status == "final"
            )
        ).all()
        assert hr and min(hr) >= 1 and max(hr) <= 300
