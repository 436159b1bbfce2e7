"""Tests of the binary, subgroup and calibration metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from healthos_core.errors import InvalidInputError
from models.metrics import CI_METRICS, binary_metrics, calibration_table, subgroup_metrics

Y4 = [0, 0, 1, 1]
P4 = [0.1, 0.4, 0.35, 0.8]


def bernoulli(n: int, seed: int, *, low: float = 0.02, high: float = 0.98) -> tuple:
    """Return ``(y, p)`` with ``y ~ Bernoulli(p)``: perfectly calibrated by construction."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(low, high, n)
    return (rng.uniform(size=n) < p).astype(int), p


# --- binary_metrics: golden values -------------------------------------------------------


def test_golden_values_by_hand() -> None:
    m = binary_metrics(Y4, P4, n_bootstrap=0)
    # AUROC: positive/negative pairs (0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4) -> 3/4.
    assert m["auroc"] == 0.75
    # Brier: (0.1² + 0.4² + 0.65² + 0.2²)/4 = (0.01 + 0.16 + 0.4225 + 0.04)/4 = 0.158125.
    assert m["brier"] == 0.1581
    # Average precision: ranks 0.8(+) 0.4(-) 0.35(+) 0.1(-): 0.5·1 + 0.5·(2/3) = 0.8333.
    assert m["auprc"] == 0.8333
    assert (m["n"], m["positives"], m["prevalence"]) == (4, 2, 0.5)
    assert "ci" not in m and "ci_level" not in m


def test_result_is_json_ready() -> None:
    m = binary_metrics(Y4, P4, n_bootstrap=50, seed=1)
    assert json.loads(json.dumps(m)) == m
    assert isinstance(m["n"], int) and isinstance(m["positives"], int)
    for key in ("prevalence", *CI_METRICS):
        assert type(m[key]) is float
        assert m[key] == round(m[key], 4)


def test_accepts_bools_and_float_labels() -> None:
    as_bool = binary_metrics([False, False, True, True], P4, n_bootstrap=0)
    as_float = binary_metrics([0.0, 0.0, 1.0, 1.0], P4, n_bootstrap=0)
    assert as_bool == as_float == binary_metrics(Y4, P4, n_bootstrap=0)


# --- calibration slope and intercept -----------------------------------------------------


def test_calibrated_predictions_have_slope_one_intercept_zero() -> None:
    y, p = bernoulli(20_000, seed=20121)
    m = binary_metrics(y, p, n_bootstrap=0)
    assert m["calibration_slope"] == pytest.approx(1.0, abs=0.15)
    assert m["calibration_intercept"] == pytest.approx(0.0, abs=0.15)


def test_over_confident_predictions_have_slope_below_one() -> None:
    y, p = bernoulli(20_000, seed=7)
    # Doubling the log-odds pushes every prediction towards 0 or 1: slope should be ~0.5.
    logit = np.log(p / (1 - p))
    extreme = 1 / (1 + np.exp(-2 * logit))
    m = binary_metrics(y, extreme, n_bootstrap=0)
    assert m["calibration_slope"] < 1.0
    assert m["calibration_slope"] == pytest.approx(0.5, abs=0.1)


def test_under_confident_predictions_have_slope_above_one() -> None:
    y, p = bernoulli(20_000, seed=8)
    logit = np.log(p / (1 - p))
    timid = 1 / (1 + np.exp(-0.5 * logit))
    assert binary_metrics(y, timid, n_bootstrap=0)["calibration_slope"] > 1.5


def test_probabilities_of_exactly_zero_and_one_are_clipped() -> None:
    m = binary_metrics([0, 1, 0, 1, 1], [0.0, 1.0, 0.3, 0.6, 0.2], n_bootstrap=0)
    assert math.isfinite(m["calibration_slope"]) and math.isfinite(m["calibration_intercept"])


# --- bootstrap intervals -----------------------------------------------------------------


def test_intervals_contain_the_estimate_and_are_ordered() -> None:
    y, p = bernoulli(400, seed=3)
    m = binary_metrics(y, p, n_bootstrap=100, seed=5)
    assert set(m["ci"]) == set(CI_METRICS)
    assert m["ci_level"] == 0.95
    assert m["ci_resamples"] == 100
    for key in CI_METRICS:
        low, high = m["ci"][key]
        assert low < high, key
        assert low <= m[key] <= high, key


def test_intervals_are_reproducible_and_depend_on_the_seed() -> None:
    y, p = bernoulli(200, seed=4)
    first = binary_metrics(y, p, n_bootstrap=60, seed=11)
    assert binary_metrics(y, p, n_bootstrap=60, seed=11) == first
    assert binary_metrics(y, p, n_bootstrap=60, seed=12)["ci"] != first["ci"]


def test_narrower_confidence_gives_narrower_intervals() -> None:
    y, p = bernoulli(300, seed=6)
    wide = binary_metrics(y, p, n_bootstrap=80, seed=0, confidence=0.95)["ci"]["auroc"]
    narrow = binary_metrics(y, p, n_bootstrap=80, seed=0, confidence=0.5)["ci"]["auroc"]
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


@pytest.mark.filterwarnings("error")
def test_one_class_resamples_are_skipped_without_warnings() -> None:
    # Two positives in 20: about (18/20)^20 = 12% of resamples hold no positive.
    y = np.zeros(20, dtype=int)
    y[[6, 17]] = 1
    p = np.linspace(0.05, 0.95, 20)
    m = binary_metrics(y, p, n_bootstrap=100, seed=0)
    assert 70 < m["ci_resamples"] < 100
    for key in CI_METRICS:
        low, high = m["ci"][key]
        assert low is not None and high is not None and low <= high


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1, 1], [0.2, 0.5], r"same length \(got 3 and 2\)"),
        ([0, 1], [0.2, 1.2], r"p must lie in \[0, 1\] \(found values from 0\.2 to 1\.2\)"),
        ([0, 1], [-0.1, 0.5], r"p must lie in \[0, 1\]"),
        ([0, 1], [0.2, float("nan")], r"p contains NaN \(1 of 2 values\)"),
        ([0, 2], [0.2, 0.5], r"y_true must be binary 0/1 \(found values 2\)"),
        ([0, 0.5], [0.2, 0.5], r"y_true must be binary 0/1 \(found values 0\.5\)"),
        (["no", "yes"], [0.2, 0.5], r"y_true must be binary 0/1 \(got dtype <U3\)"),
        ([1, 1, 1], [0.2, 0.5, 0.9], r"only one class \(all 1\)"),
        ([0, 0], [0.2, 0.5], r"only one class \(all 0\)"),
        ([], [], r"empty"),
        ([[0, 1]], [[0.2, 0.5]], r"one-dimensional"),
        ([0, 1], ["a", "b"], r"p must be numeric"),
    ],
)
def test_bad_input_raises_value_error(y: list, p: list, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        binary_metrics(y, p, n_bootstrap=0)
    assert isinstance(info.value, InvalidInputError)


def test_bad_bootstrap_settings_raise() -> None:
    with pytest.raises(ValueError, match=r"n_bootstrap must be >= 0 \(got -1\)"):
        binary_metrics(Y4, P4, n_bootstrap=-1)
    with pytest.raises(ValueError, match=r"confidence must lie in \(0, 1\) \(got 1\.5\)"):
        binary_metrics(Y4, P4, confidence=1.5)


# --- subgroup_metrics --------------------------------------------------------------------


def test_subgroups_by_hand() -> None:
    y = [0, 1, 0, 1, 0, 0]
    p = [0.2, 0.7, 0.4, 0.3, 0.1, 0.5]
    out = subgroup_metrics(y, p, {"sex": ["M", "F", "F", "F", "M", "M"], "site": ["a"] * 6})
    assert list(out) == ["sex", "site"]
    assert list(out["sex"]) == ["F", "M"]
    female = out["sex"]["F"]
    # F: y=[1,0,1], p=[0.7,0.4,0.3]: pairs (0.7>0.4, 0.3<0.4) -> AUROC 1/2.
    assert female == {
        "n": 3,
        "positives": 2,
        "auroc": 0.5,
        "auprc": 0.8333,
        "brier": round((0.3**2 + 0.4**2 + 0.7**2) / 3, 4),
        "mean_predicted": round((0.7 + 0.4 + 0.3) / 3, 4),
        "observed_rate": 0.6667,
    }
    assert out["site"]["a"]["auroc"] == binary_metrics(y, p, n_bootstrap=0)["auroc"]


def test_subgroup_with_a_single_class_has_no_auroc() -> None:
    out = subgroup_metrics([0, 1, 0, 0], [0.2, 0.7, 0.1, 0.3], {"sex": ["F", "F", "M", "M"]})
    male = out["sex"]["M"]
    assert male["auroc"] is None and male["auprc"] is None
    assert male["positives"] == 0 and male["observed_rate"] == 0.0
    assert male["brier"] == round((0.1**2 + 0.3**2) / 2, 4)
    assert out["sex"]["F"]["auroc"] == 1.0


def test_subgroup_levels_are_sorted_and_small_levels_suppressed() -> None:
    y, p = bernoulli(60, seed=2)
    bands = ["65+"] * 30 + ["18-44"] * 25 + ["45-64"] * 5
    out = subgroup_metrics(y, p, {"age_band": bands}, min_n=10)
    assert list(out["age_band"]) == ["18-44", "65+"]
    assert json.loads(json.dumps(out)) == out


def test_subgroup_errors() -> None:
    with pytest.raises(ValueError, match=r"groups\['sex'\] has 2 values but y_true has 4"):
        subgroup_metrics(Y4, P4, {"sex": ["F", "M"]})
    with pytest.raises(ValueError, match=r"must hold strings \(found NoneType at position 1\)"):
        subgroup_metrics(Y4, P4, {"race": ["a", None, "b", "b"]})  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"min_n must be >= 1"):
        subgroup_metrics(Y4, P4, {"sex": ["F"] * 4}, min_n=0)
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]"):
        subgroup_metrics(Y4, [0.1, 0.2, 0.3, 2.0], {"sex": ["F"] * 4})


# --- calibration_table -------------------------------------------------------------------


def test_calibration_table_by_hand() -> None:
    y = [0, 0, 1, 0, 1, 1]
    p = [0.1, 0.2, 0.3, 0.6, 0.7, 0.8]
    rows = calibration_table(y, p, bins=2)
    assert rows == [
        {"mean_predicted": 0.2, "observed": round(1 / 3, 4), "n": 3},
        {"mean_predicted": 0.7, "observed": round(2 / 3, 4), "n": 3},
    ]


def test_calibration_table_quantile_bins_are_equal_sized() -> None:
    y, p = bernoulli(1000, seed=9)
    rows = calibration_table(y, p)
    assert [r["n"] for r in rows] == [100] * 10
    assert [r["mean_predicted"] for r in rows] == sorted(r["mean_predicted"] for r in rows)
    assert sum(r["n"] * r["observed"] for r in rows) == pytest.approx(y.sum(), abs=0.01)


def test_calibration_table_drops_bins_emptied_by_ties() -> None:
    rows = calibration_table([0, 1, 0, 1, 1, 0], [0.5, 0.5, 0.5, 0.5, 0.9, 0.1], bins=5)
    assert sum(r["n"] for r in rows) == 6
    assert len(rows) < 5


def test_calibration_table_rejects_bad_bins() -> None:
    with pytest.raises(ValueError, match=r"bins must be >= 1 \(got 0\)"):
        calibration_table(Y4, P4, bins=0)
