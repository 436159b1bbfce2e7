"""Minimum necessary (issue 9 item 7): each role sees the patient data its work needs.

Table-driven: every role × {list, detail} of patients and encounters, asserting exactly
which identifier systems and fields appear (the policy is
:mod:`healthos_core.access`; ``docs/access.md``). Every test runs on SQLite and on
PostgreSQL (the ``engine`` fixture).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.access import IdentifierCategory, identifier_category, visible_identifier
from healthos_core.db import session_scope
from healthos_core.record.entities import Encounter, Observation, Patient, PatientIdentifier
from healthos_core.settings import Settings
from serving.main import create_app

TOKENS = {
    "tok-clinician-0001": "clinician",
    "tok-nurse-0001": "nurse",
    "tok-finance-0001": "finance",
    "tok-operations-01": "operations",
    "tok-leadership-01": "leadership",
    "tok-admin-0001": "admin",
    "tok-datasci-0001": "data_scientist",
    "tok-patient-0001": "patient",
}
SETTINGS = Settings(environment="test", api_tokens=TOKENS)  # type: ignore[arg-type]
T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)

# The identifier systems of the Synthea sample (healthos_core/data/sample/synthea), plus a
# payer member id, a national health number and an unclassified national id.
SYNTHEA = "https://github.com/synthetichealth/synthea"
MRN = "http://hospital.smarthealthit.org"
SSN = "http://hl7.org/fhir/sid/us-ssn"
DL = "urn:oid:2.16.840.1.113883.4.3.25"
PASSPORT = "http://standardhealthrecord.org/fhir/StructureDefinition/passportNumber"
MEMBER = "http://payer.example/member-id"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
AADHAAR = "https://uidai.gov.in/aadhaar"
#: system → (value, v2-0203 type code as Synthea writes it)
IDENTIFIERS: dict[str, tuple[str, str | None]] = {
    SYNTHEA: ("0f3a", None),
    MRN: ("MRN-0001", "MR"),
    SSN: ("999-12-3456", "SS"),
    DL: ("S99912345", "DL"),
    PASSPORT: ("X12345678X", "PPN"),
    MEMBER: ("MBR-777", "MB"),
    NHS: ("943 476 5919", None),
    AADHAAR: ("9999 8888 7777", None),
}
DEMOGRAPHICS = ("gender", "birth_date", "deceased_at")

#: role → (identifier systems shown, demographics shown); ``None``: the role gets 403.
PATIENT_VIEW: dict[str, tuple[set[str], bool] | None] = {
    "clinician": ({MRN, NHS}, True),
    "nurse": ({MRN, NHS}, True),
    "finance": ({MRN, MEMBER}, True),
    "operations": ({MRN}, False),
    "admin": ({MRN}, False),
    "leadership": None,
    "data_scientist": None,
    "patient": None,
}
#: role → (reason_code shown, observations shown); ``None``: the role gets 403.
ENCOUNTER_VIEW: dict[str, tuple[bool, bool] | None] = {
    "clinician": (True, True),
    "nurse": (True, True),
    "finance": (True, False),
    "operations": (False, False),
    "admin": (False, False),
    "leadership": None,
    "data_scientist": None,
    "patient": None,
}


def auth(role: str) -> dict[str, str]:
    token = next(t for t, r in TOKENS.items() if r == role)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(engine: Engine, session_factory: sessionmaker[Session]) -> Iterator[TestClient]:
    with session_scope(session_factory) as session:
        session.add(
            Patient(
                id="pat-1",
                family="Okafor",
                given="Ada",
                gender="female",
                birth_date=dt.date(1950, 1, 2),
                identifiers=[
                    PatientIdentifier(system=system, value=value, type_code=type_code)
                    for system, (value, type_code) in IDENTIFIERS.items()
                ],
            )
        )
        session.flush()
        session.add(
            Encounter(
                id="enc-1",
                patient_id="pat-1",
                status="in-progress",
                class_code="IMP",
                period_start=T0,
                reason_code="10509002",
            )
        )
        session.flush()
        session.add(
            Observation(
                id="obs-1",
                patient_id="pat-1",
                encounter_id="enc-1",
                code="9279-1",
                category="vital-signs",
                value=24.0,
                unit="/min",
                effective_at=T0,
            )
        )
    with TestClient(create_app(SETTINGS, engine=engine)) as test_client:
        yield test_client


def get(client: TestClient, role: str, path: str, **params: str) -> Any:
    return client.get(f"/api/v1{path}", params=params, headers=auth(role))


@pytest.mark.parametrize("route", ["list", "detail"])
@pytest.mark.parametrize("role", sorted(PATIENT_VIEW))
def test_patients_show_each_role_only_the_identifiers_its_work_needs(
    client: TestClient, role: str, route: str
) -> None:
    response = (
        get(client, role, "/patients") if route == "list" else get(client, role, "/patients/pat-1")
    )
    view = PATIENT_VIEW[role]

    if view is None:
        assert (response.status_code, response.json()["code"]) == (403, "forbidden")
        assert role in response.json()["detail"]
        return
    assert response.status_code == 200
    body = response.json()
    patient = body["data"][0] if route == "list" else body
    systems, demographics = view
    assert {i["system"] for i in patient["identifiers"]} == systems
    for identifier in patient["identifiers"]:
        assert identifier["value"] == IDENTIFIERS[identifier["system"]][0]
    assert (patient["id"], patient["name"]) == ("pat-1", "Ada Okafor")
    shown = {field: patient[field] for field in DEMOGRAPHICS}
    if demographics:
        assert shown == {"gender": "female", "birth_date": "1950-01-02", "deceased_at": None}
    else:
        assert shown == dict.fromkeys(DEMOGRAPHICS)
    for hidden, (value, _) in IDENTIFIERS.items():
        if hidden not in systems:
            assert value not in response.text, hidden


@pytest.mark.parametrize("role", [r for r, view in PATIENT_VIEW.items() if view is not None])
def test_patient_list_and_detail_agree(client: TestClient, role: str) -> None:
    listed = get(client, role, "/patients").json()["data"][0]
    read = get(client, role, "/patients/pat-1").json()

    assert listed == read


@pytest.mark.parametrize("role", [r for r, view in PATIENT_VIEW.items() if view is not None])
@pytest.mark.parametrize("system", sorted(IDENTIFIERS))
def test_identifier_search_uses_only_identifiers_the_role_may_see(
    client: TestClient, role: str, system: str
) -> None:
    """A search by an identifier the role may not see must not confirm it (no oracle)."""
    value = IDENTIFIERS[system][0]
    view = PATIENT_VIEW[role]
    assert view is not None
    expected = ["pat-1"] if system in view[0] else []

    for identifier in (f"{system}|{value}", value, f"{system}|"):
        response = get(client, role, "/patients", identifier=identifier)

        assert response.status_code == 200
        assert [p["id"] for p in response.json()["data"]] == expected, identifier
        assert response.json()["count"] == len(expected)


@pytest.mark.parametrize("route", ["list", "detail"])
@pytest.mark.parametrize("role", sorted(ENCOUNTER_VIEW))
def test_encounters_list_and_detail_allow_the_same_roles_and_fields(
    client: TestClient, role: str, route: str
) -> None:
    response = (
        get(client, role, "/encounters")
        if route == "list"
        else get(client, role, "/encounters/enc-1")
    )
    view = ENCOUNTER_VIEW[role]

    if view is None:
        assert (response.status_code, response.json()["code"]) == (403, "forbidden")
        return
    assert response.status_code == 200
    encounter = response.json()["data"][0] if route == "list" else response.json()
    reason, observations = view
    assert (encounter["id"], encounter["patient_id"], encounter["class_code"]) == (
        "enc-1",
        "pat-1",
        "IMP",
    )
    assert encounter["reason_code"] == ("10509002" if reason else None)
    if route == "detail":
        if observations:
            assert [o["id"] for o in encounter["observations"]] == ["obs-1"]
        else:
            assert encounter["observations"] is None
    else:
        assert "observations" not in encounter


@pytest.mark.parametrize("role", [r for r, view in ENCOUNTER_VIEW.items() if view is not None])
def test_encounter_list_and_detail_agree(client: TestClient, role: str) -> None:
    listed = get(client, role, "/encounters").json()["data"][0]
    read = get(client, role, "/encounters/enc-1").json()

    assert {k: v for k, v in read.items() if k != "observations"} == listed


@pytest.mark.parametrize(
    ("system", "type_code", "category"),
    [
        (MRN, "MR", IdentifierCategory.RECORD),
        ("http://hospital.example/mrn", "MR", IdentifierCategory.RECORD),
        (SSN, None, IdentifierCategory.GOVERNMENT),
        (SSN, "MR", IdentifierCategory.GOVERNMENT),  # a government system is never relabelled
        (MRN, "SS", IdentifierCategory.GOVERNMENT),
        (DL, None, IdentifierCategory.GOVERNMENT),
        ("urn:oid:2.16.840.1.113883.4.3.6", "DL", IdentifierCategory.GOVERNMENT),
        (PASSPORT, "PPN", IdentifierCategory.GOVERNMENT),
        (MEMBER, "MB", IdentifierCategory.INSURANCE),
        (NHS, None, IdentifierCategory.HEALTH),
        (SYNTHEA, None, IdentifierCategory.OTHER),
        (AADHAAR, None, IdentifierCategory.OTHER),
        ("", None, IdentifierCategory.OTHER),
    ],
)
def test_identifier_categories_in_python_and_sql_agree(
    session: Session, system: str, type_code: str | None, category: IdentifierCategory
) -> None:
    """The search (SQL) and the response filter (Python) must classify alike."""
    session.add(Patient(id="p", identifiers=[]))
    session.flush()
    session.add(PatientIdentifier(patient_id="p", system=system, value="v", type_code=type_code))
    session.flush()

    assert identifier_category(system, type_code) is category
    for categories in (frozenset(IdentifierCategory), frozenset({category}), frozenset()):
        found = session.scalar(select(PatientIdentifier.id).where(visible_identifier(categories)))
        assert (found is not None) == (category in categories), categories
