"""FHIR R4 REST at ``/fhir`` (``docs/fhir.md``); :data:`router` is mounted by ``serving.main``.

The Bulk Data routes come first: ``/fhir/$export`` and ``/fhir/bulk/{job}`` must match
before ``/fhir/{resource_type}`` and ``/fhir/{resource_type}/{id}``.
"""

from fastapi import APIRouter

from serving.fhir import bulk, routes

router = APIRouter()
router.include_router(bulk.router)
router.include_router(routes.router)

__all__ = ["router"]
