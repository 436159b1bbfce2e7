"""The command center's page at ``/`` and ``GET /api/v1/me`` (the role the page shows).

The page itself is driven in a browser by tests/e2e; here: what the app serves.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from healthos_core.db import make_engine
from healthos_core.settings import Settings
from serving.deps import token_subject
from serving.main import create_app
from serving.page import STATIC_DIR

TOKENS = {
    "tok-clinician-0001": "clinician",
    "tok-nurse-0001": "nurse",
    "tok-finance-0001": "finance",
    "tok-operations-01": "operations",
    "tok-leadership-01": "leadership",
    "tok-admin-0001": "admin",
    "tok-datasci-0001": "data_scientist",
}
SETTINGS = Settings(environment="test", api_tokens=TOKENS)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # Neither the page nor /me reads the database: an empty SQLite file is enough.
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('page') / 'page.db'}")
    with TestClient(create_app(SETTINGS, engine=engine)) as test_client:
        yield test_client
    engine.dispose()


def auth(role: str) -> dict[str, str]:
    token = next(t for t, r in TOKENS.items() if r == role)
    return {"Authorization": f"Bearer {token}"}


# --- /api/v1/me -----------------------------------------------------------------------

ME = [
    ("clinician", ["clinician", "nurse"], ["clinician", "nurse"]),
    ("nurse", ["clinician", "nurse"], ["clinician", "nurse"]),
    ("finance", ["finance"], ["finance"]),
    ("operations", ["operations"], ["operations"]),
    ("leadership", ["finance", "leadership", "operations"], ["leadership"]),
    ("admin", ["clinician", "finance", "leadership", "nurse", "operations"], []),
    ("data_scientist", [], []),
]


@pytest.mark.parametrize(("role", "reads", "acts"), ME)
def test_me_names_the_role_and_its_audiences(
    client: TestClient, role: str, reads: list[str], acts: list[str]
) -> None:
    response = client.get("/api/v1/me", headers=auth(role))

    assert response.status_code == 200
    token = next(t for t, r in TOKENS.items() if r == role)
    assert response.json() == {
        "subject": token_subject(token),
        "role": role,
        "audiences": reads,
        "acts_for": acts,
    }
    assert token not in response.text


def test_me_without_a_valid_token_is_401_problem(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = client.get("/api/v1/me", headers=headers)

        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"


def test_me_is_documented(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/api/v1/me"]["get"]

    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MePublic"
    }
    assert "401" in operation["responses"]


# --- the page -------------------------------------------------------------------------


def test_the_page_is_served_at_the_root_with_a_strict_csp(client: TestClient) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert response.headers["cache-control"] == "no-cache"
    assert '<script type="module" src="/static/app.js">' in response.text
    assert "/" not in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("name", "media"),
    [("app.js", "javascript"), ("app.css", "text/css"), ("suggestions.js", "javascript")],
)
def test_the_page_files_are_served(client: TestClient, name: str, media: str) -> None:
    response = client.get(f"/static/{name}")

    assert response.status_code == 200
    assert media in response.headers["content-type"]
    assert response.content == (STATIC_DIR / name).read_bytes()


def test_a_missing_page_file_is_404(client: TestClient) -> None:
    assert client.get("/static/nope.js").status_code == 404


class _InlineFinder(HTMLParser):
    """Collect inline scripts, inline styles and event-handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "style":
            self.found.append("<style>")
        if tag == "script":
            self._in_script = True
            if "src" not in names:
                self.found.append("<script> without src")
        self.found += [f"{tag}[{n}]" for n in names if n == "style" or n.startswith("on")]

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append("inline script text")


def test_the_page_has_no_inline_script_or_style() -> None:
    # A strict Content-Security-Policy (default-src 'self') blocks both.
    finder = _InlineFinder()
    finder.feed((STATIC_DIR / "index.html").read_text(encoding="utf-8"))
    assert finder.found == []
    for path in sorted(Path(STATIC_DIR).glob("*.js")):
        text = path.read_text(encoding="utf-8")
        # markup only through textContent; no style attributes; no eval
        unsafe = r"innerHTML|outerHTML|insertAdjacentHTML|\beval\(|new Function"
        assert not re.search(unsafe, text), path
        assert not re.search(r"setAttribute\(\s*[\"']style|\.style\.", text), path
