"""Golden and property tests of LACE (van Walraven et al., CMAJ 2010, Table 3) and Charlson."""

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
    LaceResult,
    charlson_conditions,
    charlson_index,
    lace,
)
from reasoning.clinical.lace import CHARLSON_ICD10, CHARLSON_WEIGHTS, COMPONENTS

ZERO: dict[str, object] = {
    "length_of_stay_days": 0,
    "acute_admission": False,
    "charlson_index": 0,
    "ed_visits_6m": 0,
}


def with_(**changes: object) -> LaceResult:
    return lace(**{**ZERO, **changes})  # type: ignore[arg-type]


# --- Table 3, attribute by attribute --------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "points"),
    [
        (0, 0), (0.9, 0), (1, 1), (1.5, 1), (2, 2), (3, 3), (3.99, 3), (4, 4), (6, 4),
        (6.5, 4), (7, 5), (13, 5), (13.9, 5), (14, 7), (60, 7), (3650, 7),
    ],
)  # fmt: skip
def test_length_of_stay_rows(days: float, points: int) -> None:
    result = with_(length_of_stay_days=days)
    assert result.components["length_of_stay"] == points
    assert result.total == points


@pytest.mark.parametrize(("acute", "points"), [(False, 0), (True, 3)])
def test_acute_admission(acute: bool, points: int) -> None:
    assert with_(acute_admission=acute).components["acute_admission"] == points


@pytest.mark.parametrize(
    ("cci", "points"), [(0, 0), (1, 1), (2, 2), (3, 3), (4, 5), (5, 5), (12, 5)]
)
def test_charlson_rows(cci: int, points: int) -> None:
    assert with_(charlson_index=cci).components["comorbidity"] == points


@pytest.mark.parametrize(
    ("visits", "points"), [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 4), (30, 4)]
)
def test_ed_visit_rows(visits: int, points: int) -> None:
    assert with_(ed_visits_6m=visits).components["ed_visits"] == points


@pytest.mark.parametrize(
    ("total_changes", "total", "band"),
    [
        ({}, 0, "low"),
        ({"length_of_stay_days": 4}, 4, "low"),
        ({"length_of_stay_days": 2, "acute_admission": True}, 5, "moderate"),
        ({"length_of_stay_days": 6, "acute_admission": True, "charlson_index": 2}, 9, "moderate"),
        ({"length_of_stay_days": 7, "acute_admission": True, "charlson_index": 2}, 10, "high"),
        (
            {"length_of_stay_days": 14, "acute_admission": True, "charlson_index": 4,
             "ed_visits_6m": 4},
            19,
            "high",
        ),
    ],
)  # fmt: skip
def test_totals_and_bands(total_changes: dict[str, object], total: int, band: str) -> None:
    result = with_(**total_changes)
    assert (result.total, result.band) == (total, band)
    assert list(result.components) == list(COMPONENTS)


def test_result_is_frozen_and_hashable() -> None:
    result = with_(length_of_stay_days=3)
    with pytest.raises(AttributeError):
        result.total = 1  # type: ignore[misc]
    assert hash(result) == hash(with_(length_of_stay_days=3))


@pytest.mark.parametrize("parameter", list(ZERO))
@pytest.mark.parametrize("missing_value", [None, math.nan])
def test_missing_raises_incomplete(parameter: str, missing_value: object) -> None:
    with pytest.raises(IncompleteScoreError, match=parameter) as info:
        with_(**{parameter: missing_value})
    assert info.value.missing == (parameter,)
    assert isinstance(info.value, InvalidInputError)


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("length_of_stay_days", -1),
        ("length_of_stay_days", 4000),
        ("length_of_stay_days", "3"),
        ("acute_admission", 1),
        ("acute_admission", "yes"),
        ("charlson_index", -1),
        ("charlson_index", 2.5),
        ("charlson_index", True),
        ("ed_visits_6m", -2),
        ("ed_visits_6m", 1.0),
    ],
)
def test_invalid_values_raise(parameter: str, value: object) -> None:
    with pytest.raises(InvalidScoreInputError, match=parameter) as info:
        with_(**{parameter: value})
    assert info.value.parameter == parameter
    assert isinstance(info.value, ValueError)


# --- Charlson index (Charlson 1987 weights, Quan 2005 ICD-10 codes) -------------------------


@pytest.mark.parametrize(
    ("code", "condition"),
    [
        ("I21.4", "myocardial_infarction"),
        ("I25.2", "myocardial_infarction"),
        ("I50.9", "congestive_heart_failure"),
        ("I42.5", "congestive_heart_failure"),
        ("I70.2", "peripheral_vascular_disease"),
        ("I63.9", "cerebrovascular_disease"),
        ("G45.9", "cerebrovascular_disease"),
        ("F03", "dementia"),
        ("G30.1", "dementia"),
        ("J44.1", "chronic_pulmonary_disease"),
        ("M05.3", "rheumatic_disease"),
        ("K25.0", "peptic_ulcer_disease"),
        ("K70.3", "mild_liver_disease"),
        ("B18.2", "mild_liver_disease"),
        ("E11.9", "diabetes_without_complication"),
        ("E10.2", "diabetes_with_complication"),
        ("G81.1", "hemiplegia_or_paraplegia"),
        ("N18.5", "renal_disease"),
        ("Z99.2", "renal_disease"),
        ("C34.1", "malignancy"),
        ("C91.0", "malignancy"),
        ("K72.1", "moderate_severe_liver_disease"),
        ("I85.0", "moderate_severe_liver_disease"),
        ("C78.7", "metastatic_solid_tumour"),
        ("B20", "aids_hiv"),
    ],
)
def test_charlson_categories(code: str, condition: str) -> None:
    assert charlson_conditions([code]) == (condition,)
    assert charlson_index([code]) == CHARLSON_WEIGHTS[condition]


@pytest.mark.parametrize("code", ["C44.9", "I42.1", "I20.0", "E11", "J18.9", "N10", "Z00.0"])
def test_codes_outside_charlson_or_too_coarse_score_zero(code: str) -> None:
    # C44 (non-melanoma skin) and I42.1 are excluded by Quan 2005; a bare E11 does not say
    # whether diabetes has complications, so it matches neither diabetes category.
    assert charlson_index([code]) == 0
    assert charlson_conditions([code]) == ()


def test_weights_match_charlson_1987() -> None:
    assert set(CHARLSON_WEIGHTS) == set(CHARLSON_ICD10)
    by_weight: dict[int, set[str]] = {}
    for condition, weight in CHARLSON_WEIGHTS.items():
        by_weight.setdefault(weight, set()).add(condition)
    assert by_weight[3] == {"moderate_severe_liver_disease"}
    assert by_weight[6] == {"metastatic_solid_tumour", "aids_hiv"}
    assert by_weight[2] == {
        "diabetes_with_complication", "hemiplegia_or_paraplegia", "renal_disease",
        "malignancy",
    }  # fmt: skip
    assert len(by_weight[1]) == 10


def test_hierarchy_counts_only_the_severe_form() -> None:
    assert charlson_index(["K70.3", "K72.1"]) == 3
    assert charlson_index(["E11.9", "E11.2"]) == 2
    assert charlson_index(["C34.1", "C78.0"]) == 6
    assert charlson_conditions(["C34.1", "C78.0"]) == ("metastatic_solid_tumour",)


def test_normalisation_and_duplicates() -> None:
    assert charlson_index(["i21.4", " I214 ", "I21"]) == 1
    assert charlson_index(["I21.4", "I50.0", "J44.9", "N18.4"]) == 5
    assert charlson_index(iter(["E10.2"])) == 2
    assert charlson_index([]) == 0


def test_every_condition_gives_the_maximum() -> None:
    codes = [prefixes[0] for prefixes in CHARLSON_ICD10.values()]
    assert charlson_index(codes) == 29
    assert len(charlson_conditions(codes)) == len(CHARLSON_ICD10) - 3


@pytest.mark.parametrize("codes", ["I21.4", [21], ["", "I21"], ["not a code"], ["K70.4xx1x"]])
def test_charlson_invalid_input(codes: object) -> None:
    with pytest.raises(InvalidScoreInputError, match="icd10_codes"):
        charlson_index(codes)  # type: ignore[arg-type]


def test_charlson_feeds_lace() -> None:
    cci = charlson_index(["I50.9", "C78.0", "C34.1"])  # 1 + 6
    result = lace(length_of_stay_days=8, acute_admission=True, charlson_index=cci, ed_visits_6m=2)
    assert result.components == {
        "length_of_stay": 5, "acute_admission": 3, "comorbidity": 5, "ed_visits": 2,
    }  # fmt: skip
    assert result.total == 15


def test_docstring_examples() -> None:
    failures, tried = doctest.testmod(importlib.import_module("reasoning.clinical.lace"))
    assert tried > 0
    assert failures == 0


# --- Properties ---------------------------------------------------------------------------


@given(
    st.floats(0, 3650),
    st.booleans(),
    st.integers(0, 40),
    st.integers(0, 100),
)
def test_total_is_sum_within_0_to_19(days: float, acute: bool, cci: int, visits: int) -> None:
    result = lace(
        length_of_stay_days=days, acute_admission=acute, charlson_index=cci, ed_visits_6m=visits
    )
    assert result.total == sum(result.components.values())
    assert 0 <= result.total <= 19
    assert result.band == ("high" if result.total >= 10 else "moderate" if result.total >= 5
                           else "low")  # fmt: skip


@given(st.floats(0, 3650), st.floats(0, 3650))
def test_longer_stay_never_scores_less(a: float, b: float) -> None:
    short, long = sorted((a, b))
    assert with_(length_of_stay_days=long).total >= with_(length_of_stay_days=short).total


@given(st.lists(st.sampled_from([p for ps in CHARLSON_ICD10.values() for p in ps]), max_size=8))
def test_charlson_index_bounded_and_order_free(codes: list[str]) -> None:
    index = charlson_index(codes)
    assert 0 <= index <= 29
    assert index == charlson_index(list(reversed(codes)))
    assert index == sum(CHARLSON_WEIGHTS[c] for c in charlson_conditions(codes))
