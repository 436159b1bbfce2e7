"""What each HealthOS model is: data loader, estimator settings, explanation and card text.

Hyper-parameters were chosen by 5-fold cross-validation grouped by patient **on the
training split only** (the test split is never used for choosing anything).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.datasets import Dataset, Progress, load_physionet2012, load_uci_diabetes
from reasoning.features import deterioration, readmission


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """One trainable model.

    Attributes
    ----------
    name : str
        ``deterioration`` or ``readmission``; also the registered model's suffix.
    title : str
    load : callable
        ``load(path, limit=..., progress=...) -> Dataset``.
    feature_groups : dict of str to str
        Feature → explanation group.
    estimator : dict
        Keyword arguments of ``HistGradientBoostingClassifier``.
    permutations : int
        Group orders of the explanation (1 is exact for an additive model).
    seed, test_fraction : int, float
        The patient split (:func:`models.datasets.is_test_patient`).
    card : dict
        Model card text: intended_use, intended_users, out_of_scope, data,
        data_licence, data_citation, known_limits.
    training_cohorts : tuple of str
        The cohorts (:attr:`models.datasets.Dataset.cohorts`) the shipped champion was
        trained on, for manifests written before training recorded its ``training_data``
        (``healthos evaluate --cohort``).
    """

    name: str
    title: str
    load: Callable[..., Dataset]
    feature_groups: dict[str, str]
    estimator: dict[str, Any]
    permutations: int
    seed: int = 20121
    test_fraction: float = 0.2
    card: dict[str, Any] = field(default_factory=dict)
    training_cohorts: tuple[str, ...] = ()
    #: ``make_estimator(spec) -> sklearn classifier`` to calibrate instead of the default
    #: ``HistGradientBoostingClassifier(**estimator)`` (every step must convert with skl2onnx).
    make_estimator: Callable[[ModelSpec], Any] | None = None

    def load_data(
        self,
        path: str | Path,
        *,
        limit: int | None = None,
        progress: Progress | None = None,
        **options: Any,
    ) -> Dataset:
        """Load the model's rows from the dataset's own layout (``options`` go to the loader)."""
        return self.load(path, limit=limit, progress=progress, **options)


_FDA_NOTE = (
    "Advisory only: suggestions go to a review list with their inputs, contributions and "
    "evidence; the model never changes the record and never raises an alarm."
)

DETERIORATION = ModelSpec(
    name="deterioration",
    title="In-hospital death from the first 48 hours of an ICU stay",
    load=load_physionet2012,
    feature_groups=deterioration.FEATURE_GROUPS,
    estimator={
        # An additive model (one variable per tree): exact, cheap explanations.
        "interaction_cst": "no_interactions",
        "learning_rate": 0.03,
        "max_iter": 1000,
        "max_leaf_nodes": 6,
        "min_samples_leaf": 40,
        "l2_regularization": 1.0,
        "early_stopping": True,
        "validation_fraction": 0.15,
        "n_iter_no_change": 30,
    },
    permutations=1,
    seed=20121,
    # version 1 read every stay of both shared sets: n_train + n_test = 3,234 + 3,172
    training_cohorts=("set-a", "set-b"),
    card={
        "intended_use": (
            "Rank adult ICU stays by the calibrated risk of in-hospital death estimated "
            "from vital signs, laboratory results, ventilation, urine output, age, sex "
            "and ICU type in the first 48 hours, so clinicians review the highest-risk "
            "patients first. " + _FDA_NOTE
        ),
        "intended_users": ["ICU clinicians", "critical care outreach teams"],
        "out_of_scope": [
            "Children, and wards other than intensive care (not in the training data)",
            "Decisions to limit or withdraw treatment",
            "Use as an alarm or in place of bedside assessment (NEWS2 escalation rules apply)",
        ],
        "data": (
            "PhysioNet/Computing in Cardiology Challenge 2012: ICU stays of at least 48 h "
            "from MIMIC-II (Beth Israel Deaconess, Boston), sets A and B as shared "
            "(6,406 stays), time series of up to 37 variables, outcome in-hospital death."
        ),
        "data_licence": "Open Data Commons Attribution License v1.0 (PhysioNet)",
        "data_citation": (
            "Silva I, Moody G, Scott DJ, Celi LA, Mark RG. Predicting in-hospital mortality "
            "of ICU patients: the PhysioNet/Computing in Cardiology Challenge 2012. "
            "Comput Cardiol 2012;39:245-248."
        ),
        "known_limits": [
            "One academic centre, 2001-2008; case mix and practice have changed since.",
            "Stays shorter than 48 h are not in the data; earlier in a stay the window is "
            "shorter than in training and the risk is less certain.",
            "Missingness is informative here (tests ordered for sicker patients); a "
            "different ordering practice shifts the model.",
            "Ages above 89 are recorded as 90 (de-identification).",
        ],
    },
)

READMISSION = ModelSpec(
    name="readmission",
    title="Readmission within 30 days of discharge",
    load=load_uci_diabetes,
    feature_groups=readmission.FEATURE_GROUPS,
    estimator={
        "learning_rate": 0.03,
        "max_iter": 1500,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 200,
        "l2_regularization": 3.0,
        "early_stopping": True,
        "validation_fraction": 0.15,
        "n_iter_no_change": 50,
    },
    # An order and its reverse: under 1 ms per explanation (SPEC target), exact for up to
    # pairwise interactions. Against 8 orders on 2,000 held-out rows: the same top factor
    # in 91 %, the same top-3 set in 69 %, max |difference| 0.28 log-odds (the trees
    # have higher-order interactions; docs/models.md).
    permutations=2,
    seed=20141,
    # version 1 read the whole shared file: n_train + n_test = 81,168 rows - 1,940 excluded
    training_cohorts=("diabetic_data",),
    card={
        "intended_use": (
            "At discharge from an inpatient stay, estimate the calibrated risk of "
            "readmission within 30 days so care coordinators and clinicians can target "
            "transitional care (follow-up call, early clinic visit, medication "
            "reconciliation). " + _FDA_NOTE
        ),
        "intended_users": ["discharging clinicians", "care coordinators", "case managers"],
        "out_of_scope": [
            "Patients who died or were discharged to hospice (excluded from training)",
            "Denying or delaying care, or insurance decisions",
        ],
        "data": (
            "UCI Diabetes 130-US hospitals 1999-2008 (Cerner Health Facts): inpatient "
            "encounters of patients with diabetes, 1-14 days, with labs and medicines; "
            "the shared 80% (81,168 encounters, 56,990 patients)."
        ),
        "data_licence": "CC BY 4.0 (UCI Machine Learning Repository)",
        "data_citation": (
            "Strack B, DeShazo JP, Gennings C, et al. Impact of HbA1c measurement on "
            "hospital readmission rates: analysis of 70,000 clinical database patient "
            "records. BioMed Res Int 2014;2014:781670."
        ),
        "known_limits": [
            "Patients with diabetes only; 1999-2008 US practice.",
            "No dates: the order of a patient's encounters is taken from encounter ids.",
            "Readmissions to other hospitals are not seen in the data.",
            "Race is reported for fairness checks only and is not a model input.",
        ],
    },
)

SPECS: dict[str, ModelSpec] = {spec.name: spec for spec in (DETERIORATION, READMISSION)}


#: Models whose spec lives in another module (registered when it is imported), so
#: :func:`get_spec` finds them without the caller importing that module first.
_REGISTERED_ELSEWHERE: dict[str, str] = {
    "denial": "models.denial",
    "denial_line": "models.denial",
}


def register_spec(spec: ModelSpec) -> None:
    """Add a model to :data:`SPECS` (other modules register theirs on import).

    Raises
    ------
    ValueError
        If another spec already has that name.
    """
    if spec.name in SPECS and SPECS[spec.name] is not spec:
        raise ValueError(f"a model named {spec.name!r} is already registered")
    SPECS[spec.name] = spec


def get_spec(name: str) -> ModelSpec:
    """Return a model's spec.

    Raises
    ------
    KeyError
        If no model has that name (listing the known ones).
    """
    if name not in SPECS and name in _REGISTERED_ELSEWHERE:
        import importlib

        importlib.import_module(_REGISTERED_ELSEWHERE[name])
    try:
        return SPECS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(SPECS))}") from None
