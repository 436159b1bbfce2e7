"""Every command of the README's command table, run on the demo database (issue 9 item 4).

The table under "The command line" in ``README.md`` is parsed, so a command added there is
run here too: each row becomes its human form and, where the command has ``--json``, its
JSON form, with its optional parts left out and put in. Each must exit 0 (or the code
listed in :data:`EXPECTED_EXIT`) without a traceback, and ``--json`` must print JSON.
Placeholders (``PATH``, ``DIR``, ``Patient/ID``...) take the values in
:func:`placeholder_values`: small real slices of ``../shared/data``; a new placeholder
fails the test until it is given one. ``demo`` without ``--no-serve`` and ``serve`` are
started as processes on a free port, answer ``GET /health`` and are stopped.

The workspace (built once per module): the demo database (``healthos demo --no-serve``)
with a three-patient synthea-rcm slice imported, the shipped champions copied to a
temporary models directory and MLflow writing to a temporary ``var``; nothing is written
to the repository.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner, Result

from healthos_core.settings import get_settings
from reasoning.inference import shipped_models_dir
from serving.cli import PAYER_RULE_FILES, app
from tests.conftest import SHARED_DATA
from tests.factories import SNOMED, chargemaster_csv
from tests.integration.rcm_slice import make_rcm_slice

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("readme_commands")]

README = Path(__file__).resolve().parents[2] / "README.md"
runner = CliRunner()

#: ``healthos`` commands with no row in the table, each with the reason; the README names
#: them elsewhere. Every other command must have a row (so it is run here).
NOT_IN_TABLE: dict[str, str] = {
    "sync": "it pulls from an EHR's FHIR server, which the demo workspace does not have; "
    "the README describes it under the table and tests/integration/test_sync.py runs it",
}

#: Exit codes other than 0 that a README command is documented to give on this data.
EXPECTED_EXIT: dict[str, int] = {}

#: Extra options that keep a command fast on the shared data (first N stays/rows, fewer
#: bootstrap resamples); keyed by the command's words.
FAST: dict[tuple[str, ...], list[str]] = {
    ("train", "deterioration"): ["--limit", "300", "--bootstrap", "10"],
    ("train", "readmission"): ["--limit", "800", "--bootstrap", "10"],
    ("evaluate", "deterioration"): ["--limit", "300", "--bootstrap", "10"],
    ("evaluate", "readmission"): ["--limit", "800", "--bootstrap", "10"],
    ("evaluate", "news2"): ["--limit", "100"],
}


# --------------------------------------------------------------------------- the table


def table_rows(text: str) -> list[str]:
    """The first cell of every row of the README's command table."""
    section = text.split("## The command line", 1)[1].split("\n## ", 1)[0]
    return [
        re.split(r"(?<!\\)\|", line)[1].strip()
        for line in section.splitlines()
        if line.startswith("| `healthos")
    ]


def row_commands(cell: str) -> list[str]:
    """The commands of one cell: ```healthos chargemaster load CSV` / `derive``` is two."""
    spans = [span.replace("\\|", "|") for span in re.findall(r"`([^`]+)`", cell)]
    commands = [spans[0]]
    for span in spans[1:]:
        if span.startswith("healthos "):
            commands.append(span)
        else:  # a sibling of the previous command's last sub-command
            words = commands[-1].split()
            literal = [i for i, w in enumerate(words) if re.fullmatch(r"[a-z][a-z0-9_.-]*", w)]
            commands.append(" ".join([*words[: literal[-1]], span]))
    return commands


@dataclass(frozen=True)
class Invocation:
    """One run of a README command: its words with placeholders still in."""

    template: str
    argv: tuple[str, ...]

    @property
    def words(self) -> tuple[str, ...]:
        """The literal words before the first option or placeholder (``evaluate news2``)."""
        words = []
        for token in self.argv:
            if not re.fullmatch(r"[a-z][a-z0-9_.-]*", token):
                break
            words.append(token)
        return tuple(words)

    @property
    def serves(self) -> bool:
        """Whether the command serves the API until stopped."""
        return self.words[:1] == ("serve",) or (
            self.words[:1] == ("demo",) and "--no-serve" not in self.argv
        )

    @property
    def consumes(self) -> bool:
        """Whether the command consumes the outbox until stopped (``healthos worker``)."""
        return self.words[:1] == ("worker",)

    @property
    def as_json(self) -> bool:
        return "--json" in self.argv

    def __str__(self) -> str:
        return " ".join(self.argv)


def has_json_option(words: tuple[str, ...]) -> bool:
    """Whether the CLI command named by ``words`` takes ``--json``."""
    command = get_command(app)
    for word in words:
        commands = getattr(command, "commands", None)
        if not commands or word not in commands:
            break
        command = commands[word]
    return any("--json" in getattr(param, "opts", ()) for param in command.params)


def invocations(template: str) -> list[Invocation]:
    """Human and (where the command has it) ``--json`` runs, optional parts out and in."""
    parts = re.findall(r"\[([^\]]+)\]|(\S+)", template.removeprefix("healthos "))
    alternatives = [token.split("|") for optional, token in parts if token and "|" in token]
    runs: list[Invocation] = []
    for choice in itertools.product(*alternatives):
        chosen = iter(choice)
        required: list[str] = []
        optional: list[str] = []
        for group, token in parts:
            if group:
                optional.extend(group.split())
            else:
                required.append(next(chosen) if "|" in token else token)
        least = [t for t in required if t != "--json"]
        most = [*required, *optional]
        most_human = [t for t in most if t != "--json"]
        argvs = [least, most_human]
        if "--json" in most or has_json_option(Invocation(template, tuple(least)).words):
            argvs.append([*most_human, "--json"])
        for argv in argvs:
            run = Invocation(template, tuple(argv))
            if run not in runs:
                runs.append(run)
    return runs


ROWS = table_rows(README.read_text(encoding="utf-8"))
INVOCATIONS = [
    run for cell in ROWS for command in row_commands(cell) for run in invocations(command)
]


def test_the_table_is_parsed_row_by_row() -> None:
    assert len(ROWS) >= 18
    templates = {run.template for run in INVOCATIONS}
    assert len(templates) >= len(ROWS)
    assert "healthos chargemaster derive" in templates
    assert {str(run) for run in INVOCATIONS} >= {
        "score",
        "score --kind K",
        "score --kind K --json",
        "train readmission --data PATH --json",
        "evaluate news2 --data DIR",
        "demo --no-serve",
        "demo",
    }


def cli_commands() -> list[tuple[str, ...]]:
    """Every command of the ``healthos`` CLI as its words (``("chargemaster", "load")``)."""
    found: list[tuple[str, ...]] = []

    def walk(command: object, words: tuple[str, ...]) -> None:
        children = getattr(command, "commands", None)
        if not children:
            found.append(words)
            return
        for name, child in children.items():
            walk(child, (*words, name))

    walk(get_command(app), ())
    return found


def test_every_command_is_in_the_table_or_named_with_its_reason() -> None:
    commands = cli_commands()
    tabled = {run.words[: len(words)] for run in INVOCATIONS for words in commands}
    missing = [" ".join(w) for w in commands if w not in tabled and " ".join(w) not in NOT_IN_TABLE]
    assert not missing, f"healthos commands with no README table row: {missing}"
    for name in NOT_IN_TABLE:
        assert tuple(name.split()) in commands, f"NOT_IN_TABLE names no command: {name}"
        assert tuple(name.split()) not in tabled, f"{name} has a row: drop its exemption"
        assert f"`healthos {name} " in README.read_text(encoding="utf-8"), name


# --------------------------------------------------------------------------- workspace


@dataclass(frozen=True)
class Workspace:
    root: Path
    env: dict[str, str]
    bundles: Path
    rcm: Path
    chargemaster: Path
    patient_id: str
    payer_id: str


def _gzip_lines(source: Path, target: Path) -> None:
    with gzip.open(target, "wt", encoding="utf-8") as handle:
        handle.write(source.read_text(encoding="utf-8"))


def _filter_csv(source: Path, target: Path, keep: set[str], column: str) -> None:
    opener = gzip.open if source.name.endswith(".gz") else open
    with opener(source, "rt", encoding="utf-8", newline="") as handle:  # type: ignore[operator]
        reader = csv.DictReader(handle)
        rows = [row for row in reader if row[column] in keep]
        fields = reader.fieldnames or []
    with opener(target, "wt", encoding="utf-8", newline="") as handle:  # type: ignore[operator]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def rcm_folders(shared: Path, root: Path) -> tuple[Path, Path]:
    """A synthea-rcm-shaped slice (three patients) beside their synthea-fhir-r4 bundles.

    ``evaluate scrubber``/``leakage`` read ``<rcm>/../synthea-fhir-r4/bundles``, the
    gzipped NDJSON files, ``labels.csv.gz``, ``leakage.csv`` and the payer-rule CSVs.
    """
    piece = make_rcm_slice(shared, root / "slice", patients=3)
    fhir = root / "synthea-fhir-r4"
    bundles = fhir / "bundles"
    bundles.mkdir(parents=True)
    for bundle in piece.bundles:
        (bundles / bundle.name).symlink_to(bundle)
    for info in (shared / "synthea-fhir-r4").glob("*Information*.json*"):
        (fhir / info.name).symlink_to(info)
    patients = set(piece.patient_ids)
    _filter_csv(
        shared / "synthea-fhir-r4" / "manifest.csv", fhir / "manifest.csv", patients, "patient_id"
    )
    rcm = root / "synthea-rcm"
    rcm.mkdir()
    for path in (piece.payers, piece.coverage, piece.claims, piece.claim_responses):
        _gzip_lines(path, rcm / f"{path.name}.gz")
    source = shared / "synthea-rcm"
    _filter_csv(source / "labels.csv.gz", rcm / "labels.csv.gz", patients, "patient_id")
    _filter_csv(source / "leakage.csv", rcm / "leakage.csv", patients, "patient_id")
    for name in PAYER_RULE_FILES:
        shutil.copy(source / name, rcm / name)
    return bundles, rcm


def _clean(result: Result) -> bool:
    """No exception escaped the command (``typer.Exit`` is a SystemExit)."""
    return result.exception is None or isinstance(result.exception, SystemExit)


def _ok(argv: list[str]) -> None:
    result = runner.invoke(app, argv)
    assert result.exit_code == 0 and _clean(result), (
        f"healthos {' '.join(argv)}: {result.exception!r}\n{result.output}"
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """The demo database with an rcm slice, a private models dir and MLflow store."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} is missing: this test runs the README on its slices")
    import sklearn.ensemble  # noqa: F401  (loads OpenMP, so the limit below applies to it)
    from threadpoolctl import threadpool_limits

    root = tmp_path_factory.mktemp("readme")
    shutil.copytree(shipped_models_dir(), root / "models")
    env = {
        "HEALTHOS_DATABASE_URL": f"sqlite:///{root / 'healthos.db'}",
        "HEALTHOS_VAR_DIR": str(root / "var"),
        "HEALTHOS_MODELS_DIR": str(root / "models"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    bundles, rcm = rcm_folders(SHARED_DATA, root / "data")
    chargemaster = root / "chargemaster.csv"
    chargemaster.write_text(
        chargemaster_csv(
            [f"{SNOMED},185349003,Encounter for check up,125.00,USD,510,,2024-01-01,"]
        ),
        encoding="utf-8",
    )
    with gzip.open(rcm / "payers.ndjson.gz", "rt", encoding="utf-8") as payers:
        payer_id = json.loads(payers.readline())["id"]
    with pytest.MonkeyPatch.context() as patch, threadpool_limits(limits=1):
        patch.chdir(root)
        for name, value in env.items():
            patch.setenv(name, value)
        get_settings.cache_clear()
        _ok(["demo", "--no-serve"])
        _ok(["import", str(bundles), str(rcm), "--json"])
        yield Workspace(
            root=root,
            env=env,
            bundles=bundles,
            rcm=rcm,
            chargemaster=chargemaster,
            patient_id=_first_patient(env),
            payer_id=payer_id,
        )
    get_settings.cache_clear()


def _first_patient(env: dict[str, str]) -> str:
    from sqlalchemy import select

    from healthos_core.db import make_engine
    from healthos_core.record.entities import Patient

    engine = make_engine(env["HEALTHOS_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            return str(connection.scalar(select(Patient.id).order_by(Patient.id).limit(1)))
    finally:
        engine.dispose()


def placeholder_values(ws: Workspace, run: Invocation, placeholder: str) -> list[str]:
    """What a placeholder of ``run`` stands for in this workspace."""
    words = run.words
    physionet = str(SHARED_DATA / "physionet-2012-icu-mortality")
    uci = str(SHARED_DATA / "uci-diabetes-130" / "diabetic_data.csv.gz")
    values: dict[str, list[str]] = {
        "PATH...": [str(ws.bundles), str(ws.rcm)],
        "Patient/ID": [f"Patient/{ws.patient_id}"],
        "FILE": [str(ws.root / "exported.json")],
        "CSV": [str(ws.chargemaster)],
        "K": ["clinical.news2"],
        "N": ["30"],
        "S": ["0.5"],
        "NAME": ["deterioration"],
        "P": [ws.payer_id],
        "F": ["demo-facility"],
        "R": ["authorization"],
        "DATE": ["2021-07-31"],
        "DIR": [physionet if "news2" in words else str(ws.rcm)],
        "PATH": [uci if "readmission" in words else physionet],
    }
    if placeholder not in values:
        pytest.fail(
            f"README command {run.template!r}: no value for {placeholder!r}; "
            "add one to placeholder_values"
        )
    return values[placeholder]


def concrete(ws: Workspace, run: Invocation) -> list[str]:
    argv: list[str] = []
    for token in run.argv:
        if re.fullmatch(r"[A-Z][A-Za-z]*(/[A-Z]+)?(\.\.\.)?", token):
            argv.extend(placeholder_values(ws, run, token))
        else:
            argv.append(token)
    return [*argv, *FAST.get(run.words, [])]


# --------------------------------------------------------------------------- the runs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve_and_stop(ws: Workspace, argv: list[str]) -> None:
    """Start a serving command, wait for GET /health, stop it with Ctrl+C (SIGINT)."""
    port = _free_port()
    healthos = Path(sys.executable).with_name("healthos")
    command = [str(healthos)] if healthos.exists() else [sys.executable, "-m", "serving.cli"]
    process = subprocess.Popen(
        [*command, *argv, "--port", str(port)],
        cwd=ws.root,
        env={**os.environ, **ws.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status, deadline = None, time.monotonic() + 90
        while status is None and time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                    status = reply.status
            except OSError:
                time.sleep(0.3)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
    output = stdout + stderr
    assert status == 200, f"healthos {' '.join(argv)} did not answer /health:\n{output}"
    assert "Traceback" not in output, output


def _consume_and_stop(ws: Workspace, argv: list[str]) -> None:
    """Start ``healthos worker``, wait for its first line, stop it with SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "serving.cli", *argv],
        cwd=ws.root,
        env={**os.environ, **ws.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(90, process.kill)
    watchdog.start()
    try:
        assert process.stderr is not None
        first = ""
        while "worker: consuming" not in first and process.poll() is None:
            first += process.stderr.readline()
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        watchdog.cancel()
    output = first + stdout + stderr
    assert "worker: consuming the outbox" in first, output
    assert process.returncode == 0, output
    assert "worker: stopped" in output and "Traceback" not in output, output


@pytest.mark.parametrize("run", INVOCATIONS, ids=str)
def test_readme_command_runs_without_a_traceback(workspace: Workspace, run: Invocation) -> None:
    argv = concrete(workspace, run)
    if run.serves:
        _serve_and_stop(workspace, argv)
        return
    if run.consumes:
        _consume_and_stop(workspace, argv)
        return
    result = runner.invoke(app, argv)
    described = f"healthos {' '.join(argv)} -> {result.exit_code}\n{result.output}"
    assert _clean(result), f"{result.exception!r}\n{described}"
    assert result.exit_code == EXPECTED_EXIT.get(str(run), 0), described
    assert "Traceback" not in result.output, described
    if run.as_json and result.exit_code == 0:
        text = result.stdout.strip()
        try:
            json.loads(text or "null")
        except json.JSONDecodeError:  # one JSON document per line (score)
            for line in text.splitlines():
                json.loads(line)
