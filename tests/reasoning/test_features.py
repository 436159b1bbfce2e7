"""Feature vectors: window statistics, the two paths (record, dataset) giving one vector."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.datasets.physionet2012 import iter_stays
from healthos_core.observations_import import import_physionet2012
from healthos_core.record.entities import MedicationAdministration, Procedure
from reasoning.features import deterioration, readmission
from reasoning.features.readmission import ICD9, AdmissionInputs
from reasoning.features.window import Point, round_significant, series_stats
from tests.factories import (
    make_condition,
    make_encounter,
    make_observation,
    make_patient,
)

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
PHYSIONET = "physionet-2012-icu-mortality"
UCI = "uci-diabetes-130/diabetic_data.csv.gz"


def _at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


# ------------------------------------------------------------------------ window stats


def test_series_stats_hand_computed() -> None:
    points = [Point("x", _at(h), v) for h, v in [(2, 10.0), (0, 4.0), (4, 7.0), (60, 99.0)]]
    last, low, high, mean, count, slope, since = series_stats(points, start=T0, end=_at(48))
    # inside the window: (0, 4), (2, 10), (4, 7); the 60 h point is outside
    assert (last, low, high, count) == (7.0, 4.0, 10.0, 3.0)
    assert mean == pytest.approx(7.0)
    # least squares through (0,4), (2,10), (4,7): slope = sum(dx*dy)/sum(dx^2) = 6/8
    assert slope == pytest.approx(0.75)
    assert since == pytest.approx(44.0)


def test_series_stats_empty_and_single_point() -> None:
    empty = series_stats([], start=T0, end=_at(48))
    assert empty[4] == 0.0 and all(math.isnan(v) for i, v in enumerate(empty) if i != 4)
    one = series_stats([Point("x", _at(1), 5.0)], start=T0, end=_at(48))
    assert one[:5] == (5.0, 5.0, 5.0, 5.0, 1.0)
    assert math.isnan(one[5])  # no slope from one time


def test_series_stats_rejects_a_reversed_window() -> None:
    with pytest.raises(ValueError, match="before its start"):
        series_stats([], start=_at(2), end=_at(1))


def test_round_significant() -> None:
    values = np.array([123.456789, 0.000123456789, -98765.4321, 0.0, np.nan, 47.98333333])
    rounded = round_significant(values)
    np.testing.assert_array_equal(rounded, [123.457, 0.000123457, -98765.4, 0.0, np.nan, 47.9833])


# ----------------------------------------------------------------- deterioration paths


@pytest.mark.integration
def test_physionet_stay_gives_the_same_vector_from_the_archive_and_from_the_record(
    session_factory: sessionmaker[Session], shared_data: Path
) -> None:
    folder = shared_data / PHYSIONET
    import_physionet2012(session_factory, folder, limit=5)
    stays = list(iter_stays(folder, limit=5))
    direct = [deterioration.from_physionet_stay(stay) for stay in stays]
    with session_factory() as session:
        stored = deterioration.from_record(session, [i.subject.split("/", 1)[1] for i in direct])
    assert [i.subject for i in stored] == [i.subject for i in direct]
    a, b = deterioration.matrix(direct), deterioration.matrix(stored)
    assert a.shape == (5, len(deterioration.FEATURE_NAMES))
    np.testing.assert_array_equal(a, b)  # NaN == NaN here
    assert np.isfinite(a).sum() > 5 * 50  # real stays have real values


def test_deterioration_from_record_reads_panels_skips_errors_and_cuts_at_as_of(
    session: Session,
) -> None:
    patient = make_patient(session, gender="male", birth_date=dt.date(1950, 6, 1))
    encounter = make_encounter(session, patient=patient, class_code="IMP", period_start=T0)
    make_observation(
        session,
        patient_id=patient.id,
        encounter_id=encounter.id,
        code="85354-9",
        value=None,
        effective_at=_at(1),
        components=[{"code": "8480-6", "value": 92.0}, {"code": "8462-4", "value": 55.0}],
    )
    make_observation(
        session,
        patient_id=patient.id,
        encounter_id=encounter.id,
        code="2524-7",
        value=2.0,
        effective_at=_at(2),
    )
    make_observation(
        session,
        patient_id=patient.id,
        encounter_id=encounter.id,
        code="2524-7",
        value=4.0,
        effective_at=_at(6),
    )
    make_observation(  # implausible, flagged by an importer: never a fact
        session,
        patient_id=patient.id,
        encounter_id=encounter.id,
        code="2524-7",
        value=99.0,
        effective_at=_at(7),
        status="entered-in-error",
    )
    make_observation(  # after as_of
        session,
        patient_id=patient.id,
        encounter_id=encounter.id,
        code="2524-7",
        value=8.0,
        effective_at=_at(12),
    )
    (inputs,) = deterioration.from_record(session, [encounter.id], as_of=_at(10))
    values = dict(zip(deterioration.FEATURE_NAMES, deterioration.vector(inputs), strict=True))
    assert values["sbp_last"] == 92.0 and values["dbp_last"] == 55.0
    assert values["lactate_last"] == 4.0 and values["lactate_count"] == 2.0
    assert values["lactate_slope"] == pytest.approx(0.5)
    assert values["lactate_since"] == pytest.approx(4.0)  # 10 h (as_of) - 6 h
    assert values["age"] == 75.0 and values["sex_male"] == 1.0
    assert math.isnan(values["creatinine_last"]) and values["creatinine_count"] == 0.0
    assert inputs.window_end == _at(10)


# -------------------------------------------------------------------- readmission


@pytest.mark.parametrize(
    ("system", "code", "group"),
    [
        (ICD9, "428.0", "circulatory"),
        (ICD9, "785", "circulatory"),
        (ICD9, "250.83", "diabetes"),
        (ICD9, "486", "respiratory"),
        (ICD9, "786", "respiratory"),
        (ICD9, "578", "digestive"),
        (ICD9, "820", "injury"),
        (ICD9, "715", "musculoskeletal"),
        (ICD9, "599", "genitourinary"),
        (ICD9, "174", "neoplasms"),
        (ICD9, "V57", "other"),
        (ICD9, "E888", "other"),
        (ICD9, "276", "other"),
        ("http://hl7.org/fhir/sid/icd-10-cm", "I50.9", "circulatory"),
        ("http://hl7.org/fhir/sid/icd-10-cm", "E11.9", "diabetes"),
        ("http://hl7.org/fhir/sid/icd-10-cm", "E03.9", "other"),
        ("http://hl7.org/fhir/sid/icd-10-cm", "D46.9", "neoplasms"),
        ("http://hl7.org/fhir/sid/icd-10-cm", "D64.9", "other"),
        ("http://hl7.org/fhir/sid/icd-10-cm", "S72.001A", "injury"),
        ("http://snomed.info/sct", "44054006", None),
    ],
)
def test_diagnosis_groups_follow_strack_2014(system: str, code: str, group: str | None) -> None:
    assert readmission.diagnosis_group(system, code) == group


def test_comorbidities_from_icd9_and_icd10() -> None:
    found = readmission.comorbidities(
        [
            (ICD9, "428.0"),
            (ICD9, "599.0"),
            ("http://hl7.org/fhir/sid/icd-10-cm", "N18.3"),
            ("http://hl7.org/fhir/sid/icd-10-cm", "J44.1"),
            ("http://snomed.info/sct", "84114007"),
        ]
    )
    assert found == {"heart_failure", "urinary_infection", "kidney_disease", "copd"}
    assert readmission.comorbidities([(ICD9, "599.7")]) == set()


@pytest.mark.integration
def test_uci_rows_map_to_fhir_terms(shared_data: Path) -> None:
    rows = list(readmission.read_uci(shared_data / UCI, limit=3))
    first = rows[0]
    # 2278392,8222157,Caucasian,Female,[0-10),?,6,25,1,1,?,Pediatrics-Endocrinology,41,0,1,0,0,0,
    # 250.83,?,?,1,None,None,No x 23,No,No,NO
    assert first.inputs.subject == "Encounter/2278392"
    assert first.patient == "8222157" and first.race == "Caucasian" and first.sex == "female"
    assert first.inputs.age == 5.0 and first.inputs.los_days == 1.0
    assert first.inputs.priority is None  # 6 = NULL
    assert first.inputs.admit_source == "gp"  # 1 = physician referral
    assert first.inputs.discharge_disposition is None  # 25 = not mapped
    assert first.inputs.diagnoses == ((ICD9, "250.83"),)
    assert first.inputs.n_lab_tests == 41 and first.inputs.n_medications == 1
    assert first.inputs.diabetes_medicines == () and not first.readmitted_30d
    # row 2: insulin "Up", A1C None, readmitted >30
    assert rows[1].inputs.diabetes_medicines == ("insulin",)
    values = dict(zip(readmission.FEATURE_NAMES, readmission.vector(first.inputs), strict=True))
    assert values["primary_diabetes"] == 1.0 and values["any_diabetes"] == 1.0
    assert values["source_referral"] == 1.0 and math.isnan(values["hba1c_level"])


def test_uci_reader_rejects_another_layout(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not the UCI diabetes layout"):
        list(readmission.read_uci(path))
    with pytest.raises(FileNotFoundError):
        list(readmission.read_uci(tmp_path / "missing.csv.gz"))


def test_readmission_record_path_gives_the_vector_of_the_equivalent_dataset_row(
    session: Session,
) -> None:
    """A stay built in the record equals the AdmissionInputs a UCI row with the same facts gives."""
    patient = make_patient(session, gender="male", birth_date=dt.date(1951, 1, 1))
    start = dt.datetime(2026, 2, 10, 9, 0, tzinfo=dt.UTC)
    # history: one inpatient stay ending 20 days before (a 30-day readmission), one ED visit
    make_encounter(
        session,
        patient=patient,
        class_code="IMP",
        status="finished",
        period_start=start - dt.timedelta(days=26),
        period_end=start - dt.timedelta(days=20),
    )
    make_encounter(
        session,
        patient=patient,
        class_code="EMER",
        status="finished",
        period_start=start - dt.timedelta(days=100),
        period_end=start - dt.timedelta(days=100),
    )
    make_encounter(  # more than a year ago: not in the prior-year counts
        session,
        patient=patient,
        class_code="AMB",
        status="finished",
        period_start=start - dt.timedelta(days=400),
        period_end=start - dt.timedelta(days=400),
    )
    stay = make_encounter(
        session,
        patient=patient,
        class_code="IMP",
        status="finished",
        period_start=start,
        period_end=start + dt.timedelta(days=3, hours=2),
        admit_source="emd",
        discharge_disposition="snf",
    )
    for code in ("428.0", "250.02", "585"):
        make_condition(
            session,
            patient_id=patient.id,
            code=code,
            code_system=ICD9,
            encounter_id=stay.id,
            id=f"c-{stay.id}-{code}",
        )
    make_observation(
        session,
        patient_id=patient.id,
        encounter_id=stay.id,
        code="4548-4",
        value=8.6,
        effective_at=start + dt.timedelta(hours=3),
    )
    make_observation(
        session,
        patient_id=patient.id,
        encounter_id=stay.id,
        code="2345-7",
        value=240,
        effective_at=start + dt.timedelta(hours=4),
    )
    session.add_all(
        [
            Procedure(
                id=f"p-{stay.id}",
                patient_id=patient.id,
                encounter_id=stay.id,
                status="completed",
                code="232717009",
                code_system="http://snomed.info/sct",
            ),
            MedicationAdministration(
                id=f"m1-{stay.id}",
                patient_id=patient.id,
                encounter_id=stay.id,
                status="completed",
                code="311041",
                display="insulin glargine 100 UNT/ML",
            ),
            MedicationAdministration(
                id=f"m2-{stay.id}",
                patient_id=patient.id,
                encounter_id=stay.id,
                status="completed",
                code="861007",
                display="metformin hydrochloride 500 MG",
            ),
        ]
    )
    session.flush()
    (from_record,) = readmission.from_record(session, [stay.id])
    expected = AdmissionInputs(
        subject=f"Encounter/{stay.id}",
        age=75.0,
        sex="male",
        los_days=4.0,  # 3 days 2 hours, counted in started days as UCI's time_in_hospital
        priority="EM",
        admit_source="emd",
        discharge_disposition="snf",
        n_lab_tests=2,
        n_procedures=1,
        n_medications=2,
        n_outpatient_prior_year=0,
        n_emergency_prior_year=1,
        n_inpatient_prior_year=1,
        n_prior_admissions=1,
        readmission_of_recent_stay=True,
        diagnoses=tuple((ICD9, c) for c in ("250.02", "428.0", "585")),
        hba1c="very_high",
        glucose="high",
        diabetes_medicines=("insulin", "metformin"),
    )
    assert from_record == expected
    np.testing.assert_array_equal(readmission.vector(from_record), readmission.vector(expected))
