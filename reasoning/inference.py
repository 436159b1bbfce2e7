"""Scoring with shipped ONNX models: onnxruntime only, no scikit-learn or MLflow.

A model directory holds ``model.onnx`` (float32 input ``features`` of shape
``(n, n_features)``, output ``probabilities`` of shape ``(n, 2)``, zipmap off) and
``manifest.json`` (name, version, run id, feature names, explanation groups and
reference, metrics), as :mod:`models.training` writes them.

Explanations
------------
:meth:`OnnxModel.explain` returns, per explanation group (a variable: every statistic
of lactate is one group), a signed contribution in **log-odds of the calibrated
probability**. They are baseline Shapley values estimated by permutation sampling
(Štrumbelj & Kononenko, *Knowl Inf Syst* 2014;41:647-665; Sundararajan & Najmi,
*ICML* 2020, "baseline Shapley"): along each of the manifest's fixed group orders the
groups are switched one by one from the reference stay (training medians) to the
patient's values, and each switch's change in log-odds is that group's share. Every
order is exactly additive, so the contributions always sum to
``logit(p(x)) - logit(p(reference))``; for an additive model (the deterioration model
is one) a single order gives the exact Shapley values. All switched rows are scored in
one onnxruntime batch.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

if TYPE_CHECKING:
    from healthos_core.settings import Settings

MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
_EPS = 1e-7


class ModelNotAvailableError(LookupError):
    """No model of that name is loaded (not shipped, not trained, or its files are bad)."""


@dataclass(frozen=True, slots=True)
class Explained:
    """A probability and its additive explanation.

    Attributes
    ----------
    probability : float
        Calibrated probability of the outcome.
    base_logit : float
        Log-odds of the reference stay.
    contributions : dict of str to float
        Group → signed log-odds contribution; ``base_logit + sum == logit(probability)``.
    """

    probability: float
    base_logit: float
    contributions: dict[str, float]


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p.astype(np.float64), _EPS, 1.0 - _EPS)
    return np.log(q / (1.0 - q))


class OnnxModel:
    """One model loaded from its directory; thread-safe for scoring.

    Parameters
    ----------
    directory : Path
        Holds ``manifest.json`` and ``model.onnx``.
    threads : int, default=1
        onnxruntime intra-op threads (1 is fastest for single rows).

    Raises
    ------
    ModelNotAvailableError
        If a file is missing, the manifest is not valid JSON or lacks a field, or the
        ONNX input width differs from the manifest's feature count.
    """

    def __init__(self, directory: Path, *, threads: int = 1) -> None:
        self.directory = Path(directory)
        try:
            manifest = json.loads((self.directory / MANIFEST).read_text(encoding="utf-8"))
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(
                str(self.directory / manifest["onnx"]["file"]),
                sess_options=options,
                providers=["CPUExecutionProvider"],
            )
            self.manifest: dict[str, Any] = manifest
            self.name: str = manifest["name"]
            self.version: str = str(manifest["version"])
            self.feature_names: tuple[str, ...] = tuple(manifest["feature_names"])
            self._input: str = manifest["onnx"]["input"]
            self._output: str = manifest["onnx"]["output"]
            explanation = manifest["explanation"]
            self.reference = np.asarray(explanation["reference"], dtype=np.float32)
            index = {name: i for i, name in enumerate(self.feature_names)}
            self.groups: tuple[str, ...] = tuple(explanation["groups"])
            self._group_columns = [
                np.array([index[f] for f in explanation["groups"][g]], dtype=np.intp)
                for g in self.groups
            ]
            self._orders = [np.asarray(o, dtype=np.intp) for o in explanation["orders"]]
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ModelNotAvailableError(
                f"model in {self.directory} cannot be loaded: {type(exc).__name__}: {exc}"
            ) from exc
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelNotAvailableError(
                f"model in {self.directory} cannot be loaded: {type(exc).__name__}: {exc}"
            ) from exc
        width = self._session.get_inputs()[0].shape[1]
        if isinstance(width, int) and width != len(self.feature_names):
            raise ModelNotAvailableError(
                f"{self.directory}: model.onnx takes {width} features, the manifest names "
                f"{len(self.feature_names)}"
            )
        self.reference_logit = float(self._logits(self.reference[None, :])[0])

    def __repr__(self) -> str:
        return f"OnnxModel(name={self.name!r}, version={self.version!r})"

    def _raw(self, x: np.ndarray) -> np.ndarray:
        out = self._session.run([self._output], {self._input: x})[0]
        return np.asarray(out)[:, 1]

    def _logits(self, x: np.ndarray) -> np.ndarray:
        return _logit(self._raw(x))

    def _check(self, x: np.ndarray) -> np.ndarray:
        array = np.asarray(x, dtype=np.float32)
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != len(self.feature_names):
            raise ValueError(
                f"{self.name}: expected features of shape (n, {len(self.feature_names)}), "
                f"got {np.shape(x)}"
            )
        return np.ascontiguousarray(array)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Return calibrated probabilities.

        Parameters
        ----------
        x : numpy.ndarray
            Shape ``(n, n_features)`` or ``(n_features,)``; NaN = missing.

        Returns
        -------
        numpy.ndarray
            Shape ``(n,)``, float64.

        Raises
        ------
        ValueError
            If the width differs from :attr:`feature_names`.
        """
        return self._raw(self._check(x)).astype(np.float64)

    def explain(self, x: np.ndarray) -> Explained:
        """Return the probability of one row and its additive group contributions.

        Parameters
        ----------
        x : numpy.ndarray
            Shape ``(n_features,)``.

        Raises
        ------
        ValueError
            If the width differs from :attr:`feature_names`.
        """
        row = self._check(x)[0]
        k = len(self.groups)
        batch = np.empty((len(self._orders) * k + 2, row.size), dtype=np.float32)
        batch[0] = self.reference
        batch[1] = row
        position = 2
        for order in self._orders:
            current = self.reference.copy()
            for group in order:
                columns = self._group_columns[group]
                current[columns] = row[columns]
                batch[position] = current
                position += 1
        logits = self._logits(batch)
        contributions = np.zeros(k, dtype=np.float64)
        position = 2
        for order in self._orders:
            previous = logits[0]
            for group in order:
                contributions[group] += logits[position] - previous
                previous = logits[position]
                position += 1
        contributions /= len(self._orders)
        probability = float(self._raw(row[None, :])[0])
        return Explained(
            probability=probability,
            base_logit=float(logits[0]),
            contributions={g: float(c) for g, c in zip(self.groups, contributions, strict=True)},
        )

    def describe(self) -> dict[str, Any]:
        """Return ``{"name", "version", "run_id", "trained_at"}`` for ``/ready``."""
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.manifest.get("run_id"),
            "trained_at": self.manifest.get("created"),
        }


def shipped_models_dir() -> Path:
    """Return the directory of the models shipped with HealthOS (``reasoning/artifacts``)."""
    return Path(__file__).resolve().parent / "artifacts"


def models_dir(settings: Settings | None = None) -> Path:
    """Return where champions are written and served from.

    Parameters
    ----------
    settings : Settings, optional
        Default :func:`healthos_core.settings.get_settings`.

    Returns
    -------
    Path
        ``settings.models_dir`` (``HEALTHOS_MODELS_DIR``) when set, else
        :func:`shipped_models_dir`.
    """
    from healthos_core.settings import get_settings

    settings = settings or get_settings()
    return Path(settings.models_dir) if settings.models_dir else shipped_models_dir()


class ModelStore:
    """The models of one directory (one sub-directory per model), loaded once.

    :meth:`reload` picks up a newly promoted champion without a restart: a model whose
    manifest changed on disk is loaded again; the old session keeps serving until the
    new one is ready.

    Parameters
    ----------
    directory : Path, optional
        Default :func:`shipped_models_dir`.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else shipped_models_dir()
        self._models: dict[str, OnnxModel] = {}
        self._stamps: dict[str, tuple[float, int]] = {}
        self.errors: dict[str, str] = {}
        self._lock = threading.Lock()
        self.reload()

    def _candidates(self) -> Iterator[Path]:
        if self.directory.is_dir():
            yield from sorted(
                p for p in self.directory.iterdir() if (p / MANIFEST).is_file() and p.is_dir()
            )

    def reload(self) -> list[dict[str, Any]]:
        """Load new or changed models; return :meth:`describe` of every loaded model."""
        with self._lock:
            seen = set()
            for path in self._candidates():
                stat = (path / MANIFEST).stat()
                stamp = (stat.st_mtime, stat.st_size)
                seen.add(path.name)
                if self._stamps.get(path.name) == stamp and path.name in self._models:
                    continue
                try:
                    model = OnnxModel(path)
                except ModelNotAvailableError as exc:
                    self.errors[path.name] = str(exc)
                    continue
                self.errors.pop(path.name, None)
                self._models[model.name] = model
                self._stamps[path.name] = stamp
            for gone in set(self._models) - seen:
                self._models.pop(gone, None)
                self._stamps.pop(gone, None)
            return self.describe()

    def describe(self) -> list[dict[str, Any]]:
        """Return name, version, run id and training time of each loaded model."""
        return [self._models[name].describe() for name in sorted(self._models)]

    def names(self) -> Sequence[str]:
        """Return the loaded model names, sorted."""
        return sorted(self._models)

    def get(self, name: str) -> OnnxModel:
        """Return a loaded model.

        Raises
        ------
        ModelNotAvailableError
            If no model of that name is loaded (naming the directory and load errors).
        """
        try:
            return self._models[name]
        except KeyError:
            detail = f"; load error: {self.errors[name]}" if name in self.errors else ""
            raise ModelNotAvailableError(
                f"no model {name!r} in {self.directory} (loaded: "
                f"{', '.join(self.names()) or 'none'}){detail}"
            ) from None


_default_store: ModelStore | None = None
_default_lock = threading.Lock()


def default_store() -> ModelStore:
    """Return the process-wide store of the configured model directory (loaded once).

    The directory is ``HEALTHOS_MODELS_DIR`` (settings ``models_dir``) when set, else
    the shipped models.
    """
    global _default_store
    with _default_lock:
        if _default_store is None:
            _default_store = ModelStore(models_dir())
        return _default_store


def probability_band(probability: float, thresholds: Sequence[float]) -> int:
    """Return how many of the ascending ``thresholds`` the probability reaches."""
    if math.isnan(probability):
        raise ValueError("probability is NaN")
    return sum(1 for t in thresholds if probability >= t)
