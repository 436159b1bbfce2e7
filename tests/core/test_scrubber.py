"""The claim scrubber: every edit, positive and negative, and golden cases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from healthos_core.billing.claims import (
    HCPCS_SYSTEMS,
    ICD10CM_SYSTEM,
    SCRUBBER_EDITS,
    ClaimIssue,
    icd10cm_code,
    mue_limit,
    scrub_claim,
    scrub_claims,
)
from healthos_core.billing.entities import Claim, ClaimDiagnosis
from healthos_core.billing.payers import decide_authorization, request_authorization
from healthos_core.errors import InvalidInputError
from healthos_core.record.entities import Coverage
from tests.core.test_claims import COLONOSCOPY, RECTAL_EXAM, T0, World, make_world
from tests.core.test_payers import make_coverage
from tests.factories import SNOMED, make_claim, make_organization

HCPCS = sorted(HCPCS_SYSTEMS)[0]
DAY = T0.date()
SENT = T0 + dt.timedelta(days=3)
REPO = Path(__file__).resolve().parents[2]


def line(
    code: str,
    *,
    quantity: str = "1",
    price: str = "100.00",
    category: str | None = None,
    system: str = SNOMED,
    day: dt.date = DAY,
    pointers: list[int] | None = None,
) -> dict[str, Any]:
    return {
        "code_system": system,
        "code": code,
        "quantity": quantity,
        "unit_price": price,
        "net": str(float(price) * float(quantity)),
        "service_date": day,
        "category": category,
        "diagnosis_sequence": [1] if pointers is None else pointers,
    }


CHECKUP_LINE = line("185349003", category="evaluation_management")


def claim_for(
    session: Session,
    world: World,
    *,
    lines: Sequence[dict[str, Any]] = (CHECKUP_LINE,),
    diagnoses: Sequence[tuple[str | None, str]] = ((ICD10CM_SYSTEM, "E11.9"),),
    coverage: Coverage | None = None,
    submitted_at: dt.datetime | None = SENT,
    **overrides: Any,
) -> Claim:
    cover = coverage or world.coverage
    values: dict[str, Any] = {
        "encounter_id": world.encounter.id,
        "insurer_id": cover.payor_id,
        "coverage_id": cover.id,
        "provider_id": world.provider.id,
        "billing_status": "submitted" if submitted_at else "draft",
        "submitted_at": submitted_at,
        "created": submitted_at or T0,
        "billable_start": world.encounter.period_start,
        "billable_end": world.encounter.period_end,
        "patient_control_number": "PCN" + world.encounter.id[:8],
        "priority": "stat" if world.encounter.class_code == "EMER" else "normal",
    }
    values.update(overrides)
    claim = make_claim(session, patient_id=world.patient.id, items=lines, **values)
    for sequence, (system, code) in enumerate(diagnoses, start=1):
        session.add(
            ClaimDiagnosis(
                claim_id=claim.id,
                sequence=sequence,
                code_system=system,
                code=code,
                type_code="principal" if sequence == 1 else None,
            )
        )
    session.flush()
    return claim


def edits(issues: Sequence[ClaimIssue]) -> list[tuple[str, str, str | None, int | None]]:
    return [(i.edit, i.severity, i.carc, i.sequence) for i in issues]


def only(issues: Sequence[ClaimIssue], edit: str) -> list[ClaimIssue]:
    return [i for i in issues if i.edit == edit]


# --------------------------------------------------------------------------- golden


def test_clean_claim_has_no_issue(session: Session) -> None:
    world = make_world(session)
    assert scrub_claim(session, claim_for(session, world)) == []


def test_golden_claim_with_many_problems(session: Session) -> None:
    world = make_world(session, payer="payer-acme-ppo", coverage_end=dt.date(2024, 2, 15))
    claim = claim_for(
        session,
        world,
        lines=[
            line(COLONOSCOPY, category="surgical_procedure"),
            line(RECTAL_EXAM, quantity="3", category="minor_procedure"),
            line("23426006", pointers=[4], category="laboratory"),
        ],
        diagnoses=[(ICD10CM_SYSTEM, "E11"), (SNOMED, "160903007")],
        submitted_at=T0 + dt.timedelta(days=200),
    )
    issues = scrub_claim(session, claim)
    assert edits(issues) == [
        ("coverage-inactive", "error", "27", None),
        ("filing-limit", "error", "29", None),
        ("diagnosis-not-icd10cm", "warning", "16", None),
        ("diagnosis-invalid", "error", "16", None),
        ("diagnosis-pointer", "error", "16", 3),
        ("units-over-limit", "error", "119", 2),
        ("bundled", "error", "97", 2),
    ]
    coverage = issues[0]
    assert "ended on 2024-02-15" in coverage.message and coverage.rarc == "N30"
    assert coverage.evidence[0] == f"Coverage/{world.coverage.id}"
    assert only(issues, "diagnosis-invalid")[0].rarc == "M81"
    assert only(issues, "units-over-limit")[0].rarc == "N640"
    assert only(issues, "bundled")[0].rarc == "M15"
    assert all(i.to_dict()["edit"] == i.edit for i in issues)


def test_scrub_claims_in_a_batch_equals_one_by_one(session: Session) -> None:
    world = make_world(session)
    first = claim_for(session, world)
    second = claim_for(session, world, diagnoses=[], submitted_at=SENT + dt.timedelta(days=1))
    batch = scrub_claims(session, [first, second])
    assert batch == {
        first.id: scrub_claim(session, first),
        second.id: scrub_claim(session, second),
    }
    assert [i.edit for i in batch[second.id]] == ["diagnosis-missing", "duplicate"]


def test_every_edit_is_documented() -> None:
    text = (REPO / "docs" / "claims.md").read_text(encoding="utf-8")
    for edit, info in SCRUBBER_EDITS.items():
        assert f"`{edit}`" in text, edit
        assert info.source and info.description


# --------------------------------------------------------------------------- coverage


def test_coverage_inactive_after_the_end_before_the_start_and_on_the_last_day(
    session: Session,
) -> None:
    world = make_world(session, coverage_end=dt.date(2024, 3, 1))
    on_last_day = claim_for(session, world)
    assert only(scrub_claim(session, on_last_day), "coverage-inactive") == []
    world.coverage.period_end = dt.datetime(2024, 2, 29, tzinfo=dt.UTC)
    after = only(scrub_claim(session, on_last_day), "coverage-inactive")
    assert [(i.carc, i.sequence) for i in after] == [("27", None)]
    assert "no active coverage then" in after[0].message
    world.coverage.period_start = dt.datetime(2024, 3, 2, tzinfo=dt.UTC)
    world.coverage.period_end = None
    before = only(scrub_claim(session, on_last_day), "coverage-inactive")
    assert [i.carc for i in before] == ["26"]


def test_coverage_inactive_points_to_the_coverage_to_rebill(session: Session) -> None:
    world = make_world(session, coverage_end=dt.date(2024, 1, 31))
    newer = make_coverage(session, world.patient, payer="payer-medicare", start=dt.date(2024, 2, 1))
    issue = only(scrub_claim(session, claim_for(session, world)), "coverage-inactive")[0]
    assert f"Coverage/{newer.id}" in issue.message and "rebill" in issue.message


def test_coverage_missing_on_the_claim(session: Session) -> None:
    world = make_world(session)
    claim = claim_for(session, world, coverage_id=None)
    issue = only(scrub_claim(session, claim), "coverage-inactive")[0]
    assert issue.carc == "31" and "attach it" in issue.message


def test_coverage_inactive_on_a_later_line_only(session: Session) -> None:
    world = make_world(session, coverage_end=dt.date(2024, 3, 2))
    claim = claim_for(
        session,
        world,
        lines=[CHECKUP_LINE, line("23426006", category="laboratory", day=dt.date(2024, 3, 4))],
    )
    issues = only(scrub_claim(session, claim), "coverage-inactive")
    assert [(i.carc, i.sequence) for i in issues] == [("27", 2)]


def test_coverage_payer_mismatch(session: Session) -> None:
    world = make_world(session)
    claim = claim_for(session, world, insurer_id="payer-medicare")
    assert [i.carc for i in only(scrub_claim(session, claim), "coverage-payer-mismatch")] == ["109"]
    assert only(scrub_claim(session, claim_for(session, world)), "coverage-payer-mismatch") == []


def test_coverage_not_primary(session: Session) -> None:
    world = make_world(session, payer="payer-medicaid")
    world.coverage.resource = {"resourceType": "Coverage", "order": 2}
    primary = make_coverage(session, world.patient, payer="payer-medicare", order=1)
    issues = only(scrub_claim(session, claim_for(session, world)), "coverage-not-primary")
    assert [i.carc for i in issues] == ["22"] and f"Coverage/{primary.id}" in issues[0].message
    to_primary = claim_for(session, world, coverage=primary)
    assert only(scrub_claim(session, to_primary), "coverage-not-primary") == []


def test_contract_missing_is_a_warning(session: Session) -> None:
    world = make_world(session)
    make_organization(session, id="payer-new", name="New Payer", type_code="pay")
    coverage = make_coverage(session, world.patient, payer="payer-new")
    issues = scrub_claim(session, claim_for(session, world, coverage=coverage))
    assert edits(issues) == [("contract-missing", "warning", None, None)]


# --------------------------------------------------------------------------- authorisation


def _authorize(
    session: Session, world: World, categories: list[str], number: str = "BHH-PA-1"
) -> None:
    request = request_authorization(
        session,
        patient_id=world.patient.id,
        payer_id="payer-blue-hmo",
        requested_by="scheduler",
        service_categories=categories,
        requested_at=T0 - dt.timedelta(days=3),
    )
    decide_authorization(
        session,
        request.id,
        status="approved",
        actor="payer",
        reference_number=number,
        valid_from=DAY - dt.timedelta(days=3),
        valid_to=DAY + dt.timedelta(days=27),
    )


SCOPE = line(COLONOSCOPY, category="surgical_procedure")


def test_authorization_missing_where_the_contract_needs_one(session: Session) -> None:
    world = make_world(session)
    claim = claim_for(session, world, lines=[CHECKUP_LINE, SCOPE])
    issues = only(scrub_claim(session, claim), "authorization-missing")
    assert [(i.severity, i.carc, i.rarc, i.sequence) for i in issues] == [
        ("error", "197", "M62", 2)
    ]
    assert "Contract/payer-blue-hmo" in issues[0].evidence


def test_authorization_not_needed_in_an_emergency_or_by_other_payers(session: Session) -> None:
    emergency = make_world(session, class_code="EMER")
    claim = claim_for(session, emergency, lines=[SCOPE])
    assert only(scrub_claim(session, claim), "authorization-missing") == []
    medicare = make_coverage(session, emergency.patient, payer="payer-medicare", order=None)
    other = claim_for(session, emergency, lines=[SCOPE], coverage=medicare)
    assert only(scrub_claim(session, other), "authorization-missing") == []


def test_authorization_on_record_and_on_the_claim(session: Session) -> None:
    world = make_world(session)
    _authorize(session, world, ["surgical_procedure"])
    with_ref = claim_for(session, world, lines=[SCOPE], pre_auth_ref="BHH-PA-1")
    assert only(scrub_claim(session, with_ref), "authorization-missing") == []
    without_ref = claim_for(
        session, world, lines=[SCOPE], submitted_at=None, patient_control_number="other"
    )
    warning = only(scrub_claim(session, without_ref), "authorization-missing")
    assert [(i.severity, i.sequence) for i in warning] == [("warning", 1)]
    assert "BHH-PA-1" in warning[0].message


def test_authorization_reference_that_does_not_cover_the_service(session: Session) -> None:
    world = make_world(session)
    _authorize(session, world, ["oncology"], number="BHH-PA-2")
    claim = claim_for(session, world, lines=[SCOPE], pre_auth_ref="BHH-PA-2")
    issues = only(scrub_claim(session, claim), "authorization-missing")
    assert [(i.carc, i.rarc) for i in issues] == [("197", "N54")]
    assert "for oncology" in issues[0].message


def test_authorization_reference_from_outside_healthos_is_accepted(session: Session) -> None:
    world = make_world(session)
    claim = claim_for(session, world, lines=[SCOPE], pre_auth_ref="BHH-PA-1906-243930")
    assert only(scrub_claim(session, claim), "authorization-missing") == []


# --------------------------------------------------------------------------- filing limit


def test_filing_limit_counts_days_from_the_service_to_submission(session: Session) -> None:
    world = make_world(session)  # Blue Horizon HMO: 90 days
    on_time = claim_for(session, world, submitted_at=T0 + dt.timedelta(days=90))
    assert only(scrub_claim(session, on_time), "filing-limit") == []
    late = claim_for(
        session,
        world,
        submitted_at=T0 + dt.timedelta(days=91),
        lines=[line("23426006", category="laboratory")],
    )
    issue = only(scrub_claim(session, late), "filing-limit")[0]
    assert issue.carc == "29" and "91 days" in issue.message and "within 90 days" in issue.message


def test_filing_limit_of_a_draft_is_judged_as_of(session: Session) -> None:
    world = make_world(session)
    draft = claim_for(session, world, submitted_at=None)
    assert only(scrub_claim(session, draft, as_of=T0 + dt.timedelta(days=30)), "filing-limit") == []
    assert only(scrub_claim(session, draft, as_of=T0 + dt.timedelta(days=120)), "filing-limit")
    with pytest.raises(InvalidInputError, match="aware"):
        scrub_claim(session, draft, as_of=dt.datetime(2024, 6, 1))


def test_filing_limit_uses_the_through_date_of_a_stay(session: Session) -> None:
    world = make_world(session, class_code="IMP")
    world.encounter.period_end = T0 + dt.timedelta(days=10)
    claim = claim_for(
        session,
        world,
        billable_end=T0 + dt.timedelta(days=10),
        submitted_at=T0 + dt.timedelta(days=95),
        lines=[line("185347001", category="inpatient_admission")],
        pre_auth_ref="BHH-PA-X",
    )
    assert only(scrub_claim(session, claim), "filing-limit") == []


def test_filing_limit_is_not_applied_to_corrected_claims(session: Session) -> None:
    world = make_world(session)
    original = claim_for(session, world, billing_status="denied")
    corrected = claim_for(
        session,
        world,
        related_claim_id=original.id,
        submitted_at=T0 + dt.timedelta(days=200),
        lines=[line("23426006", category="laboratory")],
    )
    assert only(scrub_claim(session, corrected), "filing-limit") == []


# --------------------------------------------------------------------------- lines


def test_provider_missing_and_incomplete_lines(session: Session) -> None:
    world = make_world(session)
    claim = claim_for(
        session,
        world,
        provider_id=None,
        lines=[CHECKUP_LINE, {**line(""), "code": None}, line("23426006", quantity="0")],
    )
    issues = scrub_claim(session, claim)
    assert [(i.edit, i.rarc, i.sequence) for i in issues if i.edit != "units-over-limit"] == [
        ("provider-missing", "N257", None),
        ("line-incomplete", "M20", 2),
        ("line-incomplete", "M53", 3),
    ]
    empty = claim_for(session, world, lines=[])
    assert [(i.edit, i.rarc) for i in scrub_claim(session, empty)] == [("line-incomplete", "M20")]


# --------------------------------------------------------------------------- diagnoses


def test_diagnosis_missing(session: Session) -> None:
    world = make_world(session)
    issues = scrub_claim(session, claim_for(session, world, diagnoses=[]))
    assert [(i.edit, i.carc, i.rarc) for i in issues] == [("diagnosis-missing", "16", "M76")]


def test_diagnosis_not_icd10cm_is_an_error_only_when_principal(session: Session) -> None:
    world = make_world(session)
    secondary = claim_for(session, world, diagnoses=[(ICD10CM_SYSTEM, "E11.9"), (SNOMED, "1")])
    assert edits(scrub_claim(session, secondary)) == [
        ("diagnosis-not-icd10cm", "warning", "16", None)
    ]
    principal = claim_for(
        session, world, diagnoses=[(SNOMED, "44054006")], submitted_at=SENT + dt.timedelta(1)
    )
    issues = only(scrub_claim(session, principal), "diagnosis-not-icd10cm")
    assert [i.severity for i in issues] == ["error"]
    assert "principal diagnosis must be coded in ICD-10-CM" in issues[0].message


@pytest.mark.parametrize(
    ("code", "problem", "rarc"),
    [
        ("E11", "header, not a billable ICD-10-CM code: use one of its", "M81"),
        ("E11.99", "not an ICD-10-CM code", "M76"),
        ("W01.0XXA", "external-cause code", "M76"),
    ],
)
def test_diagnosis_invalid(session: Session, code: str, problem: str, rarc: str) -> None:
    world = make_world(session)
    issues = scrub_claim(session, claim_for(session, world, diagnoses=[(ICD10CM_SYSTEM, code)]))
    assert [(i.edit, i.carc, i.rarc) for i in issues] == [("diagnosis-invalid", "16", rarc)]
    assert problem in issues[0].message


def test_diagnosis_valid_forms_and_a_secondary_external_cause(session: Session) -> None:
    world = make_world(session)
    claim = claim_for(
        session,
        world,
        diagnoses=[(ICD10CM_SYSTEM, "S72001A"), (ICD10CM_SYSTEM, "W01.0XXA")],
    )
    assert scrub_claim(session, claim) == []


def test_diagnosis_pointer_to_a_missing_diagnosis(session: Session) -> None:
    world = make_world(session)
    claim = claim_for(session, world, lines=[line("185349003", pointers=[1, 3])])
    assert edits(scrub_claim(session, claim)) == [("diagnosis-pointer", "error", "16", 1)]


def test_icd10cm_and_mue_lookups() -> None:
    assert icd10cm_code("e11.9") == ("E11.9", True)
    assert icd10cm_code("E11") == ("E11", False)
    assert icd10cm_code("nonsense") is None
    assert mue_limit("99213") == 2
    assert mue_limit("J1100") == 120
    assert mue_limit("99999X") is None


# --------------------------------------------------------------------------- duplicates


def test_duplicate_of_an_earlier_claim(session: Session) -> None:
    world = make_world(session)
    first = claim_for(session, world)
    again = claim_for(session, world, submitted_at=SENT + dt.timedelta(days=5))
    issue = only(scrub_claim(session, again), "duplicate")[0]
    assert (issue.carc, issue.group_code, issue.evidence) == ("18", "OA", (f"Claim/{first.id}",))
    assert only(scrub_claim(session, first), "duplicate") == []  # the first is not a duplicate


def test_not_a_duplicate_with_other_codes_another_day_or_as_a_correction(
    session: Session,
) -> None:
    world = make_world(session)
    first = claim_for(session, world, billing_status="denied")
    other_codes = claim_for(
        session,
        world,
        lines=[line("23426006", category="laboratory")],
        submitted_at=SENT + dt.timedelta(1),
    )
    other_day = claim_for(
        session,
        world,
        lines=[line("185349003", day=DAY + dt.timedelta(days=1))],
        submitted_at=SENT + dt.timedelta(2),
        billable_start=T0 + dt.timedelta(days=1),
    )
    corrected = claim_for(
        session, world, related_claim_id=first.id, submitted_at=SENT + dt.timedelta(3)
    )
    for claim in (other_codes, other_day, corrected):
        assert only(scrub_claim(session, claim), "duplicate") == [], claim.id


def test_a_corrected_claim_is_not_a_duplicate_of_a_resent_copy(session: Session) -> None:
    world = make_world(session)
    first = claim_for(session, world, billing_status="paid")
    claim_for(session, world, submitted_at=SENT + dt.timedelta(1), billing_status="denied")
    corrected = claim_for(
        session, world, related_claim_id=first.id, submitted_at=SENT + dt.timedelta(5)
    )
    assert only(scrub_claim(session, corrected), "duplicate") == []


# --------------------------------------------------------------------------- units


def test_units_over_the_cms_mue_for_hcpcs_codes(session: Session) -> None:
    world = make_world(session, payer="payer-medicare")
    over = claim_for(session, world, lines=[line("99213", quantity="3", system=HCPCS)])
    issues = only(scrub_claim(session, over), "units-over-mue")
    assert [(i.carc, i.rarc, i.sequence) for i in issues] == [("151", "N362", 1)]
    assert "CMS MUE of 2" in issues[0].message
    at_limit = claim_for(
        session,
        world,
        lines=[line("99213", quantity="2", system=HCPCS)],
        patient_control_number="b",
    )
    assert only(scrub_claim(session, at_limit), "units-over-mue") == []
    snomed = claim_for(
        session, world, lines=[line("99213", quantity="3")], patient_control_number="c"
    )
    assert only(scrub_claim(session, snomed), "units-over-mue") == []


def test_units_over_the_payer_limit_use_the_contract_carc(session: Session) -> None:
    acme = make_world(session, payer="payer-acme-ppo")
    over = claim_for(session, acme, lines=[line("23426006", quantity="3", category="laboratory")])
    issue = only(scrub_claim(session, over), "units-over-limit")[0]
    assert (issue.carc, issue.rarc, issue.sequence) == ("119", "N640", 1)
    within = claim_for(
        session,
        acme,
        lines=[line(RECTAL_EXAM, quantity="2", category="minor_procedure")],
        submitted_at=SENT + dt.timedelta(1),
    )
    assert only(scrub_claim(session, within), "units-over-limit") == []
    split = claim_for(
        session,
        acme,
        lines=[line(RECTAL_EXAM, category="minor_procedure")] * 3,
        submitted_at=SENT + dt.timedelta(2),
    )
    issue = only(scrub_claim(session, split), "units-over-limit")[0]
    assert "lines 1, 2, 3" in issue.message and "limit of 2" in issue.message


def test_units_over_the_payer_limit_medicare_denies_the_line(session: Session) -> None:
    world = make_world(session, payer="payer-medicare")
    over = claim_for(session, world, lines=[line("unlisted-code", quantity="2")])
    issue = only(scrub_claim(session, over), "units-over-limit")[0]
    assert (issue.carc, issue.rarc) == ("151", "N362")
    assert "not in the payer's unit limits: limit 1" in issue.message


# --------------------------------------------------------------------------- bundling


def test_bundled_component_billed_with_its_comprehensive_code(session: Session) -> None:
    world = make_world(session, payer="payer-medicare")
    claim = claim_for(session, world, lines=[line(COLONOSCOPY), line(RECTAL_EXAM), CHECKUP_LINE])
    issues = only(scrub_claim(session, claim), "bundled")
    assert [(i.carc, i.group_code, i.sequence) for i in issues] == [("97", "CO", 2)]
    assert "included in 73761001 on line 1" in issues[0].message
    alone = claim_for(session, world, lines=[line(RECTAL_EXAM)], patient_control_number="alone")
    assert only(scrub_claim(session, alone), "bundled") == []
