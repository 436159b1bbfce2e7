"""National Early Warning Score 2 (NEWS2), exactly as RCP NEWS2 2017, Chart 1 and Chart 2.

Source: Royal College of Physicians. *National Early Warning Score (NEWS) 2: Standardising
the assessment of acute-illness severity in the NHS.* Updated report of a working party.
London: RCP, 2017. Chart 1 (the NEWS2 scoring system), Chart 2 (NEWS thresholds and
triggers / clinical response).

Two entry points share one set of per-parameter scoring functions:

* :func:`news2` -- the clinical score. Every parameter is required; a missing one raises
  :class:`~reasoning.clinical.errors.IncompleteScoreError` because an incomplete NEWS2 is
  not a NEWS2.
* :func:`news2_partial` -- a **partial** NEWS2 for research evaluation only. Missing
  parameters score 0 and are listed in ``missing``. It must never be shown to clinicians as
  a NEWS2.

Reading the chart with non-integer inputs
-----------------------------------------
Chart 1 writes respiration rate, SpO2, systolic pressure and pulse in whole numbers and
temperature to one decimal place, so its rows leave gaps (e.g. RR "12-20" and "21-24").
Every row is applied here through its **upper bound only**, inclusive: a row ``a-b`` is
read as ``(previous row's upper bound, b]``. A value in a gap therefore falls consistently
into the next row down the chart (towards higher values): RR 20.5 scores as 21-24
(2 points), RR 8.5 as 9-11, temperature 36.05 °C as 36.1-38.0, SBP 219.5 mmHg as >= 220.
The thresholds compared against (8, 11, 20, 24; 35.0, 36.0, 38.0, 39.0; ...) are all
exactly representable floats, so there is no floating-point rounding at the boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal, TypeVar

from reasoning.clinical.errors import (
    IncompleteScoreError,
    InvalidScoreInputError,
    check_measurement,
    is_missing,
)

__all__ = [
    "COMPONENTS",
    "CONSCIOUSNESS_LEVELS",
    "PARAMETERS",
    "IncompleteScoreError",
    "News2Result",
    "news2",
    "news2_partial",
    "score_air_or_oxygen",
    "score_consciousness",
    "score_pulse",
    "score_resp_rate",
    "score_spo2",
    "score_systolic_bp",
    "score_temperature",
]

_T = TypeVar("_T")

Band = Literal["low", "low-medium", "medium", "high"]

#: Input parameter names of :func:`news2`, in Chart 1 order.
PARAMETERS: Final = (
    "resp_rate",
    "spo2",
    "on_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)

#: Component (Chart 1 row) names of :attr:`News2Result.components`, in Chart 1 order.
COMPONENTS: Final = (
    "resp_rate",
    "spo2",
    "air_or_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)

#: ACVPU levels: Alert, new Confusion, responds to Voice, responds to Pain, Unresponsive.
CONSCIOUSNESS_LEVELS: Final = ("A", "C", "V", "P", "U")

# Hard limits that reject impossible values (not clinical plausibility): a value outside
# them is a data-entry or unit error, e.g. a temperature in °F.
_LIMITS: Final = {
    "resp_rate": (0.0, 150.0, "breaths/min"),
    "spo2": (0.0, 100.0, "%"),
    "systolic_bp": (0.0, 400.0, "mmHg"),
    "pulse": (0.0, 400.0, "beats/min"),
    "temperature": (10.0, 50.0, "°C"),
}

_SOURCE: Final = "RCP NEWS2 2017, Chart 1"


def _measure(parameter: str, value: object) -> float:
    low, high, unit = _LIMITS[parameter]
    return check_measurement(parameter, value, low, high, unit)


def _check_on_oxygen(on_oxygen: object) -> bool:
    if not isinstance(on_oxygen, bool):
        raise InvalidScoreInputError(
            "on_oxygen", on_oxygen, "must be True (supplemental oxygen) or False (air)"
        )
    return on_oxygen


def _check_scale(spo2_scale: object) -> int:
    if isinstance(spo2_scale, bool) or spo2_scale not in (1, 2):
        raise InvalidScoreInputError("spo2_scale", spo2_scale, "must be 1 or 2")
    return int(spo2_scale)


def score_resp_rate(resp_rate: float) -> int:
    """Score respiration rate (RCP NEWS2 2017, Chart 1, row "Respiration rate").

    Parameters
    ----------
    resp_rate : float
        Respiration rate in breaths/min, 0-150.

    Returns
    -------
    int
        <= 8: 3; 9-11: 1; 12-20: 0; 21-24: 2; >= 25: 3.

    Raises
    ------
    InvalidScoreInputError
        If the value is not a number in 0-150 breaths/min.

    Examples
    --------
    >>> score_resp_rate(20), score_resp_rate(21)
    (0, 2)
    """
    rr = _measure("resp_rate", resp_rate)
    if rr <= 8:
        return 3
    if rr <= 11:
        return 1
    if rr <= 20:
        return 0
    if rr <= 24:
        return 2
    return 3


def score_spo2(spo2: float, *, on_oxygen: bool | None = None, scale: int = 1) -> int:
    """Score oxygen saturation on SpO2 scale 1 or 2 (RCP NEWS2 2017, Chart 1).

    Parameters
    ----------
    spo2 : float
        Oxygen saturation in %, 0-100.
    on_oxygen : bool or None, default=None
        Whether the patient is on supplemental oxygen. Used only by scale 2 at SpO2 >= 93 %;
        ``None`` (unknown) is scored there as air, i.e. 0 -- only :func:`news2_partial`
        can pass it.
    scale : {1, 2}, default=1
        SpO2 scale 1, or scale 2 for hypercapnic respiratory failure with a prescribed
        target of 88-92 %. Scale 2 is a clinical decision recorded on the chart.

    Returns
    -------
    int
        Scale 1: <= 91: 3; 92-93: 2; 94-95: 1; >= 96: 0.
        Scale 2: <= 83: 3; 84-85: 2; 86-87: 1; 88-92: 0; >= 93 on air: 0;
        93-94 on oxygen: 1; 95-96 on oxygen: 2; >= 97 on oxygen: 3.

    Raises
    ------
    InvalidScoreInputError
        If ``spo2`` is not a number in 0-100 %, ``scale`` is not 1 or 2, or ``on_oxygen``
        is neither a bool nor ``None``.

    Examples
    --------
    >>> score_spo2(93), score_spo2(96)
    (2, 0)
    >>> score_spo2(97, on_oxygen=True, scale=2), score_spo2(97, on_oxygen=False, scale=2)
    (3, 0)
    """
    value = _measure("spo2", spo2)
    scale = _check_scale(scale)
    if on_oxygen is not None:
        _check_on_oxygen(on_oxygen)
    if scale == 1:
        if value <= 91:
            return 3
        if value <= 93:
            return 2
        if value <= 95:
            return 1
        return 0
    if value <= 83:
        return 3
    if value <= 85:
        return 2
    if value <= 87:
        return 1
    if value <= 92 or not on_oxygen:
        return 0
    if value <= 94:
        return 1
    if value <= 96:
        return 2
    return 3


def score_air_or_oxygen(on_oxygen: bool) -> int:
    """Score the "Air or oxygen?" row (RCP NEWS2 2017, Chart 1).

    Parameters
    ----------
    on_oxygen : bool
        ``True`` if the patient is on supplemental oxygen, ``False`` on air.

    Returns
    -------
    int
        Oxygen: 2; air: 0.

    Raises
    ------
    InvalidScoreInputError
        If ``on_oxygen`` is not a bool.

    Examples
    --------
    >>> score_air_or_oxygen(True), score_air_or_oxygen(False)
    (2, 0)
    """
    return 2 if _check_on_oxygen(on_oxygen) else 0


def score_systolic_bp(systolic_bp: float) -> int:
    """Score systolic blood pressure (RCP NEWS2 2017, Chart 1).

    Parameters
    ----------
    systolic_bp : float
        Systolic blood pressure in mmHg, 0-400.

    Returns
    -------
    int
        <= 90: 3; 91-100: 2; 101-110: 1; 111-219: 0; >= 220: 3.

    Raises
    ------
    InvalidScoreInputError
        If the value is not a number in 0-400 mmHg.

    Examples
    --------
    >>> score_systolic_bp(110), score_systolic_bp(220)
    (1, 3)
    """
    sbp = _measure("systolic_bp", systolic_bp)
    if sbp <= 90:
        return 3
    if sbp <= 100:
        return 2
    if sbp <= 110:
        return 1
    if sbp <= 219:
        return 0
    return 3


def score_pulse(pulse: float) -> int:
    """Score pulse rate (RCP NEWS2 2017, Chart 1).

    Parameters
    ----------
    pulse : float
        Pulse in beats/min, 0-400.

    Returns
    -------
    int
        <= 40: 3; 41-50: 1; 51-90: 0; 91-110: 1; 111-130: 2; >= 131: 3.

    Raises
    ------
    InvalidScoreInputError
        If the value is not a number in 0-400 beats/min.

    Examples
    --------
    >>> score_pulse(90), score_pulse(131)
    (0, 3)
    """
    hr = _measure("pulse", pulse)
    if hr <= 40:
        return 3
    if hr <= 50:
        return 1
    if hr <= 90:
        return 0
    if hr <= 110:
        return 1
    if hr <= 130:
        return 2
    return 3


def score_consciousness(consciousness: str) -> int:
    """Score the level of consciousness on ACVPU (RCP NEWS2 2017, Chart 1).

    Parameters
    ----------
    consciousness : {"A", "C", "V", "P", "U"}
        Alert, new Confusion, responds to Voice, responds to Pain, Unresponsive.
        Case and surrounding whitespace are ignored.

    Returns
    -------
    int
        A: 0; C, V, P or U: 3.

    Raises
    ------
    InvalidScoreInputError
        If the value is not one of the five ACVPU letters.

    Examples
    --------
    >>> score_consciousness("A"), score_consciousness("C")
    (0, 3)
    """
    level = consciousness.strip().upper() if isinstance(consciousness, str) else None
    if level not in CONSCIOUSNESS_LEVELS:
        raise InvalidScoreInputError(
            "consciousness", consciousness, "must be one of A, C, V, P, U (ACVPU)"
        )
    return 0 if level == "A" else 3


def score_temperature(temperature: float) -> int:
    """Score body temperature (RCP NEWS2 2017, Chart 1).

    Parameters
    ----------
    temperature : float
        Temperature in °C, 10-50 (values outside cannot be a body temperature in °C,
        e.g. a value in °F).

    Returns
    -------
    int
        <= 35.0: 3; 35.1-36.0: 1; 36.1-38.0: 0; 38.1-39.0: 1; >= 39.1: 2.

    Raises
    ------
    InvalidScoreInputError
        If the value is not a number in 10-50 °C.

    Examples
    --------
    >>> score_temperature(35.0), score_temperature(35.1), score_temperature(39.1)
    (3, 1, 2)
    """
    t = _measure("temperature", temperature)
    if t <= 35.0:
        return 3
    if t <= 36.0:
        return 1
    if t <= 38.0:
        return 0
    if t <= 39.0:
        return 1
    return 2


def _band(total: int, components: dict[str, int]) -> Band:
    if total >= 7:
        return "high"
    if total >= 5:
        return "medium"
    if any(points == 3 for points in components.values()):
        return "low-medium"
    return "low"


_RESPONSE: Final[dict[str, str]] = {
    "zero": "Low (score 0): continue routine NEWS monitoring, at least every 12 hours.",
    "low": (
        "Low (score 1-4): ward-based response. A registered nurse must assess the patient "
        "and decide whether monitoring should be more frequent or care escalated; "
        "observations at least every 4-6 hours."
    ),
    "low-medium": (
        "Low-medium (a score of 3 in one parameter): urgent ward-based response. The "
        "registered nurse informs the medical team caring for the patient, who review and "
        "decide whether escalation of care is needed; observations at least hourly."
    ),
    "medium": (
        "Medium (score 5-6): key threshold for an urgent response. The registered nurse "
        "immediately informs the medical team and asks for urgent review by a clinician or "
        "team competent in assessing acutely ill patients; care in an environment with "
        "monitoring facilities; observations at least hourly."
    ),
    "high": (
        "High (score 7 or more): emergency response. The registered nurse immediately "
        "informs the medical team (at least specialist-registrar level); emergency "
        "assessment by a clinical team or critical care outreach with critical-care "
        "competencies, including advanced airway skills; usually transfer to a higher level "
        "of care (HDU/ICU); continuous monitoring of vital signs."
    ),
}


@dataclass(frozen=True, slots=True)
class News2Result:
    """A NEWS2 score (RCP NEWS2 2017, Chart 1) with its band and clinical response.

    Parameters
    ----------
    total : int
        The aggregate score, 0-20.
    band : {"low", "low-medium", "medium", "high"}
        The clinical risk band (Chart 2): "low" for 0-4 with no parameter scoring 3,
        "low-medium" for 0-4 with a single parameter scoring 3 (the "red score"),
        "medium" for 5-6, "high" for 7 or more.
    components : dict of str to int
        Points per Chart 1 row, keyed by :data:`COMPONENTS`: ``"resp_rate"``, ``"spo2"``,
        ``"air_or_oxygen"``, ``"systolic_bp"``, ``"pulse"``, ``"consciousness"``,
        ``"temperature"``.
    spo2_scale : {1, 2}
        The SpO2 scale used.
    missing : tuple of str, default=()
        Only for :func:`news2_partial`: the input parameters (names from
        :data:`PARAMETERS`) that were missing and scored 0. Empty for a true NEWS2.

    Attributes
    ----------
    clinical_response : str
        The RCP Chart 2 clinical response (monitoring frequency and escalation) for the band.
    is_partial : bool
        Whether any parameter was missing, i.e. the result is not a true NEWS2.
    """

    total: int
    band: Band
    components: dict[str, int] = field(hash=False)
    spo2_scale: int = 1
    missing: tuple[str, ...] = ()

    @property
    def clinical_response(self) -> str:
        """The RCP NEWS2 2017 Chart 2 clinical response for this result's band.

        Returns
        -------
        str
            The response in plain words; a total of 0 and totals 1-4 differ in the
            minimum monitoring frequency (12-hourly vs 4-6-hourly).
        """
        if self.band == "low":
            return _RESPONSE["zero" if self.total == 0 else "low"]
        return _RESPONSE[self.band]

    @property
    def is_partial(self) -> bool:
        """Whether any parameter was missing (a research-only partial NEWS2).

        Returns
        -------
        bool
            ``True`` if :attr:`missing` is not empty.
        """
        return bool(self.missing)


def _present(value: _T | None) -> _T | None:
    """Return ``None`` for a missing value (``None`` or NaN), else the value."""
    return None if is_missing(value) else value


def _score(
    *,
    resp_rate: float | None,
    spo2: float | None,
    on_oxygen: bool | None,
    systolic_bp: float | None,
    pulse: float | None,
    consciousness: str | None,
    temperature: float | None,
    spo2_scale: int,
    allow_missing: bool,
) -> News2Result:
    scale = _check_scale(spo2_scale)
    rr, sat, oxygen = _present(resp_rate), _present(spo2), _present(on_oxygen)
    sbp, hr, level, temp = (
        _present(systolic_bp),
        _present(pulse),
        _present(consciousness),
        _present(temperature),
    )
    inputs = (rr, sat, oxygen, sbp, hr, level, temp)
    missing = tuple(name for name, v in zip(PARAMETERS, inputs, strict=True) if v is None)
    if missing and not allow_missing:
        raise IncompleteScoreError("NEWS2", missing)
    components = {
        "resp_rate": 0 if rr is None else score_resp_rate(rr),
        "spo2": 0 if sat is None else score_spo2(sat, on_oxygen=oxygen, scale=scale),
        "air_or_oxygen": 0 if oxygen is None else score_air_or_oxygen(oxygen),
        "systolic_bp": 0 if sbp is None else score_systolic_bp(sbp),
        "pulse": 0 if hr is None else score_pulse(hr),
        "consciousness": 0 if level is None else score_consciousness(level),
        "temperature": 0 if temp is None else score_temperature(temp),
    }
    total = sum(components.values())
    return News2Result(
        total=total,
        band=_band(total, components),
        components=components,
        spo2_scale=scale,
        missing=missing,
    )


def news2(
    *,
    resp_rate: float,
    spo2: float,
    on_oxygen: bool,
    systolic_bp: float,
    pulse: float,
    consciousness: str,
    temperature: float,
    spo2_scale: int = 1,
) -> News2Result:
    """Compute NEWS2 exactly as RCP NEWS2 2017, Chart 1, with the Chart 2 band and response.

    Parameters
    ----------
    resp_rate : float
        Respiration rate in breaths/min (0-150).
    spo2 : float
        Oxygen saturation (SpO2) in % (0-100).
    on_oxygen : bool
        ``True`` if on supplemental oxygen, ``False`` on air.
    systolic_bp : float
        Systolic blood pressure in mmHg (0-400).
    pulse : float
        Pulse in beats/min (0-400).
    consciousness : {"A", "C", "V", "P", "U"}
        ACVPU level; new confusion (C) scores 3 like V, P and U.
    temperature : float
        Temperature in °C (10-50).
    spo2_scale : {1, 2}, default=1
        SpO2 scale 2 only for hypercapnic respiratory failure with a target of 88-92 %.

    Returns
    -------
    News2Result
        Total (0-20), band, points per Chart 1 row and the Chart 2 clinical response.
        Values between two chart rows fall into the next row down the chart (see the
        module docstring).

    Raises
    ------
    IncompleteScoreError
        If any parameter is ``None`` or NaN; the error names every missing parameter.
    InvalidScoreInputError
        If a parameter has the wrong type or an impossible value (e.g. negative
        respiration rate, SpO2 above 100, consciousness ``"X"``, ``spo2_scale=3``);
        the error names the parameter and the value. It is a ``ValueError``.

    See Also
    --------
    news2_partial : research-only partial score tolerating missing parameters.

    Examples
    --------
    >>> r = news2(resp_rate=22, spo2=95, on_oxygen=False, systolic_bp=105, pulse=95,
    ...           consciousness="A", temperature=38.2)
    >>> r.total, r.band
    (6, 'medium')
    >>> r.components["resp_rate"], r.components["spo2"], r.components["temperature"]
    (2, 1, 1)
    >>> news2(resp_rate=16, spo2=97, on_oxygen=False, systolic_bp=120, pulse=70,
    ...       consciousness="V", temperature=37.0).band
    'low-medium'
    """
    return _score(
        resp_rate=resp_rate,
        spo2=spo2,
        on_oxygen=on_oxygen,
        systolic_bp=systolic_bp,
        pulse=pulse,
        consciousness=consciousness,
        temperature=temperature,
        spo2_scale=spo2_scale,
        allow_missing=False,
    )


def news2_partial(
    *,
    resp_rate: float | None = None,
    spo2: float | None = None,
    on_oxygen: bool | None = None,
    systolic_bp: float | None = None,
    pulse: float | None = None,
    consciousness: str | None = None,
    temperature: float | None = None,
    spo2_scale: int = 1,
) -> News2Result:
    """Compute a **partial** NEWS2 in which missing parameters score 0 -- research use only.

    The present parameters are scored exactly as in :func:`news2` (RCP NEWS2 2017,
    Chart 1) and a missing one (``None`` or NaN) scores 0, i.e. it is assumed normal.
    The result is **not a NEWS2** whenever :attr:`News2Result.missing` is not empty: use it
    only to evaluate the score on incomplete research data, never show it to clinicians as
    a NEWS2. With SpO2 scale 2, an unknown ``on_oxygen`` scores SpO2 >= 93 % as on air (0).

    Parameters
    ----------
    resp_rate : float or None, default=None
        Respiration rate in breaths/min (0-150).
    spo2 : float or None, default=None
        Oxygen saturation (SpO2) in % (0-100).
    on_oxygen : bool or None, default=None
        ``True`` if on supplemental oxygen, ``False`` on air.
    systolic_bp : float or None, default=None
        Systolic blood pressure in mmHg (0-400).
    pulse : float or None, default=None
        Pulse in beats/min (0-400).
    consciousness : {"A", "C", "V", "P", "U"} or None, default=None
        ACVPU level.
    temperature : float or None, default=None
        Temperature in °C (10-50).
    spo2_scale : {1, 2}, default=1
        SpO2 scale.

    Returns
    -------
    News2Result
        As :func:`news2`, with ``missing`` listing the missing input parameters in
        :data:`PARAMETERS` order (empty when all were present).

    Raises
    ------
    InvalidScoreInputError
        If a present parameter has the wrong type or an impossible value (a ``ValueError``).

    See Also
    --------
    news2 : the clinical score, which refuses missing parameters.

    Examples
    --------
    >>> r = news2_partial(resp_rate=26, pulse=120)
    >>> r.total, r.band, r.missing
    (5, 'medium', ('spo2', 'on_oxygen', 'systolic_bp', 'consciousness', 'temperature'))
    """
    return _score(
        resp_rate=resp_rate,
        spo2=spo2,
        on_oxygen=on_oxygen,
        systolic_bp=systolic_bp,
        pulse=pulse,
        consciousness=consciousness,
        temperature=temperature,
        spo2_scale=spo2_scale,
        allow_missing=True,
    )
