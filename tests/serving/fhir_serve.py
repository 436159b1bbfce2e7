"""Run ``healthos serve`` on 127.0.0.1 for the FHIR client tests (a real uvicorn server)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import REPO_ROOT


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def healthos_serve(
    db_url: str, folder: Path, settings: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Serve ``db_url`` with ``healthos serve`` (dev tokens, var dir in ``folder``).

    ``settings`` are extra ``HEALTHOS_*`` environment variables for the server.

    Yields the server's base URL (``http://127.0.0.1:<port>``) once ``/ready`` answers;
    the server is stopped (by its process id) on exit.
    """
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEALTHOS_")}
    env["PYTHONPATH"] = str(REPO_ROOT)  # the code under test, wherever it is checked out
    env["HEALTHOS_VAR_DIR"] = str(folder / "var")
    env.update(settings or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "serving.cli", "serve", "--db", db_url, "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, "healthos serve exited"
            assert time.monotonic() < deadline, "healthos serve did not become ready"
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
