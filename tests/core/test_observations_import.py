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


def _patient_with_stay(session_factory: sessionmaker[Session]) -> None:
    from healthos_core.record import service

    with session_factory.begin() as session:
        service.register_patient(
            session,
            given="Ada",
            family="Long",
            gender="female",
            birth_date=dt.date(1960, 1, 1),
            id="p-long",
        )
        service.admit(
            session,
            patient_id="p-long",
            class_code="IMP",
            start=T0,
            id="e-long",
        )


def _long_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("patient,time,parameter,value\n" + "\n".join(rows) + "\n")
    return path


def test_import_long_rows_attach_to_the_encounter_and_flag(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    from healthos_core.observations_import import import_long_rows, read_long_csv

    _patient_with_stay(session_factory)
    path = _long_csv(
        tmp_path / "vitals.csv",
        [
            "p-long,2012-01-01T01:00:00Z,HR,92",
            "p-long,2012-01-01T02:00:00+01:00,RespRate,-1",
            "p-long,2011-12-31T23:00:00Z,Temp,37.2",
            "p-long,2012-01-01T03:00:00Z,Nonsense,1",
        ],
    )
    rows = read_long_csv(path)
    with session_factory.begin() as session:
        report = import_long_rows(session, rows, load_mapping(), source="vitals.csv")
    assert report.imported["Observation"] == 3
    assert report.flagged == Counter({"RespRate": 1})
    assert report.unmapped == Counter({"Nonsense": 1})
    with session_factory() as session:
        by_code = {o.code: o for o in session.scalars(select(Observation))}
        assert by_code[t.HEART_RATE].encounter_id == "e-long"
        assert by_code[t.HEART_RATE].effective_at == T0 + dt.timedelta(hours=1)
        assert by_code[t.RESPIRATORY_RATE].status == "entered-in-error"
        assert by_code[t.BODY_TEMPERATURE].encounter_id is None  # before admission
    with session_factory.begin() as session:
        import_long_rows(session, rows, load_mapping(), source="vitals.csv")
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Observation)) == 3


def test_import_long_rows_unknown_patient_writes_nothing(
    tmp_path: Path, engine: object, session_factory: sessionmaker[Session]
) -> None:
    from healthos_core.observations_import import import_long_rows, read_long_csv
    from tests.conftest import table_counts

    _patient_with_stay(session_factory)
    before = table_counts(engine)  # type: ignore[arg-type]
    rows = read_long_csv(
        _long_csv(
            tmp_path / "v.csv",
            [
                "p-long,2012-01-01T01:00:00Z,HR,92",
                "nobody,2012-01-01T01:00:00Z,HR,92",
            ],
        )
    )
    with pytest.raises(InvalidInputError, match="unknown patient"), session_factory.begin() as s:
        import_long_rows(s, rows, load_mapping(), source="v.csv")
    assert table_counts(engine) == before  # type: ignore[arg-type]


def test_read_long_csv_names_the_bad_line(tmp_path: Path) -> None:
    from healthos_core.observations_import import read_long_csv

    with pytest.raises(InvalidInputError, match=r"v\.csv, line 3"):
        read_long_csv(_long_csv(tmp_path / "v.csv", ["p,2012-01-01T00:00:00Z,HR,1", "p,noon,HR,2"]))
    bad = tmp_path / "w.csv"
    bad.write_text("patient,when,parameter,value\n")
    with pytest.raises(InvalidInputError, match="lacks column"):
        read_long_csv(bad)


def test_cli_imports_long_csv_with_a_mapping(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from healthos_core.db import make_engine, make_session_factory
    from healthos_core.migrate import upgrade
    from serving.cli import app

    db = f"sqlite:///{tmp_path}/long.db"
    engine = make_engine(db)
    upgrade(engine)
    _patient_with_stay(make_session_factory(engine))
    csv_path = _long_csv(tmp_path / "v.csv", ["p-long,2012-01-01T01:00:00Z,HR,92"])
    runner = CliRunner()
    result = runner.invoke(app, ["import", str(csv_path), "--db", db])
    assert result.exit_code == 2 and "needs --mapping" in result.output
    mapping = Path(__file__).resolve().parents[2] / "healthos_core/data/mappings/physionet2012.csv"
    result = runner.invoke(
        app, ["import", str(csv_path), "--mapping", str(mapping), "--db", db, "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["imported"] == {"Observation": 1}
