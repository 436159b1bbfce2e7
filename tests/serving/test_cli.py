"""The ``healthos`` command line: demo, evaluate, score, errors."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from serving.cli import app
from serving.demo import run_demo
from tests.conftest import table_counts

runner = CliRunner()
NOW = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)


def test_demo_builds_record_charges_and_suggestions(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    console = Console(record=True, width=120)
    suggestions = run_demo(session_factory, console=console, now=NOW)
    text = console.export_text()
    assert "Imported the sample: 12 FHIR bundles" in text
    assert "12 patients admitted" in text
    bands = {s.band for s in suggestions}
    assert {"high", "medium", "low-medium", "low"} <= bands
    assert {str(s.audience) for s in suggestions} == {"clinician", "nurse"}
    assert all(s.subject.startswith("Encounter/demo-20261121-") for s in suggestions)
    counts = table_counts(engine)
    assert counts["charge_item"] >= 24  # visit fee + procedure + medication per admission
    assert counts["suggestion"] == len(suggestions)
    # Same day again: nothing new is written.
    run_demo(session_factory, console=Console(record=True), now=NOW + dt.timedelta(minutes=5))
    assert table_counts(engine) == counts


def test_demo_command_no_serve_prints_suggestions(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--no-serve", "--db", f"sqlite:///{tmp_path}/demo.db"])
    assert result.exit_code == 0, result.output
    assert "Top suggestions for clinicians" in result.output
    assert "NEWS2" in result.output


def test_score_json_prints_one_suggestion_per_line(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/demo.db"
    assert runner.invoke(app, ["demo", "--no-serve", "--db", db]).exit_code == 0
    result = runner.invoke(app, ["score", "--kind", "clinical.news2", "--json", "--db", db])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert lines and all(line["kind"] == "clinical.news2" for line in lines)
    assert {
        "id",
        "audience",
        "severity",
        "subject",
        "score",
        "band",
        "summary",
        "explanation",
        "recommended_action",
        "source",
        "created_at",
    } <= set(lines[0])


def test_score_unknown_kind_exits_with_one_line_reason(tmp_path: Path) -> None:
    result = runner.invoke(app, ["score", "--kind", "nope", "--db", f"sqlite:///{tmp_path}/x.db"])
    assert result.exit_code == 2
    assert "no scorer produces kind 'nope'" in result.output


def test_evaluate_unknown_name_and_missing_folder_fail_cleanly(tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", "sofa", "--data", str(tmp_path)])
    assert result.exit_code == 2 and "unknown evaluation 'sofa'" in result.output
    result = runner.invoke(app, ["evaluate", "news2", "--data", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such file or folder" in result.output


def test_export_rejects_a_non_patient_reference(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", "Encounter/1", "--db", f"sqlite:///{tmp_path}/x.db"])
    assert result.exit_code == 2
    assert "pass Patient/<id>" in result.output


@pytest.mark.integration
def test_evaluate_news2_json_on_real_stays(shared_data: Path) -> None:
    folder = shared_data / "physionet-2012-icu-mortality"
    result = runner.invoke(
        app, ["evaluate", "news2", "--data", str(folder), "--json", "--limit", "400"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["n"] == 400
    assert data["complete"]["n"] + data["complete"]["excluded"] == 400
    assert 0.5 < data["auroc"] < 0.8
    assert set(data["baseline"]) >= {"saps_i_auroc", "sofa_auroc"}


@pytest.mark.integration
def test_import_rcm_folder_and_billing_report(shared_data: Path, tmp_path: Path) -> None:
    import shutil
    from decimal import Decimal

    from tests.integration.rcm_slice import make_rcm_slice

    rcm = make_rcm_slice(shared_data, tmp_path / "slice", patients=3)
    folder = tmp_path / "rcm"
    folder.mkdir()
    for path in (rcm.payers, rcm.coverage, rcm.claims, rcm.claim_responses):
        shutil.move(path, folder / path.name)
    for name in (
        "contracts.csv",
        "service_categories.csv",
        "unit_limits.csv",
        "bundling_edits.csv",
    ):
        shutil.copy(shared_data / "synthea-rcm" / name, folder / name)
    db = f"sqlite:///{tmp_path}/rcm.db"
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    for bundle in rcm.bundles:
        shutil.copy(bundle, bundles / bundle.name)
    result = runner.invoke(app, ["import", str(bundles), str(folder), "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    imported = json.loads(result.stdout)
    assert imported["rejected"] == []
    assert imported["payer_rules"]["contracts"] == 5
    report = runner.invoke(app, ["billing", "report", "--json", "--db", db])
    assert report.exit_code == 0, report.output
    data = json.loads(report.stdout)
    assert data["ledger"]["balanced"] is True
    assert Decimal(data["ledger"]["debits"]) == Decimal(data["ledger"]["credits"])
    paid = sum(
        (
            Decimal(str(json.loads(line)["payment"]["amount"]["value"]))
            for line in (folder / "claimresponses.ndjson").read_text().splitlines()
            if line.strip() and "payment" in json.loads(line)
        ),
        Decimal(0),
    )
    assert Decimal(data["paid"]) == paid.quantize(Decimal("0.01"))
