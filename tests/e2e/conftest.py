"""End-to-end fixtures: one real ``healthos serve`` and one headless Chromium per worker.

The server runs on 127.0.0.1 on a free port over a small SQLite database built here with
:mod:`tests.e2e.seed` (the real scorers). Chromium is Debian's (``/usr/bin/chromium``,
installed by ``make chromium``, a prerequisite of ``make test``) driven through
Playwright's ``executable_path``: Playwright's own browser download is never used.

Screenshots go to ``test-artifacts/e2e/`` (gitignored), or to ``HEALTHOS_E2E_ARTIFACTS``.
Every e2e test is in the xdist group ``e2e``, so under ``--dist loadgroup`` they share
the worker, the server and the browser.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from healthos_core.db import make_engine, make_session_factory, session_scope
from healthos_core.migrate import upgrade
from tests.conftest import REPO_ROOT
from tests.e2e.seed import Seeded, seed
from tests.serving.fhir_serve import healthos_serve

CHROMIUM = Path(os.environ.get("HEALTHOS_E2E_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("HEALTHOS_E2E_ARTIFACTS", REPO_ROOT / "test-artifacts" / "e2e"))
#: A ward tablet in portrait.
TABLET = {"width": 768, "height": 1024}


@dataclass
class Server:
    """The running server: its base URL and what the seed stored."""

    base: str
    seeded: Seeded

    def api(self, method: str, path: str, role: str, **kwargs: Any) -> httpx.Response:
        """Call the API as ``role`` (a development token)."""
        return httpx.request(
            method,
            f"{self.base}/api/v1/{path}",
            headers={"Authorization": f"Bearer dev-{role}"},
            timeout=30,
            **kwargs,
        )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``healthos serve`` over a seeded SQLite database (development tokens)."""
    folder = tmp_path_factory.mktemp("e2e")
    url = f"sqlite:///{folder / 'e2e.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with session_scope(make_session_factory(engine)) as session:
        seeded = seed(session, dt.datetime.now(dt.UTC).replace(microsecond=0))
    engine.dispose()
    with healthos_serve(url, folder) as base:
        yield Server(base=base, seeded=seeded)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium (``make chromium`` installs it)."""
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: run `make chromium` (apt-get install chromium)"
    )
    with sync_playwright() as playwright:
        # --no-sandbox: tests and CI run as root, where Chromium's sandbox cannot start
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


@dataclass
class Watched:
    """A page and what went wrong on it: script errors and refused resources (CSP)."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def clean(self) -> list[str]:
        """The errors other than the 404s of routes this branch does not serve yet."""
        return [e for e in self.errors if "status of 404" not in e]


@pytest.fixture
def watched(browser: Browser, server: Server) -> Iterator[Watched]:
    """A fresh tab (its own sessionStorage) at tablet size, on the page."""
    context = browser.new_context(viewport=TABLET, base_url=server.base, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(10_000)
    seen = Watched(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            seen.errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.errors.append(f"page error: {error}"))
    page.goto("/")
    yield seen
    context.close()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as ``<artifacts>/<name>.png``; returns its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
