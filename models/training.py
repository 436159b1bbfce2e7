"""Train, export, register and promote a HealthOS model: sklearn → ONNX → MLflow.

``healthos train NAME --data PATH`` runs :func:`train`:

1. load the dataset's own layout through :mod:`reasoning.features` (:mod:`models.datasets`);
2. split by patient (:func:`models.datasets.is_test_patient`, fixed seed);
3. fit ``CalibratedClassifierCV(HistGradientBoostingClassifier, method="sigmoid",
   ensemble=False)`` with patient-grouped folds (Platt 1999 scaling of the tree
   ensemble's log-odds; every step converts with skl2onnx);
4. export ONNX (float32 input ``features``, output ``probabilities``, zipmap off) and
   check sklearn ↔ onnxruntime parity on the test split (:class:`ParityError` above
   ``1e-4``);
5. measure the test split (AUROC, AUPRC, Brier, calibration slope and intercept, with
   bootstrap 95 % intervals) beside the dataset's published baselines, by subgroup;
6. log params, metrics, the signature, an input example, the ONNX model, the manifest
   and the model card to MLflow and register ``healthos-<name>``;
7. move the ``@champion`` alias only if the new model is no worse than the current
   champion **on the same test split** (AUROC not lower and Brier not higher than
   ``tolerance``); on promotion write ``model.onnx``, ``manifest.json``, the model card
   and a training sample (for drift) to ``<models_dir>/<name>/``, where scoring and
   serving load it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from healthos_core.errors import HealthOSError
from healthos_core.settings import Settings, get_settings
from models.card import ModelCard, render_model_card
from models.datasets import Dataset, held_out_mask
from models.metrics import binary_metrics, subgroup_metrics
from models.specs import ModelSpec, get_spec
from reasoning.inference import MANIFEST, MODEL_FILE, OnnxModel

# Where champions live is read by serving too, so it is defined in reasoning.inference;
# re-exported here for the notebooks and other callers of ``models.training.models_dir``.
from reasoning.inference import models_dir as models_dir

PARITY_TOLERANCE = 1e-4
TRAINING_SAMPLE = "training_sample.npz"
#: Rows of the training matrix kept beside the model for drift (PSI) checks.
TRAINING_SAMPLE_ROWS = 5000
ONNX_OPSET = {"": 17, "ai.onnx.ml": 3}

Stage = Callable[[str], None]


class ParityError(HealthOSError):
    """onnxruntime and scikit-learn disagree by more than :data:`PARITY_TOLERANCE`."""


@dataclass(kw_only=True)
class TrainReport:
    """What one training run did (JSON-ready through :meth:`to_dict`)."""

    name: str
    version: str | None
    run_id: str
    tracking_uri: str
    n_train: int
    n_test: int
    metrics: dict[str, Any]
    baselines: dict[str, dict[str, Any]]
    champion: dict[str, Any] | None
    promoted: bool
    reason: str
    parity_max_abs_diff: float
    seconds: float
    artifacts: str | None
    fit_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-ready dict."""
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "tracking_uri": self.tracking_uri,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "metrics": self.metrics,
            "baselines": self.baselines,
            "champion": self.champion,
            "promoted": self.promoted,
            "reason": self.reason,
            "parity_max_abs_diff": self.parity_max_abs_diff,
            "fit_seconds": round(self.fit_seconds, 1),
            "seconds": round(self.seconds, 1),
            "artifacts": self.artifacts,
        }


def tracking_uri(settings: Settings | None = None) -> str:
    """Return the MLflow tracking URI: the setting, else ``sqlite:///<var_dir>/mlflow.db``."""
    settings = settings or get_settings()
    if settings.mlflow_tracking_uri:
        return settings.mlflow_tracking_uri
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(settings.var_dir / 'mlflow.db').resolve().as_posix()}"


def registered_name(name: str) -> str:
    """Return the MLflow registered model name of a HealthOS model (``healthos-<name>``)."""
    return f"healthos-{name}"


# ----------------------------------------------------------------------------- fitting


def fit(spec: ModelSpec, data: Dataset) -> Any:
    """Fit the calibrated estimator of ``spec`` on ``data`` (patient-grouped folds).

    Returns
    -------
    sklearn.calibration.CalibratedClassifierCV
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import GroupKFold

    folds = min(5, len(np.unique(data.patients)))
    if folds < 2 or len(np.unique(data.y)) < 2:
        raise HealthOSError(
            f"{spec.name}: training needs two classes and at least two patients "
            f"(got {len(data.y)} rows, {int(data.y.sum())} positive)"
        )
    splits = list(GroupKFold(n_splits=folds).split(data.X, data.y, data.patients))
    base = (
        spec.make_estimator(spec)
        if spec.make_estimator is not None
        else HistGradientBoostingClassifier(random_state=spec.seed, **spec.estimator)
    )
    model = CalibratedClassifierCV(base, method="sigmoid", cv=splits, ensemble=False)
    # A column observed in fewer rows than a leaf may hold can never be split on; in a
    # small slice it may even be empty within a fold, which HGB's binning rejects. Such
    # columns are fitted as the constant 0: the model ignores them, as it would anyway.
    observed = np.sum(~np.isnan(data.X), axis=0)
    sparse = observed < int(spec.estimator.get("min_samples_leaf", 20))
    X = np.where(sparse, 0.0, data.X)
    return model.fit(X, data.y)


def to_onnx(model: Any, n_features: int) -> bytes:
    """Convert a fitted classifier to ONNX: float32 ``features`` → ``probabilities``."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onnx_model = convert_sklearn(
        model,
        initial_types=[("features", FloatTensorType([None, n_features]))],
        options={id(model): {"zipmap": False}},
        target_opset=ONNX_OPSET,
    )
    serialized: bytes = onnx_model.SerializeToString()
    return serialized


def parity(model: Any, onnx_model: OnnxModel, X: np.ndarray) -> float:
    """Return max |p_sklearn − p_onnxruntime| over the rows of ``X``.

    scikit-learn scores the float64 feature vectors as :mod:`reasoning.features` builds
    them; onnxruntime their float32 cast, exactly as serving does.
    """
    expected = model.predict_proba(X)[:, 1]
    got = onnx_model.predict_proba(X.astype(np.float32))
    return float(np.max(np.abs(expected - got))) if len(X) else 0.0


def explanation_settings(
    spec: ModelSpec, feature_names: tuple[str, ...], X_train: np.ndarray
) -> dict[str, Any]:
    """Return the manifest's ``explanation``: groups, reference (training medians), orders."""
    groups: dict[str, list[str]] = {}
    for feature in feature_names:
        groups.setdefault(spec.feature_groups.get(feature, feature), []).append(feature)
    with np.errstate(all="ignore"):
        columns_all_nan = np.all(np.isnan(X_train), axis=0)
        reference = np.where(
            columns_all_nan, np.nan, np.nanmedian(np.where(columns_all_nan, 0, X_train), axis=0)
        )
    rng = np.random.default_rng(spec.seed)
    k = len(groups)
    # The first order and its reverse, then random antithetic pairs. One pair is exact
    # Shapley for a model with at most pairwise interactions (each interaction is split
    # half and half between its two features); one order is exact for an additive model.
    orders: list[list[int]] = [list(range(k))]
    if spec.permutations >= 2:
        orders.append(list(range(k))[::-1])
    while len(orders) < spec.permutations:
        order = [int(i) for i in rng.permutation(k)]
        orders.append(order)
        if len(orders) < spec.permutations:
            orders.append(order[::-1])
    return {
        "method": "baseline-shapley-permutation",
        "units": "log-odds",
        "reference": [None if np.isnan(v) else float(v) for v in reference],
        "groups": groups,
        "orders": orders,
    }


# -------------------------------------------------------------------------- champion


def _champion_model(client: Any, name: str, directory: Path) -> tuple[OnnxModel | None, str]:
    """Return the current champion as an :class:`OnnxModel` and where it came from."""
    import mlflow

    registered = registered_name(name)
    try:
        version = client.get_model_version_by_alias(registered, "champion")
    except mlflow.exceptions.MlflowException:
        version = None
    if version is not None:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    run_id=version.run_id, artifact_path="champion", dst_path=tmp
                )
            )
            try:
                return OnnxModel(local), f"registry {registered}@champion (v{version.version})"
            except Exception:
                return None, f"registry {registered}@champion (unreadable)"
    shipped = directory / name
    if (shipped / MANIFEST).is_file():
        try:
            return OnnxModel(shipped), f"{shipped}"
        except Exception:
            return None, f"{shipped} (unreadable)"
    return None, "none"


def _is_no_worse(new: dict[str, Any], old: dict[str, Any], tolerance: float) -> tuple[bool, str]:
    if new["auroc"] + tolerance < old["auroc"]:
        return False, f"AUROC {new['auroc']} < champion {old['auroc']}"
    if new["brier"] - tolerance > old["brier"]:
        return False, f"Brier {new['brier']} > champion {old['brier']}"
    return True, (
        f"no worse than the champion (AUROC {new['auroc']} vs {old['auroc']}, "
        f"Brier {new['brier']} vs {old['brier']})"
    )


def baseline_metrics(data: Dataset) -> dict[str, dict[str, Any]]:
    """Return AUROC and AUPRC of each published baseline score on ``data``'s rows."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    out: dict[str, dict[str, Any]] = {}
    for label, scores in data.baselines.items():
        known = ~np.isnan(scores)
        y = data.y[known]
        if known.sum() == 0 or len(np.unique(y)) < 2:
            out[label] = {"n": int(known.sum()), "auroc": None, "auprc": None}
            continue
        out[label] = {
            "n": int(known.sum()),
            "auroc": round(float(roc_auc_score(y, scores[known])), 4),
            "auprc": round(float(average_precision_score(y, scores[known])), 4),
        }
    return out


# ------------------------------------------------------------------------------ train


def train(
    name: str,
    data_path: str | Path,
    *,
    limit: int | None = None,
    n_bootstrap: int = 1000,
    tolerance: float = 0.0,
    settings: Settings | None = None,
    stage: Stage | None = None,
    progress: Callable[[int], None] | None = None,
    data_options: dict[str, Any] | None = None,
) -> TrainReport:
    """Train, check, log, register and (if no worse) promote one model.

    Parameters
    ----------
    name : str
        ``deterioration`` or ``readmission``.
    data_path : str or Path
        The dataset in its own layout (PhysioNet folder; UCI ``.csv.gz``).
    limit : int, optional
        Read only the first N stays/rows (tests and notebooks on a slice).
    n_bootstrap : int, default=1000
        Bootstrap resamples of the 95 % intervals (0: none).
    tolerance : float, default=0.0
        Slack of the "no worse than the champion" comparison.
    settings : Settings, optional
        MLflow URI and models directory (default: the process settings).
    stage, progress : callable, optional
        ``stage(text)`` at each step; ``progress(rows_read)`` while loading.
    data_options : dict, optional
        Extra keyword arguments of the model's loader (e.g. ``bundles`` for ``denial``).

    Returns
    -------
    TrainReport

    Raises
    ------
    KeyError
        If ``name`` is not a model.
    FileNotFoundError, ValueError
        If the data is missing or malformed (naming the file).
    ParityError
        If onnxruntime and sklearn differ by more than 1e-4 on the test split; nothing is
        registered or promoted then.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    from mlflow.models import infer_signature

    started = time.perf_counter()
    say = stage or (lambda _text: None)
    settings = settings or get_settings()
    spec = get_spec(name)
    say(f"reading {data_path}")
    data = spec.load_data(data_path, limit=limit, progress=progress, **(data_options or {}))
    mask = held_out_mask(data.patients, seed=spec.seed, test_fraction=spec.test_fraction)
    train_data, test_data = data.subset(~mask), data.subset(mask)
    if len(test_data.y) == 0 or len(np.unique(test_data.y)) < 2:
        raise HealthOSError(f"{name}: the test split has too few rows or one class only")
    say(f"fitting on {len(train_data.y):,} rows ({len(np.unique(train_data.patients)):,} patients)")
    fit_started = time.perf_counter()
    model = fit(spec, train_data)
    fit_seconds = time.perf_counter() - fit_started
    say("exporting ONNX and checking parity")
    onnx_bytes = to_onnx(model, len(data.feature_names))
    explanation = explanation_settings(spec, data.feature_names, train_data.X)
    created = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "champion"
        staged.mkdir()
        (staged / MODEL_FILE).write_bytes(onnx_bytes)
        manifest: dict[str, Any] = {
            "name": name,
            "title": spec.title,
            "version": None,
            "run_id": None,
            "created": created.isoformat(),
            "feature_names": list(data.feature_names),
            "onnx": {
                "file": MODEL_FILE,
                "input": "features",
                "output": "probabilities",
                "opset": ONNX_OPSET,
            },
            "explanation": explanation,
            "split": {
                "method": "sha256(seed:patient) < test_fraction",
                "seed": spec.seed,
                "test_fraction": spec.test_fraction,
            },
            "estimator": {
                "type": f"CalibratedClassifierCV({type(model.estimator).__name__}, sigmoid)",
                **spec.estimator,
                "iterations": int(
                    getattr(model.calibrated_classifiers_[0].estimator, "n_iter_", 0)
                ),
            },
        }
        (staged / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        onnx_model = OnnxModel(staged)
        max_diff = parity(model, onnx_model, test_data.X)
        if max_diff > PARITY_TOLERANCE:
            raise ParityError(
                f"{name}: onnxruntime differs from scikit-learn by {max_diff:.2e} on the "
                f"test split (limit {PARITY_TOLERANCE:g}); nothing was registered"
            )
        say("measuring the test split")
        p_test = onnx_model.predict_proba(test_data.X)
        metrics = binary_metrics(test_data.y, p_test, n_bootstrap=n_bootstrap, seed=spec.seed)
        baselines = baseline_metrics(test_data)
        subgroups = subgroup_metrics(test_data.y, p_test, test_data.subgroups)
        manifest["metrics"] = metrics
        manifest["baselines"] = baselines
        manifest["parity_max_abs_diff"] = max_diff
        manifest["n_train"] = len(train_data.y)
        manifest["n_test"] = len(test_data.y)
        # what `healthos evaluate --cohort` needs to tell the rows it was fitted on:
        # the first `rows` rows of these cohorts, in reading order, outside the test split
        manifest["training_data"] = {"cohorts": sorted(set(data.cohorts)), "rows": len(data.y)}
        manifest["training_seconds"] = round(fit_seconds, 1)
        rng = np.random.default_rng(spec.seed)
        keep = rng.choice(
            len(train_data.y), size=min(TRAINING_SAMPLE_ROWS, len(train_data.y)), replace=False
        )
        np.savez_compressed(staged / TRAINING_SAMPLE, X=train_data.X[np.sort(keep)])

        uri = tracking_uri(settings)
        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient(tracking_uri=uri)
        mlflow.set_experiment(f"healthos-{name}")
        say(f"logging to MLflow ({uri})")
        with mlflow.start_run(run_name=f"{name}-{created:%Y%m%dT%H%M%SZ}") as run:
            mlflow.log_params(
                {
                    "data": str(data_path),
                    "limit": limit,
                    "n_features": len(data.feature_names),
                    "n_train": len(train_data.y),
                    "n_test": len(test_data.y),
                    "seed": spec.seed,
                    "test_fraction": spec.test_fraction,
                    "calibration": "sigmoid",
                    "explanation_permutations": spec.permutations,
                    **{f"hgb_{k}": v for k, v in spec.estimator.items()},
                }
            )
            flat = {
                f"test_{k}": float(v)
                for k, v in metrics.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            for key, (low, high) in metrics.get("ci", {}).items():
                flat[f"test_{key}_ci_low"] = float(low)
                flat[f"test_{key}_ci_high"] = float(high)
            flat["parity_max_abs_diff"] = max_diff
            flat["fit_seconds"] = fit_seconds
            mlflow.log_metrics(flat)
            import onnx

            example = test_data.X[:5].astype(np.float32)
            signature = infer_signature(
                example, onnx_model._session.run(None, {"features": example})[1]
            )
            info = mlflow.onnx.log_model(
                onnx.load_from_string(onnx_bytes),
                name="model",
                signature=signature,
                input_example=example,
                pip_requirements=["onnxruntime>=1.20", "numpy>=1.26"],
                onnx_execution_providers=["CPUExecutionProvider"],
                registered_model_name=registered_name(name),
            )
            version = str(info.registered_model_version)
            manifest["version"] = version
            manifest["run_id"] = run.info.run_id
            manifest["registered_model"] = registered_name(name)
            (staged / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            card = ModelCard(
                name=name,
                version=version,
                title=spec.title,
                model_type=manifest["estimator"]["type"],
                intended_use=spec.card["intended_use"],
                intended_users=list(spec.card["intended_users"]),
                out_of_scope=list(spec.card["out_of_scope"]),
                data=spec.card["data"],
                data_licence=spec.card["data_licence"],
                data_citation=spec.card["data_citation"],
                splits={
                    "method": f"by patient: sha256(seed:patient) < {spec.test_fraction}, "
                    f"seed {spec.seed}",
                    "train": {"n": len(train_data.y), "positives": int(train_data.y.sum())},
                    "test": {"n": len(test_data.y), "positives": int(test_data.y.sum())},
                    "excluded": data.excluded,
                },
                features=list(data.feature_names),
                metrics=metrics,
                baselines={k: v for k, v in baselines.items() if v.get("auroc") is not None},
                subgroups=subgroups,
                known_limits=list(spec.card["known_limits"]),
                run_id=run.info.run_id,
                created=created,
                parity_max_abs_diff=max_diff,
            )
            render_model_card(card, test_data.y, p_test, staged)
            mlflow.log_artifacts(str(staged), artifact_path="champion")

        say("comparing with the champion")
        champion, source = _champion_model(client, name, models_dir(settings))
        champion_info: dict[str, Any] | None = None
        promoted, reason = True, "no champion yet"
        if champion is not None:
            if champion.feature_names == data.feature_names:
                old = binary_metrics(
                    test_data.y, champion.predict_proba(test_data.X), n_bootstrap=0
                )
                promoted, reason = _is_no_worse(metrics, old, tolerance)
                champion_info = {"source": source, **champion.describe(), "metrics": old}
            else:
                reason = "champion has other features: the new model replaces it"
                champion_info = {"source": source, **champion.describe()}
        target: Path | None = None
        if promoted:
            client.set_registered_model_alias(registered_name(name), "champion", version)
            target = models_dir(settings) / name
            _install(staged, target)
    return TrainReport(
        name=name,
        version=version,
        run_id=manifest["run_id"],
        tracking_uri=uri,
        n_train=len(train_data.y),
        n_test=len(test_data.y),
        metrics=metrics,
        baselines=baselines,
        champion=champion_info,
        promoted=promoted,
        reason=reason,
        parity_max_abs_diff=max_diff,
        seconds=time.perf_counter() - started,
        fit_seconds=fit_seconds,
        artifacts=str(target) if target else None,
    )


def _install(staged: Path, target: Path) -> None:
    """Copy a staged model directory into place; the manifest is written last.

    Serving reloads a model when its manifest changes, so the new ONNX file is in
    place before the manifest that names it.
    """
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(staged.iterdir()):
        if path.name != MANIFEST:
            shutil.copy2(path, target / path.name)
    tmp = target / f".{MANIFEST}.tmp"
    shutil.copy2(staged / MANIFEST, tmp)
    tmp.replace(target / MANIFEST)
