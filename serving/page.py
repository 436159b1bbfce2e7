"""The command center: the page every user works from, served at ``/`` (issue 11 item 6).

Plain HTML, ES modules and CSS in ``serving/static`` (no build step): :func:`mount_page`
adds ``GET /`` (the page) and ``/static`` (its files) to an app; :func:`serving.main.create_app`
calls it. The page reads the API with the bearer token the user signs in with
(``docs/command-center.md``), so these routes need no authentication and hold no data.

The page runs no inline script or style, so it works under the strict
``Content-Security-Policy: default-src 'self'`` sent with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

#: The page's files (packaged with ``serving``: ``pyproject.toml`` package-data).
STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
#: Sent with the page: its own files only (no inline script or style, no other origin).
PAGE_CSP: Final = "default-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
#: The page is small and changes with each release: revalidate on every load.
PAGE_HEADERS: Final = {
    "Content-Security-Policy": PAGE_CSP,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def mount_page(app: FastAPI) -> None:
    """Serve the command center on ``app``: ``GET /`` and the files under ``/static``.

    Parameters
    ----------
    app : fastapi.FastAPI
        The API application; the routes are left out of its OpenAPI document (they are
        the page, not the API).
    """

    async def command_center() -> FileResponse:
        """Return the command center's page (sign-in, then the view of the caller's role)."""
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    app.add_api_route(
        "/", command_center, methods=["GET"], include_in_schema=False, name="command_center"
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
