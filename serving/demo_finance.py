"""The demo's revenue cycle: payers, coverage, recent outpatient visits and their claims.

So that a fresh ``healthos demo`` shows the finance audience its work (issue 11 item 7):

* two payers (Medicare and a commercial HMO) with their contracts
  (``healthos_core/data/sample/finance/contracts.csv``, two rows of the synthea-rcm
  contracts' format with the demo's payer ids);
* a Coverage for each sample patient from 60 days ago; one patient's coverage ended 20 days
  ago (an eligibility denial waiting to happen, X12 CARC 27);
* six outpatient visits over the last days, written through the record service (the one
  write path: their procedures post ChargeItems by charge capture), of which

  - two have claims submitted and awaiting the payer's adjudication,
  - two have draft claims (one billed to the lapsed coverage),
  - one, eight days ago, has no claim yet (past ``leakage_unbilled_days``) and its charges
    were entered only now (late charges): revenue leakage,
  - one had a procedure entered afterwards as a back-load, which posts no charge (a missed
    charge on its draft claim).

The demo's scoring then produces ``finance.denial_risk`` and ``finance.revenue_leakage``
suggestions from these facts. Visit ids are ``demo-opd-<YYYYMMDD>-<n>``: re-running on the
same day does nothing.
"""

from __future__ import annotations

import datetime as dt
import io
import random
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core import terminology as t
from healthos_core.billing.claims import ScrubFailedError, build_claim, submit_claim
from healthos_core.billing.payers import load_contracts_csv
from healthos_core.fhir.importer import Unit, import_unit
from healthos_core.fhir.refs import format_datetime
from healthos_core.record import service
from healthos_core.record.entities import (
    Condition,
    Coverage,
    Encounter,
    Organization,
    Patient,
)
from healthos_core.record.write_path import write_resource

__all__ = ["PAYERS", "RevenueCycleDay", "simulate_revenue_cycle"]

#: The demo's payers: Organization id → name (``type`` ``pay``).
PAYERS: Final = {"demo-payer-medicare": "Medicare", "demo-payer-hmo": "Blue Horizon HMO"}
#: Visit plan: (days ago, claim: None | "draft" | "submitted", back-loaded extra procedure).
VISITS: Final = (
    (2, "submitted", False),
    (3, "submitted", False),
    (2, "draft", False),  # the patient whose coverage lapsed
    (4, "draft", True),
    (8, None, False),
    (1, "draft", False),  # coded without a diagnosis: its claim would be denied (CARC 16)
)
#: The visits' diagnosis (SNOMED CT with its ICD-10-CM code), on every visit but the last.
DIAGNOSIS: Final = ("59621000", "Essential hypertension (disorder)", "I10")
#: Index (0-based) of the visit whose patient's coverage ended 20 days ago.
LAPSED: Final = 2
ACTOR: Final = "demo:biller"
CHECKUP: Final = ("185349003", "Encounter for check up (procedure)")


@dataclass(frozen=True, slots=True)
class RevenueCycleDay:
    """What :func:`simulate_revenue_cycle` wrote (all zero when the day already exists)."""

    visits: int
    claims: int
    submitted: int


def _contracts_csv() -> str:
    return (resources.files("healthos_core") / "data/sample/finance/contracts.csv").read_text(
        encoding="utf-8"
    )


def _payers(session: Session) -> None:
    for payer_id, name in PAYERS.items():
        if session.get(Organization, payer_id) is None:
            write_resource(
                session,
                Organization,
                {
                    "resourceType": "Organization",
                    "id": payer_id,
                    "active": True,
                    "name": name,
                    "type": [
                        {
                            "coding": [
                                {
                                    "system": t.ORGANIZATION_TYPE,
                                    "code": "pay",
                                }
                            ]
                        }
                    ],
                },
                None,
            )
    load_contracts_csv(session, io.StringIO(_contracts_csv()))


def _coverage(
    patient_id: str, payer_id: str, start: dt.datetime, end: dt.datetime | None
) -> dict[str, Any]:
    period: dict[str, Any] = {"start": format_datetime(start)}
    if end is not None:
        period["end"] = format_datetime(end)
    return {
        "resourceType": "Coverage",
        "id": f"demo-coverage-{patient_id}"[:64],
        "status": "active",
        "beneficiary": {"reference": f"Patient/{patient_id}"},
        "payor": [{"reference": f"Organization/{payer_id}", "display": PAYERS[payer_id]}],
        "subscriberId": f"DEMO-{patient_id[:8].upper()}",
        "period": period,
        "order": 1,
    }


def simulate_revenue_cycle(
    session: Session,
    *,
    now: dt.datetime,
    facility_id: str,
    procedures: list[tuple[str, str]],
    seed: int = 20261207,
) -> RevenueCycleDay:
    """Write the demo's payers, coverage, recent visits and claims (see the module docstring).

    Parameters
    ----------
    session : Session
        The caller's session (flushed, not committed).
    now : datetime
        Aware UTC "now"; the visits fall on the days before it.
    facility_id : str
        The demo facility (an Organization already in the record).
    procedures : list of (code, display)
        SNOMED CT procedure codes the chargemaster prices (``serving.demo._priced_codes``).
    seed : int, default=20261207
        Seed of the choice of procedures (same seed, same visits).

    Returns
    -------
    RevenueCycleDay
        Visits, claims built and claims submitted (zeros when today's already exist).
    """
    day = now.strftime("%Y%m%d")
    if session.get(Encounter, f"demo-opd-{day}-1") is not None:
        return RevenueCycleDay(visits=0, claims=0, submitted=0)
    _payers(session)
    patients = list(
        session.scalars(select(Patient).where(Patient.deceased_at.is_(None)).order_by(Patient.id))
    )[: len(VISITS)]
    if not patients or not procedures:
        return RevenueCycleDay(visits=0, claims=0, submitted=0)
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not security
    since = now - dt.timedelta(days=60)
    payer_ids = list(PAYERS)
    claims = submitted = 0
    for index, (patient, (days_ago, claim_state, backloaded)) in enumerate(
        zip(patients, VISITS, strict=False)
    ):
        payer = payer_ids[index % len(payer_ids)]
        lapsed = now - dt.timedelta(days=20) if index == LAPSED else None
        coverage = write_resource(
            session, Coverage, _coverage(patient.id, payer, since, lapsed), None
        )
        start = (now - dt.timedelta(days=days_ago)).replace(hour=9 + index, minute=0)
        visit_id = f"demo-opd-{day}-{index + 1}"
        chosen = rng.sample(procedures, k=min(2, len(procedures)))
        visit = service.admit(
            session,
            patient_id=patient.id,
            class_code="AMB",
            start=start,
            facility_id=facility_id,
            type_code=CHECKUP[0],
            type_display=CHECKUP[1],
            id=visit_id,
        )
        for n, (code, display) in enumerate(chosen):
            service.record_procedure(
                session,
                encounter_id=visit.id,
                code_system=t.SNOMED,
                code=code,
                display=display,
                performed_at=start + dt.timedelta(minutes=15 * (n + 1)),
            )
        if index < len(VISITS) - 1:
            write_resource(session, Condition, _diagnosis(visit, start), None)
        service.discharge(session, encounter_id=visit.id, end=start + dt.timedelta(hours=1))
        if claim_state is None:  # charged only now, days late, and not billed yet
            continue
        claim = build_claim(
            session,
            encounter_id=visit.id,
            actor=ACTOR,
            role="finance",
            coverage_id=coverage.id,
            at=start + dt.timedelta(hours=3),
        )
        claims += 1
        if backloaded:
            _backload_procedure(session, visit, start, procedures, rng)
        if claim_state == "submitted":
            try:
                submit_claim(
                    session, claim.id, actor=ACTOR, role="finance", at=start + dt.timedelta(hours=4)
                )
                submitted += 1
            except ScrubFailedError:  # the scrubber's edits stop it: it stays a draft
                pass
    return RevenueCycleDay(visits=len(patients), claims=claims, submitted=submitted)


def _procedure(
    patient_id: str, encounter_id: str, suffix: str, code: str, display: str, at: dt.datetime
) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": f"{encounter_id}-{suffix}",
        "status": "completed",
        "code": {"coding": [{"system": t.SNOMED, "code": code, "display": display}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "encounter": {"reference": f"Encounter/{encounter_id}"},
        "performedDateTime": format_datetime(at),
    }


def _diagnosis(visit: Encounter, start: dt.datetime) -> dict[str, Any]:
    snomed, display, icd10cm = DIAGNOSIS
    return {
        "resourceType": "Condition",
        "id": f"{visit.id}-dx",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        "code": {
            "coding": [
                {"system": t.SNOMED, "code": snomed, "display": display},
                {"system": t.ICD10CM, "code": icd10cm, "display": display},
            ]
        },
        "subject": {"reference": f"Patient/{visit.patient_id}"},
        "encounter": {"reference": f"Encounter/{visit.id}"},
        "onsetDateTime": format_datetime(start),
    }


def _backload(session: Session, resources: list[dict[str, Any]]) -> None:
    """Write ``resources`` as history (``origin="backload"``): no charge, no rescoring."""
    import_unit(session, Unit(source="demo", entries=[(None, r) for r in resources]))


def _backload_procedure(
    session: Session,
    visit: Encounter,
    start: dt.datetime,
    procedures: list[tuple[str, str]],
    rng: random.Random,
) -> None:
    """Enter a procedure of the visit afterwards as history: no charge is posted for it."""
    code, display = procedures[rng.randrange(len(procedures))]
    at = start + dt.timedelta(minutes=45)
    _backload(session, [_procedure(visit.patient_id, visit.id, "late", code, display, at)])
