"""CDS Hooks 2.0 at /cds-services: discovery, the three services, feedback, the spec's examples.

Every test runs on SQLite and on PostgreSQL (the ``engine`` fixture). The specification's
example messages are read in place from ``../shared/data/cds-hooks-2.0/examples``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.advisory import SuggestionAction, SuggestionRecord, save_suggestions
from healthos_core.billing.entities import ChargeItem
from healthos_core.billing.payers import Contract, PriorAuthorization, ServiceCode
from healthos_core.db import session_scope, utcnow
from healthos_core.record.entities import Coverage
from healthos_core.settings import Settings
from reasoning.cds.cards import card_uuid, suggestion_id_of
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion
from serving.deps import token_subject
from serving.main import create_app
from serving.schemas.cds_hooks import (
    ActionPublic,
    CardPublic,
    CdsResponsePublic,
    CdsServicesPublic,
    FeedbackCreate,
)
from tests.conftest import SHARED_DATA
from tests.factories import (
    SNOMED,
    make_condition,
    make_encounter,
    make_medication_request,
    make_organization,
    make_patient,
)

EXAMPLES = SHARED_DATA / "cds-hooks-2.0" / "examples"
TOKENS = {
    "tok-clinician-0001": "clinician",
    "tok-finance-0001": "finance",
    "tok-datasci-0001": "data_scientist",
    "tok-admin-0001": "admin",
}
SETTINGS = Settings(environment="test", api_tokens=TOKENS)  # type: ignore[arg-type]
PROBLEM = "application/problem+json"
PV, OS, ED = "healthos-patient-view", "healthos-order-sign", "healthos-encounter-discharge"
SPEC_PATIENT = "1288992"  # the patient of the specification's examples
MRI = "241615005"  # SNOMED CT "Magnetic resonance imaging of knee" (synthetic use)


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {next(t for t, r in TOKENS.items() if r == role)}"}


def example(name: str) -> dict[str, Any]:
    """A specification example by its number (``"18"`` → ``18-feedback-accepted.json``)."""
    (path,) = EXAMPLES.glob(f"{name}-*.json")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def news2(patient_id: str, encounter_id: str, **overrides: Any) -> Suggestion:
    fields: dict[str, Any] = {
        "kind": "clinical.news2",
        "audience": Audience.CLINICIAN,
        "severity": Severity.CRITICAL,
        "subject": f"Encounter/{encounter_id}",
        "summary": "NEWS2 7 (high): RR 26/min, SpO2 91%",
        "explanation": Explanation(
            method="rule:news2",
            factors=(
                Factor(
                    name="resp_rate", value=26.0, contribution=3.0, unit="/min", text="RR 26/min"
                ),
                Factor(name="spo2", value=91.0, contribution=3.0, unit="%", text="SpO2 91%"),
            ),
            evidence=(f"Observation/{encounter_id}-rr", f"Observation/{encounter_id}-spo2"),
        ),
        "recommended_action": "Emergency response",
        "source": Source(name="news2", version="1.0.0", reference="RCP NEWS2 2017"),
        "score": 7.0,
        "band": "high",
        "patient_id": patient_id,
        "created_at": dt.datetime(2025, 3, 1, 8, tzinfo=dt.UTC),
    }
    fields.update(overrides)
    return Suggestion(**fields)


def pv_request(patient_id: str, **context: Any) -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": patient_id, **context},
    }


def draft(resource_type: str, rid: str, code: str, system: str = SNOMED) -> dict[str, Any]:
    concept = {"coding": [{"system": system, "code": code, "display": f"order {code}"}]}
    key = "medicationCodeableConcept" if resource_type == "MedicationRequest" else "code"
    return {
        "resource": {
            "resourceType": resource_type,
            "id": rid,
            "status": "draft",
            "intent": "order",
            key: concept,
        }
    }


def os_request(patient_id: str, *entries: dict[str, Any], **context: Any) -> dict[str, Any]:
    return {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "userId": "Practitioner/example",
            "patientId": patient_id,
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": list(entries)},
            **context,
        },
    }


@pytest.fixture
def record(session_factory: sessionmaker[Session]) -> dict[str, str]:
    """The spec's patient 1288992 with encounter 89284, two stored suggestions and a payer."""
    with session_scope(session_factory) as session:
        patient = make_patient(session, id=SPEC_PATIENT)
        make_encounter(session, patient=patient, id="89284", class_code="IMP")
        make_encounter(session, patient=patient, id="456", class_code="AMB")
        make_organization(session, id="payer-1", name="Acme Health", type_code="pay")
        save_suggestions(
            session,
            [
                news2(SPEC_PATIENT, "89284"),
                news2(
                    SPEC_PATIENT,
                    "456",
                    severity=Severity.WARNING,
                    score=5.0,
                    band="medium",
                    summary="NEWS2 5 (medium)",
                ),
                news2(
                    SPEC_PATIENT,
                    "89284",
                    kind="finance.denial_risk",
                    audience=Audience.FINANCE,
                    summary="Denial risk 0.6",
                ),
            ],
        )
    return {"patient": SPEC_PATIENT, "encounter": "89284"}


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(SETTINGS, engine=engine)) as test_client:
        yield test_client


def suggestion(engine: Engine, sid: str) -> SuggestionRecord:
    with Session(engine) as session:
        found = session.get(SuggestionRecord, sid)
        assert found is not None
        session.expunge(found)
        return found


def actions(engine: Engine, sid: str) -> list[SuggestionAction]:
    with Session(engine) as session:
        rows = list(
            session.scalars(
                select(SuggestionAction)
                .where(SuggestionAction.suggestion_id == sid)
                .order_by(SuggestionAction.id)
            )
        )
        for row in rows:
            session.expunge(row)
        return rows


# --- discovery --------------------------------------------------------------------------


def test_discovery_lists_three_services_with_prefetch_templates(client: TestClient) -> None:
    response = client.get("/cds-services")  # unauthenticated, as is the practice
    assert response.status_code == 200
    services = {s["id"]: s for s in response.json()["services"]}
    assert {s["hook"] for s in services.values()} == {
        "patient-view",
        "order-sign",
        "encounter-discharge",
    }
    assert services[PV]["prefetch"] == {"patient": "Patient/{{context.patientId}}"}
    assert services[OS]["prefetch"]["coverage"] == (
        "Coverage?patient={{context.patientId}}&status=active"
    )
    assert services[ED]["prefetch"]["encounter"] == "Encounter/{{context.encounterId}}"
    assert all(s["title"] and s["description"] for s in services.values())


@pytest.mark.parametrize("name", ["00", "26"])
def test_spec_discovery_examples_read_as_our_discovery_shape(name: str) -> None:
    text = json.dumps(example(name)).replace("{% raw  %}{{{% endraw  %}", "{{")
    services = CdsServicesPublic.model_validate_json(text).services
    assert services and all(s.hook and s.id for s in services)
    assert all("{%" not in v for s in services for v in s.prefetch.values())


@pytest.mark.parametrize("name", ["02", "06"])
def test_spec_prefetch_templates_use_our_token_syntax(name: str) -> None:
    templates = example(name)["prefetch"]
    assert all(
        "context.patientId}}" in t or "userPractitionerRoleId}}" in t for t in templates.values()
    )


# --- patient-view -----------------------------------------------------------------------


def test_patient_view_returns_open_clinical_suggestions_as_cards(
    client: TestClient, record: dict[str, str], engine: Engine
) -> None:
    response = client.post(
        f"/cds-services/{PV}", json=pv_request(SPEC_PATIENT), headers=auth("clinician")
    )
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    assert [c["indicator"] for c in cards] == ["critical", "warning"]  # most urgent first
    card = cards[0]
    sid = news2(SPEC_PATIENT, "89284").id
    assert card["uuid"] == card_uuid(sid) and suggestion_id_of(card["uuid"]) == sid
    assert len(card["summary"]) <= 140
    assert card["source"]["label"] == "HealthOS news2 1.0.0"
    assert card["source"]["url"] == "http://testserver/cds-services/sources/rule/news2"
    assert "| RR 26/min | 26.0 /min | +3 |" in card["detail"]
    assert "`Observation/89284-rr`" in card["detail"]
    assert "Emergency response" in card["detail"]
    assert {r["code"] for r in card["overrideReasons"]} >= {"not-applicable", "patient-declined"}
    CdsResponsePublic.model_validate(response.json())
    # The finance suggestion is not a clinical card; the encounter narrows the list.
    narrowed = client.post(
        f"/cds-services/{PV}",
        json=pv_request(SPEC_PATIENT, encounterId="456"),
        headers=auth("clinician"),
    )
    assert [c["summary"] for c in narrowed.json()["cards"]] == ["NEWS2 5 (medium)"]


def test_patient_view_spec_request_example(
    client: TestClient, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    body = example("01")  # prefetch key 'patientToGreet' is another service's
    response = client.post(f"/cds-services/{PV}", json=body, headers=auth("clinician"))
    assert response.status_code == 412
    assert response.headers["content-type"] == PROBLEM
    assert "Patient/1288992 is neither in the prefetch ('patient')" in response.json()["detail"]
    # Sent under our key, the prefetch is used: the patient is not in the record, no cards.
    renamed = copy.deepcopy(body)
    renamed["prefetch"] = {"patient": body["prefetch"]["patientToGreet"]}
    assert client.post(f"/cds-services/{PV}", json=renamed, headers=auth("clinician")).json() == {
        "cards": []
    }
    # With the patient in the record, the same request answers its cards.
    with session_scope(session_factory) as session:
        make_patient(session, id=SPEC_PATIENT)
        make_encounter(session, patient_id=SPEC_PATIENT, id="89284")
        save_suggestions(session, [news2(SPEC_PATIENT, "89284")])
    answered = client.post(f"/cds-services/{PV}", json=body, headers=auth("clinician"))
    assert answered.status_code == 200
    assert [c["uuid"] for c in answered.json()["cards"]] == [
        card_uuid(news2(SPEC_PATIENT, "89284").id)
    ]


def test_spec_request_fragments_complete_a_patient_view_call(
    client: TestClient, record: dict[str, str]
) -> None:
    # 03: context {"patientId": "123"}: unknown to the record and not prefetched → 412.
    body = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()), **example("03")}
    assert (
        client.post(f"/cds-services/{PV}", json=body, headers=auth("clinician")).status_code == 412
    )
    # 07: prefetched resources (a Patient without id, a searchset, a string): used.
    body["prefetch"] = example("07")["prefetch"]
    assert client.post(f"/cds-services/{PV}", json=body, headers=auth("clinician")).json() == {
        "cards": []
    }
    # 08: fhirAuthorization is accepted (HealthOS reads its own record).
    full = {**pv_request(SPEC_PATIENT), **example("08"), "fhirServer": "http://ehr.example"}
    response = client.post(f"/cds-services/{PV}", json=full, headers=auth("clinician"))
    assert response.status_code == 200 and len(response.json()["cards"]) == 2


def test_spec_request_with_extension_and_no_patient_is_422(client: TestClient) -> None:
    response = client.post(f"/cds-services/{PV}", json=example("25"), headers=auth("clinician"))
    assert response.status_code == 422
    assert response.json()["detail"] == "context.patientId is required by this hook"


# --- order-sign -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["04", "05"])
def test_spec_order_sign_contexts(
    client: TestClient,
    record: dict[str, str],
    engine: Engine,
    name: str,
    session_factory: sessionmaker[Session],
) -> None:
    body = {"hook": "order-sign", "hookInstance": str(uuid.uuid4()), **example(name)}
    missing = client.post(f"/cds-services/{OS}", json=body, headers=auth("clinician"))
    assert missing.status_code == 422  # the examples' context has no patientId
    assert missing.json()["detail"] == "context.patientId is required by this hook"
    # Amoxicillin was ordered for the patient a week ago: the draft repeats it.
    with session_scope(session_factory) as session:
        make_medication_request(
            session,
            patient_id=SPEC_PATIENT,
            id="mr-old",
            code="617993",
            display="Amoxicillin",
            authored_on=utcnow() - dt.timedelta(days=7),
        )
    body["context"]["patientId"] = SPEC_PATIENT
    response = client.post(f"/cds-services/{OS}", json=body, headers=auth("clinician"))
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    kinds = [c["source"]["topic"]["code"] for c in cards]
    assert kinds == ["cds.claim_denial_risk", "cds.duplicate_order"]
    denial, duplicate = cards
    assert denial["indicator"] == "critical"  # no coverage on file: CARC 31
    assert "CARC 31, 18, 16" in denial["summary"]
    assert duplicate["summary"].startswith("Possible duplicate:")
    assert "MedicationRequest/mr-old" in duplicate["detail"]
    (action,) = duplicate["suggestions"][0]["actions"]
    assert action == {
        "type": "delete",
        "description": action["description"],
        "resourceId": "MedicationRequest/123",
    }
    assert duplicate["selectionBehavior"] == "at-most-one"
    # The findings are stored suggestions, so feedback can reach them.
    assert (
        suggestion(engine, suggestion_id_of(duplicate["uuid"]) or "").kind == "cds.duplicate_order"
    )


def prior_auth_setup(session_factory: sessionmaker[Session], *, approved: bool = False) -> None:
    with session_scope(session_factory) as session:
        session.add(
            Coverage(
                id="cov-1",
                patient_id=SPEC_PATIENT,
                status="active",
                payor_id="payer-1",
                period_start=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
            )
        )
        session.add(
            Contract(
                payer_id="payer-1",
                payer_name="Acme Health",
                timely_filing_days=90,
                allowed_pct_amb=Decimal("0.8"),
                allowed_pct_emer=Decimal("0.8"),
                allowed_pct_imp=Decimal("0.8"),
                coinsurance_pct=Decimal("0.2"),
                copay_amb=Decimal(20),
                copay_emer=Decimal(50),
                copay_imp=Decimal(100),
                currency="USD",
                prior_auth_categories=["advanced_imaging"],
                prior_auth_exempt_classes=["EMER"],
            )
        )
        session.add(
            ServiceCode(
                code_system=SNOMED,
                code=MRI,
                display="MRI knee",
                service_category="advanced_imaging",
            )
        )
        make_condition(session, patient_id=SPEC_PATIENT, code="M25.561", encounter_id="456")
        if approved:
            now = utcnow()
            session.add(
                PriorAuthorization(
                    id="pa-1",
                    patient_id=SPEC_PATIENT,
                    payer_id="payer-1",
                    status="approved",
                    reference_number="AUTH-1",
                    service_codes=[],
                    service_categories=["advanced_imaging"],
                    valid_from=now.date() - dt.timedelta(days=1),
                    valid_to=now.date() + dt.timedelta(days=30),
                    requested_at=now,
                    requested_by="token:x",
                    decided_at=now,
                )
            )


def test_order_sign_prior_authorisation_missing(
    client: TestClient, record: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    prior_auth_setup(session_factory)
    body = os_request(SPEC_PATIENT, draft("ServiceRequest", "sr-1", MRI), encounterId="456")
    response = client.post(f"/cds-services/{OS}", json=body, headers=auth("clinician"))
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == [
        "cds.prior_authorization",
        "cds.claim_denial_risk",
    ]
    prior, denial = cards
    assert prior["summary"] == (
        "Prior authorisation needed: Acme Health requires it for advanced_imaging (order 241615005)"
    )
    assert prior["source"]["url"].endswith("/cds-services/sources/rule/prior_authorization")
    (action,) = prior["suggestions"][0]["actions"]
    assert action["type"] == "create"
    claim = action["resource"]
    assert claim["resourceType"] == "Claim" and claim["use"] == "preauthorization"
    assert claim["insurer"] == {"reference": "Organization/payer-1"}
    assert claim["insurance"][0]["coverage"] == {"reference": "Coverage/cov-1"}
    assert claim["item"][0]["productOrService"]["coding"][0]["code"] == MRI
    assert claim["provider"] == {"reference": "Practitioner/example"}
    assert denial["indicator"] == "warning" and "(CARC 197)" in denial["summary"]


def test_order_sign_prior_authorisation_on_file_or_exempt(
    client: TestClient, record: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    prior_auth_setup(session_factory, approved=True)
    body = os_request(SPEC_PATIENT, draft("ServiceRequest", "sr-1", MRI), encounterId="456")
    response = client.post(f"/cds-services/{OS}", json=body, headers=auth("clinician"))
    assert response.json() == {"cards": []}


def test_order_sign_uses_prefetched_coverage(
    client: TestClient, record: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    prior_auth_setup(session_factory, approved=True)  # approved with payer-1 …
    with session_scope(session_factory) as session:
        make_organization(session, id="payer-2", name="Other Plan", type_code="pay")
        session.add(
            Contract(
                payer_id="payer-2",
                payer_name="Other Plan",
                timely_filing_days=90,
                allowed_pct_amb=Decimal("0.8"),
                allowed_pct_emer=Decimal("0.8"),
                allowed_pct_imp=Decimal("0.8"),
                coinsurance_pct=Decimal("0.2"),
                copay_amb=Decimal(20),
                copay_emer=Decimal(50),
                copay_imp=Decimal(100),
                currency="USD",
                prior_auth_categories=["advanced_imaging"],
                prior_auth_exempt_classes=[],
            )
        )
    body = os_request(SPEC_PATIENT, draft("ServiceRequest", "sr-1", MRI), encounterId="456")
    body["prefetch"] = {  # … but the EHR says the patient is now covered by payer-2
        "coverage": {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Coverage",
                        "id": "ehr-cov",
                        "status": "active",
                        "payor": [{"reference": "Organization/payer-2"}],
                    }
                }
            ],
        }
    }
    cards = client.post(f"/cds-services/{OS}", json=body, headers=auth("clinician")).json()["cards"]
    assert cards[0]["summary"].startswith("Prior authorisation needed: Other Plan")
    claim = cards[0]["suggestions"][0]["actions"][0]["resource"]
    assert claim["insurance"][0]["coverage"] == {"reference": "Coverage/ehr-cov"}


def test_order_sign_without_draft_orders_is_412(client: TestClient, record: dict[str, str]) -> None:
    body = os_request(SPEC_PATIENT)
    del body["context"]["draftOrders"]
    response = client.post(f"/cds-services/{OS}", json=body, headers=auth("clinician"))
    assert response.status_code == 412
    assert response.json()["code"] == "cds-prefetch-unavailable"
    assert "context.draftOrders" in response.json()["detail"]


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (
            lambda b: b["context"].update(draftOrders=[]),
            "context.draftOrders must be a FHIR Bundle",
        ),
        (lambda b: b["context"].update(patientId="a b"), "context.patientId must be a FHIR id"),
        (
            lambda b: b["context"]["draftOrders"]["entry"][0]["resource"]["code"]["coding"][
                0
            ].update(code="x\x00y"),
            "holds a NUL character",
        ),
        (
            lambda b: b["context"]["draftOrders"]["entry"][0]["resource"]["code"]["coding"][
                0
            ].update(display="\ud800"),
            "unpaired UTF-16 surrogate",
        ),
        (
            lambda b: b["context"]["draftOrders"]["entry"][0]["resource"].update(
                subject={"reference": "Patient/someone-else"}
            ),
            "names another patient",
        ),
        (
            lambda b: b.update(prefetch={"patient": {"resourceType": "Patient", "id": "other"}}),
            "but the context names Patient/1288992",
        ),
        (lambda b: b.update(hook="patient-view"), "is not this service's"),
    ],
)
def test_order_sign_malformed_input_is_422_naming_it(
    client: TestClient, record: dict[str, str], change: Any, detail: str
) -> None:
    body = os_request(SPEC_PATIENT, draft("ServiceRequest", "sr-1", MRI))
    change(body)
    response = client.post(
        f"/cds-services/{OS}",
        content=json.dumps(body),
        headers={**auth("clinician"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]


# --- encounter-discharge ----------------------------------------------------------------


def test_encounter_discharge_cards_by_role(
    client: TestClient, record: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    readmission = news2(
        SPEC_PATIENT,
        "89284",
        kind="clinical.readmission",
        severity=Severity.WARNING,
        summary="30-day readmission risk 0.31 (high)",
        score=0.31,
        explanation=Explanation(method="model:readmission@3", evidence=("Encounter/89284",)),
        source=Source(name="readmission", version="3"),
    )
    with session_scope(session_factory) as session:
        save_suggestions(session, [readmission])
        session.add(
            ChargeItem(
                id="ch-1",
                patient_id=SPEC_PATIENT,
                encounter_id="89284",
                status="billable",
                code_system=SNOMED,
                code="183452005",
                display="Admission",
                quantity=Decimal(1),
                unit_price=Decimal("1200.50"),
                total=Decimal("1200.50"),
                currency="USD",
            )
        )
    body = {
        "hook": "encounter-discharge",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/1", "patientId": SPEC_PATIENT, "encounterId": "89284"},
    }
    clinician = client.post(f"/cds-services/{ED}", json=body, headers=auth("clinician"))
    assert clinician.status_code == 200, clinician.text
    summaries = [c["summary"] for c in clinician.json()["cards"]]
    assert summaries == [
        "Document the diagnosis and discharge disposition before discharge: the claim cannot "
        "be coded without it (CARC 16)",
        "30-day readmission risk 0.31 (high)",
    ]
    readmission_card = clinician.json()["cards"][1]
    assert readmission_card["source"]["url"].endswith("/cds-services/sources/model/readmission")
    finance = client.post(f"/cds-services/{ED}", json=body, headers=auth("finance"))
    assert [c["summary"] for c in finance.json()["cards"]] == [
        "1 charge not on any claim: 1200.50 USD unbilled at discharge",
        "Denial risk 0.6",
    ]
    # The prefetched encounter and conditions are used instead of the record.
    body["prefetch"] = {
        "encounter": {
            "resourceType": "Encounter",
            "id": "89284",
            "class": {"code": "IMP"},
            "hospitalization": {"dischargeDisposition": {"text": "home"}},
        },
        "conditions": {
            "resourceType": "Bundle",
            "entry": [{"resource": {"resourceType": "Condition", "id": "c1"}}],
        },
    }
    prefetched = client.post(f"/cds-services/{ED}", json=body, headers=auth("clinician"))
    assert [c["summary"] for c in prefetched.json()["cards"]] == [
        "30-day readmission risk 0.31 (high)"
    ]


def test_encounter_discharge_unknown_encounter_is_412(
    client: TestClient, record: dict[str, str]
) -> None:
    body = {
        "hook": "encounter-discharge",
        "hookInstance": "i-1",
        "context": {"userId": "Practitioner/1", "patientId": SPEC_PATIENT, "encounterId": "nope"},
    }
    response = client.post(f"/cds-services/{ED}", json=body, headers=auth("clinician"))
    assert response.status_code == 412
    assert "Encounter/nope is neither in the prefetch ('encounter')" in response.json()["detail"]


# --- feedback ---------------------------------------------------------------------------


def test_feedback_round_trip_overridden_then_repeated(
    client: TestClient, record: dict[str, str], engine: Engine
) -> None:
    cards = client.post(
        f"/cds-services/{PV}", json=pv_request(SPEC_PATIENT), headers=auth("clinician")
    ).json()["cards"]
    card = cards[0]
    body = example("20")  # overridden, with a reason and a comment
    body["feedback"][0]["card"] = card["uuid"]
    body["feedback"][0]["overrideReason"]["reason"] = card["overrideReasons"][2]
    response = client.post(f"/cds-services/{PV}/feedback", json=body, headers=auth("clinician"))
    assert response.status_code == 200, response.text
    sid = suggestion_id_of(card["uuid"])
    assert response.json() == {
        "recorded": [
            {"card": card["uuid"], "suggestion_id": sid, "action": "dismiss", "status": "dismissed"}
        ]
    }
    stored = suggestion(engine, sid or "")
    assert stored.status == "dismissed"
    assert stored.status_by == token_subject("tok-clinician-0001")
    assert "Patient declined [tag:healthos.org,2025:cds-override-reason#patient-declined]" in (
        stored.status_reason or ""
    )
    assert "comment: A comment entered by the clinician." in (stored.status_reason or "")
    # The same feedback again: recorded as a note, the decision stands.
    again = client.post(f"/cds-services/{PV}/feedback", json=body, headers=auth("clinician"))
    assert again.json()["recorded"][0] == {
        "card": card["uuid"],
        "suggestion_id": sid,
        "action": "note",
        "status": "dismissed",
    }
    trail = actions(engine, sid or "")
    assert [(a.action, a.outcome, a.role) for a in trail] == [
        ("dismiss", "overridden", "clinician"),
        ("note", "overridden", "clinician"),
    ]
    # The dismissed suggestion is no longer a card.
    after = client.post(
        f"/cds-services/{PV}", json=pv_request(SPEC_PATIENT), headers=auth("clinician")
    )
    assert card["uuid"] not in [c["uuid"] for c in after.json()["cards"]]


def test_feedback_spec_examples(client: TestClient, record: dict[str, str], engine: Engine) -> None:
    cards = client.post(
        f"/cds-services/{PV}", json=pv_request(SPEC_PATIENT), headers=auth("clinician")
    ).json()["cards"]
    for name in ("18", "19", "20"):
        body = example(name)
        FeedbackCreate.model_validate(body)
        unknown = client.post(f"/cds-services/{PV}/feedback", json=body, headers=auth("clinician"))
        assert unknown.status_code == 404, name  # the spec's cards are not HealthOS's
        assert f"no card {body['feedback'][0]['card']!r}" in unknown.json()["detail"]
    accepted = example("18")
    accepted["feedback"][0]["card"] = cards[1]["uuid"]
    response = client.post(f"/cds-services/{PV}/feedback", json=accepted, headers=auth("clinician"))
    assert response.json()["recorded"][0]["action"] == "act"
    sid = suggestion_id_of(cards[1]["uuid"]) or ""
    assert suggestion(engine, sid).status == "acted"
    assert "suggestions: e56e1945-20b3-4393-8503-a1a20fd73152" in (
        suggestion(engine, sid).status_reason or ""
    )
    overridden = example("19")  # no reason given
    overridden["feedback"][0]["card"] = cards[0]["uuid"]
    response = client.post(
        f"/cds-services/{PV}/feedback", json=overridden, headers=auth("clinician")
    )
    assert response.json()["recorded"][0]["status"] == "dismissed"
    assert "no reason given" in (
        suggestion(engine, suggestion_id_of(cards[0]["uuid"]) or "").status_reason or ""
    )


def test_feedback_with_one_unknown_card_records_nothing(
    client: TestClient, record: dict[str, str], engine: Engine
) -> None:
    cards = client.post(
        f"/cds-services/{PV}", json=pv_request(SPEC_PATIENT), headers=auth("clinician")
    ).json()["cards"]
    body = {
        "feedback": [
            {
                "card": cards[0]["uuid"],
                "outcome": "accepted",
                "outcomeTimestamp": "2025-03-01T10:00:00Z",
            },
            {
                "card": "not-a-card",
                "outcome": "accepted",
                "outcomeTimestamp": "2025-03-01T10:00:00Z",
            },
        ]
    }
    response = client.post(f"/cds-services/{PV}/feedback", json=body, headers=auth("clinician"))
    assert response.status_code == 404
    assert suggestion(engine, suggestion_id_of(cards[0]["uuid"]) or "").status == "open"
    # A card of another service is not this service's.
    wrong = client.post(
        f"/cds-services/{OS}/feedback",
        json={"feedback": body["feedback"][:1]},
        headers=auth("clinician"),
    )
    assert wrong.status_code == 404
    # admin reads but acts on nothing.
    admin = client.post(
        f"/cds-services/{PV}/feedback",
        json={"feedback": body["feedback"][:1]},
        headers=auth("admin"),
    )
    assert admin.status_code == 403


# --- responses, auth, errors ------------------------------------------------------------


@pytest.mark.parametrize("name", ["09", "16"])
def test_spec_response_examples_match_our_response_schema(name: str) -> None:
    CdsResponsePublic.model_validate(example(name))


def test_spec_card_and_action_fragments_match_our_schemas() -> None:
    card = {"uuid": "u", "summary": "s", "indicator": "info", **example("10"), **example("14")}
    assert CardPublic.model_validate(card).source.topic is not None
    for name in ("11", "12", "13"):
        assert ActionPublic.model_validate(example(name)).type in {"create", "update", "delete"}


@pytest.mark.parametrize(("name", "missing"), [("15", "description"), ("17", "indicator")])
def test_spec_examples_known_defects_are_refused(name: str, missing: str) -> None:
    # The README: systemActions' action has no description, the autolaunch card no indicator.
    with pytest.raises(ValidationError) as raised:
        CdsResponsePublic.model_validate(example(name))
    assert {e["loc"][-1] for e in raised.value.errors()} == {missing}


@pytest.mark.parametrize("name", ["21", "22", "23", "24"])
def test_spec_jwt_examples_are_not_accepted_as_tokens(client: TestClient, name: str) -> None:
    # TODO(cds-jwt): JWTs signed by the EHR (ES384, its JWKS) are not accepted yet: 401.
    token = json.dumps(example(name))
    response = client.post(
        f"/cds-services/{PV}",
        json=pv_request(SPEC_PATIENT),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM


def test_service_calls_need_a_token_and_a_role(client: TestClient, record: dict[str, str]) -> None:
    body = pv_request(SPEC_PATIENT)
    assert client.post(f"/cds-services/{PV}", json=body).status_code == 401
    assert (
        client.post(f"/cds-services/{PV}", json=body, headers=auth("data_scientist")).status_code
        == 403
    )
    assert client.post(f"/cds-services/{PV}", json=body, headers=auth("finance")).status_code == 403
    unknown = client.post("/cds-services/nope", json=body, headers=auth("clinician"))
    assert unknown.status_code == 404 and unknown.headers["content-type"] == PROBLEM


def test_source_pages(client: TestClient) -> None:
    model = client.get("/cds-services/sources/model/readmission")
    assert model.status_code == 200 and model.headers["content-type"].startswith("text/markdown")
    assert "readmission" in model.text.lower()
    assert "Royal College of Physicians" in client.get("/cds-services/sources/rule/news2").text
    assert client.get("/cds-services/sources/model/nope").status_code == 404


def test_examples_folder_is_covered() -> None:
    numbers = sorted(p.name[:2] for p in Path(EXAMPLES).glob("*.json"))
    assert numbers == [f"{n:02d}" for n in range(27)]


@pytest.mark.parametrize(
    ("path", "raw", "status"),
    [
        (
            PV,
            '{"hook":"patient-view","hookInstance":"1","context":' + "[" * 5000 + "]" * 5000 + "}",
            400,  # deeper than the JSON parser recurses: FastAPI's "error parsing the body"
        ),
        (PV, '{"hook":', 422),
        (PV, '{"hook":"patient-view","hookInstance":"a\\u0000","context":{}}', 422),
        (PV, '{"hook":"patient-view","hookInstance":"1","context":[]}', 422),
        (
            PV,
            '{"hook":"patient-view","hookInstance":"1","context":{"patientId":"1288992"},'
            '"prefetch":{"patient":"x"}}',
            422,
        ),
        (
            OS,
            '{"hook":"order-sign","hookInstance":"1","context":{"patientId":"1288992",'
            '"userId":5,"draftOrders":{"resourceType":"Bundle","entry":[]}}}',
            422,
        ),
        (
            OS,
            '{"hook":"order-sign","hookInstance":"1","context":{"patientId":"1288992",'
            '"draftOrders":{"resourceType":"Bundle","entry":{}}}}',
            422,
        ),
        (
            ED,
            '{"hook":"encounter-discharge","hookInstance":"1","context":{"patientId":"1288992",'
            '"encounterId":"89284"},"prefetch":{"encounter":{"resourceType":"Encounter","id":"89284",'
            '"class":{"code":5}}}}',
            422,
        ),
        (
            f"{PV}/feedback",
            '{"feedback":[{"card":"x","outcome":"overridden","overrideReason":'
            '{"userComment":"a\\u0000"},"outcomeTimestamp":"2020-01-01T00:00:00Z"}]}',
            422,
        ),
        (
            f"{PV}/feedback",
            '{"feedback":[{"card":"x","outcome":"overridden","overrideReason":'
            '{"userComment":"\\ud800"},"outcomeTimestamp":"2020-01-01T00:00:00Z"}]}',
            422,
        ),
        (
            f"{PV}/feedback",
            '{"feedback":[{"card":"x","outcome":"accepted","outcomeTimestamp":0}]}',
            422,
        ),
        (f"{PV}/feedback", '{"feedback":[]}', 422),
    ],
)
def test_bad_input_is_a_problem_never_a_server_error(
    client: TestClient, record: dict[str, str], path: str, raw: str, status: int
) -> None:
    response = client.post(
        f"/cds-services/{path}",
        content=raw.encode(),
        headers={**auth("clinician"), "Content-Type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
