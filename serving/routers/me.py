"""``GET /me``: who the bearer token is, for clients that adapt to the caller's role.

The command center (``/``, ``docs/command-center.md``) signs in with a token and asks
this route which view to show. Any valid token may call it; it reads no database.
"""

from __future__ import annotations

from fastapi import APIRouter

from healthos_core.access import actionable_audiences, readable_audiences
from serving.deps import CurrentUser
from serving.schemas.me import MePublic

router = APIRouter(tags=["me"])


@router.get("/me", response_model=MePublic)
async def read_me(*, user: CurrentUser) -> MePublic:
    """Return the caller's role and the suggestion audiences it may read and act for.

    ``async``: no I/O (the token check is in memory).
    """
    return MePublic(
        subject=user.subject,
        role=user.role,
        audiences=sorted(readable_audiences(user.role)),
        acts_for=sorted(actionable_audiences(user.role)),
    )
