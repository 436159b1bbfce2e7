"""Input drift: the population stability index of each feature against the training sample.

The population stability index (PSI; Siddiqi, *Credit Risk Scorecards*, Wiley 2006,
ch. 8) compares the distribution of one variable in a recent population with its
distribution in the development (training) population::

    PSI = sum over bins b of (a_b - e_b) * ln(a_b / e_b)

where ``e_b`` and ``a_b`` are the shares of the training sample and of the recent rows
falling in bin ``b``. Here the bins are:

* the deciles of the training sample's non-missing values (quantile edges from
  :func:`numpy.quantile`; tied edges, as in discrete or constant features, merge, so a
  binary feature has two bins). The bins are right-closed, ``(edge_i, edge_i+1]``, and the
  outer two are open-ended, so recent values outside the training range still count;
* one more bin for missing values (NaN), so a change in missingness is a shift too.

An empty bin's share is taken as ``1e-4`` so the logarithm stays finite (the usual
practice; a bin empty in both populations then adds exactly 0).

The standard reading (Siddiqi 2006): PSI < 0.1 stable; 0.1-0.25 a moderate shift worth
watching; > 0.25 a major shift (the model may need retraining on recent data).

:func:`recent_matrix` builds the recent rows from the record through the same feature
code scoring uses (:mod:`reasoning.features`), and :func:`drift_report` compares them
with ``training_sample.npz``, which :func:`models.training.train` writes beside a
promoted model.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.errors import InvalidInputError, NotFoundError
from healthos_core.record.entities import Encounter
from reasoning.features import deterioration, readmission
from reasoning.inference import MANIFEST, shipped_models_dir

#: File of the training sample beside a model: ``X`` of shape ``(n, n_features)``, float64,
#: NaN = missing. The same name as ``models.training.TRAINING_SAMPLE`` (not imported here:
#: that module pulls in scikit-learn and matplotlib).
TRAINING_SAMPLE: Final = "training_sample.npz"
#: Share given to an empty bin (Siddiqi 2006 practice), so ``ln(a/e)`` stays finite.
EPSILON: Final = 1e-4
#: PSI from which a feature has shifted moderately (inclusive).
MODERATE: Final = 0.1
#: PSI above which a feature has shifted majorly.
MAJOR: Final = 0.25
#: Models whose recent rows :func:`recent_matrix` can build.
MODELS: Final = ("deterioration", "readmission")
#: Encounter statuses never counted as recent stays.
_EXCLUDED_STATUSES: Final = ("cancelled", "entered-in-error")

Status = Literal["stable", "moderate", "major"]


def psi_status(value: float) -> Status:
    """Return the standard reading of a PSI (Siddiqi 2006).

    Parameters
    ----------
    value : float
        A population stability index (>= 0).

    Returns
    -------
    {"stable", "moderate", "major"}
        ``"stable"`` below 0.1, ``"moderate"`` from 0.1 to 0.25 inclusive, ``"major"``
        above 0.25.
    """
    if value > MAJOR:
        return "major"
    if value >= MODERATE:
        return "moderate"
    return "stable"


def _shares(values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """Return the share of ``values`` in each right-closed bin and, last, the NaN bin."""
    missing = np.isnan(values)
    index = np.searchsorted(inner_edges, values[~missing], side="left")
    counts = np.bincount(index, minlength=inner_edges.size + 1).astype(np.float64)
    counts = np.append(counts, float(missing.sum()))
    return counts / values.size


def psi(expected: np.ndarray, actual: np.ndarray, *, bins: int = 10) -> float:
    """Return the population stability index of one feature.

    Parameters
    ----------
    expected : numpy.ndarray
        Shape ``(n_expected,)``: the feature in the training sample; NaN = missing.
        Its quantiles give the bin edges.
    actual : numpy.ndarray
        Shape ``(n_actual,)``: the feature in the recent population; NaN = missing.
    bins : int, default=10
        Quantile bins of the non-missing training values (10: deciles); tied edges
        merge, so constant or discrete features get fewer bins. A bin for missing
        values is always added.

    Returns
    -------
    float
        The PSI, >= 0 (0 for identical binned distributions). Empty bins count as a
        share of :data:`EPSILON`.

    Raises
    ------
    InvalidInputError
        If either array is empty or not one-dimensional, or ``bins`` < 1.

    Examples
    --------
    >>> round(psi(np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 4, 4]), bins=2), 4)
    0.2747
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.ndim != 1 or a.ndim != 1:
        raise InvalidInputError(
            f"psi needs one-dimensional arrays, got shapes {e.shape} and {a.shape}"
        )
    if e.size == 0 or a.size == 0:
        raise InvalidInputError(
            f"psi needs values in both populations (got {e.size} expected, {a.size} actual)"
        )
    if bins < 1:
        raise InvalidInputError(f"bins must be at least 1, got {bins}")
    finite = e[~np.isnan(e)]
    if finite.size:
        edges = np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)[1:-1])
        inner_edges = np.unique(edges)
    else:  # never observed in training: only the missing bin and one bin for values
        inner_edges = np.empty(0, dtype=np.float64)
    e_share = np.maximum(_shares(e, inner_edges), EPSILON)
    a_share = np.maximum(_shares(a, inner_edges), EPSILON)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def _models_dir(directory: Path | None) -> Path:
    if directory is not None:
        return Path(directory)
    from healthos_core.settings import get_settings

    configured = get_settings().models_dir
    return Path(configured) if configured else shipped_models_dir()


def drift_report(name: str, recent: np.ndarray, *, directory: Path | None = None) -> dict[str, Any]:
    """Compare recent feature rows with a model's training sample, feature by feature.

    Parameters
    ----------
    name : str
        The model (its sub-directory of the models directory).
    recent : numpy.ndarray
        Shape ``(n_recent, n_features)``, columns in the manifest's ``feature_names``
        order, NaN = missing (as :func:`recent_matrix` builds it).
    directory : Path, optional
        The models directory holding ``<name>/manifest.json`` and
        ``<name>/training_sample.npz``. Default: settings ``models_dir``, else the
        shipped models (``reasoning/artifacts``).

    Returns
    -------
    dict
        JSON-ready: ``model`` (``name``, ``version``), ``n_reference`` (training sample
        rows), ``n_recent``, ``features`` (``feature``, ``psi``, ``status``; sorted by
        PSI, largest first), ``max_psi``, ``shifted`` (features with PSI > 0.25, in the
        same order) and ``thresholds`` (``moderate`` 0.1, ``major`` 0.25).

    Raises
    ------
    NotFoundError
        If the model has no manifest in the directory.
    InvalidInputError
        If the training sample is missing or unreadable, ``recent`` has no rows, or
        the widths of ``recent``, the sample and the manifest differ.
    """
    model_dir = _models_dir(directory) / name
    manifest_path = model_dir / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        feature_names = [str(f) for f in manifest["feature_names"]]
    except FileNotFoundError:
        raise NotFoundError(f"no model {name!r}: {manifest_path} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{manifest_path} cannot be read: {exc}") from None
    sample_path = model_dir / TRAINING_SAMPLE
    if not sample_path.is_file():
        raise InvalidInputError(
            f"{name}: no training sample at {sample_path}; retrain the model with "
            "`healthos train` (it writes the sample on promotion) to check drift"
        )
    try:
        with np.load(sample_path) as archive:
            reference = np.asarray(archive["X"], dtype=np.float64)
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidInputError(f"{sample_path} cannot be read: {exc}") from None
    rows = np.asarray(recent, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise InvalidInputError(
            f"{name}: drift needs recent rows of shape (n, {len(feature_names)}) with n > 0, "
            f"got {rows.shape}"
        )
    width = len(feature_names)
    if width == 0 or rows.shape[1] != width or reference.ndim != 2 or reference.shape[1] != width:
        raise InvalidInputError(
            f"{name}: the manifest names {width} features, the training sample has shape "
            f"{reference.shape} and the recent rows {rows.shape}"
        )
    if reference.shape[0] == 0:
        raise InvalidInputError(f"{name}: the training sample {sample_path} has no rows")
    values = sorted(
        ((feature, psi(reference[:, j], rows[:, j])) for j, feature in enumerate(feature_names)),
        key=lambda item: (-item[1], item[0]),
    )
    return {
        "model": {"name": manifest.get("name", name), "version": str(manifest.get("version"))},
        "n_reference": int(reference.shape[0]),
        "n_recent": int(rows.shape[0]),
        "features": [
            {"feature": feature, "psi": value, "status": psi_status(value)}
            for feature, value in values
        ],
        "max_psi": values[0][1],
        "shifted": [feature for feature, value in values if value > MAJOR],
        "thresholds": {"moderate": MODERATE, "major": MAJOR},
    }


def recent_encounter_ids(
    session: Session, name: str, *, as_of: dt.datetime, days: int = 30
) -> list[str]:
    """Return the ids of a model's recent inpatient encounters, oldest first.

    Parameters
    ----------
    session : Session
        Read only.
    name : {"deterioration", "readmission"}
        Deterioration: inpatient (class ``IMP``) encounters that started in
        ``(as_of - days, as_of]``. Readmission: inpatient encounters that ended
        (``period_end``) in that interval. Cancelled and entered-in-error encounters
        are left out.
    as_of : datetime
        Timezone-aware end of the interval.
    days : int, default=30
        Length of the interval in days.

    Raises
    ------
    InvalidInputError
        If ``name`` is not a model, ``as_of`` is naive or ``days`` < 1.
    """
    if name not in MODELS:
        raise InvalidInputError(f"no drift features for model {name!r}; models: {MODELS}")
    if as_of.tzinfo is None:
        raise InvalidInputError("as_of must be timezone-aware (UTC)")
    if days < 1:
        raise InvalidInputError(f"days must be at least 1, got {days}")
    since = as_of - dt.timedelta(days=days)
    column = Encounter.period_start if name == "deterioration" else Encounter.period_end
    return list(
        session.scalars(
            select(Encounter.id)
            .where(
                Encounter.class_code == "IMP",
                Encounter.status.not_in(_EXCLUDED_STATUSES),
                column > since,
                column <= as_of,
            )
            .order_by(column, Encounter.id)
        )
    )


def recent_matrix(session: Session, name: str, *, as_of: dt.datetime, days: int = 30) -> np.ndarray:
    """Build the feature rows of a model's recent encounters from the record.

    Parameters
    ----------
    session : Session
        Read only.
    name : {"deterioration", "readmission"}
        The model; see :func:`recent_encounter_ids` for which encounters count.
    as_of : datetime
        Timezone-aware end of the interval (also the features' ``as_of``).
    days : int, default=30
        Length of the interval in days.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_encounters, len(FEATURE_NAMES))`` of
        :mod:`reasoning.features.<name>`, float64, NaN = missing; oldest first.

    Raises
    ------
    InvalidInputError
        If ``name`` is not a model, ``as_of`` is naive, ``days`` < 1, or no encounter
        falls in the interval.
    """
    ids = recent_encounter_ids(session, name, as_of=as_of, days=days)
    if name == "deterioration":
        rows = deterioration.matrix(deterioration.from_record(session, ids, as_of=as_of))
    else:
        rows = readmission.matrix(readmission.from_record(session, ids, as_of=as_of))
    if rows.shape[0] == 0:
        event = "started" if name == "deterioration" else "ended"
        raise InvalidInputError(
            f"{name}: no inpatient (IMP) encounter {event} in the {days} days before "
            f"{as_of.isoformat()}; nothing to compare with the training sample"
        )
    return rows
