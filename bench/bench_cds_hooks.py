"""Benchmark: CDS Hooks ``patient-view`` beside healthchain's own CDS service, same cards.

Builds the demo database (``healthos demo --no-serve``, SQLite, in a temporary folder),
starts ``healthos serve --workers 1``, picks the demo patient with the most
``patient-view`` cards and keeps those cards. Then starts, with one uvicorn worker too,
**healthchain**'s CDS service (``HealthChainAPI`` + ``CDSHooksService``, healthchain's
documented way to serve CDS Hooks) whose ``patient-view`` handler returns **the same
cards** (validated into healthchain's ``Card`` models, as its handlers do). healthchain
pins ``fastapi<0.138`` and ``fhir.resources<8.2``, which conflict with HealthOS's, so it
lives in a virtual environment of its own, created by this script under
``bench/.venv-healthchain`` (``pip install healthchain==0.16.1``; reused on later runs).

Load: ``wrk -t1 -c16 -d10s --latency`` with a Lua script POSTing the same CDS Hooks
request to each (HealthOS with ``Authorization: Bearer dev-clinician``), after a 2-second
warm-up; healthchain is measured first and last (its mean is the baseline). Target:
HealthOS ≥ 2.5× healthchain's requests/s.

Then, against the running HealthOS, healthchain's **SandboxClient** (its CDS Hooks test
client, in the healthchain environment) sends ``patient-view`` and ``encounter-discharge``
requests and validates the answers into its ``CDSResponse``; and a feedback round trip
(override the first card, then send the same feedback again) shows the lifecycle action.

Prints one JSON document (requests/s, p50/p99, ratio, server CPU ms per request, the
SandboxClient and feedback results, the machine). Usage::

    python -m bench.bench_cds_hooks [--duration S] [--connections N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path
from typing import Any

import httpx

from bench.bench_api import (
    REPO,
    WARM_UP_SECONDS,
    WRK_MISSING,
    build_demo,
    cpu_seconds,
    free_port,
    healthos_command,
    parse_wrk,
    serving,
)
from bench.machine import describe

HEALTHCHAIN = "healthchain==0.16.1"
HEALTHCHAIN_VENV = REPO / "bench" / ".venv-healthchain"
TARGET_RATIO = 2.5
SERVICE = "healthos-patient-view"
TOKEN = "dev-clinician"

#: healthchain's CDS service returning the cards in ``$HC_CARDS`` (a JSON list).
HEALTHCHAIN_APP = """
import json, os
from healthchain.gateway import CDSHooksService, HealthChainAPI
from healthchain.models import CDSRequest, CDSResponse
from healthchain.models.responses.cdsresponse import Card

CARDS = json.loads(open(os.environ["HC_CARDS"]).read())
app = HealthChainAPI()
cds = CDSHooksService()


@cds.hook("patient-view", id="healthos-patient-view")
def patient_view(request: CDSRequest) -> CDSResponse:
    return CDSResponse(cards=[Card(**card) for card in CARDS])


app.register_service(cds)
"""

#: healthchain's SandboxClient against HealthOS (argv: base URL, token, patient, encounter).
SANDBOX = """
import functools, json, sys
import httpx
from healthchain.sandbox import SandboxClient
from healthchain.sandbox.requestconstructors import CdsRequestConstructor
from healthchain.sandbox.workflows import Workflow

base, token, patient, encounter = sys.argv[1:5]
answers = []


def keep(response):
    response.read()
    answers.append((response.status_code, response.json().get("detail")))


# SandboxClient sends no credentials; HealthOS's services need a bearer token.
httpx.Client = functools.partial(
    httpx.Client,
    headers={"Authorization": f"Bearer {token}"},
    event_hooks={"response": [keep]},
)
out = {}
for workflow, service, context in (
    ("patient-view", "healthos-patient-view", {"patientId": patient}),
    ("encounter-discharge", "healthos-encounter-discharge",
     {"patientId": patient, "encounterId": encounter}),
):
    client = SandboxClient(url=f"{base}/cds-services/{service}", workflow=workflow)
    request = CdsRequestConstructor().construct_request(
        prefetch_data={}, workflow=Workflow(workflow),
        context={"userId": "Practitioner/sandbox", **context},
    )
    client.requests.append(request)
    sent = request.model_dump(exclude_none=True, mode="json")
    answers.clear()
    responses = client.send_requests()
    out[workflow] = {
        "requests": len(client.requests),
        "responses": len(responses),
        "cards": [len(r.get("cards", [])) for r in responses],
        "summaries": [c["summary"] for r in responses for c in r.get("cards", [])][:5],
        "validated_as": "healthchain.models.CDSResponse",
        "context_sent": sorted(sent["context"]),
        "http": [{"status": status, "detail": detail} for status, detail in answers],
    }
print(json.dumps(out))
"""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def healthchain_python() -> Path:
    """Return the healthchain environment's interpreter, creating the environment if needed."""
    python = HEALTHCHAIN_VENV / "bin" / "python"
    if python.exists():
        return python
    _say(f"creating {HEALTHCHAIN_VENV} and installing {HEALTHCHAIN} …")
    venv.create(HEALTHCHAIN_VENV, with_pip=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", HEALTHCHAIN], check=True, stdout=sys.stderr
    )
    return python


def run_wrk_post(
    url: str, body: dict[str, Any], *, token: str | None, seconds: int, connections: int,
    server_pid: int, workdir: Path,
) -> dict[str, Any]:  # fmt: skip
    """Warm up, then POST ``body`` to ``url`` with wrk; add the server's CPU ms/request."""
    script = workdir / f"post-{abs(hash(url))}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    command = ["wrk", "-t1", f"-c{connections}", "--latency", "-s", str(script)]
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


def _patient_with_most_cards(base: str, client: httpx.Client) -> tuple[str, str, dict[str, Any]]:
    """Return (patient id, its current encounter, the patient-view request with most cards)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    encounters = client.get(
        f"{base}/api/v1/encounters?status=in-progress&limit=100", headers=headers
    ).json()["data"]
    best: tuple[int, str, str, dict[str, Any]] = (-1, "", "", {})
    for encounter in encounters:
        request = {
            "hook": "patient-view",
            "hookInstance": "bench",
            "context": {"userId": "Practitioner/bench", "patientId": encounter["patient_id"]},
        }
        cards = client.post(f"{base}/cds-services/{SERVICE}", json=request, headers=headers)
        count = len(cards.json()["cards"])
        if count > best[0]:
            best = (count, encounter["patient_id"], encounter["id"], request)
    if best[0] < 1:
        raise SystemExit("no demo patient has a patient-view card")
    return best[1], best[2], best[3]


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Build the demo, start both servers, run wrk, the SandboxClient and a feedback round trip."""
    hc_python = healthchain_python()
    url = f"sqlite:///{workdir / 'demo.db'}"
    _say("building the demo database (SQLite) …")
    build_demo(url, workdir)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    api_port, hc_port = free_port(), free_port()
    api_cmd = healthos_command(
        "serve", "--db", url, "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"
    )
    load = {"seconds": args.duration, "connections": args.connections, "workdir": workdir}
    result: dict[str, Any] = {}
    with serving(api_cmd, port=api_port, probe="/health", workdir=workdir, env=env) as api:
        base = f"http://127.0.0.1:{api_port}"
        with httpx.Client(timeout=30) as client:
            patient, encounter, request = _patient_with_most_cards(base, client)
            answer = client.post(
                f"{base}/cds-services/{SERVICE}", json=request,
                headers={"Authorization": f"Bearer {TOKEN}"},
            ).json()  # fmt: skip
        cards = answer["cards"]
        (workdir / "cards.json").write_text(json.dumps(cards))
        (workdir / "hc_app.py").write_text(HEALTHCHAIN_APP)
        hc_env = {"HC_CARDS": str(workdir / "cards.json"), "PATH": os.environ.get("PATH", "")}
        hc_cmd = [
            str(hc_python), "-m", "uvicorn", "hc_app:app", "--host", "127.0.0.1",
            "--port", str(hc_port), "--workers", "1", "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        with serving(hc_cmd, port=hc_port, probe="/cds/cds-discovery", workdir=workdir,
                     env=hc_env) as hc:  # fmt: skip
            hc_url = f"http://127.0.0.1:{hc_port}/cds/cds-services/{SERVICE}"
            same = httpx.post(hc_url, json=request, timeout=30).json()["cards"]
            same_cards = [c["uuid"] for c in same] == [c["uuid"] for c in cards]
            _say(f"wrk on healthchain {hc_url} (first) …")
            hc_first = run_wrk_post(hc_url, request, token=None, server_pid=hc.pid, **load)
            _say(f"wrk on HealthOS {base}/cds-services/{SERVICE} …")
            ours = run_wrk_post(
                f"{base}/cds-services/{SERVICE}", request, token=TOKEN, server_pid=api.pid, **load
            )
            _say("wrk on healthchain (last) …")
            hc_last = run_wrk_post(hc_url, request, token=None, server_pid=hc.pid, **load)
        baseline = (hc_first["req_s"] + hc_last["req_s"]) / 2
        ratio = round(ours["req_s"] / baseline, 3)
        ok = ratio >= TARGET_RATIO and ours["non_2xx"] == 0 and ours["socket_errors"] == 0
        result["patient_view"] = {
            "cards": len(cards),
            "same_cards_from_both": same_cards,
            "request_bytes": len(json.dumps(request)),
            "response_bytes": len(json.dumps(answer)),
            "healthchain": {
                "first": hc_first, "last": hc_last, "req_s": round(baseline, 1),
            },
            "healthos": ours,
            "ratio": ratio,
            "target_ratio": TARGET_RATIO,
            "verdict": "PASS" if ok else "FAIL",
        }  # fmt: skip
        _say("healthchain SandboxClient against HealthOS …")
        (workdir / "sandbox.py").write_text(SANDBOX)
        sandbox = subprocess.run(
            [str(hc_python), str(workdir / "sandbox.py"), base, TOKEN, patient, encounter],
            capture_output=True, text=True, check=False, env=hc_env,
        )  # fmt: skip
        result["sandbox_client"] = (
            json.loads(sandbox.stdout.strip().splitlines()[-1])
            if sandbox.returncode == 0
            else {"error": sandbox.stderr[-2000:]}
        )
        result["feedback"] = feedback_round_trip(base, cards[0]["uuid"])
    return result


def feedback_round_trip(base: str, card: str) -> dict[str, Any]:
    """Override a card, send the same feedback again, and show what each did."""
    body = {
        "feedback": [
            {
                "card": card,
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {
                        "system": "tag:healthos.org,2025:cds-override-reason",
                        "code": "already-addressed",
                        "display": "Already addressed",
                    },
                    "userComment": "escalated at the bedside",
                },
                "outcomeTimestamp": "2026-12-07T10:00:00Z",
            }
        ]
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{base}/cds-services/{SERVICE}/feedback"
    first = httpx.post(url, json=body, headers=headers, timeout=30)
    again = httpx.post(url, json=body, headers=headers, timeout=30)
    sid = first.json()["recorded"][0]["suggestion_id"]
    detail = httpx.get(f"{base}/api/v1/suggestions/{sid}", headers=headers, timeout=30).json()
    return {
        "first": {"http_status": first.status_code, **first.json()["recorded"][0]},
        "again": {"http_status": again.status_code, **again.json()["recorded"][0]},
        "suggestion_status": detail["status"],
        "status_reason": detail["status_reason"],
        "actions": [(a["action"], a["role"]) for a in detail["actions"]],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print a JSON result."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit(WRK_MISSING)
    with tempfile.TemporaryDirectory(prefix="healthos-bench-cds-") as tmp:
        result = measure(args, Path(tmp))
    result["wrk"] = (
        f"-t1 -c{args.connections} -d{args.duration}s --latency (after a "
        f"{WARM_UP_SECONDS}-s warm-up), one uvicorn worker each"
    )
    result["healthchain"] = HEALTHCHAIN
    result["machine"] = describe()
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
