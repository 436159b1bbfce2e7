"""API routers, one module per resource; :data:`api_router` is mounted under ``/api/v1``."""

from fastapi import APIRouter

from serving.routers import (
    authorizations,
    billing,
    claims,
    clinical,
    coverage,
    encounters,
    health,
    ledger,
    me,
    operations,
    patient_accounts,
    patients,
    remittances,
    suggestions,
)

api_router = APIRouter()
api_router.include_router(patients.router)
api_router.include_router(encounters.router)
api_router.include_router(clinical.router)
api_router.include_router(suggestions.router)
api_router.include_router(coverage.router)
api_router.include_router(authorizations.router)
api_router.include_router(claims.router)
api_router.include_router(remittances.router)
api_router.include_router(ledger.router)
api_router.include_router(billing.router)
api_router.include_router(patient_accounts.router)
api_router.include_router(operations.router)
api_router.include_router(me.router)

__all__ = [
    "api_router",
    "authorizations",
    "billing",
    "claims",
    "clinical",
    "coverage",
    "encounters",
    "health",
    "ledger",
    "me",
    "operations",
    "patient_accounts",
    "patients",
    "remittances",
    "suggestions",
]
