"""Suggestions: worklists by audience, one suggestion with its audit trail, and actions.

Acknowledge, act, dismiss and note are recorded with who, in which role, when and why.
The lifecycle (acted and dismissed suggestions are closed; a later action is 409, a
note is always allowed) is :data:`healthos_core.advisory.TRANSITIONS`, drawn in
``docs/suggestions.md``.

Who may see and act on which audience's suggestions (:mod:`healthos_core.access`, the
one definition the finance worklist uses too):

============== ======================================= ===========================
role           reads audiences                         acts on audiences
============== ======================================= ===========================
clinician      clinician, nurse                        clinician, nurse
nurse          nurse, clinician                        nurse, clinician
finance        finance                                 finance
operations     operations                              operations
leadership     leadership, operations, finance         leadership
admin          all                                     none (a professional decides)
others         none (403)                              none (403)
============== ======================================= ===========================

A suggestion the caller's role may not read answers exactly like a missing one (404
with the same problem), on read and on every action, so the answer does not reveal it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from sqlalchemy.orm import Session

from healthos_core.access import actionable_audiences, readable_audiences
from healthos_core.advisory import (
    SuggestionActionName,
    act_on_suggestion,
    get_suggestion,
    list_suggestions,
)
from healthos_core.errors import PermissionDeniedError
from healthos_core.suggestion_revision import poll_suggestion_revision
from serving.deps import (
    CurrentUser,
    Principal,
    SessionDep,
    app_engine,
    app_sessions,
    run_polled_read,
)
from serving.page_cache import PAGE_HEADERS, Page, PageCache, page_response
from serving.schemas.common import Offset
from serving.schemas.suggestions import (
    AudienceName,
    StatusName,
    SuggestionActionCreate,
    SuggestionDetailPublic,
    SuggestionPublic,
    SuggestionReasonCreate,
    SuggestionsPublic,
)

router = APIRouter(prefix="/suggestions", tags=["suggestions"])

SuggestionId = Annotated[str, Path(min_length=1, max_length=64, description="Suggestion id")]


@dataclass(frozen=True, slots=True)
class AudienceAccess:
    """The caller and the audiences whose suggestions they may see or act on."""

    principal: Principal
    audiences: frozenset[str]


async def reader_access(user: CurrentUser) -> AudienceAccess:
    """Return the audiences the caller may read; 403 if none."""
    audiences = readable_audiences(user.role)
    if not audiences:
        raise PermissionDeniedError(f"the {user.role} role may not read suggestions")
    return AudienceAccess(principal=user, audiences=audiences)


async def actor_access(user: CurrentUser) -> AudienceAccess:
    """Return the audiences the caller may act for; 403 if none (e.g. ``admin``)."""
    audiences = actionable_audiences(user.role)
    if not audiences:
        raise PermissionDeniedError(
            f"the {user.role} role may not acknowledge, act on, dismiss or annotate "
            "suggestions: a professional of the suggestion's audience decides"
        )
    return AudienceAccess(principal=user, audiences=audiences)


ReaderDep = Annotated[AudienceAccess, Depends(reader_access)]
ActorDep = Annotated[AudienceAccess, Depends(actor_access)]


async def listed_audiences(
    access: ReaderDep,
    audience: Annotated[
        AudienceName | None,
        Query(description="Only this audience; default: every audience the role may read"),
    ] = None,
) -> list[str]:
    """Return the audiences to list: the one asked for (403 if not readable) or all readable."""
    if audience is None:
        return sorted(access.audiences)
    if audience not in access.audiences:
        raise PermissionDeniedError(
            f"the {access.principal.role} role may not read {audience} suggestions"
        )
    return [audience]


@router.get(
    "",
    response_model=SuggestionsPublic,
    responses={
        200: {"headers": PAGE_HEADERS},
        304: {
            "description": "Not Modified: the page is the one whose ETag was sent in "
            "If-None-Match (no body)",
            "headers": PAGE_HEADERS,
        },
    },
)
async def read_suggestions(
    *,
    request: Request,
    audiences: Annotated[list[str], Depends(listed_audiences)],
    subject: Annotated[
        str | None, Query(max_length=128, description='e.g. "Encounter/123"')
    ] = None,
    patient: Annotated[
        str | None, Query(max_length=72, description='Patient id or "Patient/<id>"')
    ] = None,
    kind: Annotated[str | None, Query(max_length=64, description='e.g. "clinical.news2"')] = None,
    status: Annotated[
        list[StatusName] | None, Query(description="Repeat for several statuses")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
    if_none_match: Annotated[
        str | None,
        Header(
            max_length=1024,
            description="ETags of pages the client holds: 304 if the page is unchanged",
        ),
    ] = None,
) -> Response:
    """List suggestions, most urgent first (severity, then score, then newest).

    Polled by ward tablets: a page is kept per worker while no suggestion changes
    (:mod:`serving.page_cache`, checked against the suggestions' revision in one indexed
    read), and carries an ``ETag`` for ``If-None-Match``.
    """
    patient_id = None if patient is None else patient.removeprefix("Patient/")
    statuses = None if status is None else tuple(sorted(set(status)))
    key = ("suggestions", tuple(audiences), subject, patient_id, kind, statuses, limit, offset)
    cache: PageCache = request.app.state.page_cache
    engine, sessions = app_engine(request), app_sessions(request)

    def page() -> Page:
        revision = poll_suggestion_revision(engine)  # first: the page is at least as new
        kept = cache.get(key, revision)
        if kept is not None:
            return kept
        with sessions() as session:
            records, count = list_suggestions(
                session,
                audience=audiences,
                subject=subject,
                patient_id=patient_id,
                kind=kind,
                status=statuses,
                limit=limit,
                offset=offset,
            )
            data = [SuggestionPublic.from_entity(r) for r in records]
        body = SuggestionsPublic(data=data, count=count).model_dump_json(by_alias=True)
        return cache.put(key, revision, body.encode())

    return page_response(await run_polled_read(request, page), if_none_match)


@router.get("/{suggestion_id}", response_model=SuggestionDetailPublic)
def read_suggestion(
    *, session: SessionDep, access: ReaderDep, suggestion_id: SuggestionId
) -> SuggestionDetailPublic:
    """Read one suggestion with its audit trail of actions."""
    record = get_suggestion(session, suggestion_id, audiences=access.audiences)
    return SuggestionDetailPublic.from_entity(record)


def _act(
    session: Session,
    access: AudienceAccess,
    suggestion_id: str,
    action: SuggestionActionName,
    body: SuggestionActionCreate | SuggestionReasonCreate | None,
) -> SuggestionDetailPublic:
    record = act_on_suggestion(
        session,
        suggestion_id,
        action=action,
        actor=access.principal.subject,
        role=access.principal.role,
        reason=None if body is None else body.reason,
    )
    return SuggestionDetailPublic.from_entity(record)


@router.post("/{suggestion_id}/acknowledge", response_model=SuggestionDetailPublic)
def acknowledge_suggestion(
    *,
    session: SessionDep,
    access: ActorDep,
    suggestion_id: SuggestionId,
    body: SuggestionActionCreate | None = None,
) -> SuggestionDetailPublic:
    """Acknowledge a suggestion: seen, under review (reason optional)."""
    return _act(session, access, suggestion_id, "acknowledge", body)


@router.post("/{suggestion_id}/act", response_model=SuggestionDetailPublic)
def act_on(
    *,
    session: SessionDep,
    access: ActorDep,
    suggestion_id: SuggestionId,
    body: SuggestionActionCreate | None = None,
) -> SuggestionDetailPublic:
    """Record that the recommended action (or another) was taken (reason optional)."""
    return _act(session, access, suggestion_id, "act", body)


@router.post("/{suggestion_id}/dismiss", response_model=SuggestionDetailPublic)
def dismiss_suggestion(
    *,
    session: SessionDep,
    access: ActorDep,
    suggestion_id: SuggestionId,
    body: SuggestionReasonCreate,
) -> SuggestionDetailPublic:
    """Dismiss an open or acknowledged suggestion; ``reason`` is required (422 without it)."""
    return _act(session, access, suggestion_id, "dismiss", body)


@router.post("/{suggestion_id}/note", response_model=SuggestionDetailPublic)
def note_on_suggestion(
    *,
    session: SessionDep,
    access: ActorDep,
    suggestion_id: SuggestionId,
    body: SuggestionReasonCreate,
) -> SuggestionDetailPublic:
    """Add a note (``reason``, required) in any status; the status is not changed."""
    return _act(session, access, suggestion_id, "note", body)
