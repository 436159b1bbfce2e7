"""Rescoring within a second: the API process consumes the outbox of live writes itself.

The route for posting a vital-sign set (``POST /api/v1/encounters/{id}/observations``) is
being built elsewhere; until it is merged these tests write through the record service
on the app's engine, in one transaction per set, as the route will.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.advisory import SuggestionRecord
from healthos_core.db import make_engine, make_session_factory
from healthos_core.migrate import upgrade
from healthos_core.outbox import OutboxEvent
from healthos_core.settings import Settings
from healthos_core.wiring import wired
from serving.main import create_app
from tests.reasoning.test_rescoring import (
    DETERIORATING,
    NORMAL,
    admit_inpatient,
    record_vital_set,
)

TOKENS = {"tok-nurse-0001": "nurse", "tok-clinician-01": "clinician"}
SETTINGS = Settings(environment="test", api_tokens=TOKENS, rescore_poll_seconds=0.05)
NURSE = {"Authorization": "Bearer tok-nurse-0001"}
#: Stays written for the worker test (an admission and a 7-observation set each).
STAYS = 4


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Return ``check()`` once it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout} s")
        time.sleep(0.02)


def test_a_deteriorating_set_gives_a_news2_suggestion_and_a_normal_set_resolves_it(
    engine: Engine,
) -> None:
    with TestClient(create_app(SETTINGS, engine=engine)) as client:
        app: Any = client.app
        assert app.state.rescoring is not None and app.state.rescoring.running
        # A writer session, as the API gives a writing request (SQLite: BEGIN IMMEDIATE),
        # so the write waits for the consumer's transaction instead of failing.
        factory: sessionmaker[Session] = make_session_factory(engine, writer=True)
        with factory.begin() as session:
            encounter = admit_inpatient(session, "api")
            record_vital_set(session, encounter.id, DETERIORATING, minutes_ago=60)
        written = time.monotonic()
        query = {"subject": encounter.reference, "kind": "clinical.news2"}

        def news2() -> list[dict[str, Any]]:
            response = client.get("/api/v1/suggestions", params=query, headers=NURSE)
            assert response.status_code == 200
            data: list[dict[str, Any]] = response.json()["data"]
            return data

        [suggestion] = wait_for(news2)
        assert time.monotonic() - written < 5  # nobody called score
        assert (suggestion["status"], suggestion["score"], suggestion["band"]) == (
            "open",
            11.0,
            "high",
        )

        with factory.begin() as session:
            record_vital_set(session, encounter.id, NORMAL, minutes_ago=5)
        [resolved] = wait_for(lambda: [s for s in news2() if s["status"] == "resolved"])
        assert resolved["id"] == suggestion["id"]
        assert resolved["status_by"] == "system:rescoring"
        detail = client.get(f"/api/v1/suggestions/{suggestion['id']}", headers=NURSE).json()
        assert [a["action"] for a in detail["actions"]] == ["resolve"]
        assert "Observation/" in detail["actions"][0]["reason"]
    assert app.state.rescoring is not None and not app.state.rescoring.running


def test_no_consumer_runs_in_the_api_when_rescoring_is_off_or_in_workers(engine: Engine) -> None:
    for mode in ("off", "worker"):
        settings = Settings(environment="test", api_tokens=TOKENS, rescore=mode)
        with TestClient(create_app(settings, engine=engine)) as client:
            app: Any = client.app
            assert app.state.rescoring is None
            with app.state.session_factory.begin() as session:
                encounter = admit_inpatient(session, f"off-{mode}")
                record_vital_set(session, encounter.id, DETERIORATING, minutes_ago=60)
            time.sleep(0.3)
            with app.state.session_factory() as session:
                # The events wait in the outbox for a worker.
                waiting = session.scalar(
                    select(func.count())
                    .select_from(OutboxEvent)
                    .where(OutboxEvent.subject == encounter.reference)
                    .where(OutboxEvent.done_at.is_(None))
                )
                assert waiting == 8
                assert session.scalar(select(func.count()).select_from(SuggestionRecord)) == 0


def _worker(url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "HEALTHOS_DATABASE_URL": url}
    return subprocess.Popen(
        [sys.executable, "-m", "serving.cli", "worker", "--poll", "0.05", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_healthos_worker_killed_mid_stream_loses_and_duplicates_nothing(cli_db_url: str) -> None:
    engine = make_engine(cli_db_url)
    try:
        upgrade(engine)
        factory = make_session_factory(engine)
        encounters = []
        with wired():
            for i in range(STAYS):
                with factory.begin() as session:
                    encounter = admit_inpatient(session, f"w{i}")
                    record_vital_set(session, encounter.id, DETERIORATING, minutes_ago=60)
                    encounters.append(encounter.reference)
        # A worker taking one event at a time with a short lease, killed (SIGKILL) while
        # the outbox is still being drained: whatever it had claimed and not finished is
        # claimed again by the next worker once the lease ends.
        doomed = _worker(cli_db_url, "--batch", "1", "--lease", "1")

        def done() -> int:
            with factory() as session:
                return int(
                    session.scalar(
                        select(func.count())
                        .select_from(OutboxEvent)
                        .where(OutboxEvent.done_at.is_not(None))
                    )
                    or 0
                )

        wait_for(lambda: done() >= 3, timeout=60)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        assert done() < STAYS * 8  # killed mid-stream
        survivor = _worker(cli_db_url, "--batch", "50", "--lease", "1")
        try:
            wait_for(lambda: done() == STAYS * 8, timeout=60)
        finally:
            survivor.send_signal(signal.SIGTERM)
            _, stderr = survivor.communicate(timeout=30)
        assert survivor.returncode == 0, stderr
        assert "rescoring batch:" in stderr and "worker: stopped" in stderr
        with factory() as session:
            for subject in encounters:
                rows = session.scalars(
                    select(SuggestionRecord.status).where(
                        SuggestionRecord.subject == subject,
                        SuggestionRecord.kind == "clinical.news2",
                    )
                ).all()
                assert rows == ["open"], subject
    finally:
        engine.dispose()
