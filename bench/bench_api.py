"""Benchmark: the API's throughput and latency beside a plain FastAPI endpoint (issue 9 item 10).

Builds the demo database (``healthos demo --no-serve``, in a temporary folder: SQLite by
default, or ``--postgres URL``), then starts, each in its own process with one uvicorn
worker and the same uvicorn defaults:

* the baseline — :mod:`bench.plain_app`, a plain FastAPI app whose ``GET /plain``
  answers a small JSON;
* HealthOS — ``healthos serve --workers 1`` on the demo database.

The load comes from a separate process, `wrk <https://github.com/wg/wrk>`_ (``-t1 -c16
-d10s --latency`` by default; install it with ``apt-get install wrk`` on Debian/Ubuntu or
``brew install wrk`` on macOS: the script stops with that message if ``wrk`` is missing).
Each route gets a 2-second warm-up, then the measured run:

========================== ====================================================== ============
row                        request                                                target
========================== ====================================================== ============
``plain``                  ``GET /plain`` (measured first and last; the baseline  —
                           is their mean)
``health``                 ``GET /health``                                        ≥ 0.8×
``patient``                ``GET /api/v1/patients/{id}``, ``Bearer dev-clinician`` ≥ 0.25×, p99
                                                                                  ≤ 20 ms
``suggestions``            ``GET /api/v1/suggestions?limit=20``, ``Bearer          ≥ 0.25×, p99
                           dev-nurse`` (the nurse's worklist: 20 items)           ≤ 20 ms
``suggestions_nurse``      ``GET /api/v1/suggestions?audience=nurse&limit=20``,   ≥ 0.25×, p99
                           ``Bearer dev-nurse`` (the issue's URL; the demo has    ≤ 20 ms
                           fewer than 20 nurse items)
========================== ====================================================== ============

Prints one JSON document: per row requests/s, p50/p99 (ms), the ratio to the plain
endpoint, the server's CPU time per request (ms, from ``/proc``: robust to a busy
machine, unlike requests/s), non-2xx and socket errors, PASS/FAIL against the targets,
and the machine. Usage::

    python -m bench.bench_api [--postgres URL [--reset]] [--duration S] [--connections N]

``--postgres`` must name an empty database (``--reset`` drops its HealthOS tables first).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import inspect, text

from bench.machine import describe
from healthos_core.db import Base, make_engine

REPO = Path(__file__).resolve().parents[1]
WRK_MISSING = (
    "wrk is not installed: install it with `apt-get install wrk` (Debian/Ubuntu) or "
    "`brew install wrk` (macOS); the load must come from a process apart from the servers"
)
#: Minimum ratio of each row's requests/s to the plain endpoint's, and the p99 bound.
TARGETS: dict[str, dict[str, float]] = {
    "health": {"ratio": 0.8},
    "patient": {"ratio": 0.25, "p99_ms": 20.0},
    "suggestions": {"ratio": 0.25, "p99_ms": 20.0},
    "suggestions_nurse": {"ratio": 0.25, "p99_ms": 20.0},
}
WARM_UP_SECONDS = 2
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def healthos_command(*args: str) -> list[str]:
    """The ``healthos`` command line run by this interpreter (no reliance on ``PATH``)."""
    return [sys.executable, "-m", "serving.cli", *args]


def empty_database(url: str, *, reset: bool) -> None:
    """Check that ``url`` has no HealthOS tables, or drop them if ``reset``.

    Raises
    ------
    SystemExit
        If the database has HealthOS tables and ``reset`` is false.
    """
    engine = make_engine(url)
    try:
        if "patient" in inspect(engine).get_table_names():
            if not reset:
                raise SystemExit(
                    f"{url} already has HealthOS tables: use an empty database, or pass "
                    "--reset to drop them first"
                )
            Base.metadata.drop_all(engine)
            with engine.begin() as conn:
                conn.execute(text("drop table if exists alembic_version"))
    finally:
        engine.dispose()


def build_demo(url: str, workdir: Path) -> float:
    """Run ``healthos demo --no-serve --db url`` in ``workdir``; return the seconds taken."""
    started = time.perf_counter()
    subprocess.run(
        healthos_command("demo", "--no-serve", "--db", url),
        cwd=workdir,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


@contextmanager
def serving(
    command: Sequence[str], *, port: int, probe: str, workdir: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process, wait until ``probe`` answers 200, stop it on exit.

    Its output goes to ``<workdir>/server-<port>.log``. Stopped with SIGTERM (uvicorn
    shuts its workers down), SIGKILL after 15 s.
    """
    log = (workdir / f"server-{port}.log").open("wb")
    process = subprocess.Popen(
        list(command), cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{command[2:4]} exited early: see {log.name}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{command[2:4]} did not answer {probe} within 90 s")
            time.sleep(0.25)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's worker processes), from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by ``pid`` and its descendants, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in _process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if match is None:
        raise ValueError(f"unexpected wrk latency {value!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """Read requests/s, p50/p90/p99 (ms), request and error counts from ``wrk --latency``."""
    result: dict[str, Any] = {"non_2xx": 0, "socket_errors": 0}
    for line in output.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            result["req_s"] = float(words[1])
        elif len(words) == 2 and words[0] in ("50%", "90%", "99%"):
            result[f"p{words[0][:-1]}_ms"] = round(_ms(words[1]), 3)
        elif "requests in" in line:
            result["requests"] = int(words[0])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            result["non_2xx"] = int(words[-1])
        elif line.strip().startswith("Socket errors:"):
            result["socket_errors"] = sum(int(n) for n in re.findall(r"\d+", line))
    if "req_s" not in result or "p99_ms" not in result:
        raise ValueError(f"could not read wrk's output:\n{output}")
    return result


def run_wrk(
    url: str, *, token: str | None, seconds: int, connections: int, server_pid: int
) -> dict[str, Any]:
    """Warm up, then load ``url`` with wrk (1 thread); add the server's CPU ms/request."""
    command = ["wrk", "-t1", f"-c{connections}", "--latency"]
    if token is not None:
        command += ["-H", f"Authorization: Bearer {token}"]
    subprocess.run([*command, f"-d{WARM_UP_SECONDS}s", url], check=True, capture_output=True)
    before = cpu_seconds(server_pid)
    output = subprocess.run(
        [*command, f"-d{seconds}s", url], check=True, capture_output=True, text=True
    ).stdout
    used = cpu_seconds(server_pid) - before
    result = parse_wrk(output)
    result["server_cpu_ms_per_request"] = round(1000 * used / max(result.get("requests", 1), 1), 3)
    return result


def _judge(name: str, row: dict[str, Any]) -> None:
    target = TARGETS.get(name)
    if target is None:
        return
    ok = row["ratio"] >= target["ratio"] and row["non_2xx"] == 0 and row["socket_errors"] == 0
    if "p99_ms" in target:
        ok = ok and row["p99_ms"] <= target["p99_ms"]
    row["target"] = target
    row["verdict"] = "PASS" if ok else "FAIL"


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Build the database, start both servers and run wrk on every row."""
    url = args.postgres or f"sqlite:///{workdir / 'demo.db'}"
    if args.postgres:
        empty_database(url, reset=args.reset)
    _say(f"building the demo database ({'PostgreSQL' if args.postgres else 'SQLite'}) …")
    demo_seconds = build_demo(url, workdir)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    plain_port, api_port = free_port(), free_port()
    plain_cmd = [
        sys.executable, "-m", "uvicorn", "bench.plain_app:app", "--host", "127.0.0.1",
        "--port", str(plain_port), "--workers", "1", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    api_cmd = healthos_command(
        "serve", "--db", url, "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"
    )
    load = {"seconds": args.duration, "connections": args.connections}
    rows: dict[str, dict[str, Any]] = {}
    with (
        serving(plain_cmd, port=plain_port, probe="/plain", workdir=workdir, env=env) as plain,
        serving(api_cmd, port=api_port, probe="/health", workdir=workdir, env=env) as api,
    ):
        base = f"http://127.0.0.1:{api_port}"
        patients = httpx.get(
            f"{base}/api/v1/patients?limit=1", headers={"Authorization": "Bearer dev-clinician"}
        ).json()["data"]
        if not patients:
            raise SystemExit("the demo database has no patient")
        plans: list[tuple[str, str, str | None, int]] = [
            ("health", f"{base}/health", None, api.pid),
            ("patient", f"{base}/api/v1/patients/{patients[0]['id']}", "dev-clinician", api.pid),
            ("suggestions", f"{base}/api/v1/suggestions?limit=20", "dev-nurse", api.pid),
            (
                "suggestions_nurse",
                f"{base}/api/v1/suggestions?audience=nurse&limit=20",
                "dev-nurse",
                api.pid,
            ),
        ]
        plain_url = f"http://127.0.0.1:{plain_port}/plain"
        _say(f"wrk -t1 -c{args.connections} -d{args.duration}s on {plain_url} (first) …")
        plain_first = run_wrk(plain_url, token=None, server_pid=plain.pid, **load)
        for name, target_url, token, pid in plans:
            answer = httpx.get(
                target_url, headers={} if token is None else {"Authorization": f"Bearer {token}"}
            )
            if answer.status_code != 200:
                raise SystemExit(f"{target_url} answered {answer.status_code}: {answer.text}")
            _say(f"wrk on {name}: {target_url} …")
            rows[name] = {"url": target_url.removeprefix(base), "token": token}
            if "data" in answer.json():
                rows[name]["items"] = len(answer.json()["data"])
            rows[name].update(run_wrk(target_url, token=token, server_pid=pid, **load))
        _say(f"wrk on {plain_url} (last) …")
        plain_last = run_wrk(plain_url, token=None, server_pid=plain.pid, **load)
    baseline = (plain_first["req_s"] + plain_last["req_s"]) / 2
    for name, row in rows.items():
        row["ratio"] = round(row["req_s"] / baseline, 3)
        _judge(name, row)
    return {
        "database": "postgresql" if args.postgres else "sqlite",
        "demo_build_seconds": round(demo_seconds, 1),
        "wrk": f"-t1 -c{args.connections} -d{args.duration}s --latency (after a "
        f"{WARM_UP_SECONDS}-s warm-up)",
        "uvicorn_workers": 1,
        "plain": {"first": plain_first, "last": plain_last, "req_s": round(baseline, 1)},
        "routes": rows,
        "passed": all(row.get("verdict") == "PASS" for row in rows.values() if "target" in row),
    }


def _table(result: dict[str, Any]) -> str:
    lines = [f"{'row':<18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} {'cpu ms':>7}"]
    plain = result["plain"]
    for label, row in (("plain (first)", plain["first"]), ("plain (last)", plain["last"])):
        lines.append(
            f"{label:<18} {row['req_s']:>8.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
            f"{'':>6} {row['server_cpu_ms_per_request']:>7.3f}"
        )
    for name, row in result["routes"].items():
        lines.append(
            f"{name:<18} {row['req_s']:>8.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
            f"{row['ratio']:>6.2f} {row['server_cpu_ms_per_request']:>7.3f}  "
            f"{row.get('verdict', '')}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print a JSON result (and a table on stderr)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--postgres", metavar="URL", help="an empty PostgreSQL database (default: SQLite)"
    )
    parser.add_argument(
        "--reset", action="store_true", help="drop the HealthOS tables of --postgres first"
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit(WRK_MISSING)
    with tempfile.TemporaryDirectory(prefix="healthos-bench-api-") as tmp:
        result = measure(args, Path(tmp))
    result["machine"] = describe()
    _say(_table(result))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
