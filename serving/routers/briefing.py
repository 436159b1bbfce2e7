"""The morning briefing as a page (issue 11 item 5; ``docs/briefing.md``).

``GET /briefing?date=YYYY-MM-DD`` (date default today, UTC) answers the briefing as
``text/html`` for leadership, operations, finance and admin; it lists the suggestions
of the audiences the caller's role may read (:func:`healthos_core.access.readable_audiences`).
The page has no script; its style sheet is ``GET /briefing/style.css`` (public: no data),
its plots ``data:`` SVG images, and it is sent with a Content-Security-Policy allowing
only those.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from healthos_core.access import readable_audiences
from healthos_core.db import utcnow
from reasoning.briefing import build_briefing
from serving.briefing import briefing_css, render_html
from serving.deps import Principal, SessionDep, require_roles
from serving.routers.kpis import DateQuery

BRIEFING_READ_ROLES: Final = ("leadership", "operations", "finance", "admin")
BriefingReader = Annotated[Principal, Depends(require_roles(*BRIEFING_READ_ROLES))]
#: The served page loads nothing but its style sheet (same origin) and ``data:`` images.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'self'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)

router = APIRouter(prefix="/briefing", tags=["briefing"])
#: Mounted without authentication: the style sheet holds no data.
style_router = APIRouter(prefix="/briefing", tags=["briefing"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The briefing page (HTML, no script)",
        "content": {"text/html": {"schema": {"type": "string"}}},
    },
    422: {"description": "date is not an ISO date, or is in the future"},
}


@router.get("", response_class=HTMLResponse, responses=_RESPONSES)
def read_briefing(
    *, request: Request, session: SessionDep, user: BriefingReader, date: DateQuery = None
) -> HTMLResponse:
    """Return the morning briefing of a UTC day: KPIs, beds, waits, collections, suggestions.

    Every KPI per facility, network and region against the day before, a week before and
    its target; plots of bed occupancy per pool, waits by hour and collections over 30
    days; the top open suggestions of each audience the caller's role may read.
    """
    content = build_briefing(
        session, date=date or utcnow().date(), audiences=readable_audiences(user.role)
    )
    html = render_html(content, style_href=str(request.url_for("read_briefing_style")))
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Cache-Control": "no-store",
        },
    )


@style_router.get(
    "/style.css",
    response_class=Response,
    responses={200: {"description": "The style sheet", "content": {"text/css": {}}}},
)
def read_briefing_style() -> Response:
    """Return the briefing's style sheet (screen and A4 print)."""
    return Response(
        briefing_css(),
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600"},
    )
