"""Golden and property tests of NEWS2 against RCP NEWS2 2017, Chart 1 and Chart 2."""

from __future__ import annotations

import doctest
import importlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthos_core.errors import InvalidInputError
from reasoning.clinical import (
    IncompleteScoreError,
    InvalidScoreInputError,
    News2Result,
    news2,
    news2_partial,
)
from reasoning.clinical.news2 import (
    COMPONENTS,
    PARAMETERS,
    score_air_or_oxygen,
    score_consciousness,
    score_pulse,
    score_resp_rate,
    score_spo2,
    score_systolic_bp,
    score_temperature,
)

# A patient scoring 0 on every row; tests change one parameter at a time.
NORMAL: dict[str, object] = {
    "resp_rate": 16,
    "spo2": 97,
    "on_oxygen": False,
    "systolic_bp": 120,
    "pulse": 70,
    "consciousness": "A",
    "temperature": 37.0,
}


def score_with(**changes: object) -> News2Result:
    return news2(**{**NORMAL, **changes})  # type: ignore[arg-type]


# --- Chart 1, row by row: both sides of every boundary ------------------------------------


@pytest.mark.parametrize(
    ("value", "points"),
    [
        (0, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0),
        (21, 2), (24, 2), (25, 3), (60, 3),
    ],
)  # fmt: skip
def test_resp_rate_rows(value: float, points: int) -> None:
    assert score_resp_rate(value) == points
    assert score_with(resp_rate=value).components["resp_rate"] == points


@pytest.mark.parametrize(
    ("value", "points"),
    [(50, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)],
)
def test_spo2_scale_1_rows(value: float, points: int) -> None:
    assert score_spo2(value) == points
    # Scale 1 ignores the oxygen row for SpO2 itself.
    assert score_spo2(value, on_oxygen=True) == points
    result = score_with(spo2=value)
    assert result.components["spo2"] == points
    assert result.spo2_scale == 1


@pytest.mark.parametrize("on_oxygen", [False, True])
@pytest.mark.parametrize(
    ("value", "points"),
    [(70, 3), (83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0)],
)
def test_spo2_scale_2_rows_below_93_ignore_oxygen(
    value: float, points: int, on_oxygen: bool
) -> None:
    assert score_spo2(value, on_oxygen=on_oxygen, scale=2) == points
    result = score_with(spo2=value, on_oxygen=on_oxygen, spo2_scale=2)
    assert result.components["spo2"] == points
    assert result.spo2_scale == 2


@pytest.mark.parametrize(
    ("value", "on_oxygen", "points"),
    [
        (92, False, 0), (93, False, 0), (95, False, 0), (97, False, 0), (100, False, 0),
        (92, True, 0), (93, True, 1), (94, True, 1), (95, True, 2), (96, True, 2),
        (97, True, 3), (100, True, 3),
    ],
)  # fmt: skip
def test_spo2_scale_2_rows_from_93_depend_on_oxygen(
    value: float, on_oxygen: bool, points: int
) -> None:
    assert score_spo2(value, on_oxygen=on_oxygen, scale=2) == points
    result = score_with(spo2=value, on_oxygen=on_oxygen, spo2_scale=2)
    assert result.components["spo2"] == points
    assert result.components["air_or_oxygen"] == (2 if on_oxygen else 0)


@pytest.mark.parametrize(("on_oxygen", "points"), [(False, 0), (True, 2)])
def test_air_or_oxygen_row(on_oxygen: bool, points: int) -> None:
    assert score_air_or_oxygen(on_oxygen) == points
    result = score_with(on_oxygen=on_oxygen)
    assert result.components["air_or_oxygen"] == points
    assert result.total == points


@pytest.mark.parametrize(
    ("value", "points"),
    [
        (0, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0),
        (219, 0), (220, 3), (260, 3),
    ],
)  # fmt: skip
def test_systolic_bp_rows(value: float, points: int) -> None:
    assert score_systolic_bp(value) == points
    assert score_with(systolic_bp=value).components["systolic_bp"] == points


@pytest.mark.parametrize(
    ("value", "points"),
    [
        (0, 3), (40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1),
        (111, 2), (130, 2), (131, 3), (200, 3),
    ],
)  # fmt: skip
def test_pulse_rows(value: float, points: int) -> None:
    assert score_pulse(value) == points
    assert score_with(pulse=value).components["pulse"] == points


@pytest.mark.parametrize(
    ("value", "points"),
    [
        (30.0, 3), (35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0),
        (38.1, 1), (39.0, 1), (39.1, 2), (42.0, 2),
    ],
)  # fmt: skip
def test_temperature_rows(value: float, points: int) -> None:
    assert score_temperature(value) == points
    assert score_with(temperature=value).components["temperature"] == points


@pytest.mark.parametrize(
    ("level", "points"), [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3), (" v ", 3), ("a", 0)]
)
def test_every_acvpu_level(level: str, points: int) -> None:
    assert score_consciousness(level) == points
    assert score_with(consciousness=level).components["consciousness"] == points


# --- Values between chart rows fall into the next row down the chart ----------------------


@pytest.mark.parametrize(
    ("parameter", "value", "points"),
    [
        ("resp_rate", 8.5, 1),  # between 8 and 9 -> row 9-11
        ("resp_rate", 11.5, 0),  # -> 12-20
        ("resp_rate", 20.5, 2),  # -> 21-24
        ("resp_rate", 24.5, 3),  # -> >= 25
        ("spo2", 91.5, 2),
        ("spo2", 95.5, 0),
        ("systolic_bp", 90.5, 2),
        ("systolic_bp", 110.5, 0),
        ("systolic_bp", 219.5, 3),
        ("pulse", 40.5, 1),
        ("pulse", 90.5, 1),
        ("pulse", 130.5, 3),
        ("temperature", 35.05, 1),
        ("temperature", 36.05, 0),
        ("temperature", 38.05, 1),
        ("temperature", 39.05, 2),
    ],
)
def test_values_between_rows(parameter: str, value: float, points: int) -> None:
    assert score_with(**{parameter: value}).components[parameter] == points


def test_float_noise_at_temperature_boundary_stays_in_row() -> None:
    # 35.0 computed with rounding noise below it is still <= 35.0 ...
    assert score_temperature(0.1 * 350) == 3
    # ... and 36.1 typed in any float form is in 36.1-38.0.
    assert score_temperature(36.1) == 0
    assert score_temperature(36.0 + 0.1) == 0


# --- Bands and Chart 2 responses ---------------------------------------------------------


def test_all_normal_scores_zero_low_twelve_hourly() -> None:
    result = news2(**NORMAL)  # type: ignore[arg-type]
    assert result.total == 0
    assert result.band == "low"
    assert result.components == dict.fromkeys(COMPONENTS, 0)
    assert list(result.components) == list(COMPONENTS)
    assert result.missing == ()
    assert not result.is_partial
    assert "12 hours" in result.clinical_response


def test_total_4_is_low_and_5_is_medium() -> None:
    # RR 21 (2) + pulse 111 (2) = 4
    four = score_with(resp_rate=21, pulse=111)
    assert (four.total, four.band) == (4, "low")
    assert "4-6 hours" in four.clinical_response
    assert "registered nurse" in four.clinical_response.lower()
    # + temperature 38.5 (1) = 5
    five = score_with(resp_rate=21, pulse=111, temperature=38.5)
    assert (five.total, five.band) == (5, "medium")
    assert "urgent" in five.clinical_response.lower()
    assert "hourly" in five.clinical_response


def test_total_6_is_medium_and_7_is_high() -> None:
    six = score_with(resp_rate=21, pulse=111, on_oxygen=True)  # 2 + 2 + 2
    assert (six.total, six.band) == (6, "medium")
    seven = score_with(resp_rate=21, pulse=111, on_oxygen=True, temperature=38.5)
    assert (seven.total, seven.band) == (7, "high")
    assert "emergency" in seven.clinical_response.lower()
    assert "continuous monitoring" in seven.clinical_response.lower()


def test_single_parameter_3_is_low_medium() -> None:
    result = score_with(consciousness="C")
    assert (result.total, result.band) == (3, "low-medium")
    assert "medical team" in result.clinical_response
    assert "hourly" in result.clinical_response


def test_total_3_from_one_plus_one_plus_one_is_low() -> None:
    # RR 10 (1) + pulse 95 (1) + temperature 38.5 (1)
    result = score_with(resp_rate=10, pulse=95, temperature=38.5)
    assert result.total == 3
    assert result.band == "low"
    assert max(result.components.values()) == 1


def test_single_3_with_total_4_is_still_low_medium() -> None:
    result = score_with(systolic_bp=85, pulse=95)  # 3 + 1
    assert (result.total, result.band) == (4, "low-medium")


def test_single_3_does_not_lower_medium_or_high() -> None:
    assert score_with(systolic_bp=85, resp_rate=21).band == "medium"  # 3 + 2
    assert score_with(systolic_bp=85, resp_rate=25, pulse=95).band == "high"  # 3 + 3 + 1


# --- Whole patients, hand-computed --------------------------------------------------------


def points(*values: int) -> dict[str, int]:
    """Chart 1 points in row order: RR, SpO2, air/O2, SBP, pulse, ACVPU, temperature."""
    return dict(zip(COMPONENTS, values, strict=True))


WHOLE_PATIENTS = [
    # (resp_rate, spo2, on_oxygen, systolic_bp, pulse, consciousness, temperature, scale),
    # expected points per row, total, band
    # COPD patient on scale 2, on oxygen at 95 %, mildly tachypnoeic:
    ((22, 95, True, 135, 88, "A", 37.4, 2), points(2, 2, 2, 0, 0, 0, 0), 6, "medium"),
    # Septic-looking patient on scale 1:
    ((26, 92, True, 88, 128, "C", 39.4, 1), points(3, 2, 2, 3, 2, 3, 2), 17, "high"),
    ((18, 94, False, 105, 52, "A", 36.0, 1), points(0, 1, 0, 1, 0, 0, 1), 3, "low"),
    # Scale 2 on air at 99 % scores 0 for SpO2:
    ((12, 99, False, 111, 51, "A", 36.1, 2), points(0, 0, 0, 0, 0, 0, 0), 0, "low"),
    # The maximum: every row at its worst (scale 2, on oxygen, SpO2 >= 97):
    ((30, 99, True, 80, 150, "U", 34.0, 2), points(3, 3, 2, 3, 3, 3, 3), 20, "high"),
]


@pytest.mark.parametrize(("vitals", "components", "total", "band"), WHOLE_PATIENTS)
def test_whole_patients(
    vitals: tuple[object, ...], components: dict[str, int], total: int, band: str
) -> None:
    rr, spo2, on_oxygen, sbp, pulse, consciousness, temperature, scale = vitals
    result = news2(
        resp_rate=rr,
        spo2=spo2,
        on_oxygen=on_oxygen,
        systolic_bp=sbp,
        pulse=pulse,
        consciousness=consciousness,
        temperature=temperature,
        spo2_scale=scale,
    )
    assert result.components == components
    assert result.total == total
    assert result.band == band


def test_result_is_frozen_and_hashable() -> None:
    result = news2(**NORMAL)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        result.total = 5  # type: ignore[misc]
    assert hash(result) == hash(news2(**NORMAL))  # type: ignore[arg-type]
    assert result == news2(**NORMAL)  # type: ignore[arg-type]


# --- Missing and invalid input ------------------------------------------------------------


@pytest.mark.parametrize("parameter", PARAMETERS)
@pytest.mark.parametrize("missing_value", [None, math.nan])
def test_missing_parameter_raises_incomplete(parameter: str, missing_value: object) -> None:
    with pytest.raises(IncompleteScoreError, match=parameter) as info:
        score_with(**{parameter: missing_value})
    assert info.value.missing == (parameter,)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, InvalidInputError)


def test_every_missing_parameter_is_named() -> None:
    with pytest.raises(IncompleteScoreError) as info:
        score_with(spo2=None, temperature=math.nan, consciousness=None)
    assert info.value.missing == ("spo2", "consciousness", "temperature")
    assert "spo2, consciousness, temperature" in str(info.value)


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("resp_rate", -1),
        ("resp_rate", 151),
        ("resp_rate", math.inf),
        ("resp_rate", "20"),
        ("resp_rate", True),
        ("spo2", 100.5),
        ("spo2", -3),
        ("systolic_bp", -10),
        ("systolic_bp", 500),
        ("pulse", -1),
        ("pulse", 401),
        ("temperature", 98.6),  # °F
        ("temperature", 310.0),  # K
        ("temperature", -1.0),
        ("consciousness", "X"),
        ("consciousness", "Alert"),
        ("consciousness", 15),
        ("on_oxygen", "yes"),
        ("on_oxygen", 1),
        ("spo2_scale", 3),
        ("spo2_scale", 0),
        ("spo2_scale", True),
        ("spo2_scale", None),
    ],
)
def test_invalid_values_raise_value_error_naming_parameter(parameter: str, value: object) -> None:
    with pytest.raises(InvalidScoreInputError, match=parameter) as info:
        score_with(**{parameter: value})
    assert isinstance(info.value, ValueError)
    assert info.value.parameter == parameter
    assert repr(value) in str(info.value)


def test_invalid_values_also_rejected_by_partial() -> None:
    with pytest.raises(ValueError, match="spo2"):
        news2_partial(spo2=101)
    with pytest.raises(ValueError, match="consciousness"):
        news2_partial(consciousness="X")


# --- news2_partial: research-only -----------------------------------------------------------


def test_partial_with_nothing_scores_zero_and_lists_all_missing() -> None:
    result = news2_partial()
    assert result.total == 0
    assert result.band == "low"
    assert result.missing == PARAMETERS
    assert result.is_partial


def test_partial_complete_equals_news2() -> None:
    vitals = dict(NORMAL, resp_rate=23, pulse=115, consciousness="P")
    full = news2(**vitals)  # type: ignore[arg-type]
    partial = news2_partial(**vitals)  # type: ignore[arg-type]
    assert partial == full
    assert partial.missing == ()
    assert not partial.is_partial


def test_partial_scores_present_parameters_only() -> None:
    result = news2_partial(resp_rate=26, pulse=120, temperature=math.nan)
    assert result.components == points(3, 0, 0, 0, 2, 0, 0)
    assert result.total == 5
    assert result.band == "medium"
    assert result.missing == (
        "spo2", "on_oxygen", "systolic_bp", "consciousness", "temperature",
    )  # fmt: skip


def test_partial_scale_2_with_unknown_oxygen_scores_high_spo2_as_air() -> None:
    result = news2_partial(spo2=97, spo2_scale=2)
    assert result.components["spo2"] == 0
    assert news2_partial(spo2=84, spo2_scale=2).components["spo2"] == 2


def test_docstring_examples() -> None:
    failures, tried = doctest.testmod(importlib.import_module("reasoning.clinical.news2"))
    assert tried > 0
    assert failures == 0


# --- Properties ---------------------------------------------------------------------------

vitals_strategy = st.fixed_dictionaries(
    {
        "resp_rate": st.floats(0, 150),
        "spo2": st.floats(0, 100),
        "on_oxygen": st.booleans(),
        "systolic_bp": st.floats(0, 400),
        "pulse": st.floats(0, 400),
        "consciousness": st.sampled_from(["A", "C", "V", "P", "U"]),
        "temperature": st.floats(10, 50),
        "spo2_scale": st.sampled_from([1, 2]),
    }
)


def expected_band(total: int, components: dict[str, int]) -> str:
    if total >= 7:
        return "high"
    if total >= 5:
        return "medium"
    return "low-medium" if 3 in components.values() else "low"


@given(vitals_strategy)
def test_total_is_sum_of_components_within_0_to_20(vitals: dict[str, object]) -> None:
    result = news2(**vitals)  # type: ignore[arg-type]
    assert result.total == sum(result.components.values())
    assert 0 <= result.total <= 20
    assert set(result.components) == set(COMPONENTS)
    assert all(points in (0, 1, 2, 3) for points in result.components.values())
    assert result.components["air_or_oxygen"] in (0, 2)
    assert result.band == expected_band(result.total, result.components)
    assert result.clinical_response


@given(vitals_strategy, st.sets(st.sampled_from(PARAMETERS)))
def test_partial_never_exceeds_complete(vitals: dict[str, object], drop: set[str]) -> None:
    full = news2(**vitals)  # type: ignore[arg-type]
    partial = news2_partial(**{k: (None if k in drop else v) for k, v in vitals.items()})  # type: ignore[arg-type]
    assert partial.total == sum(partial.components.values())
    assert partial.total <= full.total
    assert set(partial.missing) == drop
    assert partial.band == expected_band(partial.total, partial.components)


@given(st.floats(0, 150), st.floats(0, 150))
def test_resp_rate_points_are_monotone_away_from_normal(a: float, b: float) -> None:
    low, high = sorted((a, b))
    if high <= 20:  # below normal: faster is never worse
        assert score_resp_rate(high) <= score_resp_rate(low)
    if low > 11:  # above normal: faster is never better
        assert score_resp_rate(high) >= score_resp_rate(low)
