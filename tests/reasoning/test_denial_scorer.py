"""The denial-risk scorer on hand-built claims, with the shipped ``denial`` champion.

Suggestion shape (finance audience, ``Claim/<id>`` subject, calibrated score, claim total
at stake), the predicted CARC band and its fix text, exact additivity of the batch
explanation, the scrubber's deterministic edits as ``rule:<edit>`` factors, and a scorer
that only reads the record.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session

from reasoning.features import denial
from reasoning.finance.denial_scorer import (
    DenialRiskScorer,
    explain_additive,
    score_claims,
)
from reasoning.inference import ModelStore, OnnxModel, shipped_models_dir
from reasoning.suggestion import Audience, Severity
from tests.conftest import table_counts
from tests.reasoning.test_denial_features import answer, at, line, make_world, submit

AS_OF = at("2021-01-15")


@pytest.fixture(scope="module")
def model() -> OnnxModel:
    """The shipped champion (``reasoning/artifacts/denial``)."""
    return OnnxModel(shipped_models_dir() / "denial")


def test_suggestion_shape_band_fix_and_rule_factors(session: Session, model: OnnxModel) -> None:
    world = make_world(session, coverage_end=at("2020-06-30", 0))
    ended = submit(session, world, [line("E1", "2020-07-10")], submitted=at("2020-07-12"))
    late = submit(session, world, [line("E1", "2020-03-01")], submitted=at("2020-07-01"))
    first = submit(session, world, [line("E1", "2020-04-01")], submitted=at("2020-04-02"))
    again = submit(session, world, [line("E1", "2020-04-01")], submitted=at("2020-04-20"))
    clean = submit(session, world, [line("E1", "2020-05-01")], submitted=at("2020-05-02"))
    order = [ended.id, late.id, first.id, again.id, clean.id]
    found = score_claims(session, order, as_of=AS_OF, model=model)
    assert [s.subject for s in found] == [f"Claim/{cid}" for cid in order]
    by_id = {s.subject.split("/", 1)[1]: s for s in found}
    for suggestion in found:
        assert suggestion.kind == "finance.denial_risk"
        assert suggestion.audience is Audience.FINANCE
        assert suggestion.score is not None and 0.0 < suggestion.score < 1.0
        assert suggestion.amount_at_stake is not None and suggestion.currency == "USD"
        assert len(suggestion.summary) <= 140
        assert suggestion.explanation.method == f"model:denial@{model.version}"
        assert suggestion.band in denial.CARC_GROUPS
        assert suggestion.source.version.endswith(f"+model.{model.version}")
        assert suggestion.explanation.evidence[0] == suggestion.subject
        assert f"Coverage/{world.coverage_id}" in suggestion.explanation.evidence
        assert suggestion.created_at == AS_OF
    assert str(by_id[ended.id].amount_at_stake) == "100.00"

    s = by_id[ended.id]
    assert s.band == "eligibility" and s.severity is Severity.CRITICAL
    assert s.recommended_action.startswith("verify eligibility: coverage ended 2020-06-30")
    rules = {f.name: f for f in s.explanation.factors if f.name.startswith("rule:")}
    assert rules["rule:coverage-inactive"].value == "27"
    assert rules["rule:coverage-inactive"].contribution == 0.0
    assert "ended on 2020-06-30" in (rules["rule:coverage-inactive"].text or "")
    assert s.explanation.factors[0].name == "coverage"
    assert s.explanation.factors[0].contribution > 0

    s = by_id[late.id]
    assert s.band == "timely_filing"
    assert s.recommended_action.startswith("filing limit passed by 32 days (payer limit 90 days)")
    assert "rule:filing-limit" in {f.name for f in s.explanation.factors}

    s = by_id[again.id]
    assert s.band == "duplicate"
    assert s.recommended_action.startswith(f"void: duplicate of Claim/{first.id}")
    assert f"Claim/{first.id}" in s.explanation.evidence
    assert "rule:duplicate" in {f.name for f in s.explanation.factors}

    s = by_id[clean.id]
    assert not [f for f in s.explanation.factors if f.name.startswith("rule:")]
    assert s.score is not None and s.score < by_id[ended.id].score  # type: ignore[operator]
    sizes = [abs(f.contribution) for f in s.explanation.factors]
    assert sizes == sorted(sizes, reverse=True)


def test_authorisation_fix_names_the_code_category_and_payer(
    session: Session, model: OnnxModel
) -> None:
    world = make_world(session)
    claim = submit(session, world, [line("S1", "2020-03-01")], submitted=at("2020-03-03"))
    (s,) = score_claims(session, [claim.id], as_of=AS_OF, model=model)
    assert "rule:authorization-missing" in {f.name for f in s.explanation.factors}
    factors = {f.name: f for f in s.explanation.factors}
    assert factors["authorization"].contribution > 0
    assert factors["authorization"].text == (
        "1 line(s) need prior authorisation and none is on the claim"
    )
    if s.band == "authorization":
        assert s.recommended_action.startswith(
            "request prior authorisation for S1 (surgical procedure) from Test Payer"
        )


def test_batch_explanation_is_exact_and_additive(session: Session, model: OnnxModel) -> None:
    world = make_world(session, coverage_end=at("2020-06-30", 0))
    claims = [
        submit(session, world, [line("E1", "2020-07-10")], submitted=at("2020-07-12")),
        submit(session, world, [line("L1", "2020-03-01", units=5)], submitted=at("2020-03-02")),
        submit(session, world, [line("E1", "2020-02-01")], submitted=at("2020-06-01")),
    ]
    built = denial.build(denial.load_context(session, [c.id for c in claims], as_of=AS_OF))
    explained = explain_additive(model, built.X)
    p = explained.probability
    logit = np.log(p / (1 - p))
    total = explained.base_logit + explained.contributions.sum(axis=1)
    np.testing.assert_allclose(total, logit, atol=2e-4)
    np.testing.assert_allclose(p, model.predict_proba(built.X), atol=1e-7)
    for row in range(len(claims)):
        single = model.explain(built.X[row])
        assert math.isclose(single.base_logit, explained.base_logit, abs_tol=1e-5)
        for j, group in enumerate(explained.groups):
            assert math.isclose(
                single.contributions[group], explained.contributions[row, j], abs_tol=2e-4
            )


def test_scorer_scores_unanswered_claims_only_and_never_writes(
    session: Session, tmp_path: Path
) -> None:
    world = make_world(session, coverage_end=at("2020-06-30", 0))
    open_claim = submit(session, world, [line("E1", "2020-07-10")], submitted=at("2020-07-12"))
    draft = submit(
        session,
        world,
        [line("E1", "2020-08-10")],
        submitted=at("2020-08-12"),
        billing_status="draft",
        submitted_at=None,
    )
    answered = submit(session, world, [line("E1", "2020-07-11")], submitted=at("2020-07-13"))
    answer(session, answered, created=at("2020-08-01"), denied=True)
    session.commit()
    before = table_counts(session.get_bind())  # type: ignore[arg-type]
    found = DenialRiskScorer(min_probability=0.0).score(session, as_of=AS_OF)
    session.rollback()
    assert table_counts(session.get_bind()) == before  # type: ignore[arg-type]
    subjects = {s.subject for s in found}
    assert subjects == {f"Claim/{open_claim.id}", f"Claim/{draft.id}"}
    losses = [(s.score or 0) * float(s.amount_at_stake or 0) for s in found]
    assert losses == sorted(losses, reverse=True)
    # no model: no suggestions
    assert DenialRiskScorer(store=ModelStore(tmp_path)).score(session, as_of=AS_OF) == []
