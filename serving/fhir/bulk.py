"""FHIR Bulk Data Access 2.0 export at ``/fhir``: kick-off, status, files, cancel.

The asynchronous pattern: a kick-off (``GET /fhir/$export``, ``/fhir/Patient/$export``,
``/fhir/Group/{id}/$export``) starts the job in a background thread and answers ``202``
with ``Content-Location`` (the status URL). The status answers ``202`` with
``X-Progress`` while the job runs and ``200`` with the manifest when it is done; each
NDJSON file is streamed from disk (``FileResponse``); ``DELETE`` on the status URL
cancels the job and removes its files. What is exported is
:mod:`healthos_core.fhir.bulk`; who may export :func:`~healthos_core.fhir.views.bulk_export_view`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from healthos_core.errors import InvalidInputError, NotFoundError
from healthos_core.fhir.bulk import (
    NDJSON_FORMATS,
    ExportRequest,
    Level,
    cancel_job,
    check_group,
    create_job,
    export_types,
    job_file,
    jobs_root,
    parse_since,
    read_job,
    run_export,
)
from healthos_core.fhir.views import FhirView, bulk_export_view
from serving.deps import CurrentUser, SessionDep, SettingsDep, app_sessions
from serving.fhir.outcomes import (
    ERROR_RESPONSES,
    FhirResponse,
    FhirRoute,
    ok_response,
    operation_outcome,
)

router = APIRouter(
    prefix="/fhir", tags=["fhir bulk"], route_class=FhirRoute, responses=ERROR_RESPONSES
)

NDJSON_MEDIA_TYPE: Final = "application/fhir+ndjson"
#: Seconds a client should wait between status polls.
POLL_SECONDS: Final = 1
_KICKOFF_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    202: {
        **ok_response("Accepted: poll the Content-Location for the job's status"),
        "headers": {"Content-Location": {"schema": {"type": "string"}}},
    }
}


def export_view(user: CurrentUser, settings: SettingsDep) -> FhirView:
    """Return what the caller's bulk export holds (403 unless the role may export)."""
    return bulk_export_view(
        user.role, government_identifiers=settings.bulk_export_government_identifiers
    )


ExportViewDep = Annotated[FhirView, Depends(export_view)]
TypeParam = Annotated[
    str | None, Query(alias="_type", description="Resource types, comma-separated")
]
SinceParam = Annotated[
    str | None, Query(alias="_since", description="Only resources written at or after this")
]
FormatParam = Annotated[
    str | None,
    Query(alias="_outputFormat", description="application/fhir+ndjson (the default)"),
]


def _root(request: Request) -> Path:
    return jobs_root(Path(request.app.state.settings.var_dir))


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def _kick_off(
    request: Request,
    user: CurrentUser,
    view: FhirView,
    level: Level,
    *,
    types: str | None,
    since: str | None,
    output_format: str | None,
    group_id: str | None = None,
) -> Response:
    if output_format is not None and output_format not in NDJSON_FORMATS:
        raise InvalidInputError(
            f"_outputFormat {output_format!r}: only application/fhir+ndjson is served"
        )
    parse_since(since)  # 400 before the job starts
    export = ExportRequest(
        level=level,
        url=str(request.url),
        group_id=group_id,
        types=types.split(",") if types is not None else None,
        since=since,
    )
    export_types(export, view)  # 400 for an empty _type, before the job starts
    root = _root(request)
    job = create_job(root, export, owner=user.subject)
    worker = threading.Thread(
        target=run_export,
        args=(app_sessions(request), root, job.job_id, view),
        name=f"fhir-export-{job.job_id[:8]}",
        daemon=True,
    )
    worker.start()
    return FhirResponse(
        operation_outcome(202, f"export job {job.job_id} started", severity="information"),
        status_code=202,
        headers={"Content-Location": f"{_base(request)}/bulk/{job.job_id}"},
    )


@router.get(
    "/$export",
    response_class=FhirResponse,
    status_code=202,
    responses=_KICKOFF_RESPONSES,
    summary="Bulk Data export of the whole record (system level)",
)
def export_system(
    request: Request,
    user: CurrentUser,
    view: ExportViewDep,
    types: TypeParam = None,
    since: SinceParam = None,
    output_format: FormatParam = None,
) -> Response:
    """Start an export of every type (the admin role's backup of the record)."""
    return _kick_off(
        request, user, view, "system", types=types, since=since, output_format=output_format
    )


@router.get(
    "/Patient/$export",
    response_class=FhirResponse,
    status_code=202,
    responses=_KICKOFF_RESPONSES,
    summary="Bulk Data export of every patient's compartment",
)
def export_patients(
    request: Request,
    user: CurrentUser,
    view: ExportViewDep,
    types: TypeParam = None,
    since: SinceParam = None,
    output_format: FormatParam = None,
) -> Response:
    """Start an export of the Patients and their compartments."""
    return _kick_off(
        request, user, view, "patient", types=types, since=since, output_format=output_format
    )


@router.get(
    "/Group/{group_id}/$export",
    response_class=FhirResponse,
    status_code=202,
    responses=_KICKOFF_RESPONSES,
    summary="Bulk Data export of one facility's patients (a Group per facility)",
)
def export_group(
    request: Request,
    group_id: str,
    user: CurrentUser,
    view: ExportViewDep,
    session: SessionDep,
    types: TypeParam = None,
    since: SinceParam = None,
    output_format: FormatParam = None,
) -> Response:
    """Start an export of the patients with an encounter at facility ``group_id``."""
    check_group(session, group_id)
    return _kick_off(
        request,
        user,
        view,
        "group",
        types=types,
        since=since,
        output_format=output_format,
        group_id=group_id,
    )


def _own_job(request: Request, user: CurrentUser, job_id: str) -> Any:
    job = read_job(_root(request), job_id)
    if job.owner != user.subject:
        raise NotFoundError(f"there is no export job {job_id!r}")  # not yours: not there
    return job


@router.get(
    "/bulk/{job_id}",
    response_class=FhirResponse,
    responses={
        200: {
            "description": "The manifest: transactionTime, output files",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        202: {
            **ok_response("Still running (X-Progress)"),
            "headers": {"X-Progress": {"schema": {"type": "string"}}},
        },
        500: ok_response("The export failed (OperationOutcome)"),
    },
    summary="Bulk Data export status",
)
def export_status(request: Request, job_id: str, user: CurrentUser, _: ExportViewDep) -> Response:
    """Return 202 with ``X-Progress`` while the job runs, 200 with the manifest when done."""
    job = _own_job(request, user, job_id)
    if job.state == "running":
        return FhirResponse(
            operation_outcome(202, job.progress, severity="information"),
            status_code=202,
            headers={"X-Progress": job.progress, "Retry-After": str(POLL_SECONDS)},
        )
    if job.state == "error":
        return FhirResponse(operation_outcome(500, f"the export {job.progress}"), status_code=500)
    manifest = job.manifest(f"{_base(request)}/bulk/{job_id}")
    return JSONResponse(manifest, headers={"Expires": "0"})


@router.delete(
    "/bulk/{job_id}",
    response_class=FhirResponse,
    status_code=202,
    responses={202: ok_response("Cancelled; its files are removed")},
    summary="Cancel a Bulk Data export and remove its files",
)
def export_cancel(request: Request, job_id: str, user: CurrentUser, _: ExportViewDep) -> Response:
    """Cancel the job (running or done) and delete its files."""
    _own_job(request, user, job_id)
    cancel_job(_root(request), job_id)
    return FhirResponse(
        operation_outcome(202, f"export job {job_id} cancelled", severity="information"),
        status_code=202,
    )


@router.get(
    "/bulk/{job_id}/{file_name}",
    response_class=FileResponse,
    responses={
        200: {
            "description": "One NDJSON file of the export, streamed from disk",
            "content": {NDJSON_MEDIA_TYPE: {"schema": {"type": "string"}}},
        }
    },
    summary="One file of a Bulk Data export",
)
def export_file(
    request: Request, job_id: str, file_name: str, user: CurrentUser, _: ExportViewDep
) -> Response:
    """Stream one NDJSON file of a completed export from disk."""
    _own_job(request, user, job_id)
    path = job_file(_root(request), job_id, file_name)
    return FileResponse(path, media_type=NDJSON_MEDIA_TYPE, filename=file_name)
