"""Liveness (``/health``) and readiness (``/ready``) probes; no authentication."""

from __future__ import annotations

import functools
import logging
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from serving.schemas.common import HealthPublic, ModelVersionPublic, ProblemDetails, ReadyPublic

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@functools.cache
def app_version() -> str:
    """Return the installed HealthOS version (``"0+unknown"`` when not installed).

    Read from the package metadata once per process and cached: a metadata lookup scans
    ``sys.path`` and costs more than the rest of a ``/health`` request (issue 9 item 10).
    """
    try:
        return version("healthos")
    except PackageNotFoundError:
        return "0+unknown"


@router.get("/health", response_model=HealthPublic)
async def health() -> HealthPublic:
    """Liveness: the process answers.

    ``async`` because it does no I/O: it runs on the event loop, not in the threadpool.
    """
    return HealthPublic(version=app_version())


@router.get(
    "/ready",
    response_model=ReadyPublic,
    responses={503: {"model": ProblemDetails, "description": "Database not reachable"}},
)
def ready(request: Request) -> ReadyPublic:
    """Readiness: the database answers ``SELECT 1``; lists the loaded model versions.

    ``app.state.model_versions`` (a list of ``{"name", "version"}``) is filled by
    whoever loads models in the lifespan; it is empty until then.
    """
    engine: Engine = request.app.state.engine
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        # The exception text can hold the URL or parameters: log the type only.
        logger.warning("readiness check failed: database error %s", type(exc).__name__)
        raise HTTPException(status_code=503, detail="the database is not reachable") from None
    models = [ModelVersionPublic.model_validate(m) for m in request.app.state.model_versions]
    return ReadyPublic(models=models)
