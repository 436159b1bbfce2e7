"""Features of the readmission model: one vector per inpatient stay, at discharge.

Encounter length, admission type and source, discharge disposition, prior utilisation,
age, sex, diagnosis groups, laboratory, procedure and medication counts, glycaemic
tests and diabetes medicines: the variables of the Diabetes 130-US hospitals data
(Strack et al., *BioMed Res Int* 2014:781670), expressed in FHIR terms so that the same
code reads a live record and the dataset:

* :func:`from_record` reads an Encounter and its context from the database;
* :func:`read_uci` / :func:`from_uci_row` read the UCI ``diabetic_data.csv(.gz)`` rows.

Diagnoses are grouped as Strack 2014 Table 2 groups them (circulatory, respiratory,
digestive, diabetes, injury, musculoskeletal, genitourinary, neoplasms, other) from
ICD-9-CM (the dataset) or ICD-10-CM (the record; by chapter). Codes of other systems
(SNOMED CT) are not mapped and count only in ``n_diagnoses``.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import itertools
import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.record.entities import (
    Condition,
    Encounter,
    MedicationAdministration,
    MedicationRequest,
    Observation,
    Patient,
    Procedure,
)
from reasoning.features.window import age_in_years, round_significant

ICD9 = "http://hl7.org/fhir/sid/icd-9-cm"
ICD10_SYSTEMS = frozenset({"http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10"})
HBA1C = "4548-4"
GLUCOSE = "2345-7"

DIAGNOSIS_GROUPS: tuple[str, ...] = (
    "circulatory",
    "respiratory",
    "digestive",
    "diabetes",
    "injury",
    "musculoskeletal",
    "genitourinary",
    "neoplasms",
    "other",
)

#: Comorbidities flagged from any diagnosis of the stay, with their ICD-9-CM and ICD-10-CM
#: code prefixes (categories as in Quan et al., *Med Care* 2005;43:1130, Table 1, plus
#: sepsis, pneumonia, UTI, dehydration and complications of care, frequent causes of
#: readmission in this cohort).
COMORBIDITIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "heart_failure": (
        (
            "428",
            "398.91",
            "402.01",
            "402.11",
            "402.91",
            "404.01",
            "404.03",
            "404.11",
            "404.13",
            "404.91",
            "404.93",
        ),
        ("I50", "I11.0", "I13.0", "I13.2", "I09.81"),
    ),
    "kidney_disease": (("585", "586", "584", "403", "404"), ("N18", "N19", "N17", "I12", "I13")),
    "copd": (("490", "491", "492", "494", "496"), ("J40", "J41", "J42", "J43", "J44", "J47")),
    "pneumonia": (
        ("480", "481", "482", "483", "484", "485", "486"),
        ("J12", "J13", "J14", "J15", "J16", "J17", "J18"),
    ),
    "sepsis": (("038", "995.91", "995.92"), ("A40", "A41", "R65.2")),
    "myocardial_infarction": (("410", "412"), ("I21", "I22", "I25.2")),
    "coronary_disease": (("414",), ("I25",)),
    "arrhythmia": (("427",), ("I47", "I48", "I49")),
    "anaemia": (
        ("280", "281", "282", "283", "284", "285"),
        (
            "D50",
            "D51",
            "D52",
            "D53",
            "D55",
            "D56",
            "D57",
            "D58",
            "D59",
            "D60",
            "D61",
            "D62",
            "D63",
            "D64",
        ),
    ),
    "urinary_infection": (("599.0",), ("N39.0",)),
    "dehydration": (("276",), ("E86", "E87")),
    "complication_of_care": (
        ("996", "997", "998", "999"),
        ("T80", "T81", "T82", "T83", "T84", "T85", "T86", "T87", "T88"),
    ),
}

#: The 23 diabetes medicines of the dataset, as ingredient names found in a display.
DIABETES_MEDICINES: tuple[str, ...] = (
    "metformin",
    "repaglinide",
    "nateglinide",
    "chlorpropamide",
    "glimepiride",
    "acetohexamide",
    "glipizide",
    "glyburide",
    "tolbutamide",
    "pioglitazone",
    "rosiglitazone",
    "acarbose",
    "miglitol",
    "troglitazone",
    "tolazamide",
    "examide",
    "citoglipton",
    "insulin",
)
_UCI_DRUG_COLUMNS: tuple[str, ...] = (
    *DIABETES_MEDICINES,
    "glyburide-metformin",
    "glipizide-metformin",
    "glimepiride-pioglitazone",
    "metformin-rosiglitazone",
    "metformin-pioglitazone",
)

FEATURE_NAMES: tuple[str, ...] = (
    "age",
    "sex_male",
    "los_days",
    "priority_emergency",
    "priority_urgent",
    "priority_elective",
    "source_emergency",
    "source_referral",
    "source_transfer",
    "discharge_home",
    "discharge_home_health",
    "discharge_snf",
    "discharge_rehab",
    "discharge_transfer",
    "discharge_against_advice",
    "discharge_hospital",
    "discharge_long_term_care",
    "n_lab_tests",
    "n_procedures",
    "n_medications",
    "n_outpatient_prior_year",
    "n_emergency_prior_year",
    "n_inpatient_prior_year",
    "n_prior_admissions",
    "readmission_of_recent_stay",
    "n_diagnoses",
    *(f"primary_{g}" for g in DIAGNOSIS_GROUPS),
    *(f"any_{g}" for g in DIAGNOSIS_GROUPS),
    *(f"comorbidity_{c}" for c in COMORBIDITIES),
    "hba1c_level",
    "glucose_level",
    "n_diabetes_medicines",
    "insulin",
)

FEATURE_GROUPS: dict[str, str] = {
    "age": "age",
    "sex_male": "sex",
    "los_days": "length_of_stay",
    **{f: "admission" for f in FEATURE_NAMES if f.startswith(("priority_", "source_"))},
    **{f: "discharge" for f in FEATURE_NAMES if f.startswith("discharge_")},
    "n_lab_tests": "lab_tests",
    "n_procedures": "procedures",
    "n_medications": "medications",
    "n_outpatient_prior_year": "prior_outpatient",
    "n_emergency_prior_year": "prior_emergency",
    "n_inpatient_prior_year": "prior_inpatient",
    "n_prior_admissions": "prior_inpatient",
    "readmission_of_recent_stay": "prior_inpatient",
    "n_diagnoses": "diagnoses",
    **{f: "primary_diagnosis" for f in FEATURE_NAMES if f.startswith("primary_")},
    **{f: "diagnoses" for f in FEATURE_NAMES if f.startswith("any_")},
    **{f: f.removeprefix("comorbidity_") for f in FEATURE_NAMES if f.startswith("comorbidity_")},
    "hba1c_level": "hba1c",
    "glucose_level": "glucose",
    "n_diabetes_medicines": "diabetes_medicines",
    "insulin": "diabetes_medicines",
}


@dataclass(frozen=True, kw_only=True)
class AdmissionInputs:
    """What the readmission features are computed from (either path).

    Codes are FHIR's: ``priority`` v3 ActPriority (``EM``, ``UR``, ``EL``),
    ``admit_source`` and ``discharge_disposition`` the HL7 ``admit-source`` and
    ``discharge-disposition`` code systems.

    Parameters
    ----------
    subject : str
        ``"Encounter/<id>"``.
    age : float
        Years at admission (NaN unknown).
    sex : str or None
    los_days : float
        Length of stay in whole days, at least 1.
    priority, admit_source, discharge_disposition : str or None
    n_lab_tests, n_procedures, n_medications : int
        During the stay.
    n_outpatient_prior_year, n_emergency_prior_year, n_inpatient_prior_year : int
        Encounters of each class in the 365 days before admission.
    n_prior_admissions : int
        Earlier inpatient stays of the patient in the data, at any time.
    readmission_of_recent_stay : bool
        This stay began within 30 days of the previous inpatient discharge (it is
        itself a 30-day readmission).
    diagnoses : tuple of (system, code)
        The stay's diagnoses, primary first.
    hba1c, glucose : str or None
        ``None`` not measured, else ``"normal"``, ``"high"``, ``"very_high"`` (HbA1c > 7 %
        / > 8 %; glucose > 200 / > 300 mg/dL).
    diabetes_medicines : tuple of str
        Diabetes medicine ingredients given (:data:`DIABETES_MEDICINES`).
    evidence : tuple of str
        Record references behind the inputs.
    """

    subject: str
    age: float
    sex: str | None
    los_days: float
    priority: str | None = None
    admit_source: str | None = None
    discharge_disposition: str | None = None
    n_lab_tests: int = 0
    n_procedures: int = 0
    n_medications: int = 0
    n_outpatient_prior_year: int = 0
    n_emergency_prior_year: int = 0
    n_inpatient_prior_year: int = 0
    n_prior_admissions: int = 0
    readmission_of_recent_stay: bool = False
    diagnoses: tuple[tuple[str, str], ...] = ()
    hba1c: str | None = None
    glucose: str | None = None
    diabetes_medicines: tuple[str, ...] = ()
    evidence: tuple[str, ...] = field(default=(), compare=False)


def _icd9_group(code: str) -> str:
    text = code.strip().upper()
    if not text or text[0] in "VE":
        return "other"
    try:
        number = float(text)
    except ValueError:
        return "other"
    if int(number) == 250:
        return "diabetes"
    if 390 <= number < 460 or int(number) == 785:
        return "circulatory"
    if 460 <= number < 520 or int(number) == 786:
        return "respiratory"
    if 520 <= number < 580 or int(number) == 787:
        return "digestive"
    if 800 <= number < 1000:
        return "injury"
    if 710 <= number < 740:
        return "musculoskeletal"
    if 580 <= number < 630 or int(number) == 788:
        return "genitourinary"
    if 140 <= number < 240:
        return "neoplasms"
    return "other"


def _icd10_group(code: str) -> str:
    text = code.strip().upper().replace(".", "")
    if len(text) < 3 or not text[0].isalpha() or not text[1:3].isdigit():
        return "other"
    letter, number = text[0], int(text[1:3])
    if letter == "E" and 8 <= number <= 13:
        return "diabetes"
    if letter == "I":
        return "circulatory"
    if letter == "J":
        return "respiratory"
    if letter == "K":
        return "digestive"
    if letter in "ST":
        return "injury"
    if letter == "M":
        return "musculoskeletal"
    if letter == "N":
        return "genitourinary"
    if letter == "C" or (letter == "D" and number <= 49):
        return "neoplasms"
    return "other"


def _matches(code: str, prefixes: tuple[str, ...]) -> bool:
    text = code.strip().upper()
    for prefix in prefixes:
        if "." in prefix or len(prefix.replace(".", "")) > 3:
            if text.startswith(prefix):
                return True
        elif text.split(".")[0] == prefix:
            return True
    return False


def comorbidities(diagnoses: Sequence[tuple[str, str]]) -> set[str]:
    """Return the :data:`COMORBIDITIES` present among ICD-9-CM / ICD-10-CM diagnoses.

    Parameters
    ----------
    diagnoses : sequence of (system, code)
        Codes of other systems are ignored.
    """
    found: set[str] = set()
    for system, code in diagnoses:
        if system == ICD9:
            index = 0
        elif system in ICD10_SYSTEMS:
            index = 1
        else:
            continue
        for name, prefixes in COMORBIDITIES.items():
            if _matches(code, prefixes[index]):
                found.add(name)
    return found


def diagnosis_group(system: str, code: str) -> str | None:
    """Return the Strack 2014 group of an ICD-9-CM or ICD-10-CM code.

    Parameters
    ----------
    system : str
        ``http://hl7.org/fhir/sid/icd-9-cm``, ``.../icd-10-cm`` or ``.../icd-10``.
    code : str
        The code (``"428.0"``, ``"I50.9"``).

    Returns
    -------
    str or None
        One of :data:`DIAGNOSIS_GROUPS`; ``None`` for other code systems (not mapped).
    """
    if system == ICD9:
        return _icd9_group(code)
    if system in ICD10_SYSTEMS:
        return _icd10_group(code)
    return None


_PRIORITY = {"EM": "emergency", "UR": "urgent", "EL": "elective"}
_SOURCE_GROUP = {
    "emd": "emergency",
    "gp": "referral",
    "outp": "referral",
    "mp": "referral",
    "hosp-trans": "transfer",
    "nursing": "transfer",
    "psych": "transfer",
    "rehab": "transfer",
}
_DISCHARGE_GROUP = {
    "home": "home",
    "alt-home": "home_health",
    "snf": "snf",
    "long": "snf",
    "rehab": "rehab",
    "hosp": "transfer",
    "other-hcf": "transfer",
    "psy": "transfer",
    "aadvice": "against_advice",
}
_DISCHARGE_DETAIL = {"hosp": "hospital", "long": "long_term_care"}
_LEVEL = {"normal": 0.0, "high": 1.0, "very_high": 2.0}


def vector(inputs: AdmissionInputs) -> np.ndarray:
    """Return the feature vector of one stay: shape ``(len(FEATURE_NAMES),)``, float64."""
    priority = _PRIORITY.get(inputs.priority or "")
    source = _SOURCE_GROUP.get(inputs.admit_source or "")
    discharge = _DISCHARGE_GROUP.get(inputs.discharge_disposition or "")
    groups = [diagnosis_group(system, code) for system, code in inputs.diagnoses]
    primary = groups[0] if groups else None
    present = {g for g in groups if g is not None}
    medicines = set(inputs.diabetes_medicines)
    detail = _DISCHARGE_DETAIL.get(inputs.discharge_disposition or "")
    flags = comorbidities(inputs.diagnoses)
    values = [
        inputs.age,
        {"male": 1.0, "female": 0.0}.get(inputs.sex or "", math.nan),
        inputs.los_days,
        *(float(priority == p) for p in ("emergency", "urgent", "elective")),
        *(float(source == s) for s in ("emergency", "referral", "transfer")),
        *(
            float(discharge == d)
            for d in ("home", "home_health", "snf", "rehab", "transfer", "against_advice")
        ),
        float(detail == "hospital"),
        float(detail == "long_term_care"),
        float(inputs.n_lab_tests),
        float(inputs.n_procedures),
        float(inputs.n_medications),
        float(inputs.n_outpatient_prior_year),
        float(inputs.n_emergency_prior_year),
        float(inputs.n_inpatient_prior_year),
        float(inputs.n_prior_admissions),
        float(inputs.readmission_of_recent_stay),
        float(len(inputs.diagnoses)),
        *(float(primary == g) for g in DIAGNOSIS_GROUPS),
        *(float(g in present) for g in DIAGNOSIS_GROUPS),
        *(float(c in flags) for c in COMORBIDITIES),
        _LEVEL.get(inputs.hba1c or "", math.nan),
        _LEVEL.get(inputs.glucose or "", math.nan),
        float(len(medicines)),
        float("insulin" in medicines),
    ]
    return round_significant(np.asarray(values, dtype=np.float64))


def matrix(inputs: Sequence[AdmissionInputs]) -> np.ndarray:
    """Stack vectors: shape ``(len(inputs), len(FEATURE_NAMES))``."""
    if not inputs:
        return np.empty((0, len(FEATURE_NAMES)), dtype=np.float64)
    return np.vstack([vector(i) for i in inputs])


# --------------------------------------------------------------------------- UCI adapter

#: UCI ``admission_type_id`` → v3 ActPriority (7 Trauma Center counts as emergency).
UCI_ADMISSION_TYPE = {"1": "EM", "2": "UR", "3": "EL", "7": "EM"}
#: UCI ``admission_source_id`` → HL7 admit-source.
UCI_ADMISSION_SOURCE = {
    "1": "gp",
    "2": "outp",
    "3": "mp",
    "4": "hosp-trans",
    "5": "nursing",
    "6": "other",
    "7": "emd",
    "8": "other",
    "10": "hosp-trans",
    "18": "other",
    "22": "hosp-trans",
    "25": "hosp-trans",
    "26": "other",
}
#: UCI ``discharge_disposition_id`` → HL7 discharge-disposition (13/14 hospice: ``oth``).
UCI_DISCHARGE = {
    "1": "home",
    "2": "hosp",
    "3": "snf",
    "4": "snf",
    "5": "other-hcf",
    "6": "alt-home",
    "7": "aadvice",
    "8": "alt-home",
    "11": "exp",
    "13": "oth",
    "14": "oth",
    "15": "other-hcf",
    "16": "other-hcf",
    "17": "other-hcf",
    "19": "exp",
    "20": "exp",
    "21": "exp",
    "22": "rehab",
    "23": "long",
    "24": "snf",
    "27": "other-hcf",
    "28": "psy",
    "29": "other-hcf",
    "30": "other-hcf",
}
#: Deaths and hospice discharges, excluded from training and evaluation (they cannot be
#: readmitted; Strack 2014).
UCI_EXCLUDED_DISPOSITIONS = frozenset({"11", "13", "14", "19", "20", "21"})
_UCI_LEVELS = {
    "A1Cresult": {"Norm": "normal", ">7": "high", ">8": "very_high"},
    "max_glu_serum": {"Norm": "normal", ">200": "high", ">300": "very_high"},
}


@dataclass(frozen=True, kw_only=True)
class UciRow:
    """One UCI encounter: its inputs, label and the attributes used for splits and cards."""

    inputs: AdmissionInputs
    readmitted_30d: bool
    patient: str
    race: str | None
    sex: str | None
    age_band: str
    excluded: bool


def _age_midpoint(band: str) -> float:
    low, _, high = band.strip("[)").partition("-")
    try:
        return (float(low) + float(high)) / 2.0
    except ValueError:
        return math.nan


def from_uci_row(
    row: Mapping[str, str], *, prior_admissions: int = 0, readmission: bool = False
) -> AdmissionInputs:
    """Map one ``diabetic_data.csv`` row to :class:`AdmissionInputs`.

    Parameters
    ----------
    row : mapping of str to str
        The CSV row (``?`` means missing).
    prior_admissions : int, default=0
        Earlier encounters of the same ``patient_nbr`` in the data.
    readmission : bool, default=False
        The patient's previous encounter in the data was followed by a readmission
        within 30 days (its ``readmitted`` is ``<30``): this stay is that readmission.

    Raises
    ------
    ValueError
        If a count column is not an integer (naming the column and encounter).
    """

    def count(column: str) -> int:
        try:
            return int(row[column])
        except (KeyError, ValueError):
            raise ValueError(
                f"encounter {row.get('encounter_id', '?')}: {column}={row.get(column)!r} "
                "is not an integer"
            ) from None

    diagnoses = tuple(
        (ICD9, row[c]) for c in ("diag_1", "diag_2", "diag_3") if row.get(c, "?") not in ("?", "")
    )
    medicines = {
        name
        for column in _UCI_DRUG_COLUMNS
        if row.get(column, "No") not in ("No", "")
        for name in column.split("-")
    }
    sex = {"Male": "male", "Female": "female"}.get(row.get("gender", ""))
    return AdmissionInputs(
        subject=f"Encounter/{row['encounter_id']}",
        age=_age_midpoint(row.get("age", "")),
        sex=sex,
        los_days=float(count("time_in_hospital")),
        priority=UCI_ADMISSION_TYPE.get(row.get("admission_type_id", "")),
        admit_source=UCI_ADMISSION_SOURCE.get(row.get("admission_source_id", "")),
        discharge_disposition=UCI_DISCHARGE.get(row.get("discharge_disposition_id", "")),
        n_lab_tests=count("num_lab_procedures"),
        n_procedures=count("num_procedures"),
        n_medications=count("num_medications"),
        n_outpatient_prior_year=count("number_outpatient"),
        n_emergency_prior_year=count("number_emergency"),
        n_inpatient_prior_year=count("number_inpatient"),
        n_prior_admissions=prior_admissions,
        readmission_of_recent_stay=readmission,
        diagnoses=diagnoses,
        hba1c=_UCI_LEVELS["A1Cresult"].get(row.get("A1Cresult", "")),
        glucose=_UCI_LEVELS["max_glu_serum"].get(row.get("max_glu_serum", "")),
        diabetes_medicines=tuple(sorted(medicines)),
    )


def read_uci(path: str | Path, *, limit: int | None = None) -> Iterator[UciRow]:
    """Read the UCI Diabetes 130-US file (``.csv`` or ``.csv.gz``), in file order.

    ``n_prior_admissions`` counts the patient's encounters with a smaller
    ``encounter_id`` (the data has no dates; encounter ids are increasing in time), and
    ``readmission_of_recent_stay`` is true when the previous one was followed by a
    readmission within 30 days (``<30``), which was known when this stay began.

    Parameters
    ----------
    path : str or Path
        ``diabetic_data.csv.gz`` (as in ``../shared/data/uci-diabetes-130``).
    limit : int, optional
        First N rows only.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the header lacks a required column or a row is malformed (naming it).
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"UCI diabetes file not found: {source}")
    opener = gzip.open if source.suffix == ".gz" else open
    with opener(source, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        reader = csv.DictReader(text)
        required = ("encounter_id", "patient_nbr", "readmitted", "discharge_disposition_id")
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{source}: not the UCI diabetes layout, missing {missing}")
        rows = list(reader) if limit is None else list(itertools.islice(reader, limit))
    earlier: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for row in rows:
        earlier[row["patient_nbr"]].append((int(row["encounter_id"]), row["readmitted"]))
    for stays in earlier.values():
        stays.sort()
    for row in rows:
        encounter = int(row["encounter_id"])
        before = [label for other, label in earlier[row["patient_nbr"]] if other < encounter]
        inputs = from_uci_row(
            row, prior_admissions=len(before), readmission=bool(before) and before[-1] == "<30"
        )
        race = row.get("race")
        yield UciRow(
            inputs=inputs,
            readmitted_30d=row["readmitted"] == "<30",
            patient=row["patient_nbr"],
            race=None if race in (None, "?", "") else race,
            sex=inputs.sex,
            age_band=row.get("age", "?"),
            excluded=row["discharge_disposition_id"] in UCI_EXCLUDED_DISPOSITIONS,
        )


# ------------------------------------------------------------------------ record adapter


def _level(value: float | None, high: float, very_high: float) -> str | None:
    if value is None:
        return None
    if value > very_high:
        return "very_high"
    if value > high:
        return "high"
    return "normal"


def from_record(
    session: Session, encounter_ids: Sequence[str], *, as_of: dt.datetime | None = None
) -> list[AdmissionInputs]:
    """Build the inputs of inpatient encounters from the record.

    Parameters
    ----------
    session : Session
        Read only.
    encounter_ids : sequence of str
        Encounter ids (encounters without a start are left out).
    as_of : datetime, optional
        Aware UTC; the end of a stay still in progress (default now).

    Returns
    -------
    list of AdmissionInputs
        In the order of ``encounter_ids``.
    """
    now = as_of or dt.datetime.now(dt.UTC)
    rows = session.execute(
        select(Encounter, Patient)
        .join(Patient, Patient.id == Encounter.patient_id)
        .where(Encounter.id.in_(list(encounter_ids)))
    ).all()
    found = {e.id: (e, p) for e, p in rows}
    out: list[AdmissionInputs] = []
    for encounter_id in encounter_ids:
        if encounter_id not in found:
            continue
        encounter, patient = found[encounter_id]
        start = encounter.period_start
        if start is None:
            continue
        end = encounter.period_end or now
        history = session.scalars(
            select(Encounter).where(
                Encounter.patient_id == patient.id,
                Encounter.id != encounter.id,
                Encounter.period_start < start,
            )
        ).all()
        year_ago = start - dt.timedelta(days=365)
        recent = [e for e in history if e.period_start and e.period_start >= year_ago]
        conditions = session.scalars(
            select(Condition).where(Condition.encounter_id == encounter.id).order_by(Condition.id)
        ).all()
        observations = session.scalars(
            select(Observation).where(
                Observation.encounter_id == encounter.id,
                Observation.status != "entered-in-error",
            )
        ).all()
        procedures = session.scalars(
            select(Procedure.id).where(Procedure.encounter_id == encounter.id)
        ).all()
        medicines = {
            (m.code or m.display or m.id, (m.display or "").lower())
            for m in [
                *session.scalars(
                    select(MedicationRequest).where(MedicationRequest.encounter_id == encounter.id)
                ),
                *session.scalars(
                    select(MedicationAdministration).where(
                        MedicationAdministration.encounter_id == encounter.id
                    )
                ),
            ]
        }
        hba1c = [o.value for o in observations if o.code == HBA1C and o.value is not None]
        glucose = [o.value for o in observations if o.code == GLUCOSE and o.value is not None]
        resource = encounter.resource or {}
        priority_codes = [
            c.get("code")
            for c in (resource.get("priority") or {}).get("coding", [])
            if isinstance(c, dict)
        ]
        priority = next((c for c in priority_codes if c in _PRIORITY), None)
        if priority is None and encounter.admit_source == "emd":
            priority = "EM"
        hours = max((end - start).total_seconds() / 3600.0, 0.0)
        previous_ends = [
            e.period_end
            for e in history
            if e.class_code == "IMP" and e.period_end is not None and e.period_end <= start
        ]
        out.append(
            AdmissionInputs(
                subject=f"Encounter/{encounter.id}",
                age=age_in_years(patient.birth_date, start),
                sex=patient.gender,
                los_days=float(max(1, math.ceil(hours / 24.0))),
                priority=priority,
                admit_source=encounter.admit_source,
                discharge_disposition=encounter.discharge_disposition,
                n_lab_tests=sum(1 for o in observations if o.category == "laboratory"),
                n_procedures=len(procedures),
                n_medications=len({code for code, _ in medicines}),
                n_outpatient_prior_year=sum(1 for e in recent if e.class_code == "AMB"),
                n_emergency_prior_year=sum(1 for e in recent if e.class_code == "EMER"),
                n_inpatient_prior_year=sum(1 for e in recent if e.class_code == "IMP"),
                n_prior_admissions=sum(1 for e in history if e.class_code == "IMP"),
                readmission_of_recent_stay=bool(previous_ends)
                and start - max(previous_ends) <= dt.timedelta(days=30),
                diagnoses=tuple(
                    (c.code_system or "", c.code) for c in conditions if c.code is not None
                ),
                hba1c=_level(hba1c[-1] if hba1c else None, 7.0, 8.0),
                glucose=_level(max(glucose) if glucose else None, 200.0, 300.0),
                diabetes_medicines=tuple(
                    sorted(
                        {
                            name
                            for _, display in medicines
                            for name in DIABETES_MEDICINES
                            if name in display
                        }
                    )
                ),
                evidence=(
                    f"Encounter/{encounter.id}",
                    *(f"Condition/{c.id}" for c in conditions),
                ),
            )
        )
    return out
