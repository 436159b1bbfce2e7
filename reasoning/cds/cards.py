"""CDS Hooks cards built from suggestions, and the way back from a card to its suggestion.

A card (CDS Hooks 2.0.1 §Card attributes) is a suggestion as an EHR shows it: ``summary``
(at most 140 characters), ``indicator`` (the suggestion's severity), ``source`` (label and
the URL of the rule or model card), ``detail`` (Markdown: the score, each factor's value
and signed contribution, the evidence references and the recommended action),
``overrideReasons`` and, where an action is concrete, ``suggestions`` with FHIR
``actions``.

A card's ``uuid`` is the suggestion's id read as a UUID (suggestion ids are 32 hex
digits, :class:`reasoning.suggestion.Suggestion`), so the card an EHR sends back in
feedback names its suggestion without a lookup table (:func:`suggestion_id_of`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from healthos_core.advisory import SuggestionRecord
from reasoning.suggestion import Suggestion

__all__ = [
    "OVERRIDE_REASONS",
    "OVERRIDE_REASON_SYSTEM",
    "Action",
    "Card",
    "CardSuggestion",
    "card_from_record",
    "card_from_suggestion",
    "card_uuid",
    "source_path",
    "suggestion_id_of",
]

#: Code system of HealthOS's override reasons (a tag URI, RFC 4151: it names, not locates).
OVERRIDE_REASON_SYSTEM: Final = "tag:healthos.org,2025:cds-override-reason"
#: Why a clinician overrides a card (CDS Hooks 2.0.1 §Overridereason): offered on every card.
OVERRIDE_REASONS: Final[tuple[dict[str, str], ...]] = tuple(
    {"system": OVERRIDE_REASON_SYSTEM, "code": code, "display": display}
    for code, display in (
        ("not-applicable", "Does not apply to this patient"),
        ("already-addressed", "Already addressed"),
        ("patient-declined", "Patient declined"),
        ("benefit-outweighs-risk", "Clinical benefit outweighs the risk"),
        ("data-incorrect", "The data behind it is wrong"),
    )
)
#: Namespace of the ids of a card's suggestions (uuid5 of the card uuid and the label).
_SUGGESTION_NAMESPACE: Final = uuid.UUID("6f1d3c2e-5b0a-4d51-9a3e-2c1b8f7e4d60")
_HEX32: Final = re.compile(r"[0-9a-f]{32}")
_MAX_FACTORS: Final = 8
_MAX_EVIDENCE: Final = 12


def card_uuid(suggestion_id: str) -> str:
    """Return the card uuid of a suggestion: its 32-hex-digit id read as a UUID.

    Parameters
    ----------
    suggestion_id : str
        A suggestion id (32 lowercase hex digits, :class:`reasoning.suggestion.Suggestion`).

    Returns
    -------
    str
        The canonical UUID text, e.g. ``"4e0a3a1e-3283-4575-ab82-028d55fe2719"``; any
        other id is mapped by ``uuid5`` (such a card cannot be traced back).

    Examples
    --------
    >>> card_uuid("4e0a3a1e32834575ab82028d55fe2719")
    '4e0a3a1e-3283-4575-ab82-028d55fe2719'
    """
    if _HEX32.fullmatch(suggestion_id):
        return str(uuid.UUID(hex=suggestion_id))
    return str(uuid.uuid5(_SUGGESTION_NAMESPACE, suggestion_id))


def suggestion_id_of(card: str) -> str | None:
    """Return the suggestion id a card uuid names, or ``None`` if it is not a UUID.

    Examples
    --------
    >>> suggestion_id_of("4E0A3A1E-3283-4575-AB82-028D55FE2719")
    '4e0a3a1e32834575ab82028d55fe2719'
    >>> suggestion_id_of("card-1") is None
    True
    """
    try:
        return uuid.UUID(card.strip()).hex
    except ValueError:
        return None


@dataclass(frozen=True, kw_only=True)
class Action:
    """A FHIR change a card proposes (CDS Hooks 2.0.1 §Action).

    Parameters
    ----------
    type : {"create", "update", "delete"}
    description : str
        What the action does, for the clinician.
    resource : dict, optional
        The FHIR resource to create or update.
    resource_id : str, optional
        ``"Type/id"`` of the resource to delete.
    """

    type: str
    description: str
    resource: Mapping[str, Any] | None = None
    resource_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the action as CDS Hooks JSON."""
        data: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.resource is not None:
            data["resource"] = dict(self.resource)
        if self.resource_id is not None:
            data["resourceId"] = self.resource_id
        return data


@dataclass(frozen=True, kw_only=True)
class CardSuggestion:
    """A concrete next step on a card (CDS Hooks 2.0.1 §Suggestion): label and actions."""

    label: str
    actions: tuple[Action, ...] = ()
    is_recommended: bool = True


@dataclass(frozen=True, kw_only=True)
class Card:
    """One CDS Hooks card (2.0.1 §Card attributes) built from one suggestion.

    Parameters
    ----------
    suggestion_id : str
        The stored suggestion (``uuid`` is :func:`card_uuid` of it).
    summary : str
        At most 140 characters.
    indicator : {"info", "warning", "critical"}
    source_label : str
        The scorer and its version.
    source_path : str
        Path of the rule or model card page under the service base
        (``"sources/model/readmission"``); the router makes it absolute.
    source_topic : str
        The suggestion's kind (``clinical.news2``), the card's topic code.
    detail : str
        Markdown: score, factors, evidence, recommended action.
    suggestions : tuple of CardSuggestion
    """

    suggestion_id: str
    summary: str
    indicator: str
    source_label: str
    source_path: str
    source_topic: str
    detail: str
    suggestions: tuple[CardSuggestion, ...] = field(default=())

    @property
    def uuid(self) -> str:
        """The card's uuid (the suggestion id as a UUID)."""
        return card_uuid(self.suggestion_id)

    def to_json(self, base_url: str) -> dict[str, Any]:
        """Return the card as CDS Hooks JSON.

        Parameters
        ----------
        base_url : str
            Absolute URL of ``/cds-services`` (no trailing slash), for ``source.url``.
        """
        card = self.uuid
        data: dict[str, Any] = {
            "uuid": card,
            "summary": self.summary,
            "indicator": self.indicator,
            "detail": self.detail,
            "source": {
                "label": self.source_label,
                "url": f"{base_url}/{self.source_path}",
                "topic": {
                    "system": "tag:healthos.org,2025:suggestion-kind",
                    "code": self.source_topic,
                    "display": self.source_topic,
                },
            },
            "overrideReasons": [dict(reason) for reason in OVERRIDE_REASONS],
        }
        if self.suggestions:  # omitted when empty: clients want selectionBehavior with it
            data["suggestions"] = [
                {
                    "label": s.label,
                    "uuid": str(uuid.uuid5(_SUGGESTION_NAMESPACE, f"{card}|{s.label}")),
                    "isRecommended": s.is_recommended,
                    "actions": [a.to_json() for a in s.actions],
                }
                for s in self.suggestions
            ]
            data["selectionBehavior"] = "at-most-one"  # required with suggestions (§Card)
        return data


def source_path(method: str, source_name: str) -> str:
    """Return the page of a suggestion's rule or model under the service base.

    ``"model:readmission@3"`` → ``"sources/model/readmission"``; ``"rule:news2"`` →
    ``"sources/rule/news2"``; anything else names the scorer (``"sources/rule/<name>"``).
    """
    kind, _, rest = method.partition(":")
    name = rest.split("@", 1)[0] if rest else source_name
    if kind not in ("model", "rule") or not name:
        kind, name = "rule", source_name
    return f"sources/{kind}/{name}"


def _cell(value: object) -> str:
    """Return text safe inside a Markdown table cell (no pipes, no line breaks)."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def _number(value: float) -> str:
    return f"{value:+.3g}"


def _detail(
    *,
    score: float | None,
    band: str | None,
    method: str,
    source: str,
    reference: str | None,
    factors: Sequence[Mapping[str, Any]],
    evidence: Sequence[str],
    recommended_action: str,
    amount: Decimal | None,
    currency: str | None,
    subject: str,
) -> str:
    """Render a suggestion's basis as Markdown (the card ``detail``)."""
    lines: list[str] = []
    headline = []
    if score is not None:
        headline.append(f"**Score {score:.3g}**" + (f" ({band})" if band else ""))
    elif band:
        headline.append(f"**{band}**")
    if amount is not None:
        money = f"{format(amount, 'f')} {currency}" if currency else format(amount, "f")
        headline.append(f"**{money}** at stake")
    headline.append(f"about `{subject}`")
    lines.append(" · ".join(headline))
    lines.append("")
    by = f"method `{method}`, {source}"
    lines.append(by + (f" — {reference}" if reference else ""))
    if factors:
        # Rule edits carry no points (contribution 0): their table has no contribution column.
        scored = any(float(f.get("contribution") or 0.0) for f in factors)
        lines += ["", "| factor | value | contribution |" if scored else "| factor | value |"]
        lines.append("|---|---|---|" if scored else "|---|---|")
        for factor in factors[:_MAX_FACTORS]:
            value = factor.get("value")
            unit = factor.get("unit") or ""
            shown = "" if value is None else f"{value} {unit}".strip()
            text = factor.get("text") or factor.get("name", "")
            row = f"| {_cell(text)} | {_cell(shown)} |"
            if scored:
                row += f" {_number(float(factor.get('contribution') or 0.0))} |"
            lines.append(row)
        if len(factors) > _MAX_FACTORS:
            lines.append(f"| … {len(factors) - _MAX_FACTORS} more | |" + (" |" if scored else ""))
    if evidence:
        shown_refs = ", ".join(f"`{ref}`" for ref in evidence[:_MAX_EVIDENCE])
        more = f" and {len(evidence) - _MAX_EVIDENCE} more" if len(evidence) > _MAX_EVIDENCE else ""
        lines += ["", f"Evidence: {shown_refs}{more}"]
    lines += ["", f"**Recommended:** {recommended_action}"]
    lines += ["", "_Advisory: review the basis above; it does not change the record._"]
    return "\n".join(lines)


def card_from_record(record: SuggestionRecord, suggestions: Sequence[CardSuggestion] = ()) -> Card:
    """Return the card of a stored suggestion.

    Parameters
    ----------
    record : SuggestionRecord
        A stored suggestion (:mod:`healthos_core.advisory`).
    suggestions : sequence of CardSuggestion, optional
        Concrete actions, where there are any.

    Returns
    -------
    Card
    """
    explanation = record.explanation or {}
    method = str(explanation.get("method", ""))
    label = f"HealthOS {record.source_name} {record.source_version}"
    return Card(
        suggestion_id=record.id,
        summary=record.summary[:140],
        indicator=record.severity,
        source_label=label,
        source_path=source_path(method, record.source_name),
        source_topic=record.kind,
        detail=_detail(
            score=record.score,
            band=record.band,
            method=method,
            source=label,
            reference=record.source_reference,
            factors=list(explanation.get("factors", [])),
            evidence=list(explanation.get("evidence", [])),
            recommended_action=record.recommended_action,
            amount=record.amount_at_stake,
            currency=record.currency,
            subject=record.subject,
        ),
        suggestions=tuple(suggestions),
    )


def card_from_suggestion(
    suggestion: Suggestion, suggestions: Sequence[CardSuggestion] = ()
) -> Card:
    """Return the card of a :class:`~reasoning.suggestion.Suggestion` (see ``card_from_record``)."""
    explanation = suggestion.explanation
    label = f"HealthOS {suggestion.source.name} {suggestion.source.version}"
    factors = [
        {
            "name": f.name,
            "value": f.value,
            "unit": f.unit,
            "text": f.text,
            "contribution": f.contribution,
        }
        for f in explanation.factors
    ]
    return Card(
        suggestion_id=suggestion.id,
        summary=suggestion.summary,
        indicator=str(suggestion.severity),
        source_label=label,
        source_path=source_path(explanation.method, suggestion.source.name),
        source_topic=suggestion.kind,
        detail=_detail(
            score=suggestion.score,
            band=suggestion.band,
            method=explanation.method,
            source=label,
            reference=suggestion.source.reference,
            factors=factors,
            evidence=list(explanation.evidence),
            recommended_action=suggestion.recommended_action,
            amount=suggestion.amount_at_stake,
            currency=suggestion.currency,
            subject=suggestion.subject,
        ),
        suggestions=tuple(suggestions),
    )
