"""One real Synthea bundle through ``healthos import``: a back-load, then a live feed.

The bundle (``../shared/data/synthea-fhir-r4``, a patient with 6 encounters and 3
procedures) is imported as a back-load (no charge) and the chargemaster is derived from
its own claims. The same bundle on a live feed is history seen again: it changes nothing
and posts nothing. Its visits as new facts (the same encounters and procedures under new
ids, claims left out) imported with ``--live --score`` post exactly one ChargeItem per
priced encounter and procedure, priced as charge capture prices it, and importing them
again changes nothing. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from healthos_core.billing.capture import SNOMED
from healthos_core.billing.chargemaster import find_price
from healthos_core.billing.entities import ChargeItem
from healthos_core.db import make_engine, make_session_factory
from healthos_core.record.entities import Encounter, Procedure
from serving.cli import app
from tests.conftest import table_counts

pytestmark = pytest.mark.integration

BUNDLE = "Edward_Gulgowski_43481611-2459-44f5-ab20-4b142dac160f.json.gz"
runner = CliRunner()


def write_new_visits(bundle: Path, target: Path) -> list[str]:
    """Write ``bundle``'s encounters and procedures (and what they reference) as new facts.

    Every Encounter and Procedure gets a new id (in every reference too); Claims and
    ExplanationOfBenefits are left out. Returns the new ids.
    """
    text = gzip.decompress(bundle.read_bytes()).decode()
    document = json.loads(text)
    renamed = {
        entry["resource"]["id"]: str(uuid.uuid5(uuid.NAMESPACE_URL, entry["resource"]["id"]))
        for entry in document["entry"]
        if entry["resource"]["resourceType"] in ("Encounter", "Procedure")
    }
    for old, new in renamed.items():
        text = text.replace(old, new)
    document = json.loads(text)
    document["entry"] = [
        entry
        for entry in document["entry"]
        if entry["resource"]["resourceType"] not in ("Claim", "ExplanationOfBenefit")
    ]
    target.write_text(json.dumps(document))
    return list(renamed.values())


def test_synthea_bundle_backload_then_live_import_charges_once(
    shared_data: Path, cli_db_url: str, tmp_path: Path
) -> None:
    bundle = str(shared_data / "synthea-fhir-r4" / "bundles" / BUNDLE)
    engine = make_engine(cli_db_url)
    try:
        backload = runner.invoke(app, ["import", bundle, "--db", cli_db_url, "--json"])
        assert backload.exit_code == 0, backload.output
        imported = json.loads(backload.stdout)["imported"]
        assert (imported["Encounter"], imported["Procedure"]) == (6, 3)
        assert table_counts(engine)["charge_item"] == 0

        derived = runner.invoke(app, ["chargemaster", "derive", "--db", cli_db_url, "--json"])
        assert derived.exit_code == 0 and json.loads(derived.stdout)["derived"] > 0

        history = table_counts(engine)
        seen = runner.invoke(app, ["import", bundle, "--live", "--db", cli_db_url, "--json"])
        assert seen.exit_code == 0, seen.output
        assert table_counts(engine) == history  # history seen again: nothing new

        visits = tmp_path / "new-visits.json"
        new_ids = write_new_visits(Path(bundle), visits)
        live = runner.invoke(
            app, ["import", str(visits), "--live", "--score", "--db", cli_db_url, "--json"]
        )
        assert live.exit_code == 0, live.output
        report = json.loads(live.stdout)
        assert report["rejected"] == []
        assert (report["imported"]["Encounter"], report["imported"]["Procedure"]) == (6, 3)
        assert table_counts(engine)["suggestion"] == sum(report["scored"].values())

        with make_session_factory(engine)() as session:
            charged = {c.service_ref: c for c in session.scalars(select(ChargeItem))}
            expected = {}
            for procedure in session.scalars(select(Procedure).where(Procedure.id.in_(new_ids))):
                assert procedure.code_system and procedure.code and procedure.performed_start
                entry = find_price(
                    session,
                    code_system=procedure.code_system,
                    code=procedure.code,
                    on=procedure.performed_start,
                )
                if entry is not None:
                    expected[procedure.reference] = (procedure.code, entry.unit_price)
            for encounter in session.scalars(select(Encounter).where(Encounter.id.in_(new_ids))):
                assert encounter.type_code and encounter.period_start
                entry = find_price(
                    session, code_system=SNOMED, code=encounter.type_code, on=encounter.period_start
                )
                if entry is not None:
                    expected[encounter.reference] = (encounter.type_code, entry.unit_price)
        assert expected, "the bundle's claims price none of its encounters and procedures"
        assert {ref: (c.code, c.total) for ref, c in charged.items()} == expected
        assert all(c.status == "billable" and c.quantity == 1 for c in charged.values())

        counts = table_counts(engine)
        again = runner.invoke(app, ["import", str(visits), "--live", "--db", cli_db_url, "--json"])
        assert again.exit_code == 0, again.output
        assert table_counts(engine) == counts
    finally:
        engine.dispose()
