"""CDS Hooks 2.0 at ``/cds-services``: discovery, three services and their feedback.

* ``GET /cds-services`` — discovery (CDS Hooks 2.0.1 §Discovery), unauthenticated as is
  the practice (it names services and prefetch templates, no patient data);
* ``POST /cds-services/{id}`` — a hook call; answers ``{"cards": [...]}``. 412 when
  neither the prefetch nor the record holds what the service needs;
* ``POST /cds-services/{id}/feedback`` — the EHR's feedback on cards, recorded as audited
  actions in the suggestion lifecycle (:mod:`reasoning.cds.feedback`);
* ``GET /cds-services/sources/{kind}/{name}`` — the model card or rule page a card's
  ``source.url`` points to (Markdown), unauthenticated like discovery.

Authentication. A service or feedback call carries the app's bearer token (the EHR is
given a token with the role of its users, ``Authorization: Bearer <token>``), checked as
on the API (:data:`serving.deps.CurrentUser`); the caller's role decides which
suggestions become cards and who is recorded as acting on feedback. CDS Hooks 2.0.1
§Trusting CDS Clients has the EHR sign a JWT with keys published at its JWKS URL:
TODO(cds-jwt) accept such a JWT, checked against the configured EHRs' JWKS.

The business logic is :mod:`reasoning.cds`; this module maps HTTP to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from healthos_core.access import readable_audiences
from healthos_core.db import make_session_factory, utcnow
from healthos_core.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from healthos_core.suggestion_revision import poll_suggestion_revision
from reasoning.cds.cards import Card
from reasoning.cds.feedback import FeedbackItem, record_feedback
from reasoning.cds.prefetch import PrefetchUnavailableError, context_id, prefetched
from reasoning.cds.services import (
    CLINICAL_AUDIENCES,
    HANDLERS,
    SERVICES,
    HookCall,
    cards_json,
    patient_view,
)
from serving.deps import CurrentUser, SessionDep, app_engine, app_sessions, run_polled_read
from serving.page_cache import PageCache
from serving.problems import problem_response
from serving.schemas.cds_hooks import (
    CdsRequestCreate,
    CdsResponsePublic,
    CdsServicePublic,
    CdsServicesPublic,
    FeedbackCreate,
    FeedbackPublic,
    FeedbackRecordedPublic,
)
from serving.schemas.common import ProblemDetails

router = APIRouter(prefix="/cds-services", tags=["cds-hooks"])

ServiceId = Annotated[
    str,
    PathParam(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Service id from discovery, e.g. healthos-patient-view",
    ),
]
PRECONDITION_FAILED: Final[dict[int | str, dict[str, Any]]] = {
    412: {
        "model": ProblemDetails,
        "description": "Neither the prefetch nor HealthOS's record holds what the service "
        "needs (the patient, the encounter, context.draftOrders); the detail says what",
    }
}
#: Services whose cards are clinical: the caller's role must read clinical suggestions.
_CLINICAL_SERVICES: Final = frozenset({"healthos-patient-view", "healthos-order-sign"})
_CONTENT_TYPE: Final = "application/json"


@router.get("", response_model=CdsServicesPublic)
async def discover() -> CdsServicesPublic:
    """List the CDS services: hook, id, title, description and prefetch templates."""
    return CdsServicesPublic(
        services=[CdsServicePublic.model_validate(s.to_json()) for s in SERVICES.values()]
    )


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + router.prefix


def _service(service_id: str, hook: str | None = None) -> str:
    service = SERVICES.get(service_id)
    if service is None:
        raise NotFoundError(
            f"no CDS service {service_id!r}: GET /cds-services lists them ({', '.join(SERVICES)})"
        )
    if hook is not None and hook != service.hook:
        raise InvalidInputError(
            f"hook {hook[:64]!r} is not this service's: {service_id} answers {service.hook!r}"
        )
    return service.hook


def _audiences(role: str, service_id: str) -> frozenset[str]:
    audiences = readable_audiences(role)
    needed = CLINICAL_AUDIENCES if service_id in _CLINICAL_SERVICES else audiences
    if not audiences & needed:
        raise PermissionDeniedError(
            f"the {role} role may not read the suggestions {service_id} shows"
        )
    return audiences


def _json(body: dict[str, Any]) -> Response:
    return Response(
        content=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        media_type=_CONTENT_TYPE,
    )


async def _patient_view(request: Request, call: HookCall, base: str) -> Response:
    """Answer ``patient-view`` as a polled read, kept while no suggestion changes."""
    patient_id = context_id(call.context, "patientId")
    encounter_id = context_id(call.context, "encounterId", required=False)
    sent = prefetched(call.prefetch, "patient", "Patient", patient_id) is not None
    key = ("cds-patient-view", patient_id, encounter_id, sent, tuple(sorted(call.audiences)), base)
    cache: PageCache = request.app.state.page_cache
    engine, sessions = app_engine(request), app_sessions(request)

    def read() -> bytes:
        revision = poll_suggestion_revision(engine)
        kept = cache.get(key, revision)
        if kept is not None:
            return kept.body
        with sessions() as session:
            cards = patient_view(session, call)
        body = json.dumps(cards_json(cards, base), separators=(",", ":"), ensure_ascii=False)
        return cache.put(key, revision, body.encode()).body

    return Response(content=await run_polled_read(request, read), media_type=_CONTENT_TYPE)


async def _writing_service(
    request: Request,
    handler: Callable[[Session, HookCall], list[Card]],
    call: HookCall,
    base: str,
) -> Response:
    """Run a service that stores suggestions, in one writer transaction off the event loop."""
    writers = make_session_factory(app_engine(request), writer=True)

    def work() -> dict[str, Any]:
        with writers() as session, session.begin():
            return cards_json(handler(session, call), base)

    return _json(await run_in_threadpool(work))


@router.post(
    "/{service_id}",
    response_model=CdsResponsePublic,
    responses=PRECONDITION_FAILED,
)
async def call_service(
    *, request: Request, user: CurrentUser, service_id: ServiceId, body: CdsRequestCreate
) -> Response:
    """Call a CDS service: cards for the hook's context (CDS Hooks 2.0.1 §HTTP Request).

    ``patient-view`` reads; ``order-sign`` and ``encounter-discharge`` store the
    suggestions their checks find, so feedback on their cards reaches them.
    """
    _service(service_id, body.hook)
    call = HookCall(
        context=body.context,
        prefetch=body.prefetch,
        audiences=_audiences(user.role, service_id),
        now=utcnow(),
    )
    base = _base_url(request)
    try:
        if service_id == "healthos-patient-view":
            return await _patient_view(request, call, base)
        return await _writing_service(request, HANDLERS[service_id], call, base)
    except PrefetchUnavailableError as exc:
        return problem_response(request, status=412, code=exc.code, detail=exc.message)


@router.post("/{service_id}/feedback", response_model=FeedbackPublic)
def give_feedback(
    *, session: SessionDep, user: CurrentUser, service_id: ServiceId, body: FeedbackCreate
) -> FeedbackPublic:
    """Record what the clinician did with cards: accepted → act, overridden → dismiss.

    On a suggestion already acted on or dismissed the outcome is recorded as a note
    (docs/cds-hooks.md). An unknown card is 404 and nothing is recorded.
    """
    _service(service_id)
    items = [
        FeedbackItem(
            card=entry.card,
            outcome=entry.outcome,
            accepted_suggestions=tuple(s.id for s in entry.acceptedSuggestions),
            override_code=entry.overrideReason.reason.code
            if entry.overrideReason and entry.overrideReason.reason
            else None,
            override_system=entry.overrideReason.reason.system
            if entry.overrideReason and entry.overrideReason.reason
            else None,
            override_display=entry.overrideReason.reason.display
            if entry.overrideReason and entry.overrideReason.reason
            else None,
            user_comment=entry.overrideReason.userComment if entry.overrideReason else None,
            outcome_timestamp=entry.outcomeTimestamp,
        )
        for entry in body.feedback
    ]
    results = record_feedback(session, service_id, items, actor=user.subject, role=user.role)
    return FeedbackPublic(
        recorded=[
            FeedbackRecordedPublic(
                card=r.card, suggestion_id=r.suggestion_id, action=r.action, status=r.status
            )
            for r in results
        ]
    )


_RULES: Final[dict[str, str]] = {
    "news2": "NEWS2, Royal College of Physicians 2017, Chart 1 (scales 1 and 2): "
    "https://www.rcp.ac.uk/improving-care/resources/national-early-warning-score-news-2/",
    "qsofa": "qSOFA, Seymour et al., JAMA 2016;315(8):762-774 (Sepsis-3)",
    "sirs": "SIRS criteria, Bone et al., Chest 1992;101(6):1644-1655",
    "kdigo_aki": "KDIGO 2012 Clinical Practice Guideline for Acute Kidney Injury, staging by "
    "creatinine",
    "lace": "LACE index, van Walraven et al., CMAJ 2010;182(6):551-557; Charlson per Quan 2005",
    "revenue_leakage": "HealthOS revenue leakage rules (docs/finance.md)",
    "prior_authorization": "The payer contract's prior-authorisation categories "
    "(Contract.prior_auth_categories) and the authorisations on file; missing: X12 CARC 197",
    "claim_scrubber": "HealthOS claim scrubber edits (docs/claims.md): CARC 16 (missing "
    "information), 18 (duplicate), 26/27/31 (coverage), 197 (authorisation)",
    "duplicate_order": "The same medication ordered, or procedure done, for the patient in "
    "the last 30 days, or twice among the drafts",
    "unbilled_charges": "Billable ChargeItems of the encounter that no claim line carries",
    "discharge_documentation": "A diagnosis (Condition) for the encounter; for inpatients a "
    "discharge disposition (UB-04 form locator 17)",
}
SourceKind = Literal["model", "rule"]
SourceName = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]


def _model_card(request: Request, name: str) -> str | None:
    store = getattr(request.app.state, "models", None)
    directory = getattr(store, "directory", None)
    candidates = [Path(directory) / name / "MODEL_CARD.md"] if directory is not None else []
    candidates.append(
        Path(str(resources.files("reasoning").joinpath("artifacts"))) / name / "MODEL_CARD.md"
    )
    for path in candidates:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return None


@router.get(
    "/sources/{kind}/{name}",
    response_class=Response,
    responses={
        200: {"content": {"text/markdown": {"schema": {"type": "string"}}}},
        404: {"model": ProblemDetails, "description": "No such rule or model"},
    },
)
async def read_source(*, request: Request, kind: SourceKind, name: SourceName) -> Response:
    """Return the rule page or model card behind a card's ``source.url`` (Markdown)."""
    text = _model_card(request, name) if kind == "model" else None
    if kind == "rule" and name in _RULES:
        text = f"# Rule `{name}`\n\n{_RULES[name]}\n"
    if text is None:
        raise NotFoundError(f"no {kind} {name!r} behind HealthOS cards")
    return Response(content=text, media_type="text/markdown")
