"""Population stability index (Siddiqi 2006), drift reports and recent rows from the record.

Tests taking ``session`` run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session

from healthos_core import terminology as t
from healthos_core.errors import InvalidInputError, NotFoundError
from healthos_core.settings import get_settings
from models import drift
from models.drift import (
    EPSILON,
    drift_report,
    psi,
    psi_status,
    recent_encounter_ids,
    recent_matrix,
)
from reasoning.features import deterioration, readmission
from tests.factories import make_encounter, make_observation, make_patient
from tests.models.model_fixtures import write_model_dir

AS_OF = dt.datetime(2025, 6, 30, 12, 0, tzinfo=dt.UTC)


def _term(a: float, e: float) -> float:
    return (a - e) * math.log(a / e)


# ------------------------------------------------------------------------------- psi


def test_identical_distributions_have_zero_psi() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=5000)
    assert psi(x, x) == pytest.approx(0.0, abs=1e-12)
    # Another sample of the same distribution: only sampling noise (~ (bins-1)(1/n+1/m)).
    assert psi(x, rng.normal(size=5000)) < 0.02


def test_hand_computed_example() -> None:
    # Two quantile bins of [1, 2, 3, 4]: edge 2.5, so (-inf, 2.5] and (2.5, inf).
    # Expected shares 0.5, 0.5, missing 0 (-> 1e-4); actual 0.25, 0.75, missing 0.
    expected = np.array([1.0, 2.0, 3.0, 4.0])
    actual = np.array([1.0, 3.0, 4.0, 4.0])
    want = 0.25 * math.log(2.0) + 0.25 * math.log(1.5)  # 0.274653…
    assert psi(expected, actual, bins=2) == pytest.approx(want, rel=1e-12)
    assert psi(expected, actual, bins=2) == pytest.approx(0.274653, abs=1e-6)


def test_values_on_an_edge_fall_in_the_lower_bin() -> None:
    # Right-closed bins: 2.5 belongs to (-inf, 2.5], like 1 and 2.
    expected = np.array([1.0, 2.0, 3.0, 4.0])
    assert psi(expected, np.array([2.5, 2.5, 3.0, 4.0]), bins=2) == pytest.approx(0.0, abs=1e-12)


def test_values_outside_the_training_range_count_in_the_outer_bins() -> None:
    expected = np.array([1.0, 2.0, 3.0, 4.0])
    assert psi(expected, np.array([-100.0, 0.0, 50.0, 1e9]), bins=2) == pytest.approx(0.0)


def test_shifted_normal_is_a_major_shift() -> None:
    rng = np.random.default_rng(2)
    value = psi(rng.normal(size=5000), rng.normal(loc=1.0, size=5000))
    assert value > 0.25
    assert psi_status(value) == "major"


def test_missing_values_have_their_own_bin() -> None:
    expected = np.arange(100, dtype=np.float64)
    # The same values, but half the recent rows are missing: every decile's share
    # halves (0.1 -> 0.05) and the missing bin goes from 0 (1e-4) to 0.5.
    actual = np.concatenate([np.arange(100, dtype=np.float64), np.full(100, np.nan)])
    want = 10 * _term(0.05, 0.1) + _term(0.5, EPSILON)
    assert psi(expected, actual) == pytest.approx(want, rel=1e-9)
    # Missing in both, in the same share: no shift.
    with_nan = np.concatenate([expected, np.full(20, np.nan)])
    assert psi(with_nan, with_nan) == pytest.approx(0.0, abs=1e-12)


def test_hand_computed_example_with_missing() -> None:
    expected = np.array([1.0, 2.0, 3.0, 4.0])
    actual = np.array([1.0, 3.0, 4.0, np.nan])  # shares 0.25, 0.5, missing 0.25
    want = _term(0.25, 0.5) + _term(0.5, 0.5) + _term(0.25, EPSILON)  # 2.128516…
    assert psi(expected, actual, bins=2) == pytest.approx(want, rel=1e-12)


def test_constant_feature_does_not_crash() -> None:
    constant = np.full(500, 7.0)
    assert psi(constant, np.full(50, 7.0)) == pytest.approx(0.0, abs=1e-12)
    # One bin (-inf, 7] holds all the training rows; larger values fall in (7, inf).
    value = psi(constant, np.array([7.0, 8.0, 9.0, 10.0]))
    assert value == pytest.approx(_term(0.25, 1.0) + _term(0.75, EPSILON), rel=1e-12)
    assert math.isfinite(value)


def test_feature_never_observed_in_training() -> None:
    never = np.full(100, np.nan)
    assert psi(never, np.full(10, np.nan)) == pytest.approx(0.0, abs=1e-12)
    assert psi(never, np.array([1.0, 2.0])) > 0.25


def test_binary_feature_gets_two_bins() -> None:
    expected = np.array([0.0] * 70 + [1.0] * 30)
    actual = np.array([0.0] * 50 + [1.0] * 50)
    assert psi(expected, actual) == pytest.approx(_term(0.5, 0.7) + _term(0.5, 0.3), rel=1e-12)


@pytest.mark.parametrize(
    ("value", "status"),
    [(0.0, "stable"), (0.099, "stable"), (0.1, "moderate"), (0.25, "moderate"), (0.2501, "major")],
)
def test_standard_reading(value: float, status: str) -> None:
    assert psi_status(value) == status


@pytest.mark.parametrize(
    ("expected", "actual", "bins"),
    [
        (np.array([]), np.array([1.0]), 10),
        (np.array([1.0]), np.array([]), 10),
        (np.ones((2, 2)), np.ones(2), 10),
        (np.ones(3), np.ones(3), 0),
    ],
)
def test_psi_refuses_bad_input(expected: np.ndarray, actual: np.ndarray, bins: int) -> None:
    with pytest.raises(InvalidInputError):
        psi(expected, actual, bins=bins)


def test_sample_file_name_matches_training() -> None:
    from models.training import TRAINING_SAMPLE

    assert drift.TRAINING_SAMPLE == TRAINING_SAMPLE


# ----------------------------------------------------------------------- drift_report


FEATURES = ["stable_a", "shifted_b", "constant_c", "missing_d"]


def _sample(rng: np.random.Generator, n: int, *, shift: float = 0.0, missing: float = 0.1):
    X = np.column_stack(
        [
            rng.normal(size=n),
            rng.normal(loc=shift, size=n),
            np.full(n, 3.0),
            rng.normal(size=n),
        ]
    )
    X[rng.random(n) < missing, 3] = np.nan
    return X


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    write_model_dir(
        tmp_path, "toy", version="7", feature_names=FEATURES, training_sample=_sample(rng, 3000)
    )
    return tmp_path


def test_drift_report(models_dir: Path) -> None:
    rng = np.random.default_rng(4)
    recent = _sample(rng, 1000, shift=1.5, missing=0.1)
    report = drift_report("toy", recent, directory=models_dir)
    assert report["model"] == {"name": "toy", "version": "7"}
    assert report["n_reference"] == 3000
    assert report["n_recent"] == 1000
    names = [f["feature"] for f in report["features"]]
    assert sorted(names) == sorted(FEATURES)
    values = [f["psi"] for f in report["features"]]
    assert values == sorted(values, reverse=True)
    assert names[0] == "shifted_b"
    assert report["max_psi"] == values[0] > 0.25
    assert report["shifted"] == ["shifted_b"]
    by_name = {f["feature"]: f for f in report["features"]}
    assert by_name["shifted_b"]["status"] == "major"
    assert by_name["stable_a"]["status"] == "stable"
    assert by_name["constant_c"] == {"feature": "constant_c", "psi": 0.0, "status": "stable"}
    assert by_name["missing_d"]["status"] == "stable"
    assert report["thresholds"] == {"moderate": 0.1, "major": 0.25}


def test_drift_report_sees_more_missing_values(models_dir: Path) -> None:
    recent = _sample(np.random.default_rng(5), 500, missing=0.6)
    report = drift_report("toy", recent, directory=models_dir)
    assert report["shifted"] == ["missing_d"]


def test_drift_report_default_directory_is_the_setting(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEALTHOS_MODELS_DIR", str(models_dir))
    get_settings.cache_clear()
    try:
        report = drift_report("toy", _sample(np.random.default_rng(6), 50))
    finally:
        monkeypatch.delenv("HEALTHOS_MODELS_DIR")
        get_settings.cache_clear()
    assert report["model"]["version"] == "7"


def test_drift_report_without_training_sample(tmp_path: Path) -> None:
    write_model_dir(tmp_path, "toy", feature_names=FEATURES, write_sample=False)
    with pytest.raises(InvalidInputError, match="no training sample"):
        drift_report("toy", np.zeros((3, 4)), directory=tmp_path)


def test_drift_report_without_model(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no model 'toy'"):
        drift_report("toy", np.zeros((3, 4)), directory=tmp_path)


@pytest.mark.parametrize("shape", [(0, 4), (5, 3), (4,)])
def test_drift_report_refuses_bad_rows(models_dir: Path, shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidInputError):
        drift_report("toy", np.zeros(shape), directory=models_dir)


# ---------------------------------------------------------------------- recent_matrix


@pytest.fixture
def ward(session: Session) -> dict[str, str]:
    """Inpatient stays around :data:`AS_OF`; only ``recent`` and ``older`` are in 30 days."""
    patient = make_patient(session, gender="male", birth_date=dt.date(1950, 6, 1))

    def stay(start_days: float, end_days: float | None, **kw: object) -> str:
        start = AS_OF - dt.timedelta(days=start_days)
        end = AS_OF - dt.timedelta(days=end_days) if end_days is not None else None
        values: dict[str, object] = {
            "class_code": "IMP",
            "status": "finished" if end else "in-progress",
            "period_start": start,
            "period_end": end,
        }
        values.update(kw)
        return make_encounter(session, patient=patient, **values).id

    ids = {
        "recent": stay(2, None),  # started 2 days ago, still in
        "older": stay(20, 12),  # started 20 days ago, ended 12 days ago
        "ended_recently": stay(35, 3),  # started 35 days ago, ended 3 days ago
        "old": stay(60, 50),
        "outpatient": stay(1, 0.9, class_code="AMB"),
        "cancelled": stay(5, 4, status="cancelled"),
        "future": stay(-1, None),
    }
    make_observation(
        session,
        patient_id=patient.id,
        encounter_id=ids["recent"],
        code=t.HEART_RATE,
        value=112.0,
        effective_at=AS_OF - dt.timedelta(days=2) + dt.timedelta(hours=1),
        category="vital-signs",
    )
    return ids


def test_recent_deterioration_encounters(session: Session, ward: dict[str, str]) -> None:
    ids = recent_encounter_ids(session, "deterioration", as_of=AS_OF)
    assert ids == [ward["older"], ward["recent"]]  # started in the 30 days, oldest first
    assert recent_encounter_ids(session, "deterioration", as_of=AS_OF, days=10) == [ward["recent"]]


def test_recent_readmission_encounters(session: Session, ward: dict[str, str]) -> None:
    ids = recent_encounter_ids(session, "readmission", as_of=AS_OF)
    assert ids == [ward["older"], ward["ended_recently"]]  # ended in the 30 days


def test_recent_matrix_deterioration(session: Session, ward: dict[str, str]) -> None:
    X = recent_matrix(session, "deterioration", as_of=AS_OF)
    assert X.shape == (2, len(deterioration.FEATURE_NAMES))
    expected = deterioration.matrix(
        deterioration.from_record(session, [ward["older"], ward["recent"]], as_of=AS_OF)
    )
    np.testing.assert_array_equal(X, expected)
    column = deterioration.FEATURE_NAMES.index
    assert X[1, column("hr_last")] == 112.0
    assert np.isnan(X[0, column("hr_last")])
    assert X[1, column("sex_male")] == 1.0
    assert X[1, column("age")] == 75.0


def test_recent_matrix_readmission(session: Session, ward: dict[str, str]) -> None:
    X = recent_matrix(session, "readmission", as_of=AS_OF)
    assert X.shape == (2, len(readmission.FEATURE_NAMES))
    los = readmission.FEATURE_NAMES.index("los_days")
    assert X[:, los].tolist() == [8.0, 32.0]


def test_recent_matrix_without_recent_encounters(session: Session, ward: dict[str, str]) -> None:
    with pytest.raises(InvalidInputError, match="no inpatient"):
        recent_matrix(session, "deterioration", as_of=AS_OF - dt.timedelta(days=100))


@pytest.mark.parametrize(
    ("name", "as_of", "days"),
    [
        ("sepsis", AS_OF, 30),
        ("deterioration", AS_OF.replace(tzinfo=None), 30),
        ("deterioration", AS_OF, 0),
    ],
)
def test_recent_matrix_refuses_bad_arguments(
    session: Session, name: str, as_of: dt.datetime, days: int
) -> None:
    with pytest.raises(InvalidInputError):
        recent_matrix(session, name, as_of=as_of, days=days)


def test_recent_rows_through_a_drift_report(
    session: Session, ward: dict[str, str], tmp_path: Path
) -> None:
    write_model_dir(
        tmp_path,
        "deterioration",
        version="2",
        feature_names=deterioration.FEATURE_NAMES,
        feature_groups=deterioration.FEATURE_GROUPS,
        n_rows=100,
    )
    report = drift_report(
        "deterioration", recent_matrix(session, "deterioration", as_of=AS_OF), directory=tmp_path
    )
    assert report["model"] == {"name": "deterioration", "version": "2"}
    assert report["n_recent"] == 2
    assert report["n_reference"] == 100
    assert len(report["features"]) == len(deterioration.FEATURE_NAMES)
    # Two stays with almost everything missing against a mostly observed sample.
    assert report["max_psi"] > 0.25
