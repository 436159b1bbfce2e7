"""The morning briefing: content, HTML, PDF, ``healthos briefing`` and ``GET /api/v1/briefing``.

Runs on SQLite and PostgreSQL. The record (day D = 2024-03-31): a region ← network ←
facility with two inpatient stays (ALOS 5.0), a general ward of four beds with one patient
in bed at the end of D, an OPD clinic whose tickets of D waited 30 and 40 minutes in the
09:00 hour (one more left without being seen), and open suggestions of three audiences
whose order the worklist rule fixes (severity, then expected loss p × amount, then score).
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from healthos_core.advisory import SuggestionRecord
from healthos_core.db import session_scope
from healthos_core.kpis import KPIS, compute_kpis
from healthos_core.settings import Settings
from reasoning.briefing import build_briefing
from serving.briefing import format_value, render_html, render_pdf, trend
from serving.cli import app as cli
from serving.main import create_app
from tests.factories import (
    make_bed,
    make_encounter,
    make_organization,
    make_patient,
    make_queue_point,
    make_ticket,
    make_ward,
)

D = dt.date(2024, 3, 31)
NOW = dt.datetime(2024, 4, 2, 6, 0, tzinfo=dt.UTC)
TOKENS = {
    "tok-finance-0001": "finance",
    "tok-leadership-01": "leadership",
    "tok-admin-0001": "admin",
    "tok-operations-01": "operations",
    "tok-nurse-0001": "nurse",
    "tok-clinician-0001": "clinician",
}
SETTINGS = Settings(environment="test", api_tokens=TOKENS)  # type: ignore[arg-type]
URL = "/api/v1/briefing"
PROBLEM = "application/problem+json"
runner = CliRunner()


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {next(t for t, r in TOKENS.items() if r == role)}"}


def at(hour: int, minute: int = 0, day: dt.date = D) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), dt.UTC)


def add_suggestion(
    session: Session,
    sid: str,
    audience: str,
    *,
    severity: str = "warning",
    score: float | None = None,
    amount: str | None = None,
    status: str = "open",
    created: dt.datetime | None = None,
) -> None:
    session.add(
        SuggestionRecord(
            id=sid,
            kind=f"{audience}.test",
            audience=audience,
            severity=severity,
            subject=f"Claim/{sid}" if audience == "finance" else f"Encounter/{sid}",
            facility_id="fac-a",
            score=score,
            summary=f"summary of {sid}",
            explanation={},
            recommended_action=f"action for {sid}",
            source_name="test",
            source_version="1",
            amount_at_stake=None if amount is None else Decimal(amount),
            currency=None if amount is None else "USD",
            created_at=created or at(8),
            status=status,
        )
    )


def seed(session: Session) -> None:
    make_organization(session, id="region-1", name="North", type_code="region")
    make_organization(
        session, id="network-1", name="Net", type_code="network", part_of_id="region-1"
    )
    make_organization(session, id="fac-a", name="Alpha Hospital", part_of_id="network-1")
    for admitted, discharged in ((25, 28), (23, 30)):  # 3 and 7 nights: ALOS 5.0
        make_encounter(
            session,
            patient_id=make_patient(session).id,
            facility_id="fac-a",
            class_code="IMP",
            status="finished",
            period_start=dt.datetime(2024, 3, admitted, 10, tzinfo=dt.UTC),
            period_end=dt.datetime(2024, 3, discharged, 10, tzinfo=dt.UTC),
        )
    ward = make_ward(session, id="w-gen", facility_id="fac-a")
    for n in range(4):
        make_bed(session, ward, id=f"bed-{n}")
    make_encounter(
        session,
        patient_id=make_patient(session).id,
        facility_id="fac-a",
        class_code="IMP",
        location_id="bed-0",
        period_start=at(12, day=D - dt.timedelta(days=1)),
    )
    clinic = make_queue_point(session, id="q-opd", name="OPD Cardiology", facility_id="fac-a")
    make_ticket(session, clinic, arrived=at(9, 10), started=at(9, 40), ended=at(9, 50))
    make_ticket(session, clinic, arrived=at(9, 20), started=at(10, 0), ended=at(10, 10))
    make_ticket(session, clinic, arrived=at(9, 30), left=at(11, 0))
    # finance: critical first, then expected loss 0.5 × 1000 = 500 before 0.9 × 100 = 90
    add_suggestion(session, "fin-small", "finance", score=0.9, amount="100.00")
    add_suggestion(session, "fin-large", "finance", score=0.5, amount="1000.00")
    add_suggestion(session, "fin-critical", "finance", severity="critical", score=0.1, amount="10")
    # clinicians: six open (the top five shown, by score), one dismissed, one created after D
    for n in range(6):
        add_suggestion(session, f"clin-{n}", "clinician", score=float(n))
    add_suggestion(session, "clin-dismissed", "clinician", score=99.0, status="dismissed")
    add_suggestion(session, "clin-later", "clinician", score=98.0, created=at(8, day=NOW.date()))
    add_suggestion(session, "ops-1", "operations", severity="critical", score=0.97)
    session.flush()


@pytest.fixture
def seeded(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_scope(session_factory) as session:
        seed(session)
    return session_factory


def row(page: str, key: str) -> str:
    match = re.search(rf'<tr data-kpi="{key}">(.*?)</tr>', page, re.S)
    assert match, key
    return html.unescape(match.group(1))


# --------------------------------------------------------------------------- content


def test_briefing_content_from_the_record(seeded: sessionmaker[Session]) -> None:
    with seeded() as session:
        briefing = build_briefing(session, date=D, now=NOW)

    assert [(s.level, s.id) for s in briefing.kpis.scopes] == [
        ("facility", "fac-a"),
        ("network", "network-1"),
        ("region", "region-1"),
    ]
    (pool,) = briefing.bed_pools
    assert (pool.pool, pool.occupied, pool.available) == ("general_medicine", 1, 4)
    (waits,) = briefing.queue_waits
    assert waits.name == "OPD Cardiology"
    assert waits.mean_wait_minutes[9] == 35.0  # (30 + 40) / 2
    assert waits.seen[9] == 2 and sum(waits.seen) == 2
    assert waits.left_without_being_seen == 1
    assert len(briefing.collections) == 30 and briefing.collections[-1].day == D
    assert [s.id for s in briefing.suggestions["finance"]] == [
        "fin-critical",
        "fin-large",
        "fin-small",
    ]
    assert briefing.suggestions["finance"][1].expected_loss == Decimal("500.00")
    assert [s.id for s in briefing.suggestions["clinician"]] == [
        f"clin-{n}" for n in (5, 4, 3, 2, 1)
    ]
    assert briefing.open_counts == {
        "clinician": 6,
        "nurse": 0,
        "finance": 3,
        "operations": 1,
        "leadership": 0,
    }


def test_briefing_refuses_a_future_day_and_unknown_audiences(session: Session) -> None:
    from healthos_core.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="future"):
        build_briefing(session, date=NOW.date() + dt.timedelta(days=1), now=NOW)
    with pytest.raises(InvalidInputError, match="audiences"):
        build_briefing(session, date=D, audiences=["patients"], now=NOW)


# --------------------------------------------------------------------------- the page


def test_html_holds_every_kpi_with_value_target_and_trend(seeded: sessionmaker[Session]) -> None:
    with seeded() as session:
        briefing = build_briefing(session, date=D, now=NOW)
        report = compute_kpis(session, date=D)
    page = render_html(briefing)

    assert "<script" not in page
    assert page.count("<svg") == 2  # occupancy and waits; no cash, so no collections plot
    assert "No cash posted and no cash expected" in page
    facility = next(s for s in report.scopes if s.id == "fac-a")
    assert len(facility.kpis) == len(KPIS)
    for kpi in facility.kpis:
        text = row(page, kpi.key)
        assert kpi.label in text
        assert format_value(kpi.value, kpi.unit, kpi.currency) in text
        assert format_value(kpi.target, kpi.unit, kpi.currency) in text
    alos = row(page, "alos")
    assert "5.00 days" in alos
    assert "days USD" not in page  # money KPIs in days carry no currency
    for sid in ("fin-critical", "fin-large", "clin-5", "ops-1"):
        assert f"summary of {sid}" in page and f"action for {sid}" in page
    assert "clin-0" not in page and "clin-dismissed" not in page and "clin-later" not in page
    assert "500.00 USD" in page  # the expected loss of fin-large
    assert "top 5 of 6 open" in page


def test_formatting_and_trend_arrows() -> None:
    assert format_value(0.8754, "ratio") == "87.5%"
    assert format_value(1234.5, "currency", "INR") == "1,234.50 INR"
    assert format_value(90.0, "days", "USD") == "90.00 days"
    assert format_value(3, "count") == "3"
    assert trend(0.9, 0.8, "ratio", "higher") == {
        "arrow": "▲",
        "change": "+10.0 pp",
        "tone": "good",
    }
    assert trend(6.0, 5.0, "days", "lower")["tone"] == "bad"
    assert trend(4.0, 5.0, "days", "lower")["arrow"] == "▼"
    assert trend(5.0, 5.0, "days", "lower")["arrow"] == "▬"
    assert trend(5.0, None, "days", "lower")["change"] == "no comparison"


def test_empty_record_shows_empty_states(session: Session) -> None:
    page = render_html(build_briefing(session, date=D, now=NOW))
    assert "No facility has KPI data" in page
    assert "no queue points in the record" in page
    assert "No bed pool has an available bed" in page
    assert "<svg" not in page


# --------------------------------------------------------------------------- PDF


def test_pdf_without_chromium_is_a_clear_error(tmp_path: Path) -> None:
    from healthos_core.errors import InvalidInputError

    missing = tmp_path / "no-chromium"
    with pytest.raises(InvalidInputError, match="apt-get install chromium"):
        render_pdf("<p>x</p>", chromium=missing)


# --------------------------------------------------------------------------- command


def test_cli_writes_html_and_refuses_bad_input(cli_db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "b.html"
    result = runner.invoke(
        cli, ["briefing", "--db", cli_db_url, "--date", "2024-03-31", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    page = out.read_text("utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Morning briefing — Sunday 31 March 2024" in page
    assert not list(tmp_path.glob(".*partial"))

    bad_date = runner.invoke(
        cli, ["briefing", "--db", cli_db_url, "--date", "2024-02-30", "--out", str(out)]
    )
    assert bad_date.exit_code == 2 and "--date" in bad_date.output
    bad_ext = runner.invoke(
        cli, ["briefing", "--db", cli_db_url, "--out", str(tmp_path / "b.docx")]
    )
    assert bad_ext.exit_code == 2 and "unknown extension '.docx'" in bad_ext.output
    assert not (tmp_path / "b.docx").exists()


def test_cli_pdf_and_missing_renderer(
    cli_db_url: str, tmp_path: Path, settings_env: pytest.MonkeyPatch
) -> None:
    pdf = tmp_path / "b.pdf"
    result = runner.invoke(
        cli, ["briefing", "--db", cli_db_url, "--date", "2024-03-31", "--out", str(pdf)]
    )
    assert result.exit_code == 0, result.output
    assert pdf.read_bytes().startswith(b"%PDF-")

    settings_env.setenv("HEALTHOS_CHROMIUM_PATH", str(tmp_path / "missing-chromium"))
    from healthos_core.settings import get_settings

    get_settings.cache_clear()
    other = tmp_path / "c.pdf"
    result = runner.invoke(cli, ["briefing", "--db", cli_db_url, "--out", str(other)])
    assert result.exit_code == 2
    assert "missing-chromium" in result.output and "HEALTHOS_CHROMIUM_PATH" in result.output
    assert not other.exists() and not list(tmp_path.glob(".*partial"))


# --------------------------------------------------------------------------- API


@pytest.fixture
def client(engine: Engine, seeded: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(create_app(SETTINGS, engine=engine)) as test_client:
        yield test_client


def test_api_serves_the_page_by_role(client: TestClient) -> None:
    response = client.get(URL, params={"date": "2024-03-31"}, headers=auth("finance"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src" not in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page = response.text
    assert "<style" not in page and "<script" not in page and "<svg" not in page
    assert 'src="data:image/svg+xml;base64,' in page
    href = re.search(r'<link rel="stylesheet" href="([^"]+)"', page)
    assert href and href.group(1).endswith("/api/v1/briefing/style.css")
    assert "summary of fin-critical" in page  # finance reads finance suggestions ...
    assert "summary of clin-5" not in page and "summary of ops-1" not in page  # ... only
    css = client.get("/api/v1/briefing/style.css")  # no token: the style sheet holds no data
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")

    admin = client.get(URL, params={"date": "2024-03-31"}, headers=auth("admin")).text
    assert "summary of clin-5" in admin and "summary of ops-1" in admin


@pytest.mark.parametrize("role", ["nurse", "clinician"])
def test_api_refuses_other_roles(client: TestClient, role: str) -> None:
    response = client.get(URL, params={"date": "2024-03-31"}, headers=auth(role))
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM


@pytest.mark.parametrize("date", ["2024-02-30", "2024-03-31T00:00:00Z", "31/03/2024", "2999-01-01"])
def test_api_bad_date_is_422(client: TestClient, date: str) -> None:
    response = client.get(URL, params={"date": date}, headers=auth("leadership"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert "date" in response.text


def test_openapi_documents_html_and_problems(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"][URL]["get"]
    assert "text/html" in operation["responses"]["200"]["content"]
    for status in ("401", "403", "422"):
        assert PROBLEM in operation["responses"][status]["content"]
    assert operation["parameters"][0]["name"] == "date"


def test_collections_plot_shows_cash_and_the_kpi_line() -> None:
    from reasoning.briefing import CollectionsDay
    from serving.briefing.plots import collections_svg

    days = [
        CollectionsDay(
            day=D - dt.timedelta(days=29 - n),
            cash=Decimal(100 * (n % 3)),
            collections=None if n < 5 else 0.5 + n / 100,
        )
        for n in range(30)
    ]
    svg = collections_svg(days, "INR")
    assert svg is not None and svg.startswith("<svg")
    assert "cash posted per day (INR)" in svg and "Collections over the last 30 days" in svg
    quiet = [CollectionsDay(day=d.day, cash=Decimal(0), collections=None) for d in days]
    assert collections_svg(quiet, "INR") is None
