"""KPIs on a real synthea-rcm slice agree with ``healthos billing report`` (one concept, one place).

The slice's provider facilities are put under one network; the network's KPIs then cover
every claim and ledger entry, so:

* net days in A/R equal the report's ``net_days_in_ar`` (and its net A/R the report's
  ``ar.total``, summed by other SQL) at the same date;
* the initial denial and clean-claim counts of the 30 days ending D equal the report's
  cumulative counts at D minus those at D − 30 days.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.billing.entities import Claim, ClaimResponse
from healthos_core.billing.reports import billing_report, claim_facility
from healthos_core.fhir.importer import import_paths
from healthos_core.kpis import Kpi, compute_kpis
from healthos_core.record.entities import Encounter, Organization
from tests.integration.rcm_slice import make_rcm_slice

pytestmark = pytest.mark.integration


def end_of(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.max, dt.UTC)


def by_label(k: Kpi) -> dict[str, float | None]:
    return {b.label: b.value for b in k.breakdown}


@pytest.mark.usefixtures("live_path")  # remittance posting, as `healthos import` wires it
def test_rcm_kpis_equal_the_billing_report(
    shared_data: Path, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    rcm = make_rcm_slice(shared_data, tmp_path, patients=4)
    assert import_paths(session_factory, rcm.in_order()).rejected == []
    with session_factory() as session:
        facilities = set(
            session.scalars(
                select(claim_facility())
                .select_from(Claim)
                .outerjoin(Encounter, Claim.encounter_id == Encounter.id)
                .where(Claim.billing_status.is_not(None))
                .distinct()
            )
        )
        assert None not in facilities and facilities
        session.add(Organization(id="net-test", name="Test network", type_code="network"))
        session.flush()
        for org in session.scalars(select(Organization).where(Organization.id.in_(facilities))):
            org.part_of_id = "net-test"
        session.commit()
        # D: the day of the latest response, so the 30 days ending D hold claims.
        latest = max(session.scalars(select(ClaimResponse.created)))
        day = latest.astimezone(dt.UTC).date()

        (scope,) = compute_kpis(session, date=day, level="network", org_id="net-test").scopes
        kpis = {k.key: k for k in scope.kpis}
        now = billing_report(session, as_of=end_of(day))
        before = billing_report(session, as_of=end_of(day - dt.timedelta(days=30)))

    # Net days in A/R: the same figure, and A/R equal to the report's A/R total.
    ar = by_label(kpis["net_days_in_ar"])
    assert Decimal(str(ar["net A/R"])) == Decimal(now["ar"]["total"])
    assert Decimal(str(ar["net A/R"])) == Decimal(now["net_days_in_ar"]["net_ar"])
    assert kpis["net_days_in_ar"].value == (
        None if now["net_days_in_ar"]["days"] is None else float(now["net_days_in_ar"]["days"])
    )

    # Initial denial rate: the 30-day counts are the difference of the cumulative ones.
    claims = (
        now["initial_denial_rate_by_payer"]["all"]["claims"]
        - (before["initial_denial_rate_by_payer"]["all"]["claims"])
    )
    denied = (
        now["initial_denial_rate_by_payer"]["all"]["denied"]
        - (before["initial_denial_rate_by_payer"]["all"]["denied"])
    )
    denial = by_label(kpis["initial_denial_rate"])
    assert claims > 0
    assert denial["initial claims remitted"] == claims
    assert denial["denied (whole claim denied or rejected)"] == denied
    assert kpis["initial_denial_rate"].value == round(denied / claims, 4)

    # Clean-claim rate: the same.
    clean = now["clean_claim_rate"]["clean"] - before["clean_claim_rate"]["clean"]
    assert now["clean_claim_rate"]["claims"] - before["clean_claim_rate"]["claims"] == claims
    assert by_label(kpis["clean_claim_rate"])["clean"] == clean
    assert kpis["clean_claim_rate"].value == round(clean / claims, 4)

    # And the cumulative report's rate is its own counts' ratio (the one definition).
    everything = now["initial_denial_rate_by_payer"]["all"]
    assert Decimal(everything["rate"]) == (
        Decimal(everything["denied"]) / Decimal(everything["claims"])
    ).quantize(Decimal("0.0001"))
