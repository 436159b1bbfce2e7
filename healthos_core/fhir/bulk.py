"""FHIR Bulk Data export (``$export``): NDJSON files written to disk, one job per folder.

A job lives in ``<var_dir>/bulk/<job id>/``: ``job.json`` (its state, progress and, once
complete, the manifest) and one ``<Type>.ndjson`` file per exported type. Rows are read
with ``yield_per`` and written line by line, so memory stays flat whatever the size of
the record; the files are served from disk.

Three levels (Bulk Data Access 2.0):

* system (``/fhir/$export``): every type;
* patient (``/fhir/Patient/$export``): the Patients and their compartments;
* group (``/fhir/Group/<id>/$export``): one Group per facility (the Organization with that
  id): the patients with an encounter there, and their compartments.

``_type`` limits the types (types HealthOS does not serve are reported in the manifest's
``error``, not refused), ``_since`` to resources written at or after an instant.

Examples
--------
>>> job = create_job(root, ExportRequest(level="system", url="…/fhir/$export"))  # doctest: +SKIP
>>> run_export(session_factory, job, view)  # doctest: +SKIP
>>> read_job(root, job.job_id).state  # doctest: +SKIP
'complete'
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.errors import InvalidInputError, NotFoundError
from healthos_core.fhir.importer import DEPENDENCY_ORDER
from healthos_core.fhir.search import (
    SEARCH_PARAMS,
    date_range,
    entity_of,
    last_updated,
    resource_of,
    table_of,
)
from healthos_core.fhir.views import FhirView
from healthos_core.record.entities import Encounter, Organization

Level = Literal["system", "patient", "group"]
JobState = Literal["running", "complete", "cancelled", "error"]

#: Rows fetched per round trip while exporting.
YIELD_PER: Final = 1000
#: ``_outputFormat`` values meaning NDJSON (Bulk Data 2.0 §"Query Parameters").
NDJSON_FORMATS: Final = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
_JOB_ID: Final = frozenset("0123456789abcdef-")
_FILE_NAME_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.")


@dataclass
class ExportRequest:
    """What was asked: the level, the group, the types and ``_since``."""

    level: Level
    url: str
    group_id: str | None = None
    types: list[str] | None = None
    since: str | None = None


@dataclass
class ExportJob:
    """A job's state as kept in ``job.json``."""

    job_id: str
    request: ExportRequest
    state: JobState = "running"
    transaction_time: str = ""
    progress: str = "queued"
    output: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    owner: str = ""

    def manifest(self, file_url: str) -> dict[str, Any]:
        """Return the completion manifest; ``file_url`` is the base of the files' URLs."""
        return {
            "transactionTime": self.transaction_time,
            "request": self.request.url,
            "requiresAccessToken": True,
            "output": [
                {"type": o["type"], "url": f"{file_url}/{o['file']}", "count": o["count"]}
                for o in self.output
            ],
            "error": [],
            **({"extension": {"healthos-skipped": self.errors}} if self.errors else {}),
        }


def jobs_root(var_dir: Path) -> Path:
    """Return the folder holding the export jobs (``<var_dir>/bulk``)."""
    return var_dir / "bulk"


def _job_dir(root: Path, job_id: str) -> Path:
    if not job_id or len(job_id) > 64 or not set(job_id) <= _JOB_ID:
        raise NotFoundError(f"there is no export job {job_id[:80]!r}")
    return root / job_id


def _write_job(root: Path, job: ExportJob) -> None:
    folder = _job_dir(root, job.job_id)
    temporary = folder / "job.json.tmp"
    temporary.write_text(json.dumps(asdict(job)), encoding="utf-8")
    os.replace(temporary, folder / "job.json")


def read_job(root: Path, job_id: str) -> ExportJob:
    """Return a job's state.

    Raises
    ------
    NotFoundError
        If there is no such job (never was, or deleted).
    """
    path = _job_dir(root, job_id) / "job.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NotFoundError(f"there is no export job {job_id!r}") from exc
    data["request"] = ExportRequest(**data["request"])
    return ExportJob(**data)


def export_types(request: ExportRequest, view: FhirView) -> tuple[list[str], list[str]]:
    """Return the types to export, in dependency order, and the requested types skipped.

    Patient and group exports hold the Patient and the types of its compartment.

    Raises
    ------
    InvalidInputError
        If ``_type`` names nothing at all.
    """
    served = [t for t in DEPENDENCY_ORDER if t in SEARCH_PARAMS and view.may_read(t)]
    if request.level != "system":
        served = [t for t in served if t == "Patient" or "patient" in SEARCH_PARAMS[t]]
    if request.types is None:
        return served, []
    wanted = [t.strip() for t in request.types if t.strip()]
    if not wanted:
        raise InvalidInputError("_type is empty: name resource types, comma-separated")
    skipped = [t for t in wanted if t not in served]
    return [t for t in served if t in wanted], skipped


def parse_since(value: str | None) -> dt.datetime | None:
    """Parse ``_since`` (a FHIR instant or date).

    Raises
    ------
    InvalidInputError
        If it is not one.
    """
    if value is None:
        return None
    return date_range(value, "_since")[0]


def create_job(root: Path, request: ExportRequest, *, owner: str) -> ExportJob:
    """Create a job's folder and state (``running``, nothing exported yet)."""
    root.mkdir(parents=True, exist_ok=True)
    job = ExportJob(job_id=uuid.uuid4().hex, request=request, owner=owner)
    job.transaction_time = last_updated(dt.datetime.now(dt.UTC))
    _job_dir(root, job.job_id).mkdir()
    _write_job(root, job)
    return job


def check_group(session: Session, group_id: str) -> None:
    """Refuse a Group that does not exist (a Group is a facility: an Organization id).

    Raises
    ------
    NotFoundError
        If there is no Organization ``group_id``.
    """
    if session.get(Organization, group_id) is None:
        raise NotFoundError(f"Group/{group_id} does not exist (a Group is a facility)")


def _statement(
    resource_type: str, request: ExportRequest, since: dt.datetime | None
) -> Select[Any]:
    table = table_of(resource_type)
    stmt = select(entity_of(resource_type)).order_by(table.c.id)
    if since is not None:
        stmt = stmt.where(table.c.updated_at >= since)
    if request.level == "group" and request.group_id is not None:
        members = (
            select(Encounter.patient_id)
            .where(Encounter.facility_id == request.group_id)
            .distinct()
            .scalar_subquery()
        )
        column = table.c.id if resource_type == "Patient" else table.c.patient_id
        stmt = stmt.where(column.in_(members))
    return stmt


def _is_cancelled(root: Path, job_id: str) -> bool:
    return not (root / job_id / "job.json").exists()


def _rows(session: Session, stmt: Select[Any]) -> Iterator[Any]:
    yield from session.scalars(stmt.execution_options(yield_per=YIELD_PER))


def run_export(
    factory: sessionmaker[Session], root: Path, job_id: str, view: FhirView
) -> ExportJob | None:
    """Run an export job: write each type's NDJSON file, then the manifest.

    Reads in one transaction (a consistent snapshot on PostgreSQL), ``yield_per`` rows
    at a time. Stops, leaving nothing, when the job is deleted (cancelled) meanwhile.

    Returns
    -------
    ExportJob or None
        The completed job, or ``None`` if it was cancelled.
    """
    try:
        job = read_job(root, job_id)
    except NotFoundError:
        return None  # cancelled before it started
    folder = root / job_id
    try:
        types, skipped = export_types(job.request, view)
        since = parse_since(job.request.since)
        job.errors = [f"{t}: not exported (not served, or not in this level)" for t in skipped]
        with factory() as session:
            for number, resource_type in enumerate(types, start=1):
                job.progress = f"exporting {resource_type} ({number} of {len(types)} types)"
                _write_job(root, job)
                name = f"{resource_type}.ndjson"
                count = 0
                with (folder / name).open("w", encoding="utf-8") as handle:
                    for row in _rows(session, _statement(resource_type, job.request, since)):
                        resource = resource_of(row, view)
                        handle.write(json.dumps(resource, separators=(",", ":")))
                        handle.write("\n")
                        count += 1
                        # The identity map holds rows weakly: a written row is let go.
                        if count % YIELD_PER == 0 and _is_cancelled(root, job_id):
                            return None
                if count:
                    job.output.append({"type": resource_type, "file": name, "count": count})
                else:
                    (folder / name).unlink()
                session.expunge_all()
                if _is_cancelled(root, job_id):
                    return None
    except FileNotFoundError:
        return None  # cancelled: the folder was removed under us
    except Exception as exc:
        if _is_cancelled(root, job_id):
            return None
        job.state = "error"
        job.progress = f"failed: {type(exc).__name__}"
        _write_job(root, job)
        raise
    job.state = "complete"
    job.progress = "complete"
    _write_job(root, job)
    return job


def cancel_job(root: Path, job_id: str) -> None:
    """Cancel a job (running or done) and remove its files.

    Raises
    ------
    NotFoundError
        If there is no such job.
    """
    folder = _job_dir(root, job_id)
    read_job(root, job_id)
    (folder / "job.json").unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def job_file(root: Path, job_id: str, file_name: str) -> Path:
    """Return the path of one of a complete job's files.

    Raises
    ------
    NotFoundError
        If there is no such job or file.
    """
    job = read_job(root, job_id)
    names = {o["file"] for o in job.output}
    if job.state != "complete" or file_name not in names or not set(file_name) <= _FILE_NAME_CHARS:
        raise NotFoundError(f"export job {job_id} has no file {file_name[:80]!r}")
    return _job_dir(root, job_id) / file_name
