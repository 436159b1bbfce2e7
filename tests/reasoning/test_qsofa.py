"""Golden tests of qSOFA (Seymour et al., JAMA 2016; Sepsis-3)."""

from __future__ import annotations

import doctest
import importlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reasoning.clinical import IncompleteScoreError, InvalidScoreInputError, QsofaResult, qsofa


@pytest.mark.parametrize(("resp_rate", "points"), [(0, 0), (21, 0), (21.5, 0), (22, 1), (40, 1)])
def test_resp_rate_threshold_22(resp_rate: float, points: int) -> None:
    result = qsofa(resp_rate=resp_rate, systolic_bp=120, altered_mentation=False)
    assert result.components["resp_rate"] == points
    assert result.total == points


@pytest.mark.parametrize(("sbp", "points"), [(60, 1), (100, 1), (100.5, 0), (101, 0), (180, 0)])
def test_systolic_threshold_100(sbp: float, points: int) -> None:
    result = qsofa(resp_rate=16, systolic_bp=sbp, altered_mentation=False)
    assert result.components["systolic_bp"] == points
    assert result.total == points


@pytest.mark.parametrize(("altered", "points"), [(False, 0), (True, 1)])
def test_altered_mentation(altered: bool, points: int) -> None:
    result = qsofa(resp_rate=16, systolic_bp=120, altered_mentation=altered)
    assert result.components["altered_mentation"] == points


@pytest.mark.parametrize(
    ("resp_rate", "sbp", "altered", "total", "positive"),
    [
        (16, 120, False, 0, False),
        (22, 120, False, 1, False),
        (22, 100, False, 2, True),
        (16, 100, True, 2, True),
        (30, 85, True, 3, True),
    ],
)
def test_totals_and_positive(
    resp_rate: float, sbp: float, altered: bool, total: int, positive: bool
) -> None:
    result = qsofa(resp_rate=resp_rate, systolic_bp=sbp, altered_mentation=altered)
    assert result == QsofaResult(
        total=total,
        positive=positive,
        components={
            "resp_rate": int(resp_rate >= 22),
            "systolic_bp": int(sbp <= 100),
            "altered_mentation": int(altered),
        },
    )


@pytest.mark.parametrize(
    ("kwargs", "missing"),
    [
        ({"resp_rate": None}, ("resp_rate",)),
        ({"systolic_bp": math.nan}, ("systolic_bp",)),
        ({"altered_mentation": None}, ("altered_mentation",)),
        ({"resp_rate": None, "altered_mentation": None}, ("resp_rate", "altered_mentation")),
    ],
)
def test_missing_raises_incomplete(kwargs: dict[str, object], missing: tuple[str, ...]) -> None:
    args = {"resp_rate": 16, "systolic_bp": 120, "altered_mentation": False, **kwargs}
    with pytest.raises(IncompleteScoreError) as info:
        qsofa(**args)  # type: ignore[arg-type]
    assert info.value.missing == missing
    assert isinstance(info.value, ValueError)
    for name in missing:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("resp_rate", -2),
        ("resp_rate", "22"),
        ("systolic_bp", -1),
        ("systolic_bp", 1000),
        ("altered_mentation", 14),  # a GCS, not a bool
        ("altered_mentation", "yes"),
    ],
)
def test_invalid_values(parameter: str, value: object) -> None:
    args = {"resp_rate": 16, "systolic_bp": 120, "altered_mentation": False, parameter: value}
    with pytest.raises(InvalidScoreInputError, match=parameter) as info:
        qsofa(**args)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert info.value.parameter == parameter


@given(st.floats(0, 150), st.floats(0, 400), st.booleans())
def test_total_is_sum_and_positive_iff_two(rr: float, sbp: float, altered: bool) -> None:
    result = qsofa(resp_rate=rr, systolic_bp=sbp, altered_mentation=altered)
    assert result.total == sum(result.components.values())
    assert 0 <= result.total <= 3
    assert result.positive == (result.total >= 2)


def test_docstring_examples() -> None:
    failures, tried = doctest.testmod(importlib.import_module("reasoning.clinical.qsofa"))
    assert tried > 0
    assert failures == 0
