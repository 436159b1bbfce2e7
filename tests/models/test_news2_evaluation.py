"""Tests of the worst-first-24-hour NEWS2 evaluation on PhysioNet 2012."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from healthos_core.datasets import Measurement, Stay
from models.evaluation import evaluate_news2
from models.evaluation.news2 import (
    HourlyInputs,
    WorstNews2,
    hourly_inputs,
    plausible_value,
    worst_news2,
)

PHYSIONET = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "physionet-2012-icu-mortality"
)


def stay(*rows: tuple[int, str, float], record_id: str = "1") -> Stay:
    return Stay(
        record_id=record_id,
        set_name="set-t",
        descriptors={},
        measurements=tuple(Measurement(m, p, v) for m, p, v in rows),
    )


# Every NEWS2 input normal at minute 5: a complete hour scoring 0.
NORMAL_AT_5 = (
    (5, "RespRate", 16.0),
    (5, "SaO2", 97.0),
    (5, "FiO2", 0.21),
    (5, "NISysABP", 120.0),
    (5, "HR", 80.0),
    (5, "GCS", 15.0),
    (5, "Temp", 37.0),
)


def test_all_normal_is_complete_and_scores_zero_every_hour() -> None:
    hours = hourly_inputs(stay(*NORMAL_AT_5))
    assert len(hours) == 24
    assert [h.hour for h in hours] == list(range(24))
    assert all(h.complete for h in hours)  # carried forward to hour 23
    assert hours[23] == HourlyInputs(23, 16.0, 97.0, False, 120.0, 80.0, "A", 37.0)
    assert worst_news2(stay(*NORMAL_AT_5)) == WorstNews2(complete=0, partial=0, complete_hours=24)


def test_carry_forward_and_hour_windows() -> None:
    hours = hourly_inputs(
        stay((59, "HR", 100.0), (60, "HR", 120.0), (185, "HR", 60.0), (1439, "HR", 140.0))
    )
    pulses = [h.pulse for h in hours]
    assert pulses[0] == 100.0  # minute 59 is hour 0
    assert pulses[1] == 120.0  # minute 60 opens hour 1
    assert pulses[2] == 120.0  # carried forward
    assert pulses[3:23] == [60.0] * 20  # minute 185 is hour 3
    assert pulses[23] == 140.0  # minute 1439 is the last minute of hour 23


def test_nothing_is_carried_back_and_after_24h_is_ignored() -> None:
    hours = hourly_inputs(stay((200, "Temp", 39.5), (1440, "Temp", 41.0), (2000, "RespRate", 30.0)))
    assert [h.temperature for h in hours[:3]] == [None, None, None]
    assert all(h.temperature == 39.5 for h in hours[3:])
    assert all(h.resp_rate is None for h in hours)


def test_file_order_within_same_minute_and_unsorted_input() -> None:
    hours = hourly_inputs(stay((130, "HR", 90.0), (10, "HR", 50.0), (130, "HR", 95.0)))
    assert hours[0].pulse == 50.0
    assert hours[2].pulse == 95.0


def test_invasive_pressure_only_when_measured_that_hour_else_cuff() -> None:
    hours = hourly_inputs(
        stay(
            (10, "SysABP", 150.0),  # hour 0: invasive only
            (70, "NISysABP", 85.0),  # hour 1: cuff only -> cuff, although SysABP carried
            (130, "SysABP", 95.0),  # hour 2: both -> invasive
            (140, "NISysABP", 180.0),
        )
    )
    assert [h.systolic_bp for h in hours[:4]] == [150.0, 85.0, 95.0, 180.0]
    # Hour 3 has no invasive measurement: the carried cuff value wins over carried SysABP.


def test_invasive_carried_forward_when_no_cuff_ever() -> None:
    hours = hourly_inputs(stay((10, "SysABP", 88.0)))
    assert all(h.systolic_bp == 88.0 for h in hours)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ((), None),  # neither FiO2 nor MechVent observed -> unknown
        (((10, "FiO2", 0.21),), False),
        (((10, "FiO2", 0.4),), True),
        (((10, "FiO2", 40.0),), True),  # percent -> 0.40
        (((10, "FiO2", 21.0),), False),  # percent -> 0.21
        (((10, "MechVent", 1.0),), True),
        (((10, "MechVent", 1.0), (12, "FiO2", 0.21)), True),  # MechVent carried forward
        (((10, "FiO2", 0.5), (12, "FiO2", 0.21)), False),  # last FiO2 wins
        (((10, "FiO2", -1.0),), None),  # implausible -> never observed
    ],
)
def test_on_oxygen_from_fio2_and_mechvent(
    rows: tuple[tuple[int, str, float], ...], expected: bool | None
) -> None:
    assert hourly_inputs(stay(*rows))[0].on_oxygen is expected


def test_on_oxygen_unknown_until_first_observation() -> None:
    hours = hourly_inputs(stay((200, "FiO2", 0.6)))
    assert [h.on_oxygen for h in hours[:4]] == [None, None, None, True]


@pytest.mark.parametrize(
    ("gcs", "level", "points"), [(15.0, "A", 0), (14.0, "V", 3), (3.0, "V", 3)]
)
def test_gcs_to_acvpu(gcs: float, level: str, points: int) -> None:
    only_gcs = stay((10, "GCS", gcs))
    assert hourly_inputs(only_gcs)[0].consciousness == level
    assert worst_news2(only_gcs).partial == points


@pytest.mark.parametrize(
    ("parameter", "value", "kept"),
    [
        ("HR", -1.0, None),
        ("HR", 0.0, None),
        ("HR", 301.0, None),
        ("HR", 300.0, 300.0),
        ("RespRate", 0.0, None),
        ("RespRate", 81.0, None),
        ("RespRate", 80.0, 80.0),
        ("SysABP", 0.0, None),
        ("NISysABP", 301.0, None),
        ("SaO2", 0.0, None),
        ("SaO2", 100.5, None),
        ("SaO2", 100.0, 100.0),
        ("Temp", 24.9, None),
        ("Temp", 25.0, 25.0),
        ("Temp", 45.1, None),
        ("GCS", 2.0, None),
        ("GCS", 16.0, None),
        ("FiO2", 0.0, None),
        ("FiO2", 1.0, 1.0),
        ("FiO2", 60.0, 0.6),
        ("FiO2", 101.0, None),
        ("MechVent", 2.0, None),
        ("MechVent", 0.0, 0.0),
        ("Weight", -1.0, None),
        ("Weight", 0.0, 0.0),  # not used by NEWS2: only -1 is dropped
    ],
)
def test_plausible_value(parameter: str, value: float, kept: float | None) -> None:
    assert plausible_value(parameter, value) == kept


def test_implausible_values_are_dropped_before_carry_forward() -> None:
    hours = hourly_inputs(stay((10, "HR", 80.0), (70, "HR", 0.0), (130, "Temp", 3.7)))
    assert [h.pulse for h in hours[:3]] == [80.0, 80.0, 80.0]
    assert all(h.temperature is None for h in hours)


def test_worst_hour_of_a_known_stay() -> None:
    rows = (
        *NORMAL_AT_5,  # hour 0: 0
        (190, "HR", 135.0),  # hour 3: pulse 3
        (195, "RespRate", 26.0),  # hour 3: RR 3 -> 6
        (320, "FiO2", 0.5),  # hour 5: oxygen 2 -> 8
        (330, "SaO2", 93.0),  # hour 5: SpO2 2 -> 10
        (400, "HR", 80.0),  # hour 6: pulse 0 -> 7
        (400, "SysABP", 85.0),  # hour 6: invasive that hour 3 -> 10
        (470, "Temp", 39.5),  # hour 7: invasive no longer this hour -> cuff 120; temp 2 -> 9
        (1500, "GCS", 3.0),  # after 24 h: ignored
    )
    hours = hourly_inputs(stay(*rows))
    assert [h.pulse for h in hours[:7]] == [80.0, 80.0, 80.0, 135.0, 135.0, 135.0, 80.0]
    assert hours[7].systolic_bp == 120.0
    result = worst_news2(stay(*rows))
    assert result.complete == 10
    assert result.partial == 10
    assert result.complete_hours == 24


def test_partial_only_stay_has_no_complete_score() -> None:
    result = worst_news2(stay((10, "RespRate", 26.0), (200, "Temp", 34.0)))
    assert result.complete is None
    assert result.complete_hours == 0
    assert result.partial == 6  # RR 3 + temperature 3 (from hour 3 on)


def test_empty_stay_scores_zero_partial() -> None:
    result = worst_news2(stay())
    assert (result.complete, result.partial, result.complete_hours) == (None, 0, 0)


# --- evaluate_news2 on a synthetic dataset --------------------------------------------------

OUTCOMES_HEADER = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n"


def record(record_id: int, rows: list[str]) -> str:
    head = [
        "Time,Parameter,Value",
        f"00:00,RecordID,{record_id}",
        "00:00,Age,60",
        "00:00,Gender,1",
        "00:00,Height,-1",
        "00:00,ICUType,3",
        "00:00,Weight,70",
    ]
    return "\n".join(head + rows) + "\n"


COMPLETE_NORMAL = [
    "00:05,RespRate,16",
    "00:05,SaO2,97",
    "00:05,FiO2,0.21",
    "00:05,NISysABP,120",
    "00:05,HR,80",
    "00:05,GCS,15",
    "00:05,Temp,37",
]


def write_dataset(directory: Path, outcomes: str) -> None:
    records = {
        1: COMPLETE_NORMAL,  # complete, 0, survived
        2: [*COMPLETE_NORMAL, "02:00,HR,140", "02:00,RespRate,30"],  # complete, 6, died
        3: ["00:10,HR,120"],  # partial 2, survived
        4: ["00:10,RespRate,7", "00:10,Temp,34"],  # partial 6, died
    }
    with tarfile.open(directory / "set-a.tar.gz", "w:gz") as archive:
        for record_id, rows in records.items():
            data = record(record_id, rows).encode()
            info = tarfile.TarInfo(f"set-a/{record_id}.txt")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    (directory / "Outcomes-a.txt").write_text(OUTCOMES_HEADER + outcomes)


def test_evaluate_synthetic_dataset(tmp_path: Path) -> None:
    write_dataset(tmp_path, "1,5,2,5,-1,0\n2,-1,9,3,3,1\n3,10,-1,4,-1,0\n4,8,4,2,2,1\n")
    seen: list[int] = []
    result = evaluate_news2(tmp_path, progress=seen.append)
    assert seen == [1, 2, 3, 4]
    seconds = result.pop("seconds")
    assert isinstance(seconds, float) and seconds >= 0
    assert result == {
        "n": 4,
        "auroc": 1.0,  # deaths 6, 6 vs survivors 0, 2
        "auprc": 1.0,
        "complete": {"n": 2, "excluded": 2, "auroc": 1.0, "auprc": 1.0},
        "partial": {"n": 4, "auroc": 1.0, "auprc": 1.0},
        "baseline": {
            # SAPS-I on stays 1, 3, 4 (stay 2 unknown): survivors 5, 10 vs death 8
            "saps_i_auroc": 0.5,
            # SOFA on stays 1, 2, 4 (stay 3 unknown): survivor 2 vs deaths 9, 4
            "sofa_auroc": 1.0,
            "saps_i_n": 3,
            "sofa_n": 3,
        },
        "protocol": "partial",
        "positives": 2,
    }


def test_evaluate_limit_and_single_class(tmp_path: Path) -> None:
    write_dataset(tmp_path, "1,5,2,5,-1,0\n2,-1,9,3,3,1\n3,10,-1,4,-1,0\n4,8,4,2,2,1\n")
    result = evaluate_news2(tmp_path, limit=1)
    assert result["n"] == 1
    assert result["positives"] == 0
    assert result["auroc"] is None  # undefined with one outcome class
    assert result["baseline"]["saps_i_auroc"] is None


def test_evaluate_rejects_stay_without_outcome(tmp_path: Path) -> None:
    write_dataset(tmp_path, "1,5,2,5,-1,0\n2,-1,9,3,3,1\n3,10,-1,4,-1,0\n")
    with pytest.raises(ValueError, match=r"stay 4 .*no row in the Outcomes"):
        evaluate_news2(tmp_path)


def test_evaluate_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        evaluate_news2(tmp_path / "missing")


# --- The real data ------------------------------------------------------------------------


@pytest.mark.integration
def test_evaluate_first_300_real_stays() -> None:
    calls: list[int] = []
    result = evaluate_news2(PHYSIONET, limit=300, progress=calls.append)
    assert set(result) == {
        "n",
        "auroc",
        "auprc",
        "complete",
        "partial",
        "baseline",
        "protocol",
        "positives",
        "seconds",
    }
    assert set(result["complete"]) == {"n", "excluded", "auroc", "auprc"}
    assert set(result["partial"]) == {"n", "auroc", "auprc"}
    assert set(result["baseline"]) == {"saps_i_auroc", "sofa_auroc", "saps_i_n", "sofa_n"}
    assert result["n"] == 300
    assert calls == list(range(1, 301))
    assert result["complete"]["n"] + result["complete"]["excluded"] == result["n"]
    assert result["partial"]["n"] == result["n"]
    assert (result["auroc"], result["auprc"]) == (
        result["partial"]["auroc"],
        result["partial"]["auprc"],
    )
    assert 0.5 < result["auroc"] < 0.8
    assert 0 < result["positives"] < 300
    assert result["positives"] / 300 < result["auprc"] < 1
    assert 0 < result["baseline"]["saps_i_n"] <= 300
    assert 0 < result["baseline"]["sofa_n"] <= 300
    assert 0.5 < result["baseline"]["saps_i_auroc"] < 0.9
    assert result["protocol"] == "partial"
