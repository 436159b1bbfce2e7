"""Payers: contracts, service codes, bundling edits, eligibility and prior authorisation."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from healthos_core.billing.payers import (
    AuthorizationStatus,
    BundlingEdit,
    Contract,
    PriorAuthorization,
    ServiceCode,
    check_eligibility,
    decide_authorization,
    expire_authorizations,
    find_contract,
    find_valid_authorization,
    load_bundling_edits_csv,
    load_contracts_csv,
    load_service_codes,
    pick_service_code,
    request_authorization,
)
from healthos_core.errors import ConflictError, InvalidInputError, NotFoundError
from healthos_core.record.entities import Coverage, Patient
from tests.conftest import SHARED_DATA, table_counts
from tests.factories import make_encounter, make_organization, make_patient, new_id

RCM = SHARED_DATA / "synthea-rcm"
PAYERS = ("payer-medicare", "payer-ma-plus", "payer-medicaid", "payer-acme-ppo", "payer-blue-hmo")
T0 = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)


def make_payers(session: Session) -> None:
    for payer in PAYERS:
        make_organization(session, id=payer, name=payer, type_code="pay")


def make_coverage(
    session: Session,
    patient: Patient,
    *,
    payer: str = "payer-acme-ppo",
    start: dt.date | None = dt.date(2020, 1, 1),
    end: dt.date | None = None,
    order: int | None = 1,
    status: str = "active",
) -> Coverage:
    coverage = Coverage(
        id=new_id(),
        patient_id=patient.id,
        status=status,
        type_code="HIP",
        payor_id=payer,
        payor_display=payer,
        period_start=dt.datetime.combine(start, dt.time(), dt.UTC) if start else None,
        period_end=dt.datetime.combine(end, dt.time(), dt.UTC) if end else None,
        resource={"resourceType": "Coverage", "order": order} if order is not None else None,
    )
    session.add(coverage)
    session.flush()
    return coverage


def contracts_csv(*rows: str) -> io.StringIO:
    header = (RCM / "contracts.csv").read_text(encoding="utf-8").splitlines()[0]
    handle = io.StringIO("\n".join([header, *rows]) + "\n")
    handle.name = "contracts.csv"
    return handle


GOOD_ROW = (
    "Acme Private PPO,payer-acme-ppo,Commercial PPO,HIP,120,0.7,0.75,0.8,0.15,0,0,0,"
    "inpatient_admission;oncology,emergency encounters (EMER) never need prior authorization,"
    '"pay up to limit, deny excess units (CO-119)",applies bundling_edits.csv,'
    "accepted with related.relationship=prior; filing limit not re-applied"
)


# --------------------------------------------------------------------------- contracts


def test_load_contracts_csv_reads_the_real_contract_terms(session: Session) -> None:
    make_payers(session)
    assert load_contracts_csv(session, RCM / "contracts.csv") == 5
    medicare = find_contract(session, "payer-medicare")
    assert medicare is not None
    assert medicare.timely_filing_days == 365
    assert medicare.allowed_pct("IMP") == Decimal("0.55")
    assert medicare.coinsurance_pct == Decimal("0.2")
    assert medicare.prior_auth_categories == []
    assert medicare.prior_auth_exempt_classes == ["EMER"]
    assert medicare.unit_limit_carc == "151"
    assert medicare.applies_bundling_edits is True
    assert medicare.filing_limit_applies_to_corrected is False
    hmo = find_contract(session, "payer-blue-hmo")
    assert hmo is not None
    assert hmo.timely_filing_days == 90
    assert hmo.copay("EMER") == Decimal("125.00")
    assert hmo.copay("OBSENC") == Decimal("25.00")  # other classes pay the ambulatory copay
    assert "specialty_therapy" in hmo.prior_auth_categories
    assert hmo.needs_prior_auth("surgical_procedure", "AMB")
    assert not hmo.needs_prior_auth("surgical_procedure", "EMER")
    assert not hmo.needs_prior_auth("laboratory", "AMB")
    assert find_contract(session, "payer-acme-ppo").unit_limit_carc == "119"  # type: ignore[union-attr]
    assert find_contract(session, None) is None


def test_load_contracts_csv_is_idempotent(session: Session) -> None:
    make_payers(session)
    load_contracts_csv(session, RCM / "contracts.csv")
    load_contracts_csv(session, contracts_csv(GOOD_ROW.replace(",120,", ",150,")))
    load_contracts_csv(session, RCM / "contracts.csv")
    assert session.scalar(select(func.count()).select_from(Contract)) == 5
    assert find_contract(session, "payer-acme-ppo").timely_filing_days == 120  # type: ignore[union-attr]


def test_load_contracts_csv_names_every_bad_cell_and_writes_nothing(session: Session) -> None:
    make_payers(session)
    session.commit()
    before = table_counts(session.get_bind())  # type: ignore[arg-type]
    bad = GOOD_ROW.replace(",120,0.7,", ",ninety,1.7,").replace("(CO-119)", "(no code)")
    with pytest.raises(InvalidInputError) as raised:
        load_contracts_csv(session, contracts_csv(bad))
    message = str(raised.value)
    assert "contracts.csv, line 2, column 'timely_filing_days'" in message
    assert "column 'allowed_pct_of_charge_AMB'" in message
    assert "column 'unit_limit_policy'" in message
    assert "nothing was written" in message
    session.rollback()
    assert table_counts(session.get_bind()) == before  # type: ignore[arg-type]


def test_load_contracts_csv_refuses_unknown_and_repeated_payers(session: Session) -> None:
    make_payers(session)
    with pytest.raises(InvalidInputError, match=r"line 2, column 'payer_organization_id'.*import"):
        load_contracts_csv(session, contracts_csv(GOOD_ROW.replace("payer-acme-ppo", "payer-x")))
    with pytest.raises(InvalidInputError, match=r"line 3.*already has a contract on line 2"):
        load_contracts_csv(session, contracts_csv(GOOD_ROW, GOOD_ROW))
    assert session.scalar(select(func.count()).select_from(Contract)) == 0


def test_load_contracts_csv_refuses_a_bad_header_and_a_missing_file(session: Session) -> None:
    with pytest.raises(InvalidInputError, match="line 1: missing column"):
        load_contracts_csv(session, io.StringIO("payer,plan_type\nx,y\n"))
    with pytest.raises(NotFoundError):
        load_contracts_csv(session, Path("/nonexistent/contracts.csv"))


def test_load_contracts_csv_needs_named_exempt_classes(session: Session) -> None:
    make_payers(session)
    bad = GOOD_ROW.replace("emergency encounters (EMER)", "emergencies")
    with pytest.raises(InvalidInputError, match="column 'prior_auth_exemptions'"):
        load_contracts_csv(session, contracts_csv(bad))


# --------------------------------------------------------------------------- service codes


def test_load_service_codes_keeps_categories_and_unit_limits(session: Session) -> None:
    count = load_service_codes(session, RCM / "service_categories.csv", RCM / "unit_limits.csv")
    stored = session.scalar(select(func.count()).select_from(ServiceCode))
    assert count == stored and stored is not None and stored > 150
    fobt = session.scalars(select(ServiceCode).where(ServiceCode.code == "1015401000000102")).one()
    assert fobt.max_units_per_line == 2
    problem = list(
        session.scalars(
            select(ServiceCode).where(ServiceCode.code == "185347001").order_by(ServiceCode.id)
        )
    )
    assert {p.service_category for p in problem} == {
        "evaluation_management",
        "emergency",
        "inpatient_admission",
    }
    unlisted = session.scalars(select(ServiceCode).where(ServiceCode.code == "308335008")).one()
    assert unlisted.max_units_per_line == 1  # "a code not listed has a limit of 1"
    assert unlisted.revenue_code == "0510"
    # Idempotent
    assert (
        load_service_codes(session, RCM / "service_categories.csv", RCM / "unit_limits.csv")
        == count
    )
    assert session.scalar(select(func.count()).select_from(ServiceCode)) == stored


def test_pick_service_code_follows_the_encounter_class_then_the_display(session: Session) -> None:
    load_service_codes(session, RCM / "service_categories.csv", RCM / "unit_limits.csv")
    rows = list(session.scalars(select(ServiceCode).where(ServiceCode.code == "185347001")))
    assert pick_service_code(rows, class_code="AMB").service_category == "evaluation_management"  # type: ignore[union-attr]
    assert pick_service_code(rows, class_code="EMER").service_category == "emergency"  # type: ignore[union-attr]
    assert pick_service_code(rows, class_code="IMP").service_category == "inpatient_admission"  # type: ignore[union-attr]
    exam = list(session.scalars(select(ServiceCode).where(ServiceCode.code == "5880005")))
    chosen = pick_service_code(exam, display="Physical examination of mother", class_code="AMB")
    assert chosen is not None and chosen.service_category == "laboratory"
    assert pick_service_code([], class_code="AMB") is None


def test_load_service_codes_refuses_bad_rows_and_writes_nothing(session: Session) -> None:
    categories = io.StringIO(
        "code_system,code,display,service_category,revenue_code\n"
        "http://snomed.info/sct,1,A,laboratory,0300\n"
        "http://snomed.info/sct,1,A again,laboratory,0300\n"
        "http://snomed.info/sct,2,B,,03000\n"
    )
    categories.name = "cats.csv"
    limits = io.StringIO(
        "code_system,code,display,max_units_per_line\nhttp://snomed.info/sct,1,A,0\n"
    )
    limits.name = "limits.csv"
    with pytest.raises(InvalidInputError) as raised:
        load_service_codes(session, categories, limits)
    message = str(raised.value)
    assert "cats.csv, line 3, column 'service_category'" in message
    assert "cats.csv, line 4, column 'service_category': is empty" in message
    assert "cats.csv, line 4, column 'revenue_code'" in message
    assert "limits.csv, line 2, column 'max_units_per_line'" in message
    assert session.scalar(select(func.count()).select_from(ServiceCode)) == 0


# --------------------------------------------------------------------------- bundling


def test_load_bundling_edits_csv_reads_the_payer_pairs(session: Session) -> None:
    assert load_bundling_edits_csv(session, RCM / "bundling_edits.csv") == 8
    assert load_bundling_edits_csv(session, RCM / "bundling_edits.csv") == 8
    edit = session.scalars(
        select(BundlingEdit).where(BundlingEdit.component_code == "410006001")
    ).one()
    assert (edit.comprehensive_code, edit.group_code, edit.carc) == ("73761001", "CO", "97")
    assert session.scalar(select(func.count()).select_from(BundlingEdit)) == 8


def test_load_bundling_edits_csv_refuses_bad_rows(session: Session) -> None:
    text = io.StringIO(
        "comprehensive_code,comprehensive_display,component_code,component_display,"
        "carc_if_billed\n"
        "1,A,1,A,CO-97\n"
        "1,A,2,B,97\n"
        "1,A,3,C,CO-97\n"
        "1,A,3,C,CO-97\n"
    )
    text.name = "bundles.csv"
    with pytest.raises(InvalidInputError) as raised:
        load_bundling_edits_csv(session, text)
    message = str(raised.value)
    assert "line 2, column 'component_code': '1' cannot be bundled into itself" in message
    assert "line 3, column 'carc_if_billed'" in message
    assert "line 5, column 'component_code'" in message
    assert session.scalar(select(func.count()).select_from(BundlingEdit)) == 0


# --------------------------------------------------------------------------- eligibility


def test_check_eligibility_period_is_inclusive_and_names_the_carc(session: Session) -> None:
    make_payers(session)
    patient = make_patient(session)
    coverage = make_coverage(session, patient, start=dt.date(2020, 1, 1), end=dt.date(2020, 6, 30))
    on_end = check_eligibility(session, patient_id=patient.id, on=dt.date(2020, 6, 30))
    assert on_end.eligible and on_end.coverage_id == coverage.id
    assert on_end.payer_id == "payer-acme-ppo"
    after = check_eligibility(session, patient_id=patient.id, on=dt.date(2020, 7, 1))
    assert not after.eligible and after.carc == "27" and "ended on 2020-06-30" in after.reason
    before = check_eligibility(session, patient_id=patient.id, on=dt.date(2019, 12, 31))
    assert not before.eligible and before.carc == "26" and "starts on 2020-01-01" in before.reason
    aware = check_eligibility(
        session, patient_id=patient.id, on=dt.datetime(2020, 6, 30, 23, 0, tzinfo=dt.UTC)
    )
    assert aware.eligible


def test_check_eligibility_orders_dual_coverage_primary_first(session: Session) -> None:
    make_payers(session)
    patient = make_patient(session)
    medicaid = make_coverage(session, patient, payer="payer-medicaid", order=2)
    medicare = make_coverage(session, patient, payer="payer-medicare", order=1)
    result = check_eligibility(session, patient_id=patient.id, on=dt.date(2021, 5, 1))
    assert result.coverage_id == medicare.id
    assert result.coverage_ids == (medicare.id, medicaid.id)
    only_medicaid = check_eligibility(
        session, patient_id=patient.id, on=dt.date(2021, 5, 1), payer_id="payer-medicaid"
    )
    assert only_medicaid.coverage_id == medicaid.id
    assert result.to_dict()["on"] == "2021-05-01"


def test_check_eligibility_without_coverage_or_with_a_cancelled_one(session: Session) -> None:
    make_payers(session)
    patient = make_patient(session)
    none = check_eligibility(session, patient_id=patient.id, on=dt.date(2021, 5, 1))
    assert not none.eligible and none.carc == "31" and "no coverage on file" in none.reason
    make_coverage(session, patient, status="cancelled")
    cancelled = check_eligibility(session, patient_id=patient.id, on=dt.date(2021, 5, 1))
    assert not cancelled.eligible and cancelled.carc == "27" and "cancelled" in cancelled.reason


def test_check_eligibility_refuses_unknown_patients_and_naive_times(session: Session) -> None:
    patient = make_patient(session)
    with pytest.raises(NotFoundError):
        check_eligibility(session, patient_id="nobody", on=dt.date(2021, 1, 1))
    with pytest.raises(InvalidInputError, match="naive"):
        check_eligibility(session, patient_id=patient.id, on=dt.datetime(2021, 1, 1))


# --------------------------------------------------------------------------- authorisation


def _approved(session: Session, patient: Patient, **overrides: object) -> PriorAuthorization:
    values: dict[str, object] = {
        "patient_id": patient.id,
        "payer_id": "payer-blue-hmo",
        "requested_by": "nurse.kim",
        "service_categories": ["surgical_procedure"],
        "requested_at": T0,
    }
    values.update(overrides)
    request = request_authorization(session, **values)  # type: ignore[arg-type]
    return decide_authorization(
        session,
        request.id,
        status="approved",
        actor="payer-portal",
        reference_number="BHH-PA-1",
        valid_from=dt.date(2024, 3, 1),
        valid_to=dt.date(2024, 3, 31),
        decided_at=T0 + dt.timedelta(hours=2),
    )


def test_authorization_request_then_approval_is_found_inside_its_window(session: Session) -> None:
    make_payers(session)
    patient = make_patient(session)
    authorization = _approved(session, patient, service_codes=["73761001"])
    assert authorization.status == AuthorizationStatus.APPROVED
    assert authorization.decided_by == "payer-portal"
    for key, day in (
        ("surgical_procedure", dt.date(2024, 3, 1)),
        ("73761001", dt.date(2024, 3, 31)),
    ):
        found = find_valid_authorization(
            session, patient_id=patient.id, payer_id="payer-blue-hmo", category_or_code=key, on=day
        )
        assert found is not None and found.id == authorization.id
    for key, day, payer in (
        ("surgical_procedure", dt.date(2024, 4, 1), "payer-blue-hmo"),
        ("oncology", dt.date(2024, 3, 5), "payer-blue-hmo"),
        ("surgical_procedure", dt.date(2024, 3, 5), "payer-acme-ppo"),
    ):
        assert (
            find_valid_authorization(
                session, patient_id=patient.id, payer_id=payer, category_or_code=key, on=day
            )
            is None
        )


def test_expired_authorization_still_covers_services_inside_its_window(session: Session) -> None:
    make_payers(session)
    patient = make_patient(session)
    authorization = _approved(session, patient)
    pending = request_authorization(
        session,
        patient_id=patient.id,
        payer_id="payer-blue-hmo",
        requested_by="nurse.kim",
        service_categories=["oncology"],
        valid_from=dt.date(2024, 3, 1),
        valid_to=dt.date(2024, 3, 10),
        requested_at=T0,
    )
    expired = expire_authorizations(session, as_of=dt.date(2024, 4, 2))
    assert {a.id for a in expired} == {authorization.id, pending.id}
    assert expire_authorizations(session, as_of=dt.date(2024, 4, 2)) == []
    assert authorization.status == AuthorizationStatus.EXPIRED
    found = find_valid_authorization(
        session,
        patient_id=patient.id,
        payer_id="payer-blue-hmo",
        category_or_code="surgical_procedure",
        on=dt.date(2024, 3, 15),
    )
    assert found is not None and found.id == authorization.id
    never_approved = find_valid_authorization(
        session,
        patient_id=patient.id,
        payer_id="payer-blue-hmo",
        category_or_code="oncology",
        on=dt.date(2024, 3, 5),
    )
    assert never_approved is None


def test_decide_authorization_validates_each_transition(session: Session) -> None:
    make_payers(session)
    patient = make_patient(session)
    request = request_authorization(
        session,
        patient_id=patient.id,
        payer_id="payer-blue-hmo",
        requested_by="nurse.kim",
        service_categories=["oncology"],
        requested_at=T0,
    )
    with pytest.raises(InvalidInputError, match="reference_number"):
        decide_authorization(session, request.id, status="approved", actor="payer")
    with pytest.raises(InvalidInputError, match="validity window"):
        decide_authorization(
            session, request.id, status="approved", actor="payer", reference_number="R1"
        )
    with pytest.raises(InvalidInputError, match="needs a reason"):
        decide_authorization(session, request.id, status="denied", actor="payer")
    with pytest.raises(InvalidInputError, match="before requested_at"):
        decide_authorization(
            session,
            request.id,
            status="denied",
            actor="payer",
            reason="not medically necessary",
            decided_at=T0 - dt.timedelta(hours=1),
        )
    assert request.status == AuthorizationStatus.REQUESTED
    denied = decide_authorization(
        session, request.id, status="denied", actor="payer", reason="not medically necessary"
    )
    assert denied.status == AuthorizationStatus.DENIED
    with pytest.raises(ConflictError, match="is denied: it cannot become approved"):
        decide_authorization(
            session,
            request.id,
            status="approved",
            actor="payer",
            reference_number="R1",
            valid_from=dt.date(2024, 3, 1),
            valid_to=dt.date(2024, 3, 2),
        )
    approved = _approved(session, patient)
    cancelled = decide_authorization(
        session, approved.id, status="cancelled", actor="scheduler", reason="surgery called off"
    )
    assert cancelled.status == AuthorizationStatus.CANCELLED
    with pytest.raises(InvalidInputError, match="not one of"):
        decide_authorization(session, approved.id, status="maybe", actor="x")
    with pytest.raises(NotFoundError):
        decide_authorization(session, "nope", status="denied", actor="x", reason="r")


def test_request_authorization_refuses_inconsistent_requests(session: Session) -> None:
    make_payers(session)
    patient = make_patient(session)
    other = make_patient(session)
    other_coverage = make_coverage(session, other, payer="payer-blue-hmo")
    own_coverage = make_coverage(session, patient, payer="payer-acme-ppo")
    base = {"patient_id": patient.id, "payer_id": "payer-blue-hmo", "requested_by": "n"}
    with pytest.raises(InvalidInputError, match="names no service"):
        request_authorization(session, **base)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="before valid_from"):
        request_authorization(
            session,
            **base,  # type: ignore[arg-type]
            service_codes=["1"],
            valid_from=dt.date(2024, 3, 2),
            valid_to=dt.date(2024, 3, 1),
        )
    with pytest.raises(InvalidInputError, match="belongs to Patient"):
        request_authorization(
            session,
            **base,  # type: ignore[arg-type]
            service_codes=["1"],
            coverage_id=other_coverage.id,
        )
    with pytest.raises(InvalidInputError, match="not the payer"):
        request_authorization(
            session,
            **base,  # type: ignore[arg-type]
            service_codes=["1"],
            coverage_id=own_coverage.id,
        )
    with pytest.raises(InvalidInputError, match="kind"):
        request_authorization(session, **base, service_codes=["1"], kind="wish")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match="payer Organization/payer-x"):
        request_authorization(
            session,
            patient_id=patient.id,
            payer_id="payer-x",
            requested_by="n",
            service_codes=["1"],
        )
    encounter = make_encounter(session, patient=other)
    with pytest.raises(InvalidInputError, match="Encounter"):
        request_authorization(session, **base, service_codes=["1"], encounter_id=encounter.id)  # type: ignore[arg-type]
    assert session.scalar(select(func.count()).select_from(PriorAuthorization)) == 0


def test_cashless_preauthorization_records_amounts_and_the_clock_times(
    session: Session, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("HEALTHOS_MARKET", "IN")  # an Indian hospital takes money in INR
    make_payers(session)
    patient = make_patient(session)
    encounter = make_encounter(session, patient=patient, class_code="IMP")
    request = request_authorization(
        session,
        patient_id=patient.id,
        payer_id="payer-acme-ppo",
        encounter_id=encounter.id,
        kind="cashless-preauth",
        requested_by="tpa-desk",
        service_categories=["inpatient_admission"],
        requested_amount="150000",
        currency="INR",
        requested_at=T0,
        reason="provisional diagnosis: appendicitis",
    )
    decided = decide_authorization(
        session,
        request.id,
        status="approved",
        actor="tpa",
        reference_number="TPA-778",
        approved_amount=Decimal("120000.00"),
        decided_at=T0 + dt.timedelta(minutes=48),
    )
    assert decided.valid_from is None and decided.valid_to is None  # holds for the admission
    assert decided.approved_amount == Decimal("120000.00") and decided.currency == "INR"
    assert decided.decided_at - decided.requested_at == dt.timedelta(minutes=48)  # type: ignore[operator]
    found = find_valid_authorization(
        session,
        patient_id=patient.id,
        payer_id="payer-acme-ppo",
        category_or_code="inpatient_admission",
        on=dt.date(2030, 1, 1),
    )
    assert found is not None and found.reference_number == "TPA-778"
