"""``healthos serve``: worker processes, and no request lines (which can hold PHI) in the log."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from serving.cli import app
from tests.conftest import REPO_ROOT

runner = CliRunner()
SERVE = [sys.executable, "-m", "serving.cli", "serve"]


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    """What ``uvicorn.run`` was called with (nothing is served)."""
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: calls.append((target, kw)))
    monkeypatch.delenv("HEALTHOS_DATABASE_URL", raising=False)
    return calls


def test_serve_logs_no_request_lines_by_default(
    tmp_path: Path, uvicorn_calls: list[tuple[Any, dict[str, Any]]]
) -> None:
    # uvicorn's access log writes the path and query string of every request, e.g.
    # GET /api/v1/patients?identifier=<SSN>: off unless asked for.
    result = runner.invoke(app, ["serve", "--db", f"sqlite:///{tmp_path}/x.db"])
    assert result.exit_code == 0, result.output
    assert uvicorn_calls[0][1].get("access_log", True) is False
    result = runner.invoke(app, ["serve", "--db", f"sqlite:///{tmp_path}/x.db", "--access-log"])
    assert result.exit_code == 0, result.output
    assert uvicorn_calls[1][1]["access_log"] is True


def test_serve_workers_build_the_app_from_the_settings(
    tmp_path: Path, uvicorn_calls: list[tuple[Any, dict[str, Any]]]
) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    result = runner.invoke(app, ["serve", "--db", url, "--workers", "3", "--port", "8123"])
    assert result.exit_code == 0, result.output
    target, options = uvicorn_calls[0]
    assert target == "serving.main:create_app"
    assert options["factory"] is True
    assert options["workers"] == 3
    assert options["port"] == 8123
    assert os.environ["HEALTHOS_DATABASE_URL"] == url


def test_serve_refuses_zero_workers(
    tmp_path: Path, uvicorn_calls: list[tuple[Any, dict[str, Any]]]
) -> None:
    result = runner.invoke(app, ["serve", "--db", f"sqlite:///{tmp_path}/x.db", "--workers", "0"])
    assert result.exit_code == 2
    assert "--workers" in result.output
    assert uvicorn_calls == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def two_workers(cli_db_url: str, tmp_path: Path) -> Iterator[str]:
    """``healthos serve --workers 2`` on a fresh database; yields its base URL."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEALTHOS_")}
    env["PYTHONPATH"] = str(REPO_ROOT)  # the code under test, wherever it is checked out
    process = subprocess.Popen(
        [*SERVE, "--db", cli_db_url, "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_with_two_workers_answers_from_the_given_database(two_workers: str) -> None:
    answers = [
        httpx.get(
            f"{two_workers}/api/v1/patients",
            headers={"Authorization": "Bearer dev-clinician"},
            timeout=10,
        )
        for _ in range(6)
    ]
    assert [a.status_code for a in answers] == [200] * 6
    assert all(a.json() == {"data": [], "count": 0} for a in answers)
