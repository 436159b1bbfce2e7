"""Tests of the PhysioNet 2012 reader on synthetic archives and on the real set-a."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from healthos_core.datasets import Measurement, Outcome, Stay, iter_stays, read_outcomes

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PHYSIONET = DATA / "physionet-2012-icu-mortality"

OUTCOMES_HEADER = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n"

# Typical layout: the six descriptor rows first.
RECORD_1 = """Time,Parameter,Value
00:00,RecordID,100001
00:00,Age,54
00:00,Gender,0
00:00,Height,-1
00:00,ICUType,4
00:00,Weight,80.5
00:07,GCS,15
00:07,HR,73
01:37,Weight,81
25:30,HR,-1
47:59,Temp,0
"""

# Measurements at 00:00: the 00:00 rows are sorted by name, interleaving descriptors.
RECORD_2 = """Time,Parameter,Value
00:00,RecordID,100002
00:00,Age,68
00:00,Gender,1
00:00,Height,162.6
00:00,HR,73
00:00,ICUType,3
00:00,NISysABP,187
00:00,Weight,-1
00:00,Weight,90
00:09,GCS,15
"""

RECORD_3 = """Time,Parameter,Value
00:00,RecordID,200001
00:00,Age,80
00:00,Gender,0
00:00,Height,170
00:00,ICUType,2
00:00,Weight,70
02:00,SysABP,110
"""


def write_archive(directory: Path, set_name: str, records: dict[str, str]) -> Path:
    path = directory / f"{set_name}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        folder = tarfile.TarInfo(set_name)
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        for name, text in records.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{set_name}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    write_archive(tmp_path, "set-a", {"100001.txt": RECORD_1, "100002.txt": RECORD_2})
    write_archive(tmp_path, "set-b", {"200001.txt": RECORD_3})
    (tmp_path / "Outcomes-a.txt").write_text(
        OUTCOMES_HEADER + "100001,6,1,5,-1,0\n100002,-1,8,8,3,1\n"
    )
    (tmp_path / "Outcomes-b.txt").write_text(OUTCOMES_HEADER + "200001,20,-1,-1,-1,0\n")
    return tmp_path


def test_parses_descriptors_and_measurements(dataset: Path) -> None:
    stays = list(iter_stays(dataset))
    assert [(s.set_name, s.record_id) for s in stays] == [
        ("set-a", "100001"),
        ("set-a", "100002"),
        ("set-b", "200001"),
    ]
    first = stays[0]
    assert first.descriptors == {
        "Age": 54.0,
        "Gender": 0.0,
        "Height": None,  # -1 = unknown
        "ICUType": 4.0,
        "Weight": 80.5,
    }
    assert first.measurements == (
        Measurement(7, "GCS", 15.0),
        Measurement(7, "HR", 73.0),
        Measurement(97, "Weight", 81.0),  # the Weight time series stays a measurement
        Measurement(1530, "HR", -1.0),  # hours past 23; implausible values are kept
        Measurement(2879, "Temp", 0.0),
    )


def test_interleaved_descriptors_at_time_zero(dataset: Path) -> None:
    stay = list(iter_stays(dataset))[1]
    assert stay.descriptors == {
        "Age": 68.0,
        "Gender": 1.0,
        "Height": 162.6,
        "ICUType": 3.0,
        "Weight": None,
    }
    # HR and NISysABP at 00:00 are measurements; a second Weight at 00:00 is too.
    assert stay.measurements == (
        Measurement(0, "HR", 73.0),
        Measurement(0, "NISysABP", 187.0),
        Measurement(0, "Weight", 90.0),
        Measurement(9, "GCS", 15.0),
    )


def test_stay_is_frozen_and_hashable(dataset: Path) -> None:
    stay = next(iter(iter_stays(dataset)))
    assert isinstance(stay, Stay)
    with pytest.raises(AttributeError):
        stay.record_id = "x"  # type: ignore[misc]
    assert hash(stay) == hash(next(iter(iter_stays(dataset))))


def test_sets_and_limit(dataset: Path) -> None:
    assert [s.record_id for s in iter_stays(dataset, sets=["b"])] == ["200001"]
    assert [s.record_id for s in iter_stays(dataset, sets="set-b")] == ["200001"]
    assert [s.record_id for s in iter_stays(dataset, sets=["set-b", "set-a"])] == [
        "200001",
        "100001",
        "100002",
    ]
    assert [s.record_id for s in iter_stays(dataset, limit=1)] == ["100001"]
    assert [s.record_id for s in iter_stays(dataset, limit=3)] == ["100001", "100002", "200001"]
    assert [s.record_id for s in iter_stays(dataset, limit=10)] == [
        "100001",
        "100002",
        "200001",
    ]
    assert list(iter_stays(dataset, limit=0)) == []


def test_streams_without_extracting(dataset: Path) -> None:
    before = sorted(p.name for p in dataset.iterdir())
    stays = iter_stays(dataset)
    assert isinstance(stays, Iterator)
    assert next(stays).record_id == "100001"
    list(stays)
    assert sorted(p.name for p in dataset.iterdir()) == before


def test_ignores_non_record_members(dataset: Path) -> None:
    record = RECORD_3.replace("200001", "300001")
    write_archive(dataset, "set-c", {"README": "not a record", "300001.txt": record})
    assert [s.record_id for s in iter_stays(dataset, sets=["c"])] == ["300001"]


def test_read_outcomes(dataset: Path) -> None:
    outcomes = read_outcomes(dataset)
    assert outcomes == {
        "100001": Outcome("100001", 6, 1, 5, None, False),
        "100002": Outcome("100002", None, 8, 8, 3, True),
        "200001": Outcome("200001", 20, None, None, None, False),
    }


# --- Errors ---------------------------------------------------------------------------------


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        iter_stays(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_outcomes(tmp_path / "nowhere")


def test_no_archives_or_outcomes(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no set-\*\.tar\.gz"):
        iter_stays(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no Outcomes-\*\.txt"):
        read_outcomes(tmp_path)


def test_missing_requested_set(dataset: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"set-z\.tar\.gz"):
        iter_stays(dataset, sets=["z"])


def test_negative_limit(dataset: Path) -> None:
    with pytest.raises(ValueError, match="limit"):
        iter_stays(dataset, limit=-1)


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("Time,Param,Value\n00:00,RecordID,9\n", 1, "header"),
        ("Time,Parameter,Value\n00:00,RecordID,9\n00:07,HR\n", 3, "3 fields"),
        ("Time,Parameter,Value\n00:00,RecordID,9\n00:07,HR,1,2\n", 3, "3 fields"),
        ("Time,Parameter,Value\n00:00,RecordID,9\n7:5,HR,80\n", 3, "hh:mm"),
        ("Time,Parameter,Value\n00:00,RecordID,9\n00:60,HR,80\n", 3, "hh:mm"),
        ("Time,Parameter,Value\n00:00,RecordID,9\n00:07,HR,abc\n", 3, "abc"),
        ("Time,Parameter,Value\n00:00,RecordID,9\n00:07,HR,nan\n", 3, "finite"),
        ("Time,Parameter,Value\n00:00,RecordID,9\n00:07,,80\n", 3, "empty Parameter"),
        ("Time,Parameter,Value\n00:00,RecordID,8\n", 2, "does not match"),
    ],
)
def test_malformed_record_names_file_and_line(
    tmp_path: Path, text: str, line: int, match: str
) -> None:
    write_archive(tmp_path, "set-a", {"9.txt": text})
    with pytest.raises(ValueError, match=match) as info:
        list(iter_stays(tmp_path))
    assert f"set-a.tar.gz:set-a/9.txt line {line}" in str(info.value)


def test_record_without_record_id(tmp_path: Path) -> None:
    write_archive(tmp_path, "set-a", {"9.txt": "Time,Parameter,Value\n00:00,Age,50\n"})
    with pytest.raises(ValueError, match=r"set-a/9\.txt: no RecordID"):
        list(iter_stays(tmp_path))


def test_corrupt_archive(tmp_path: Path) -> None:
    (tmp_path / "set-a.tar.gz").write_bytes(b"this is not gzip")
    with pytest.raises(ValueError, match=r"not a readable tar\.gz"):
        list(iter_stays(tmp_path))


def test_truncated_archive(dataset: Path) -> None:
    archive = dataset / "set-a.tar.gz"
    archive.write_bytes(archive.read_bytes()[:150])
    with pytest.raises(ValueError, match=r"set-a\.tar\.gz: not a readable tar\.gz"):
        list(iter_stays(dataset))


@pytest.mark.parametrize(
    ("content", "line", "match"),
    [
        ("RecordID,SAPS\n1,2\n", 1, "header"),
        (OUTCOMES_HEADER + "1,2,3\n", 2, "6 fields"),
        (OUTCOMES_HEADER + "1,2,3,4,5,0\n1,x,3,4,5,0\n", 3, "invalid literal"),
        (OUTCOMES_HEADER + "1,2,3,4,5,2\n", 2, "0 or 1"),
        (OUTCOMES_HEADER + "1,2,3,4,5,0\n1,2,3,4,5,1\n", 3, "appears twice"),
    ],
)
def test_malformed_outcomes_names_file_and_line(
    tmp_path: Path, content: str, line: int, match: str
) -> None:
    (tmp_path / "Outcomes-a.txt").write_text(content)
    with pytest.raises(ValueError, match=match) as info:
        read_outcomes(tmp_path)
    assert f"Outcomes-a.txt line {line}" in str(info.value)


# --- The real data ------------------------------------------------------------------------


@pytest.mark.integration
def test_first_20_stays_of_real_set_a_match_outcomes() -> None:
    outcomes = read_outcomes(PHYSIONET)
    assert len(outcomes) == 3234 + 3172
    stays = list(iter_stays(PHYSIONET, sets=["a"], limit=20))
    assert len(stays) == 20
    assert stays[0].record_id == "132539"
    assert stays[0].descriptors == {
        "Age": 54.0,
        "Gender": 0.0,
        "Height": None,
        "ICUType": 4.0,
        "Weight": None,
    }
    for stay in stays:
        assert stay.set_name == "set-a"
        assert stay.record_id in outcomes
        assert set(stay.descriptors) == {"Age", "Gender", "Height", "ICUType", "Weight"}
        assert stay.descriptors["Age"] is not None
        assert stay.descriptors["ICUType"] in (1.0, 2.0, 3.0, 4.0)
        assert stay.measurements
        minutes = [m.minutes for m in stay.measurements]
        assert minutes == sorted(minutes)
        assert all(0 <= m <= 48 * 60 for m in minutes)
        assert not any(m.parameter == "RecordID" for m in stay.measurements)
    assert outcomes["132539"] == Outcome("132539", 6, 1, 5, None, False)
