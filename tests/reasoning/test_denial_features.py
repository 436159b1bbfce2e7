"""Denial-risk features on tiny hand-built claims (SQLite and PostgreSQL).

Each feature is checked against what the claim's context makes it: coverage in force on
the date of service (FHIR Coverage.period, X12 CARC 26/27), filing delay against the
contract's limit (CARC 29), prior authorisation required by the contract and present
(CARC 197), exact duplicates (CARC 18), units over the payer's limit (CARC 151), bundled
pairs (CARC 97), and prior denials counted only from answers received before the claim
was submitted. The edit indicators agree with the scrubber on the same claims.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session

from healthos_core.billing.claims import ICD10CM_SYSTEM, scrub_claims
from healthos_core.billing.entities import Claim, ClaimDiagnosis, ClaimResponse
from healthos_core.billing.payers import BundlingEdit, Contract, ServiceCode
from healthos_core.billing.remittance import ClaimResponseAdjudication
from healthos_core.record.entities import Coverage
from reasoning.features import denial
from tests.factories import make_claim, make_encounter, make_organization, make_patient, new_id

SNOMED = "http://snomed.info/sct"
PAYER = "payer-test"


def at(day: str, hour: int = 12) -> dt.datetime:
    """An aware UTC time on ``day`` (ISO date)."""
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=dt.UTC)


@dataclass
class World:
    """A payer with a contract, a provider, a patient and a coverage of 2020."""

    patient_id: str
    coverage_id: str
    provider_id: str


def make_world(session: Session, *, coverage_end: dt.datetime | None = None) -> World:
    """Build the payer, contract (90-day limit, surgery needs prior auth), codes and coverage."""
    make_organization(session, id=PAYER, name="Test Payer", type_code="pay")
    provider = make_organization(session, name="General Hospital")
    session.add(
        Contract(
            payer_id=PAYER,
            payer_name="Test Payer",
            plan_type="Commercial HMO",
            coverage_type_code="HIP",
            timely_filing_days=90,
            allowed_pct_amb=Decimal("0.6"),
            allowed_pct_emer=Decimal("0.6"),
            allowed_pct_imp=Decimal("0.6"),
            coinsurance_pct=Decimal("0"),
            copay_amb=Decimal("0"),
            copay_emer=Decimal("0"),
            copay_imp=Decimal("0"),
            currency="USD",
            prior_auth_categories=["surgical_procedure"],
            prior_auth_exempt_classes=["EMER"],
            unit_limit_carc="151",
            unit_limit_policy="deny line (CO-151)",
            applies_bundling_edits=True,
            filing_limit_applies_to_corrected=False,
        )
    )
    for code, category, units in (
        ("E1", "evaluation_management", 1),
        ("S1", "surgical_procedure", 1),
        ("L1", "laboratory", 3),
        ("C1", "minor_procedure", 1),
    ):
        session.add(
            ServiceCode(
                code_system=SNOMED,
                code=code,
                service_category=category,
                max_units_per_line=units,
            )
        )
    session.add(BundlingEdit(comprehensive_code="S1", component_code="C1"))
    patient = make_patient(session)
    coverage = Coverage(
        id=new_id(),
        patient_id=patient.id,
        status="active",
        type_code="HIP",
        payor_id=PAYER,
        period_start=at("2020-01-01", 0),
        period_end=coverage_end,
    )
    session.add(coverage)
    session.flush()
    return World(patient_id=patient.id, coverage_id=coverage.id, provider_id=provider.id)


def line(code: str, day: str, *, units: int = 1, net: str = "100.00") -> dict[str, Any]:
    """A claim line of ``code`` (SNOMED) on ``day``."""
    return {
        "code_system": SNOMED,
        "code": code,
        "quantity": units,
        "unit_price": Decimal(net) / units,
        "net": net,
        "service_date": dt.date.fromisoformat(day),
        "diagnosis_sequence": [1],
    }


def submit(
    session: Session,
    world: World,
    lines: Iterable[Mapping[str, Any]],
    *,
    submitted: dt.datetime,
    diagnoses: Iterable[str] = ("J06.9",),
    **overrides: Any,
) -> Claim:
    """A submitted claim to the test payer with the given lines and ICD-10-CM diagnoses."""
    items = list(lines)
    days = [i["service_date"] for i in items]
    values: dict[str, Any] = {
        "insurer_id": PAYER,
        "coverage_id": world.coverage_id,
        "provider_id": world.provider_id,
        "billing_status": "submitted",
        "created": submitted,
        "submitted_at": submitted,
        "billable_start": dt.datetime.combine(min(days), dt.time(9), dt.UTC),
        "billable_end": dt.datetime.combine(max(days), dt.time(10), dt.UTC),
        "total": sum(Decimal(str(i["net"])) for i in items),
    }
    values.update(overrides)
    claim = make_claim(session, patient_id=world.patient_id, items=items, **values)
    for sequence, code in enumerate(diagnoses, start=1):
        session.add(
            ClaimDiagnosis(
                claim_id=claim.id,
                sequence=sequence,
                code_system=ICD10CM_SYSTEM,
                code=code,
                type_code="principal" if sequence == 1 else "secondary",
            )
        )
    session.flush()
    return claim


def answer(session: Session, claim: Claim, *, created: dt.datetime, denied: bool) -> None:
    """Record the payer's answer: denied (claim level, CARC 27) or paid."""
    response = ClaimResponse(
        id=new_id(),
        patient_id=claim.patient_id,
        claim_id=claim.id,
        status="active",
        outcome="complete",
        created=created,
    )
    session.add(response)
    session.flush()
    if denied:
        session.add(
            ClaimResponseAdjudication(
                claim_response_id=response.id,
                ordinal=1,
                claim_id=claim.id,
                item_sequence=None,
                category="denied",
                group_code="CO",
                carc="27",
                amount=claim.total or Decimal(0),
                currency="USD",
            )
        )
        session.flush()


def features_of(
    session: Session, claims: Iterable[Claim], as_of: dt.datetime | None = None
) -> dict[str, dict[str, float]]:
    """Claim id → feature name → value."""
    ids = [c.id for c in claims]
    built = denial.build(denial.load_context(session, ids, as_of=as_of or at("2021-06-01")))
    return {
        cid: dict(zip(denial.FEATURE_NAMES, row.tolist(), strict=True))
        for cid, row in zip(built.claim_ids, built.X, strict=True)
    }


def test_coverage_inactive_on_the_date_of_service(session: Session) -> None:
    world = make_world(session, coverage_end=at("2020-06-30", 0))
    inside = submit(session, world, [line("E1", "2020-03-02")], submitted=at("2020-03-05"))
    after = submit(session, world, [line("E1", "2020-07-10")], submitted=at("2020-07-12"))
    before = submit(session, world, [line("E1", "2019-12-20")], submitted=at("2019-12-22"))
    f = features_of(session, [inside, after, before])
    assert f[inside.id]["coverage_inactive"] == 0
    assert f[inside.id]["coverage_days_after_end"] == 0
    assert f[after.id]["coverage_inactive"] == 1
    assert f[after.id]["coverage_days_after_end"] == 10
    assert f[before.id]["coverage_inactive"] == 1
    assert f[before.id]["coverage_days_before_start"] == 12
    assert f[inside.id]["coverage_missing"] == 0


def test_filing_days_against_the_payer_limit(session: Session) -> None:
    world = make_world(session)
    on_time = submit(session, world, [line("E1", "2020-03-01")], submitted=at("2020-03-31"))
    late = submit(session, world, [line("E1", "2020-03-01")], submitted=at("2020-07-01"))
    corrected = submit(
        session,
        world,
        [line("E1", "2020-03-01")],
        submitted=at("2020-07-02"),
        related_claim_id=late.id,
    )
    f = features_of(session, [on_time, late, corrected])
    assert f[on_time.id]["filing_days"] == 30
    assert f[on_time.id]["filing_limit_days"] == 90
    assert f[on_time.id]["filing_margin_days"] == 60
    assert f[on_time.id]["filing_over_limit"] == 0
    assert f[late.id]["filing_days"] == 122
    assert f[late.id]["filing_over_limit"] == 1
    # the contract exempts corrected claims ("filing limit not re-applied")
    assert f[corrected.id]["filing_over_limit"] == 0
    assert f[corrected.id]["corrected"] == 1


def test_prior_authorisation_required_by_the_contract_and_present(session: Session) -> None:
    world = make_world(session)
    missing = submit(
        session,
        world,
        [line("E1", "2020-03-01"), line("S1", "2020-03-01")],
        submitted=at("2020-03-03"),
    )
    given = submit(
        session,
        world,
        [line("S1", "2020-04-01")],
        submitted=at("2020-04-03"),
        pre_auth_ref="PA-1",
    )
    emergency = make_encounter(session, patient_id=world.patient_id, class_code="EMER")
    exempt = submit(
        session,
        world,
        [line("S1", "2020-05-01")],
        submitted=at("2020-05-03"),
        encounter_id=emergency.id,
    )
    f = features_of(session, [missing, given, exempt])
    assert (f[missing.id]["auth_required_lines"], f[missing.id]["auth_missing_lines"]) == (1, 1)
    assert f[missing.id]["auth_present"] == 0
    assert (f[given.id]["auth_required_lines"], f[given.id]["auth_missing_lines"]) == (1, 0)
    assert f[given.id]["auth_present"] == 1
    assert f[exempt.id]["auth_required_lines"] == 0
    assert f[exempt.id]["class_emer"] == 1


def test_duplicate_only_of_an_earlier_submission(session: Session) -> None:
    world = make_world(session)
    lines = [line("E1", "2020-03-01"), line("L1", "2020-03-01", units=2)]
    first = submit(session, world, lines, submitted=at("2020-03-03"))
    again = submit(session, world, list(reversed(lines)), submitted=at("2020-03-10"))
    other_day = submit(session, world, [line("E1", "2020-03-02")], submitted=at("2020-03-11"))
    ctx = denial.load_context(session, [first.id, again.id, other_day.id], as_of=at("2021-01-01"))
    built = denial.build(ctx)
    f = dict(zip(built.claim_ids, built.column("duplicate").tolist(), strict=True))
    assert f == {first.id: 0, again.id: 1, other_day.id: 0}
    assert built.duplicate_of == {again.id: first.id}


def test_units_over_limit_and_bundled_pair(session: Session) -> None:
    world = make_world(session)
    claim = submit(
        session,
        world,
        [line("L1", "2020-03-01", units=5), line("S1", "2020-03-01"), line("C1", "2020-03-01")],
        submitted=at("2020-03-03"),
        pre_auth_ref="PA-2",
    )
    ctx = denial.load_context(session, [claim.id], as_of=at("2021-01-01"))
    built = denial.build(ctx)
    f = dict(zip(denial.FEATURE_NAMES, built.X[0].tolist(), strict=True))
    assert f["units_over_limit_lines"] == 1 and f["max_units_ratio"] == pytest.approx(5 / 3)
    assert f["bundled_lines"] == 1
    assert built.over_limit_lines == {claim.id: [1]}
    assert built.bundled_lines == {claim.id: [(3, "S1")]}
    assert f["lines_laboratory"] == 1 and f["lines_surgical_procedure"] == 1
    lines = {
        int(seq): dict(zip(denial.LINE_FEATURE_NAMES, row.tolist(), strict=True))
        for seq, row in zip(built.line_sequence, built.line_X, strict=True)
    }
    assert lines[1]["line_units_over_limit"] == 1 and lines[1]["line_unit_limit"] == 3
    assert lines[3]["line_bundled"] == 1 and lines[2]["line_bundled"] == 0
    assert lines[2]["line_auth_required"] == 1 and lines[2]["line_auth_missing"] == 0


def test_prior_denials_count_only_answers_before_submission(session: Session) -> None:
    world = make_world(session)
    a = submit(session, world, [line("E1", "2020-01-10")], submitted=at("2020-01-12"))
    answer(session, a, created=at("2020-02-01"), denied=True)
    b = submit(session, world, [line("E1", "2020-01-20")], submitted=at("2020-01-22"))
    answer(session, b, created=at("2020-02-05"), denied=False)
    c = submit(session, world, [line("E1", "2020-03-01")], submitted=at("2020-03-03"))
    f = features_of(session, [a, b, c])
    # b went out before a's denial arrived: it may not know of it
    assert (f[b.id]["patient_prior_claims"], f[b.id]["patient_prior_denials"]) == (0, 0)
    assert (f[c.id]["patient_prior_claims"], f[c.id]["patient_prior_denials"]) == (2, 1)
    assert f[c.id]["payer_prior_denial_rate"] == round((1 + 2.2) / (2 + 20), 3)
    assert f[b.id]["payer_prior_denial_rate"] == round(2.2 / 20, 3)
    # answers after as_of are unknown (c, not yet submitted then, is judged at as_of)
    early = features_of(session, [c], as_of=at("2020-02-03"))
    assert (early[c.id]["patient_prior_claims"], early[c.id]["patient_prior_denials"]) == (1, 1)


def test_missing_diagnosis_and_agreement_with_the_scrubber(session: Session) -> None:
    world = make_world(session, coverage_end=at("2020-06-30", 0))
    claims = [
        submit(
            session, world, [line("E1", "2020-03-01")], submitted=at("2020-03-03"), diagnoses=()
        ),
        submit(session, world, [line("E1", "2020-07-05")], submitted=at("2020-07-06")),
        submit(session, world, [line("S1", "2020-03-01")], submitted=at("2020-03-03")),
        submit(session, world, [line("E1", "2020-02-01")], submitted=at("2020-06-01")),
        submit(session, world, [line("L1", "2020-02-02", units=4)], submitted=at("2020-02-03")),
        submit(session, world, [line("E1", "2020-04-01")], submitted=at("2020-04-02")),
    ]
    built = denial.build(
        denial.load_context(session, [c.id for c in claims], as_of=at("2021-01-01"))
    )
    issues = scrub_claims(session, claims, as_of=at("2021-01-01"))
    edits = {
        "diagnosis-missing": "diagnosis_missing",
        "coverage-inactive": "coverage_inactive",
        "authorization-missing": "auth_missing_lines",
        "filing-limit": "filing_over_limit",
        "units-over-limit": "units_over_limit_lines",
        "duplicate": "duplicate",
        "bundled": "bundled_lines",
    }
    for cid, row in zip(built.claim_ids, built.X, strict=True):
        values = dict(zip(denial.FEATURE_NAMES, row.tolist(), strict=True))
        errors = {i.edit for i in issues[cid] if i.is_error}
        flagged = {edit for edit, name in edits.items() if values[name] > 0}
        assert flagged == errors & set(edits), cid
    missing = dict(zip(built.claim_ids, built.column("diagnosis_missing").tolist(), strict=True))
    assert missing == {c.id: float(c is claims[0]) for c in claims}
