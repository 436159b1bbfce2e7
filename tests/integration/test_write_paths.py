"""One write path (issue 10 item 1): every way of writing a Procedure stores the same.

The same Procedure written through the record service, the REST API
(``POST /api/v1/encounters/{id}/procedures``), a FHIR ``POST /fhir/Procedure``, a
transaction Bundle to ``POST /fhir`` and ``healthos import --live`` yields the same
``procedure`` row and the same ChargeItem; writing it again through any path changes
nothing. Each path starts
from the same database: a patient, an encounter under way and a chargemaster price.
Runs on SQLite and PostgreSQL (the ``engine`` fixture).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from healthos_core.billing.entities import ChargeItem
from healthos_core.db import session_scope
from healthos_core.fhir.exporter import to_fhir
from healthos_core.fhir.importer import import_document
from healthos_core.record.entities import Procedure
from healthos_core.record.service import record_procedure
from healthos_core.settings import Settings
from healthos_core.wiring import wired
from serving.cli import app
from serving.main import create_app
from tests.conftest import POSTGRES_URL, table_counts, truncate_all
from tests.core.fhir_factories import SNOMED
from tests.core.test_live_import import PRICES, X_RAY
from tests.factories import make_chargemaster, make_encounter, make_patient

runner = CliRunner()
PERFORMED = dt.datetime(2024, 3, 1, 1, 30, tzinfo=dt.UTC)
#: What an EHR sends for the procedure (and what the record service builds from its
#: arguments: the test checks that too).
RESOURCE: dict[str, Any] = {
    "resourceType": "Procedure",
    "id": "proc-1",
    "status": "completed",
    "code": {
        "coding": [{"system": SNOMED, "code": X_RAY[0], "display": X_RAY[1]}],
        "text": X_RAY[1],
    },
    "subject": {"reference": "Patient/pat-1"},
    "encounter": {"reference": "Encounter/enc-1"},
    "performedPeriod": {"start": "2024-03-01T01:30:00Z"},
}
#: Columns that say when a row was written, or number it (a database sequence: the
#: chargemaster is made again for each path), not what it holds.
WHEN = {"id", "created_at", "updated_at", "entered_at", "chargemaster_entry_id"}


def prepare(engine: Engine, session_factory: sessionmaker[Session]) -> None:
    truncate_all(engine)
    with session_scope(session_factory) as session:
        make_chargemaster(session, PRICES)
        patient = make_patient(session, id="pat-1")
        make_encounter(
            session,
            patient=patient,
            id="enc-1",
            period_start=dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
        )


def snapshot(session_factory: sessionmaker[Session]) -> dict[str, Any]:
    """The procedure row and its ChargeItems, without ids and write times."""
    with session_factory() as session:
        procedure = session.get(Procedure, "proc-1")
        assert procedure is not None
        charges = session.scalars(select(ChargeItem).order_by(ChargeItem.service_ref)).all()
        return {
            "procedure": {
                c.key: getattr(procedure, c.key)
                for c in Procedure.__mapper__.column_attrs
                if c.key not in WHEN - {"id"}
            },
            "charges": [
                {
                    c.key: getattr(charge, c.key)
                    for c in ChargeItem.__mapper__.column_attrs
                    if c.key not in WHEN
                }
                for charge in charges
            ],
        }


def by_service(session_factory: sessionmaker[Session], _tmp: Path) -> None:
    with session_scope(session_factory) as session:
        record_procedure(
            session,
            encounter_id="enc-1",
            code_system=SNOMED,
            code=X_RAY[0],
            display=X_RAY[1],
            performed_at=PERFORMED,
            id="proc-1",
        )


def by_transaction_bundle(session_factory: sessionmaker[Session], _tmp: Path) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:7b0f3c55-95c3-4b6a-9a3c-1f1b6b0f9d1e",
                "resource": copy.deepcopy(RESOURCE),
                "request": {"method": "PUT", "url": "Procedure/proc-1"},
            }
        ],
    }
    with session_scope(session_factory) as session:
        import_document(session, bundle, origin="live")


def by_import_live(session_factory: sessionmaker[Session], tmp: Path) -> None:
    path = tmp / "procedure.ndjson"
    path.write_text(json.dumps(RESOURCE) + "\n")
    url = cli_url(session_factory.kw["bind"])
    result = runner.invoke(app, ["import", str(path), "--live", "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["imported"] == {"Procedure": 1}


def cli_url(engine: Engine) -> str:
    """The URL the CLI needs for ``engine``'s database (on PostgreSQL, with its schema)."""
    if engine.dialect.name == "sqlite":
        return engine.url.render_as_string(hide_password=False)
    with engine.connect() as connection:
        schema = connection.execute(text("select current_schema()")).scalar_one()
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


def by_rest_api(session_factory: sessionmaker[Session], _tmp: Path) -> None:
    body = {
        "id": "proc-1",
        "code_system": SNOMED,
        "code": X_RAY[0],
        "display": X_RAY[1],
        "performed_at": "2024-03-01T01:30:00Z",
    }
    with _client(session_factory) as client:
        answer = client.post("/api/v1/encounters/enc-1/procedures", json=body, headers=NURSE)
    assert answer.status_code == 201, answer.text


def by_fhir_post(session_factory: sessionmaker[Session], _tmp: Path) -> None:
    with _client(session_factory) as client:
        answer = client.post("/fhir/Procedure", json=RESOURCE, headers=ADMIN)
    assert answer.status_code in (200, 201), answer.text


def by_fhir_transaction(session_factory: sessionmaker[Session], _tmp: Path) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": RESOURCE, "request": {"method": "PUT", "url": "Procedure/proc-1"}}],
    }
    with _client(session_factory) as client:
        answer = client.post("/fhir", json=bundle, headers=ADMIN)
    assert answer.status_code == 200, answer.text


@contextmanager
def _client(session_factory: sessionmaker[Session]) -> Iterator[TestClient]:
    """The API on the test's database, rescoring off (no thread writing beside the test)."""
    settings = Settings(environment="test", rescore="off")  # dev tokens
    with TestClient(create_app(settings, engine=session_factory.kw["bind"])) as client:
        yield client


NURSE = {"Authorization": "Bearer dev-nurse"}
ADMIN = {"Authorization": "Bearer dev-admin"}
PATHS: dict[str, Callable[[sessionmaker[Session], Path], None]] = {
    "record service": by_service,
    "REST API": by_rest_api,
    "FHIR POST": by_fhir_post,
    "FHIR transaction Bundle": by_fhir_transaction,
    "transaction Bundle (library)": by_transaction_bundle,
    "healthos import --live": by_import_live,
}


def test_the_record_service_builds_what_an_ehr_sends(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    prepare(engine, session_factory)
    with wired():
        by_service(session_factory, tmp_path)
    with session_factory() as session:
        procedure = session.get(Procedure, "proc-1")
        assert procedure is not None
        assert to_fhir(procedure) == RESOURCE


def test_every_path_stores_the_same_rows_and_charge_and_a_repeat_changes_nothing(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    seen: dict[str, dict[str, Any]] = {}
    with wired():
        for name, write in PATHS.items():
            prepare(engine, session_factory)
            write(session_factory, tmp_path)
            seen[name] = snapshot(session_factory)
            counts = table_counts(engine)
            for again_name, again in PATHS.items():  # any path, again: nothing changes
                again(session_factory, tmp_path)
                assert table_counts(engine) == counts, (name, again_name)
                assert snapshot(session_factory) == seen[name], (name, again_name)
    reference = seen["record service"]
    assert len(reference["charges"]) == 1
    assert reference["charges"][0]["service_ref"] == "Procedure/proc-1"
    for name, found in seen.items():
        assert found == reference, name
