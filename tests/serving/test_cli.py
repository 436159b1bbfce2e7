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
    audiences = {"clinician", "nurse", "finance", "operations", "leadership"}
    assert {str(s.audience) for s in suggestions} == audiences
    # Leadership: the demo facility's KPIs off target (net days in A/R: every charge of
    # the demo is new and unpaid).
    (kpis,) = [s for s in suggestions if str(s.audience) == "leadership"]
    assert kpis.subject == "Organization/demo-facility"
    assert "net_days_in_ar" in {f.name for f in kpis.explanation.factors}
    clinical = [s for s in suggestions if s.kind.startswith("clinical.")]
    assert all(s.subject.startswith("Encounter/demo-20261121-") for s in clinical)
    assert "6 outpatient visits, 5 claims built, 2 submitted" in text
    # Denial risk on the demo's claims: the lapsed coverage (CARC 27) and the claim coded
    # without a diagnosis (CARC 16) are flagged; the clean ones are not.
    denial = {s.band for s in suggestions if s.kind == "finance.denial_risk"}
    assert denial == {"eligibility", "coding"}
    # The simulated OPD and ED day: the under-staffed clinic and the full ward.
    operations = {s.subject: s for s in suggestions if str(s.audience) == "operations"}
    assert set(operations) == {"Location/demo-opd-cardiology", "Location/demo-ward-7a"}
    clinic = operations["Location/demo-opd-cardiology"]
    assert clinic.recommended_action.startswith("Add ")
    assert "clinician" in clinic.recommended_action
    assert "2 ED boarding" in operations["Location/demo-ward-7a"].summary
    assert "OPD and ED day for 2026-11-21: 6 queue points" in text
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
    # Scored as of the moment its writes are done: the revenue leakage in what it wrote.
    assert "Top suggestions for finance" in result.output
    assert "Unbilled AMB encounter" in result.output
    assert "Missed charge" in result.output


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


def test_score_human_output_prints_the_top_suggestions(tmp_path: Path) -> None:
    """Issue 9 item 4: ``score`` without ``--json`` printed nothing but a traceback."""
    db = f"sqlite:///{tmp_path}/demo.db"
    assert runner.invoke(app, ["demo", "--no-serve", "--db", db]).exit_code == 0
    result = runner.invoke(app, ["score", "--db", db])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == 0, result.output
    assert "Top suggestions for nurses" in result.stdout
    assert "NEWS2" in result.stdout


def _mixed_import_folder(tmp_path: Path) -> tuple[Path, list[Path]]:
    """One good Patient file and two bad ones (not JSON; an invalid birthDate)."""
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps({"resourceType": "Patient", "id": "p-good", "name": [{"family": "Good"}]}),
        encoding="utf-8",
    )
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    bad_patient = tmp_path / "bad-patient.json"
    bad_patient.write_text(
        json.dumps({"resourceType": "Patient", "id": "p-bad", "birthDate": "not-a-date"}),
        encoding="utf-8",
    )
    return good, [broken, bad_patient]


@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_import_with_rejected_files_imports_the_good_and_exits_4(
    tmp_path: Path, as_json: bool
) -> None:
    """Issue 9 item 5: exit 4 when any unit is rejected, each reason printed once."""
    from sqlalchemy import select

    from healthos_core.db import make_engine
    from healthos_core.record.entities import Patient

    good, bad = _mixed_import_folder(tmp_path)
    db = f"sqlite:///{tmp_path}/import.db"
    result = runner.invoke(
        app, ["import", str(good), *map(str, bad), "--db", db, *(["--json"] if as_json else [])]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 4, result.output  # documented: some units were rejected
    for path in bad:
        assert result.output.count(path.name) == 1, result.output
    assert "invalid JSON" in result.output and "birthDate" in result.output
    if as_json:
        report = json.loads(result.stdout)
        assert sorted(Path(r["file"]).name for r in report["rejected"]) == sorted(
            p.name for p in bad
        )
        assert report["imported"] == {"Patient": 1}
    engine = make_engine(db)
    with Session(engine) as session:
        assert session.scalars(select(Patient.id)).all() == ["p-good"]
    engine.dispose()


def test_import_with_only_good_files_exits_0(tmp_path: Path) -> None:
    good, _ = _mixed_import_folder(tmp_path)
    result = runner.invoke(app, ["import", str(good), "--db", f"sqlite:///{tmp_path}/ok.db"])
    assert result.exit_code == 0, result.output
    assert "rejected" not in result.output


@pytest.mark.parametrize(
    "value",
    ["0.0", "1700000000", "2021-07-31T12:00:00", "2021-07", "31/07/2021", "2021-02-30", ""],
)
def test_as_of_accepts_only_iso_dates_and_aware_date_times(tmp_path: Path, value: str) -> None:
    """Issue 9 items 8/9: a number, a naive date-time or a non-ISO date is refused."""
    db = f"sqlite:///{tmp_path}/x.db"
    for command in (["billing", "report"], ["finance-summary"], ["score"]):
        result = runner.invoke(app, [*command, "--as-of", value, "--json", "--db", db])
        assert result.exit_code == 2, (command, result.output)
        assert "--as-of" in result.output, result.output
        assert "Traceback" not in result.output


def test_as_of_date_means_the_end_of_that_day_utc(tmp_path: Path) -> None:
    """The CLI reads ``--as-of DATE`` as the API does: the end of that day, UTC."""
    db = f"sqlite:///{tmp_path}/x.db"
    by_date = runner.invoke(
        app, ["billing", "report", "--as-of", "2021-07-31", "--json", "--db", db]
    )
    assert by_date.exit_code == 0, by_date.output
    assert json.loads(by_date.stdout)["as_of"] == "2021-07-31T23:59:59.999999+00:00"
    by_time = runner.invoke(
        app, ["billing", "report", "--as-of", "2021-07-31T14:00:00+02:00", "--json", "--db", db]
    )
    assert by_time.exit_code == 0, by_time.output
    assert json.loads(by_time.stdout)["as_of"] == "2021-07-31T12:00:00+00:00"
