"""The billing API: coverage, authorisations, claims, remittances, ledger, A/R and report.

Every test runs on SQLite and on PostgreSQL (the ``engine`` fixture). The record is
synthetic: the real synthea-rcm payer contracts, service categories and unit limits, one
patient with two coverages, and encounters whose charges are posted to the ledger.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.billing.claims import ICD10CM_SYSTEM
from healthos_core.billing.entities import ChargeItem
from healthos_core.billing.ledger import post_charge
from healthos_core.billing.payers import (
    load_bundling_edits_csv,
    load_contracts_csv,
    load_service_codes,
)
from healthos_core.billing.remittance import (
    ADJUDICATION_SYSTEM,
    CARC_SYSTEM,
    GROUP_CODE_EXTENSION,
    HOSPITAL_ADJUDICATION_SYSTEM,
    RARC_SYSTEM,
    REMARK_CODE_EXTENSION,
)
from healthos_core.db import session_scope
from healthos_core.fhir.importer import import_paths
from healthos_core.record.entities import Condition, Coverage, Organization, Patient
from healthos_core.settings import Settings
from serving.deps import token_subject
from serving.main import create_app
from tests.conftest import SHARED_DATA, table_counts
from tests.factories import SNOMED, make_encounter, make_organization, make_patient, new_id
from tests.integration.rcm_slice import make_rcm_slice

TOKENS = {
    "tok-clinician-0001": "clinician",
    "tok-nurse-0001": "nurse",
    "tok-finance-0001": "finance",
    "tok-admin-0001": "admin",
    "tok-datasci-0001": "data_scientist",
}
SETTINGS = Settings(environment="test", api_tokens=TOKENS, rescore="off")  # type: ignore[arg-type]
PROBLEM = "application/problem+json"
API = "/api/v1"
RCM = SHARED_DATA / "synthea-rcm"
PAYERS = ("payer-medicare", "payer-ma-plus", "payer-medicaid", "payer-acme-ppo", "payer-blue-hmo")
PAYER = "payer-blue-hmo"  # Blue Horizon HMO: prior auth for surgical procedures, 90-day filing
CHECKUP = "185349003"  # evaluation_management, revenue code 0510
COLONOSCOPY = "73761001"  # surgical_procedure: needs prior authorisation with Blue Horizon
BUCKETS = ["0-30", "31-60", "61-90", "91-120", "120+"]


def token_of(role: str) -> str:
    return next(t for t, r in TOKENS.items() if r == role)


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_of(role)}"}


FINANCE = auth("finance")


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    return create_app(SETTINGS, engine=engine)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


# --------------------------------------------------------------------------- the record


@dataclass
class Record:
    """Ids of the synthetic record; ``clean`` encounters scrub clean, one per service day."""

    now: dt.datetime
    patient_id: str
    coverage_id: str
    old_coverage_id: str
    clean: list[str] = field(default_factory=list)
    colonoscopy: str = ""


def add_encounter(
    session: Session,
    patient: Patient,
    provider: Organization,
    *,
    start: dt.datetime,
    code: str,
    price: str,
    icd10cm: str | None = "E11.9",
) -> str:
    """A finished outpatient encounter with one charge (posted to the ledger) and a diagnosis."""
    encounter = make_encounter(
        session,
        patient=patient,
        class_code="AMB",
        status="finished",
        period_start=start,
        period_end=start + dt.timedelta(hours=1),
        type_code=CHECKUP,
        service_provider_id=provider.id,
        facility_id=provider.id,
    )
    charge = ChargeItem(
        id=new_id(),
        patient_id=patient.id,
        encounter_id=encounter.id,
        facility_id=provider.id,
        status="billable",
        code_system=SNOMED,
        code=code,
        quantity=Decimal("1"),
        unit_price=Decimal(price),
        total=Decimal(price),
        currency="USD",
        service_ref=f"Encounter/{encounter.id}",
        occurred_at=start,
    )
    session.add(charge)
    session.flush()
    post_charge(session, charge)
    if icd10cm:
        codings = [
            {"system": SNOMED, "code": "44054006", "display": "Diabetes"},
            {"system": ICD10CM_SYSTEM, "code": icd10cm, "display": "Diabetes"},
        ]
        session.add(
            Condition(
                id=new_id(),
                patient_id=patient.id,
                encounter_id=encounter.id,
                code_system=SNOMED,
                code="44054006",
                display="Diabetes",
                clinical_status="active",
                verification_status="confirmed",
                onset_at=start,
                resource={"resourceType": "Condition", "code": {"coding": codings}},
            )
        )
        session.flush()
    return encounter.id


def coverage(
    session: Session, patient: Patient, payer: str, start: dt.date, end: dt.date | None, order: int
) -> str:
    row = Coverage(
        id=new_id(),
        patient_id=patient.id,
        status="active",
        type_code="HIP",
        payor_id=payer,
        payor_display=payer,
        plan="Commercial",
        subscriber_id="SUB-0001",
        period_start=dt.datetime.combine(start, dt.time(), dt.UTC),
        period_end=dt.datetime.combine(end, dt.time(), dt.UTC) if end else None,
        resource={"resourceType": "Coverage", "order": order},
    )
    session.add(row)
    session.flush()
    return row.id


@pytest.fixture
def record(session_factory: sessionmaker[Session]) -> Record:
    """Payers with the real contracts, one patient, four clean encounters and a colonoscopy."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with session_scope(session_factory) as session:
        for payer in PAYERS:
            make_organization(session, id=payer, name=payer, type_code="pay")
        load_contracts_csv(session, RCM / "contracts.csv")
        load_service_codes(session, RCM / "service_categories.csv", RCM / "unit_limits.csv")
        load_bundling_edits_csv(session, RCM / "bundling_edits.csv")
        provider = make_organization(session, name="St Elsewhere")
        patient = make_patient(session, facility_id=provider.id)
        result = Record(
            now=now,
            patient_id=patient.id,
            coverage_id=coverage(session, patient, PAYER, dt.date(2020, 1, 1), None, 1),
            old_coverage_id=coverage(
                session, patient, "payer-acme-ppo", dt.date(2018, 1, 1), dt.date(2019, 12, 31), 1
            ),
        )
        for days in (2, 3, 4, 5):
            result.clean.append(
                add_encounter(
                    session,
                    patient,
                    provider,
                    start=now - dt.timedelta(days=days),
                    code=CHECKUP,
                    price="125.00",
                )
            )
        result.colonoscopy = add_encounter(
            session,
            patient,
            provider,
            start=now - dt.timedelta(days=6),
            code=COLONOSCOPY,
            price="900.00",
        )
    return result


def build(client: TestClient, encounter_id: str) -> dict[str, Any]:
    response = client.post(f"{API}/claims", json={"encounter_id": encounter_id}, headers=FINANCE)
    assert response.status_code == 201, response.text
    return response.json()


def submitted(client: TestClient, encounter_id: str) -> dict[str, Any]:
    claim = build(client, encounter_id)
    response = client.post(f"{API}/claims/{claim['id']}/submit", headers=FINANCE)
    assert response.status_code == 200, response.text
    return response.json()


# --------------------------------------------------------------------------- ClaimResponses


def adjudication(
    category: str,
    amount: str,
    *,
    carc: str | None = None,
    group: str = "CO",
    rarc: str | None = None,
) -> dict[str, Any]:
    """One adjudication in the synthea-rcm conventions."""
    system = (
        ADJUDICATION_SYSTEM
        if category in ("submitted", "eligible", "benefit")
        else HOSPITAL_ADJUDICATION_SYSTEM
    )
    out: dict[str, Any] = {
        "category": {"coding": [{"system": system, "code": category}]},
        "amount": {"value": float(amount), "currency": "USD"},
    }
    if carc is not None:
        out["reason"] = {"coding": [{"system": CARC_SYSTEM, "code": carc}]}
        out["extension"] = [{"url": GROUP_CODE_EXTENSION, "valueCoding": {"code": group}}]
        if rarc is not None:
            out["extension"].append(
                {"url": REMARK_CODE_EXTENSION, "valueCoding": {"system": RARC_SYSTEM, "code": rarc}}
            )
    return out


def paid(submitted: str = "125.00", contractual: str = "47.50", copay: str = "25.00") -> list:
    """A line paid as allowed: submitted = benefit + CO-45 + PR-3."""
    benefit = Decimal(submitted) - Decimal(contractual) - Decimal(copay)
    return [
        adjudication("submitted", submitted),
        adjudication("eligible", str(Decimal(submitted) - Decimal(contractual))),
        adjudication("contractual", contractual, carc="45"),
        adjudication("patient-responsibility", copay, carc="3", group="PR"),
        adjudication("benefit", str(benefit)),
    ]


def denied(submitted: str = "125.00", carc: str = "16", rarc: str | None = "M76") -> list:
    return [
        adjudication("submitted", submitted),
        adjudication("eligible", "0"),
        adjudication("denied", submitted, carc=carc, rarc=rarc),
        adjudication("benefit", "0"),
    ]


def claim_response(
    claim: dict[str, Any],
    lines: list,
    *,
    response_id: str | None = None,
    payment: str | None = None,
) -> dict[str, Any]:
    """A FHIR ClaimResponse to ``claim`` adjudicating its first line with ``lines``."""
    benefit = sum(
        (
            Decimal(str(a["amount"]["value"]))
            for a in lines
            if a["category"]["coding"][0]["code"] == "benefit"
        ),
        Decimal("0"),
    )
    amount = Decimal(payment) if payment is not None else benefit
    resource: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "id": response_id or new_id(),
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "institutional",
                }
            ]
        },
        "use": "claim",
        "patient": {"reference": f"Patient/{claim['patient_id']}"},
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "insurer": {"reference": f"Organization/{claim['payer_id']}"},
        "request": {"reference": f"Claim/{claim['id']}"},
        "outcome": "complete",
        "item": [{"itemSequence": 1, "adjudication": lines}],
    }
    if amount:
        resource["payment"] = {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/ex-paymenttype",
                        "code": "complete",
                    }
                ]
            },
            "amount": {"value": float(amount), "currency": "USD"},
        }
    return resource


def post_remittance(
    client: TestClient, body: Any, media_type: str = "application/fhir+json"
) -> Any:
    content = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(
        f"{API}/remittances",
        content=content,
        headers={**FINANCE, "Content-Type": media_type},
    )


# --------------------------------------------------------------------------- auth


ROUTES = [
    ("get", "/coverage?patient=p"),
    ("get", "/coverage/eligibility?patient=p&on=2024-01-01"),
    ("get", "/authorizations"),
    ("post", "/authorizations"),
    ("post", "/authorizations/expire"),
    ("get", "/claims"),
    ("post", "/claims"),
    ("get", "/claims/c-1"),
    ("post", "/claims/c-1/scrub"),
    ("post", "/claims/c-1/submit"),
    ("get", "/claims/c-1/history"),
    ("post", "/remittances"),
    ("get", "/ledger/trial-balance"),
    ("get", "/accounts"),
    ("get", "/accounts/cash"),
    ("get", "/billing/ar-aging"),
    ("get", "/billing/report"),
    ("get", "/patients/p/statement"),
    ("post", "/patients/p/invoices"),
    ("post", "/patients/p/payments"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_billing_routes_without_a_token_are_401(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, API + path)

    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("role", ["clinician", "nurse", "data_scientist"])
def test_billing_routes_refuse_non_finance_roles(
    client: TestClient, method: str, path: str, role: str
) -> None:
    response = client.request(method, API + path, headers=auth(role))

    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "forbidden"
    assert role in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/authorizations/expire",
        "/claims/c-1/submit",
        "/claims/c-1/appeal",
        "/claims/c-1/write-off",
        "/claims/c-1/resubmit",
        "/remittances",
        "/patients/p/invoices",
        "/patients/p/refunds",
    ],
)
def test_admin_reads_but_may_not_write_billing(client: TestClient, path: str) -> None:
    response = client.post(API + path, json={}, headers=auth("admin"))

    assert response.status_code == 403
    assert "finance" in response.json()["detail"]


def test_admin_reads_billing(client: TestClient, record: Record) -> None:
    for path in ("/claims", "/ledger/trial-balance", "/billing/report", "/authorizations"):
        assert client.get(API + path, headers=auth("admin")).status_code == 200


# --------------------------------------------------------------------------- coverage


def test_coverage_lists_a_patients_coverages_primary_and_latest_first(
    client: TestClient, record: Record
) -> None:
    response = client.get(
        f"{API}/coverage", params={"patient": f"Patient/{record.patient_id}"}, headers=FINANCE
    )

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [c["id"] for c in body["data"]] == [record.coverage_id, record.old_coverage_id]
    first = body["data"][0]
    assert (first["payer_id"], first["order"], first["plan"], first["subscriber_id"]) == (
        PAYER,
        1,
        "Commercial",
        "SUB-0001",
    )
    assert first["period_start"] == "2020-01-01T00:00:00Z" and first["period_end"] is None


@pytest.mark.parametrize(
    ("on", "eligible", "coverage", "carc"),
    [
        ("2024-06-01", True, "current", None),
        ("2019-12-31", True, "old", None),  # the period's end is included
        ("2017-06-01", False, None, "26"),  # before any coverage started
    ],
)
def test_eligibility_on_a_service_date(
    client: TestClient,
    record: Record,
    on: str,
    eligible: bool,
    coverage: str | None,
    carc: str | None,
) -> None:
    response = client.get(
        f"{API}/coverage/eligibility",
        params={"patient": record.patient_id, "on": on},
        headers=FINANCE,
    )

    assert response.status_code == 200
    body = response.json()
    expected = {"current": record.coverage_id, "old": record.old_coverage_id, None: None}[coverage]
    assert (body["eligible"], body["coverage_id"], body["carc"], body["on"]) == (
        eligible,
        expected,
        carc,
        on,
    )
    assert body["reason"]


def test_coverage_of_an_unknown_patient_is_404_and_a_bad_date_422(client: TestClient) -> None:
    missing = client.get(f"{API}/coverage", params={"patient": "nobody"}, headers=FINANCE)
    eligibility = client.get(
        f"{API}/coverage/eligibility",
        params={"patient": "nobody", "on": "2024-01-01"},
        headers=FINANCE,
    )
    bad_date = client.get(
        f"{API}/coverage/eligibility", params={"patient": "nobody", "on": "soon"}, headers=FINANCE
    )

    assert (missing.status_code, missing.json()["code"]) == (404, "not-found")
    assert eligibility.status_code == 404
    assert (bad_date.status_code, bad_date.json()["code"]) == (422, "invalid-request")


# --------------------------------------------------------------------------- authorisations


def test_prior_authorization_request_decide_list_and_conflict(
    client: TestClient, record: Record
) -> None:
    today = record.now.date()
    created = client.post(
        f"{API}/authorizations",
        json={
            "patient_id": record.patient_id,
            "payer_id": PAYER,
            "coverage_id": record.coverage_id,
            "service_categories": ["surgical_procedure"],
            "valid_from": str(today - dt.timedelta(days=30)),
            "valid_to": str(today + dt.timedelta(days=30)),
            "reason": "screening colonoscopy",
        },
        headers=FINANCE,
    )
    assert created.status_code == 201, created.text
    authorization = created.json()
    assert (authorization["status"], authorization["kind"], authorization["clock"]) == (
        "requested",
        "prior-auth",
        None,
    )
    assert authorization["requested_by"] == token_subject(token_of("finance"))

    approved = client.post(
        f"{API}/authorizations/{authorization['id']}/decision",
        json={"status": "approved", "reference_number": "AUTH-0001"},
        headers=FINANCE,
    )
    again = client.post(
        f"{API}/authorizations/{authorization['id']}/decision",
        json={"status": "denied", "reason": "changed our mind"},
        headers=FINANCE,
    )
    listed = client.get(
        f"{API}/authorizations",
        params={"patient": record.patient_id, "status": "approved"},
        headers=FINANCE,
    )

    assert approved.status_code == 200
    assert (approved.json()["status"], approved.json()["reference_number"]) == (
        "approved",
        "AUTH-0001",
    )
    assert approved.json()["decided_by"] == token_subject(token_of("finance"))
    assert (again.status_code, again.json()["code"]) == (409, "conflict")
    assert [a["id"] for a in listed.json()["data"]] == [authorization["id"]]
    assert listed.json()["count"] == 1


def test_authorization_requests_are_validated(client: TestClient, record: Record) -> None:
    no_service = client.post(
        f"{API}/authorizations",
        json={"patient_id": record.patient_id, "payer_id": PAYER},
        headers=FINANCE,
    )
    unknown_payer = client.post(
        f"{API}/authorizations",
        json={"patient_id": record.patient_id, "payer_id": "nobody", "service_codes": ["x"]},
        headers=FINANCE,
    )
    naive = client.post(
        f"{API}/authorizations",
        json={
            "patient_id": record.patient_id,
            "payer_id": PAYER,
            "service_codes": ["x"],
            "requested_at": "2025-01-01T10:00:00",
        },
        headers=FINANCE,
    )
    unknown = client.get(f"{API}/authorizations/nope", headers=FINANCE)

    assert (no_service.status_code, no_service.json()["code"]) == (422, "invalid-input")
    assert "names no service" in no_service.json()["detail"]
    assert unknown_payer.status_code == 404
    assert (naive.status_code, naive.json()["code"]) == (422, "invalid-request")
    assert unknown.status_code == 404


def test_india_cashless_clocks_show_due_time_and_breach(
    client: TestClient, record: Record, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("HEALTHOS_MARKET", "IN")  # an Indian hospital takes money in INR
    t0 = dt.datetime(2024, 8, 1, 10, 0, tzinfo=dt.UTC)
    body = {
        "patient_id": record.patient_id,
        "payer_id": PAYER,
        "service_categories": ["inpatient_admission"],
    }
    late = client.post(
        f"{API}/authorizations",
        json={
            **body,
            "kind": "cashless-preauth",
            "requested_at": t0.isoformat(),
            "requested_amount": "45000.00",
            "currency": "INR",
        },
        headers=FINANCE,
    ).json()
    decided = client.post(
        f"{API}/authorizations/{late['id']}/decision",
        json={
            "status": "approved",
            "reference_number": "TPA-1",
            "decided_at": (t0 + dt.timedelta(minutes=61)).isoformat(),
        },
        headers=FINANCE,
    ).json()
    waiting = client.post(
        f"{API}/authorizations",
        json={
            **body,
            "kind": "discharge-auth",
            "requested_at": (record.now - dt.timedelta(hours=4)).isoformat(),
        },
        headers=FINANCE,
    ).json()
    fresh = client.post(
        f"{API}/authorizations",
        json={
            **body,
            "kind": "cashless-preauth",
            "requested_at": (record.now - dt.timedelta(minutes=10)).isoformat(),
        },
        headers=FINANCE,
    ).json()

    assert late["requested_amount"] == "45000.00" and late["currency"] == "INR"
    assert decided["clock"] == {
        "status": "breached",
        "due_at": "2024-08-01T11:00:00Z",
        "breached": True,
        "minutes_remaining_or_overdue": -1,
        "decided_within": False,
        "limit_minutes": 60,
        "source": decided["clock"]["source"],
    }
    assert "IRDAI" in decided["clock"]["source"]
    assert waiting["clock"]["status"] == "breached" and waiting["clock"]["limit_minutes"] == 180
    assert waiting["clock"]["minutes_remaining_or_overdue"] <= -60
    assert fresh["clock"]["status"] == "running" and not fresh["clock"]["breached"]
    assert 45 <= fresh["clock"]["minutes_remaining_or_overdue"] <= 50

    listed = client.get(
        f"{API}/authorizations", params={"kind": "cashless-preauth"}, headers=FINANCE
    ).json()
    assert {a["id"]: a["clock"]["breached"] for a in listed["data"]} == {
        late["id"]: True,
        fresh["id"]: False,
    }


def test_expire_marks_authorizations_past_their_window(client: TestClient, record: Record) -> None:
    created = client.post(
        f"{API}/authorizations",
        json={
            "patient_id": record.patient_id,
            "payer_id": PAYER,
            "service_codes": [COLONOSCOPY],
            "valid_from": "2024-01-01",
            "valid_to": "2024-01-31",
        },
        headers=FINANCE,
    ).json()

    expired = client.post(
        f"{API}/authorizations/expire", json={"as_of": "2024-02-01"}, headers=FINANCE
    )
    again = client.post(f"{API}/authorizations/expire", headers=FINANCE)

    assert expired.status_code == 200
    assert [(a["id"], a["status"]) for a in expired.json()["data"]] == [(created["id"], "expired")]
    assert again.json() == {"data": [], "count": 0}


# --------------------------------------------------------------------------- claims


def test_claim_build_scrub_submit_and_history(client: TestClient, record: Record) -> None:
    claim = build(client, record.clean[0])

    assert (claim["billing_status"], claim["payer_id"], claim["coverage_id"]) == (
        "draft",
        PAYER,
        record.coverage_id,
    )
    assert (claim["total"], claim["currency"], claim["patient_id"]) == (
        "125.00",
        "USD",
        record.patient_id,
    )
    line = claim["lines"][0]
    assert (line["sequence"], line["code"], line["quantity"], line["unit_price"], line["net"]) == (
        1,
        CHECKUP,
        "1",
        "125.00",
        "125.00",
    )
    assert (line["category"], line["revenue_code"], line["diagnosis_sequence"]) == (
        "evaluation_management",
        "0510",
        [1],
    )
    assert line["service_date"] == str((record.now - dt.timedelta(days=2)).date())
    assert [(d["sequence"], d["code"], d["type"]) for d in claim["diagnoses"]] == [
        (1, "E11.9", "principal")
    ]

    scrubbed = client.post(f"{API}/claims/{claim['id']}/scrub", headers=auth("admin"))
    assert scrubbed.status_code == 200
    assert (scrubbed.json()["clean"], scrubbed.json()["errors"]) == (True, 0)

    sent = client.post(f"{API}/claims/{claim['id']}/submit", headers=FINANCE)
    assert sent.status_code == 200, sent.text
    assert sent.json()["billing_status"] == "submitted" and sent.json()["submitted_at"]

    read = client.get(f"{API}/claims/{claim['id']}", headers=FINANCE)
    assert read.json() == sent.json()

    history = client.get(f"{API}/claims/{claim['id']}/history", headers=FINANCE).json()
    assert history["count"] == 2
    assert [(h["from_status"], h["to_status"]) for h in history["data"]] == [
        (None, "draft"),
        ("draft", "submitted"),
    ]
    assert {(h["actor"], h["role"]) for h in history["data"]} == {
        (token_subject(token_of("finance")), "finance")
    }


def test_claims_list_by_status_and_payer(client: TestClient, record: Record) -> None:
    sent = submitted(client, record.clean[0])
    draft = build(client, record.clean[1])

    def ids(**params: Any) -> tuple[list[str], int]:
        body = client.get(f"{API}/claims", params=params, headers=FINANCE).json()
        return [c["id"] for c in body["data"]], body["count"]

    assert ids(status="submitted") == ([sent["id"]], 1)
    assert ids(status="draft", payer=PAYER) == ([draft["id"]], 1)
    assert ids(payer="payer-medicare") == ([], 0)
    assert ids(patient=f"Patient/{record.patient_id}", limit=1)[1] == 2
    assert len(ids(limit=1)[0]) == 1
    bad = client.get(f"{API}/claims", params={"status": "lost"}, headers=FINANCE)
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid-request")


def test_claim_errors_are_problems(client: TestClient, record: Record) -> None:
    unknown = client.get(f"{API}/claims/nope", headers=FINANCE)
    unknown_encounter = client.post(f"{API}/claims", json={"encounter_id": "nope"}, headers=FINANCE)
    claim = build(client, record.clean[0])
    nothing_left = client.post(
        f"{API}/claims", json={"encounter_id": record.clean[0]}, headers=FINANCE
    )
    appeal_draft = client.post(
        f"{API}/claims/{claim['id']}/appeal", json={"reason": "x"}, headers=FINANCE
    )
    no_reason = client.post(f"{API}/claims/{claim['id']}/write-off", json={}, headers=FINANCE)
    extra = client.post(f"{API}/claims", json={"encounter_id": "x", "price": 1}, headers=FINANCE)

    assert (unknown.status_code, unknown.json()["code"]) == (404, "not-found")
    assert unknown_encounter.status_code == 404
    assert (nothing_left.status_code, nothing_left.json()["code"]) == (409, "conflict")
    assert "no billable charge" in nothing_left.json()["detail"]
    assert (appeal_draft.status_code, appeal_draft.json()["code"]) == (409, "conflict")
    assert no_reason.status_code == 422 and ["body", "reason"] in [
        e["loc"] for e in no_reason.json()["errors"]
    ]
    assert extra.status_code == 422


def test_submit_blocked_by_the_scrubber_is_409_with_issues_and_writes_nothing(
    client: TestClient, record: Record, engine: Engine
) -> None:
    claim = build(client, record.colonoscopy)
    before = table_counts(engine)

    blocked = client.post(f"{API}/claims/{claim['id']}/submit", headers=FINANCE)

    assert blocked.status_code == 409
    assert blocked.headers["content-type"] == PROBLEM
    problem = blocked.json()
    assert (problem["status"], problem["code"], problem["title"]) == (
        409,
        "claim-scrub-failed",
        "Conflict",
    )
    assert problem["type"].endswith("claim-scrub-failed")
    assert problem["instance"] == f"{API}/claims/{claim['id']}/submit"
    assert problem["claim_id"] == claim["id"]
    issue = next(i for i in problem["issues"] if i["edit"] == "authorization-missing")
    assert (issue["severity"], issue["sequence"], issue["carc"], issue["group_code"]) == (
        "error",
        1,
        "197",
        "CO",
    )
    assert "prior authorisation" in issue["message"] and issue["evidence"]
    assert table_counts(engine) == before
    assert (
        client.get(f"{API}/claims/{claim['id']}", headers=FINANCE).json()["billing_status"]
        == "draft"
    )

    # The scrub route says the same without trying to submit.
    scrubbed = client.post(f"{API}/claims/{claim['id']}/scrub", headers=FINANCE).json()
    assert scrubbed["clean"] is False and scrubbed["errors"] >= 1

    # Obtain the authorisation through the API, then the claim goes.
    authorization = client.post(
        f"{API}/authorizations",
        json={
            "patient_id": record.patient_id,
            "payer_id": PAYER,
            "encounter_id": record.colonoscopy,
            "service_codes": [COLONOSCOPY],
            "valid_from": str(record.now.date() - dt.timedelta(days=10)),
            "valid_to": str(record.now.date() + dt.timedelta(days=10)),
        },
        headers=FINANCE,
    ).json()
    client.post(
        f"{API}/authorizations/{authorization['id']}/decision",
        json={"status": "approved", "reference_number": "AUTH-COLO-1"},
        headers=FINANCE,
    )
    sent = client.post(f"{API}/claims/{claim['id']}/submit", headers=FINANCE)
    assert sent.status_code == 200, sent.text
    assert sent.json()["billing_status"] == "submitted"


def test_submit_with_an_override_needs_a_reason(client: TestClient, record: Record) -> None:
    claim = build(client, record.colonoscopy)

    no_reason = client.post(
        f"{API}/claims/{claim['id']}/submit",
        json={"override_edits": ["authorization-missing"]},
        headers=FINANCE,
    )
    overridden = client.post(
        f"{API}/claims/{claim['id']}/submit",
        json={"override_edits": ["authorization-missing"], "reason": "payer waived it by phone"},
        headers=FINANCE,
    )

    assert (no_reason.status_code, no_reason.json()["code"]) == (422, "invalid-input")
    assert overridden.status_code == 200 and overridden.json()["billing_status"] == "submitted"
    history = client.get(f"{API}/claims/{claim['id']}/history", headers=FINANCE).json()["data"]
    assert "payer waived it by phone" in history[-1]["reason"]


# --------------------------------------------------------------------------- remittances


def test_remittance_posts_payment_adjustment_and_patient_share(
    client: TestClient, record: Record
) -> None:
    claim = submitted(client, record.clean[0])
    response = claim_response(claim, paid())

    posted = post_remittance(client, response)

    assert posted.status_code == 200, posted.text
    body = posted.json()
    assert (body["responses"], body["created"], body["journal_entries"]) == (1, 1, 3)
    assert body["claims"] == [
        {
            "claim_response_id": response["id"],
            "claim_id": claim["id"],
            "outcome": "complete",
            "payment": "52.50",
            "currency": "USD",
            "billing_status": "paid",
        }
    ]
    payer_ar = client.get(f"{API}/accounts/payer_ar:{PAYER}", headers=FINANCE).json()
    patient_ar = client.get(
        f"{API}/accounts/patient_ar:{record.patient_id}", headers=FINANCE
    ).json()
    assert (payer_ar["balance"], payer_ar["kind"], payer_ar["normal_balance"]) == (
        "0.00",
        "payer_ar",
        "debit",
    )
    assert patient_ar["balance"] == "25.00" and patient_ar["patient_id"] == record.patient_id

    again = post_remittance(client, response)
    assert again.status_code == 200
    assert (again.json()["created"], again.json()["journal_entries"]) == (0, 3)
    assert client.get(f"{API}/accounts/cash", headers=FINANCE).json()["balance"] == "52.50"


def test_remittance_accepts_ndjson_and_bundles(client: TestClient, record: Record) -> None:
    first, second, third, fourth = (submitted(client, e) for e in record.clean)
    ndjson = "".join(
        json.dumps(r) + "\n"
        for r in (claim_response(first, paid()), claim_response(second, denied()))
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": claim_response(third, denied(carc="197", rarc="N54"))}],
    }

    from_ndjson = post_remittance(client, ndjson, "application/fhir+ndjson")
    from_bundle = post_remittance(client, bundle, "application/json")
    from_x_ndjson = post_remittance(
        client,
        json.dumps(claim_response(fourth, paid())) + "\r\n\r\n",
        "application/x-ndjson; charset=utf-8",
    )
    late_again = post_remittance(client, claim_response(third, paid()))

    assert from_ndjson.status_code == 200, from_ndjson.text
    assert from_ndjson.json()["responses"] == 2
    assert {c["claim_id"]: c["billing_status"] for c in from_ndjson.json()["claims"]} == {
        first["id"]: "paid",
        second["id"]: "denied",
    }
    assert from_bundle.status_code == 200, from_bundle.text
    assert from_bundle.json()["claims"][0]["billing_status"] == "denied"
    assert from_x_ndjson.status_code == 200, from_x_ndjson.text
    assert from_x_ndjson.json()["claims"][0]["billing_status"] == "paid"
    # A second answer to an adjudicated claim (other response id) is refused: it follows
    # an appeal only.
    assert (late_again.status_code, late_again.json()["code"]) == (422, "fhir-invalid")
    assert "already adjudicated" in late_again.json()["detail"]
    assert client.get(f"{API}/ledger/trial-balance", headers=FINANCE).json()["balanced"] is True


def rejected_bodies(claim: dict[str, Any]) -> dict[str, tuple[Any, str, str]]:
    """Bodies the remittance route must refuse: (body, media type, words of the reason)."""
    unbalanced = claim_response(claim, paid())
    unbalanced["item"][0]["adjudication"][0]["amount"]["value"] = 130.0
    not_paid_as_said = claim_response(claim, paid(), payment="60.00")
    return {
        "unknown claim": (
            claim_response({**claim, "id": "no-such-claim"}, paid()),
            "application/fhir+json",
            "no-such-claim",
        ),
        "unbalanced line": (unbalanced, "application/fhir+json", "submitted 130.00 ≠"),
        "payment not the sum": (not_paid_as_said, "application/fhir+json", "payment"),
        "bad CARC": (
            claim_response(claim, denied(carc="999")),
            "application/fhir+json",
            "CARC 999",
        ),
        "bad RARC": (
            claim_response(claim, denied(rarc="ZZ9")),
            "application/fhir+json",
            "RARC ZZ9",
        ),
        "not a ClaimResponse": (
            {"resourceType": "Patient", "id": "p-x"},
            "application/fhir+json",
            "ClaimResponses only",
        ),
        "invalid JSON": ("{not json", "application/fhir+json", "invalid JSON"),
        "bad NDJSON line": (
            json.dumps(claim_response(claim, paid())) + "\n{oops\n",
            "application/fhir+ndjson",
            "line 2",
        ),
        "empty": ("", "application/fhir+ndjson", "empty"),
        "empty bundle": (
            {"resourceType": "Bundle", "type": "collection", "entry": []},
            "application/fhir+json",
            "no ClaimResponse",
        ),
    }


REJECTIONS = [
    "unknown claim",
    "unbalanced line",
    "payment not the sum",
    "bad CARC",
    "bad RARC",
    "not a ClaimResponse",
    "invalid JSON",
    "bad NDJSON line",
    "empty",
    "empty bundle",
]


@pytest.mark.parametrize("case", REJECTIONS)
def test_rejected_remittance_is_422_says_why_and_writes_nothing(
    client: TestClient, record: Record, engine: Engine, case: str
) -> None:
    claim = submitted(client, record.clean[0])
    body, media_type, words = rejected_bodies(claim)[case]
    before = table_counts(engine)
    balance_before = client.get(f"{API}/ledger/trial-balance", headers=FINANCE).json()

    response = post_remittance(client, body, media_type)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["code"] in ("fhir-invalid", "invalid-input")
    assert words in problem["detail"], problem["detail"]
    assert problem["detail"].startswith("request body")
    assert table_counts(engine) == before
    assert client.get(f"{API}/ledger/trial-balance", headers=FINANCE).json() == balance_before
    assert (
        client.get(f"{API}/claims/{claim['id']}", headers=FINANCE).json()["billing_status"]
        == "submitted"
    )


def test_remittance_of_another_media_type_is_415(client: TestClient, engine: Engine) -> None:
    before = table_counts(engine)

    response = post_remittance(client, "ISA*00*...~", "application/edi-x12")

    assert (response.status_code, response.json()["code"]) == (415, "unsupported-media-type")
    assert table_counts(engine) == before


# --------------------------------------------------------------------------- appeal, write-off


def test_denied_claims_are_appealed_written_off_or_corrected(
    client: TestClient, record: Record
) -> None:
    claims = [submitted(client, e) for e in record.clean[:3]]
    ndjson = "".join(json.dumps(claim_response(c, denied())) + "\n" for c in claims)
    assert post_remittance(client, ndjson, "application/fhir+ndjson").status_code == 200
    to_appeal, to_write_off, to_correct = claims

    appealed = client.post(
        f"{API}/claims/{to_appeal['id']}/appeal",
        json={"reason": "diagnosis was on the record"},
        headers=FINANCE,
    )
    written_off = client.post(
        f"{API}/claims/{to_write_off['id']}/write-off",
        json={"reason": "not worth pursuing"},
        headers=FINANCE,
    )
    corrected = client.post(
        f"{API}/claims/{to_correct['id']}/resubmit",
        json={
            "reason": "added the principal diagnosis",
            "diagnoses": ["E11.9"],
            "line_updates": {"1": {"modifiers": ["25"]}},
        },
        headers=FINANCE,
    )

    assert appealed.status_code == 200 and appealed.json()["billing_status"] == "appealed"
    assert written_off.status_code == 200 and written_off.json()["billing_status"] == "written-off"
    assert corrected.status_code == 201, corrected.text
    new = corrected.json()
    assert (new["billing_status"], new["related_claim_id"]) == ("submitted", to_correct["id"])
    assert [(line["code"], line["modifiers"]) for line in new["lines"]] == [(CHECKUP, ["25"])]
    assert (
        new["id"] != to_correct["id"]
        and new["patient_control_number"] == to_correct["patient_control_number"]
    )
    original = client.get(f"{API}/claims/{to_correct['id']}", headers=FINANCE).json()
    assert original["billing_status"] == "resubmitted"
    history = client.get(f"{API}/claims/{to_write_off['id']}/history", headers=FINANCE).json()[
        "data"
    ]
    assert (history[-1]["to_status"], history[-1]["reason"], history[-1]["role"]) == (
        "written-off",
        "not worth pursuing",
        "finance",
    )
    write_off = client.get(f"{API}/accounts/denial_write_off", headers=FINANCE).json()
    assert write_off["balance"] == "125.00"
    again = client.post(
        f"{API}/claims/{to_write_off['id']}/write-off", json={"reason": "again"}, headers=FINANCE
    )
    assert (again.status_code, again.json()["code"]) == (409, "conflict")
    assert client.get(f"{API}/ledger/trial-balance", headers=FINANCE).json()["balanced"] is True


# --------------------------------------------------------------------------- ledger, A/R, report


def test_trial_balance_balances_after_the_revenue_cycle(client: TestClient, record: Record) -> None:
    claim = submitted(client, record.clean[0])
    post_remittance(client, claim_response(claim, paid()))

    response = client.get(f"{API}/ledger/trial-balance", headers=FINANCE)
    earlier = client.get(
        f"{API}/ledger/trial-balance", params={"as_of": "2000-01-01"}, headers=FINANCE
    )

    assert response.status_code == 200
    body = response.json()
    assert body["balanced"] is True and body["unbalanced_entries"] == []
    assert body["debits"] == body["credits"]
    assert Decimal(body["debits"]) > 0 and body["entries"] >= 6
    assert body["by_currency"]["USD"] == {
        "debits": body["debits"],
        "credits": body["credits"],
        "balanced": True,
    }
    assert earlier.json()["entries"] == 0 and earlier.json()["debits"] == "0.00"
    assert earlier.json()["as_of"] == "2000-01-01T23:59:59.999999Z"


def test_accounts_list_and_bad_ids(client: TestClient, record: Record) -> None:
    submitted(client, record.clean[0])

    listed = client.get(f"{API}/accounts", headers=FINANCE).json()
    payers = client.get(f"{API}/accounts", params={"kind": "payer_ar"}, headers=FINANCE).json()
    not_an_account = client.get(f"{API}/accounts/nonsense", headers=FINANCE)
    unused = client.get(f"{API}/accounts/payer_ar:payer-medicare", headers=FINANCE)
    bad_kind = client.get(f"{API}/accounts", params={"kind": "savings"}, headers=FINANCE)

    balances = {a["id"]: a["balance"] for a in listed["data"]}
    assert balances["revenue"] == "1400.00"  # four check-ups and a colonoscopy charged
    assert balances[f"payer_ar:{PAYER}"] == "125.00"
    assert balances["unbilled_ar"] == "1275.00"
    assert [a["id"] for a in payers["data"]] == [f"payer_ar:{PAYER}"] and payers["count"] == 1
    assert (not_an_account.status_code, not_an_account.json()["code"]) == (422, "invalid-input")
    assert (unused.status_code, unused.json()["code"]) == (404, "not-found")
    assert bad_kind.status_code == 422


def test_ar_aging_by_payer_and_patient(client: TestClient, record: Record) -> None:
    claim = submitted(client, record.clean[0])
    post_remittance(client, claim_response(claim, denied()))  # 125.00 stays open with the payer

    by_payer = client.get(f"{API}/billing/ar-aging", headers=FINANCE)
    later = client.get(
        f"{API}/billing/ar-aging",
        params={"as_of": str(record.now.date() + dt.timedelta(days=60))},
        headers=FINANCE,
    )
    by_patient = client.get(f"{API}/billing/ar-aging", params={"by": "patient"}, headers=FINANCE)
    naive = client.get(
        f"{API}/billing/ar-aging", params={"as_of": "2025-01-01T10:00:00"}, headers=FINANCE
    )

    assert by_payer.status_code == 200
    body = by_payer.json()
    assert (body["by"], body["buckets"], body["as_of"]) == (
        "payer",
        BUCKETS,
        str(record.now.date()),
    )
    assert body["rows"] == [
        {
            "payer_id": PAYER,
            "patient_id": None,
            "currency": "USD",
            "buckets": {
                "0-30": "125.00",
                "31-60": "0.00",
                "61-90": "0.00",
                "91-120": "0.00",
                "120+": "0.00",
            },
            "total": "125.00",
        }
    ]
    assert body["totals"]["USD"]["total"] == "125.00"
    assert later.json()["rows"][0]["buckets"]["61-90"] == "125.00"
    assert by_patient.json()["by"] == "patient"
    assert (naive.status_code, naive.json()["code"]) == (422, "invalid-request")


def test_billing_report_totals_and_ledger_check(client: TestClient, record: Record) -> None:
    paid_claim, denied_claim = (submitted(client, e) for e in record.clean[:2])
    post_remittance(client, claim_response(paid_claim, paid()))
    post_remittance(client, claim_response(denied_claim, denied()))

    response = client.get(f"{API}/billing/report", headers=auth("admin"))

    assert response.status_code == 200
    report = response.json()
    assert (report["currency"], report["charges"], report["claimed"]) == (
        "USD",
        "1400.00",
        "250.00",
    )
    assert (report["paid"], report["adjusted"], report["denied"], report["written_off"]) == (
        "52.50",
        "47.50",
        "125.00",
        "0.00",
    )
    assert set(report["ar_by_bucket"]) == set(BUCKETS)
    assert report["ar_by_bucket"]["0-30"] == "125.00"
    assert report["initial_denial_rate_by_payer"][PAYER] == {
        "payer": PAYER,
        "claims": 2,
        "denied": 1,
        "rate": "0.5000",
    }
    assert report["ledger"]["balanced"] is True
    assert report["ledger"]["debits"] == report["ledger"]["credits"]
    for key in ("charges", "claimed", "paid", "adjusted", "denied", "written_off"):
        assert isinstance(report[key], str) and Decimal(report[key]) == Decimal(
            report[key]
        ).quantize(Decimal("0.01"))


# --------------------------------------------------------------------------- patient accounts


def test_invoice_payment_statement_and_refund(client: TestClient, record: Record) -> None:
    claim = submitted(client, record.clean[0])
    post_remittance(client, claim_response(claim, paid()))  # the patient owes the 25.00 copay
    patient = f"{API}/patients/{record.patient_id}"

    invoice = client.post(f"{patient}/invoices", headers=FINANCE)
    nothing_more = client.post(f"{patient}/invoices", json={}, headers=FINANCE)
    assert invoice.status_code == 201, invoice.text
    assert (invoice.json()["total"], invoice.json()["currency"], invoice.json()["status"]) == (
        "25.00",
        "USD",
        "issued",
    )
    assert [line["amount"] for line in invoice.json()["lines"]] == ["25.00"]
    assert (nothing_more.status_code, nothing_more.json()["code"]) == (409, "conflict")

    payment = {"amount": "35.00", "reference": "PaymentReconciliation/rcpt-0001"}
    paid_once = client.post(f"{patient}/payments", json=payment, headers=FINANCE)
    paid_twice = client.post(f"{patient}/payments", json=payment, headers=FINANCE)
    assert paid_once.status_code == 201, paid_once.text
    entry = paid_once.json()
    assert (entry["kind"], entry["source_ref"], entry["created_by"]) == (
        "patient_payment",
        "PaymentReconciliation/rcpt-0001",
        token_subject(token_of("finance")),
    )
    assert {(p["account_id"], p["debit"], p["credit"]) for p in entry["postings"]} == {
        ("cash", "35.00", "0.00"),
        (f"patient_ar:{record.patient_id}", "0.00", "35.00"),
    }
    assert paid_twice.json()["id"] == entry["id"]  # the same reference books once

    statement = client.get(f"{patient}/statement", headers=auth("admin"))
    assert statement.status_code == 200
    body = statement.json()
    assert (body["balance_due"], body["credit_balance"], body["currency"]) == (
        "0.00",
        "10.00",  # overpaid: a credit balance, never a negative balance due
        "USD",
    )
    assert [(line["charges"], line["credits"], line["balance"]) for line in body["lines"]] == [
        ("25.00", "0.00", "25.00"),
        ("0.00", "35.00", "-10.00"),
    ]
    assert [i["total"] for i in body["invoices"]] == ["25.00"]

    too_much = client.post(f"{patient}/refunds", json={"amount": "20.00"}, headers=FINANCE)
    refund = client.post(f"{patient}/refunds", json={"amount": "10.00"}, headers=FINANCE)
    assert (too_much.status_code, too_much.json()["code"]) == (422, "invalid-input")
    assert refund.status_code == 201 and refund.json()["kind"] == "refund"
    after = client.get(f"{patient}/statement", headers=FINANCE).json()
    assert (after["balance_due"], after["credit_balance"]) == ("0.00", "0.00")
    assert client.get(f"{API}/ledger/trial-balance", headers=FINANCE).json()["balanced"] is True


def test_patient_account_errors(client: TestClient, record: Record) -> None:
    unknown = client.get(f"{API}/patients/nobody/statement", headers=FINANCE)
    pay_unknown = client.post(
        f"{API}/patients/nobody/payments", json={"amount": "5.00"}, headers=FINANCE
    )
    negative = client.post(
        f"{API}/patients/{record.patient_id}/payments", json={"amount": "-5"}, headers=FINANCE
    )
    fractions = client.post(
        f"{API}/patients/{record.patient_id}/payments", json={"amount": "5.001"}, headers=FINANCE
    )
    bad_reference = client.post(
        f"{API}/patients/{record.patient_id}/payments",
        json={"amount": "5", "reference": "receipt 1"},
        headers=FINANCE,
    )

    assert (unknown.status_code, pay_unknown.status_code) == (404, 404)
    assert [r.status_code for r in (negative, fractions, bad_reference)] == [422, 422, 422]
    assert all(r.json()["code"] == "invalid-request" for r in (negative, fractions, bad_reference))


# --------------------------------------------------------------------------- a real slice


def test_real_synthea_rcm_remittances_post_through_the_api(
    client: TestClient,
    shared_data: Path,
    tmp_path: Path,
    session_factory: sessionmaker[Session],
    engine: Engine,
) -> None:
    rcm = make_rcm_slice(shared_data, tmp_path, patients=2)
    assert import_paths(session_factory, rcm.in_order()[:-1]).rejected == []  # not the answers
    text = rcm.claim_responses.read_text(encoding="utf-8")
    responses = [json.loads(line) for line in text.splitlines() if line.strip()]
    paid_total = sum(
        (Decimal(str(r["payment"]["amount"]["value"])) for r in responses if r.get("payment")),
        Decimal("0"),
    )

    posted = post_remittance(client, text, "application/fhir+ndjson")

    assert posted.status_code == 200, posted.text
    body = posted.json()
    assert body["responses"] == body["created"] == len(responses) > 0
    assert {c["claim_response_id"] for c in body["claims"]} == {r["id"] for r in responses}
    assert "submitted" not in {c["billing_status"] for c in body["claims"]}
    report = client.get(f"{API}/billing/report", headers=FINANCE).json()
    assert Decimal(report["paid"]) == paid_total
    assert report["ledger"]["balanced"] is True
    assert report["ledger"]["debits"] == report["ledger"]["credits"]
    # Posting the same file again changes nothing.
    before = table_counts(engine)
    again = post_remittance(client, text, "application/x-ndjson")
    assert (again.status_code, again.json()["created"]) == (200, 0)
    assert table_counts(engine) == before
