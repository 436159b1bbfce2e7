"""The ``healthos`` command line (typer + rich).

Every command takes ``--db URL`` (default: the embedded SQLite file under ``./var/``,
or ``HEALTHOS_DATABASE_URL``) and exits non-zero with a one-line reason on bad input.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.db import make_engine, make_session_factory
from healthos_core.errors import HealthOSError, NotFoundError
from healthos_core.settings import get_settings

if TYPE_CHECKING:
    from reasoning.suggestion import Suggestion

app = typer.Typer(
    name="healthos",
    help="HealthOS: one live hospital record, billing truth and advisory reasoning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
chargemaster_app = typer.Typer(help="Chargemaster (CDM): load prices, derive them from claims.")
db_app = typer.Typer(help="Database schema.")
billing_app = typer.Typer(help="Revenue cycle: reports, claims, remittances.")
app.add_typer(chargemaster_app, name="chargemaster")
app.add_typer(db_app, name="db")
app.add_typer(billing_app, name="billing")

err = Console(stderr=True)
out = Console()

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL (default: HEALTHOS_DATABASE_URL or ./var/healthos.db)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="ISO date (meaning the end of that day, UTC) or date-time with its zone "
        "(2021-07-31T12:00:00Z); default now.",
    ),
]

EXIT_INVALID = 2
EXIT_NOT_FOUND = 3
#: ``healthos import``: one or more files (units) were rejected; the others were imported.
EXIT_REJECTED = 4


def fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    """Print a one-line reason to stderr and exit with ``code``."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


#: The modules of the ``train`` extra (``pip install 'healthos[train]'``): ``healthos train``
#: and ``healthos evaluate`` need them; serving and scoring use onnxruntime only.
TRAIN_EXTRA_MODULES = ("sklearn", "skl2onnx", "onnx", "mlflow", "pandas")


def require_train_extra(command: str) -> None:
    """Exit with a one-line reason if the ``train`` extra's libraries are not installed."""
    import importlib.util

    from rich.markup import escape

    missing = [m for m in TRAIN_EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        fail(
            escape(
                f"healthos {command} needs the training libraries ({', '.join(missing)} "
                "missing): pip install 'healthos[train]'"
            )
        )


@contextmanager
def translate_errors() -> Iterator[None]:
    """Map HealthOS errors to one-line messages and exit codes (the CLI's one boundary)."""
    try:
        yield
    except NotFoundError as exc:
        fail(str(exc), EXIT_NOT_FOUND)
    except HealthOSError as exc:
        fail(str(exc))


def open_database(db: str | None) -> tuple[Engine, sessionmaker[Session]]:
    """Create the engine for ``db`` (or the settings' URL), migrate it to head."""
    from healthos_core.migrate import upgrade

    url = db or get_settings().resolved_database_url
    try:
        engine = make_engine(url)
        upgrade(engine)
    except Exception as exc:
        fail(f"cannot open database {_safe_url(url)}: {str(exc).splitlines()[0]}")
    return engine, make_session_factory(engine)


def _safe_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def progress_bar(console: Console | None = None) -> Progress:
    """Return a rich progress bar for long work (on stderr, so ``--json`` stays clean)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or err,
        transient=False,
    )


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (Decimals as strings)."""
    sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")


def print_report(data: Any, as_json: bool) -> None:
    """Print a report: plain JSON with ``--json``, else highlighted JSON for a person."""
    if as_json:
        print_json(data)
    else:
        out.print_json(data=data, default=str)


def parse_as_of(value: str | None) -> dt.datetime | None:
    """Parse an ``--as-of`` value by the API's rule; ``None`` means now.

    An ISO date means the end of that day, UTC; a date-time needs its zone
    (:func:`healthos_core.fhir.refs.parse_as_of`). Anything else exits 2 naming ``--as-of``.
    """
    from healthos_core.fhir.refs import parse_as_of as parse

    if value is None:
        return None
    with translate_errors():
        return parse(value, name="--as-of")


# --------------------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Create or migrate the database schema to the newest revision."""
    engine, _ = open_database(db)
    out.print(f"database at {_safe_url(str(engine.url))} is up to date")


# --------------------------------------------------------------------------- import / export


@app.command("import")
def import_(
    paths: Annotated[
        list[Path], typer.Argument(help="FHIR files or folders, or a PhysioNet 2012 folder.")
    ],
    db: DbOption = None,
    as_json: JsonOption = False,
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            help="Parameter → LOINC mapping CSV for long-format .csv files "
            "(columns patient,time,parameter,value).",
        ),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Treat the FHIR files as a live feed, like the record service's writes: "
            "their encounters, procedures, medication administrations and observations "
            "publish live events in their bundle's transaction, so charges post "
            "(re-importing posts nothing new). Default: a back-load of history (no "
            "charges, no rescoring).",
        ),
    ] = False,
    run_score: Annotated[
        bool,
        typer.Option(
            "--score",
            help="After the import, run the scorers once over the record and store their "
            "suggestions (as 'healthos score' does; with --json their count per kind is "
            'in the report under "scored").',
        ),
    ] = False,
) -> None:
    """Import FHIR R4 Bundles / NDJSON (.json, .ndjson, .gz, folders) into the record.

    By default the files are a back-load of history: stored at bulk speed, no clinical
    event published, so nothing is charged or rescored (imported Claims and
    ClaimResponses are still posted to the ledger). ``--live`` treats them as a live
    feed, like the record service's writes; ``--score`` runs one batch scoring at the end.

    A folder laid out like the PhysioNet 2012 challenge data (set-*.tar.gz) is imported
    through the long-format observation importer with the shipped LOINC mapping; long
    ``.csv`` files (patient,time,parameter,value) need ``--mapping``. Both are always a
    back-load.

    Each bundle (unit) is imported whole or not at all; the good ones are kept when others
    are rejected. Exit codes: 0 everything imported; 2 bad arguments (nothing imported);
    4 some files were rejected (each reason printed once; the rest were imported).
    """
    from healthos_core.fhir.importer import iter_source_files
    from healthos_core.wiring import wire_live_path

    for path in paths:
        if not path.exists():
            fail(f"{path}: no such file or folder")
    physionet = [p for p in paths if p.is_dir() and any(p.glob("set-*.tar.gz"))]
    long_files = [p for p in paths if p.is_file() and p.suffix == ".csv"]
    if long_files and mapping is None:
        fail(f"{long_files[0]}: long-format CSV needs --mapping MAP.csv (parameter → LOINC)")
    if mapping is not None and not mapping.is_file():
        fail(f"{mapping}: no such mapping file")
    if live and (physionet or long_files):
        fail(
            f"{(physionet or long_files)[0]}: --live applies to FHIR files; PhysioNet "
            "folders and long-format CSV are imported as a back-load only"
        )
    _, factory = open_database(db)
    wire_live_path()  # charge capture (for --live) and remittance posting
    fhir_paths = [p for p in paths if p not in physionet and p not in long_files]
    result: dict[str, Any] = {}
    with translate_errors():
        if fhir_paths:
            files = list(iter_source_files(fhir_paths))
            result = _import_fhir(factory, fhir_paths, files, live=live)
        for folder in physionet:
            result = _merge_reports(result, _import_physionet(factory, folder, as_json))
        for csv_path in long_files:
            result = _merge_reports(result, _import_long_csv(factory, csv_path, mapping))
        for folder in fhir_paths:
            if folder.is_dir() and (folder / "contracts.csv").is_file():
                result.setdefault("payer_rules", {}).update(load_payer_rules(factory, folder))
        suggestions = _run_scorers(factory, kind=None, when=None) if run_score else None
    if as_json:
        if suggestions is not None:
            result["scored"] = dict(sorted(Counter(s.kind for s in suggestions).items()))
        print_json(result)
    else:
        _print_import_summary(result)
        if suggestions is not None:
            _print_scores(suggestions, as_json=False)
    if result.get("rejected"):
        raise typer.Exit(EXIT_REJECTED)


@app.command("sync")
def sync(
    source: Annotated[
        str, typer.Option("--from", help="Base URL of the source FHIR server (the EHR).")
    ],
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="ISO instant to export changes since (default: the transactionTime of the "
            "last complete sync from this source; the first sync takes everything).",
        ),
    ] = None,
    every: Annotated[
        float | None,
        typer.Option("--every", min=1.0, help="Sync again every SECONDS until interrupted."),
    ] = None,
    types: Annotated[
        str | None,
        typer.Option("--type", help="Only these resource types, comma-separated (_type)."),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pull the source's FHIR Bulk Data export and write it through the live path.

    Parallel run (docs/parallel-run.md): the EHR's changes since the last sync are
    exported ($export, _since), downloaded and imported as a live feed: charges post and
    the record is rescored as if the EHR had written through the API. The source's token
    comes from HEALTHOS_SYNC_TOKEN. Exit codes: 0 synced; 2 bad arguments or the source
    refused; 4 some files were rejected (the next sync asks again from the same point).
    """
    from healthos_core.wiring import wire_live_path
    from serving.sync import state_file, sync_once

    settings = get_settings()
    token = settings.sync_token.get_secret_value() if settings.sync_token else None
    wanted = [t.strip() for t in types.split(",") if t.strip()] if types else None
    _, factory = open_database(db)
    wire_live_path()
    state = state_file(settings.var_dir, source)
    while True:
        with translate_errors(), progress_bar() as progress:
            task = progress.add_task(f"sync from {source}", total=None)

            def note(text: str, task: TaskID = task) -> None:
                progress.update(task, description=f"export: {text}")

            result = sync_once(
                factory,
                source,
                state_path=state,
                since=since,
                token=token,
                types=wanted,
                on_progress=note,
            )
        if as_json:
            print_json(result)
        else:
            imported = sum(result["imported"].values())
            out.print(
                f"synced {imported} resources in {result['files']} files from {source} "
                f"(changes since {result['since'] or 'the beginning'} up to "
                f"{result['transaction_time']})"
            )
        if result["rejected"]:
            for rejection in result["rejected"]:
                err.print(f"rejected {rejection['file']}: {rejection['reason']}")
            raise typer.Exit(EXIT_REJECTED)
        if every is None:
            return
        since = None  # from now on, from the kept state
        time.sleep(every)


def _import_fhir(
    factory: sessionmaker[Session], paths: list[Path], files: list[Path], *, live: bool
) -> dict[str, Any]:
    """Import FHIR files with a progress bar; rejections are reported once, at the end."""
    from healthos_core.fhir.importer import UnitResult, import_paths

    with progress_bar() as progress:
        task = progress.add_task("import FHIR" + (" (live)" if live else ""), total=len(files))

        def on_file(path: Path, result: UnitResult | None, reason: str | None) -> None:
            progress.advance(task)

        report = import_paths(
            factory, paths, on_file=on_file, origin="live" if live else "backload"
        )
    return report.to_dict()


def _import_physionet(factory: sessionmaker[Session], folder: Path, quiet: bool) -> dict[str, Any]:
    from healthos_core.observations_import import import_physionet2012

    with progress_bar() as progress:
        task = progress.add_task(f"import {folder.name}", total=None)
        report = import_physionet2012(
            factory,
            folder,
            on_stay=lambda n, total: progress.update(task, completed=n, total=total),
        )
    return report.to_dict()


def _import_long_csv(
    factory: sessionmaker[Session], path: Path, mapping_path: Path | None
) -> dict[str, Any]:
    from healthos_core.observations_import import import_long_rows, load_mapping, read_long_csv

    mapping = load_mapping(mapping_path)
    rows = read_long_csv(path)
    with factory.begin() as session:
        report = import_long_rows(session, rows, mapping, source=path.name)
    return report.to_dict()


def _merge_reports(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    if not a:
        return b
    merged = dict(a)
    merged["files"] = a.get("files", 0) + b.get("files", 0)
    for key in ("imported", "created", "skipped", "flagged"):
        combined = dict(a.get(key, {}))
        for name, count in b.get(key, {}).items():
            combined[name] = combined.get(name, 0) + count
        merged[key] = combined
    merged["rejected"] = a.get("rejected", []) + b.get("rejected", [])
    merged["seconds"] = round(a.get("seconds", 0) + b.get("seconds", 0), 3)
    return merged


def _print_import_summary(result: dict[str, Any]) -> None:
    from rich.table import Table

    rejected = result.get("rejected", [])
    table = Table(
        title=f"Imported from {result.get('files', 0)} files in {result.get('seconds', 0)} s"
        + (f" ({len(rejected)} rejected)" if rejected else "")
    )
    table.add_column("resource type")
    table.add_column("imported", justify="right")
    table.add_column("new", justify="right")
    for name, count in result.get("imported", {}).items():
        table.add_row(name, str(count), str(result.get("created", {}).get(name, 0)))
    for name, count in result.get("skipped", {}).items():
        table.add_row(f"[dim]{name} (not stored)[/]", "0", f"[dim]skipped {count}[/]")
    out.print(table)
    for name, count in result.get("flagged", {}).items():
        out.print(f"flagged as implausible, not imported as facts: {name}: {count}")
    for unit in rejected:
        err.print(
            f"[red]rejected[/] {unit['file']}: {unit['reason']}", highlight=False, soft_wrap=True
        )


@app.command("export")
def export(
    reference: Annotated[str, typer.Argument(help="Patient/ID")],
    db: DbOption = None,
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file.")] = None,
) -> None:
    """Write a patient's FHIR R4 Bundle (Patient/$everything shape)."""
    from healthos_core.fhir.exporter import export_patient

    resource_type, _, patient_id = reference.partition("/")
    if resource_type != "Patient" or not patient_id:
        fail(f"{reference!r} is not a Patient reference: pass Patient/<id>")
    _, factory = open_database(db)
    with translate_errors(), factory() as session:
        bundle = export_patient(session, patient_id)
    text = json.dumps(bundle, indent=2)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        err.print(f"wrote {len(bundle['entry'])} resources to {output}")
    else:
        sys.stdout.write(text + "\n")


# --------------------------------------------------------------------------- chargemaster


@chargemaster_app.command("load")
def chargemaster_load(
    csv_path: Annotated[
        Path, typer.Argument(help="CSV: code_system,code,description,unit_price,currency,...")
    ],
    db: DbOption = None,
) -> None:
    """Load (or update) chargemaster prices from a CSV file, all rows or none."""
    from healthos_core.billing.chargemaster import load_chargemaster_csv

    if not csv_path.is_file():
        fail(f"{csv_path}: no such file")
    _, factory = open_database(db)
    with translate_errors(), factory.begin() as session:
        count = load_chargemaster_csv(session, csv_path)
    out.print(f"loaded {count} chargemaster entries from {csv_path}")


@chargemaster_app.command("derive")
def chargemaster_derive(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Build chargemaster prices from the prices seen on imported claims."""
    from healthos_core.billing.chargemaster import derive_chargemaster_from_claims

    _, factory = open_database(db)
    with translate_errors(), factory.begin() as session:
        count = derive_chargemaster_from_claims(session)
    if as_json:
        print_json({"derived": count})
    else:
        out.print(f"derived {count} chargemaster entries from imported claims")


# --------------------------------------------------------------------------- billing


@billing_app.command("report")
def billing_report(
    db: DbOption = None,
    as_json: JsonOption = False,
    as_of: AsOfOption = None,
) -> None:
    """Print billing totals, A/R by aging bucket, initial denial rate by payer, ledger check."""
    from healthos_core.billing.reports import billing_report as build_report

    when = parse_as_of(as_of)
    _, factory = open_database(db)
    with translate_errors(), factory() as session:
        report = build_report(session, as_of=when)
    print_report(report, as_json)


PAYER_RULE_FILES = (
    "contracts.csv",
    "service_categories.csv",
    "unit_limits.csv",
    "bundling_edits.csv",
)


def load_payer_rules(factory: sessionmaker[Session], folder: Path) -> dict[str, int]:
    """Load contracts, service codes (+ unit limits) and bundling edits found in ``folder``."""
    from healthos_core.billing.payers import (
        load_bundling_edits_csv,
        load_contracts_csv,
        load_service_codes,
    )

    loaded: dict[str, int] = {}
    with factory.begin() as session:
        if (folder / "contracts.csv").is_file():
            loaded["contracts"] = load_contracts_csv(session, folder / "contracts.csv")
        if (folder / "service_categories.csv").is_file():
            limits = folder / "unit_limits.csv"
            loaded["service_codes"] = load_service_codes(
                session, folder / "service_categories.csv", limits if limits.is_file() else None
            )
        if (folder / "bundling_edits.csv").is_file():
            loaded["bundling_edits"] = load_bundling_edits_csv(
                session, folder / "bundling_edits.csv"
            )
    return loaded


@billing_app.command("load-contracts")
def billing_load_contracts(
    folder: Annotated[Path, typer.Argument(help="Folder with contracts.csv etc.")],
    db: DbOption = None,
) -> None:
    """Load payer contracts, service categories, unit limits and bundling edits (CSV)."""
    if not folder.is_dir() or not any((folder / name).is_file() for name in PAYER_RULE_FILES):
        fail(f"{folder}: no {', '.join(PAYER_RULE_FILES)} found")
    _, factory = open_database(db)
    with translate_errors():
        loaded = load_payer_rules(factory, folder)
    out.print(", ".join(f"{name}: {count}" for name, count in loaded.items()))


# --------------------------------------------------------------------------- evaluate / score


MODEL_NAMES = ("deterioration", "readmission")


@app.command("evaluate")
def evaluate(
    name: Annotated[
        str,
        typer.Argument(help="deterioration, readmission, denial, news2, scrubber or leakage"),
    ],
    data: Annotated[
        Path, typer.Option("--data", help="Dataset in its own layout (folder or file).")
    ],
    as_json: JsonOption = False,
    limit: Annotated[int | None, typer.Option(help="First N stays/rows only.")] = None,
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples for the 95% intervals (models).")
    ] = 1000,
    bundles: Annotated[
        Path | None,
        typer.Option(
            "--bundles",
            help="Synthea FHIR bundles the synthea-rcm data refers to "
            "(default: ../synthea-fhir-r4/bundles beside it).",
        ),
    ] = None,
    cohort: Annotated[
        str,
        typer.Option(
            "--cohort",
            help="Models: held-out (the patients training held out), unseen (every row the "
            "champion was not fitted on: external validation) or all (every row; says how "
            "many were in training).",
        ),
    ] = "held-out",
) -> None:
    """Measure a model, a score or the claim scrubber against real outcomes; print metrics.

    ``deterioration`` and ``news2`` take the PhysioNet 2012 folder; ``readmission`` the UCI
    ``diabetic_data.csv.gz``; ``denial``, ``scrubber`` and ``leakage`` the synthea-rcm
    folder (its bundles are found in ``../synthea-fhir-r4/bundles`` beside it, or
    ``--bundles``). ``denial`` measures the claim and line champions beside the scrubber's
    rules alone (``{"n", "auroc", "auprc", "brier", "line": {...}, "rules": {...}}``).
    Models are measured on the patients their champion's training held out, or with
    ``--cohort unseen|all`` on every row it was not fitted on / every row, with ``cohort``,
    ``rows`` and ``rows_seen_in_training`` in the output; ``leakage``
    compares the findings as of the data's date (2021-07-31) with its ``leakage.csv``
    (``--limit`` = the first N bundles' patients).
    """
    known = (*MODEL_NAMES, "denial", "news2", "scrubber", "leakage")
    if name not in known:
        fail(f"unknown evaluation {name!r}: available: {', '.join(known)}")
    if not data.exists():
        fail(f"{data}: no such file or folder")
    if cohort != "held-out" and name not in MODEL_NAMES:
        fail(f"--cohort applies to {' and '.join(MODEL_NAMES)} only")
    require_train_extra("evaluate")
    if name in MODEL_NAMES:
        result = _evaluate_model(name, data, cohort=cohort, limit=limit, bootstrap=bootstrap)
    elif name == "denial":
        from models.evaluation.denial import evaluate_denial
        from reasoning.inference import ModelNotAvailableError

        if not data.is_dir():
            fail(f"{data}: denial takes the synthea-rcm folder")
        with translate_errors(), progress_bar() as progress:
            task = progress.add_task("importing the Synthea bundles", total=limit)
            try:
                result = evaluate_denial(
                    data,
                    bundles=bundles,
                    limit=limit,
                    n_bootstrap=bootstrap,
                    progress=lambda n: progress.update(task, completed=n),
                )
            except (FileNotFoundError, ValueError, ModelNotAvailableError) as exc:
                fail(str(exc))
    elif name == "leakage":
        from models.evaluation.leakage import evaluate_leakage

        if not data.is_dir():
            fail(f"{data}: leakage takes the synthea-rcm folder")
        with translate_errors():
            try:
                result = evaluate_leakage(
                    data,
                    bundles=bundles,
                    limit=limit,
                    log=lambda line: err.print(line, highlight=False),
                )
            except (FileNotFoundError, ValueError) as exc:
                fail(str(exc))
    elif name == "scrubber":
        from models.evaluation.scrubber import evaluate_scrubber

        with translate_errors():
            try:
                result = evaluate_scrubber(data, log=lambda line: err.print(line, highlight=False))
            except (FileNotFoundError, ValueError) as exc:
                fail(str(exc))
    else:
        from models.evaluation.news2 import evaluate_news2

        if not data.is_dir():
            fail(f"{data}: news2 takes the PhysioNet 2012 folder")
        with translate_errors(), progress_bar() as progress:
            task = progress.add_task("NEWS2 on ICU stays", total=limit)
            try:
                result = evaluate_news2(
                    data, limit=limit, progress=lambda n: progress.update(task, completed=n)
                )
            except (FileNotFoundError, ValueError) as exc:
                fail(str(exc))
    print_report(result, as_json)


def _evaluate_model(
    name: str, data: Path, *, cohort: str, limit: int | None, bootstrap: int
) -> dict[str, Any]:
    from models.evaluation.model import COHORTS, evaluate_model
    from reasoning.inference import ModelNotAvailableError

    if cohort not in COHORTS:
        fail(f"unknown cohort {cohort!r}: available: {', '.join(COHORTS)}")
    with translate_errors(), progress_bar() as progress:
        task = progress.add_task(f"reading {data.name}", total=limit)
        try:
            return evaluate_model(
                name,
                data,
                cohort=cohort,
                limit=limit,
                n_bootstrap=bootstrap,
                progress=lambda n: progress.update(task, completed=n),
            )
        except (FileNotFoundError, ValueError, ModelNotAvailableError) as exc:
            fail(str(exc))


#: What ``healthos train NAME`` fits: ``denial`` is the claim and the line model.
TRAINED_TOGETHER: dict[str, tuple[str, ...]] = {
    "deterioration": ("deterioration",),
    "readmission": ("readmission",),
    "denial": ("denial", "denial_line"),
}


@app.command("train")
def train(
    name: Annotated[str, typer.Argument(help="deterioration, readmission or denial")],
    data: Annotated[
        Path, typer.Option("--data", help="Dataset in its own layout (folder or file).")
    ],
    limit: Annotated[
        int | None, typer.Option(help="First N stays/rows (denial: patients' bundles) only.")
    ] = None,
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples for the 95% intervals.")
    ] = 1000,
    tolerance: Annotated[
        float, typer.Option(help="Slack when comparing with the champion (AUROC, Brier).")
    ] = 0.0,
    bundles: Annotated[
        Path | None,
        typer.Option(
            "--bundles",
            help="denial: the Synthea bundles synthea-rcm refers to "
            "(default: ../synthea-fhir-r4/bundles beside it).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train a model, log it to MLflow, register it and promote it if no worse.

    The run, the ONNX model, its manifest and model card go to the MLflow store
    (``HEALTHOS_MLFLOW_TRACKING_URI``, default ``./var/mlflow.db``); a promoted model is
    written to the models directory, where scoring and serving load it. ``denial`` trains
    the claim-level model and the line-level model (``denial_line``) from one read of the
    data; ``--json`` then prints the claim report with the line report under ``"line"``.
    """
    if name not in TRAINED_TOGETHER:
        fail(f"unknown model {name!r}: available: {', '.join(TRAINED_TOGETHER)}")
    if not data.exists():
        fail(f"{data}: no such file or folder")
    if bundles is not None and name != "denial":
        fail("--bundles applies to the denial model only")
    require_train_extra("train")
    from models.training import ParityError
    from models.training import train as run_training

    options = {"bundles": bundles} if bundles is not None else None
    results: list[dict[str, Any]] = []
    with translate_errors(), progress_bar() as progress:
        for model in TRAINED_TOGETHER[name]:
            task = progress.add_task(f"{model}: reading {data.name}", total=limit)

            def stage(text: str, task: Any = task, model: str = model) -> None:
                progress.update(task, description=f"{model}: {text}")

            def read(n: int, task: Any = task) -> None:
                progress.update(task, completed=n)

            try:
                report = run_training(
                    model,
                    data,
                    limit=limit,
                    n_bootstrap=bootstrap,
                    tolerance=tolerance,
                    stage=stage,
                    progress=read,
                    data_options=options,
                )
            except ParityError as exc:
                fail(str(exc))
            except (FileNotFoundError, ValueError) as exc:
                fail(str(exc))
            results.append(report.to_dict())
    if as_json:
        result = results[0]
        if len(results) > 1:
            result["line"] = results[1]
        print_json(result)
        return
    for model, result in zip(TRAINED_TOGETHER[name], results, strict=True):
        metrics = result["metrics"]
        out.print(
            f"{model} v{result['version']} (run {result['run_id']}): test n={metrics['n']:,} "
            f"AUROC {metrics['auroc']} AUPRC {metrics['auprc']} Brier {metrics['brier']}; "
            f"parity max |Δp| {result['parity_max_abs_diff']:.1e}; "
            + ("promoted to @champion" if result["promoted"] else "not promoted")
            + f": {result['reason']}",
            highlight=False,
        )


@app.command("drift")
def drift(
    name: Annotated[str, typer.Argument(help="deterioration or readmission")],
    days: Annotated[int, typer.Option(help="Recent encounters of the last N days.")] = 30,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare recent encounters with the training sample: PSI per feature.

    PSI < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift (Siddiqi 2006).
    """
    from models.drift import drift_report, recent_matrix
    from reasoning.inference import models_dir

    if name not in MODEL_NAMES:
        fail(f"unknown model {name!r}: available: {', '.join(MODEL_NAMES)}")
    _, factory = open_database(db)
    with translate_errors():
        with factory() as session:
            recent = recent_matrix(session, name, as_of=dt.datetime.now(dt.UTC), days=days)
        report = drift_report(name, recent, directory=models_dir())
    if as_json:
        print_json(report)
        return
    out.print(
        f"{name} v{report['model']['version']}: {report['n_recent']} recent encounters vs "
        f"{report['n_reference']} training rows; max PSI {report['max_psi']:.3f}",
        highlight=False,
    )
    for row in report["features"][:10]:
        out.print(f"  {row['feature']:<32} {row['psi']:.3f}  {row['status']}", highlight=False)


def _score_line(suggestion: Any) -> dict[str, Any]:
    """Return one ``score --json`` line.

    The suggestion's dict, with its ``evidence`` at the top level too and, for revenue
    leakage, the ``leakage_kind`` (the suggestion's band).
    """
    line: dict[str, Any] = suggestion.to_dict()
    line["evidence"] = list(suggestion.explanation.evidence)
    if suggestion.kind == "finance.revenue_leakage":
        line["leakage_kind"] = suggestion.band
    return line


@app.command("score")
def score(
    kind: Annotated[
        str | None, typer.Option("--kind", help="Only this kind, e.g. clinical.news2.")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Score the record as it stood at this ISO date (the end of that day, UTC) "
            "or date-time with its zone; default now. The shared synthea-rcm data is as of "
            "2021-07-31.",
        ),
    ] = None,
) -> None:
    """Run the scorers over the record, store their suggestions and print them."""
    when = parse_as_of(as_of)
    _, factory = open_database(db)
    with translate_errors():
        suggestions = _run_scorers(factory, kind=kind, when=when)
    _print_scores(suggestions, as_json=as_json)


def _run_scorers(
    factory: sessionmaker[Session], *, kind: str | None, when: dt.datetime | None
) -> list[Suggestion]:
    """Run the scorers (all, or ``kind``) in one transaction and store their suggestions."""
    from reasoning.registry import run_scorers

    with factory.begin() as session:
        return run_scorers(session, kind=kind, as_of=when)


def _print_scores(suggestions: list[Suggestion], *, as_json: bool) -> None:
    """Print suggestions: one JSON per line with ``--json``, else the demo's summary."""
    if as_json:
        for suggestion in suggestions:
            sys.stdout.write(json.dumps(_score_line(suggestion), default=str) + "\n")
    else:
        from serving.demo import print_suggestions

        print_suggestions(out, suggestions)


@app.command("worklist")
def worklist(
    payer: Annotated[
        str | None, typer.Option(help="Payer Organization id or name (case-insensitive).")
    ] = None,
    facility: Annotated[str | None, typer.Option(help="Facility Organization id.")] = None,
    reason: Annotated[
        str | None,
        typer.Option(
            help="Predicted denial reason: eligibility, authorization, timely_filing, "
            "coding, duplicate, bundling, units or other."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Items to show.")] = 50,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the denial worklist: open claims ranked by expected loss = p(denial) x amount.

    Run ``healthos score --kind finance.denial_risk`` first to score the claims awaiting
    adjudication. ``--json`` prints ``{"count", "data": [...]}`` with each item's
    explanation factors and fix.
    """
    from reasoning.finance.worklist import worklist_page

    _, factory = open_database(db)
    with translate_errors(), factory() as session:
        items, count = worklist_page(
            session, payer=payer, facility=facility, reason=reason, limit=limit
        )
    if as_json:
        print_json({"count": count, "data": [item.to_dict() for item in items]})
        return
    from rich.table import Table

    table = Table(title=f"Denial worklist: {len(items)} of {count} open claims")
    for column in ("#", "claim", "payer", "p(denial)", "amount", "expected loss", "reason", "fix"):
        table.add_column(column, overflow="fold")
    for rank, item in enumerate(items, start=1):
        data = item.to_dict()
        table.add_row(
            str(rank),
            str(data.get("claim_id")),
            str(data.get("payer_name") or data.get("payer_id") or ""),
            f"{data['probability']:.3f}" if data.get("probability") is not None else "",
            str(data.get("amount") or ""),
            str(data.get("expected_loss") or ""),
            str(data.get("reason") or ""),
            str(data.get("fix") or ""),
        )
    out.print(table)


@app.command("finance-summary")
def finance_summary_command(
    db: DbOption = None,
    as_json: JsonOption = False,
    as_of: AsOfOption = None,
) -> None:
    """Print open revenue leakage and denial risk by kind, payer and facility (leadership KPIs)."""
    from reasoning.finance.summary import finance_summary

    when = parse_as_of(as_of)
    _, factory = open_database(db)
    with translate_errors(), factory() as session:
        summary = finance_summary(session, as_of=when)
    print_report(summary, as_json)


# --------------------------------------------------------------------------- kpis


def _kpi_text(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{value:.1%}"
    if unit == "currency":
        return f"{value:,.2f}"
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:,.2f}"


@app.command("kpis")
def kpis_command(
    db: DbOption = None,
    as_json: JsonOption = False,
    date: Annotated[
        str | None, typer.Option("--date", help="ISO date (a UTC day); default today.")
    ] = None,
    level: Annotated[
        str | None, typer.Option("--level", help="facility, network or region.")
    ] = None,
    org_id: Annotated[
        str | None, typer.Option("--id", help="Organization id (with --level).")
    ] = None,
) -> None:
    """Print the KPIs per facility, network and region for a date (see docs/kpis.md)."""
    from rich.table import Table

    from healthos_core.db import utcnow
    from healthos_core.kpis import LEVELS, compute_kpis, parse_kpi_date

    with translate_errors():
        day = parse_kpi_date(date, name="--date") if date is not None else utcnow().date()
    if level is not None and level not in LEVELS:
        fail(f"--level {level!r} is not one of {', '.join(LEVELS)}")
    if org_id is not None and level is None:
        fail("--id needs --level (facility, network or region)")
    _, factory = open_database(db)
    with translate_errors(), factory() as session:
        report = compute_kpis(session, date=day, level=level, org_id=org_id)
    if as_json:
        print_json(report.as_dict())
        return
    if not report.scopes:
        out.print(f"no facilities with KPI data on {report.date.isoformat()}")
    for scope in report.scopes:
        table = Table(title=f"{scope.level} {scope.name} ({scope.id}) — {report.date.isoformat()}")
        for column in ("KPI", "value", "previous day", "previous week", "target", "better"):
            table.add_column(column, justify="left" if column == "KPI" else "right")
        for kpi in scope.kpis:
            table.add_row(
                kpi.label + (f" ({kpi.currency})" if kpi.currency else ""),
                _kpi_text(kpi.value, kpi.unit),
                _kpi_text(kpi.previous_day, kpi.unit),
                _kpi_text(kpi.previous_week, kpi.unit),
                _kpi_text(kpi.target, kpi.unit),
                kpi.better,
            )
        out.print(table)


@app.command("briefing")
def briefing_command(
    out_file: Annotated[
        Path, typer.Option("--out", help="Write the briefing here: FILE.html or FILE.pdf.")
    ],
    db: DbOption = None,
    date: Annotated[
        str | None, typer.Option("--date", help="ISO date (a UTC day); default today.")
    ] = None,
) -> None:
    """Write the morning briefing of a day: KPIs, beds, waits, collections, top suggestions.

    ``.pdf`` is printed by Playwright in Chromium (HEALTHOS_CHROMIUM_PATH, default
    /usr/bin/chromium); see docs/briefing.md.
    """
    from healthos_core.db import utcnow
    from healthos_core.kpis import parse_kpi_date
    from reasoning.briefing import build_briefing
    from serving.briefing import output_format, render_html, render_pdf

    with translate_errors():
        day = parse_kpi_date(date, name="--date") if date is not None else utcnow().date()
        kind = output_format(out_file)
    if not out_file.parent.is_dir():
        fail(f"--out {str(out_file)!r}: folder {str(out_file.parent)!r} does not exist")
    started = time.perf_counter()
    _, factory = open_database(db)
    with translate_errors(), progress_bar() as progress:
        task = progress.add_task(f"briefing {day.isoformat()}: reading the record", total=3)
        with factory() as session:
            content = build_briefing(session, date=day)
        progress.update(task, advance=1, description=f"briefing {day.isoformat()}: plots")
        html = render_html(content)
        data = html.encode("utf-8")
        if kind == "pdf":
            progress.update(task, advance=1, description=f"briefing {day.isoformat()}: PDF")
            data = render_pdf(html)
        else:
            progress.advance(task)
        # Written whole or not at all: a temporary file beside the target, then renamed.
        partial = out_file.with_name(f".{out_file.name}.partial")
        partial.write_bytes(data)
        partial.replace(out_file)
        progress.update(task, advance=1, description=f"briefing {day.isoformat()}: written")
    out.print(
        f"wrote {out_file} ({len(data):,} bytes, {kind}) in {time.perf_counter() - started:.1f} s",
        highlight=False,
    )


# --------------------------------------------------------------------------- serve / demo


@app.command("serve")
def serve(
    db: DbOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (each its own connection pool).")
    ] = 1,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log every request line (off: paths and query strings can hold patient "
            "identifiers, e.g. ?identifier=<SSN>).",
        ),
    ] = False,
) -> None:
    """Serve the API (and OpenAPI docs at /docs) with uvicorn until interrupted.

    The database is migrated once, here. With ``--workers`` above 1 uvicorn starts that
    many processes, each building the app with :func:`serving.main.create_app` from the
    settings, so the database URL is handed to them as ``HEALTHOS_DATABASE_URL``.
    """
    import uvicorn

    from serving.main import create_app

    settings = get_settings()
    engine, _ = open_database(db)
    bind_host, bind_port = host or settings.host, port or settings.port
    if workers == 1:
        uvicorn.run(
            create_app(settings, engine=engine),
            host=bind_host,
            port=bind_port,
            log_level="info",
            access_log=access_log,
        )
        return
    engine.dispose()
    # The worker processes read the settings from the environment (this process's URL).
    os.environ["HEALTHOS_DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    uvicorn.run(
        "serving.main:create_app",
        factory=True,
        workers=workers,
        host=bind_host,
        port=bind_port,
        log_level="info",
        access_log=access_log,
    )


@app.command("demo")
def demo(
    db: DbOption = None,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Exit after printing.")] = False,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
) -> None:
    """Run the main job: load the shipped sample, post charges, score, print, serve."""
    from serving.demo import run_demo

    engine, factory = open_database(db)
    with translate_errors():
        run_demo(factory, console=out)
    if not no_serve:
        import uvicorn

        from serving.main import create_app

        settings = get_settings()
        bind_host, bind_port = host or settings.host, port or settings.port
        out.print(
            f"\nServing the API on http://{bind_host}:{bind_port} (docs at /docs); "
            "Ctrl+C to stop. Try: curl -H 'Authorization: Bearer dev-nurse' "
            f"http://{bind_host}:{bind_port}/api/v1/suggestions?audience=nurse"
        )
        uvicorn.run(
            create_app(settings, engine=engine), host=bind_host, port=bind_port, log_level="warning"
        )


@app.command("worker")
def worker(
    db: DbOption = None,
    batch: Annotated[
        int | None, typer.Option(min=1, help="Most events claimed at once (default 100).")
    ] = None,
    poll: Annotated[
        float | None,
        typer.Option(min=0.01, help="Seconds between looks at an empty outbox (default 0.1)."),
    ] = None,
    lease: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="Seconds a claim holds before another worker may take the events (default 30).",
        ),
    ] = None,
) -> None:
    """Consume the outbox: rescore what live writes concern, until SIGTERM or Ctrl+C.

    Run one or more beside ``healthos serve`` with ``HEALTHOS_RESCORE=worker`` (so the API
    processes start no consumer of their own). On PostgreSQL any number of workers share
    the outbox (``FOR UPDATE SKIP LOCKED``); events are handled at least once, and a
    killed worker's events are claimed again when its lease ends (docs/rescoring.md).
    Logs one line per batch that claimed events (counts only, no patient data).
    """
    import datetime as _dt
    import logging
    import signal
    import threading

    from reasoning.rescoring import BatchReport, RescoringConsumer

    settings = get_settings()
    engine, _ = open_database(db)
    consumer = RescoringConsumer(
        engine,
        batch=batch or settings.rescore_batch,
        lease=_dt.timedelta(seconds=lease or settings.rescore_lease_seconds),
    )
    stop = threading.Event()
    received: list[str] = []

    def _stop(signum: int, _frame: object) -> None:
        # Only flag it here (printing from a signal handler can deadlock the console).
        received.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    def _log(report: BatchReport) -> None:
        err.print(report.line(), highlight=False, soft_wrap=True)

    err.print(
        f"worker: consuming the outbox of {_safe_url(engine.url.render_as_string())} "
        f"(batch {consumer.batch}, lease {consumer.lease.total_seconds():g} s)",
        highlight=False,
        soft_wrap=True,
    )
    try:
        consumer.run(stop, poll=poll or settings.rescore_poll_seconds, on_batch=_log)
    finally:
        engine.dispose()
    err.print(f"worker: stopped ({', '.join(received) or 'done'})", highlight=False)


def main() -> None:
    """Entry point for ``python -m serving.cli``."""
    app()


if __name__ == "__main__":
    main()
