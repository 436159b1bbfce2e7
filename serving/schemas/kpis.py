"""API shapes of the KPIs (``GET /api/v1/kpis``; contracts of issue 11)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

LevelName = Literal["facility", "network", "region"]


class BreakdownPublic(BaseModel):
    """One line under a KPI (a pool, a band, a numerator ...)."""

    label: str
    value: float | None = None


class KpiPublic(BaseModel):
    """One KPI of a scope for the date, with the day before, the week before and target."""

    key: str = Field(examples=["initial_denial_rate"])
    label: str
    value: float | None = Field(description="null when there is no data (or no source)")
    unit: Literal["ratio", "days", "minutes", "currency", "count"]
    currency: str | None = Field(default=None, description="ISO 4217, for money KPIs")
    target: float | None = None
    better: Literal["higher", "lower"]
    previous_day: float | None = None
    previous_week: float | None = None
    formula: str
    source: str
    period: str = Field(description="What the value covers for the date")
    breakdown: list[BreakdownPublic]


class KpiScopePublic(BaseModel):
    """The KPIs of one facility, network or region (roll-ups sum their facilities)."""

    level: LevelName
    id: str
    name: str
    kpis: list[KpiPublic]


class KpiReportPublic(BaseModel):
    """The KPIs of a date (a UTC day) for the scopes asked."""

    date: dt.date
    scopes: list[KpiScopePublic]
