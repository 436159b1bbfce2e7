"""The loaded ML models: what is served, and reloading a newly promoted champion.

The app loads one :class:`~reasoning.inference.ModelStore` at start-up (settings
``models_dir``; default the models shipped in ``reasoning/artifacts``) into
``app.state.models`` (see :func:`open_store`); ``/ready`` lists its models.
``healthos train`` writes a promoted champion's files into that directory, manifest last;
``POST /api/v1/models/reload`` then loads every model whose manifest changed, without a
restart (the old version keeps serving until the new one is loaded).

Only onnxruntime is used: this module, like all of serving, never imports scikit-learn,
skl2onnx or MLflow.

============================ =========================
route                        roles
============================ =========================
``GET /api/v1/models``       any authenticated role
``POST /api/v1/models/reload`` admin
============================ =========================
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from healthos_core.settings import Settings
from reasoning.inference import (
    ModelNotAvailableError,
    ModelStore,
    OnnxModel,
    default_store,
    shipped_models_dir,
)
from serving.deps import CurrentUser, Principal, require_roles
from serving.schemas.common import ProblemDetails

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/models", tags=["models"])


def open_store(settings: Settings) -> ModelStore:
    """Return the model store of ``settings.models_dir``, loaded, for one app.

    When the directory is the one of the process-wide
    :func:`~reasoning.inference.default_store` (the usual case: ``healthos serve`` with
    the process settings), that store is reused, so the scorers that load models
    through it and the API see the same versions and one reload updates both. Any
    other directory (e.g. a test's) gets its own store.

    Parameters
    ----------
    settings : Settings
        ``models_dir``: ``None`` means the shipped models (``reasoning/artifacts``).

    Returns
    -------
    ModelStore
        Loaded; models that fail to load are in its ``errors``, not raised.
    """
    directory = Path(settings.models_dir) if settings.models_dir else shipped_models_dir()
    shared = default_store()
    if shared.directory.resolve() == directory.resolve():
        shared.reload()
        return shared
    return ModelStore(directory)


def get_store(request: Request) -> ModelStore:
    """Return the app's model store.

    Raises
    ------
    fastapi.HTTPException
        503 if the app's lifespan has not loaded the models yet.
    """
    store: ModelStore | None = getattr(request.app.state, "models", None)
    if store is None:
        raise HTTPException(status_code=503, detail="the models are not loaded yet")
    return store


StoreDep = Annotated[ModelStore, Depends(get_store)]
AdminDep = Annotated[Principal, Depends(require_roles("admin"))]


class ModelMetricsPublic(BaseModel):
    """Test-split metrics recorded in the manifest at training time.

    ``ci`` holds the bootstrap intervals (``[low, high]`` at ``ci_level``) by metric.
    Further metrics in the manifest are passed through.
    """

    model_config = ConfigDict(extra="allow")

    n: int | None = Field(default=None, description="Test rows")
    positives: int | None = Field(default=None, description="Test rows with the outcome")
    prevalence: float | None = None
    auroc: float | None = Field(default=None, description="Area under the ROC curve")
    auprc: float | None = Field(default=None, description="Area under the precision-recall curve")
    brier: float | None = Field(default=None, description="Brier score (lower is better)")
    calibration_slope: float | None = None
    calibration_intercept: float | None = None
    ci: dict[str, list[float]] | None = None
    ci_level: float | None = None


class ModelPublic(BaseModel):
    """One loaded model, from its manifest."""

    name: str
    version: str = Field(description="Registered model version (MLflow)")
    title: str | None = None
    run_id: str | None = Field(default=None, description="MLflow run that trained it")
    trained_at: dt.datetime | None = Field(default=None, description="Manifest `created`")
    registered_model: str | None = None
    n_features: int
    n_train: int | None = None
    n_test: int | None = None
    metrics: ModelMetricsPublic | None = Field(default=None, description="Test-split metrics")

    @classmethod
    def from_model(cls, model: OnnxModel) -> ModelPublic:
        """Build from a loaded model's manifest."""
        manifest: dict[str, Any] = model.manifest
        metrics = manifest.get("metrics")
        return cls(
            name=model.name,
            version=model.version,
            title=manifest.get("title"),
            run_id=manifest.get("run_id"),
            trained_at=manifest.get("created"),
            registered_model=manifest.get("registered_model"),
            n_features=len(model.feature_names),
            n_train=manifest.get("n_train"),
            n_test=manifest.get("n_test"),
            metrics=ModelMetricsPublic.model_validate(metrics) if metrics else None,
        )


class ModelsPublic(BaseModel):
    """The loaded models, and the model directories that failed to load."""

    models: list[ModelPublic]
    errors: dict[str, str] = Field(
        default_factory=dict,
        description="Model directory → why it could not be loaded (a previously loaded "
        "version of it, if any, keeps serving)",
    )


def _listing(store: ModelStore) -> ModelsPublic:
    models: list[ModelPublic] = []
    for name in store.names():
        try:
            models.append(ModelPublic.from_model(store.get(name)))
        except ModelNotAvailableError:  # unloaded by a concurrent reload
            continue
    return ModelsPublic(models=models, errors=dict(sorted(store.errors.items())))


@router.get("", response_model=ModelsPublic)
def read_models(*, store: StoreDep, user: CurrentUser) -> ModelsPublic:
    """List the loaded models: version, MLflow run, training time and test metrics."""
    return _listing(store)


@router.post(
    "/reload",
    response_model=ModelsPublic,
    responses={503: {"model": ProblemDetails, "description": "Models not loaded yet"}},
)
def reload_models(*, request: Request, store: StoreDep, user: AdminDep) -> ModelsPublic:
    """Load new or changed models from the models directory, without a restart (admin).

    A model whose ``manifest.json`` changed on disk (``healthos train`` promoted a new
    champion) is loaded again; a removed directory is unloaded.
    """
    versions = store.reload()
    request.app.state.model_versions = versions
    logger.info(
        "models reloaded by %s: %s",
        user.subject,
        ", ".join(f"{m['name']}@{m['version']}" for m in versions) or "none",
    )
    return _listing(store)
