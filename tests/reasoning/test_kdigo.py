"""Golden and property tests of KDIGO 2012 AKI staging (Kidney Int Suppl 2012, section 2.1)."""

from __future__ import annotations

import doctest
import importlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthos_core.errors import InvalidInputError
from reasoning.clinical import IncompleteScoreError, InvalidScoreInputError, kdigo_aki

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def pair(before: float, latest: float, hours: float = 24) -> list[tuple[datetime, float]]:
    """A baseline value and the latest value ``hours`` later."""
    return [(at(0), before), (at(hours), latest)]


# --- Ratio to baseline (7-day window, here 72 h apart so the 48 h rule cannot apply) -------


@pytest.mark.parametrize(
    ("latest", "stage"),
    [
        (0.6, 0), (1.0, 0), (1.49, 0), (1.5, 1), (1.99, 1), (2.0, 2), (2.99, 2),
        (3.0, 3), (3.9, 3),
    ],
)  # fmt: skip
def test_ratio_rows(latest: float, stage: int) -> None:
    result = kdigo_aki(pair(1.0, latest, hours=72))
    assert result.stage == stage
    assert result.baseline == 1.0
    assert result.ratio == pytest.approx(latest)
    assert result.rise_48h is None
    assert result.aki == (stage > 0)


@pytest.mark.parametrize(
    ("before", "latest", "hours", "stage"),
    [
        (0.38, 0.57, 72, 1), (0.38, 0.56, 72, 0), (0.23, 0.69, 72, 3), (0.23, 0.68, 72, 2),
        (0.9, 1.2, 24, 1), (0.9, 1.19, 24, 0),
    ],
)  # fmt: skip
def test_float_rounding_at_thresholds(
    before: float, latest: float, hours: float, stage: int
) -> None:
    # 0.57 / 0.38, 0.69 / 0.23 and 1.2 - 0.9 fall just below 1.5, 3.0 and 0.3 in binary
    # floating point; a clinician reads them as exactly at the threshold.
    assert kdigo_aki(pair(before, latest, hours=hours)).stage == stage


def test_ratio_counts_within_7_days_only() -> None:
    assert kdigo_aki(pair(1.0, 1.6, hours=168)).stage == 1  # exactly 7 days: in
    with pytest.raises(IncompleteScoreError) as info:
        kdigo_aki(pair(1.0, 1.6, hours=169))  # older than 7 days: no baseline
    assert info.value.missing == ("baseline",)


# --- Absolute rise of 0.3 mg/dL within 48 h ---------------------------------------------------


@pytest.mark.parametrize(
    ("rise", "hours", "stage"),
    [(0.29, 24, 0), (0.3, 24, 1), (0.29, 48, 0), (0.3, 48, 1), (0.3, 49, 0), (0.5, 49, 0)],
)
def test_rise_of_0_3_within_48_hours(rise: float, hours: float, stage: int) -> None:
    # Baseline 2.0: the ratio stays below 1.5, so only the absolute rise can stage.
    result = kdigo_aki(pair(2.0, 2.0 + rise, hours=hours))
    assert result.stage == stage
    assert ("rise_0.3_48h" in result.criteria) == bool(stage)
    if hours <= 48:
        assert result.rise_48h == pytest.approx(rise)
    else:
        assert result.rise_48h is None


def test_rise_uses_lowest_value_in_48_hours() -> None:
    values = [(at(0), 1.4), (at(10), 1.1), (at(30), 1.3), (at(40), 1.45)]
    result = kdigo_aki(values)
    assert result.rise_48h == pytest.approx(0.35)
    assert result.stage == 1
    assert result.evidence == (1, 3)


# --- Stage 3 by SCr >= 4.0 mg/dL, with an acute rise ---------------------------------------


@pytest.mark.parametrize(
    ("before", "latest", "hours", "stage", "scr4"),
    [
        (3.7, 4.0, 24, 3, True),  # rise 0.3 in 48 h, ratio 1.08
        (3.7, 3.99, 24, 0, False),  # rise 0.29
        (3.8, 4.05, 24, 0, False),  # >= 4.0 without an acute rise: not AKI
        (3.8, 4.2, 24, 3, True),
        (3.0, 4.0, 72, 0, False),  # ratio 1.33, no 48 h rise
        (2.6, 4.0, 72, 3, True),  # ratio 1.54
        (4.2, 4.3, 24, 0, False),  # stable chronic kidney disease
    ],
)
def test_creatinine_4_rule(
    before: float, latest: float, hours: float, stage: int, scr4: bool
) -> None:
    result = kdigo_aki(pair(before, latest, hours=hours))
    assert result.stage == stage
    assert ("scr_4.0" in result.criteria) == scr4


# --- Renal replacement therapy ------------------------------------------------------------


def test_rrt_is_stage_3_whatever_the_creatinine() -> None:
    result = kdigo_aki(pair(1.0, 1.1), on_rrt=True)
    assert result.stage == 3
    assert result.criteria == ("rrt",)
    # A single value with no baseline is still stage 3 on RRT.
    alone = kdigo_aki([(at(0), 2.5)], on_rrt=True)
    assert (alone.stage, alone.baseline, alone.ratio) == (3, None, None)


# --- Baseline, ordering, evidence ---------------------------------------------------------


def test_given_baseline_overrides_measured() -> None:
    result = kdigo_aki(pair(1.6, 1.8, hours=72), baseline=0.9)
    assert result.baseline == 0.9
    assert result.ratio == pytest.approx(2.0)
    assert result.stage == 2
    assert result.evidence == (1,)
    # A given baseline lets a single value be staged.
    assert kdigo_aki([(at(0), 3.0)], baseline=1.0).stage == 3


def test_unordered_input_and_evidence_indices() -> None:
    values = [
        (at(100), 2.4),  # latest
        (at(-200), 0.5),  # older than 7 days: ignored
        (at(10), 1.0),  # baseline
        (at(80), 1.9),  # the 48 h minimum
        (at(90), 2.6),  # peak
    ]
    result = kdigo_aki(values)
    assert result.latest == 2.4
    assert result.baseline == 1.0
    assert result.peak == 2.6
    assert result.ratio == pytest.approx(2.4)
    assert result.rise_48h == pytest.approx(0.5)
    assert result.stage == 2
    assert result.criteria == ("rise_0.3_48h", "ratio_1.5", "ratio_2.0")
    assert result.evidence == (0, 2, 3)


def test_falling_creatinine_is_stage_0() -> None:
    result = kdigo_aki(pair(3.0, 1.2))
    assert (result.stage, result.criteria) == (0, ())
    assert result.peak == 3.0


def test_timezones_compare_as_instants() -> None:
    plus2 = timezone(timedelta(hours=2))
    values = [(at(0), 1.0), ((T0 + timedelta(hours=30)).astimezone(plus2), 1.35)]
    result = kdigo_aki(values)
    assert result.rise_48h == pytest.approx(0.35)
    assert result.stage == 1


def test_result_is_frozen_and_hashable() -> None:
    result = kdigo_aki(pair(1.0, 2.0))
    with pytest.raises(AttributeError):
        result.stage = 0  # type: ignore[misc]
    assert hash(result) == hash(kdigo_aki(pair(1.0, 2.0)))


# --- Errors -------------------------------------------------------------------------------


def test_empty_measurements_incomplete() -> None:
    with pytest.raises(IncompleteScoreError) as info:
        kdigo_aki([])
    assert info.value.missing == ("measurements",)
    assert isinstance(info.value, InvalidInputError)


def test_single_value_without_baseline_incomplete() -> None:
    with pytest.raises(IncompleteScoreError, match="baseline"):
        kdigo_aki([(at(0), 5.0)])


@pytest.mark.parametrize(
    ("measurements", "kwargs", "parameter"),
    [
        ([(datetime(2024, 3, 1, 8), 1.0)], {}, "measurements[0]"),  # naive
        ([("2024-03-01T08:00Z", 1.0)], {}, "measurements[0]"),
        ([(T0, 1.0), (at(1), 0.0)], {}, "measurements[1]"),
        ([(T0, 1.0), (at(1), 120.0)], {}, "measurements[1]"),  # µmol/L, not mg/dL
        ([(T0, "1.0")], {}, "measurements[0]"),
        ([(T0, float("nan"))], {}, "measurements[0]"),
        ([(T0,)], {}, "measurements[0]"),
        ([[T0, 1.0]], {}, "measurements[0]"),
        ("1.0", {}, "measurements"),
        ([(T0, 1.0)], {"baseline": -1}, "baseline"),
        ([(T0, 1.0)], {"on_rrt": 1}, "on_rrt"),
    ],
)
def test_invalid_input(measurements: object, kwargs: dict[str, object], parameter: str) -> None:
    with pytest.raises(InvalidScoreInputError) as info:
        kdigo_aki(measurements, **kwargs)  # type: ignore[arg-type]
    assert info.value.parameter == parameter
    assert isinstance(info.value, ValueError)


def test_docstring_examples() -> None:
    failures, tried = doctest.testmod(importlib.import_module("reasoning.clinical.kdigo"))
    assert tried > 0
    assert failures == 0


# --- Properties ---------------------------------------------------------------------------

history = st.lists(
    st.tuples(st.floats(-240, -0.5), st.floats(0.2, 10, allow_nan=False)), min_size=1, max_size=6
)


@given(history, st.floats(0.2, 20), st.floats(0.2, 20), st.booleans())
def test_stage_monotone_in_latest_value(
    earlier: list[tuple[float, float]], a: float, b: float, on_rrt: bool
) -> None:
    low, high = sorted((a, b))
    base = [(at(h), v) for h, v in earlier]
    try:
        s_low = kdigo_aki([*base, (at(0), low)], on_rrt=on_rrt)
    except IncompleteScoreError:
        # Nothing in the 7 days before: no baseline either way.
        with pytest.raises(IncompleteScoreError):
            kdigo_aki([*base, (at(0), high)], on_rrt=on_rrt)
        return
    s_high = kdigo_aki([*base, (at(0), high)], on_rrt=on_rrt)
    assert s_high.stage >= s_low.stage
    assert 0 <= s_low.stage <= 3
    if on_rrt:
        assert s_low.stage == 3


@given(st.floats(0.2, 10), st.floats(0.2, 10), st.floats(0, 168))
def test_stage_matches_ratio_bands(base: float, latest: float, hours: float) -> None:
    result = kdigo_aki(pair(base, latest, hours=hours))
    assert result.ratio is not None
    assert result.baseline == base
    if result.ratio >= 3.0:
        assert result.stage == 3
    elif result.ratio >= 2.0:
        assert result.stage >= 2
    elif result.ratio >= 1.5:
        assert result.stage >= 1
    if result.stage == 0:
        assert result.ratio < 1.5
        assert result.rise_48h is None or result.rise_48h < 0.3
    assert result.evidence == (0, 1)
