"""The KPIs per facility, network and region (issue 11 item 4; ``docs/kpis.md``).

``GET /kpis?date=YYYY-MM-DD&level=facility|network|region&id=ORG_ID`` (date default
today, UTC). Roles: leadership, finance, operations, admin; others 403. An id that is
not an Organization of that level is 404; a bad date or an id without a level 422.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BeforeValidator, WithJsonSchema

from healthos_core.db import utcnow
from healthos_core.kpis import compute_kpis, parse_kpi_date
from serving.deps import Principal, SessionDep, require_roles
from serving.schemas.kpis import KpiReportPublic, LevelName

KPI_READ_ROLES = ("leadership", "finance", "operations", "admin")

KpiReader = Annotated[Principal, Depends(require_roles(*KPI_READ_ROLES))]


def _date_rule(value: object) -> object:
    """Validate ``?date=`` by the KPI date rule (a ValueError becomes the 422)."""
    return parse_kpi_date(value, name="date") if isinstance(value, str) else value


#: ``?date=``: an ISO calendar date (a UTC day), checked by the one ``as_of`` rule.
DateQuery = Annotated[
    dt.date | None,
    BeforeValidator(_date_rule),
    WithJsonSchema({"type": "string", "format": "date"}),
    Query(description="The UTC day (2021-07-31); default today"),
]

router = APIRouter(prefix="/kpis", tags=["kpis"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "No Organization of that level with that id"},
    422: {"description": "date is not an ISO date, or id is given without level"},
}


@router.get("", response_model=KpiReportPublic, responses=_RESPONSES)
def read_kpis(
    *,
    session: SessionDep,
    user: KpiReader,
    date: DateQuery = None,
    level: Annotated[LevelName | None, Query(description="Only this level")] = None,
    org_id: Annotated[
        str | None,
        Query(alias="id", min_length=1, max_length=64, description="Organization id"),
    ] = None,
) -> KpiReportPublic:
    """Every KPI for the date, the day before and a week before, per scope.

    Without ``level``: every facility, then each network and region (their values come
    from the summed tallies of their facilities). Each KPI names its formula, period,
    source and target.
    """
    report = compute_kpis(session, date=date or utcnow().date(), level=level, org_id=org_id)
    return KpiReportPublic.model_validate(report.as_dict())
