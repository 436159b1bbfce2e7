"""FHIR conformance with real clients against `healthos serve` (issue 10 item 3).

``healthos serve`` runs as a process on 127.0.0.1 (an ephemeral port), on SQLite and on
PostgreSQL; a small record is written through ``POST /fhir`` (a transaction), then:

* ``fhirclient`` (SMART on FHIR's Python client, strict R4 models) reads the
  CapabilityStatement, reads a Patient and pages through a search;
* ``fhirpy`` searches, counts (``count()``: ``_count=0``), limits (``_count``), follows
  the ``next`` links (``fetch_all``) and calls ``Patient/$everything``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from fhirclient import client as fhirclient_client
from fhirclient.models.observation import Observation as FcObservation
from fhirclient.models.patient import Patient as FcPatient
from fhirpy import SyncFHIRClient

from healthos_core.db import make_engine
from tests.conftest import BACKENDS, POSTGRES_URL, postgres_url_for_schema
from tests.serving.fhir_serve import healthos_serve
from tests.serving.test_fhir_api import encounter, observation, patient, transaction

ADMIN = {"Authorization": "Bearer dev-admin"}
CLINICIAN_TOKEN = "dev-clinician"


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``healthos serve`` on a fresh database holding p1 (2 encounters, 5 observations)."""
    folder = tmp_path_factory.mktemp("fhir-serve")
    schema = f"hos_fhirc_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'serve.db'}"
    else:
        url = postgres_url_for_schema(schema)
    try:
        with healthos_serve(url, folder) as base:
            resources = [patient(), encounter("e1"), encounter("e2", start="2024-06-01T08:00:00Z")]
            resources += [
                observation(f"o{i}", "e1" if i < 3 else "e2", when=f"2024-0{i + 1}-15T10:00:00Z")
                for i in range(5)
            ]
            loaded = httpx.post(
                f"{base}/fhir", json=transaction(*resources), headers=ADMIN, timeout=60
            )
            assert loaded.status_code == 200, loaded.text
            yield f"{base}/fhir"
    finally:
        if request.param == "postgresql":
            admin = make_engine(POSTGRES_URL)
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()


def _fhirclient(base: str) -> fhirclient_client.FHIRClient:
    smart = fhirclient_client.FHIRClient(settings={"app_id": "healthos-tests", "api_base": base})
    smart.server.session.headers["Authorization"] = f"Bearer {CLINICIAN_TOKEN}"
    return smart


def test_fhirclient_reads_the_capability_statement_with_its_strict_models(server: str) -> None:
    smart = _fhirclient(server)
    smart.prepare()  # GET /metadata, parsed by fhirclient's strict R4 CapabilityStatement
    statement = smart.server.capabilityStatement
    assert statement.fhirVersion == "4.0.1"
    types = {r.type for r in statement.rest[0].resource}
    assert {"Patient", "Encounter", "Observation", "Claim"} <= types


def test_fhirclient_reads_a_patient_and_pages_a_search(server: str) -> None:
    smart = _fhirclient(server)
    jane = FcPatient.read("p1", smart.server)
    assert jane.name[0].family == "Doe"
    assert jane.meta.versionId
    search = FcObservation.where(struct={"patient": "p1", "_count": "2", "_sort": "date"})
    pages = list(search.perform_iter(smart.server))
    assert [len(page.entry) for page in pages] == [2, 2, 1]
    assert {page.total for page in pages} == {5}
    ids = [entry.resource.id for page in pages for entry in page.entry]
    assert ids == ["o0", "o1", "o2", "o3", "o4"]


def test_fhirpy_searches_counts_pages_and_calls_everything(server: str) -> None:
    client = SyncFHIRClient(server, authorization=f"Bearer {CLINICIAN_TOKEN}")
    observations = client.resources("Observation").search(patient="p1")
    assert observations.count() == 5
    assert len(observations.limit(2).fetch()) == 2
    every = observations.limit(2).sort("date").fetch_all()
    assert [o["id"] for o in every] == ["o0", "o1", "o2", "o3", "o4"]
    assert [e["id"] for e in client.resources("Encounter").search(date="ge2024-05").fetch()] == [
        "e2"
    ]
    bundle = client.resource("Patient", id="p1").execute("$everything", method="get")
    kinds = sorted(entry["resource"]["resourceType"] for entry in bundle["entry"])
    assert kinds == ["Encounter", "Encounter"] + ["Observation"] * 5 + ["Patient"]
