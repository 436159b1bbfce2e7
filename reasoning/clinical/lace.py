"""LACE index for early death or unplanned readmission after discharge, and the Charlson index.

Sources
-------
* van Walraven C, Dhalla IA, Bell C, et al. Derivation and validation of an index to
  predict early death or unplanned readmission after discharge from hospital to the
  community. *CMAJ* 2010;182(6):551-557. Table 3 (the LACE index points):

  ======================================================  ======
  Attribute                                               Points
  ======================================================  ======
  **L** length of stay, days: < 1 / 1 / 2 / 3             0 / 1 / 2 / 3
  4-6 / 7-13 / >= 14                                      4 / 5 / 7
  **A** acute (emergent) admission                        3
  **C** Charlson comorbidity index: 0 / 1 / 2 / 3 / >= 4  0 / 1 / 2 / 3 / 5
  **E** ED visits in the previous 6 months: 0-3 / >= 4    visits / 4
  ======================================================  ======

  The total is 0-19.
* Charlson ME, Pompei P, Ales KL, MacKenzie CR. A new method of classifying prognostic
  comorbidity in longitudinal studies: development and validation. *J Chronic Dis*
  1987;40(5):373-383 -- the condition weights (1, 2, 3 or 6).
* Quan H, Sundararajan V, Halfon P, et al. Coding algorithms for defining comorbidities in
  ICD-9-CM and ICD-10 administrative data. *Med Care* 2005;43(11):1130-1139, Table 1 --
  the ICD-10 codes of each Charlson condition (:data:`CHARLSON_ICD10`).

Decisions
---------
* Length of stay counts completed days: a fractional stay is floored (0.9 days is "< 1",
  6.5 days is "4-6", 13.9 days is "7-13").
* Risk bands are a **HealthOS convention**, not part of van Walraven et al. (who reported
  the risk per score, not bands): 0-4 "low", 5-9 "moderate", >= 10 "high". The >= 10
  "high risk" cut-off is the one most used in the literature that followed.
* :func:`charlson_index` uses the Charlson 1987 weights with the usual hierarchy: a patient
  with both forms of a condition counts only the more severe one (mild vs moderate/severe
  liver disease; diabetes without vs with chronic complications; any malignancy vs
  metastatic solid tumour). Codes match :data:`CHARLSON_ICD10` by prefix after upper-casing
  and removing the dot, so ``"I21.4"``, ``"i214"`` and ``"I21"`` are all myocardial
  infarction. Codes that are not ICD-10 (e.g. ICD-9 or SNOMED) must be mapped first.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from reasoning.clinical.errors import (
    IncompleteScoreError,
    InvalidScoreInputError,
    check_measurement,
    is_missing,
)

__all__ = [
    "CHARLSON_ICD10",
    "CHARLSON_WEIGHTS",
    "COMPONENTS",
    "LaceResult",
    "charlson_conditions",
    "charlson_index",
    "lace",
]

LaceBand = Literal["low", "moderate", "high"]

#: Component names of :attr:`LaceResult.components`.
COMPONENTS: Final = ("length_of_stay", "acute_admission", "comorbidity", "ed_visits")


def _span(first: str, last: str) -> tuple[str, ...]:
    """Expand a code range such as ``("I60", "I69")`` or ``("K700", "K703")``."""
    i = next(i for i, (a, b) in enumerate(zip(first, last, strict=True)) if a != b)
    width = len(first) - i
    return tuple(f"{first[:i]}{n:0{width}d}" for n in range(int(first[i:]), int(last[i:]) + 1))


def _diabetes(fourth: str) -> tuple[str, ...]:
    return tuple(f"E1{n}{d}" for n in range(4) for d in fourth)


#: Charlson condition -> ICD-10 code prefixes (Quan et al. 2005, Table 1), without dots.
CHARLSON_ICD10: Final[dict[str, tuple[str, ...]]] = {
    "myocardial_infarction": ("I21", "I22", "I252"),
    "congestive_heart_failure": (
        "I099", "I110", "I130", "I132", "I255", "I420", *_span("I425", "I429"), "I43",
        "I50", "P290",
    ),
    "peripheral_vascular_disease": (
        "I70", "I71", "I731", "I738", "I739", "I771", "I790", "I792", "K551", "K558",
        "K559", "Z958", "Z959",
    ),
    "cerebrovascular_disease": ("G45", "G46", "H340", *_span("I60", "I69")),
    "dementia": (*_span("F00", "F03"), "F051", "G30", "G311"),
    "chronic_pulmonary_disease": (
        "I278", "I279", *_span("J40", "J47"), *_span("J60", "J67"), "J684", "J701", "J703",
    ),
    "rheumatic_disease": ("M05", "M06", "M315", *_span("M32", "M34"), "M351", "M353", "M360"),
    "peptic_ulcer_disease": _span("K25", "K28"),
    "mild_liver_disease": (
        "B18", *_span("K700", "K703"), "K709", *_span("K713", "K715"), "K717", "K73", "K74",
        "K760", *_span("K762", "K764"), "K768", "K769", "Z944",
    ),
    "diabetes_without_complication": _diabetes("01689"),
    "diabetes_with_complication": _diabetes("23457"),
    "hemiplegia_or_paraplegia": (
        "G041", "G114", "G801", "G802", "G81", "G82", *_span("G830", "G834"), "G839",
    ),
    "renal_disease": (
        "I120", "I131", *_span("N032", "N037"), *_span("N052", "N057"), "N18", "N19",
        "N250", *_span("Z490", "Z492"), "Z940", "Z992",
    ),
    "malignancy": (
        *_span("C00", "C26"), *_span("C30", "C34"), *_span("C37", "C41"), "C43",
        *_span("C45", "C58"), *_span("C60", "C76"), *_span("C81", "C85"), "C88",
        *_span("C90", "C97"),
    ),
    "moderate_severe_liver_disease": (
        "I850", "I859", "I864", "I982", "K704", "K711", "K721", "K729", "K765", "K766",
        "K767",
    ),
    "metastatic_solid_tumour": _span("C77", "C80"),
    "aids_hiv": ("B20", "B21", "B22", "B24"),
}  # fmt: skip

#: Charlson condition -> weight (Charlson et al. 1987).
CHARLSON_WEIGHTS: Final[dict[str, int]] = {
    "myocardial_infarction": 1,
    "congestive_heart_failure": 1,
    "peripheral_vascular_disease": 1,
    "cerebrovascular_disease": 1,
    "dementia": 1,
    "chronic_pulmonary_disease": 1,
    "rheumatic_disease": 1,
    "peptic_ulcer_disease": 1,
    "mild_liver_disease": 1,
    "diabetes_without_complication": 1,
    "diabetes_with_complication": 2,
    "hemiplegia_or_paraplegia": 2,
    "renal_disease": 2,
    "malignancy": 2,
    "moderate_severe_liver_disease": 3,
    "metastatic_solid_tumour": 6,
    "aids_hiv": 6,
}

# The milder condition is not counted when the more severe one is present.
_SUPERSEDED_BY: Final = {
    "mild_liver_disease": "moderate_severe_liver_disease",
    "diabetes_without_complication": "diabetes_with_complication",
    "malignancy": "metastatic_solid_tumour",
}

_ICD10: Final = re.compile(r"[A-Z][0-9][0-9A-Z][0-9A-Z]{0,4}")


def _normalise(code: object) -> str:
    if not isinstance(code, str):
        raise InvalidScoreInputError("icd10_codes", code, "each code must be a string")
    text = code.strip().upper().replace(".", "")
    if not _ICD10.fullmatch(text):
        raise InvalidScoreInputError("icd10_codes", code, "is not an ICD-10 code")
    return text


def charlson_conditions(icd10_codes: Iterable[str]) -> tuple[str, ...]:
    """Name the Charlson conditions present in a list of ICD-10 codes (Quan et al. 2005).

    Parameters
    ----------
    icd10_codes : iterable of str
        ICD-10 (or ICD-10-CM/-CA) diagnosis codes, with or without the dot, any case.

    Returns
    -------
    tuple of str
        Condition names (keys of :data:`CHARLSON_WEIGHTS`) in table order, after the
        hierarchy rule (the milder form is dropped when the severe form is present).

    Raises
    ------
    InvalidScoreInputError
        If ``icd10_codes`` is a single string, or a code is not a string shaped like
        an ICD-10 code.

    Examples
    --------
    >>> charlson_conditions(["I21.4", "E11.9", "E11.2"])
    ('myocardial_infarction', 'diabetes_with_complication')
    """
    if isinstance(icd10_codes, str):
        raise InvalidScoreInputError("icd10_codes", icd10_codes, "must be a list of codes")
    codes = [_normalise(code) for code in icd10_codes]
    found = {
        condition
        for condition, prefixes in CHARLSON_ICD10.items()
        if any(code.startswith(prefixes) for code in codes)
    }
    return tuple(
        condition
        for condition in CHARLSON_ICD10
        if condition in found and _SUPERSEDED_BY.get(condition) not in found
    )


def charlson_index(icd10_codes: Iterable[str]) -> int:
    """Compute the Charlson comorbidity index from ICD-10 codes.

    Charlson et al. 1987 weights; ICD-10 coding algorithm of Quan et al. 2005, Table 1.

    Parameters
    ----------
    icd10_codes : iterable of str
        ICD-10 diagnosis codes, with or without the dot, any case. Duplicates and codes
        outside every Charlson condition are ignored.

    Returns
    -------
    int
        The sum of the weights of the conditions present (0-29).

    Raises
    ------
    InvalidScoreInputError
        If ``icd10_codes`` is a single string, or a code is not an ICD-10-shaped string.

    Examples
    --------
    >>> charlson_index(["I50.0", "C78.0", "C34.1"])
    7
    >>> charlson_index([])
    0
    """
    return sum(CHARLSON_WEIGHTS[c] for c in charlson_conditions(icd10_codes))


@dataclass(frozen=True, slots=True)
class LaceResult:
    """A LACE index (van Walraven et al., CMAJ 2010, Table 3).

    Parameters
    ----------
    total : int
        0-19.
    components : dict of str to int
        Points keyed by :data:`COMPONENTS`: ``"length_of_stay"`` (0-7),
        ``"acute_admission"`` (0 or 3), ``"comorbidity"`` (0-5), ``"ed_visits"`` (0-4).
    band : {"low", "moderate", "high"}
        HealthOS convention: 0-4 low, 5-9 moderate, >= 10 high.
    """

    total: int
    components: dict[str, int] = field(hash=False)
    band: LaceBand


def _count(parameter: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InvalidScoreInputError(parameter, value, "must be a whole number >= 0")
    return int(value)


def _los_points(days: float) -> int:
    whole = math.floor(days)
    if whole <= 3:
        return whole
    if whole <= 6:
        return 4
    if whole <= 13:
        return 5
    return 7


def _band(total: int) -> LaceBand:
    if total >= 10:
        return "high"
    if total >= 5:
        return "moderate"
    return "low"


def lace(
    *,
    length_of_stay_days: float,
    acute_admission: bool,
    charlson_index: int,
    ed_visits_6m: int,
) -> LaceResult:
    """Compute the LACE index (van Walraven et al., CMAJ 2010;182(6):551-7, Table 3).

    Parameters
    ----------
    length_of_stay_days : float
        Length of the index stay in days (0-3650), floored to completed days:
        < 1: 0; 1: 1; 2: 2; 3: 3; 4-6: 4; 7-13: 5; >= 14: 7 points.
    acute_admission : bool
        ``True`` for an acute (emergent, unplanned) admission: 3 points.
    charlson_index : int
        Charlson comorbidity index (>= 0, e.g. from :func:`charlson_index`):
        0-3: the same number of points; >= 4: 5 points.
    ed_visits_6m : int
        Emergency department visits in the 6 months before admission (>= 0):
        one point each, at most 4.

    Returns
    -------
    LaceResult
        The total (0-19), the points per component and the HealthOS risk band.

    Raises
    ------
    IncompleteScoreError
        If any parameter is ``None`` or NaN; the error names every missing parameter.
    InvalidScoreInputError
        If a parameter has the wrong type or an impossible value (a ``ValueError``).

    Examples
    --------
    >>> r = lace(length_of_stay_days=5, acute_admission=True, charlson_index=2, ed_visits_6m=1)
    >>> r.total, r.components["length_of_stay"], r.band
    (10, 4, 'high')
    """
    inputs = {
        "length_of_stay_days": length_of_stay_days,
        "acute_admission": acute_admission,
        "charlson_index": charlson_index,
        "ed_visits_6m": ed_visits_6m,
    }
    missing = [name for name, value in inputs.items() if is_missing(value)]
    if missing:
        raise IncompleteScoreError("LACE", missing)
    days = check_measurement("length_of_stay_days", length_of_stay_days, 0.0, 3650.0, "days")
    if not isinstance(acute_admission, bool):
        raise InvalidScoreInputError(
            "acute_admission", acute_admission, "must be True (emergent) or False (elective)"
        )
    cci = _count("charlson_index", charlson_index)
    visits = _count("ed_visits_6m", ed_visits_6m)
    components = {
        "length_of_stay": _los_points(days),
        "acute_admission": 3 if acute_admission else 0,
        "comorbidity": 5 if cci >= 4 else cci,
        "ed_visits": min(visits, 4),
    }
    total = sum(components.values())
    return LaceResult(total=total, components=components, band=_band(total))
