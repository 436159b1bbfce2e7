"""The KDIGO scorer stages AKI from the patient's serum creatinine (KDIGO 2012, Table 2)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from healthos_core import terminology as t
from healthos_core.errors import InvalidInputError
from healthos_core.record.entities import Encounter, Observation
from reasoning.clinical.kdigo_scorer import KdigoScorer
from reasoning.suggestion import Audience, Severity, Suggestion
from tests.conftest import table_counts
from tests.factories import make_encounter, make_observation

NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)


def _encounter(session: Session, class_code: str = "IMP", **kw: object) -> Encounter:
    values: dict[str, object] = {
        "class_code": class_code,
        "status": "in-progress",
        "period_start": NOW - 3 * D,
    }
    values.update(kw)
    return make_encounter(session, **values)


def _scr(
    session: Session, encounter: Encounter, mg_dl: float, at: dt.datetime, **kw: object
) -> Observation:
    values: dict[str, object] = {"unit": "mg/dL"}
    values.update(kw)
    return make_observation(
        session,
        patient_id=encounter.patient_id,
        code=t.CREATININE,
        value=mg_dl,
        effective_at=at,
        **values,
    )


def _factors(suggestion: Suggestion) -> dict[str, tuple[object, float]]:
    return {f.name: (f.value, f.contribution) for f in suggestion.explanation.factors}


def test_kdigo_stage_1_by_a_48_hour_rise_is_a_warning(session: Session) -> None:
    encounter = _encounter(session)
    first = _scr(session, encounter, 0.9, NOW - 40 * H)
    latest = _scr(session, encounter, 1.25, NOW - 2 * H, encounter_id=encounter.id)
    [suggestion] = KdigoScorer().score(session, as_of=NOW)
    # rise 0.35 >= 0.3 mg/dL in 48 h: stage 1; ratio 1.25 / 0.9 = 1.39 < 1.5.
    assert suggestion.kind == "clinical.kdigo_aki"
    assert suggestion.subject == encounter.reference
    assert (suggestion.score, suggestion.band) == (1, "stage 1")
    assert suggestion.severity is Severity.WARNING
    assert suggestion.audience is Audience.CLINICIAN
    factors = _factors(suggestion)
    assert factors["latest"] == (1.25, 0)
    assert factors["baseline"] == (0.9, 0)
    assert factors["ratio"][0] == pytest.approx(1.389, abs=1e-3)
    assert factors["ratio"][1] == 0
    assert factors["rise_48h"][0] == pytest.approx(0.35)
    assert factors["rise_48h"][1] == 1
    assert suggestion.explanation.factors[0].name == "rise_48h"
    assert set(suggestion.explanation.evidence) == {first.reference, latest.reference}
    assert suggestion.explanation.method == "rule:kdigo_aki"
    assert suggestion.created_at == NOW - 2 * H
    assert "nephrotoxic" in suggestion.recommended_action
    assert suggestion.source.reference is not None and "KDIGO" in suggestion.source.reference
    assert suggestion.summary == (
        "AKI stage 1 (KDIGO): creatinine 1.25 mg/dL, 1.4× baseline 0.9, +0.35 in 48 h"
    )


def test_kdigo_stage_2_by_ratio_is_critical(session: Session) -> None:
    encounter = _encounter(session)
    baseline = _scr(session, encounter, 1.0, NOW - 5 * D)
    _scr(session, encounter, 1.4, NOW - 3 * D)  # neither the lowest nor within 48 h
    latest = _scr(session, encounter, 2.3, NOW - 6 * H)
    [suggestion] = KdigoScorer().score(session, as_of=NOW)
    # ratio 2.3 / 1.0 = 2.3: stage 2; no value in the 48 h before the latest.
    assert (suggestion.score, suggestion.band) == (2, "stage 2")
    assert suggestion.severity is Severity.CRITICAL
    factors = _factors(suggestion)
    assert factors["ratio"] == (2.3, 2)
    assert "rise_48h" not in factors
    assert set(suggestion.explanation.evidence) == {baseline.reference, latest.reference}
    assert "renal replacement therapy" in suggestion.recommended_action


def test_kdigo_stage_3_by_ratio_and_by_creatinine_4_with_an_acute_rise(session: Session) -> None:
    tripled = _encounter(session)
    _scr(session, tripled, 0.8, NOW - 4 * D)
    _scr(session, tripled, 2.6, NOW - 1 * H)  # 3.25× baseline
    high = _encounter(session)
    _scr(session, high, 3.6, NOW - 30 * H)
    _scr(session, high, 4.0, NOW - 1 * H)  # +0.4 in 48 h and >= 4.0 mg/dL
    by_subject = {s.subject: s for s in KdigoScorer().score(session, as_of=NOW)}
    assert by_subject[tripled.reference].score == 3
    assert _factors(by_subject[tripled.reference])["ratio"] == (3.25, 3)
    stage_3 = by_subject[high.reference]
    assert (stage_3.score, stage_3.severity) == (3, Severity.CRITICAL)
    factors = _factors(stage_3)
    assert factors["latest"] == (4.0, 3)
    assert factors["rise_48h"][1] == 1
    assert factors["ratio"][1] == 0  # 1.11×
    assert "subclavian" in stage_3.recommended_action


def test_kdigo_baseline_may_be_older_than_7_days_before_as_of(session: Session) -> None:
    encounter = _encounter(session)
    baseline = _scr(session, encounter, 1.0, NOW - 12 * D)  # 6 days before the latest
    latest = _scr(session, encounter, 2.0, NOW - 6 * D)  # within 7 days of as_of
    [suggestion] = KdigoScorer().score(session, as_of=NOW)
    assert suggestion.score == 2
    assert set(suggestion.explanation.evidence) == {baseline.reference, latest.reference}


def test_kdigo_uses_the_median_of_older_values_when_none_in_7_days(session: Session) -> None:
    encounter = _encounter(session)
    older = [
        _scr(session, encounter, value, NOW - days * D)
        for value, days in ((1.0, 200), (1.2, 100), (0.9, 30))
    ]
    latest = _scr(session, encounter, 2.1, NOW - 1 * D)
    _scr(session, encounter, 0.5, NOW - 400 * D)  # older than 365 days before the latest
    [suggestion] = KdigoScorer().score(session, as_of=NOW)
    # median(1.0, 1.2, 0.9) = 1.0; 2.1 / 1.0 = 2.1: stage 2.
    assert suggestion.score == 2
    factors = {f.name: f for f in suggestion.explanation.factors}
    assert factors["baseline"].value == 1.0
    assert factors["baseline"].text == "baseline 1 mg/dL (median of 3 values 8-365 days before)"
    assert set(suggestion.explanation.evidence) == {latest.reference, *(o.reference for o in older)}
    assert KdigoScorer(baseline_days=0).score(session, as_of=NOW) == []


def test_kdigo_converts_micromoles_per_litre(session: Session) -> None:
    encounter = _encounter(session)
    _scr(session, encounter, 80, NOW - 3 * D, unit="umol/L")  # 0.905 mg/dL
    _scr(session, encounter, 177, NOW - 1 * H, unit="µmol/L")  # 2.002 mg/dL
    _scr(session, encounter, 9.0, NOW - 2 * H, unit="mmol/L")  # unknown unit: unused
    [suggestion] = KdigoScorer().score(session, as_of=NOW)
    assert suggestion.score == 2  # 177 / 80 = 2.21
    assert _factors(suggestion)["ratio"][0] == pytest.approx(2.2125, abs=1e-3)


def test_kdigo_no_suggestion_without_aki_or_without_a_baseline(session: Session) -> None:
    stable = _encounter(session)
    _scr(session, stable, 1.0, NOW - 3 * D)
    _scr(session, stable, 1.1, NOW - 1 * D)
    _scr(session, stable, 3.0, NOW - 1 * H, status="entered-in-error")  # ignored
    single = _encounter(session)
    _scr(session, single, 3.5, NOW - 1 * H)  # no earlier value: stage unknown, not "no AKI"
    stale = _encounter(session)
    _scr(session, stale, 1.0, NOW - 12 * D)
    _scr(session, stale, 2.5, NOW - 9 * D)  # latest older than 7 days before as_of
    assert KdigoScorer().score(session, as_of=NOW) == []


def test_kdigo_skips_finished_and_outpatient_encounters(session: Session) -> None:
    finished = _encounter(session, status="finished", period_end=NOW - 1 * H)
    outpatient = _encounter(session, class_code="AMB")
    for encounter in (finished, outpatient):
        _scr(session, encounter, 1.0, NOW - 2 * D)
        _scr(session, encounter, 2.5, NOW - 2 * H)
    assert KdigoScorer().score(session, as_of=NOW) == []
    emergency = _encounter(session, class_code="EMER")
    _scr(session, emergency, 1.0, NOW - 2 * D)
    _scr(session, emergency, 2.5, NOW - 2 * H)
    [suggestion] = KdigoScorer().score(session, as_of=NOW)
    assert suggestion.subject == emergency.reference


def test_kdigo_rejects_a_naive_as_of(session: Session) -> None:
    with pytest.raises(InvalidInputError, match="naive"):
        KdigoScorer().score(session, as_of=dt.datetime(2026, 1, 1))


def test_kdigo_scorer_does_not_write(session: Session, engine: Engine) -> None:
    encounter = _encounter(session)
    _scr(session, encounter, 1.0, NOW - 2 * D)
    _scr(session, encounter, 2.5, NOW - 2 * H)
    session.commit()
    before = table_counts(engine)
    assert len(KdigoScorer().score(session, as_of=NOW)) == 1
    assert not (session.new or session.dirty or session.deleted)
    session.commit()
    assert table_counts(engine) == before
