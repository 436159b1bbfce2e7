"""FHIR R4 REST at ``/fhir`` (``docs/fhir.md``); :data:`router` is mounted by ``serving.main``."""

from serving.fhir.routes import router

__all__ = ["router"]
