"""A vital-sign set in one write: the observations a bedside round produces.

:func:`record_vital_signs` writes each measurement as its own Observation (FHIR R4
vital-signs profile), coded as the NEWS2 scorer (:mod:`reasoning.clinical.news2_scorer`)
reads them, from the one vocabulary :mod:`healthos_core.terminology`:

======================== ========================= ========= ===========================
parameter                LOINC                     unit      range accepted
======================== ========================= ========= ===========================
respiratory_rate         9279-1                    /min      0–100
spo2                     59408-5 (pulse oximetry)  %         0–100
oxygen_flow_rate         3151-8 (0 = room air)     L/min     0–80
fio2                     3150-0                    %         21–100
systolic_bp, diastolic   85354-9 panel (8480-6,    mm[Hg]    0–350, 0–300
                         8462-4 components)
heart_rate               8867-4                    /min      0–350
consciousness            67775-7, value code       ACVPU     A, C, V, P, U
temperature              8310-5                    Cel       20–46
======================== ========================= ========= ===========================

The ranges (:data:`VITAL_RANGES`) are wide physiological limits, meant to refuse typing
slips (SpO2 990) and unit mix-ups (98.6 °F as Cel), never a real, extreme patient.

Everything is checked before anything is written; each observation, the ACVPU level (a
coded value, ``value_code``) included, is written by
:func:`~healthos_core.record.service.record_observation`, through the one write path (and
publishes :class:`~healthos_core.events.ObservationRecorded`).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Final

from sqlalchemy.orm import Session

from healthos_core import terminology as t
from healthos_core.errors import InvalidInputError
from healthos_core.events import EventBus
from healthos_core.record.entities import Observation
from healthos_core.record.service import (
    _aware_utc,
    _check_during_encounter,
    _open_encounter,
    record_observation,
)

__all__ = ["ACVPU", "VITAL_RANGES", "record_vital_signs"]

#: ACVPU levels (RCP NEWS2 2017): Alert, new Confusion, Voice, Pain, Unresponsive.
ACVPU: Final = ("A", "C", "V", "P", "U")

#: Parameter → (lowest, highest) accepted value, in the unit of :data:`VITAL_UNITS`.
VITAL_RANGES: Final[dict[str, tuple[float, float]]] = {
    "respiratory_rate": (0, 100),
    "spo2": (0, 100),
    "oxygen_flow_rate": (0, 80),
    "fio2": (21, 100),
    "systolic_bp": (0, 350),
    "diastolic_bp": (0, 300),
    "heart_rate": (0, 350),
    "temperature": (20, 46),
}
#: Parameter → UCUM unit.
VITAL_UNITS: Final[dict[str, str]] = {
    "respiratory_rate": "/min",
    "spo2": "%",
    "oxygen_flow_rate": "L/min",
    "fio2": "%",
    "systolic_bp": "mm[Hg]",
    "diastolic_bp": "mm[Hg]",
    "heart_rate": "/min",
    "temperature": "Cel",
}
#: Parameter written as a single-valued observation → (LOINC code, display).
_SIMPLE: Final[dict[str, tuple[str, str]]] = {
    "respiratory_rate": (t.RESPIRATORY_RATE, "Respiratory rate"),
    "spo2": (
        t.OXYGEN_SATURATION_PULSE_OXIMETRY,
        "Oxygen saturation in Arterial blood by Pulse oximetry",
    ),
    "oxygen_flow_rate": (t.INHALED_OXYGEN_FLOW_RATE, "Inhaled oxygen flow rate"),
    "fio2": (t.INHALED_OXYGEN_CONCENTRATION, "Inhaled oxygen concentration"),
    "heart_rate": (t.HEART_RATE, "Heart rate"),
    "temperature": (t.BODY_TEMPERATURE, "Body temperature"),
}


def _checked(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{name} must be a number, got {type(value).__name__}")
    low, high = VITAL_RANGES[name]
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise InvalidInputError(
            f"{name}={value!r} is outside {low:g}-{high:g} {VITAL_UNITS[name]}: check the "
            "value and its unit"
        )
    return number


def record_vital_signs(
    session: Session,
    *,
    encounter_id: str,
    effective_at: dt.datetime,
    respiratory_rate: float | None = None,
    spo2: float | None = None,
    oxygen_flow_rate: float | None = None,
    fio2: float | None = None,
    systolic_bp: float | None = None,
    diastolic_bp: float | None = None,
    heart_rate: float | None = None,
    consciousness: str | None = None,
    temperature: float | None = None,
    bus: EventBus | None = None,
) -> list[Observation]:
    """Record a set of vital signs taken together, one Observation per measurement.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session (flushed, not committed).
    encounter_id : str
        An existing, open encounter.
    effective_at : datetime.datetime
        Aware time the set was taken; not before the encounter started.
    respiratory_rate : float, optional
        Breaths per minute.
    spo2 : float, optional
        Oxygen saturation by pulse oximetry, %.
    oxygen_flow_rate : float, optional
        Supplemental oxygen, L/min; ``0`` records that the patient breathes room air.
    fio2 : float, optional
        Inhaled oxygen concentration, % (21 is room air).
    systolic_bp, diastolic_bp : float, optional
        Blood pressure, mm[Hg], written as one panel; ``diastolic_bp`` needs
        ``systolic_bp``.
    heart_rate : float, optional
        Beats per minute.
    consciousness : {"A", "C", "V", "P", "U"}, optional
        ACVPU level.
    temperature : float, optional
        Body temperature, °C.
    bus : EventBus, optional
        Where to publish; default :func:`~healthos_core.events.default_bus`.

    Returns
    -------
    list of Observation
        The flushed observations (status ``final``, category ``vital-signs``), in the
        order of the parameters above.

    Raises
    ------
    NotFoundError
        Unknown encounter.
    ConflictError
        The encounter is closed.
    InvalidInputError
        No measurement, a value outside :data:`VITAL_RANGES`, an unknown ACVPU level,
        a diastolic pressure without the systolic, or a naive or too early time.

    Examples
    --------
    >>> observations = record_vital_signs(  # doctest: +SKIP
    ...     session, encounter_id="enc-1", effective_at=now, respiratory_rate=24,
    ...     spo2=91, oxygen_flow_rate=2, systolic_bp=98, heart_rate=118,
    ...     consciousness="A", temperature=38.6)
    """
    encounter = _open_encounter(session, encounter_id, "record vital signs")
    effective_at = _aware_utc(effective_at, "effective_at")
    _check_during_encounter(encounter, effective_at, "effective_at")
    values = {
        "respiratory_rate": _checked("respiratory_rate", respiratory_rate),
        "spo2": _checked("spo2", spo2),
        "oxygen_flow_rate": _checked("oxygen_flow_rate", oxygen_flow_rate),
        "fio2": _checked("fio2", fio2),
        "systolic_bp": _checked("systolic_bp", systolic_bp),
        "diastolic_bp": _checked("diastolic_bp", diastolic_bp),
        "heart_rate": _checked("heart_rate", heart_rate),
        "temperature": _checked("temperature", temperature),
    }
    if consciousness is not None and consciousness not in ACVPU:
        raise InvalidInputError(
            f"consciousness {consciousness!r} is not an ACVPU level: use one of {list(ACVPU)}"
        )
    if values["diastolic_bp"] is not None and values["systolic_bp"] is None:
        raise InvalidInputError("diastolic_bp needs systolic_bp: a blood pressure is a pair")
    if consciousness is None and all(v is None for v in values.values()):
        raise InvalidInputError("a vital-sign set needs at least one measurement")

    def simple(name: str) -> Observation | None:
        value = values[name]
        if value is None:
            return None
        code, display = _SIMPLE[name]
        return record_observation(
            session,
            encounter_id=encounter_id,
            code=code,
            display=display,
            value=value,
            unit=VITAL_UNITS[name],
            effective_at=effective_at,
            bus=bus,
        )

    written: list[Observation | None] = [
        simple("respiratory_rate"),
        simple("spo2"),
        simple("oxygen_flow_rate"),
        simple("fio2"),
    ]
    if values["systolic_bp"] is not None:
        components = [
            {"code": t.SYSTOLIC_BP, "value": values["systolic_bp"], "unit": "mm[Hg]"},
        ]
        if values["diastolic_bp"] is not None:
            components.append(
                {"code": t.DIASTOLIC_BP, "value": values["diastolic_bp"], "unit": "mm[Hg]"}
            )
        written.append(
            record_observation(
                session,
                encounter_id=encounter_id,
                code=t.BLOOD_PRESSURE_PANEL,
                display="Blood pressure panel with all children optional",
                value=None,
                unit=None,
                components=components,
                effective_at=effective_at,
                bus=bus,
            )
        )
    written.append(simple("heart_rate"))
    if consciousness is not None:
        written.append(
            record_observation(
                session,
                encounter_id=encounter_id,
                code=t.LEVEL_OF_RESPONSIVENESS,
                display="Level of responsiveness",
                value=None,
                unit=None,
                value_code=consciousness,
                effective_at=effective_at,
                bus=bus,
            )
        )
    written.append(simple("temperature"))
    return [o for o in written if o is not None]
