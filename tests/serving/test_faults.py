"""Faults survived: kill -9 of an import and of the server, a database that goes away.

* ``healthos import`` killed (SIGKILL) mid-way leaves only whole bundles, a balanced
  ledger, and a re-run yields exactly the rows of a clean import;
* ``healthos serve`` killed mid-write leaves every payment and remittance whole or
  absent, and the same requests sent again after the restart are booked once;
* a database that cannot be reached answers 503 problem+json with ``Retry-After`` (a
  GET after retrying), never 500, and writes nothing;
* a PostgreSQL restart under load (a private cluster started here, never the shared
  server) is ridden out: GETs are retried, POSTs fail cleanly or succeed, and after the
  restart every request succeeds without restarting HealthOS.

The import, kill and restart tests run real processes on the real shared Synthea
bundles (``../shared/data/synthea-fhir-r4``) and the real PostgreSQL, on both backends
where the fault exists on both (a server restart has no SQLite counterpart).
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

import serving.deps
from healthos_core.billing.entities import ClaimResponse
from healthos_core.billing.ledger import JournalEntry, LedgerPosting, trial_balance
from healthos_core.billing.remittance import ClaimResponseAdjudication
from healthos_core.db import Base, make_engine, make_session_factory, session_scope
from healthos_core.fhir.importer import import_document, import_paths
from healthos_core.migrate import upgrade
from healthos_core.record.entities import Patient
from healthos_core.settings import DEV_TOKENS, Settings
from serving.main import create_app
from tests.conftest import (
    BACKENDS,
    POSTGRES_URL,
    SHARED_DATA,
    postgres_url_for_schema,
    table_counts,
)
from tests.core.test_remittance import PAYER, fhir_claim, fhir_response, paid_line
from tests.factories import make_organization, make_patient, new_id

logger = logging.getLogger(__name__)
HEALTHOS = str(Path(sys.executable).with_name("healthos"))
PG_BIN = Path("/usr/lib/postgresql/15/bin")
BUNDLES = SHARED_DATA / "synthea-fhir-r4"
SLICE = 12  # the smallest bundles: a few seconds to import
FINANCE = {"Authorization": "Bearer dev-finance"}
CLINICIAN = {"Authorization": "Bearer dev-clinician"}
PROBLEM = "application/problem+json"


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Database:
    """A private database: its URL (for child processes) and an engine (for checks)."""

    url: str
    engine: Engine


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database (its own SQLite file or PostgreSQL schema) for processes to use."""
    schema = f"hos_fault_{os.getpid()}_{new_id()[:8]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'faults.db'}"
    else:
        url = postgres_url_for_schema(schema)
    engine = make_engine(url)
    yield Database(url, engine)
    engine.dispose()
    if request.param == "postgresql":
        admin = make_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process and everything it started (kill -9 of its process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


class Server:
    """``healthos serve`` in a child process (its own process group)."""

    def __init__(self, url: str, *, workers: int = 1) -> None:
        self.url, self.workers = url, workers
        self.process: subprocess.Popen[bytes] | None = None
        self.base = ""

    def start(self) -> Server:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "HEALTHOS_ENVIRONMENT": "test"}
        workers = ["--workers", str(self.workers)] if self.workers > 1 else []
        self.process = subprocess.Popen(
            [HEALTHOS, "serve", "--db", self.url, "--port", str(port), *workers],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def up() -> bool:
            try:
                return httpx.get(f"{self.base}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 60, "healthos serve to answer /health")
        return self

    def kill(self) -> None:
        if self.process is not None:
            kill_group(self.process)


def checks(engine: Engine) -> dict[str, Any]:
    """What must hold after any fault: balanced ledger, remittances whole or absent."""
    with session_scope(make_session_factory(engine)) as session:
        posted = set(session.scalars(select(ClaimResponseAdjudication.claim_response_id)))
        stored = set(session.scalars(select(ClaimResponse.id)))
        postings = select(LedgerPosting.journal_entry_id).where(
            LedgerPosting.journal_entry_id == JournalEntry.id
        )
        empty = session.scalar(
            select(func.count()).select_from(JournalEntry).where(~postings.exists())
        )
        sources = set(
            session.scalars(
                select(JournalEntry.source_ref).where(
                    JournalEntry.source_ref.like("ClaimResponse/%")
                )
            )
        )
        return {
            "balanced": trial_balance(session)["balanced"],
            "responses_with_entries": {s.removeprefix("ClaimResponse/") for s in sources},
            "responses_posted": posted,
            "responses_stored": stored,
            "entries_without_postings": empty,
        }


# --------------------------------------------------------------------------- import


def synthea_slice(folder: Path) -> list[Path]:
    """Symlinks to the ``SLICE`` smallest shared Synthea bundles (never copies)."""
    with (BUNDLES / "manifest.csv").open(newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["json_bytes"]))[:SLICE]
    folder.mkdir()
    for row in rows:
        (folder / row["file"]).symlink_to(BUNDLES / "bundles" / row["file"])
    return sorted(folder.iterdir())


@pytest.fixture(scope="module")
def clean_import(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Row counts, in total and per patient, of a clean import of the slice."""
    root = tmp_path_factory.mktemp("clean")
    folder = root / "bundles"
    synthea_slice(folder)
    engine = make_engine(f"sqlite:///{root / 'clean.db'}")
    upgrade(engine)
    report = import_paths(make_session_factory(engine), [folder])
    assert report.imported["Patient"] == SLICE and not report.rejected
    result = {"counts": table_counts(engine), "per_patient": per_patient_counts(engine)}
    engine.dispose()
    return result


def per_patient_counts(engine: Engine) -> dict[str, dict[str, int]]:
    """Patient id → {table: rows of that patient} over every table with a patient_id."""
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if "patient_id" not in table.c or table.name.startswith("ledger"):
                continue
            for patient_id, n in conn.execute(
                select(table.c.patient_id, func.count()).group_by(table.c.patient_id)
            ):
                if patient_id is not None:
                    out.setdefault(patient_id, {})[table.name] = int(n)
    return out


def test_import_killed_mid_way_leaves_whole_bundles_and_a_rerun_completes(
    database: Database, clean_import: dict[str, Any], tmp_path: Path
) -> None:
    """kill -9 of ``healthos import`` after its first bundles: only whole bundles stay."""
    folder = tmp_path / "bundles"
    synthea_slice(folder)
    command = [HEALTHOS, "import", str(folder), "--db", database.url, "--json"]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )

    def patients() -> int:
        try:
            with database.engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(Patient)).scalar_one())
        except sa.exc.DBAPIError:  # not migrated yet
            return 0

    try:
        wait_until(lambda: patients() >= 2, 60, "the first bundles to be committed")
    finally:
        kill_group(process)
    assert process.returncode == -signal.SIGKILL
    present = patients()
    assert 2 <= present < SLICE, "the import was not killed mid-way"

    # Every bundle that is in is whole: its patient's rows are all there, as in a clean run.
    after_kill = per_patient_counts(database.engine)
    assert len(after_kill) == present
    for patient_id, rows in after_kill.items():
        assert rows == clean_import["per_patient"][patient_id], patient_id
    assert checks(database.engine)["balanced"]

    rerun = subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert table_counts(database.engine) == clean_import["counts"]
    assert checks(database.engine)["balanced"]


# --------------------------------------------------------------------------- server


@dataclass
class Billing:
    """A committed patient with submitted claims, and the requests that pay them."""

    patient_id: str
    claim_ids: list[str]

    def payment(self, n: int) -> tuple[str, dict[str, Any]]:
        return (
            f"/api/v1/patients/{self.patient_id}/payments",
            {"amount": f"{n % 7 + 1}.50", "reference": f"PaymentReconciliation/kill-{n}"},
        )

    def remittance(self, n: int) -> tuple[str, dict[str, Any]]:
        claim_id = self.claim_ids[n]
        response = fhir_response(
            claim_id,
            self.patient_id,
            {1: paid_line("100.00", "30.00", "20.00")},
            response_id=f"cr-{claim_id}",
        )
        return "/api/v1/remittances", response


def billing_record(engine: Engine, claims: int) -> Billing:
    upgrade(engine)
    with session_scope(make_session_factory(engine)) as session:
        make_organization(session, id=PAYER, name="Test PPO", type_code="pay")
        patient_id = make_patient(session).id
        claim_ids = [new_id() for _ in range(claims)]
        for claim_id in claim_ids:
            import_document(session, fhir_claim(claim_id, patient_id, ["100.00"]))
    return Billing(patient_id, claim_ids)


def send(base: str, path: str, body: dict[str, Any]) -> int:
    """POST ``body``; the status, or 0 when the connection failed (the server died)."""
    try:
        return httpx.post(base + path, json=body, headers=FINANCE, timeout=30).status_code
    except httpx.HTTPError:
        return 0


def test_server_killed_mid_write_leaves_whole_records_and_retries_book_once(
    database: Database,
) -> None:
    """kill -9 of ``healthos serve`` among 8 clients' payments and remittances."""
    record = billing_record(database.engine, claims=4)
    requests = [record.payment(n) for n in range(20)]
    requests[::5] = [record.remittance(n) for n in range(4)]
    requests += [record.payment(n) for n in range(1, 20, 5)]  # the same references again
    payments = {n for n in range(20) if n % 5}
    server = Server(database.url).start()
    answered: list[int] = []
    killing, killed = threading.Lock(), threading.Event()
    try:

        def fire(request: tuple[str, dict[str, Any]]) -> int:
            status = send(server.base, *request)
            with killing:  # one kill -9, once 8 writes are in (later answers are refusals)
                answered.append(status)
                if sum(1 for s in answered if s) == 8 and not killed.is_set():
                    killed.set()
                    server.kill()
            return status

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(fire, requests))
    finally:
        server.kill()
    assert 0 in statuses, "the server was not killed mid-way"
    assert all(s in (0, 200, 201) for s in statuses), sorted(set(statuses))

    state = checks(database.engine)
    assert state["balanced"] and state["entries_without_postings"] == 0
    # A remittance is whole or absent: response, adjudications and ledger entries together.
    assert state["responses_with_entries"] == state["responses_posted"]
    assert state["responses_stored"] == state["responses_posted"]

    server = Server(database.url).start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            again = list(pool.map(lambda request: send(server.base, *request), requests))
        report = httpx.get(f"{server.base}/api/v1/billing/report", headers=FINANCE, timeout=30)
    finally:
        server.kill()
    assert set(again) <= {200, 201}, sorted(set(again))
    assert report.status_code == 200 and report.json()["ledger"]["balanced"]
    with session_scope(make_session_factory(database.engine)) as session:
        booked = session.scalars(
            select(JournalEntry).where(JournalEntry.kind == "patient_payment")
        ).all()
        assert len(booked) == len(payments)  # each reference once, however often it was sent
        total = sum((line.debit for entry in booked for line in entry.postings), Decimal("0"))
        assert total == sum((Decimal(record.payment(n)[1]["amount"]) for n in payments), Decimal(0))
    state = checks(database.engine)
    assert state["responses_posted"] == {f"cr-{c}" for c in record.claim_ids}
    assert state["responses_with_entries"] == state["responses_posted"] and state["balanced"]


# --------------------------------------------------------------------------- unreachable


def unreachable_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}"  # a folder: "unable to open database file"
    return f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"  # nobody listens


@pytest.mark.parametrize("backend", BACKENDS)
def test_unreachable_database_is_503_with_retry_after_never_500(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GETs retry (on a server) and then answer 503; POSTs answer 503 at once; never 500."""
    pauses: list[float] = []
    monkeypatch.setattr(serving.deps, "time", SimpleNamespace(sleep=pauses.append))
    engine = make_engine(unreachable_url(backend, tmp_path))
    app = create_app(Settings(environment="test", api_tokens=DEV_TOKENS), engine=engine)  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        read = client.get("/api/v1/patients", headers=CLINICIAN)
        # A server may come back (a restart): GETs wait for it. A SQLite file that cannot
        # be opened will not, and its reads run on the event loop, which must not sleep.
        assert len(pauses) == (0 if backend == "sqlite" else serving.deps.CONNECT_RETRIES)
        pauses.clear()
        write = client.post(
            "/api/v1/patients/p-1/payments", json={"amount": "5.00"}, headers=FINANCE
        )
        assert pauses == []
    for response in (read, write):
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["retry-after"] == "2"
        assert response.json()["code"] == "database-unavailable"
        assert "nothing was written" in response.json()["detail"]
    engine.dispose()


# --------------------------------------------------------------------------- PG restart


class PrivateCluster:
    """A throwaway PostgreSQL 15 cluster on a free port (run as the postgres user)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hos-pg-"))
        shutil.chown(self.dir, "postgres")
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=60
        )

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.dir / "data"),
            "-w",
            "-o",
            options,
            "-l",
            str(self.dir / "log"),
            action,
            *extra,
        )

    def init(self) -> PrivateCluster:
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.dir / "data"),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self._ctl("start")
        return self

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def start(self) -> None:
        self._ctl("start")

    def destroy(self) -> None:
        try:
            self._ctl("stop", "-m", "immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)


def test_postgresql_restart_under_load_is_ridden_out() -> None:
    """A private cluster stops for a second under load; HealthOS recovers by itself."""
    if shutil.which("runuser") is None or not (PG_BIN / "initdb").is_file():
        pytest.fail("this test needs PostgreSQL 15's initdb/pg_ctl and runuser")
    cluster = PrivateCluster().init()
    server: Server | None = None
    try:
        engine = make_engine(cluster.url)
        record = billing_record(engine, claims=1)
        engine.dispose()
        server = Server(cluster.url, workers=1).start()
        base = server.base
        outcomes: dict[str, list[int]] = {"GET": [], "POST": []}
        problems: list[str] = []
        stop = threading.Event()

        def load(worker: int) -> None:
            n = 0
            with httpx.Client(base_url=base, timeout=30) as client:
                while not stop.is_set():
                    n += 1
                    if n % 2:
                        r = client.get(f"/api/v1/patients/{record.patient_id}", headers=CLINICIAN)
                        outcomes["GET"].append(r.status_code)
                    else:
                        path, body = record.payment(worker * 10_000 + n)
                        r = client.post(path, json=body, headers=FINANCE)
                        outcomes["POST"].append(r.status_code)
                        if r.status_code == 503:
                            retried = client.post(path, json=body, headers=FINANCE)
                            while retried.status_code == 503 and not stop.is_set():
                                time.sleep(float(retried.headers["retry-after"]) / 4)
                                retried = client.post(path, json=body, headers=FINANCE)
                            outcomes["POST"].append(retried.status_code)
                    if r.status_code >= 500 and r.status_code != 503:
                        problems.append(f"{r.request.method} {r.status_code} {r.text[:200]}")
                    if r.status_code == 503:
                        if (
                            r.headers.get("content-type") != PROBLEM
                            or "retry-after" not in r.headers
                        ):
                            problems.append(f"503 without problem+json/Retry-After: {r.headers}")

        threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        before = dict(outcomes_count(outcomes))
        cluster.stop()
        time.sleep(1.0)  # the outage: nothing listens
        cluster.start()
        time.sleep(2.0)
        during = outcomes_count(outcomes)
        marks = {k: len(v) for k, v in outcomes.items()}
        time.sleep(1.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        after = {k: v[marks[k] :] for k, v in outcomes.items()}
        logger.warning(
            "PostgreSQL restart under load: before %s; through the restart %s; after %s",
            before,
            during,
            outcomes_count(after),
        )
        assert problems == []
        assert after["GET"] and set(after["GET"]) == {200}
        assert after["POST"] and set(after["POST"]) <= {201}
        engine = make_engine(cluster.url)
        assert checks(engine)["balanced"]
        with session_scope(make_session_factory(engine)) as session:
            booked = session.scalar(
                select(func.count())
                .select_from(JournalEntry)
                .where(JournalEntry.kind == "patient_payment")
            )
        engine.dispose()
        # Every POST answered 201 was booked once; a 503 wrote nothing (and was sent again).
        assert booked == outcomes["POST"].count(201)
    finally:
        if server is not None:
            server.kill()
        cluster.destroy()


def outcomes_count(outcomes: dict[str, list[int]]) -> dict[str, dict[int, int]]:
    return {k: {s: v.count(s) for s in sorted(set(v))} for k, v in outcomes.items()}
