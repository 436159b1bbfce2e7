"""Polled worklist pages kept while the suggestions are unchanged, and their ETags.

A kept page must never outlive a change made by anyone: this worker, another worker on
the same database, or the scoring library writing directly. Every test runs on SQLite
and on PostgreSQL (the ``engine`` fixture).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, update
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.advisory import SuggestionRecord, save_suggestions
from healthos_core.db import session_scope
from healthos_core.suggestion_revision import SuggestionRevision, read_suggestion_revision
from serving.main import create_app
from serving.page_cache import PageCache, matches
from tests.serving.test_suggestions_api import SETTINGS, URL, auth, make_suggestion

NURSE_PAGE = f"{URL}?audience=nurse&limit=20"


@pytest.fixture
def stored(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        save_suggestions(session, [make_suggestion(f"enc-{n}", score=float(n)) for n in range(3)])
        assert read_suggestion_revision(session) is not None  # so pages are kept


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(SETTINGS, engine=engine)) as test_client:
        yield test_client


@pytest.fixture
def other_worker(engine: Engine) -> Iterator[TestClient]:
    """A second app on the same database: another uvicorn worker, with its own cache."""
    with TestClient(create_app(SETTINGS, engine=engine)) as test_client:
        yield test_client


def statuses(client: TestClient) -> dict[str, str]:
    answer = client.get(NURSE_PAGE, headers=auth("nurse"))
    assert answer.status_code == 200
    return {s["subject"]: s["status"] for s in answer.json()["data"]}


def test_a_page_kept_by_one_worker_shows_what_another_worker_did(
    client: TestClient, other_worker: TestClient, stored: None
) -> None:
    assert set(statuses(client).values()) == {"open"}
    first = client.get(NURSE_PAGE, headers=auth("nurse")).json()["data"][0]
    acted = other_worker.post(f"{URL}/{first['id']}/acknowledge", headers=auth("nurse"))
    assert acted.status_code == 200
    assert statuses(client)[first["subject"]] == "acknowledged"


def test_a_page_kept_shows_what_the_scoring_library_wrote(
    client: TestClient, stored: None, session_factory: sessionmaker[Session]
) -> None:
    before = client.get(NURSE_PAGE, headers=auth("nurse")).json()
    with session_scope(session_factory) as session:
        save_suggestions(session, [make_suggestion("enc-9", score=9.0)])
    after = client.get(NURSE_PAGE, headers=auth("nurse")).json()
    assert after["count"] == before["count"] + 1
    assert after["data"][0]["subject"] == "Encounter/enc-9"


def test_a_rescore_with_new_content_is_seen_and_an_unchanged_one_keeps_the_etag(
    client: TestClient, stored: None, session_factory: sessionmaker[Session]
) -> None:
    first = client.get(NURSE_PAGE, headers=auth("nurse"))
    with session_scope(session_factory) as session:  # the same state scored again
        save_suggestions(session, [make_suggestion(f"enc-{n}", score=float(n)) for n in range(3)])
    assert client.get(NURSE_PAGE, headers=auth("nurse")).headers["ETag"] == first.headers["ETag"]
    with session_scope(session_factory) as session:
        save_suggestions(session, [make_suggestion("enc-1", score=1.0, summary="NEWS2 now 6")])
    changed = client.get(NURSE_PAGE, headers=auth("nurse"))
    assert changed.headers["ETag"] != first.headers["ETag"]
    assert "NEWS2 now 6" in {s["summary"] for s in changed.json()["data"]}


def test_if_none_match_with_the_pages_etag_is_304_without_a_body(
    client: TestClient, stored: None
) -> None:
    first = client.get(NURSE_PAGE, headers=auth("nurse"))
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert first.headers["Cache-Control"] == "private, no-cache"
    assert first.headers["Vary"] == "Authorization"
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        answer = client.get(NURSE_PAGE, headers={**auth("nurse"), "If-None-Match": sent})
        assert answer.status_code == 304, sent
        assert answer.content == b""
        assert answer.headers["ETag"] == etag


def test_if_none_match_with_an_old_etag_gets_the_new_page(client: TestClient, stored: None) -> None:
    first = client.get(NURSE_PAGE, headers=auth("nurse"))
    sid = first.json()["data"][0]["id"]
    assert client.post(f"{URL}/{sid}/act", headers=auth("nurse")).status_code == 200
    held = {**auth("nurse"), "If-None-Match": first.headers["ETag"]}
    answer = client.get(NURSE_PAGE, headers=held)
    assert answer.status_code == 200
    assert answer.headers["ETag"] != first.headers["ETag"]
    assert answer.json()["data"][0]["status"] == "acted"


def test_pages_are_kept_per_query_and_per_readable_audience(
    client: TestClient, stored: None, session_factory: sessionmaker[Session]
) -> None:
    with session_scope(session_factory) as session:
        save_suggestions(
            session, [make_suggestion("claim-1", kind="finance.denial_risk", audience="finance")]
        )
    nurse = client.get(URL, headers=auth("nurse")).json()
    finance = client.get(URL, headers=auth("finance")).json()
    assert {s["audience"] for s in nurse["data"]} == {"nurse"}
    assert {s["audience"] for s in finance["data"]} == {"finance"}
    open_only = client.get(f"{URL}?status=acted", headers=auth("nurse")).json()
    assert open_only == {"data": [], "count": 0}
    assert client.get(f"{URL}?limit=1", headers=auth("nurse")).json()["count"] == 3


def test_without_a_revision_nothing_is_kept(
    client: TestClient, stored: None, engine: Engine
) -> None:
    """An emptied revision table (a restore, a hand edit) must not let a page outlive a change."""
    with engine.begin() as connection:
        connection.execute(delete(SuggestionRevision))
    assert set(statuses(client).values()) == {"open"}
    with engine.begin() as connection:  # a change that does not touch the revision
        connection.execute(update(SuggestionRecord).values(status="dismissed"))
    assert set(statuses(client).values()) == {"dismissed"}


def test_the_contract_documents_the_304_and_the_etag(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"][URL]["get"]
    assert "304" in operation["responses"]
    assert "content" not in operation["responses"]["304"]
    assert "ETag" in operation["responses"]["200"]["headers"]
    assert {p["name"] for p in operation["parameters"] if p["in"] == "header"} == {"if-none-match"}


def test_the_cache_keeps_a_bounded_number_of_pages_and_checks_the_revision() -> None:
    cache = PageCache(pages=2)
    for n in range(3):
        cache.put(("page", n), "rev-1", f"[{n}]".encode())
    assert len(cache) == 2
    assert cache.get(("page", 0), "rev-1") is None  # the least recently used went first
    kept = cache.get(("page", 2), "rev-1")
    assert kept is not None and kept.body == b"[2]"
    assert cache.get(("page", 2), "rev-2") is None
    assert cache.get(("page", 2), None) is None
    cache.put(("page", 5), None, b"[5]")
    assert cache.get(("page", 5), None) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ('"abc"', True),
        ('W/"abc"', True),
        ('"x", "abc"', True),
        ("*", True),
        ('"abcd"', False),
        ("abc", False),
    ],
)
def test_if_none_match_is_read_as_rfc_9110_says(header: str | None, expected: bool) -> None:
    assert matches(header, '"abc"') is expected
