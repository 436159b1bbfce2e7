"""Claims: building from an encounter's charges, and the claim lifecycle."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from fhir.resources.R4B.claim import Claim as FhirClaim
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from healthos_core.billing.claims import (
    ICD10CM_SYSTEM,
    TRANSITIONS,
    DiagnosisInput,
    ScrubFailedError,
    appeal_claim,
    build_claim,
    claim_history,
    correct_and_resubmit,
    list_claims,
    record_adjudication_status,
    submit_claim,
    write_off_claim,
)
from healthos_core.billing.entities import (
    ChargeItem,
    Claim,
    ClaimDiagnosis,
    ClaimItem,
    ClaimStatusHistory,
)
from healthos_core.billing.ledger import JournalEntry
from healthos_core.billing.payers import (
    decide_authorization,
    load_bundling_edits_csv,
    load_contracts_csv,
    load_service_codes,
    request_authorization,
)
from healthos_core.errors import ConflictError, InvalidInputError, NotFoundError
from healthos_core.record.entities import (
    Condition,
    Coverage,
    Encounter,
    Organization,
    Patient,
    Procedure,
)
from tests.conftest import table_counts
from tests.core.test_payers import RCM, make_coverage, make_payers
from tests.factories import SNOMED, make_encounter, make_organization, make_patient, new_id

T0 = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)
SOON = T0 + dt.timedelta(days=3)  # well inside every payer's filing limit
CHECKUP = "185349003"  # evaluation_management, revenue code 0510
COLONOSCOPY = "73761001"  # surgical_procedure, 0360: prior auth for Blue Horizon HMO
RECTAL_EXAM = "410006001"  # bundled into the colonoscopy (CO-97)


@dataclass
class World:
    provider: Organization
    patient: Patient
    coverage: Coverage
    encounter: Encounter


def load_reference(session: Session) -> None:
    make_payers(session)
    load_contracts_csv(session, RCM / "contracts.csv")
    load_service_codes(session, RCM / "service_categories.csv", RCM / "unit_limits.csv")
    load_bundling_edits_csv(session, RCM / "bundling_edits.csv")


def make_world(
    session: Session,
    *,
    payer: str = "payer-blue-hmo",
    class_code: str = "AMB",
    start: dt.datetime = T0,
    coverage_end: dt.date | None = None,
) -> World:
    load_reference(session)
    provider = make_organization(session, name="St Elsewhere")
    patient = make_patient(session, facility_id=provider.id)
    coverage = make_coverage(session, patient, payer=payer, end=coverage_end)
    encounter = make_encounter(
        session,
        patient=patient,
        class_code=class_code,
        status="finished",
        period_start=start,
        period_end=start + dt.timedelta(hours=1),
        type_code=CHECKUP,
        service_provider_id=provider.id,
        facility_id=provider.id,
    )
    return World(provider, patient, coverage, encounter)


def make_charge(
    session: Session,
    world: World,
    code: str,
    price: str,
    *,
    quantity: str = "1",
    service_ref: str | None = None,
    display: str | None = None,
    occurred_at: dt.datetime | None = None,
) -> ChargeItem:
    charge = ChargeItem(
        id=new_id(),
        patient_id=world.patient.id,
        encounter_id=world.encounter.id,
        facility_id=world.provider.id,
        status="billable",
        code_system=SNOMED,
        code=code,
        display=display,
        quantity=Decimal(quantity),
        unit_price=Decimal(price),
        total=(Decimal(price) * Decimal(quantity)).quantize(Decimal("0.01")),
        currency="USD",
        service_ref=service_ref or f"Encounter/{world.encounter.id}",
        occurred_at=occurred_at or world.encounter.period_start,
    )
    session.add(charge)
    session.flush()
    return charge


def make_condition(
    session: Session,
    world: World,
    snomed: str,
    display: str,
    *,
    icd10cm: str | None = None,
    onset: dt.datetime | None = None,
) -> Condition:
    codings: list[dict[str, Any]] = [{"system": SNOMED, "code": snomed, "display": display}]
    if icd10cm:
        codings.append({"system": ICD10CM_SYSTEM, "code": icd10cm, "display": display})
    condition = Condition(
        id=new_id(),
        patient_id=world.patient.id,
        encounter_id=world.encounter.id,
        code_system=SNOMED,
        code=snomed,
        display=display,
        clinical_status="active",
        verification_status="confirmed",
        onset_at=onset or world.encounter.period_start,
        resource={"resourceType": "Condition", "code": {"coding": codings}},
    )
    session.add(condition)
    session.flush()
    return condition


def clean_encounter(session: Session, **world_args: Any) -> World:
    """An encounter whose claim scrubs clean: a check-up with an ICD-10-CM diagnosis."""
    world = make_world(session, **world_args)
    make_charge(session, world, CHECKUP, "125.00")
    make_condition(session, world, "44054006", "Diabetes", icd10cm="E11.9")
    return world


def statuses(session: Session, claim_id: str) -> list[tuple[str | None, str]]:
    return [(h.from_status, h.to_status) for h in claim_history(session, claim_id)]


# --------------------------------------------------------------------------- build


def test_build_claim_makes_lines_diagnoses_and_prior_auth_reference(session: Session) -> None:
    world = make_world(session)
    world.encounter.reason_code = "44054006"
    procedure = Procedure(
        id=new_id(),
        patient_id=world.patient.id,
        encounter_id=world.encounter.id,
        status="completed",
        code_system=SNOMED,
        code=COLONOSCOPY,
        performed_start=T0 + dt.timedelta(minutes=20),
        resource={"reasonReference": []},
    )
    session.add(procedure)
    polyp = make_condition(session, world, "68496003", "Polyp of colon", icd10cm="K63.5")
    diabetes = make_condition(
        session, world, "44054006", "Diabetes", icd10cm="E11.9", onset=T0 + dt.timedelta(1)
    )
    make_condition(  # SNOMED only
        session, world, "160903007", "Full-time employment", onset=T0 + dt.timedelta(2)
    )
    procedure.resource = {"reasonReference": [{"reference": f"Condition/{polyp.id}"}]}
    visit = make_charge(session, world, CHECKUP, "125.00")
    scope = make_charge(
        session,
        world,
        COLONOSCOPY,
        "1500.00",
        service_ref=f"Procedure/{procedure.id}",
        occurred_at=T0 + dt.timedelta(minutes=20),
    )
    request = request_authorization(
        session,
        patient_id=world.patient.id,
        payer_id="payer-blue-hmo",
        requested_by="scheduler",
        service_categories=["surgical_procedure"],
        requested_at=T0 - dt.timedelta(days=5),
    )
    decide_authorization(
        session,
        request.id,
        status="approved",
        actor="payer",
        reference_number="BHH-PA-2403-000001",
        valid_from=dt.date(2024, 2, 25),
        valid_to=dt.date(2024, 3, 25),
    )

    claim = build_claim(
        session,
        encounter_id=world.encounter.id,
        actor="biller.ann",
        role="biller",
        modifiers={scope.id: ["PT"]},
        at=T0 + dt.timedelta(days=1),
    )

    assert claim.billing_status == "draft"
    assert claim.insurer_id == "payer-blue-hmo" and claim.coverage_id == world.coverage.id
    assert claim.provider_id == world.provider.id and claim.priority == "normal"
    assert claim.pre_auth_ref == "BHH-PA-2403-000001"
    assert claim.patient_control_number == "PCN" + world.encounter.id.replace("-", "")[:12].upper()
    assert claim.total == Decimal("1625.00") and claim.currency == "USD"
    lines = sorted(claim.items, key=lambda i: i.sequence)
    assert [(i.sequence, i.code, i.category, i.revenue_code) for i in lines] == [
        (1, CHECKUP, "evaluation_management", "0510"),
        (2, COLONOSCOPY, "surgical_procedure", "0360"),
    ]
    assert lines[0].charge_item_id == visit.id and lines[1].procedure_id == procedure.id
    assert lines[1].modifiers == ["PT"] and lines[0].modifiers is None
    assert all(i.service_date == dt.date(2024, 3, 1) for i in lines)
    diagnoses = session.scalars(
        select(ClaimDiagnosis)
        .where(ClaimDiagnosis.claim_id == claim.id)
        .order_by(ClaimDiagnosis.sequence)
    ).all()
    assert [(d.sequence, d.code_system, d.code, d.type_code) for d in diagnoses] == [
        (1, ICD10CM_SYSTEM, "E11.9", "principal"),  # the encounter's reason comes first
        (2, ICD10CM_SYSTEM, "K63.5", None),
        (3, SNOMED, "160903007", None),  # no ICD-10-CM in the record: the scrubber flags it
    ]
    assert diagnoses[0].condition_id == diabetes.id
    assert lines[0].diagnosis_sequence == [1]
    assert lines[1].diagnosis_sequence == [2]  # the colonoscopy points to the polyp
    assert {c.status for c in session.scalars(select(ChargeItem))} == {"billed"}
    assert statuses(session, claim.id) == [(None, "draft")]
    history = claim_history(session, claim.id)[0]
    assert (history.actor, history.role) == ("biller.ann", "biller")
    resource = FhirClaim.model_validate(claim.resource)
    assert resource.insurance[0].preAuthRef == ["BHH-PA-2403-000001"]
    assert len(resource.item) == 2 and len(resource.diagnosis) == 3


def test_build_claim_bills_the_primary_coverage_and_marks_emergencies_stat(
    session: Session,
) -> None:
    world = make_world(session, payer="payer-medicaid", class_code="EMER")
    world.coverage.resource = {"resourceType": "Coverage", "order": 2}
    primary = make_coverage(session, world.patient, payer="payer-medicare", order=1)
    make_charge(session, world, "185347001", "300.00")
    claim = build_claim(session, encounter_id=world.encounter.id, actor="biller")
    assert claim.coverage_id == primary.id and claim.insurer_id == "payer-medicare"
    assert claim.priority == "stat"
    assert claim.items[0].category == "emergency" and claim.items[0].revenue_code == "0450"


def test_build_claim_uses_the_encounter_reason_when_there_is_no_condition(
    session: Session,
) -> None:
    world = make_world(session)
    world.encounter.resource = {
        "reasonCode": [{"coding": [{"system": SNOMED, "code": "72892002", "display": "Pregnancy"}]}]
    }
    make_charge(session, world, CHECKUP, "125.00")
    claim = build_claim(session, encounter_id=world.encounter.id, actor="biller")
    diagnosis = session.scalars(
        select(ClaimDiagnosis).where(ClaimDiagnosis.claim_id == claim.id)
    ).one()
    assert (diagnosis.code_system, diagnosis.code, diagnosis.condition_id) == (
        SNOMED,
        "72892002",
        None,
    )


def test_build_claim_refuses_without_charges_or_coverage_and_writes_nothing(
    session: Session,
) -> None:
    world = make_world(session, coverage_end=dt.date(2023, 12, 31))
    session.commit()
    before = table_counts(session.get_bind())  # type: ignore[arg-type]
    with pytest.raises(ConflictError, match="no billable charge"):
        build_claim(session, encounter_id=world.encounter.id, actor="biller")
    make_charge(session, world, CHECKUP, "125.00")
    session.commit()
    before = table_counts(session.get_bind())  # type: ignore[arg-type]
    with pytest.raises(ConflictError, match=r"ended on 2023-12-31.*self-pay"):
        build_claim(session, encounter_id=world.encounter.id, actor="biller")
    with pytest.raises(NotFoundError):
        build_claim(session, encounter_id="nope", actor="biller")
    with pytest.raises(InvalidInputError, match="actor"):
        build_claim(session, encounter_id=world.encounter.id, actor=" ")
    other = make_patient(session)
    foreign = make_coverage(session, other)
    with pytest.raises(InvalidInputError, match="belongs to Patient"):
        build_claim(
            session, encounter_id=world.encounter.id, actor="biller", coverage_id=foreign.id
        )
    session.rollback()
    assert table_counts(session.get_bind()) == before  # type: ignore[arg-type]


def test_build_claim_with_an_explicit_inactive_coverage_leaves_it_to_the_scrubber(
    session: Session,
) -> None:
    world = make_world(session, coverage_end=dt.date(2023, 12, 31))
    make_charge(session, world, CHECKUP, "125.00")
    claim = build_claim(
        session, encounter_id=world.encounter.id, actor="biller", coverage_id=world.coverage.id
    )
    assert claim.coverage_id == world.coverage.id and claim.billing_status == "draft"


def test_build_claim_refuses_mixed_currencies(session: Session) -> None:
    world = make_world(session)
    make_charge(session, world, CHECKUP, "125.00")
    euro = make_charge(session, world, COLONOSCOPY, "10.00")
    euro.currency = "EUR"
    session.flush()
    with pytest.raises(InvalidInputError, match="EUR, USD"):
        build_claim(session, encounter_id=world.encounter.id, actor="biller")


# --------------------------------------------------------------------------- lifecycle


def test_submit_claim_records_who_and_when_and_posts_the_charge(session: Session) -> None:
    world = clean_encounter(session)
    claim = build_claim(session, encounter_id=world.encounter.id, actor="biller")
    sent = T0 + dt.timedelta(days=2)
    submitted = submit_claim(session, claim.id, actor="biller.ann", role="biller", at=sent)
    assert submitted.billing_status == "submitted" and submitted.submitted_at == sent
    assert statuses(session, claim.id) == [(None, "draft"), ("draft", "submitted")]
    last = claim_history(session, claim.id)[-1]
    assert (last.actor, last.role, last.at) == ("biller.ann", "biller", sent)
    assert last.reason is not None and "scrubbed" in last.reason
    entries = session.scalar(
        select(func.count())
        .select_from(JournalEntry)
        .where(JournalEntry.source_ref == f"Claim/{claim.id}")
    )
    assert entries == 1
    with pytest.raises(ConflictError, match="is submitted: it cannot become submitted"):
        submit_claim(session, claim.id, actor="biller")


def test_paying_a_draft_claim_is_refused(session: Session) -> None:
    world = clean_encounter(session)
    claim = build_claim(session, encounter_id=world.encounter.id, actor="biller")
    with pytest.raises(ConflictError, match="is draft: it cannot become paid"):
        record_adjudication_status(session, claim.id, status="paid", actor="remit")
    with pytest.raises(ConflictError, match="is draft: it cannot become appealed"):
        appeal_claim(session, claim.id, actor="x", reason="r")
    with pytest.raises(InvalidInputError, match="not an adjudication"):
        record_adjudication_status(session, claim.id, status="submitted", actor="remit")
    assert claim.billing_status == "draft"
    assert statuses(session, claim.id) == [(None, "draft")]


def test_denied_claim_is_appealed_then_paid(session: Session) -> None:
    world = clean_encounter(session)
    claim = build_claim(session, encounter_id=world.encounter.id, actor="biller")
    submit_claim(session, claim.id, actor="biller", at=T0 + dt.timedelta(days=1))
    record_adjudication_status(
        session, claim.id, status="denied", actor="remittance", reason="CO-50"
    )
    record_adjudication_status(session, claim.id, status="denied", actor="remittance")  # no-op
    appeal_claim(session, claim.id, actor="ann", role="appeals", reason="records attached")
    record_adjudication_status(session, claim.id, status="paid", actor="remittance")
    assert statuses(session, claim.id) == [
        (None, "draft"),
        ("draft", "submitted"),
        ("submitted", "denied"),
        ("denied", "appealed"),
        ("appealed", "paid"),
    ]
    with pytest.raises(InvalidInputError, match="grounds"):
        appeal_claim(session, claim.id, actor="ann", reason="")
    with pytest.raises(ConflictError, match="is paid: it cannot become written-off"):
        write_off_claim(session, claim.id, actor="ann", reason="small balance")


def test_write_off_a_denied_claim_posts_through_the_ledger(session: Session) -> None:
    world = clean_encounter(session)
    claim = build_claim(session, encounter_id=world.encounter.id, actor="biller")
    submit_claim(session, claim.id, actor="biller", at=T0 + dt.timedelta(days=1))
    record_adjudication_status(session, claim.id, status="denied", actor="remittance")
    write_off_claim(session, claim.id, actor="ann", role="manager", reason="CO-29, no appeal")
    assert claim.billing_status == "written-off"
    history = claim_history(session, claim.id)
    assert [(h.to_status, h.role) for h in history][-1] == ("written-off", "manager")
    assert sum(1 for h in history if h.to_status == "written-off") == 1
    kinds = set(
        session.scalars(
            select(JournalEntry.kind).where(JournalEntry.source_ref == f"Claim/{claim.id}")
        )
    )
    assert "write_off" in kinds
    with pytest.raises(ConflictError, match="final"):
        record_adjudication_status(session, claim.id, status="paid", actor="remittance")


def test_write_off_a_draft_claim_needs_no_payer_balance(session: Session) -> None:
    world = clean_encounter(session)
    claim = build_claim(session, encounter_id=world.encounter.id, actor="biller")
    write_off_claim(session, claim.id, actor="ann", reason="past the filing limit")
    assert statuses(session, claim.id)[-1] == ("draft", "written-off")


def test_submit_claim_refuses_scrub_errors_unless_overridden_with_a_reason(
    session: Session,
) -> None:
    world = make_world(session)
    make_charge(session, world, CHECKUP, "125.00")  # no diagnosis at all
    claim = build_claim(session, encounter_id=world.encounter.id, actor="biller")
    session.commit()
    before = table_counts(session.get_bind())  # type: ignore[arg-type]
    with pytest.raises(ScrubFailedError) as raised:
        submit_claim(session, claim.id, actor="biller", at=SOON)
    assert [i.edit for i in raised.value.issues] == ["diagnosis-missing"]
    assert "override_edits" in str(raised.value)
    with pytest.raises(InvalidInputError, match="needs a reason"):
        submit_claim(session, claim.id, actor="biller", override_edits=["diagnosis-missing"])
    with pytest.raises(InvalidInputError, match="unknown edit"):
        submit_claim(session, claim.id, actor="biller", override_edits=["no-such-edit"], reason="x")
    session.rollback()
    assert table_counts(session.get_bind()) == before  # type: ignore[arg-type]
    submit_claim(
        session,
        claim.id,
        actor="biller",
        override_edits=["diagnosis-missing"],
        reason="payer accepts visit-only claims",
        at=SOON,
    )
    last = claim_history(session, claim.id)[-1]
    assert last.reason is not None and "errors overridden: diagnosis-missing" in last.reason


def test_correct_and_resubmit_links_the_corrected_claim_to_the_original(
    session: Session,
) -> None:
    world = make_world(session, payer="payer-acme-ppo")
    make_charge(session, world, CHECKUP, "125.00")
    make_charge(session, world, "23426006", "80.00", quantity="3")  # laboratory, limit 2
    make_condition(session, world, "44054006", "Diabetes", icd10cm="E11")  # a header code
    claim = build_claim(session, encounter_id=world.encounter.id, actor="biller")
    submit_claim(
        session,
        claim.id,
        actor="biller",
        override_edits=["diagnosis-invalid", "units-over-limit"],
        reason="test",
        at=T0 + dt.timedelta(days=1),
    )
    record_adjudication_status(session, claim.id, status="denied", actor="remittance")
    corrected = correct_and_resubmit(
        session,
        claim.id,
        actor="coder.bo",
        role="coder",
        reason="specific diabetes code; one unit of spirometry",
        diagnoses=["E11.9", DiagnosisInput("I10", display="Hypertension")],
        line_updates={2: {"quantity": 1}},
        at=T0 + dt.timedelta(days=20),
    )
    assert corrected.related_claim_id == claim.id
    assert corrected.patient_control_number == claim.patient_control_number
    assert corrected.billing_status == "submitted" and claim.billing_status == "resubmitted"
    lines = sorted(corrected.items, key=lambda i: i.sequence)
    assert [(i.sequence, i.code, i.quantity, i.net) for i in lines] == [
        (1, CHECKUP, Decimal("1"), Decimal("125.00")),
        (2, "23426006", Decimal("1"), Decimal("80.00")),
    ]
    assert corrected.total == Decimal("205.00")
    codes = session.scalars(
        select(ClaimDiagnosis.code)
        .where(ClaimDiagnosis.claim_id == corrected.id)
        .order_by(ClaimDiagnosis.sequence)
    ).all()
    assert list(codes) == ["E11.9", "I10"]
    assert statuses(session, corrected.id) == [(None, "draft"), ("draft", "submitted")]
    assert statuses(session, claim.id)[-1] == ("denied", "resubmitted")
    resource = FhirClaim.model_validate(corrected.resource)
    assert resource.related[0].claim.reference == f"Claim/{claim.id}"
    with pytest.raises(ConflictError, match="final"):
        correct_and_resubmit(session, claim.id, actor="coder", reason="again")


def test_correct_and_resubmit_of_only_some_lines_renumbers_them(session: Session) -> None:
    world = clean_encounter(session)
    make_charge(session, world, "23426006", "80.00")
    claim = build_claim(session, encounter_id=world.encounter.id, actor="biller")
    submit_claim(session, claim.id, actor="biller", at=T0 + dt.timedelta(days=1))
    record_adjudication_status(session, claim.id, status="partial", actor="remittance")
    corrected = correct_and_resubmit(
        session, claim.id, actor="coder", reason="line 2 reconsidered", lines=[2]
    )
    assert [(i.sequence, i.code) for i in corrected.items] == [(1, "23426006")]


def test_correct_and_resubmit_that_still_fails_writes_nothing(session: Session) -> None:
    world = clean_encounter(session)
    claim = build_claim(session, encounter_id=world.encounter.id, actor="biller")
    submit_claim(session, claim.id, actor="biller", at=T0 + dt.timedelta(days=1))
    record_adjudication_status(session, claim.id, status="denied", actor="remittance")
    session.commit()
    before = table_counts(session.get_bind())  # type: ignore[arg-type]
    with pytest.raises(ScrubFailedError, match="diagnosis-invalid"):
        correct_and_resubmit(
            session, claim.id, actor="coder", reason="x", diagnoses=["ZZZ"], at=SOON
        )
    with pytest.raises(InvalidInputError, match="has no line 9"):
        correct_and_resubmit(session, claim.id, actor="coder", reason="x", lines=[9])
    with pytest.raises(InvalidInputError, match="cannot correct price"):
        correct_and_resubmit(
            session, claim.id, actor="coder", reason="x", line_updates={1: {"price": 1}}
        )
    session.commit()
    assert table_counts(session.get_bind()) == before  # type: ignore[arg-type]
    assert session.get(Claim, claim.id).billing_status == "denied"  # type: ignore[union-attr]


def test_correct_and_resubmit_refuses_a_claim_not_adjudicated(session: Session) -> None:
    world = clean_encounter(session)
    claim = build_claim(session, encounter_id=world.encounter.id, actor="biller")
    submit_claim(session, claim.id, actor="biller", at=SOON)
    with pytest.raises(ConflictError, match="is submitted: it cannot become resubmitted"):
        correct_and_resubmit(session, claim.id, actor="coder", reason="x")


def test_transitions_table_has_every_status_and_final_states() -> None:
    from healthos_core.billing.entities import ClaimBillingStatus

    assert set(TRANSITIONS) == {s.value for s in ClaimBillingStatus}
    assert TRANSITIONS["resubmitted"] == frozenset() and TRANSITIONS["written-off"] == frozenset()
    assert "paid" not in TRANSITIONS["draft"]


def test_record_only_claims_are_not_in_the_revenue_cycle(session: Session) -> None:
    patient = make_patient(session)
    claim = Claim(id=new_id(), patient_id=patient.id, status="active", billing_status=None)
    session.add(claim)
    session.flush()
    with pytest.raises(ConflictError, match="not in the revenue cycle"):
        record_adjudication_status(session, claim.id, status="paid", actor="x")
    with pytest.raises(NotFoundError):
        submit_claim(session, "nope", actor="x")


def test_list_claims_filters_by_status_and_payer(session: Session) -> None:
    world = clean_encounter(session)
    draft = build_claim(session, encounter_id=world.encounter.id, actor="biller")
    second = make_encounter(
        session,
        patient=world.patient,
        status="finished",
        period_start=T0 + dt.timedelta(days=3),
        service_provider_id=world.provider.id,
    )
    world2 = World(world.provider, world.patient, world.coverage, second)
    make_charge(session, world2, CHECKUP, "125.00")
    make_condition(session, world2, "44054006", "Diabetes", icd10cm="E11.9")
    sent = build_claim(session, encounter_id=second.id, actor="biller")
    submit_claim(session, sent.id, actor="biller", at=T0 + dt.timedelta(days=4))
    assert [c.id for c in list_claims(session, status="draft")] == [draft.id]
    assert [c.id for c in list_claims(session, status="submitted")] == [sent.id]
    assert {c.id for c in list_claims(session, payer_id="payer-blue-hmo")} == {draft.id, sent.id}
    assert list_claims(session, payer_id="payer-medicare") == []
    with pytest.raises(InvalidInputError):
        list_claims(session, status="lost")
    with pytest.raises(InvalidInputError):
        list_claims(session, limit=0)


def _lines_of(session: Session, claim_ids: Iterable[str]) -> list[ClaimItem]:
    return list(session.scalars(select(ClaimItem).where(ClaimItem.claim_id.in_(list(claim_ids)))))


def test_history_rows_are_appended_never_rewritten(session: Session) -> None:
    world = clean_encounter(session)
    claim = build_claim(session, encounter_id=world.encounter.id, actor="biller")
    submit_claim(session, claim.id, actor="biller", at=T0 + dt.timedelta(days=1))
    record_adjudication_status(session, claim.id, status="partial", actor="remittance")
    record_adjudication_status(
        session, claim.id, status="paid", actor="remittance", reason="reprocessed"
    )
    rows = session.scalars(
        select(ClaimStatusHistory).where(ClaimStatusHistory.claim_id == claim.id)
    ).all()
    assert len(rows) == 4
    assert len(_lines_of(session, [claim.id])) == 1
