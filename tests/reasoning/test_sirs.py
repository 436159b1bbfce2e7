"""Golden and property tests of the SIRS criteria (Bone et al., Chest 1992; ACCP/SCCM)."""

from __future__ import annotations

import doctest
import importlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthos_core.errors import InvalidInputError
from reasoning.clinical import IncompleteScoreError, InvalidScoreInputError, SirsResult, sirs
from reasoning.clinical.sirs import CRITERIA

# Meets no criterion; tests change one value at a time.
NORMAL: dict[str, object] = {
    "temperature": 37.0,
    "heart_rate": 70,
    "resp_rate": 14,
    "paco2": 40,
    "wbc": 8.0,
    "bands_percent": 2,
}


def with_(**changes: object) -> SirsResult:
    return sirs(**{**NORMAL, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "met"),
    [(34.0, 1), (35.9, 1), (36.0, 0), (37.0, 0), (38.0, 0), (38.1, 1), (40.5, 1)],
)
def test_temperature_above_38_or_below_36(value: float, met: int) -> None:
    result = with_(temperature=value)
    assert result.components["temperature"] == met
    assert result.count == met


@pytest.mark.parametrize(("value", "met"), [(40, 0), (90, 0), (90.5, 1), (91, 1), (150, 1)])
def test_heart_rate_above_90(value: float, met: int) -> None:
    assert with_(heart_rate=value).components["heart_rate"] == met


@pytest.mark.parametrize(("value", "met"), [(8, 0), (20, 0), (20.5, 1), (21, 1)])
def test_resp_rate_above_20(value: float, met: int) -> None:
    assert with_(resp_rate=value).components["respiratory"] == met
    assert with_(resp_rate=value, paco2=None).components["respiratory"] == met


@pytest.mark.parametrize(("value", "met"), [(45, 0), (32, 0), (31.9, 1), (25, 1)])
def test_paco2_below_32(value: float, met: int) -> None:
    assert with_(paco2=value).components["respiratory"] == met
    assert with_(paco2=value, resp_rate=None).components["respiratory"] == met


@pytest.mark.parametrize(
    ("value", "met"), [(2.0, 1), (3.9, 1), (4.0, 0), (8.0, 0), (12.0, 0), (12.1, 1), (30, 1)]
)
def test_wbc_above_12_or_below_4(value: float, met: int) -> None:
    assert with_(wbc=value).components["white_cells"] == met
    assert with_(wbc=value, bands_percent=None).components["white_cells"] == met


@pytest.mark.parametrize(("value", "met"), [(0, 0), (10, 0), (10.1, 1), (25, 1)])
def test_bands_above_10_percent(value: float, met: int) -> None:
    assert with_(bands_percent=value).components["white_cells"] == met
    assert with_(bands_percent=value, wbc=None).components["white_cells"] == met


def test_either_measurement_meets_its_criterion() -> None:
    assert with_(resp_rate=14, paco2=30).components["respiratory"] == 1
    assert with_(resp_rate=24, paco2=40).components["respiratory"] == 1
    assert with_(wbc=8.0, bands_percent=15).components["white_cells"] == 1
    assert with_(wbc=13.0, bands_percent=2).components["white_cells"] == 1
    # Both abnormal still count once.
    assert with_(resp_rate=24, paco2=30).count == 1


@pytest.mark.parametrize(
    ("changes", "count", "met"),
    [
        ({}, 0, False),
        ({"temperature": 38.5}, 1, False),
        ({"temperature": 38.5, "heart_rate": 95}, 2, True),
        ({"temperature": 35.5, "heart_rate": 95, "resp_rate": 22}, 3, True),
        ({"temperature": 39.0, "heart_rate": 120, "paco2": 28, "bands_percent": 12}, 4, True),
        ({"heart_rate": 91, "wbc": 3.9}, 2, True),
    ],
)
def test_positive_from_two_criteria(changes: dict[str, object], count: int, met: bool) -> None:
    result = with_(**changes)
    assert (result.count, result.total, result.met) == (count, count, met)
    assert list(result.components) == list(CRITERIA)


def test_optional_parameters_may_be_omitted() -> None:
    result = sirs(temperature=38.2, heart_rate=100, resp_rate=22, wbc=15)
    assert result.count == 4
    assert result.met


def test_result_is_frozen_and_hashable() -> None:
    result = with_()
    with pytest.raises(AttributeError):
        result.count = 3  # type: ignore[misc]
    assert hash(result) == hash(with_())


@pytest.mark.parametrize(
    ("changes", "missing"),
    [
        ({"temperature": None}, ("temperature",)),
        ({"heart_rate": math.nan}, ("heart_rate",)),
        ({"resp_rate": None, "paco2": None}, ("resp_rate", "paco2")),
        ({"resp_rate": math.nan, "paco2": None}, ("resp_rate", "paco2")),
        ({"wbc": None, "bands_percent": math.nan}, ("wbc", "bands_percent")),
        (
            {"temperature": None, "resp_rate": None, "paco2": None, "wbc": None,
             "bands_percent": None},
            ("temperature", "resp_rate", "paco2", "wbc", "bands_percent"),
        ),
    ],
)  # fmt: skip
def test_missing_criteria_raise_incomplete(
    changes: dict[str, object], missing: tuple[str, ...]
) -> None:
    with pytest.raises(IncompleteScoreError) as info:
        with_(**changes)
    assert info.value.missing == missing
    assert isinstance(info.value, InvalidInputError)


def test_respiratory_and_white_cells_required_by_default() -> None:
    with pytest.raises(IncompleteScoreError) as info:
        sirs(temperature=37.0, heart_rate=80)
    assert info.value.missing == ("resp_rate", "paco2", "wbc", "bands_percent")


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("temperature", 100.4),  # °F
        ("temperature", "38"),
        ("heart_rate", -1),
        ("heart_rate", True),
        ("resp_rate", 151),
        ("paco2", -2),
        ("wbc", 12000),  # cells/µL, not 10^3/µL
        ("wbc", math.inf),
        ("bands_percent", 101),
    ],
)
def test_invalid_values_raise(parameter: str, value: object) -> None:
    with pytest.raises(InvalidScoreInputError, match=parameter) as info:
        with_(**{parameter: value})
    assert info.value.parameter == parameter
    assert isinstance(info.value, ValueError)


def test_docstring_examples() -> None:
    failures, tried = doctest.testmod(importlib.import_module("reasoning.clinical.sirs"))
    assert tried > 0
    assert failures == 0


optional = st.none() | st.floats(0, 100)


@given(
    st.floats(10, 50),
    st.floats(0, 400),
    st.floats(0, 150) | st.none(),
    st.floats(0, 250) | st.none(),
    st.floats(0, 1000) | st.none(),
    optional,
)
def test_count_is_sum_and_met_iff_two(
    t: float,
    hr: float,
    rr: float | None,
    pco2: float | None,
    wbc: float | None,
    bands: float | None,
) -> None:
    if (rr is None and pco2 is None) or (wbc is None and bands is None):
        with pytest.raises(IncompleteScoreError):
            sirs(temperature=t, heart_rate=hr, resp_rate=rr, paco2=pco2, wbc=wbc,
                 bands_percent=bands)  # fmt: skip
        return
    result = sirs(
        temperature=t, heart_rate=hr, resp_rate=rr, paco2=pco2, wbc=wbc, bands_percent=bands
    )
    assert result.count == sum(result.components.values())
    assert 0 <= result.count <= 4
    assert set(result.components.values()) <= {0, 1}
    assert result.met == (result.count >= 2)
    assert result.components["temperature"] == int(t > 38 or t < 36)
    assert result.components["heart_rate"] == int(hr > 90)
