"""API routers, one module per resource; :data:`api_router` is mounted under ``/api/v1``."""

from fastapi import APIRouter

from serving.routers import encounters, health, patients, suggestions

api_router = APIRouter()
api_router.include_router(patients.router)
api_router.include_router(encounters.router)
api_router.include_router(suggestions.router)

__all__ = ["api_router", "encounters", "health", "patients", "suggestions"]
