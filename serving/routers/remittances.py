"""Remittances: import payer adjudications (FHIR ClaimResponse) and post them to the ledger.

The body is one ClaimResponse or a Bundle of them (``application/fhir+json`` or
``application/json``), or NDJSON, one ClaimResponse per line (``application/fhir+ndjson``,
``application/x-ndjson`` or ``application/ndjson``). It goes through the FHIR importer
(validation, references, storage) and the remittance posting it triggers: payments,
contractual adjustments, patient responsibility and denials per line with group code
and X12 CARC/RARC, and each claim's billing status.

The body is one unit, all or nothing: an unknown claim, a line whose amounts do not
balance, an unknown CARC/RARC, a resource that is not a ClaimResponse or malformed JSON
is a 422 problem naming the response and the reason, and nothing is written. Posting the
same responses again changes nothing.

Roles: ``finance`` (see :mod:`serving.routers.billing`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, HTTPException, Request, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from healthos_core.billing.entities import Claim, ClaimResponse
from healthos_core.billing.ledger import JournalEntry, id_batches, in_ids
from healthos_core.errors import FhirValidationError
from healthos_core.fhir.importer import Unit, import_unit, unit_from_document
from serving.deps import SessionDep
from serving.routers.billing import BILLING_READERS, BILLING_WRITERS
from serving.schemas.billing import RemittanceClaimPublic, RemittanceResultPublic, money

router = APIRouter(prefix="/remittances", tags=["remittances"], dependencies=BILLING_READERS)

JSON_TYPES: Final = frozenset({"application/fhir+json", "application/json"})
NDJSON_TYPES: Final = frozenset(
    {"application/fhir+ndjson", "application/x-ndjson", "application/ndjson"}
)
#: How the body is named in rejection messages.
SOURCE: Final = "request body"

_OPENAPI_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "description": "A FHIR R4 ClaimResponse, a Bundle of ClaimResponses, or NDJSON "
        "(one ClaimResponse per line).",
        "content": {
            **{t: {"schema": {"type": "object"}} for t in sorted(JSON_TYPES)},
            **{t: {"schema": {"type": "string"}} for t in sorted(NDJSON_TYPES)},
        },
    }
}


@dataclass(frozen=True, slots=True)
class RawBody:
    """A request body and its media type (lower case, without parameters)."""

    media_type: str
    data: bytes


async def raw_body(request: Request) -> RawBody:
    """Read the request body (the route itself runs in the thread pool, like the others)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return RawBody(media_type=media_type, data=await request.body())


# Helpers: parsing a body into an import unit is the API's job; reporting what the import
# posted belongs in ``healthos_core.billing.remittance`` and lives here until it moves
# there, so the route stays one call.


def unit_of(body: RawBody) -> Unit:
    """Parse a remittance body into one import unit of ClaimResponses.

    Raises
    ------
    fastapi.HTTPException
        415 for a media type other than FHIR JSON or NDJSON.
    FhirValidationError
        Empty, not UTF-8, invalid JSON, or holding a resource that is not a ClaimResponse.
    """
    if body.media_type not in JSON_TYPES | NDJSON_TYPES:
        raise HTTPException(
            status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail="send a ClaimResponse or Bundle as application/fhir+json, or NDJSON as "
            "application/fhir+ndjson or application/x-ndjson",
        )
    try:
        text = body.data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise FhirValidationError(f"not UTF-8 text (byte {exc.start})", source=SOURCE) from None
    if not text.strip():
        raise FhirValidationError("empty: send at least one ClaimResponse", source=SOURCE)
    if body.media_type in NDJSON_TYPES:
        entries: list[tuple[str | None, dict[str, Any]]] = []
        # NDJSON lines end in "\n" (or "\r\n"); str.splitlines() would also split inside
        # JSON strings on U+2028 and other characters JSON allows unescaped.
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                resource = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FhirValidationError(
                    f"line {number}: invalid JSON ({exc.msg})", source=SOURCE
                ) from None
            except ValueError:  # an integer past sys.get_int_max_str_digits() digits
                raise FhirValidationError(
                    f"line {number}: a number too long to read", source=SOURCE
                ) from None
            if not isinstance(resource, dict) or "resourceType" not in resource:
                raise FhirValidationError(f"line {number}: not a FHIR resource", source=SOURCE)
            entries.append((None, resource))
        unit = Unit(SOURCE, entries)
    else:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FhirValidationError(
                f"invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})", source=SOURCE
            ) from None
        except ValueError:  # an integer past sys.get_int_max_str_digits() digits
            raise FhirValidationError("a number too long to read", source=SOURCE) from None
        unit = unit_from_document(document, source=SOURCE)
    types = {
        str(r.get("resourceType") or "a resource without resourceType") for _, r in unit.entries
    }
    others = sorted(types - {"ClaimResponse"})
    if others:
        raise FhirValidationError(
            f"holds {', '.join(others)}: a remittance holds ClaimResponses only (import other "
            "resources with 'healthos import')",
            source=SOURCE,
        )
    if not unit.entries:
        raise FhirValidationError("holds no ClaimResponse", source=SOURCE)
    return unit


def import_remittance(session: Session, body: RawBody) -> RemittanceResultPublic:
    """Import and post the ClaimResponses of a body, all or nothing, and report the result.

    Raises
    ------
    FhirValidationError
        Any response is invalid or cannot be posted (the reason names it); nothing is
        written.
    """
    unit = unit_of(body)
    # A payer's answer arriving now is a live write: its claims are rescored (denial risk
    # resolves once a claim is answered) through the outbox, like every live write.
    result = import_unit(session, unit, origin="live")
    ids = sorted({str(r["id"]) for _, r in unit.entries})
    entries = 0
    rows: list[Any] = []
    for chunk in id_batches(session, ids):
        refs = [f"ClaimResponse/{i}" for i in chunk]
        entries += (
            session.scalar(
                select(func.count())
                .select_from(JournalEntry)
                .where(in_ids(session, JournalEntry.source_ref, refs))
            )
            or 0
        )
        rows.extend(
            session.execute(
                select(
                    ClaimResponse.id,
                    ClaimResponse.claim_id,
                    ClaimResponse.outcome,
                    ClaimResponse.payment_amount,
                    ClaimResponse.currency,
                    Claim.billing_status,
                )
                .outerjoin(Claim, Claim.id == ClaimResponse.claim_id)
                .where(in_ids(session, ClaimResponse.id, chunk))
            )
        )
    rows.sort(key=lambda row: row.id)
    return RemittanceResultPublic(
        source=SOURCE,
        responses=result.imported["ClaimResponse"],
        created=result.created["ClaimResponse"],
        journal_entries=entries,
        claims=[
            RemittanceClaimPublic(
                claim_response_id=row.id,
                claim_id=row.claim_id,
                outcome=row.outcome,
                payment=money(row.payment_amount),
                currency=row.currency,
                billing_status=row.billing_status,
            )
            for row in rows
        ],
    )


@router.post(
    "",
    response_model=RemittanceResultPublic,
    dependencies=BILLING_WRITERS,
    openapi_extra=_OPENAPI_BODY,
    responses={415: {"description": "Not FHIR JSON or NDJSON"}},
)
def create_remittance(
    *, session: SessionDep, body: Annotated[RawBody, Depends(raw_body)]
) -> RemittanceResultPublic:
    """Import payer ClaimResponses (resource, Bundle or NDJSON) and post them; 422 if any fails."""
    return import_remittance(session, body)
