"""Systemic inflammatory response syndrome (SIRS) criteria, ACCP/SCCM 1992.

Source: Bone RC, Balk RA, Cerra FB, et al. Definitions for sepsis and organ failure and
guidelines for the use of innovative therapies in sepsis. The ACCP/SCCM Consensus
Conference Committee. *Chest* 1992;101(6):1644-1655.

SIRS is two or more of:

* temperature > 38 °C or < 36 °C;
* heart rate > 90 beats/min;
* respiratory rate > 20 breaths/min or PaCO2 < 32 mmHg;
* white blood cell count > 12 × 10^3/µL or < 4 × 10^3/µL, or > 10 % immature (band)
  forms.

The thresholds are strict and applied literally to the values given: 38.0 °C, 36.0 °C,
HR 90, RR 20, PaCO2 32 mmHg, WBC 12 and 4 × 10^3/µL and 10 % bands do **not** meet a
criterion. The respiratory and white-cell criteria each have two measurements; a criterion
is met when either measurement given meets it, and it is refused as missing only when
both of its measurements are missing. SIRS positive is a prompt to look for infection or
another cause, not a diagnosis (Sepsis-3 no longer uses SIRS to define sepsis).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from reasoning.clinical.errors import IncompleteScoreError, check_measurement, is_missing

__all__ = ["CRITERIA", "PARAMETERS", "SirsResult", "sirs"]

#: Input parameter names of :func:`sirs`, in signature order.
PARAMETERS: Final = ("temperature", "heart_rate", "resp_rate", "paco2", "wbc", "bands_percent")

#: Criterion names of :attr:`SirsResult.components`, in Bone et al. order.
CRITERIA: Final = ("temperature", "heart_rate", "respiratory", "white_cells")

# Hard limits that reject impossible values (a unit or entry error), not plausibility.
_LIMITS: Final = {
    "temperature": (10.0, 50.0, "°C"),
    "heart_rate": (0.0, 400.0, "beats/min"),
    "resp_rate": (0.0, 150.0, "breaths/min"),
    "paco2": (0.0, 250.0, "mmHg"),
    "wbc": (0.0, 1000.0, "× 10^3/µL"),
    "bands_percent": (0.0, 100.0, "%"),
}


@dataclass(frozen=True, slots=True)
class SirsResult:
    """The SIRS criteria (Bone et al., Chest 1992; ACCP/SCCM consensus).

    Parameters
    ----------
    count : int
        Number of criteria met, 0-4.
    met : bool
        SIRS positive: ``count >= 2``.
    components : dict of str to int
        1 if the criterion is met, else 0, keyed by :data:`CRITERIA`:
        ``"temperature"``, ``"heart_rate"``, ``"respiratory"``, ``"white_cells"``.

    Attributes
    ----------
    total : int
        The same as ``count``, for uniformity with the other scores.
    """

    count: int
    met: bool
    components: dict[str, int] = field(hash=False)

    @property
    def total(self) -> int:
        """The number of criteria met (same as ``count``).

        Returns
        -------
        int
            0-4.
        """
        return self.count


def _value(parameter: str, value: object) -> float | None:
    if is_missing(value):
        return None
    low, high, unit = _LIMITS[parameter]
    return check_measurement(parameter, value, low, high, unit)


def sirs(
    *,
    temperature: float,
    heart_rate: float,
    resp_rate: float | None = None,
    paco2: float | None = None,
    wbc: float | None = None,
    bands_percent: float | None = None,
) -> SirsResult:
    """Apply the SIRS criteria (Bone et al., Chest 1992;101:1644-55).

    Parameters
    ----------
    temperature : float
        Body temperature in °C (10-50); met when > 38 or < 36.
    heart_rate : float
        Heart rate in beats/min (0-400); met when > 90.
    resp_rate : float or None, default=None
        Respiratory rate in breaths/min (0-150); met when > 20.
    paco2 : float or None, default=None
        Arterial PaCO2 in mmHg (0-250); met when < 32.
    wbc : float or None, default=None
        White blood cell count in 10^3/µL (= 10^9/L, 0-1000); met when > 12 or < 4.
    bands_percent : float or None, default=None
        Immature (band) neutrophils in % of white cells (0-100); met when > 10.

    Returns
    -------
    SirsResult
        The number of criteria met, whether SIRS is present (>= 2) and each criterion.

    Raises
    ------
    IncompleteScoreError
        If ``temperature`` or ``heart_rate`` is missing, or both ``resp_rate`` and
        ``paco2``, or both ``wbc`` and ``bands_percent`` (``None`` or NaN). The error
        names every missing parameter.
    InvalidScoreInputError
        If a value given has the wrong type or is impossible (a ``ValueError``).

    Examples
    --------
    >>> r = sirs(temperature=38.4, heart_rate=104, resp_rate=18, wbc=9.1)
    >>> r.count, r.met
    (2, True)
    >>> sirs(temperature=38.0, heart_rate=90, resp_rate=20, wbc=12.0).count
    0
    """
    inputs = (temperature, heart_rate, resp_rate, paco2, wbc, bands_percent)
    missing = [
        name
        for name, value in (("temperature", temperature), ("heart_rate", heart_rate))
        if is_missing(value)
    ]
    if is_missing(resp_rate) and is_missing(paco2):
        missing += ["resp_rate", "paco2"]
    if is_missing(wbc) and is_missing(bands_percent):
        missing += ["wbc", "bands_percent"]
    if missing:
        raise IncompleteScoreError("SIRS", missing)
    values = {name: _value(name, value) for name, value in zip(PARAMETERS, inputs, strict=True)}
    t, hr, rr, pco2, white, bands = (values[name] for name in PARAMETERS)
    assert t is not None and hr is not None  # noqa: S101 -- checked above
    components = {
        "temperature": int(t > 38.0 or t < 36.0),
        "heart_rate": int(hr > 90.0),
        "respiratory": int((rr is not None and rr > 20.0) or (pco2 is not None and pco2 < 32.0)),
        "white_cells": int(
            (white is not None and (white > 12.0 or white < 4.0))
            or (bands is not None and bands > 10.0)
        ),
    }
    count = sum(components.values())
    return SirsResult(count=count, met=count >= 2, components=components)
