"""Training and evaluation data of each model, built only through :mod:`reasoning.features`.

A :class:`Dataset` is the feature matrix of one model with its labels, the patient of
each row (splits are by patient), the attributes model cards break performance down by,
and the published baseline scores of the same rows.

The held-out split is a pure function of the patient id and a seed
(:func:`is_test_patient`): a patient is in the test split whatever slice of the data is
read, so ``healthos evaluate`` finds exactly the patients training held out.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from healthos_core.datasets.physionet2012 import iter_stays, read_outcomes
from healthos_core.errors import InvalidInputError
from healthos_core.observations_import import load_mapping
from models.evaluation.news2 import worst_news2
from reasoning.features import deterioration, readmission

Progress = Callable[[int], None]


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """One model's rows.

    Attributes
    ----------
    feature_names : tuple of str
    X : numpy.ndarray
        Shape ``(n, len(feature_names))``, float64, NaN = missing.
    y : numpy.ndarray
        Shape ``(n,)``, 0/1 outcome.
    patients : numpy.ndarray
        Shape ``(n,)``, the patient of each row (str).
    subjects : list of str
        Row ids (``"Encounter/<id>"``).
    subgroups : dict of str to list of str
        Attribute → level per row (``sex``, ``age_band``, ``race`` where known).
    baselines : dict of str to numpy.ndarray
        Published score per row (NaN where the source has none); higher = more risk.
    excluded : int
        Rows of the source left out by design (e.g. deaths and hospice discharges).
    cohorts : list of str
        The source of each row (PhysioNet 2012: its set, ``"set-a"``; UCI: the file's
        name without ``.csv[.gz]``, ``"diabetic_data"``): what ``healthos evaluate
        --cohort`` tells apart, since a champion was trained on named sources.
    """

    feature_names: tuple[str, ...]
    X: np.ndarray
    y: np.ndarray
    patients: np.ndarray
    subjects: list[str]
    subgroups: dict[str, list[str]] = field(default_factory=dict)
    baselines: dict[str, np.ndarray] = field(default_factory=dict)
    excluded: int = 0
    cohorts: list[str] = field(default_factory=list)

    def subset(self, mask: np.ndarray) -> Dataset:
        """Return the rows where ``mask`` is true."""
        index = np.flatnonzero(mask)
        return Dataset(
            feature_names=self.feature_names,
            X=self.X[index],
            y=self.y[index],
            patients=self.patients[index],
            subjects=[self.subjects[i] for i in index],
            subgroups={k: [v[i] for i in index] for k, v in self.subgroups.items()},
            baselines={k: v[index] for k, v in self.baselines.items()},
            excluded=self.excluded,
            cohorts=[self.cohorts[i] for i in index] if self.cohorts else [],
        )


def is_test_patient(patient: str, *, seed: int, test_fraction: float) -> bool:
    """Return whether a patient belongs to the held-out test split.

    SHA-256 of ``"<seed>:<patient>"`` read as a number in [0, 1) is compared with
    ``test_fraction``: stable across runs, machines and data slices.
    """
    digest = hashlib.sha256(f"{seed}:{patient}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction


def held_out_mask(patients: np.ndarray, *, seed: int, test_fraction: float) -> np.ndarray:
    """Vectorised :func:`is_test_patient`: boolean array of shape ``(n,)``."""
    return np.array(
        [is_test_patient(str(p), seed=seed, test_fraction=test_fraction) for p in patients],
        dtype=bool,
    )


def file_cohort(path: str | Path) -> str:
    """Return the cohort name of a one-file dataset: its name without ``.gz`` and ``.csv``.

    ``../shared/data/uci-diabetes-130/diabetic_data.csv.gz`` → ``"diabetic_data"``.
    """
    name = Path(path).name
    for suffix in (".gz", ".csv"):
        name = name.removesuffix(suffix)
    return name


def _age_band(age: float) -> str:
    if math.isnan(age):
        return "unknown"
    if age < 45:
        return "18-44"
    if age < 65:
        return "45-64"
    if age < 80:
        return "65-79"
    return "80+"


def load_physionet2012(
    directory: str | Path, *, limit: int | None = None, progress: Progress | None = None
) -> Dataset:
    """Load the deterioration rows: PhysioNet 2012 stays and in-hospital death.

    Parameters
    ----------
    directory : str or Path
        The dataset folder (``set-*.tar.gz`` + ``Outcomes-*.txt``).
    limit : int, optional
        First N stays only.
    progress : callable, optional
        Called with the number of stays read so far, every 100 stays.

    Raises
    ------
    FileNotFoundError, ValueError
        From the reader (missing folder, malformed record), naming the file.
    InvalidInputError
        If a stay has no outcome row.
    """
    root = Path(directory)
    outcomes = read_outcomes(root)
    mapping = load_mapping()
    vectors, labels, patients, subjects = [], [], [], []
    sex, age_band = [], []
    saps, sofa, news2 = [], [], []
    cohorts: list[str] = []
    for count, stay in enumerate(iter_stays(root, limit=limit), start=1):
        outcome = outcomes.get(stay.record_id)
        if outcome is None:
            raise InvalidInputError(f"{root}: stay {stay.record_id} has no Outcomes row")
        inputs = deterioration.from_physionet_stay(stay, mapping=mapping)
        vectors.append(deterioration.vector(inputs))
        labels.append(int(outcome.in_hospital_death))
        patients.append(stay.record_id)
        subjects.append(inputs.subject)
        sex.append(inputs.sex or "unknown")
        age_band.append(_age_band(inputs.age))
        saps.append(math.nan if outcome.saps_i is None else float(outcome.saps_i))
        sofa.append(math.nan if outcome.sofa is None else float(outcome.sofa))
        news2.append(float(worst_news2(stay).partial))
        cohorts.append(stay.set_name)
        if progress is not None and count % 100 == 0:
            progress(count)
    if not vectors:
        raise InvalidInputError(f"{root}: no stays read")
    return Dataset(
        feature_names=deterioration.FEATURE_NAMES,
        X=np.vstack(vectors),
        y=np.asarray(labels, dtype=np.int64),
        patients=np.asarray(patients),
        subjects=subjects,
        subgroups={"sex": sex, "age_band": age_band},
        baselines={
            "SAPS-I": np.asarray(saps),
            "SOFA": np.asarray(sofa),
            "NEWS2 (worst, first 24 h)": np.asarray(news2),
        },
        cohorts=cohorts,
    )


def load_uci_diabetes(
    path: str | Path, *, limit: int | None = None, progress: Progress | None = None
) -> Dataset:
    """Load the readmission rows: UCI Diabetes 130-US encounters and ``readmitted == "<30"``.

    Deaths and hospice discharges (``discharge_disposition_id`` 11, 13, 14, 19, 20, 21)
    are excluded and counted in ``excluded``. Every row's cohort is the file's name
    (:func:`file_cohort`).

    Parameters
    ----------
    path : str or Path
        ``diabetic_data.csv.gz`` (or ``.csv``).
    limit : int, optional
        First N rows of the file only.
    progress : callable, optional
        Called with the number of rows read so far, every 10,000 rows.

    Raises
    ------
    FileNotFoundError, ValueError
        From :func:`reasoning.features.readmission.read_uci`.
    """
    vectors, labels, patients, subjects = [], [], [], []
    sex, age_band, race, prior = [], [], [], []
    excluded = 0
    for count, row in enumerate(readmission.read_uci(path, limit=limit), start=1):
        if progress is not None and count % 10_000 == 0:
            progress(count)
        if row.excluded:
            excluded += 1
            continue
        vectors.append(readmission.vector(row.inputs))
        labels.append(int(row.readmitted_30d))
        patients.append(row.patient)
        subjects.append(row.inputs.subject)
        sex.append(row.sex or "unknown")
        age_band.append(row.age_band)
        race.append(row.race or "unknown")
        prior.append(float(row.inputs.n_inpatient_prior_year))
    if not vectors:
        raise InvalidInputError(f"{path}: no encounters read")
    return Dataset(
        feature_names=readmission.FEATURE_NAMES,
        X=np.vstack(vectors),
        y=np.asarray(labels, dtype=np.int64),
        patients=np.asarray(patients),
        subjects=subjects,
        subgroups={"sex": sex, "age_band": age_band, "race": race},
        baselines={"inpatient stays in the prior year": np.asarray(prior)},
        excluded=excluded,
        cohorts=[file_cohort(path)] * len(labels),
    )
