"""Quick SOFA (qSOFA), as defined for Sepsis-3.

Sources: Seymour CW et al. Assessment of clinical criteria for sepsis. *JAMA*
2016;315(8):762-774. Singer M et al. The Third International Consensus Definitions for
Sepsis and Septic Shock (Sepsis-3). *JAMA* 2016;315(8):801-810.

One point each for respiratory rate >= 22/min, systolic blood pressure <= 100 mmHg and
altered mentation (Glasgow Coma Scale < 15). A score of 2 or more is "qSOFA positive":
a prompt to consider sepsis and organ dysfunction, not a diagnosis.

The thresholds are applied literally to the values given: RR 21.5 does not meet ">= 22"
and SBP 100.5 mmHg does not meet "<= 100".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from reasoning.clinical.errors import (
    IncompleteScoreError,
    InvalidScoreInputError,
    check_measurement,
    is_missing,
)

__all__ = ["QsofaResult", "qsofa"]

#: Input parameter names of :func:`qsofa`, which are also the component names.
PARAMETERS: Final = ("resp_rate", "systolic_bp", "altered_mentation")


@dataclass(frozen=True, slots=True)
class QsofaResult:
    """A qSOFA score (Seymour et al., JAMA 2016; Sepsis-3).

    Parameters
    ----------
    total : int
        0-3.
    positive : bool
        ``True`` when ``total >= 2``.
    components : dict of str to int
        Points (0 or 1) per criterion: ``"resp_rate"``, ``"systolic_bp"``,
        ``"altered_mentation"``.
    """

    total: int
    positive: bool
    components: dict[str, int] = field(hash=False)


def qsofa(*, resp_rate: float, systolic_bp: float, altered_mentation: bool) -> QsofaResult:
    """Compute qSOFA (Seymour et al., JAMA 2016; Singer et al., Sepsis-3, JAMA 2016).

    Parameters
    ----------
    resp_rate : float
        Respiratory rate in breaths/min (0-150); >= 22 scores 1.
    systolic_bp : float
        Systolic blood pressure in mmHg (0-400); <= 100 scores 1.
    altered_mentation : bool
        ``True`` for altered mentation (Glasgow Coma Scale < 15); scores 1.

    Returns
    -------
    QsofaResult
        The total (0-3), ``positive`` (total >= 2) and the point per criterion.

    Raises
    ------
    IncompleteScoreError
        If any parameter is ``None`` or NaN; the error names every missing parameter.
    InvalidScoreInputError
        If a parameter has the wrong type or an impossible value (a ``ValueError``).

    Examples
    --------
    >>> r = qsofa(resp_rate=24, systolic_bp=98, altered_mentation=False)
    >>> r.total, r.positive
    (2, True)
    >>> qsofa(resp_rate=21, systolic_bp=101, altered_mentation=True).positive
    False
    """
    inputs = (resp_rate, systolic_bp, altered_mentation)
    missing = tuple(
        name for name, value in zip(PARAMETERS, inputs, strict=True) if is_missing(value)
    )
    if missing:
        raise IncompleteScoreError("qSOFA", missing)
    rr = check_measurement("resp_rate", resp_rate, 0.0, 150.0, "breaths/min")
    sbp = check_measurement("systolic_bp", systolic_bp, 0.0, 400.0, "mmHg")
    if not isinstance(altered_mentation, bool):
        raise InvalidScoreInputError(
            "altered_mentation", altered_mentation, "must be True (GCS < 15) or False"
        )
    components = {
        "resp_rate": int(rr >= 22),
        "systolic_bp": int(sbp <= 100),
        "altered_mentation": int(altered_mentation),
    }
    total = sum(components.values())
    return QsofaResult(total=total, positive=total >= 2, components=components)
