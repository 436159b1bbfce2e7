"""Errors raised by the clinical rule scores, and the input checks that raise them.

Both classes join the one HealthOS hierarchy through
:class:`healthos_core.errors.InvalidInputError`, so they are also ``ValueError``
and the API maps them to 422 like any other invalid input.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

from healthos_core.errors import InvalidInputError, InvalidParameterError

__all__ = [
    "IncompleteScoreError",
    "InvalidScoreInputError",
    "check_measurement",
    "is_missing",
]


class IncompleteScoreError(InvalidInputError):
    """A clinical score was asked for without all of its parameters.

    An incomplete NEWS2 (or qSOFA) is not a NEWS2: the score is refused rather
    than computed with missing parameters counted as normal.

    Parameters
    ----------
    score : str
        The score's name, e.g. ``"NEWS2"``.
    missing : iterable of str
        The names of the missing parameters (``None`` or NaN), in signature order.

    Attributes
    ----------
    missing : tuple of str
        The missing parameters.
    """

    code = "score-incomplete"

    def __init__(self, score: str, missing: Iterable[str]) -> None:
        self.missing: tuple[str, ...] = tuple(missing)
        super().__init__(
            f"{score} cannot be computed: missing parameter(s) {', '.join(self.missing)}"
        )


class InvalidScoreInputError(InvalidParameterError):
    """A clinical score parameter has an impossible value or the wrong type.

    See :class:`healthos_core.errors.InvalidParameterError` for the parameters.
    """

    code = "score-input-invalid"


def is_missing(value: object) -> bool:
    """Tell whether a score parameter is missing.

    Parameters
    ----------
    value : object
        A parameter value as passed to a score.

    Returns
    -------
    bool
        ``True`` for ``None`` and for a float NaN (NumPy floats included).
    """
    return value is None or (isinstance(value, float) and math.isnan(value))


def check_measurement(parameter: str, value: object, low: float, high: float, unit: str) -> float:
    """Return a numeric parameter as ``float`` after checking its type and range.

    Parameters
    ----------
    parameter : str
        The parameter's name, used in the error message.
    value : object
        The value; an ``int`` or ``float`` (``bool`` is rejected).
    low, high : float
        The inclusive range of values that can be real in that unit.
    unit : str
        The unit, used in the error message.

    Returns
    -------
    float
        The value as a float.

    Raises
    ------
    InvalidScoreInputError
        If the value is not a real number, is infinite, or lies outside ``[low, high]``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidScoreInputError(parameter, value, f"must be a number in {unit}")
    number = float(value)
    if not low <= number <= high:
        raise InvalidScoreInputError(
            parameter, value, f"must be between {low:g} and {high:g} {unit}"
        )
    return number
