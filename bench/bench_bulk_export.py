"""Benchmark: FHIR Bulk Data export of the whole shared Synthea record through `healthos serve`.

1. Loads the shared data set (488 Synthea patients, ~150k resources) into a fresh
   database with ``healthos import`` (or uses ``--db`` as it is, with ``--no-load``);
2. starts ``healthos serve`` on 127.0.0.1 and runs the Bulk Data flow as a client does:
   ``GET /fhir/$export`` (``Prefer: respond-async``), polls the status URL until the
   manifest, streams every NDJSON file to disk, ``DELETE``\\ s the job;
3. prints the export's wall time (kick-off to manifest), the download time, resources
   and bytes exported, resources/s, and the server's peak resident memory (``VmHWM`` of
   the server process; target < 1 GiB: rows are read ``yield_per`` and written line by
   line, files streamed from disk).

Usage::

    python -m bench.bench_bulk_export [--db URL] [--no-load] [--limit N] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.machine import describe

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "synthea-fhir-r4" / "bundles"
ADMIN = {"Authorization": "Bearer dev-admin"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _load(url: str, data: Path, limit: int | None) -> tuple[float, int]:
    files = sorted(str(p) for p in data.iterdir() if p.name.endswith(".json.gz"))[:limit]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "serving.cli", "import", *files, "--db", url, "--json"],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    report = json.loads(done.stdout)
    return time.perf_counter() - started, sum(report["imported"].values())


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run the benchmark and print a JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite)")
    parser.add_argument("--no-load", action="store_true", help="export --db as it is")
    parser.add_argument("--limit", type=int, default=None, help="first N bundles only")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = args.db or f"sqlite:///{folder / 'bench.db'}"
        load_seconds, loaded = (0.0, 0) if args.no_load else _load(url, args.data, args.limit)
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHOS_")}
        env["PYTHONPATH"] = str(REPO)
        env["HEALTHOS_VAR_DIR"] = str(folder / "var")
        server = subprocess.Popen(
            [sys.executable, "-m", "serving.cli", "serve", "--db", url, "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            rss_before = _peak_rss_mib(server.pid)
            started = time.perf_counter()
            kickoff = httpx.get(
                f"{base}/fhir/$export", headers={**ADMIN, "Prefer": "respond-async"}, timeout=30
            )
            assert kickoff.status_code == 202, kickoff.text
            status_url = kickoff.headers["Content-Location"]
            polls = 0
            while True:
                status = httpx.get(status_url, headers=ADMIN, timeout=30)
                polls += 1
                if status.status_code == 200:
                    break
                assert status.status_code == 202, status.text
                time.sleep(0.5)
            export_seconds = time.perf_counter() - started
            manifest = status.json()
            downloaded = 0
            lines = 0
            started = time.perf_counter()
            out = folder / "download"
            out.mkdir()
            for item in manifest["output"]:
                target = out / f"{item['type']}.ndjson"
                with (
                    httpx.stream("GET", item["url"], headers=ADMIN, timeout=60) as response,
                    target.open("wb") as handle,
                ):
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
                        downloaded += len(chunk)
                        lines += chunk.count(b"\n")
            download_seconds = time.perf_counter() - started
            assert httpx.delete(status_url, headers=ADMIN, timeout=30).status_code == 202
            peak = _peak_rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)

    exported = sum(item["count"] for item in manifest["output"])
    result = {
        "benchmark": "bulk_export",
        "database": url.split("@")[-1] if args.db else "sqlite (temporary file)",
        "loaded": {"resources": loaded, "seconds": round(load_seconds, 1)},
        "export": {
            "resources": exported,
            "types": len(manifest["output"]),
            "seconds_to_manifest": round(export_seconds, 2),
            "resources_per_s": round(exported / export_seconds, 1),
            "status_polls": polls,
        },
        "download": {
            "bytes": downloaded,
            "ndjson_lines": lines,
            "seconds": round(download_seconds, 2),
        },
        "server_peak_rss_mib": peak,
        "server_rss_before_export_mib": rss_before,
        "target_peak_rss_mib": 1024,
        "machine": describe(),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
