"""Pydantic API shapes (``XPublic`` out, ``XCreate`` in), separate from core entities."""

from serving.schemas.common import (
    HealthPublic,
    ModelVersionPublic,
    ProblemDetails,
    ProblemFieldError,
    ReadyPublic,
)
from serving.schemas.encounters import (
    EncounterDetailPublic,
    EncounterPublic,
    EncountersPublic,
    ObservationPublic,
)
from serving.schemas.patients import IdentifierPublic, PatientPublic, PatientsPublic
from serving.schemas.suggestions import (
    ExplanationPublic,
    FactorPublic,
    SourcePublic,
    SuggestionActionCreate,
    SuggestionActionPublic,
    SuggestionDetailPublic,
    SuggestionPublic,
    SuggestionReasonCreate,
    SuggestionsPublic,
)

__all__ = [
    "EncounterDetailPublic",
    "EncounterPublic",
    "EncountersPublic",
    "ExplanationPublic",
    "FactorPublic",
    "HealthPublic",
    "IdentifierPublic",
    "ModelVersionPublic",
    "ObservationPublic",
    "PatientPublic",
    "PatientsPublic",
    "ProblemDetails",
    "ProblemFieldError",
    "ReadyPublic",
    "SourcePublic",
    "SuggestionActionCreate",
    "SuggestionActionPublic",
    "SuggestionDetailPublic",
    "SuggestionPublic",
    "SuggestionReasonCreate",
    "SuggestionsPublic",
]
