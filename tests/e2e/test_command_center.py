"""The command center in headless Chromium: each role's view, an acknowledge round trip,
keyboard-only work, live updates without a reload, and axe-core's accessibility checks.

One server and one browser for the module (``tests/e2e/conftest.py``); each test has its
own tab. Views of routes other branches add (queues, beds, KPIs, briefing) are checked
against the live server (a polite "not available" while the route answers 404, its data
once it is merged) and against documents shaped as the contracts say (``contract.py``).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, Route, expect

from tests.e2e import contract
from tests.e2e.conftest import Server, Watched, screenshot

pytestmark = pytest.mark.xdist_group("e2e")

AXE = Axe()


def no_serious_violations(page: Page) -> None:
    """axe-core (WCAG 2 A/AA rules and best practices) finds nothing serious or critical."""
    violations = AXE.run(page).response["violations"]
    serious = [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == []


def sign_in(page: Page, role: str) -> None:
    page.fill("#token", f"dev-{role}")
    page.press("#token", "Enter")
    expect(page.locator("#who-role")).to_have_text(f"Signed in as {role}")


def row_ids(page: Page, section: str) -> list[str]:
    return page.locator(f"#{section} button.row-open").evaluate_all(
        "buttons => buttons.map(b => b.dataset.id)"
    )


def active(page: Page, attribute: str = "id") -> str | None:
    value: str | None = page.evaluate(
        f"() => document.activeElement && document.activeElement.getAttribute('{attribute}')"
    )
    return value


def tab_until(page: Page, predicate: str, limit: int = 40) -> None:
    """Press Tab until ``predicate`` (JS on ``document.activeElement``) holds."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(el => Boolean({predicate}))(document.activeElement)"):
            return
    raise AssertionError(f"Tab never reached {predicate}")


def usd(value: str | float | Decimal) -> str:
    return f"${Decimal(str(value)):,.2f}"


def fulfil(document: dict[str, Any]) -> Any:
    def handler(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body=json.dumps(document))

    return handler


# --- sign-in ----------------------------------------------------------------------------


def test_sign_in_refuses_a_wrong_token_then_keeps_and_forgets_the_right_one(
    watched: Watched,
) -> None:
    page = watched.page
    expect(page.locator("#token")).to_be_focused()
    no_serious_violations(page)

    page.fill("#token", "dev-nobody")
    page.press("#token", "Enter")

    expect(page.locator("#sign-in-error")).to_have_text(
        "That token was not accepted. Check it and try again."
    )
    expect(page.locator("#token")).to_have_attribute("aria-invalid", "true")
    assert page.evaluate("sessionStorage.getItem('healthos.token')") is None

    sign_in(page, "nurse")
    assert page.evaluate("sessionStorage.getItem('healthos.token')") == "dev-nurse"
    page.reload()
    expect(page.locator("#who-role")).to_have_text("Signed in as nurse")

    page.click("#sign-out")
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#token")).to_be_focused()
    assert page.evaluate("sessionStorage.getItem('healthos.token')") is None
    assert [e for e in watched.clean() if "status of 401" not in e] == []


# --- clinicians and nurses ----------------------------------------------------------------


def test_nurse_reviews_the_basis_and_acknowledges(watched: Watched, server: Server) -> None:
    page, seeded = watched.page, server.seeded
    sign_in(page, "nurse")
    expect(page.locator("#view-heading")).to_have_text("Review list")
    expect(page.locator("#review-count")).to_have_text("1 suggestion")
    assert row_ids(page, "review") == seeded.nurse

    page.select_option("#review-audience", "")  # every audience the nurse may read
    listed = server.api("GET", "suggestions?status=open&status=acknowledged", "nurse").json()
    assert listed["count"] == len(seeded.nurse) + len(seeded.clinician)
    expect(page.locator("#review-count")).to_have_text(f"{listed['count']} suggestions")
    assert row_ids(page, "review") == [s["id"] for s in listed["data"]]
    expect(page.locator("#review tbody tr").first.locator(".badge")).to_contain_text("Critical")
    page.select_option("#review-audience", "nurse")
    expect(page.locator("#review-count")).to_have_text("1 suggestion")

    [target] = seeded.nurse
    page.click(f"button.row-open[data-id='{target}']")
    stored = server.api("GET", f"suggestions/{target}", "nurse").json()
    detail = page.locator("#detail")
    expect(detail.locator("#detail-title")).to_have_text(stored["summary"])
    expect(detail.locator("#detail-title")).to_be_focused()
    factors = stored["explanation"]["factors"]
    expect(detail.locator("table.factors tbody tr")).to_have_count(len(factors))
    expect(detail.locator("table.factors tbody tr").first).to_contain_text(
        f"+{factors[0]['contribution']:g}"
    )
    expect(detail.locator(".evidence li")).to_have_count(len(stored["explanation"]["evidence"]))
    expect(detail).to_contain_text("RCP NEWS2")
    expect(page.locator(f"button.row-open[data-id='{target}']")).to_have_attribute(
        "aria-current", "true"
    )
    no_serious_violations(page)
    screenshot(page, "nurse")

    page.click("#detail button.action-acknowledge")

    expect(page.locator("#detail-status")).to_contain_text("Status: Acknowledged")
    expect(page.locator("#detail-status")).to_be_focused()
    after = server.api("GET", f"suggestions/{target}", "nurse").json()
    assert after["status"] == "acknowledged"
    assert [(a["action"], a["role"]) for a in after["actions"]] == [("acknowledge", "nurse")]
    expect(page.locator(f"#review tr[data-row='{target}']")).to_contain_text("Acknowledged")
    expect(page.locator("#detail button.action-acknowledge")).to_be_disabled()
    expect(page.locator("#detail button.action-dismiss")).to_be_enabled()
    assert watched.clean() == []


def test_clinician_works_by_keyboard_alone_while_the_list_updates_live(
    watched: Watched, server: Server
) -> None:
    page, seeded = watched.page, server.seeded
    polls: list[int] = []
    page.on(
        "response",
        lambda r: polls.append(r.status) if "/api/v1/suggestions?" in r.url else None,
    )
    expect(page.locator("#token")).to_be_focused()
    page.keyboard.type("dev-clinician")
    page.keyboard.press("Enter")
    expect(page.locator("#view-heading")).to_be_focused()
    expect(page.locator("#review-count")).to_have_text("2 suggestions")
    urgent, other = row_ids(page, "review")
    assert {urgent, other} == set(seeded.clinician)
    page.evaluate("window.notReloaded = true")

    tab_until(page, "el.classList.contains('row-open')")
    assert active(page, "data-id") == urgent
    page.keyboard.press("Enter")
    expect(page.locator("#detail-title")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    assert active(page, "data-id") == urgent  # focus back on the row
    page.keyboard.press("Space")
    expect(page.locator("#detail-title")).to_be_focused()
    expect(page.locator(f"button.row-open[data-id='{urgent}']")).to_have_attribute(
        "aria-current", "true"
    )

    # Polls of an unchanged list are answered 304 (If-None-Match) ...
    with page.expect_response(
        lambda r: "/api/v1/suggestions?" in r.url and r.status == 304, timeout=15_000
    ):
        pass
    # ... then someone else acts on the other suggestion: the list drops it within a poll,
    # with no reload, and the selection and focus stay where they were.
    assert server.api("POST", f"suggestions/{other}/act", "clinician", json={}).status_code == 200
    expect(page.locator("#review-count")).to_have_text("1 suggestion", timeout=15_000)
    assert row_ids(page, "review") == [urgent]
    assert page.evaluate("window.notReloaded") is True
    assert polls[-1] == 200 and 304 in polls
    expect(page.locator("#detail-title")).to_be_focused()
    expect(page.locator(f"button.row-open[data-id='{urgent}']")).to_have_attribute(
        "aria-current", "true"
    )

    # Dismiss needs a reason: refused without one, then done, all from the keyboard.
    tab_until(page, "el.classList.contains('action-dismiss')")
    page.keyboard.press("Enter")
    expect(page.locator("#detail-error")).to_contain_text("a reason is required")
    expect(page.locator("#detail-reason")).to_be_focused()
    expect(page.locator("#detail-reason")).to_have_attribute("aria-invalid", "true")
    page.keyboard.type("Reviewed at the bedside: stable on oxygen")
    tab_until(page, "el.classList.contains('action-dismiss')")
    page.keyboard.press("Enter")
    expect(page.locator("#detail-status")).to_contain_text("Status: Dismissed")
    expect(page.locator("#detail-status")).to_be_focused()
    after = server.api("GET", f"suggestions/{urgent}", "clinician").json()
    assert (after["status"], after["status_reason"]) == (
        "dismissed",
        "Reviewed at the bedside: stable on oxygen",
    )
    expect(page.locator("#detail")).to_contain_text("This suggestion is closed")
    expect(page.locator("#detail button.action")).to_have_count(0)
    expect(page.locator("#review-count")).to_have_text("0 suggestions")
    no_serious_violations(page)
    screenshot(page, "clinician")
    assert watched.clean() == []


# --- finance ----------------------------------------------------------------------------


def test_finance_sees_the_denial_worklist_by_expected_loss_and_the_leakage(
    watched: Watched, server: Server
) -> None:
    page, seeded = watched.page, server.seeded
    sign_in(page, "finance")
    worklist = server.api("GET", "finance/worklist?limit=100", "finance").json()["data"]
    assert len(worklist) == len(seeded.denial_claims)
    expect(page.locator("#worklist tbody tr")).to_have_count(len(worklist))
    assert row_ids(page, "worklist") == [item["suggestion_id"] for item in worklist]
    losses = [Decimal(item["expected_loss"]) for item in worklist]
    assert losses == sorted(losses, reverse=True)
    first = page.locator("#worklist tbody tr").first
    expect(first).to_contain_text(usd(worklist[0]["expected_loss"]))
    expect(first).to_contain_text(usd(worklist[0]["amount"]))
    expect(first).to_contain_text(f"{round(worklist[0]['probability'] * 100)}%")
    expect(page.locator("#leakage tbody tr")).to_have_count(len(seeded.leakage))
    assert sorted(row_ids(page, "leakage")) == sorted(seeded.leakage)

    first.locator("button.row-open").click()
    detail = page.locator("#detail")
    expect(detail.locator(".model-metrics")).to_contain_text("version")
    expect(detail).to_contain_text("Model")
    detail.locator("details.model-card summary").click()
    card = server.api("GET", "../../cds-services/sources/model/denial", "finance").text
    expect(detail.locator(".card-text")).to_contain_text(card.splitlines()[0])
    no_serious_violations(page)
    screenshot(page, "finance")
    assert watched.clean() == []


# --- operations -------------------------------------------------------------------------


def _board_matches_the_api(page: Page, server: Server, section: str, path: str, key: str) -> None:
    answer = server.api("GET", path, "operations")
    if answer.status_code == 404:  # the route is not merged yet: said politely
        expect(page.locator(f"#{section} .not-available")).to_be_visible()
    else:
        assert answer.status_code == 200
        rows = len(answer.json()[key])
        expect(page.locator(f"#{section} tbody tr")).to_have_count(rows)


def test_operations_sees_the_boards_and_the_bottlenecks(watched: Watched, server: Server) -> None:
    page = watched.page
    sign_in(page, "operations")
    expect(page.locator("#view-heading")).to_have_text("Operations")
    expect(page.locator("#bottlenecks tbody tr")).to_have_count(1)
    assert row_ids(page, "bottlenecks") == [server.seeded.bottleneck]
    expect(page.locator("#bottlenecks")).to_contain_text("expected wait 48 → 11 min")
    _board_matches_the_api(page, server, "queues", "queues", "queue_points")
    _board_matches_the_api(page, server, "beds", "beds/census", "pools")
    if server.api("GET", "queues", "operations").status_code == 200:  # merged: the seed's
        expect(page.locator("#queues tbody tr")).to_contain_text("OPD Cardiology")
        expect(page.locator("#queues tbody tr")).to_contain_text("3")  # waiting
        expect(page.locator("#beds tbody tr")).to_contain_text("General medicine")
        expect(page.locator("#beds tbody tr")).to_contain_text("Housekeeping 1")
    screenshot(page, "operations-live")
    assert watched.clean() == []


def test_operations_boards_follow_the_contract(watched: Watched) -> None:
    page = watched.page
    page.route(re.compile(r".*/api/v1/queues(\?.*)?$"), fulfil(contract.QUEUES))
    page.route(re.compile(r".*/api/v1/beds/census(\?.*)?$"), fulfil(contract.BEDS))
    sign_in(page, "operations")

    expect(page.locator("#queues tbody tr")).to_have_count(2)
    cardio, pharmacy = page.locator("#queues tbody tr").all()
    expect(cardio).to_have_class(re.compile(r"\bbreach\b"))
    expect(cardio).to_contain_text("Breaching target")
    expect(cardio).to_contain_text("48 min / 30 min")
    expect(cardio).to_contain_text("71 min")
    expect(cardio).to_contain_text("OPD clinic")
    expect(pharmacy).to_contain_text("Within target")
    expect(pharmacy).to_contain_text("8 min / 20 min")
    expect(page.locator("#beds tbody tr")).to_have_count(2)
    medicine, icu = page.locator("#beds tbody tr").all()
    expect(medicine).to_contain_text("92.1% / 85%")
    expect(medicine).to_contain_text("Over threshold")
    expect(medicine).to_contain_text("35 / 38")
    expect(medicine).to_contain_text("Housekeeping 1")
    expect(icu).to_contain_text("— / 80%")
    expect(icu).to_contain_text("Below threshold")
    expect(icu).to_contain_text("Closed 10")
    no_serious_violations(page)
    screenshot(page, "operations")
    assert watched.clean() == []


# --- leadership -------------------------------------------------------------------------


def test_leadership_sees_the_kpi_tiles_and_the_briefing(watched: Watched) -> None:
    page = watched.page
    page.route(re.compile(r".*/api/v1/kpis(\?.*)?$"), fulfil(contract.KPIS))
    page.route(
        re.compile(r".*/api/v1/briefing\?date=.*$"),
        lambda route: route.fulfill(
            status=200, content_type="text/html", body="<h1>Morning briefing</h1>"
        ),
    )
    sign_in(page, "leadership")
    expect(page.locator("#view-heading")).to_have_text("Leadership")

    expect(page.locator("#kpi-scope")).to_have_value("region:reg-1")
    occupancy = page.locator("[data-kpi='bed_occupancy']")
    expect(occupancy.locator(".kpi-value")).to_have_text("92.1%")
    expect(occupancy).to_contain_text("Target 85.0% — misses target")
    expect(occupancy).to_contain_text("Up 2.0 pts from the previous day (worse)")
    expect(occupancy).to_contain_text("Down 2.9 pts from a week before (better)")
    collections = page.locator("[data-kpi='collections']")
    expect(collections.locator(".kpi-value")).to_have_text("$125,000.50")
    expect(collections).to_contain_text("Same as the previous day")
    expect(collections).to_contain_text("Target $150,000.00 — misses target")
    expect(page.locator("[data-kpi='ed_wait'] .kpi-value")).to_have_text("—")
    expect(page.locator("[data-kpi='open_clinical_flags'] .kpi-value")).to_have_text("12")
    expect(page.locator("#briefing a")).to_have_text(re.compile(r"Open the morning briefing of"))
    no_serious_violations(page)
    screenshot(page, "leadership")

    page.select_option("#kpi-scope", "facility:fac-1")
    expect(page.locator("[data-kpi='alos'] .kpi-value")).to_have_text("4.2 days")
    assert watched.clean() == []


def test_leadership_without_kpis_or_briefing_says_so(watched: Watched, server: Server) -> None:
    page = watched.page
    sign_in(page, "leadership")
    kpis = server.api("GET", "kpis", "leadership")
    if kpis.status_code == 404:  # the route is not merged yet: said politely
        expect(page.locator(".not-available")).to_contain_text("The KPIs are not available")
    else:
        assert kpis.status_code == 200
        scopes = kpis.json()["scopes"]
        if scopes:
            levels = ["region", "network", "facility"]
            widest = min(scopes, key=lambda s: levels.index(s["level"]))
            expect(page.locator(".tile")).to_have_count(len(widest["kpis"]))
        else:
            expect(page.locator("#view-body")).to_contain_text("No KPI for this date.")
    screenshot(page, "leadership-live")
    today = page.input_value("#kpi-date")
    if server.api("GET", f"briefing?date={today}", "leadership").status_code == 404:
        expect(page.locator("#briefing")).to_have_text(
            "The morning briefing is not available on this server yet."
        )
    else:
        expect(page.locator("#briefing a")).to_be_visible()
    # leadership also works the operations and finance views
    page.click("#views button[data-view='finance']")
    expect(page.locator("#view-heading")).to_have_text("Finance")
    expect(page.locator("#view-heading")).to_be_focused()
    assert watched.clean() == []
