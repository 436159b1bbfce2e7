"""Revenue leakage scorer: each kind found and not found, on small synthetic records."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session

from healthos_core.billing.entities import (
    ChargeItem,
    Claim,
    ClaimResponse,
    ClaimStatusHistory,
)
from healthos_core.billing.payers import Contract
from healthos_core.billing.remittance import ClaimResponseAdjudication
from healthos_core.errors import InvalidInputError
from healthos_core.record.entities import (
    Coverage,
    Encounter,
    MedicationAdministration,
    Procedure,
)
from reasoning.finance.leakage import (
    LeakageKind,
    LeakageScorer,
    expected_payment,
    find_leakage,
)
from reasoning.suggestion import Audience, Suggestion
from tests.conftest import table_counts
from tests.factories import (
    LOINC,
    RXNORM,
    SNOMED,
    make_chargemaster,
    make_claim,
    make_encounter,
    make_observation,
    make_organization,
    make_patient,
    new_id,
)

DAY = dt.datetime(2020, 3, 2, 9, 0, tzinfo=dt.UTC)
AS_OF = dt.datetime(2020, 6, 1, tzinfo=dt.UTC)
USD = "USD"


@dataclass
class World:
    payer_id: str
    patient_id: str
    coverage_id: str
    encounter: Encounter


def make_world(session: Session, *, start: dt.datetime = DAY, insured: bool = True) -> World:
    """A patient insured by a PPO (70 % allowed for AMB, 15 % coinsurance, no copay)."""
    payer = make_organization(session, id=f"payer-{new_id()[:8]}", name="Acme PPO", type_code="pay")
    session.add(
        Contract(
            payer_id=payer.id,
            payer_name="Acme PPO",
            timely_filing_days=120,
            allowed_pct_amb=Decimal("0.70"),
            allowed_pct_emer=Decimal("0.75"),
            allowed_pct_imp=Decimal("0.80"),
            coinsurance_pct=Decimal("0.15"),
            copay_amb=Decimal("0"),
            copay_emer=Decimal("0"),
            copay_imp=Decimal("0"),
            currency=USD,
            prior_auth_categories=[],
            prior_auth_exempt_classes=[],
        )
    )
    patient = make_patient(session)
    coverage_id = new_id()
    if insured:
        session.add(
            Coverage(
                id=coverage_id,
                patient_id=patient.id,
                status="active",
                payor_id=payer.id,
                period_start=dt.datetime(2011, 1, 1, tzinfo=dt.UTC),
                resource={"order": 1},
            )
        )
    encounter = make_encounter(
        session,
        patient=patient,
        status="finished",
        period_start=start,
        period_end=start + dt.timedelta(hours=1),
    )
    session.flush()
    return World(payer.id, patient.id, coverage_id, encounter)


def add_procedure(session: Session, world: World, code: str = "76601001") -> Procedure:
    procedure = Procedure(
        id=new_id(),
        patient_id=world.patient_id,
        encounter_id=world.encounter.id,
        status="completed",
        code_system=SNOMED,
        code=code,
        display="Intramuscular injection",
        performed_start=world.encounter.period_start,
    )
    session.add(procedure)
    session.flush()
    return procedure


def bill(
    session: Session,
    world: World,
    lines: list[dict[str, Any]],
    *,
    created: dt.datetime | None = None,
    **overrides: Any,
) -> Claim:
    """A submitted claim of the world's encounter to its payer."""
    total = sum((Decimal(str(line["net"])) for line in lines), Decimal(0))
    values: dict[str, Any] = {
        "encounter_id": world.encounter.id,
        "insurer_id": world.payer_id,
        "coverage_id": world.coverage_id,
        "billing_status": "submitted",
        "created": created or DAY + dt.timedelta(days=3),
        "total": total,
    }
    values.update(overrides)
    return make_claim(
        session,
        patient_id=world.patient_id,
        items=[{"code_system": SNOMED, "quantity": 1, **line} for line in lines],
        **values,
    )


def answer(
    session: Session,
    claim: Claim,
    adjudications: list[tuple[int | None, str, str | None, str]],
    *,
    created: dt.datetime,
    outcome: str = "complete",
) -> ClaimResponse:
    """A payer answer with ``(line, category, carc, amount)`` adjudications."""
    response = ClaimResponse(
        id=new_id(),
        patient_id=claim.patient_id,
        claim_id=claim.id,
        status="active",
        outcome=outcome,
        created=created,
    )
    session.add(response)
    session.flush()
    for ordinal, (line, category, carc, amount) in enumerate(adjudications, start=1):
        session.add(
            ClaimResponseAdjudication(
                claim_response_id=response.id,
                ordinal=ordinal,
                claim_id=claim.id,
                item_sequence=line,
                category=category,
                group_code="CO" if carc and carc not in ("2", "3") else None,
                carc=carc,
                amount=Decimal(amount),
                currency=USD,
            )
        )
    session.flush()
    return response


def charge(
    session: Session,
    world: World,
    *,
    service_ref: str | None,
    total: str = "400.00",
    occurred: dt.datetime = DAY,
    entered: dt.datetime | None = None,
) -> ChargeItem:
    item = ChargeItem(
        id=new_id(),
        patient_id=world.patient_id,
        encounter_id=world.encounter.id,
        status="billable",
        code_system=SNOMED,
        code="76601001",
        quantity=Decimal(1),
        unit_price=Decimal(total),
        total=Decimal(total),
        currency=USD,
        service_ref=service_ref,
        occurred_at=occurred,
        entered_at=entered or occurred,
    )
    session.add(item)
    session.flush()
    return item


def only(found: list[Suggestion], kind: LeakageKind) -> list[Suggestion]:
    return [s for s in found if s.band == kind.value]


# --------------------------------------------------------------------------- missed_charge


def test_missed_charge_procedure_not_on_the_claim(session: Session) -> None:
    world = make_world(session)
    make_chargemaster(session, [("76601001", "300.00")])
    procedure = add_procedure(session, world)
    claim = bill(session, world, [{"code": "185349003", "net": "125.00"}])

    found = only(find_leakage(session, as_of=AS_OF), LeakageKind.MISSED_CHARGE)

    assert len(found) == 1
    s = found[0]
    assert s.kind == "finance.revenue_leakage"
    assert s.audience is Audience.FINANCE
    assert s.subject == f"Procedure/{procedure.id}"
    assert s.amount_at_stake == Decimal("210.00")  # 300.00 x 70 % allowed
    assert s.currency == USD
    assert s.explanation.method == "rule:revenue_leakage"
    assert {f"Procedure/{procedure.id}", f"Claim/{claim.id}"} <= set(s.explanation.evidence)
    assert f"Encounter/{world.encounter.id}" in s.explanation.evidence
    assert f"Add a charge for Procedure/{procedure.id}" in s.recommended_action
    assert "76601001" in s.recommended_action and f"Claim/{claim.id}" in s.recommended_action


def test_missed_charge_priced_from_the_source_systems_own_claim(session: Session) -> None:
    world = make_world(session)
    procedure = add_procedure(session, world)
    bill(session, world, [{"code": "185349003", "net": "125.00"}])
    make_claim(  # the EHR's own claim (no payer Organization): the price list of the record
        session,
        patient_id=world.patient_id,
        encounter_id=world.encounter.id,
        coverage_display="private",
        total=Decimal("625.00"),
        items=[
            {"code_system": SNOMED, "code": "185349003", "net": "125.00"},
            {
                "code_system": SNOMED,
                "code": "76601001",
                "net": "500.00",
                "procedure_id": procedure.id,
            },
        ],
    )

    found = only(find_leakage(session, as_of=AS_OF), LeakageKind.MISSED_CHARGE)

    assert [s.amount_at_stake for s in found] == [Decimal("350.00")]


def test_procedure_on_the_claim_is_not_a_missed_charge(session: Session) -> None:
    world = make_world(session)
    make_chargemaster(session, [("76601001", "300.00")])
    linked = add_procedure(session, world)
    same_code = add_procedure(session, world, code="430193006")
    bill(
        session,
        world,
        [
            {"code": "185349003", "net": "125.00"},
            {"code": "76601001", "net": "300.00", "procedure_id": linked.id},
            {"code": "430193006", "net": "80.00"},  # unlinked line of the same code covers it
        ],
    )

    found = find_leakage(session, as_of=AS_OF, kinds=["missed_charge"])

    assert found == []
    assert same_code.id  # covered by the unlinked line


def test_missed_charge_for_a_drug_given_and_a_billable_lab(session: Session) -> None:
    world = make_world(session)
    make_chargemaster(
        session,
        [
            {"code_system": RXNORM, "code": "310965", "unit_price": "20.00"},
            {"code_system": LOINC, "code": "2345-7", "unit_price": "50.00", "revenue_code": "0300"},
            {"code_system": LOINC, "code": "8480-6", "unit_price": "10.00"},  # not a lab entry
        ],
    )
    dose = MedicationAdministration(
        id=new_id(),
        patient_id=world.patient_id,
        encounter_id=world.encounter.id,
        status="completed",
        code_system=RXNORM,
        code="310965",
        effective_start=DAY,
    )
    session.add(dose)
    glucose = make_observation(
        session,
        patient_id=world.patient_id,
        code="2345-7",
        value=5.4,
        effective_at=DAY,
        encounter_id=world.encounter.id,
    )
    make_observation(  # a vital sign: part of the visit, never charged separately
        session,
        patient_id=world.patient_id,
        code="8480-6",
        value=120,
        effective_at=DAY,
        encounter_id=world.encounter.id,
        category="vital-signs",
    )
    bill(session, world, [{"code": "185349003", "net": "125.00"}])

    found = only(find_leakage(session, as_of=AS_OF), LeakageKind.MISSED_CHARGE)

    assert sorted((s.subject, s.amount_at_stake) for s in found) == sorted(
        [
            (f"MedicationAdministration/{dose.id}", Decimal("14.00")),
            (f"Observation/{glucose.id}", Decimal("35.00")),
        ]
    )


# --------------------------------------------------------------------------- unbilled_encounter


def test_unbilled_encounter_after_the_bill_hold(session: Session) -> None:
    world = make_world(session)
    item = charge(session, world, service_ref=f"Encounter/{world.encounter.id}", total="1000.00")

    found = only(find_leakage(session, as_of=AS_OF), LeakageKind.UNBILLED_ENCOUNTER)

    assert len(found) == 1
    s = found[0]
    assert s.subject == f"Encounter/{world.encounter.id}"
    assert s.amount_at_stake == Decimal("700.00")
    assert f"ChargeItem/{item.id}" in s.explanation.evidence
    assert f"Coverage/{world.coverage_id}" in s.explanation.evidence
    assert s.recommended_action.startswith(f"Submit a claim for Encounter/{world.encounter.id}")


def test_billed_or_recent_encounter_is_not_unbilled(session: Session) -> None:
    billed = make_world(session)
    charge(session, billed, service_ref=f"Encounter/{billed.encounter.id}")
    bill(session, billed, [{"code": "185349003", "net": "400.00"}])
    recent = make_world(session, start=AS_OF - dt.timedelta(days=2))
    charge(
        session,
        recent,
        service_ref=f"Encounter/{recent.encounter.id}",
        occurred=AS_OF - dt.timedelta(days=2),
    )

    found = only(find_leakage(session, as_of=AS_OF), LeakageKind.UNBILLED_ENCOUNTER)

    assert found == []
    # With no bill hold at all, the recent one is unbilled.
    late = find_leakage(session, as_of=AS_OF, kinds=["unbilled_encounter"], unbilled_days=0)
    assert [s.subject for s in late] == [f"Encounter/{recent.encounter.id}"]


# --------------------------------------------------------------------------- late_charge


def test_late_charge(session: Session) -> None:
    world = make_world(session)
    procedure = add_procedure(session, world)
    late = charge(
        session,
        world,
        service_ref=f"Procedure/{procedure.id}",
        entered=DAY + dt.timedelta(days=9),
    )
    on_time = add_procedure(session, world, code="430193006")
    charge(
        session, world, service_ref=f"Procedure/{on_time.id}", entered=DAY + dt.timedelta(days=1)
    )

    found = only(find_leakage(session, as_of=AS_OF), LeakageKind.LATE_CHARGE)

    assert [s.subject for s in found] == [f"ChargeItem/{late.id}"]
    assert found[0].amount_at_stake == Decimal("280.00")
    assert found[0].explanation.factors[0].value == 9.0


# --------------------------------------------------------------------------- underpayment


def test_underpayment_paid_below_the_contract(session: Session) -> None:
    world = make_world(session)
    claim = bill(session, world, [{"code": "185349003", "net": "1000.00"}])
    response = answer(
        session,
        claim,
        [
            (1, "submitted", None, "1000.00"),
            (1, "eligible", None, "700.00"),
            (1, "contractual", "45", "300.00"),
            (1, "patient-responsibility", "2", "105.00"),
            (1, "benefit", None, "550.00"),
            (1, "underpaid", None, "45.00"),
        ],
        created=DAY + dt.timedelta(days=20),
    )

    found = only(find_leakage(session, as_of=AS_OF), LeakageKind.UNDERPAYMENT)

    assert len(found) == 1
    s = found[0]
    assert s.subject == f"Claim/{claim.id}"
    assert s.amount_at_stake == Decimal("45.00")  # 700 - 105 coinsurance - 550 paid
    assert f"ClaimResponse/{response.id}" in s.explanation.evidence
    assert s.recommended_action.startswith("Dispute the underpayment of USD 45.00")


def test_paid_as_the_contract_says_is_not_an_underpayment(session: Session) -> None:
    world = make_world(session)
    claim = bill(session, world, [{"code": "185349003", "net": "1000.00"}])
    answer(
        session,
        claim,
        [
            (1, "submitted", None, "1000.00"),
            (1, "eligible", None, "700.00"),
            (1, "contractual", "45", "300.00"),
            (1, "patient-responsibility", "2", "105.00"),
            (1, "benefit", None, "595.00"),
        ],
        created=DAY + dt.timedelta(days=20),
    )

    assert only(find_leakage(session, as_of=AS_OF), LeakageKind.UNDERPAYMENT) == []


def test_expected_payment_takes_the_copay_once_from_the_first_lines() -> None:
    contract = Contract(
        payer_id="p",
        timely_filing_days=90,
        allowed_pct_amb=Decimal("0.62"),
        allowed_pct_emer=Decimal("0.66"),
        allowed_pct_imp=Decimal("0.72"),
        coinsurance_pct=Decimal("0"),
        copay_amb=Decimal("25"),
        copay_emer=Decimal("125"),
        copay_imp=Decimal("300"),
        currency=USD,
    )
    allowed, paid = expected_payment([Decimal("125.00"), Decimal("100.00")], contract, "EMER")
    assert allowed == Decimal("148.50")  # 82.50 + 66.00
    assert paid == Decimal("23.50")  # copay 125 takes line 1 (82.50) and 42.50 of line 2


# --------------------------------------------------------------------------- unworked_denial


def deny(
    session: Session, world: World, *, carc: str = "16", days_ago: int = 60, **claim: Any
) -> Claim:
    denied = bill(session, world, [{"code": "185349003", "net": "1000.00"}], **claim)
    answer(
        session,
        denied,
        [(1, "submitted", None, "1000.00"), (None, "denied", carc, "1000.00")],
        created=AS_OF - dt.timedelta(days=days_ago),
    )
    return denied


def test_unworked_denial(session: Session) -> None:
    world = make_world(session)
    denied = deny(session, world)

    found = only(find_leakage(session, as_of=AS_OF), LeakageKind.UNWORKED_DENIAL)

    assert len(found) == 1
    s = found[0]
    assert s.subject == f"Claim/{denied.id}"
    assert s.amount_at_stake == Decimal("595.00")  # expected payment: 700 - 15 % coinsurance
    assert s.recommended_action.startswith(
        f"Appeal or correct Claim/{denied.id} denied CARC 16 on 2020-04-02"
    )


def test_worked_or_uncorrectable_or_recent_denials_are_not_flagged(session: Session) -> None:
    corrected = make_world(session)
    original = deny(session, corrected)
    bill(
        session,
        corrected,
        [{"code": "185349003", "net": "1000.00"}],
        related_claim_id=original.id,
        created=AS_OF - dt.timedelta(days=40),
    )
    deny(session, make_world(session), carc="27")  # coverage ended: bill the patient
    deny(session, make_world(session), days_ago=10)  # still within the follow-up window
    appealed_world = make_world(session)
    appealed = deny(session, appealed_world)
    session.add(
        ClaimStatusHistory(
            claim_id=appealed.id,
            from_status="denied",
            to_status="appealed",
            actor="biller",
            at=AS_OF - dt.timedelta(days=5),
        )
    )
    session.flush()

    assert only(find_leakage(session, as_of=AS_OF), LeakageKind.UNWORKED_DENIAL) == []
    # Before the appeal was lodged, that denial was unworked.
    before = find_leakage(session, as_of=AS_OF - dt.timedelta(days=6), kinds=["unworked_denial"])
    assert [s.subject for s in before] == [f"Claim/{appealed.id}"]


# --------------------------------------------------------------------------- charge_without_event


def test_charge_without_event(session: Session) -> None:
    world = make_world(session)
    procedure = add_procedure(session, world)
    backed = charge(session, world, service_ref=f"Procedure/{procedure.id}")
    ghost = charge(session, world, service_ref=f"Procedure/{new_id()}")
    unnamed = charge(session, world, service_ref=None)
    bill(session, world, [{"code": "76601001", "net": "400.00", "charge_item_id": backed.id}])

    found = only(find_leakage(session, as_of=AS_OF), LeakageKind.CHARGE_WITHOUT_EVENT)

    assert sorted(s.subject for s in found) == sorted(
        [f"ChargeItem/{ghost.id}", f"ChargeItem/{unnamed.id}"]
    )
    assert all(s.amount_at_stake == Decimal("400.00") for s in found)


# --------------------------------------------------------------------------- not billable


def test_self_pay_encounter_is_never_flagged(session: Session) -> None:
    world = make_world(session, insured=False)
    make_chargemaster(session, [("76601001", "300.00")])
    add_procedure(session, world)
    charge(session, world, service_ref=f"Encounter/{world.encounter.id}")
    make_claim(
        session,
        patient_id=world.patient_id,
        encounter_id=world.encounter.id,
        coverage_display="no_insurance",
        total=Decimal("400.00"),
        items=[{"code_system": SNOMED, "code": "185349003", "net": "400.00"}],
    )

    assert find_leakage(session, as_of=AS_OF) == []


def test_history_before_the_billing_start_is_not_flagged(session: Session) -> None:
    world = make_world(session, start=dt.datetime(2010, 6, 1, 9, tzinfo=dt.UTC))
    coverage = session.get(Coverage, world.coverage_id)
    assert coverage is not None
    coverage.period_start = dt.datetime(2010, 1, 1, tzinfo=dt.UTC)
    charge(
        session,
        world,
        service_ref=f"Encounter/{world.encounter.id}",
        occurred=dt.datetime(2010, 6, 1, 9, tzinfo=dt.UTC),
    )

    assert find_leakage(session, as_of=AS_OF) == []
    earlier = find_leakage(session, as_of=AS_OF, billing_start=dt.date(2010, 1, 1))
    assert [s.subject for s in earlier] == [f"Encounter/{world.encounter.id}"]


def test_as_of_hides_what_came_later(session: Session) -> None:
    world = make_world(session)
    charge(session, world, service_ref=f"Encounter/{world.encounter.id}", total="1000.00")
    claim = bill(
        session,
        world,
        [{"code": "185349003", "net": "1000.00"}],
        created=DAY + dt.timedelta(days=30),
    )
    answer(
        session,
        claim,
        [(1, "submitted", None, "1000.00"), (None, "denied", "16", "1000.00")],
        created=DAY + dt.timedelta(days=40),
    )

    at_20 = find_leakage(session, as_of=DAY + dt.timedelta(days=20))
    assert [(s.band, s.subject) for s in at_20] == [
        ("unbilled_encounter", f"Encounter/{world.encounter.id}")
    ]
    at_60 = find_leakage(session, as_of=DAY + dt.timedelta(days=60))
    assert [s.band for s in at_60] == []  # denied 20 days ago: still within 30 days
    at_90 = find_leakage(session, as_of=DAY + dt.timedelta(days=90))
    assert [(s.band, s.subject) for s in at_90] == [("unworked_denial", f"Claim/{claim.id}")]
    assert at_90[0].created_at == DAY + dt.timedelta(days=90)


# --------------------------------------------------------------------------- the scorer


def test_scorer_writes_nothing(session: Session) -> None:
    world = make_world(session)
    make_chargemaster(session, [("76601001", "300.00")])
    add_procedure(session, world)
    deny(session, world)
    session.commit()
    before = table_counts(session.get_bind())  # type: ignore[arg-type]

    found = LeakageScorer().score(session, as_of=AS_OF)

    assert {s.band for s in found} == {"missed_charge", "unworked_denial"}
    assert not session.new and not session.dirty and not session.deleted
    session.commit()
    assert table_counts(session.get_bind()) == before  # type: ignore[arg-type]
    assert LeakageScorer.kind == "finance.revenue_leakage"
    again = LeakageScorer(kinds=["unworked_denial"], denial_followup_days=90).score(
        session, as_of=AS_OF
    )
    assert again == []


def test_invalid_arguments_are_rejected(session: Session) -> None:
    with pytest.raises(InvalidInputError, match="naive"):
        find_leakage(session, as_of=dt.datetime(2020, 1, 1))
    with pytest.raises(InvalidInputError, match="unknown leakage threshold"):
        find_leakage(session, as_of=AS_OF, unbiled_days=3)
    with pytest.raises(InvalidInputError, match="unknown leakage kind"):
        find_leakage(session, as_of=AS_OF, kinds=["lost_revenue"])
    with pytest.raises(InvalidInputError, match="non-negative"):
        find_leakage(session, as_of=AS_OF, unbilled_days=-1)
