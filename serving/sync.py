"""Parallel run: pull an existing FHIR server's Bulk Data export into the live path.

A hospital adopts HealthOS beside its EHR (``docs/parallel-run.md``): ``healthos sync
--from URL`` asks the EHR's FHIR server for a Bulk Data export (FHIR Bulk Data Access
2.0, "Export": the asynchronous request pattern), downloads the NDJSON files it lists and
imports them as a **live** feed (:func:`healthos_core.fhir.importer.import_paths` with
``origin="live"``), so charges post and scorers see what happened, exactly as if the EHR
had written through the API. The manifest's ``transactionTime`` is kept per source
(:class:`SyncState`) and sent as ``_since`` next time, so each run fetches only what
changed since the last one.

The protocol, in order (Bulk Data Access 2.0, §"Bulk Data Kick-off Request" and after):

1. ``GET {base}/$export`` with ``Accept: application/fhir+json`` and
   ``Prefer: respond-async`` (and ``_since``, ``_type``) → ``202`` with
   ``Content-Location``, the status URL;
2. ``GET`` the status URL until it answers ``200`` with the manifest (``202`` while in
   progress, with ``X-Progress`` and maybe ``Retry-After``);
3. ``GET`` each ``output[].url`` (with the token when the manifest says
   ``requiresAccessToken``), streamed to disk;
4. ``DELETE`` the status URL: the server may remove the files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.errors import HealthOSError, InvalidInputError
from healthos_core.fhir.importer import import_paths

#: Seconds between status polls when the server sends no ``Retry-After``.
DEFAULT_POLL_SECONDS: Final = 1.0
#: Give up on an export that is not complete after this many seconds.
DEFAULT_TIMEOUT_SECONDS: Final = 3600.0
FHIR_JSON: Final = "application/fhir+json"


class SyncError(HealthOSError):
    """The source server refused or failed the export (the message says what it answered)."""


@dataclass(frozen=True)
class Manifest:
    """A completed export: when it was taken and the files it lists.

    Attributes
    ----------
    transaction_time : str
        The server's ``transactionTime``: the export holds every change up to it; the
        next export asks ``_since`` it.
    outputs : list of (str, str)
        ``(resource type, url)`` of each NDJSON file.
    requires_access_token : bool
        Whether the files need the bearer token.
    """

    transaction_time: str
    outputs: list[tuple[str, str]]
    requires_access_token: bool


@dataclass
class SyncState:
    """What was last pulled from one source: the ``transactionTime`` to resume from.

    Kept as JSON in ``<var_dir>/sync/<hash of the source URL>.json`` (:func:`state_file`).
    """

    source: str
    since: str | None = None

    @classmethod
    def load(cls, path: Path, source: str) -> SyncState:
        """Read the state at ``path``; a fresh state (no ``since``) if there is none."""
        if not path.is_file():
            return cls(source=source)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"{path}: unreadable sync state ({exc})") from exc
        return cls(source=source, since=data.get("since"))

    def save(self, path: Path) -> None:
        """Write the state atomically (a new file renamed over the old one)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps({"source": self.source, "since": self.since}))
        partial.replace(path)


def state_file(var_dir: Path, source: str) -> Path:
    """Return where the sync state of ``source`` is kept under ``var_dir``."""
    digest = hashlib.sha256(source.rstrip("/").encode()).hexdigest()[:16]
    return var_dir / "sync" / f"{digest}.json"


def _problem(response: httpx.Response) -> str:
    """Say what the server answered: its status and the OperationOutcome's text if any."""
    detail = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        issues = body.get("issue") or []
        texts = [
            str(i.get("diagnostics") or (i.get("details") or {}).get("text") or "")
            for i in issues
            if isinstance(i, dict)
        ]
        detail = "; ".join(t for t in texts if t) or str(body.get("detail") or "")
    return f"HTTP {response.status_code}" + (f": {detail}" if detail else "")


def _retry_after(response: httpx.Response, default: float) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, min(float(value), 60.0))
    except ValueError:
        return default


def _bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def kick_off(
    client: httpx.Client,
    base: str,
    *,
    since: str | None,
    types: list[str] | None,
    token: str | None = None,
) -> str:
    """Start a system-level export; return the status URL (``Content-Location``).

    Raises
    ------
    SyncError
        The server did not answer ``202`` with ``Content-Location``.
    """
    params: dict[str, str] = {}
    if since:
        params["_since"] = since
    if types:
        params["_type"] = ",".join(types)
    response = client.get(
        f"{base.rstrip('/')}/$export",
        params=params,
        headers={"Accept": FHIR_JSON, "Prefer": "respond-async", **_bearer(token)},
    )
    location = response.headers.get("Content-Location")
    if response.status_code != 202 or not location:
        raise SyncError(f"{base}: the export was not started ({_problem(response)})")
    return str(httpx.URL(base).join(location))


def wait_for_manifest(
    client: httpx.Client,
    status_url: str,
    *,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    on_progress: Callable[[str], None] | None = None,
    token: str | None = None,
) -> Manifest:
    """Poll the status URL until the export completes; return its manifest.

    Raises
    ------
    SyncError
        The export failed, was removed, or did not complete within ``timeout_seconds``.
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        response = client.get(status_url, headers={"Accept": "application/json", **_bearer(token)})
        if response.status_code == 200:
            break
        if response.status_code != 202:
            raise SyncError(f"{status_url}: the export failed ({_problem(response)})")
        if on_progress is not None:
            on_progress(response.headers.get("X-Progress", "in progress"))
        if time.monotonic() > deadline:
            raise SyncError(f"{status_url}: not complete after {timeout_seconds:.0f} s")
        time.sleep(_retry_after(response, poll_seconds))
    try:
        body = response.json()
        outputs = [(str(o["type"]), str(o["url"])) for o in body.get("output") or []]
        transaction_time = str(body["transactionTime"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SyncError(f"{status_url}: the manifest is not a Bulk Data manifest ({exc})") from exc
    return Manifest(
        transaction_time=transaction_time,
        outputs=outputs,
        requires_access_token=bool(body.get("requiresAccessToken", False)),
    )


def download(
    client: httpx.Client, manifest: Manifest, folder: Path, *, token: str | None
) -> list[Path]:
    """Stream each output file to ``folder`` (``NNN-Type.ndjson``); return their paths.

    Raises
    ------
    SyncError
        A file could not be fetched.
    """
    headers = {"Accept": "application/fhir+ndjson"}
    if manifest.requires_access_token:  # else the files are public: the token stays home
        headers.update(_bearer(token))
    paths: list[Path] = []
    for index, (resource_type, url) in enumerate(manifest.outputs):
        path = folder / f"{index:03d}-{resource_type}.ndjson"
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                response.read()
                raise SyncError(f"{url}: cannot download ({_problem(response)})")
            with path.open("wb") as file:
                for chunk in response.iter_bytes():
                    file.write(chunk)
        paths.append(path)
    return paths


def sync_once(
    factory: sessionmaker[Session],
    source: str,
    *,
    state_path: Path,
    since: str | None = None,
    token: str | None = None,
    types: list[str] | None = None,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    on_progress: Callable[[str], None] | None = None,
    client: httpx.Client | None = None,
) -> dict[str, Any]:
    """Pull one export from ``source`` and import it as a live feed.

    Parameters
    ----------
    factory : sessionmaker
        The HealthOS database (wired for the live path by the caller).
    source : str
        The source FHIR server's base URL, e.g. ``https://ehr.example/fhir``.
    state_path : Path
        Where the ``transactionTime`` of the last complete pull is kept
        (:func:`state_file`); updated only when every file was imported.
    since : str, optional
        ``_since`` to ask for, overriding the kept state (an ISO instant).
    token : str, optional
        Bearer token for the source (from settings, never a command-line secret).
    types : list of str, optional
        Only these resource types (``_type``).
    poll_seconds, timeout_seconds : float
        Status polling interval (when the server sends no ``Retry-After``) and limit.
    on_progress : callable, optional
        Called with each status poll's ``X-Progress``.
    client : httpx.Client, optional
        The HTTP client (default: a new one with the token).

    Returns
    -------
    dict
        ``source``, ``since`` (asked), ``transaction_time``, ``files``, the import
        report's ``imported`` / ``created`` / ``skipped`` / ``rejected``.

    Raises
    ------
    SyncError
        The source refused or failed the export.
    InvalidInputError
        ``since`` is not an ISO date-time.
    """
    state = SyncState.load(state_path, source)
    asked = since if since is not None else state.since
    if asked is not None:
        try:
            dt.datetime.fromisoformat(asked.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInputError(f"--since {asked!r} is not an ISO date-time") from exc
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(60.0)) if client is None else nullcontext(client)
        ) as http:
            manifest, report = _pull(
                http,
                factory,
                source,
                asked,
                types,
                token,
                poll_seconds,
                timeout_seconds,
                on_progress,
            )
    except httpx.HTTPError as exc:
        raise SyncError(f"{source}: {type(exc).__name__}: {exc}") from exc
    rejected = report.get("rejected") or []
    if not rejected:
        SyncState(source=source, since=manifest.transaction_time).save(state_path)
    return {
        "source": source,
        "since": asked,
        "transaction_time": manifest.transaction_time,
        "files": len(manifest.outputs),
        "imported": report.get("imported", {}),
        "created": report.get("created", {}),
        "skipped": report.get("skipped", {}),
        "rejected": rejected,
    }


def _pull(
    http: httpx.Client,
    factory: sessionmaker[Session],
    source: str,
    since: str | None,
    types: list[str] | None,
    token: str | None,
    poll_seconds: float,
    timeout_seconds: float,
    on_progress: Callable[[str], None] | None,
) -> tuple[Manifest, dict[str, Any]]:
    """Kick off, wait, download and import one export; return its manifest and report."""
    status_url = kick_off(http, source, since=since, types=types, token=token)
    manifest = wait_for_manifest(
        http,
        status_url,
        poll_seconds=poll_seconds,
        timeout_seconds=timeout_seconds,
        on_progress=on_progress,
        token=token,
    )
    with tempfile.TemporaryDirectory(prefix="healthos-sync-") as folder:
        files = download(http, manifest, Path(folder), token=token)
        report = import_paths(factory, files, origin="live").to_dict() if files else {}
    try:
        http.delete(status_url, headers=_bearer(token))  # done: the files may go
    except httpx.HTTPError:
        pass
    return manifest, report
