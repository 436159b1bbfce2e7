"""The suggestion vocabulary, defined once: severity, audience and life-cycle status.

Core owns it because core stores suggestions (:mod:`healthos_core.advisory`) and decides
who reads them (:mod:`healthos_core.access`); the reasoning layer's
:class:`reasoning.suggestion.Suggestion` and the API's schemas use these same enums.
Values follow SPEC §5; ``Severity`` is the CDS Hooks 2.0 card ``indicator``.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["SEVERITIES", "Audience", "Severity", "SuggestionStatus"]


class Severity(enum.StrEnum):
    """Card indicator (CDS Hooks 2.0 ``Card.indicator``): ``info``, ``warning``, ``critical``."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Audience(enum.StrEnum):
    """Who a suggestion is for."""

    CLINICIAN = "clinician"
    NURSE = "nurse"
    FINANCE = "finance"
    OPERATIONS = "operations"
    LEADERSHIP = "leadership"


class SuggestionStatus(enum.StrEnum):
    """Life cycle of a suggestion (SPEC §5).

    ``resolved`` is set by the system, never by a person: rescoring found that the
    condition cleared (``docs/rescoring.md``). Like ``acted`` and ``dismissed`` it is
    closed.
    """

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    ACTED = "acted"
    DISMISSED = "dismissed"
    RESOLVED = "resolved"


#: Severities as strings, most urgent first: the worklist order.
SEVERITIES: Final[tuple[str, ...]] = (
    Severity.CRITICAL.value,
    Severity.WARNING.value,
    Severity.INFO.value,
)
