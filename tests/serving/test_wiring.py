"""Explicit wiring (issue 10, item 1): nothing registers on import; the API and CLI wire.

Charge capture and remittance posting used to register themselves when their modules
were imported. Now a fresh interpreter that imports every module has an empty default
bus and no import hook, and the API's lifespan and the ``healthos`` commands that write
wire the live path themselves.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from healthos_core.billing.entities import ChargeItem
from healthos_core.db import make_engine, make_session_factory
from healthos_core.record.service import record_procedure
from healthos_core.settings import Settings
from healthos_core.wiring import is_wired
from serving.cli import app
from serving.main import create_app
from tests.conftest import url_table_counts
from tests.core.fhir_factories import SNOMED, BundleIds, fhir_id, observation
from tests.core.test_live_import import PRICES, X_RAY, price_list, visit_entries, write_bundle
from tests.factories import make_chargemaster, make_encounter

runner = CliRunner()
SETTINGS = Settings(environment="test", api_tokens={"tok-admin-0001": "admin"})  # type: ignore[arg-type]


def test_importing_every_module_registers_no_handler_and_no_hook() -> None:
    # A fresh interpreter: this test process has long imported (and wired) everything.
    code = textwrap.dedent(
        """
        import importlib, json, pkgutil
        for name in ("healthos_core", "reasoning", "serving"):
            package = importlib.import_module(name)
            for module in pkgutil.walk_packages(package.__path__, name + "."):
                importlib.import_module(module.name)
        import serving.main
        from healthos_core.events import ClinicalEvent, default_bus
        from healthos_core.fhir.mapping import MAPPERS
        from healthos_core.fhir.importer import import_hooks

        def family(cls):
            yield cls
            for sub in cls.__subclasses__():
                yield from family(sub)

        print(json.dumps({
            "handlers": {t.__name__: len(default_bus().handlers(t)) for t in family(ClinicalEvent)},
            "hooks": {t: len(import_hooks(t)) for t in MAPPERS},
        }))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    found = json.loads(result.stdout)
    assert "ProcedurePerformed" in found["handlers"] and "ClaimResponse" in found["hooks"]
    assert set(found["handlers"].values()) == {0}, found["handlers"]
    assert set(found["hooks"].values()) == {0}, found["hooks"]


def test_the_api_lifespan_wires_charge_capture_and_unwires_at_shutdown(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    assert not is_wired()
    with TestClient(create_app(SETTINGS, engine=engine)) as client:
        assert client.get("/health").status_code == 200
        assert is_wired()
        assert client.app.state.wiring.capture.settings.strict is False  # type: ignore[attr-defined]
        # A procedure recorded while the API runs, on the default bus, posts its charge.
        with session_factory.begin() as session:
            make_chargemaster(session, PRICES)
            encounter = make_encounter(session, period_start=dt.datetime(2024, 3, 1, tzinfo=dt.UTC))
            procedure = record_procedure(
                session,
                encounter_id=encounter.id,
                code_system=SNOMED,
                code=X_RAY[0],
                display=X_RAY[1],
                performed_at=dt.datetime(2024, 3, 1, 1, tzinfo=dt.UTC),
            )
        with session_factory() as session:
            posted = session.scalars(select(ChargeItem)).all()
        assert [(c.service_ref, c.total) for c in posted] == [
            (procedure.reference, Decimal(PRICES[1][1]))
        ]
    assert not is_wired()


def _charges(url: str) -> list[tuple[str | None, str]]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            return sorted(
                (c.service_ref, str(c.total)) for c in session.scalars(select(ChargeItem))
            )
    finally:
        engine.dispose()


def _priced(url: str) -> None:
    engine = make_engine(url)
    try:
        price_list(make_session_factory(engine))
    finally:
        engine.dispose()


def test_cli_import_is_a_backload_and_live_posts_charges_once(
    tmp_path: Path, cli_db_url: str
) -> None:
    history = write_bundle(tmp_path / "history.json", visit_entries("cli"))
    ids = BundleIds("cli-live")
    visit = write_bundle(tmp_path / "visit.json", visit_entries("cli-live"))
    assert runner.invoke(app, ["db", "upgrade", "--db", cli_db_url]).exit_code == 0
    _priced(cli_db_url)

    backload = runner.invoke(app, ["import", str(history), "--db", cli_db_url, "--json"])
    assert backload.exit_code == 0, backload.output
    assert json.loads(backload.stdout)["imported"]["Procedure"] == 1
    assert _charges(cli_db_url) == []
    # History seen again on a live feed is not new: it changes nothing, posts nothing.
    counts = url_table_counts(cli_db_url)
    seen = runner.invoke(app, ["import", str(history), "--live", "--db", cli_db_url])
    assert seen.exit_code == 0, seen.output
    assert url_table_counts(cli_db_url) == counts

    live = runner.invoke(app, ["import", str(visit), "--live", "--db", cli_db_url, "--json"])
    assert live.exit_code == 0, live.output
    assert _charges(cli_db_url) == [
        (ids.ref("encounter"), "310.00"),
        (ids.ref("procedure"), "120.55"),
    ]
    counts = url_table_counts(cli_db_url)
    again = runner.invoke(app, ["import", str(visit), "--live", "--db", cli_db_url])
    assert again.exit_code == 0, again.output
    assert url_table_counts(cli_db_url) == counts


def test_cli_import_score_stores_the_suggestions_it_reports(
    tmp_path: Path, cli_db_url: str
) -> None:
    # An ER visit under way with a creatinine rise of 0.6 mg/dL in 18 hours: KDIGO AKI.
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ids = BundleIds("score")
    entries = visit_entries("score", start=now - dt.timedelta(days=1))
    for name, value, hours_ago in (("creatinine-1", 1.0, 20), ("creatinine-2", 1.6, 2)):
        entries.append(
            {
                "resource": observation(
                    fhir_id("score", name),
                    subject=ids.urn("patient"),
                    encounter=ids.urn("encounter"),
                    code="2160-0",
                    display="Creatinine [Mass/volume] in Serum or Plasma",
                    value=value,
                    unit="mg/dL",
                    effective=(now - dt.timedelta(hours=hours_ago)).isoformat(),
                )
            }
        )
    bundle = write_bundle(tmp_path / "aki.json", entries)
    result = runner.invoke(app, ["import", str(bundle), "--score", "--db", cli_db_url, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    scored = report["scored"]
    assert scored.get("clinical.kdigo_aki", 0) >= 1, scored
    assert url_table_counts(cli_db_url)["suggestion"] == sum(scored.values())
    human = runner.invoke(app, ["import", str(bundle), "--score", "--db", cli_db_url])
    assert human.exit_code == 0, human.output
    assert "Imported from 1 files" in human.output


def test_cli_import_live_refuses_physionet_and_long_csv_before_writing(tmp_path: Path) -> None:
    csv_path = tmp_path / "long.csv"
    csv_path.write_text("patient,time,parameter,value\n", encoding="utf-8")
    mapping = tmp_path / "map.csv"
    mapping.write_text("parameter,loinc\n", encoding="utf-8")
    db = tmp_path / "never.db"
    result = runner.invoke(
        app,
        ["import", str(csv_path), "--mapping", str(mapping), "--live", "--db", f"sqlite:///{db}"],
    )
    assert result.exit_code == 2
    assert "--live applies to FHIR files" in result.output
    assert not db.exists()


def test_cli_import_help_documents_live_and_score() -> None:
    result = runner.invoke(app, ["import", "--help"])
    assert result.exit_code == 0
    assert "--live" in result.output and "--score" in result.output
    assert "back-load" in result.output
