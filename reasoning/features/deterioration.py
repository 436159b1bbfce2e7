"""Features of the deterioration model: the first 48 hours of an ICU or inpatient stay.

One vector per encounter: :data:`~reasoning.features.window.STATS` for every variable of
:data:`VARIABLES` over the window ``[admission, admission + 48 h]`` (cut at ``as_of``
when the stay is younger), then age, sex and ICU type. The variables are those of the
PhysioNet/CinC Challenge 2012 (Silva et al., *Comput Cardiol* 2012;39:245-248), coded in
LOINC as the shipped mapping ``healthos_core/data/mappings/physionet2012.csv`` codes them,
so the same code reads a PhysioNet stay and a live HealthOS record.

Two paths build the vector, and only this module computes it:

* :func:`from_record` reads an Encounter's Observations from the database;
* :func:`from_physionet_stay` reads a stay of the PhysioNet 2012 archives directly,
  through the same mapping, units and plausibility rules the importer applies.

Values the importer flagged as implausible (``status = entered-in-error``) are never used.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core import terminology as t
from healthos_core.datasets.physionet2012 import Stay
from healthos_core.observations_import import (
    ICU_LOCATIONS,
    ParameterMapping,
    load_mapping,
    stay_record,
)
from healthos_core.record.entities import Encounter, Observation, Patient
from reasoning.features.window import STATS, Point, age_in_years, round_significant, series_stats

#: Hours of the stay the model reads, from admission.
WINDOW_HOURS = 48.0

#: (variable, display, unit, LOINC or local codes). The first code is PhysioNet's.
VARIABLES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("hr", "heart rate", "/min", (t.HEART_RATE,)),
    ("resp_rate", "respiratory rate", "/min", (t.RESPIRATORY_RATE,)),
    ("sbp_invasive", "invasive systolic BP", "mmHg", (t.INVASIVE_SYSTOLIC_BP,)),
    ("dbp_invasive", "invasive diastolic BP", "mmHg", (t.INVASIVE_DIASTOLIC_BP,)),
    ("map_invasive", "invasive mean BP", "mmHg", (t.INVASIVE_MEAN_BP,)),
    ("sbp", "systolic BP", "mmHg", (t.SYSTOLIC_BP,)),
    ("dbp", "diastolic BP", "mmHg", (t.DIASTOLIC_BP,)),
    ("map", "mean BP", "mmHg", (t.MEAN_BP,)),
    ("temp", "temperature", "°C", (t.BODY_TEMPERATURE, t.ORAL_TEMPERATURE)),
    (
        "sao2",
        "oxygen saturation",
        "%",
        (t.OXYGEN_SATURATION, t.OXYGEN_SATURATION_PULSE_OXIMETRY),
    ),
    ("fio2", "FiO2", "%", (t.INHALED_OXYGEN_CONCENTRATION,)),
    ("mech_vent", "mechanical ventilation", "", (t.MECHANICAL_VENTILATION,)),  # 1 = on
    ("gcs", "GCS", "", (t.GCS_TOTAL,)),
    ("urine", "urine output", "mL", (t.URINE_OUTPUT,)),
    ("weight", "weight", "kg", (t.BODY_WEIGHT,)),
    ("height", "height", "cm", (t.BODY_HEIGHT,)),
    ("creatinine", "creatinine", "mg/dL", (t.CREATININE,)),
    ("lactate", "lactate", "mmol/L", (t.LACTATE,)),
    ("wbc", "WBC", "10^9/L", (t.WBC,)),
    ("bun", "BUN", "mg/dL", ("3094-0",)),
    ("glucose", "glucose", "mg/dL", ("2345-7",)),
    ("hco3", "bicarbonate", "mmol/L", ("1963-8",)),
    ("hct", "haematocrit", "%", ("4544-3",)),
    ("k", "potassium", "mmol/L", ("2823-3",)),
    ("na", "sodium", "mmol/L", ("2951-2",)),
    ("mg", "magnesium", "mg/dL", ("19123-9",)),
    ("platelets", "platelets", "10^9/L", ("777-3",)),
    ("ph", "arterial pH", "", ("2744-1",)),
    ("paco2", "PaCO2", "mmHg", ("2019-8",)),
    ("pao2", "PaO2", "mmHg", ("2703-7",)),
    ("bilirubin", "bilirubin", "mg/dL", ("1975-2",)),
    ("ast", "AST", "U/L", ("1920-8",)),
    ("alt", "ALT", "U/L", ("1742-6",)),
    ("alp", "ALP", "U/L", ("6768-6",)),
    ("albumin", "albumin", "g/dL", ("1751-7",)),
    ("troponin_t", "troponin T", "ug/L", ("6598-7",)),
    ("troponin_i", "troponin I", "ug/L", ("10839-9",)),
    ("cholesterol", "cholesterol", "mg/dL", ("2093-3",)),
)

#: Variables with fewer statistics than :data:`STATS`: a flag that is only ever 1 and
#: a once-measured height have no spread or trend.
VARIABLE_STATS: dict[str, tuple[str, ...]] = {
    "mech_vent": ("count", "since"),
    "height": ("last",),
}


def _stats(name: str) -> tuple[str, ...]:
    return VARIABLE_STATS.get(name, STATS)


#: ICU types of the PhysioNet data, by the Location ids the importer gives them.
ICU_TYPES: tuple[tuple[str, str], ...] = tuple(
    (location_id, name) for location_id, name in ICU_LOCATIONS.values()
)

STATIC_FEATURES: tuple[str, ...] = (
    "age",
    "sex_male",
    "icu_ccu",
    "icu_csru",
    "icu_micu",
    "icu_sicu",
    "urine_total",
)

#: Feature names, in vector order.
FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"{name}_{stat}" for name, _, _, _ in VARIABLES for stat in _stats(name))
    + STATIC_FEATURES
)

#: Feature → the variable (explanation group) it belongs to.
FEATURE_GROUPS: dict[str, str] = {
    **{f"{name}_{stat}": name for name, _, _, _ in VARIABLES for stat in _stats(name)},
    "age": "age",
    "sex_male": "sex",
    "icu_ccu": "icu_type",
    "icu_csru": "icu_type",
    "icu_micu": "icu_type",
    "icu_sicu": "icu_type",
    "urine_total": "urine",
}

_CODE_TO_VARIABLE = {code: name for name, _, _, codes in VARIABLES for code in codes}
_PANEL_CODES = t.BP_PANEL_CODES


@dataclass(frozen=True, kw_only=True)
class StayInputs:
    """What the deterioration features are computed from (either path).

    Parameters
    ----------
    subject : str
        ``"Encounter/<id>"``.
    admitted_at : datetime
        Aware UTC start of the stay; the window starts here.
    window_end : datetime
        Aware UTC end of the window (admission + 48 h, or ``as_of`` if earlier).
    age : float
        Whole years at admission (NaN unknown).
    sex : str or None
        FHIR administrative gender.
    location_id : str or None
        The stay's Location (PhysioNet ICU Locations give the ICU type).
    points : dict of str to list of Point
        Valid measurements per variable name.
    """

    subject: str
    admitted_at: dt.datetime
    window_end: dt.datetime
    age: float
    sex: str | None
    location_id: str | None
    points: Mapping[str, Sequence[Point]] = field(default_factory=dict)

    def evidence(self) -> tuple[str, ...]:
        """Return the record references of the measurements in the window, sorted."""
        return tuple(
            sorted(
                {
                    p.reference
                    for series in self.points.values()
                    for p in series
                    if p.reference and self.admitted_at <= p.time <= self.window_end
                }
            )
        )


def vector(inputs: StayInputs) -> np.ndarray:
    """Return the feature vector of one stay.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(FEATURE_NAMES),)``, float64, NaN for missing values, rounded to
        six significant digits (:func:`~reasoning.features.window.round_significant`).
    """
    values: list[float] = []
    for name, _, _, _ in VARIABLES:
        stats = series_stats(
            inputs.points.get(name, ()), start=inputs.admitted_at, end=inputs.window_end
        )
        wanted = _stats(name)
        values.extend(stats if wanted is STATS else [stats[STATS.index(s)] for s in wanted])
    sex_male = {"male": 1.0, "female": 0.0}.get(inputs.sex or "", math.nan)
    icu = [1.0 if inputs.location_id == location_id else 0.0 for location_id, _ in ICU_TYPES]
    urine = [
        p.value
        for p in inputs.points.get("urine", ())
        if inputs.admitted_at <= p.time <= inputs.window_end
    ]
    values.extend([inputs.age, sex_male, *icu, float(sum(urine)) if urine else math.nan])
    return round_significant(np.asarray(values, dtype=np.float64))


def _group_points(points: Iterable[Point]) -> dict[str, list[Point]]:
    grouped: dict[str, list[Point]] = defaultdict(list)
    for point in points:
        name = _CODE_TO_VARIABLE.get(point.code)
        if name is not None:
            grouped[name].append(point)
    return dict(grouped)


def _window(admitted_at: dt.datetime, as_of: dt.datetime | None) -> dt.datetime:
    end = admitted_at + dt.timedelta(hours=WINDOW_HOURS)
    return min(end, as_of) if as_of is not None else end


def from_physionet_stay(
    stay: Stay, *, mapping: Mapping[str, ParameterMapping] | None = None
) -> StayInputs:
    """Build the inputs of one PhysioNet 2012 stay without a database.

    The stay goes through :func:`healthos_core.observations_import.stay_record`, the
    importer's own conversion (codes, units, scale, plausibility), so the vector equals
    the one :func:`from_record` computes after ``healthos import`` of the same stay.

    Parameters
    ----------
    stay : Stay
        From :func:`healthos_core.datasets.physionet2012.iter_stays`.
    mapping : mapping, optional
        Parameter mapping; default the shipped PhysioNet 2012 mapping.
    """
    patient, encounter, observations = stay_record(stay, mapping=dict(mapping or load_mapping()))
    admitted_at: dt.datetime = encounter["period_start"]
    points = [
        Point(row["code"], row["effective_at"], float(row["value"]), f"Observation/{row['id']}")
        for row in observations
        if row["status"] != "entered-in-error" and row["value"] is not None
    ]
    return StayInputs(
        subject=f"Encounter/{encounter['id']}",
        admitted_at=admitted_at,
        window_end=_window(admitted_at, None),
        age=age_in_years(patient["birth_date"], admitted_at),
        sex=patient["gender"],
        location_id=encounter["location_id"],
        points=_group_points(points),
    )


def _observation_points(observation: Observation) -> list[Point]:
    if observation.effective_at is None:
        return []
    reference = f"Observation/{observation.id}"
    if observation.code in _PANEL_CODES or (observation.value is None and observation.components):
        return [
            Point(str(c.get("code")), observation.effective_at, float(c["value"]), reference)
            for c in observation.components or []
            if isinstance(c, dict) and isinstance(c.get("value"), int | float)
        ]
    if observation.value is None or observation.code is None:
        return []
    return [Point(observation.code, observation.effective_at, float(observation.value), reference)]


_RECORD_CODES = sorted({*_CODE_TO_VARIABLE, *_PANEL_CODES})


def from_record(
    session: Session, encounter_ids: Sequence[str], *, as_of: dt.datetime | None = None
) -> list[StayInputs]:
    """Build the inputs of encounters from the record.

    Parameters
    ----------
    session : Session
        Read only.
    encounter_ids : sequence of str
        Encounter ids; encounters without a start time are skipped.
    as_of : datetime, optional
        Aware UTC; a window is cut here when the stay is younger than 48 h.

    Returns
    -------
    list of StayInputs
        In the order of ``encounter_ids`` (missing or start-less encounters left out).
    """
    if not encounter_ids:
        return []
    rows = session.execute(
        select(Encounter, Patient)
        .join(Patient, Patient.id == Encounter.patient_id)
        .where(Encounter.id.in_(list(encounter_ids)))
    ).all()
    found = {encounter.id: (encounter, patient) for encounter, patient in rows}
    observations: dict[str, list[Point]] = defaultdict(list)
    for observation in session.scalars(
        select(Observation).where(
            Observation.encounter_id.in_(list(found)),
            Observation.code.in_(_RECORD_CODES),
            Observation.status != "entered-in-error",
        )
    ):
        observations[observation.encounter_id or ""].extend(_observation_points(observation))
    out: list[StayInputs] = []
    for encounter_id in encounter_ids:
        if encounter_id not in found:
            continue
        encounter, patient = found[encounter_id]
        if encounter.period_start is None:
            continue
        out.append(
            StayInputs(
                subject=f"Encounter/{encounter.id}",
                admitted_at=encounter.period_start,
                window_end=_window(encounter.period_start, as_of),
                age=age_in_years(patient.birth_date, encounter.period_start),
                sex=patient.gender,
                location_id=encounter.location_id,
                points=_group_points(observations.get(encounter.id, [])),
            )
        )
    return out


def matrix(inputs: Sequence[StayInputs]) -> np.ndarray:
    """Stack the vectors of many stays: shape ``(len(inputs), len(FEATURE_NAMES))``."""
    if not inputs:
        return np.empty((0, len(FEATURE_NAMES)), dtype=np.float64)
    return np.vstack([vector(i) for i in inputs])
