"""The KPIs: golden arithmetic per KPI and the roll-up (a ratio of sums, not a mean of ratios).

Every test runs on SQLite and on PostgreSQL (the ``session`` fixture). The day D is
2024-03-31; each case builds the few rows its formula reads and checks the value worked
out by hand in the comment beside it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session

from healthos_core.advisory import SuggestionAction, SuggestionRecord
from healthos_core.billing.entities import ClaimResponse
from healthos_core.billing.ledger import (
    AccountKind,
    JournalKind,
    account_id,
    credit,
    debit,
    patient_ar,
    payer_ar,
    post_journal,
)
from healthos_core.billing.remittance import ClaimResponseAdjudication
from healthos_core.errors import InvalidInputError, NotFoundError
from healthos_core.kpis import (
    KPIS,
    Kpi,
    KpiSources,
    QueueVisit,
    compute_kpis,
    parse_kpi_date,
    queue_visit_source,
)
from healthos_core.operations.beds import record_admit_decision
from healthos_core.record.entities import EncounterClass
from healthos_core.record.movements import transfer
from tests.factories import (
    make_bed,
    make_claim,
    make_encounter,
    make_organization,
    make_patient,
    make_ward,
)

D = dt.date(2024, 3, 31)


def at(day: dt.date, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), dt.UTC)


def days_before(n: int) -> dt.date:
    return D - dt.timedelta(days=n)


def hierarchy(session: Session) -> tuple[str, str, str, str]:
    """Region ← network ← facilities A and B; returns (region, network, a, b)."""
    region = make_organization(session, id="region-1", name="North", type_code="region")
    network = make_organization(
        session, id="network-1", name="Net", type_code="network", part_of_id=region.id
    )
    a = make_organization(session, id="fac-a", name="A", part_of_id=network.id)
    b = make_organization(session, id="fac-b", name="B", part_of_id=network.id)
    return region.id, network.id, a.id, b.id


def kpi(session: Session, key: str, org: str, level: str = "facility", **kw: Any) -> Kpi:
    report = compute_kpis(session, date=D, level=level, org_id=org, **kw)  # type: ignore[arg-type]
    (scope,) = report.scopes
    return next(k for k in scope.kpis if k.key == key)


def breakdown(k: Kpi) -> dict[str, float | None]:
    return {b.label: b.value for b in k.breakdown}


# --------------------------------------------------------------------------- registry


def test_registry_lists_every_contract_kpi_with_its_definition() -> None:
    assert [d.key for d in KPIS] == [
        "bed_occupancy",
        "alos",
        "opd_wait",
        "ed_wait",
        "collections",
        "initial_denial_rate",
        "clean_claim_rate",
        "net_days_in_ar",
        "unbilled_amount",
        "open_clinical_flags",
    ]
    for d in KPIS:
        assert d.formula and d.source and d.period and d.label
        assert d.unit in {"ratio", "days", "minutes", "currency", "count"}
        assert d.better in {"higher", "lower"}


def test_parse_kpi_date_takes_a_calendar_date_only() -> None:
    assert parse_kpi_date("2021-07-31") == dt.date(2021, 7, 31)
    for bad in ("2021-02-30", "2021-07-31T00:00:00Z", "yesterday", "1800-01-01"):
        with pytest.raises(InvalidInputError, match="date"):
            parse_kpi_date(bad)


def test_scopes_unknown_id_and_id_without_level(session: Session) -> None:
    region, network, a, b = hierarchy(session)
    report = compute_kpis(session, date=D)
    assert [(s.level, s.id) for s in report.scopes] == [
        ("facility", a),
        ("facility", b),
        ("network", network),
        ("region", region),
    ]
    with pytest.raises(NotFoundError, match="no-such"):
        compute_kpis(session, date=D, level="facility", org_id="no-such")
    with pytest.raises(NotFoundError):  # a network is not a facility
        compute_kpis(session, date=D, level="facility", org_id=network)
    with pytest.raises(InvalidInputError, match="level"):
        compute_kpis(session, date=D, org_id=a)


def test_targets_default_and_from_settings(
    session: Session, settings_env: pytest.MonkeyPatch
) -> None:
    _, _, a, _ = hierarchy(session)
    assert kpi(session, "bed_occupancy", a).target == 0.85
    settings_env.setenv("HEALTHOS_KPI_TARGETS", '{"bed_occupancy": 0.9, "alos": 4.5}')
    from healthos_core.settings import get_settings

    get_settings.cache_clear()
    assert kpi(session, "bed_occupancy", a).target == 0.9
    assert kpi(session, "alos", a).target == 4.5
    settings_env.setenv("HEALTHOS_KPI_TARGETS", '{"bed_occupncy": 0.9}')
    get_settings.cache_clear()
    with pytest.raises(InvalidInputError, match="bed_occupncy"):
        compute_kpis(session, date=D)


# --------------------------------------------------------------------------- ALOS


def stay(session: Session, facility: str, admitted: dt.datetime, discharged: dt.datetime) -> None:
    patient = make_patient(session)
    make_encounter(
        session,
        patient_id=patient.id,
        facility_id=facility,
        class_code=EncounterClass.IMP.value,
        status="finished",
        period_start=admitted,
        period_end=discharged,
    )


def test_alos_is_days_over_discharges_and_rolls_up_as_a_ratio_of_sums(session: Session) -> None:
    region, network, a, b = hierarchy(session)
    # A: stays of 3 and 7 nights discharged in the 30 days ending D -> 10 / 2 = 5.0
    stay(session, a, at(days_before(5)), at(days_before(2)))
    stay(session, a, at(days_before(7), 23), at(D, 8))
    # B: one stay of 2 nights -> 2.0
    stay(session, b, at(days_before(12)), at(days_before(10)))
    # Outside the period of D (discharged on D-30) and an outpatient visit: not counted.
    stay(session, a, at(days_before(40)), at(days_before(30)))
    patient = make_patient(session)
    make_encounter(
        session,
        patient_id=patient.id,
        facility_id=a,
        class_code="AMB",
        status="finished",
        period_start=at(D, 9),
        period_end=at(D, 10),
    )
    alos_a = kpi(session, "alos", a)
    assert alos_a.value == 5.0
    assert breakdown(alos_a) == {"discharges": 2.0, "inpatient days": 10.0}
    # The day before (the 30 days ending D-1 begin on D-30): the stay discharged on D is
    # not yet counted and the 10-night stay discharged on D-30 is: (3 + 10) / 2.
    assert alos_a.previous_day == 6.5
    # A week before (D-36 .. D-7): only the 10-night stay.
    assert alos_a.previous_week == 10.0
    assert kpi(session, "alos", b).value == 2.0
    # Network: (3 + 7 + 2) / 3 = 4.0 — not the mean of 5.0 and 2.0 (3.5).
    assert kpi(session, "alos", network, "network").value == 4.0
    assert kpi(session, "alos", region, "region").value == 4.0
    assert kpi(session, "alos", network, "network").previous_week == 6.0  # (10 + 2) / 2


# --------------------------------------------------------------------------- claims


def remitted(
    session: Session,
    facility: str,
    payer: str,
    *,
    when: dt.datetime,
    outcome: str = "complete",
    denied_whole: bool = False,
    corrected: bool = False,
) -> str:
    patient = make_patient(session)
    claim = make_claim(
        session,
        patient_id=patient.id,
        facility_id=facility,
        insurer_id=payer,
        billing_status="submitted",
        created=when - dt.timedelta(days=3),
        total="100.00",
    )
    response = ClaimResponse(
        id=f"cr-{claim.id}",
        patient_id=patient.id,
        claim_id=claim.id,
        status="active",
        outcome=outcome,
        created=when,
    )
    session.add(response)
    session.flush()
    if denied_whole:
        session.add(
            ClaimResponseAdjudication(
                claim_response_id=response.id,
                ordinal=1,
                claim_id=claim.id,
                item_sequence=None,
                category="denied",
                group_code="CO",
                carc="27",
                amount=Decimal("100.00"),
                currency="USD",
            )
        )
    if corrected:
        make_claim(
            session,
            patient_id=patient.id,
            facility_id=facility,
            insurer_id=payer,
            billing_status="submitted",
            related_claim_id=claim.id,
            created=when + dt.timedelta(hours=1),
        )
    session.flush()
    return claim.id


def test_denial_and_clean_claim_rates(session: Session) -> None:
    _region, network, a, b = hierarchy(session)
    payer = make_organization(session, id="payer-1", name="Payer", type_code="pay").id
    # A, in the 30 days ending D: rejected, denied whole, paid, paid then corrected.
    remitted(session, a, payer, when=at(days_before(1)), outcome="error")
    remitted(session, a, payer, when=at(days_before(3)), denied_whole=True)
    remitted(session, a, payer, when=at(D, 9))
    remitted(session, a, payer, when=at(days_before(20)), corrected=True)
    # Outside the period: a rejection on D-30.
    remitted(session, a, payer, when=at(days_before(30)), outcome="error")
    # B: one paid claim.
    remitted(session, b, payer, when=at(days_before(2)))
    denial_a = kpi(session, "initial_denial_rate", a)
    assert denial_a.value == 0.5  # 2 denied (rejected + denied whole) / 4
    # D-1: the claim paid on D is not yet in; the rejection of D-30 (the 30 days ending
    # D-1 begin on D-30) is: 3 denied... rejected D-1, denied D-3, rejected D-30 = 3 / 4.
    assert denial_a.previous_day == 0.75
    clean_a = kpi(session, "clean_claim_rate", a)
    # Clean: not rejected and not reworked -> denied-whole and paid = 2 / 4.
    assert clean_a.value == 0.5
    assert breakdown(clean_a) == {
        "initial claims remitted": 4.0,
        "clean": 2.0,
        "rejected by the payer's edits": 1.0,
        "reworked (corrected claim)": 1.0,
    }
    # Network: denied 2 / 5 = 0.4 (mean of the facility rates would be 0.25).
    assert kpi(session, "initial_denial_rate", network, "network").value == 0.4
    assert kpi(session, "clean_claim_rate", network, "network").value == 0.6


# --------------------------------------------------------------------------- ledger


def test_collections_and_net_days_in_ar(session: Session) -> None:
    _region, network, a, b = hierarchy(session)
    payer = make_organization(session, id="payer-1", name="Payer", type_code="pay").id
    patient = make_patient(session)
    claim = make_claim(
        session, patient_id=patient.id, facility_id=a, insurer_id=payer, total="900.00"
    )

    def post(kind: JournalKind, day: dt.date, lines: Sequence[Any], n: str) -> None:
        post_journal(
            session,
            kind=kind,
            source_ref=f"Claim/{claim.id}",
            discriminator=n,
            at=at(day),
            lines=lines,
            currency="USD",
            facility_id=a,
        )

    def amount(value: str) -> Decimal:
        return Decimal(value)

    payer_account = payer_ar(payer)
    post(
        JournalKind.CHARGE,
        days_before(10),
        [
            debit(account_id(AccountKind.UNBILLED_AR), amount("900")),
            credit(account_id(AccountKind.REVENUE), amount("900")),
        ],
        "1",
    )
    post(
        JournalKind.CLAIM_SUBMISSION,
        days_before(9),
        [
            debit(payer_account, amount("900"), claim_id=claim.id),
            credit(account_id(AccountKind.UNBILLED_AR), amount("900")),
        ],
        "2",
    )
    post(
        JournalKind.PAYMENT,
        days_before(2),
        [
            debit(account_id(AccountKind.CASH), amount("500"), claim_id=claim.id),
            credit(payer_account, amount("500"), claim_id=claim.id),
        ],
        "3",
    )
    post(
        JournalKind.CONTRACTUAL_ADJUSTMENT,
        days_before(2),
        [
            debit(account_id(AccountKind.CONTRACTUAL_ALLOWANCE), amount("200"), claim_id=claim.id),
            credit(payer_account, amount("200"), claim_id=claim.id),
        ],
        "4",
    )
    post(
        JournalKind.PATIENT_RESPONSIBILITY,
        days_before(2),
        [
            debit(patient_ar(patient.id), amount("100"), claim_id=claim.id),
            credit(payer_account, amount("100"), claim_id=claim.id),
        ],
        "5",
    )
    post(
        JournalKind.PATIENT_PAYMENT,
        D,
        [
            debit(account_id(AccountKind.CASH), amount("40")),
            credit(patient_ar(patient.id), amount("40")),
        ],
        "6",
    )
    # Net A/R at the end of D: 900 − 500 − 200 − 100 + 100 − 40 = 160; net revenue of the
    # 90 days: 900 − 200 = 700; days = 160 / (700 / 90) = 20.571… -> 20.57.
    ar_days = kpi(session, "net_days_in_ar", a)
    assert ar_days.value == 20.57
    assert breakdown(ar_days)["net A/R"] == 160.0
    assert breakdown(ar_days)["average daily net patient service revenue"] == 7.78
    # The day before: A/R 200 (the patient had not paid) -> 200 / (700 / 90) = 25.71.
    assert ar_days.previous_day == 25.71
    # A week before: A/R 900, revenue 900 -> 90.0.
    assert ar_days.previous_week == 90.0
    assert ar_days.currency == "USD"
    # Collections: cash 540 ÷ expected (paid 500 + PR 100) = 0.9.
    collections = kpi(session, "collections", a)
    assert collections.value == 0.9
    assert collections.previous_day == pytest.approx(500 / 600, abs=1e-4)
    assert collections.previous_week is None  # nothing expected yet
    # An underpaid line of 50 (allowed, not paid) raises what was expected: 540 / 650.
    response = ClaimResponse(
        id="cr-1",
        patient_id=patient.id,
        claim_id=claim.id,
        status="active",
        outcome="partial",
        created=at(days_before(2)),
    )
    session.add(response)
    session.flush()
    session.add(
        ClaimResponseAdjudication(
            claim_response_id="cr-1",
            ordinal=1,
            claim_id=claim.id,
            item_sequence=1,
            category="underpaid",
            amount=Decimal("50.00"),
            currency="USD",
        )
    )
    session.flush()
    assert kpi(session, "collections", a).value == round(540 / 650, 4)
    # B has no ledger activity; the network sums A and B: the same as A.
    assert kpi(session, "net_days_in_ar", network, "network").value == 20.57
    assert kpi(session, "net_days_in_ar", b).value is None


# --------------------------------------------------------------------------- suggestions


def suggestion(
    session: Session,
    sid: str,
    facility: str,
    kind: str,
    *,
    band: str | None = None,
    severity: str = "warning",
    amount: str | None = None,
    created: dt.datetime,
) -> None:
    session.add(
        SuggestionRecord(
            id=sid,
            kind=kind,
            audience="finance" if kind.startswith("finance") else "clinician",
            severity=severity,
            subject=f"Encounter/{sid}",
            facility_id=facility,
            band=band,
            summary="s",
            explanation={},
            recommended_action="a",
            source_name="test",
            source_version="1",
            amount_at_stake=None if amount is None else Decimal(amount),
            currency=None if amount is None else "USD",
            created_at=created,
        )
    )
    session.flush()


def test_unbilled_amount_and_open_clinical_flags(session: Session) -> None:
    _region, network, a, b = hierarchy(session)
    leak = "finance.revenue_leakage"
    suggestion(
        session, "l1", a, leak, band="missed_charge", amount="120.50", created=at(days_before(3))
    )
    suggestion(session, "l2", a, leak, band="underpayment", amount="30.00", created=at(D, 8))
    suggestion(
        session, "l3", b, leak, band="missed_charge", amount="10.00", created=at(days_before(3))
    )
    # Dismissed on D: open the day before, not on D.
    session.add(
        SuggestionAction(
            suggestion_id="l3", action="dismiss", actor="x", role="finance", at=at(D, 9)
        )
    )
    suggestion(
        session, "c1", a, "clinical.news2", band="high", severity="critical", created=at(D, 1)
    )
    suggestion(
        session, "c2", a, "clinical.news2", band="low", severity="info", created=at(days_before(1))
    )
    suggestion(session, "c3", a, "clinical.aki", band="stage 1", created=at(days_before(1)))
    # Resolved by rescoring on D, acknowledged c2 stays open.
    session.add(
        SuggestionAction(
            suggestion_id="c3",
            action="resolve",
            actor="system:rescoring",
            role="system",
            at=at(D, 2),
        )
    )
    session.add(
        SuggestionAction(
            suggestion_id="c2", action="acknowledge", actor="n", role="nurse", at=at(D, 3)
        )
    )
    session.flush()
    unbilled_a = kpi(session, "unbilled_amount", a)
    assert unbilled_a.value == 150.5
    assert unbilled_a.previous_day == 120.5
    assert breakdown(unbilled_a) == {
        "open findings": 2.0,
        "missed_charge": 120.5,
        "underpayment": 30.0,
    }
    assert kpi(session, "unbilled_amount", b).value == 0.0
    net = kpi(session, "unbilled_amount", network, "network")
    assert (net.value, net.previous_day) == (150.5, 130.5)
    flags = kpi(session, "open_clinical_flags", a)
    assert flags.value == 2.0  # c1 and c2 (acknowledged is still open); c3 resolved
    assert flags.previous_day == 2.0  # c2 and c3
    assert breakdown(flags) == {
        "high": 1.0,
        "low": 1.0,
        "severity critical": 1.0,
        "severity info": 1.0,
    }


# --------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Pool:
    pool: str
    facility_id: str
    available: int
    occupied: int


def test_operational_kpis_are_null_with_the_reason_without_a_source(session: Session) -> None:
    _, _, a, _ = hierarchy(session)
    for key in ("bed_occupancy", "opd_wait", "ed_wait"):
        k = kpi(session, key, a, sources=KpiSources())
        assert (k.value, k.previous_day, k.previous_week) == (None, None, None)
        (item,) = k.breakdown
        assert item.value is None and item.label.startswith("not available")


def test_bed_occupancy_per_pool_and_rolled_up(session: Session) -> None:
    _region, network, a, b = hierarchy(session)
    seen: list[dt.datetime] = []

    def census(_: Session, *, at: dt.datetime, facility_id: str | None = None) -> list[Pool]:
        seen.append(at)
        if at.date() != D:
            return [Pool("general_medicine", a, 20, 10)]
        return [
            Pool("general_medicine", a, 20, 18),
            Pool("icu", a, 6, 6),
            Pool("general_medicine", b, 10, 5),
        ]

    sources = KpiSources(bed_census=census)
    occupancy = kpi(session, "bed_occupancy", a, sources=sources)
    assert occupancy.value == round(24 / 26, 4)  # 0.9231
    assert breakdown(occupancy) == {"general_medicine": 0.9, "icu": 1.0}
    assert occupancy.previous_day == 0.5
    # Network: (18 + 6 + 5) / (20 + 6 + 10) = 29 / 36; general medicine 23 / 30.
    net = kpi(session, "bed_occupancy", network, "network", sources=sources)
    assert net.value == round(29 / 36, 4)
    assert breakdown(net) == {"general_medicine": round(23 / 30, 4), "icu": 1.0}
    assert dt.datetime.combine(D, dt.time.max, dt.UTC) in seen


def test_opd_and_ed_waits_from_queue_visits(session: Session) -> None:
    _region, network, a, b = hierarchy(session)
    t = at(D, 9)
    minutes = dt.timedelta(minutes=1)
    visits = [
        # OPD at A: waits 10, 20 and 45 minutes (target 30), one left without being seen.
        QueueVisit(
            facility_id=a,
            service="opd_clinic",
            target_wait_minutes=30,
            arrived_at=t,
            service_started_at=t + 10 * minutes,
        ),
        QueueVisit(
            facility_id=a,
            service="opd_clinic",
            target_wait_minutes=30,
            arrived_at=t,
            service_started_at=t + 20 * minutes,
        ),
        QueueVisit(
            facility_id=a,
            service="opd_clinic",
            target_wait_minutes=30,
            arrived_at=t,
            service_started_at=t + 45 * minutes,
        ),
        QueueVisit(
            facility_id=a,
            service="opd_clinic",
            target_wait_minutes=30,
            arrived_at=t,
            left_without_being_seen=True,
        ),
        # OPD at B: one wait of 5 minutes.
        QueueVisit(
            facility_id=b,
            service="opd_clinic",
            target_wait_minutes=15,
            arrived_at=t,
            service_started_at=t + 5 * minutes,
        ),
        # ED at A: 3 h, exactly 4 h, 5 h; admit decisions 30 and 90 min before departure;
        # one still in the department (not counted).
        QueueVisit(facility_id=a, service="ed_triage", arrived_at=t, departed_at=t + 180 * minutes),
        QueueVisit(
            facility_id=a,
            service="ed_triage",
            arrived_at=t,
            departed_at=t + 240 * minutes,
            admit_decision_at=t + 210 * minutes,
        ),
        QueueVisit(
            facility_id=a,
            service="ed_triage",
            arrived_at=t,
            departed_at=t + 300 * minutes,
            admit_decision_at=t + 210 * minutes,
        ),
        QueueVisit(facility_id=a, service="ed_triage", arrived_at=t),
        # ED at B: 6 h, admit decision 180 min before departure.
        QueueVisit(
            facility_id=b,
            service="ed_triage",
            arrived_at=t,
            departed_at=t + 360 * minutes,
            admit_decision_at=t + 180 * minutes,
        ),
    ]
    calls: list[tuple[dt.datetime, dt.datetime]] = []

    def source(_: Session, *, since: dt.datetime, until: dt.datetime) -> list[QueueVisit]:
        calls.append((since, until))
        return [v for v in visits if since <= v.arrived_at < until]

    sources = KpiSources(queue_visits=source)
    opd = kpi(session, "opd_wait", a, sources=sources)
    assert opd.value == 25.0  # (10 + 20 + 45) / 3
    assert breakdown(opd) == {
        "patients seen": 3.0,
        "share seen within their clinic's target": 0.6667,
        "left without being seen": 1.0,
    }
    assert opd.previous_day is None  # nobody arrived on D-1
    assert kpi(session, "opd_wait", network, "network", sources=sources).value == 20.0  # 80 / 4
    ed = kpi(session, "ed_wait", a, sources=sources)
    assert ed.value == 0.6667  # 3 h and 4 h of 3 attendances
    assert breakdown(ed)["median admit decision to departure (minutes)"] == 60.0  # 30, 90
    ed_net = kpi(session, "ed_wait", network, "network", sources=sources)
    assert ed_net.value == 0.5  # 2 of 4
    # Pooled samples 30, 90, 180: the median is 90 (not the mean of 60 and 180).
    assert breakdown(ed_net)["median admit decision to departure (minutes)"] == 90.0
    assert (at(D, 0), at(D + dt.timedelta(days=1), 0)) in calls


def test_queue_visit_source_joins_points_and_tickets(session: Session) -> None:
    @dataclass(frozen=True)
    class Point:
        id: str
        facility_id: str
        service: str
        target_wait_minutes: int

    @dataclass(frozen=True)
    class Ticket:
        location_id: str
        arrived_at: dt.datetime
        service_started_at: dt.datetime | None
        service_ended_at: dt.datetime | None
        left_without_being_seen: bool

    t = at(D, 9)

    def points(_: Session, *, at: dt.datetime, facility_id: str | None = None) -> list[Point]:
        return [Point("opd-1", "fac-a", "opd_clinic", 30)]

    def tickets(
        _: Session, *, location_id: str | None = None, since: dt.datetime, until: dt.datetime
    ) -> list[Ticket]:
        return [Ticket("opd-1", t, t, t, False), Ticket("elsewhere", t, t, t, False)]

    source = queue_visit_source(points, tickets)
    (visit,) = source(session, since=t, until=t)
    assert (visit.facility_id, visit.service, visit.target_wait_minutes) == (
        "fac-a",
        "opd_clinic",
        30,
    )
    assert visit.departed_at == t and visit.admit_decision_at is None


def test_bed_occupancy_reads_the_records_census_by_default(session: Session) -> None:
    _, _, a, _ = hierarchy(session)
    ward = make_ward(session, id="w-default", facility_id=a)
    for index in range(4):
        make_bed(session, ward, id=f"bed-{index}")
    end_of_d = dt.datetime.combine(D, dt.time(12), dt.UTC)
    for index in range(3):
        make_encounter(
            session,
            class_code="IMP",
            location_id=f"bed-{index}",
            period_start=end_of_d - dt.timedelta(days=2),
            facility_id=a,
        )
    occupancy = kpi(session, "bed_occupancy", a)  # no sources given: the record's census
    assert occupancy.value == 0.75
    assert breakdown(occupancy) == {"general_medicine": 0.75}


def test_ed_four_hours_and_admit_to_departure_read_the_ed_encounters(session: Session) -> None:
    """Arrival → departure from the ED (to a ward bed, or home), NHS four-hour standard."""
    _, _, a, _ = hierarchy(session)
    ward = make_ward(session, id="w-ed", facility_id=a)
    make_bed(session, ward, id="bed-ed")
    day = dt.datetime.combine(D, dt.time(), dt.UTC)
    make_encounter(
        session,
        id="ed-1",
        class_code="EMER",
        period_start=day + dt.timedelta(hours=10),
        facility_id=a,
        service_provider_id=a,
    )
    record_admit_decision(session, "ed-1", day + dt.timedelta(hours=12))
    transfer(session, "ed-1", "bed-ed", day + dt.timedelta(hours=15))  # 5 h in the ED
    make_encounter(
        session,
        id="ed-2",
        class_code="EMER",
        status="finished",
        period_start=day + dt.timedelta(hours=11),
        period_end=day + dt.timedelta(hours=13),  # home after 2 h
        facility_id=a,
    )
    make_encounter(  # still in the department at the end of D: not counted yet
        session,
        id="ed-3",
        class_code="EMER",
        period_start=day + dt.timedelta(hours=22),
        facility_id=a,
    )
    ed = kpi(session, "ed_wait", a)  # the default sources: the record's ED encounters
    assert ed.value == 0.5
    assert breakdown(ed) == {
        "attendances": 2,
        "within 4 hours": 1,
        "median admit decision to departure (minutes)": 180.0,
    }
