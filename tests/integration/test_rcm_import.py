"""Real synthea-rcm claims enter the revenue cycle with their lines and diagnoses."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.billing.entities import Claim, ClaimDiagnosis, ClaimItem, ClaimResponse
from healthos_core.fhir.importer import import_paths
from healthos_core.record.entities import Coverage
from tests.integration.rcm_slice import make_rcm_slice

pytestmark = pytest.mark.integration


@pytest.mark.usefixtures("live_path")  # remittance posting, as `healthos import` wires it
def test_rcm_slice_imports_claims_into_the_revenue_cycle(
    shared_data: Path, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    rcm = make_rcm_slice(shared_data, tmp_path, patients=2)
    report = import_paths(session_factory, rcm.in_order()[:-1])  # all but the responses
    assert report.rejected == []
    with session_factory() as session:
        claims = session.scalars(select(Claim).where(Claim.billing_status.is_not(None))).all()
        assert claims, "synthea-rcm claims name their payer and are billed"
        assert {c.billing_status for c in claims} == {"submitted"}
        assert all(c.insurer_id and c.insurer_id.startswith("payer-") for c in claims)
        assert all(c.patient_control_number for c in claims)
        assert all(c.submitted_at == c.created for c in claims)
        # Synthea's own bundle claims name no payer Organization: record only.
        historical = session.scalar(
            select(func.count()).select_from(Claim).where(Claim.billing_status.is_(None))
        )
        assert historical and historical > 0
        lines = session.scalars(
            select(ClaimItem).where(ClaimItem.claim_id.in_([c.id for c in claims]))
        ).all()
        assert all(line.category and line.revenue_code for line in lines)
        assert any(line.procedure_id for line in lines)
        diagnoses = session.scalars(
            select(ClaimDiagnosis).where(ClaimDiagnosis.claim_id.in_([c.id for c in claims]))
        ).all()
        assert diagnoses and all(
            d.code_system == "http://hl7.org/fhir/sid/icd-10-cm" for d in diagnoses
        )
        assert session.scalar(select(func.count()).select_from(Coverage)) >= 2
    # The payers' answers move each claim on; re-importing the claims keeps that state.
    assert import_paths(session_factory, [rcm.claim_responses]).rejected == []
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(ClaimResponse)) == len(claims)
        states = {
            c.id: c.billing_status
            for c in session.scalars(select(Claim).where(Claim.billing_status.is_not(None)))
        }
        assert "submitted" not in {
            s for cid, s in states.items() if not _is_corrected(session, cid)
        }
    import_paths(session_factory, [rcm.claims])
    with session_factory() as session:
        after = {
            c.id: c.billing_status
            for c in session.scalars(select(Claim).where(Claim.billing_status.is_not(None)))
        }
        assert after == states


def _is_corrected(session: Session, claim_id: str) -> bool:
    claim = session.get(Claim, claim_id)
    return claim is not None and claim.related_claim_id is not None
