"""``healthos worklist`` and ``healthos finance-summary`` on a SQLite database file.

The claims and their denial-risk suggestions are the worklist tests' own; the
commands read them back through the same database URL a user passes with ``--db``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from healthos_core.db import make_engine, make_session_factory, session_scope
from healthos_core.migrate import upgrade
from serving.cli import app
from tests.reasoning.test_worklist import LOSS, RANKED, seed_worklist

runner = CliRunner()


def _database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'finance.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with session_scope(make_session_factory(engine)) as session:
        seed_worklist(session)
    engine.dispose()
    return url


def test_worklist_json_ranks_by_expected_loss_and_filters(tmp_path: Path) -> None:
    db = _database(tmp_path)
    result = runner.invoke(app, ["worklist", "--json", "--db", db])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["count"] == len(RANKED)
    assert [item["claim_id"] for item in printed["data"]] == RANKED
    assert [Decimal(item["expected_loss"]) for item in printed["data"]] == [LOSS[c] for c in RANKED]
    assert all(item["fix"] and item["factors"] for item in printed["data"])

    result = runner.invoke(
        app, ["worklist", "--json", "--db", db, "--reason", "authorization", "--limit", "1"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["count"] == 2
    assert [item["claim_id"] for item in printed["data"]] == ["c1"]


def test_worklist_table_and_bad_reason(tmp_path: Path) -> None:
    db = _database(tmp_path)
    result = runner.invoke(app, ["worklist", "--db", db, "--limit", "3"])
    assert result.exit_code == 0, result.output
    assert "Denial worklist: 3 of 6 open claims" in result.stdout
    result = runner.invoke(app, ["worklist", "--db", db, "--reason", "weather"])
    assert result.exit_code != 0
    assert "unknown denial reason 'weather'" in result.output


def test_finance_summary_json(tmp_path: Path) -> None:
    db = _database(tmp_path)
    result = runner.invoke(app, ["finance-summary", "--json", "--db", db])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    risk = summary["denial_risk"]
    assert risk["count"] == 6
    assert Decimal(risk["expected_loss"]) == sum(LOSS.values())
    assert Decimal(risk["billed_at_risk"]) == Decimal("9425.49")


def test_evaluate_leakage_needs_the_synthea_rcm_folder(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "leakage.csv"
    not_a_folder.write_text("kind\n", encoding="utf-8")
    result = runner.invoke(app, ["evaluate", "leakage", "--data", str(not_a_folder)])
    assert result.exit_code != 0
    assert "leakage takes the synthea-rcm folder" in result.output


def test_denial_commands_check_their_arguments(tmp_path: Path) -> None:
    a_file = tmp_path / "claims.csv"
    a_file.write_text("id\n", encoding="utf-8")
    result = runner.invoke(app, ["evaluate", "denial", "--data", str(a_file)])
    assert result.exit_code != 0
    assert "denial takes the synthea-rcm folder" in result.output
    result = runner.invoke(
        app, ["train", "readmission", "--data", str(a_file), "--bundles", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert "--bundles applies to the denial model only" in result.output
    result = runner.invoke(app, ["train", "sofa", "--data", str(a_file)])
    assert result.exit_code != 0
    assert "available: deterioration, readmission, denial" in result.output


def test_score_revenue_leakage_as_of_prints_one_finding_per_line(tmp_path: Path) -> None:
    from tests.reasoning.test_leakage import AS_OF, charge, make_world

    url = f"sqlite:///{tmp_path / 'leakage.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with session_scope(make_session_factory(engine)) as session:
        world = make_world(session)
        charge(session, world, service_ref=f"Encounter/{world.encounter.id}", total="1000.00")
        encounter_id, coverage_id = world.encounter.id, world.coverage_id
    engine.dispose()

    command = ["score", "--kind", "finance.revenue_leakage", "--json", "--db", url]
    before = runner.invoke(app, [*command, "--as-of", "2020-03-03"])
    assert before.exit_code == 0, before.output
    assert before.stdout.strip() == ""  # still inside the 5-day bill hold

    result = runner.invoke(app, [*command, "--as-of", AS_OF.date().isoformat()])
    assert result.exit_code == 0, result.output
    [line] = [json.loads(text) for text in result.stdout.splitlines() if text.strip()]
    assert line["subject"] == f"Encounter/{encounter_id}"
    assert line["leakage_kind"] == "unbilled_encounter" == line["band"]
    assert Decimal(line["amount_at_stake"]) == Decimal("700.00")
    assert f"Coverage/{coverage_id}" in line["evidence"]
    assert line["evidence"] == line["explanation"]["evidence"]


def test_api_denial_reasons_are_the_scorers_carc_groups() -> None:
    from typing import get_args

    from reasoning.features.denial import CARC_GROUPS
    from serving.schemas.finance import DenialReasonName

    assert get_args(DenialReasonName) == CARC_GROUPS
