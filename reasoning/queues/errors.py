"""The error raised by the queue model on bad input, and the checks that raise it.

:class:`QueueInputError` joins the one HealthOS hierarchy through
:class:`healthos_core.errors.InvalidInputError`, so it is also a ``ValueError`` and the API
maps it to 422 like any other invalid input.
"""

from __future__ import annotations

import math
import numbers

from healthos_core.errors import InvalidParameterError

__all__ = [
    "QueueInputError",
    "check_count",
    "check_nonnegative",
    "check_positive",
    "check_share",
]


class QueueInputError(InvalidParameterError):
    """An argument of the queue model has an impossible value or the wrong type.

    See :class:`healthos_core.errors.InvalidParameterError` for the parameters.
    """

    code = "queue-input-invalid"


def _real(parameter: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise QueueInputError(parameter, value, "must be a real number")
    number = float(value)
    if not math.isfinite(number):
        raise QueueInputError(parameter, value, "must be finite")
    return number


def check_nonnegative(parameter: str, value: object) -> float:
    """Return ``value`` as a float after checking it is a finite number ``>= 0``.

    Raises
    ------
    QueueInputError
        If the value is not a real number (``bool`` is rejected), is NaN or infinite, or is
        negative.
    """
    number = _real(parameter, value)
    if number < 0:
        raise QueueInputError(parameter, value, "must be >= 0")
    return number


def check_positive(parameter: str, value: object) -> float:
    """Return ``value`` as a float after checking it is a finite number ``> 0``.

    Raises
    ------
    QueueInputError
        If the value is not a real number, is not finite, or is ``<= 0``.
    """
    number = _real(parameter, value)
    if number <= 0:
        raise QueueInputError(parameter, value, "must be > 0")
    return number


def check_count(parameter: str, value: object, *, minimum: int = 1) -> int:
    """Return ``value`` as an int after checking it is an integer ``>= minimum``.

    Floats are refused even when whole (``3.0``): a number of servers is a count.

    Raises
    ------
    QueueInputError
        If the value is not an integer (``bool`` is rejected) or is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise QueueInputError(parameter, value, "must be an integer")
    count = int(value)
    if count < minimum:
        raise QueueInputError(parameter, value, f"must be >= {minimum}")
    return count


def check_share(parameter: str, value: object) -> float:
    """Return ``value`` as a float after checking it lies strictly between 0 and 1.

    Raises
    ------
    QueueInputError
        If the value is not a real number or is not in the open interval ``(0, 1)``.
    """
    number = _real(parameter, value)
    if not 0 < number < 1:
        raise QueueInputError(parameter, value, "must be strictly between 0 and 1")
    return number
