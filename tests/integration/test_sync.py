"""``healthos sync`` against a second HealthOS server playing the EHR (issue 10 item 6).

The EHR is ``healthos serve`` on its own database, on 127.0.0.1; HealthOS pulls its Bulk
Data export (``/fhir/$export``) into a database of its own through the live path. The
second sync sends ``_since`` = the first's ``transactionTime`` and fetches only what
changed on the EHR meanwhile.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from healthos_core.settings import get_settings
from serving.cli import app
from tests.conftest import url_table_counts
from tests.serving.fhir_serve import healthos_serve
from tests.serving.test_fhir_api import encounter, observation, patient, transaction

runner = CliRunner()
ADMIN = {"Authorization": "Bearer dev-admin"}


def test_sync_pulls_the_ehr_and_then_only_what_changed(
    tmp_path: Path, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("HEALTHOS_SYNC_TOKEN", "dev-admin")
    settings_env.setenv("HEALTHOS_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    local = f"sqlite:///{tmp_path / 'local.db'}"
    with healthos_serve(f"sqlite:///{tmp_path / 'ehr.db'}", tmp_path) as base:
        first_record = [patient(), encounter("e1")]
        first_record += [
            observation(f"o{i}", "e1", when=f"2024-03-01T0{i}:00:00Z") for i in range(3)
        ]
        loaded = httpx.post(
            f"{base}/fhir", json=transaction(*first_record), headers=ADMIN, timeout=60
        )
        assert loaded.status_code == 200, loaded.text

        first = runner.invoke(app, ["sync", "--from", f"{base}/fhir", "--db", local, "--json"])
        assert first.exit_code == 0, first.output
        report = json.loads(first.stdout)
        assert report["since"] is None
        assert report["imported"] == {"Encounter": 1, "Observation": 3, "Patient": 1}
        counts = url_table_counts(local)
        assert (counts["patient"], counts["encounter"], counts["observation"]) == (1, 1, 3)

        change = transaction(observation("o9", "e1", when="2024-03-01T09:00:00Z"))
        assert httpx.post(f"{base}/fhir", json=change, headers=ADMIN, timeout=60).status_code == 200

        second = runner.invoke(app, ["sync", "--from", f"{base}/fhir", "--db", local, "--json"])
        assert second.exit_code == 0, second.output
        again = json.loads(second.stdout)
        assert again["since"] == report["transaction_time"]
        assert again["imported"] == {"Observation": 1}
        assert url_table_counts(local)["observation"] == 4


def test_sync_says_why_when_the_source_refuses(
    tmp_path: Path, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("HEALTHOS_SYNC_TOKEN", "not-a-known-token")
    settings_env.setenv("HEALTHOS_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    with healthos_serve(f"sqlite:///{tmp_path / 'ehr.db'}", tmp_path) as base:
        refused = runner.invoke(
            app, ["sync", "--from", f"{base}/fhir", "--db", f"sqlite:///{tmp_path / 'l.db'}"]
        )
    assert refused.exit_code == 2
    assert "the export was not started (HTTP 401" in refused.output
