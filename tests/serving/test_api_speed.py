"""What the API does per request on its polled routes (issue 9 item 10).

The profile of ``bench/bench_api.py`` showed where a request's time went: ``/health``
read the package metadata every call; each sync dependency and sync route crossed to
the threadpool (a patient read crossed it six times, each costing about a whole plain
FastAPI request of CPU, and far more in tail latency); a patient read took two queries
and a short worklist page two, every time. These tests pin the fixes (a polled
worklist page is kept while the suggestions' revision is unchanged: the cache itself is
tested in ``test_page_cache.py``). Every test runs on SQLite and
on PostgreSQL (the ``engine`` fixture).
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Callable, Iterator
from typing import Any

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.advisory import save_suggestions
from healthos_core.db import session_scope
from healthos_core.record.entities import Patient, PatientIdentifier
from healthos_core.settings import Settings
from reasoning.suggestion import Audience, Explanation, Severity, Source, Suggestion
from serving.main import create_app
from serving.routers import health

TOKENS = {"tok-clinician-0001": "clinician", "tok-nurse-0001": "nurse"}
#: No rescoring thread: its looks at the outbox would be counted with the request's queries.
SETTINGS = Settings(environment="test", api_tokens=TOKENS, rescore="off")  # type: ignore[arg-type]
CLINICIAN = {"Authorization": "Bearer tok-clinician-0001"}
NURSE = {"Authorization": "Bearer tok-nurse-0001"}
T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(SETTINGS, engine=engine)) as test_client:
        yield test_client


@pytest.fixture
def stored(session_factory: sessionmaker[Session]) -> None:
    """One patient with two identifiers and three nurse suggestions about them."""
    with session_scope(session_factory) as session:
        session.add(
            Patient(
                id="pat-1",
                family="Okafor",
                given="Ada",
                identifiers=[
                    PatientIdentifier(system="http://hospital.example/mrn", value="MRN001"),
                    PatientIdentifier(system="http://hospital.example/bed", value="B-12"),
                ],
            )
        )
        save_suggestions(
            session,
            [
                Suggestion(
                    kind="clinical.news2",
                    audience=Audience.NURSE,
                    severity=Severity.WARNING,
                    subject=f"Encounter/enc-{n}",
                    summary=f"NEWS2 medium on enc-{n}",
                    explanation=Explanation(method="rule:news2"),
                    recommended_action="Urgent ward-based response",
                    source=Source(name="news2", version="1.0.0"),
                    score=float(n),
                    patient_id="pat-1",
                    created_at=T0,
                )
                for n in range(3)
            ],
        )


@pytest.fixture
def thread_hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the functions run in the threadpool (``anyio.to_thread.run_sync``)."""
    hops: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__qualname__", repr(func)))
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return hops


@pytest.fixture
def selects(engine: Engine) -> Iterator[list[str]]:
    """The SELECT statements the engine runs (``SELECT 1`` pings aside)."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and statement.strip() != "SELECT 1":
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield statements
    event.remove(engine, "before_cursor_execute", record)


def test_health_does_not_read_the_package_metadata_per_request(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    real_version = health.version

    def counting_version(name: str) -> str:
        reads.append(name)
        return real_version(name)

    monkeypatch.setattr(health, "version", counting_version)
    with TestClient(create_app(SETTINGS, engine=engine)) as client:
        before = len(reads)
        for _ in range(3):
            answer = client.get("/health")
            assert answer.status_code == 200
            assert answer.json() == {"status": "ok", "version": health.app_version()}
        assert len(reads) == before


def test_health_runs_on_the_event_loop(client: TestClient, thread_hops: list[str]) -> None:
    assert client.get("/health").status_code == 200
    assert thread_hops == []


def hops_expected(engine: Engine) -> int:
    """Polled reads run on the event loop on SQLite, in one threadpool hop on a server."""
    return 0 if engine.dialect.name == "sqlite" else 1


def test_patient_read_crosses_to_the_threadpool_at_most_once(
    client: TestClient, engine: Engine, stored: None, thread_hops: list[str]
) -> None:
    answer = client.get("/api/v1/patients/pat-1", headers=CLINICIAN)
    assert answer.status_code == 200
    assert {i["value"] for i in answer.json()["identifiers"]} <= {"MRN001", "B-12"}
    assert len(thread_hops) == hops_expected(engine), thread_hops


def test_worklist_crosses_to_the_threadpool_at_most_once(
    client: TestClient, engine: Engine, stored: None, thread_hops: list[str]
) -> None:
    answer = client.get("/api/v1/suggestions?audience=nurse&limit=20", headers=NURSE)
    assert answer.status_code == 200
    assert answer.json()["count"] == 3
    assert len(thread_hops) == hops_expected(engine), thread_hops


def test_patient_read_is_one_query(client: TestClient, stored: None, selects: list[str]) -> None:
    answer = client.get("/api/v1/patients/pat-1", headers=CLINICIAN)
    assert answer.status_code == 200
    assert answer.json()["id"] == "pat-1"
    assert len(selects) == 1, selects


def test_short_worklist_page_is_one_query_and_keeps_the_count(
    client: TestClient, stored: None, selects: list[str]
) -> None:
    short = client.get("/api/v1/suggestions?audience=nurse&limit=20", headers=NURSE).json()
    assert [s["score"] for s in short["data"]] == [2.0, 1.0, 0.0]
    assert short["count"] == 3
    # the page; the suggestions' revision is read before it on the pool's DBAPI
    # connection, unseen here (poll_suggestion_revision)
    assert len(selects) == 1, selects


def test_an_unchanged_worklist_is_answered_from_the_revision_alone(
    client: TestClient, stored: None, selects: list[str]
) -> None:
    first = client.get("/api/v1/suggestions?audience=nurse&limit=20", headers=NURSE)
    selects.clear()
    again = client.get("/api/v1/suggestions?audience=nurse&limit=20", headers=NURSE)
    assert again.content == first.content
    assert selects == []  # only the revision was read, on the DBAPI connection


@pytest.mark.parametrize(
    ("query", "scores", "count"),
    [
        ("limit=2", [2.0, 1.0], 3),  # a full page: counted
        ("limit=2&offset=2", [0.0], 3),  # the short last page
        ("limit=3", [2.0, 1.0, 0.0], 3),  # exactly full: counted
        ("limit=2&offset=3", [], 3),  # past the end: counted
        ("limit=2&offset=9", [], 3),
    ],
)
def test_worklist_count_ignores_the_page(
    client: TestClient, stored: None, query: str, scores: list[float], count: int
) -> None:
    page = client.get(f"/api/v1/suggestions?audience=nurse&{query}", headers=NURSE).json()
    assert [s["score"] for s in page["data"]] == scores
    assert page["count"] == count


def test_what_start_up_loaded_is_frozen_out_of_the_collector(engine: Engine) -> None:
    """A full collection walked every module and model loaded at start-up: p99 20 ms at one
    connection (bench/README.md); gc.freeze() after start-up, gc.unfreeze() at shutdown."""
    gc.unfreeze()
    with TestClient(create_app(SETTINGS, engine=engine)) as client:
        assert client.get("/health").status_code == 200
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
