"""Real synthea-rcm slice: import everything, then the billing report agrees with the files."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.billing.entities import Claim
from healthos_core.billing.ledger import JournalEntry, ar_aging, trial_balance
from healthos_core.billing.remittance import ClaimResponseAdjudication
from healthos_core.billing.reports import billing_report
from healthos_core.fhir.importer import import_paths
from tests.integration.rcm_slice import make_rcm_slice

pytestmark = pytest.mark.integration

#: The synthea-rcm data are "as of" 2021-07-31 (README).
AS_OF = dt.datetime(2021, 7, 31, tzinfo=dt.UTC)


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def file_denials(
    claims: list[dict[str, Any]], responses: list[dict[str, Any]]
) -> dict[str, list[int]]:
    """Initial claims and whole-claim denials per payer, counted from the FHIR files alone.

    Initial = no ``Claim.related``; denied = outcome ``error`` (rejected) or a claim-level
    ``denied`` adjudication (the whole claim denied) — the README's ``denied`` label.
    """
    payer_of = {
        c["id"]: c["insurer"]["reference"].split("/")[-1] for c in claims if not c.get("related")
    }
    counts: dict[str, list[int]] = {}
    for response in responses:
        claim_id = response["request"]["reference"].split("/")[-1]
        if claim_id not in payer_of:
            continue
        denied = response["outcome"] == "error" or any(
            a["category"]["coding"][0]["code"] == "denied" for a in response.get("adjudication", [])
        )
        row = counts.setdefault(payer_of[claim_id], [0, 0])
        row[0] += 1
        row[1] += int(denied)
    return counts


@pytest.mark.usefixtures("live_path")  # remittance posting, as `healthos import` wires it
def test_rcm_slice_billing_report_matches_the_files(
    shared_data: Path, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    rcm = make_rcm_slice(shared_data, tmp_path, patients=5)
    report = import_paths(session_factory, rcm.in_order())
    assert report.rejected == []
    claims = read_ndjson(rcm.claims)
    responses = read_ndjson(rcm.claim_responses)
    assert report.imported["ClaimResponse"] == len(responses) > 50

    with session_factory() as session:
        figures = billing_report(session)

    # The ledger balances to the cent.
    ledger = figures["ledger"]
    assert ledger["balanced"] is True
    assert ledger["debits"] == ledger["credits"]
    assert Decimal(ledger["debits"]) > 0

    # Total paid = sum of ClaimResponse.payment.amount in the file, to the cent.
    paid_in_file = sum(
        (money(r["payment"]["amount"]["value"]) for r in responses if r.get("payment")),
        Decimal("0.00"),
    )
    assert Decimal(figures["paid"]) == paid_in_file

    # Claimed = the initial claims' totals (corrected claims re-bill, they do not add).
    claimed_in_file = sum(
        (money(c["total"]["value"]) for c in claims if not c.get("related")), Decimal("0.00")
    )
    assert Decimal(figures["claimed"]) == claimed_in_file == Decimal(figures["charges"])

    # Contractual adjustments and denials = the CO-45 and denied adjudications in the file.
    by_category: Counter[str] = Counter()
    for response in responses:
        for item in response["item"]:
            for a in item["adjudication"]:
                by_category[a["category"]["coding"][0]["code"]] += money(a["amount"]["value"])  # type: ignore[assignment]
    assert Decimal(figures["adjusted"]) == by_category["contractual"]
    assert Decimal(figures["patient_responsibility"]) == by_category["patient-responsibility"]
    assert Decimal(figures["denied"]) == by_category["denied"]

    # A/R = charges − payments − adjustments − write-offs + refunds.
    ar = {key: Decimal(value) for key, value in figures["ar"].items()}
    assert ar["total"] == (
        Decimal(figures["charges"])
        - Decimal(figures["paid"])
        - Decimal(figures["adjusted"])
        - Decimal(figures["written_off"])
        - Decimal(figures["patient_paid"])
        + Decimal(figures["refunded"])
    )
    assert ar["patient"] == by_category["patient-responsibility"]
    assert sum((Decimal(v) for v in figures["ar_by_bucket"].values()), Decimal("0")) == ar["payer"]

    # Initial denial rate by payer = a count taken directly from the files ...
    expected = file_denials(claims, responses)
    got = {
        payer: (row["claims"], row["denied"])
        for payer, row in figures["initial_denial_rate_by_payer"].items()
        if payer != "all"
    }
    assert got == {payer: (n, d) for payer, (n, d) in expected.items()}
    for payer, (n, d) in expected.items():
        rate = figures["initial_denial_rate_by_payer"][payer]["rate"]
        assert Decimal(rate) == (Decimal(d) / Decimal(n)).quantize(Decimal("0.0001"))
    # ... and to the README's labels.
    with gzip.open(shared_data / "synthea-rcm" / "labels.csv.gz", "rt", encoding="utf-8") as f:
        labels = {row["claim_id"]: row for row in csv.DictReader(f)}
    labelled = Counter(labels[c["id"]]["denied"] for c in claims if not c.get("related"))
    assert figures["initial_denial_rate_by_payer"]["all"]["denied"] == labelled["1"]

    with session_factory() as session:
        # Every revenue-cycle claim was charged once; every response moved its claim.
        charged = session.scalar(
            select(func.count()).select_from(JournalEntry).where(JournalEntry.kind == "charge")
        )
        assert charged == sum(1 for c in claims if not c.get("related"))
        statuses = Counter(
            session.scalars(select(Claim.billing_status).where(Claim.billing_status.is_not(None)))
        )
        assert statuses["submitted"] == 0
        assert statuses["resubmitted"] == sum(1 for c in claims if c.get("related"))
        aging = ar_aging(session, as_of=AS_OF, by="payer")
        assert sum((r["total"] for r in aging["rows"]), Decimal("0")) == ar["payer"]
        before = trial_balance(session)
        rows_before = session.scalar(select(func.count()).select_from(ClaimResponseAdjudication))

    # Importing everything again posts nothing new.
    again = import_paths(session_factory, rcm.in_order())
    assert again.rejected == []
    with session_factory() as session:
        assert trial_balance(session) == before
        assert session.scalar(select(func.count()).select_from(ClaimResponseAdjudication)) == (
            rows_before
        )
        assert billing_report(session)["paid"] == figures["paid"]
