"""API shape of ``GET /api/v1/me``: the caller's role and what it may read and act on."""

from __future__ import annotations

from pydantic import BaseModel, Field

from serving.schemas.suggestions import AudienceName


class MePublic(BaseModel):
    """The authenticated caller, as the command center needs it to choose its view.

    ``audiences`` and ``acts_for`` come from :mod:`healthos_core.access` (the one rule the
    suggestions API uses), sorted.
    """

    subject: str = Field(
        description="Pseudonymous id of the token (a SHA-256 prefix); never the token",
        examples=["token:3f1c0a9b2d4e5f60"],
    )
    role: str = Field(examples=["nurse"])
    audiences: list[AudienceName] = Field(
        description="Audiences whose suggestions the role may read"
    )
    acts_for: list[AudienceName] = Field(
        description="Audiences whose suggestions the role may acknowledge, act on or dismiss"
    )
