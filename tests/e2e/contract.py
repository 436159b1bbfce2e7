"""Answers shaped exactly as docs of issue 11's contracts say, for routes other branches add.

``GET /api/v1/queues``, ``GET /api/v1/beds/census`` and ``GET /api/v1/kpis`` are built in
parallel; the page is checked against these documents (served through Playwright's
request routing), so its views work unchanged once the routes are merged.
"""

from __future__ import annotations

from typing import Any

AT = "2026-12-07T10:00:00Z"

QUEUES: dict[str, Any] = {
    "at": AT,
    "queue_points": [
        {
            "id": "loc-opd-cardio",
            "name": "OPD Cardiology",
            "service": "opd_clinic",
            "facility_id": "fac-1",
            "target_wait_minutes": 30,
            "waiting": 14,
            "in_service": 2,
            "servers_now": 2,
            "current_wait_minutes": 48.4,
            "longest_wait_minutes": 71.0,
            "breaching": True,
        },
        {
            "id": "loc-pharmacy",
            "name": "Main pharmacy",
            "service": "pharmacy",
            "facility_id": "fac-1",
            "target_wait_minutes": 20,
            "waiting": 3,
            "in_service": 2,
            "servers_now": 3,
            "current_wait_minutes": 7.6,
            "longest_wait_minutes": None,
            "breaching": False,
        },
    ],
}

BEDS: dict[str, Any] = {
    "at": AT,
    "pools": [
        {
            "pool": "general_medicine",
            "facility_id": "fac-1",
            "beds": 40,
            "available": 38,
            "occupied": 35,
            "occupancy": 35 / 38,
            "threshold": 0.85,
            "over_threshold": True,
            "by_status": {
                "occupied": 35,
                "unoccupied": 1,
                "housekeeping": 1,
                "isolated": 1,
                "closed": 2,
            },
            "expected_discharges_24h": 6,
            "ed_boarding": 4,
        },
        {
            "pool": "icu",
            "facility_id": "fac-1",
            "beds": 10,
            "available": 0,
            "occupied": 0,
            "occupancy": None,
            "threshold": 0.8,
            "over_threshold": False,
            "by_status": {
                "occupied": 0,
                "unoccupied": 0,
                "housekeeping": 0,
                "isolated": 0,
                "closed": 10,
            },
            "expected_discharges_24h": 0,
            "ed_boarding": 0,
        },
    ],
}


def _kpi(key: str, label: str, value: float | None, unit: str, **more: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "key": key,
        "label": label,
        "value": value,
        "unit": unit,
        "currency": None,
        "target": None,
        "better": "higher",
        "previous_day": None,
        "previous_week": None,
        "formula": f"{label}: formula",
        "source": "source",
        "breakdown": [],
    }
    fields.update(more)
    return fields


KPIS: dict[str, Any] = {
    "date": "2026-12-07",
    "scopes": [
        {
            "level": "facility",
            "id": "fac-1",
            "name": "General Hospital",
            "kpis": [_kpi("alos", "Average length of stay", 4.24, "days", better="lower")],
        },
        {
            "level": "region",
            "id": "reg-1",
            "name": "North region",
            "kpis": [
                _kpi(
                    "bed_occupancy",
                    "Bed occupancy",
                    0.921,
                    "ratio",
                    target=0.85,
                    better="lower",
                    previous_day=0.901,
                    previous_week=0.95,
                    breakdown=[{"label": "general_medicine", "value": 0.921}],
                ),
                _kpi(
                    "collections",
                    "Collections",
                    125000.5,
                    "currency",
                    currency="USD",
                    target=150000,
                    previous_day=125000.5,
                ),
                _kpi("ed_wait", "ED within 4 hours", None, "ratio", target=0.95),
                _kpi("open_clinical_flags", "Open clinical flags", 12, "count", better="lower"),
            ],
        },
    ],
}
