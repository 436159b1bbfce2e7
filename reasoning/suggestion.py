"""The advisory output of every scorer: :class:`Suggestion` and its :class:`Explanation`.

A suggestion is shown with its basis (inputs, each factor's signed contribution,
the rule or model and its version, evidence references, a recommended action) so a
professional can review it independently (FDA 2022 CDS guidance, criterion 4).
Field names follow SPEC §5; ``severity`` uses the CDS Hooks card ``indicator`` values.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from healthos_core.vocabulary import Audience, Severity

__all__ = ["Audience", "Explanation", "Factor", "Severity", "Source", "Suggestion"]


@dataclass(frozen=True, kw_only=True)
class Factor:
    """One input's part in a score.

    Parameters
    ----------
    name : str
        Parameter, feature or rule id (e.g. ``"resp_rate"``).
    value : float, str or None
        The input value, in ``unit``.
    contribution : float
        Signed contribution to the score, in the score's units (points for rule
        scores, log-odds or probability for models, as ``Explanation.method`` says).
    unit : str, optional
        Unit of ``value`` (UCUM where one exists).
    text : str, optional
        The factor in words a clinician or biller reads ("respiratory rate 26/min").
    """

    name: str
    value: float | str | None
    contribution: float
    unit: str | None = None
    text: str | None = None


@dataclass(frozen=True, kw_only=True)
class Explanation:
    """Why a suggestion was made.

    Parameters
    ----------
    method : str
        ``"rule:<name>"`` or ``"model:<name>@<version>"``.
    factors : tuple of Factor
        Largest absolute contribution first.
    evidence : tuple of str
        References ``"Type/id"`` of the records the score rests on.
    """

    method: str
    factors: tuple[Factor, ...] = ()
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Source:
    """The scorer behind a suggestion: name, version and published reference."""

    name: str
    version: str
    reference: str | None = None


@dataclass(frozen=True, kw_only=True)
class Suggestion:
    """An explainable, advisory finding about a subject (SPEC §5).

    Parameters
    ----------
    kind : str
        ``clinical.news2``, ``finance.denial_risk`` …
    audience : Audience
    severity : Severity
    subject : str
        ``"Encounter/123"``, ``"Claim/9"``, ``"Location/opd-1"``.
    summary : str
        At most 140 characters (a CDS Hooks card summary).
    explanation : Explanation
    recommended_action : str
    source : Source
    score : float, optional
        Points for rule scores, calibrated probability for models.
    band : str, optional
        The score's band (e.g. NEWS2 ``"medium"``).
    patient_id : str, optional
        The patient the subject belongs to, for patient-scoped listing.
    facility_id : str, optional
        The facility (Organization id) of the subject.
    amount_at_stake : Decimal, optional
        Money involved, in ``currency``.
    created_at : datetime
        Aware UTC; defaults to now.
    id : str
        Deterministic from kind, subject, source version and the evidence, so re-scoring
        the same record state gives the same id (and does not duplicate suggestions).

    Raises
    ------
    ValueError
        If ``summary`` is longer than 140 characters or ``subject`` is not ``"Type/id"``.
    """

    kind: str
    audience: Audience
    severity: Severity
    subject: str
    summary: str
    explanation: Explanation
    recommended_action: str
    source: Source
    score: float | None = None
    band: str | None = None
    patient_id: str | None = None
    facility_id: str | None = None
    amount_at_stake: Decimal | None = None
    currency: str | None = None
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    id: str = ""

    def __post_init__(self) -> None:
        if len(self.summary) > 140:
            raise ValueError(f"summary is {len(self.summary)} characters; the limit is 140")
        if "/" not in self.subject:
            raise ValueError(f"subject {self.subject!r} is not a 'Type/id' reference")
        if not self.id:
            key = "|".join(
                [self.kind, self.subject, self.source.version, *sorted(self.explanation.evidence)]
            )
            object.__setattr__(self, "id", hashlib.sha256(key.encode()).hexdigest()[:32])

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (Decimal as string, datetime as ISO 8601)."""
        data = asdict(self)
        data["audience"] = str(self.audience)
        data["severity"] = str(self.severity)
        data["created_at"] = self.created_at.isoformat()
        if self.amount_at_stake is not None:
            data["amount_at_stake"] = str(self.amount_at_stake)
        return data
