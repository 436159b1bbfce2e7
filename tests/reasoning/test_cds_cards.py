"""Cards from suggestions (reasoning.cds.cards): uuid round trip, detail, source pages."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from reasoning.cds.cards import (
    OVERRIDE_REASONS,
    Action,
    CardSuggestion,
    card_from_suggestion,
    card_uuid,
    source_path,
    suggestion_id_of,
)
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion


def make(**overrides: object) -> Suggestion:
    fields: dict[str, object] = {
        "kind": "finance.denial_risk",
        "audience": Audience.FINANCE,
        "severity": Severity.CRITICAL,
        "subject": "Claim/9",
        "summary": "Denial risk 0.81",
        "explanation": Explanation(
            method="model:denial@7",
            factors=(
                Factor(name="auth", value="none | missing", contribution=1.25, text="no auth"),
                Factor(name="late", value=None, contribution=-0.5),
            ),
            evidence=("Claim/9", "Contract/payer-1"),
        ),
        "recommended_action": "Add the prior-authorisation reference",
        "source": Source(name="denial_risk", version="1.0.0", reference="model card"),
        "score": 0.81,
        "band": "authorization",
        "amount_at_stake": Decimal("1250.50"),
        "currency": "USD",
    }
    fields.update(overrides)
    return Suggestion(**fields)  # type: ignore[arg-type]


def test_card_uuid_round_trips_to_the_suggestion_id() -> None:
    suggestion = make()
    card = card_uuid(suggestion.id)
    assert str(uuid.UUID(card)) == card
    assert suggestion_id_of(card) == suggestion.id
    assert suggestion_id_of(card.upper()) == suggestion.id
    assert suggestion_id_of("4e0a3a1e") is None
    # An id that is not 32 hex digits still gets a stable uuid (not traceable back).
    assert card_uuid("news2-1") == card_uuid("news2-1") != card_uuid("news2-2")


def test_card_detail_shows_factors_evidence_and_action() -> None:
    action = Action(type="delete", description="Remove", resource_id="ServiceRequest/1")
    card = card_from_suggestion(make(), [CardSuggestion(label="Remove it", actions=(action,))])
    data = card.to_json("https://hos.example/cds-services")
    assert data["uuid"] == card_uuid(make().id)
    assert data["indicator"] == "critical"
    assert data["source"]["url"] == "https://hos.example/cds-services/sources/model/denial"
    assert data["source"]["label"] == "HealthOS denial_risk 1.0.0"
    detail = data["detail"]
    assert detail.startswith("**Score 0.81** (authorization) · **1250.50 USD** at stake")
    assert "| no auth | none \\| missing | +1.25 |" in detail  # pipes escaped
    assert "| late |  | -0.5 |" in detail
    assert "Evidence: `Claim/9`, `Contract/payer-1`" in detail
    assert "**Recommended:** Add the prior-authorisation reference" in detail
    assert data["overrideReasons"] == [dict(r) for r in OVERRIDE_REASONS]
    (suggestion,) = data["suggestions"]
    assert suggestion["actions"] == [
        {"type": "delete", "description": "Remove", "resourceId": "ServiceRequest/1"}
    ]
    assert data["selectionBehavior"] == "at-most-one"


def test_rule_edits_have_no_contribution_column() -> None:
    explanation = Explanation(
        method="rule:claim_scrubber",
        factors=(Factor(name="rule:x", value="197", contribution=0.0, unit="X12 CARC", text="t"),),
    )
    data = card_from_suggestion(make(explanation=explanation, score=None, band=None)).to_json("b")
    assert "| factor | value |\n|---|---|\n| t | 197 X12 CARC |" in data["detail"]
    assert "selectionBehavior" not in data and "suggestions" not in data


@pytest.mark.parametrize(
    ("method", "name", "path"),
    [
        ("model:readmission@3", "readmission", "sources/model/readmission"),
        ("rule:news2", "news2", "sources/rule/news2"),
        ("", "lace", "sources/rule/lace"),
        ("other:x", "sirs", "sources/rule/sirs"),
    ],
)
def test_source_path(method: str, name: str, path: str) -> None:
    assert source_path(method, name) == path
