"""Soak test: a bounded mixed load on ``healthos serve --workers N`` over PostgreSQL.

Issue 9 item 10. Builds the demo database in ``--postgres URL`` (default the ``hos_load`` database:
``createdb -h 127.0.0.1 -U postgres hos_load``; it must be empty, or pass ``--reset``),
starts ``healthos serve --workers N`` (default 3) in its own process, and for
``--duration`` seconds (default 600) drives it from this process with ``--clients``
(default 8) concurrent httpx clients, each sending its next request as soon as the
last one is answered, picked at random with these weights:

=================== ====== ============================================= ============
kind                weight request                                       expected
=================== ====== ============================================= ============
``patient``         25     ``GET /api/v1/patients/{id}`` (clinician)      200
``worklist``        25     ``GET /api/v1/suggestions?limit=20`` (nurse)   200
``encounters``      10     ``GET /api/v1/encounters?patient={id}``         200
``encounter``       10     ``GET /api/v1/encounters/{id}`` (clinician)    200
``payment``         15     ``POST /api/v1/patients/{id}/payments``        201
                           (finance; a unique reference each)
``suggestion``      15     ``POST /api/v1/suggestions/{id}/note``,        200; 409 for
                           ``/acknowledge`` or ``/act`` (nurse)           a closed one
=================== ====== ============================================= ============

Beside them, from this process: every ``--import-every`` seconds (default 20) a clinical
write, ``healthos import`` of a bundle of fresh vital signs (heart and respiratory rate,
SpO2, temperature, systolic pressure) for an in-progress demo encounter; and every
``--score-every`` seconds (default 60) ``healthos score``, which re-scores the record and
stores its suggestions. Both must exit 0.

The server processes' resident memory (``VmRSS`` of the uvicorn master and each worker,
from ``/proc``) is sampled every 10 s. Memory is flat when no process grows by more than
``--max-growth-mb`` (default 25 MiB) between the end of the warm-up (the first
``--warm-up`` seconds, default 60: connection pools, SQLAlchemy's statement cache and the
allocator's arenas fill) and the end of the run; the least-squares slope after the
warm-up is printed too.

An error is any answer other than the expected ones for its kind (any 5xx, any other
4xx), any connection error or timeout, and any failed import or scoring run. Prints one
JSON document (requests, errors, p50/p99 per kind, RSS at start, middle and end and its
slope, the machine) and exits 1 on any error or on memory growth. Usage::

    python -m bench.load_mixed [--postgres URL] [--reset] [--workers N] [--clients N]
        [--duration S]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.bench_api import (
    REPO,
    _process_tree,
    build_demo,
    empty_database,
    free_port,
    healthos_command,
    serving,
)
from bench.machine import describe

DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/hos_load"
#: Request kinds and their weights (percent).
WEIGHTS = {
    "patient": 25,
    "worklist": 25,
    "encounters": 10,
    "encounter": 10,
    "payment": 15,
    "suggestion": 15,
}
RSS_EVERY_SECONDS = 10
TIMEOUT_SECONDS = 30
#: Vital signs written by the clinical-write step: LOINC code, display, UCUM unit, range.
VITALS = (
    ("8867-4", "Heart rate", "/min", (55, 135)),
    ("9279-1", "Respiratory rate", "/min", (10, 28)),
    ("59408-5", "Oxygen saturation by pulse oximetry", "%", (88, 99)),
    ("8310-5", "Body temperature", "Cel", (35.5, 39.5)),
    ("8480-6", "Systolic blood pressure", "mm[Hg]", (85, 160)),
)
_OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer dev-{role}"}


@dataclass
class Tally:
    """Outcomes and latencies of one kind of work."""

    latencies_ms: list[float] = field(default_factory=list)
    expected_4xx: int = 0
    errors: int = 0

    def summary(self) -> dict[str, Any]:
        """Count, errors, expected 4xx and p50/p99 latency (ms)."""
        ordered = sorted(self.latencies_ms)

        def pct(q: float) -> float | None:
            return (
                round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else None
            )

        return {
            "requests": len(ordered),
            "errors": self.errors,
            "expected_4xx": self.expected_4xx,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
        }


@dataclass
class Load:
    """What the load works on, and what it saw."""

    patients: list[str]
    encounters: list[str]
    in_progress: list[tuple[str, str]]  # (encounter id, patient id)
    suggestions: list[str]
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    tallies: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    error_samples: list[dict[str, Any]] = field(default_factory=list)
    sequence: int = 0

    def error(self, kind: str, detail: dict[str, Any]) -> None:
        """Count an error of ``kind`` and keep the first ten for the report."""
        self.tallies[kind].errors += 1
        if len(self.error_samples) < 10:
            self.error_samples.append({"kind": kind, **detail})


async def _request(client: httpx.AsyncClient, load: Load, kind: str, rng: random.Random) -> None:
    expected = {200}
    if kind == "patient":
        method, url, role, body = (
            "GET",
            f"/api/v1/patients/{rng.choice(load.patients)}",
            "clinician",
            None,
        )
    elif kind == "worklist":
        method, url, role, body = "GET", "/api/v1/suggestions?limit=20", "nurse", None
    elif kind == "encounters":
        patient = rng.choice(load.patients)
        method, url, role, body = (
            "GET",
            f"/api/v1/encounters?patient={patient}&limit=20",
            "clinician",
            None,
        )
    elif kind == "encounter":
        method, url, role, body = (
            "GET",
            f"/api/v1/encounters/{rng.choice(load.encounters)}",
            "clinician",
            None,
        )
    elif kind == "payment":
        load.sequence += 1
        reference = f"PaymentReconciliation/load-{load.run}-{load.sequence}"
        amount = f"{rng.randint(1, 40)}.{rng.randint(0, 99):02d}"
        method, role = "POST", "finance"
        url = f"/api/v1/patients/{rng.choice(load.patients)}/payments"
        body = {"amount": amount, "reference": reference}
        expected = {201}
    else:
        action = rng.choice(("note", "note", "acknowledge", "act"))
        url = f"/api/v1/suggestions/{rng.choice(load.suggestions)}/{action}"
        method, role, body = "POST", "nurse", {"reason": f"load test {action}"}
        if action != "note":
            expected = {200, 409}  # acknowledging or acting on a closed suggestion
    started = time.perf_counter()
    try:
        answer = await client.request(method, url, headers=_auth(role), json=body)
    except httpx.HTTPError as exc:
        load.error(kind, {"url": url, "exception": type(exc).__name__})
        return
    load.tallies[kind].latencies_ms.append(1000 * (time.perf_counter() - started))
    if answer.status_code not in expected:
        load.error(kind, {"url": url, "status": answer.status_code, "body": answer.text[:300]})
    elif answer.status_code >= 400:
        load.tallies[kind].expected_4xx += 1
    elif kind == "worklist":
        seen = [item["id"] for item in answer.json()["data"]]
        if seen:
            load.suggestions[: len(seen)] = seen  # keep acting on what the ward sees


async def _client_loop(client: httpx.AsyncClient, load: Load, deadline: float, seed: int) -> None:
    rng = random.Random(seed)
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    while time.monotonic() < deadline:
        await _request(client, load, rng.choices(kinds, weights)[0], rng)


def vitals_bundle(
    encounter_id: str, patient_id: str, at: dt.datetime, rng: random.Random
) -> dict[str, Any]:
    """A FHIR collection Bundle of one set of vital signs for an encounter (synthetic)."""
    entries = []
    for code, display, unit, (low, high) in VITALS:
        value = round(rng.uniform(low, high), 1)
        entries.append(
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": f"load-{uuid.uuid4().hex}",
                    "status": "final",
                    "category": [
                        {"coding": [{"system": _OBSERVATION_CATEGORY, "code": "vital-signs"}]}
                    ],
                    "code": {
                        "coding": [{"system": "http://loinc.org", "code": code, "display": display}]
                    },
                    "subject": {"reference": f"Patient/{patient_id}"},
                    "encounter": {"reference": f"Encounter/{encounter_id}"},
                    "effectiveDateTime": at.isoformat().replace("+00:00", "Z"),
                    "valueQuantity": {
                        "value": value,
                        "unit": unit,
                        "system": "http://unitsofmeasure.org",
                        "code": unit,
                    },
                }
            }
        )
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


async def _run_cli(load: Load, kind: str, args: list[str], workdir: Path) -> None:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *healthos_command(*args),
        cwd=workdir,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    load.tallies[kind].latencies_ms.append(1000 * (time.perf_counter() - started))
    if process.returncode != 0:
        load.error(kind, {"exit": process.returncode, "stderr": stderr.decode()[-300:]})


async def _every(seconds: float, deadline: float, step: Any) -> None:
    """Run ``step`` every ``seconds`` (the first after ``seconds``) until the deadline."""
    due = time.monotonic() + seconds
    while due <= deadline:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        await step()
        due += seconds


def rss_mib(pid: int) -> dict[int, float]:
    """Resident memory (MiB) of ``pid`` and each of its descendants."""
    sizes = {}
    for member in _process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                sizes[member] = round(int(line.split()[1]) / 1024, 1)
    return sizes


def describe_processes(pid: int) -> dict[int, str]:
    """What each server process is: the uvicorn master (``pid``) or another process."""
    names = {}
    for member in _process_tree(pid):
        try:
            command = Path(f"/proc/{member}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = " ".join(part.decode() for part in command if part)
        if member == pid:
            names[member] = "master (healthos serve)"
        elif "multiprocessing-fork" in text:
            names[member] = "worker"
        else:
            names[member] = "resource tracker" if "resource_tracker" in text else text[-60:]
    return names


def _slope_mib_per_minute(samples: list[tuple[float, float]]) -> float | None:
    if len(samples) < 3:
        return None
    times = [t for t, _ in samples]
    values = [v for _, v in samples]
    return round(statistics.linear_regression(times, values).slope * 60, 3)


async def drive(
    args: argparse.Namespace, base: str, server_pid: int, url: str, workdir: Path
) -> dict[str, Any]:
    """Discover the demo's records, run the load and the sampler until the deadline."""
    async with httpx.AsyncClient(
        base_url=base,
        timeout=TIMEOUT_SECONDS,
        limits=httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients),
    ) as client:
        patients = (
            await client.get("/api/v1/patients?limit=500", headers=_auth("clinician"))
        ).json()
        encounters = (
            await client.get("/api/v1/encounters?limit=500", headers=_auth("clinician"))
        ).json()
        worklist = (
            await client.get("/api/v1/suggestions?limit=500", headers=_auth("nurse"))
        ).json()
        load = Load(
            patients=[p["id"] for p in patients["data"]],
            encounters=[e["id"] for e in encounters["data"]],
            in_progress=[
                (e["id"], e["patient_id"])
                for e in encounters["data"]
                if e["status"] == "in-progress"
            ],
            suggestions=[s["id"] for s in worklist["data"]],
        )
        if not (load.patients and load.encounters and load.in_progress and load.suggestions):
            raise SystemExit("the demo database lacks patients, encounters or suggestions")
        rng = random.Random(20251207)
        samples: list[tuple[float, dict[int, float]]] = []
        started = time.monotonic()
        deadline = started + args.duration

        async def sample() -> None:
            samples.append((time.monotonic() - started, rss_mib(server_pid)))

        async def clinical_write() -> None:
            encounter_id, patient_id = rng.choice(load.in_progress)
            path = workdir / f"vitals-{uuid.uuid4().hex[:8]}.json"
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            path.write_text(json.dumps(vitals_bundle(encounter_id, patient_id, now, rng)))
            await _run_cli(load, "import", ["import", str(path), "--db", url], workdir)

        async def score() -> None:
            await _run_cli(load, "score", ["score", "--json", "--db", url], workdir)

        await sample()
        processes = describe_processes(server_pid)
        _say(f"load: {args.clients} clients for {args.duration} s on {args.workers} workers …")
        await asyncio.gather(
            *(_client_loop(client, load, deadline, seed) for seed in range(args.clients)),
            _every(RSS_EVERY_SECONDS, deadline, sample),
            _every(args.import_every, deadline, clinical_write),
            _every(args.score_every, deadline, score),
        )
        await sample()
    result = _report(args, load, samples, time.monotonic() - started)
    result["rss_mib"]["processes"] = processes
    return result


def _report(
    args: argparse.Namespace,
    load: Load,
    samples: list[tuple[float, dict[int, float]]],
    elapsed: float,
) -> dict[str, Any]:
    after = [(t, sizes) for t, sizes in samples if t >= args.warm_up] or samples[-1:]
    growth = {
        pid: round(after[-1][1][pid] - after[0][1][pid], 1)
        for pid in after[-1][1]
        if pid in after[0][1]
    }
    totals = [(t, sum(sizes.values())) for t, sizes in after]
    middle = samples[len(samples) // 2]
    kinds = {kind: load.tallies[kind].summary() for kind in (*WEIGHTS, "import", "score")}
    requests = sum(kinds[kind]["requests"] for kind in WEIGHTS)
    errors = sum(tally["errors"] for tally in kinds.values())
    flat = all(value <= args.max_growth_mb for value in growth.values())
    return {
        "database": "postgresql",
        "workers": args.workers,
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "requests": requests,
        "requests_per_second": round(requests / elapsed, 1),
        "errors": errors,
        "kinds": kinds,
        "error_samples": load.error_samples,
        "rss_mib": {
            "start": samples[0][1],
            "end_of_warm_up": after[0][1],
            "middle": middle[1],
            "end": samples[-1][1],
            "growth_after_warm_up": growth,
            "total_slope_mib_per_minute_after_warm_up": _slope_mib_per_minute(totals),
            "max_growth_mb": args.max_growth_mb,
            "samples": len(samples),
        },
        "memory_flat": flat,
        "passed": errors == 0 and flat,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the soak test, print a JSON result; exit 1 on any error or memory growth."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--postgres", metavar="URL", default=DEFAULT_DATABASE)
    parser.add_argument("--reset", action="store_true", help="drop its HealthOS tables first")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=int, default=600, help="seconds of load")
    parser.add_argument("--warm-up", type=int, default=60, help="seconds before memory counts")
    parser.add_argument("--import-every", type=float, default=20.0)
    parser.add_argument("--score-every", type=float, default=60.0)
    parser.add_argument("--max-growth-mb", type=float, default=25.0)
    args = parser.parse_args(argv)
    empty_database(args.postgres, reset=args.reset)
    with tempfile.TemporaryDirectory(prefix="healthos-load-") as tmp:
        workdir = Path(tmp)
        _say("building the demo database …")
        build_demo(args.postgres, workdir)
        port = free_port()
        command = healthos_command(
            "serve", "--db", args.postgres, "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(args.workers),
        )  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with serving(command, port=port, probe="/ready", workdir=workdir, env=env) as server:
            result = asyncio.run(
                drive(args, f"http://127.0.0.1:{port}", server.pid, args.postgres, workdir)
            )
    result["machine"] = describe()
    print(json.dumps(result, indent=2))
    if not result["passed"]:
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    main()
