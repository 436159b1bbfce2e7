"""Key performance indicators per facility, rolled up to network and region (issue 11).

One module per KPI family (``stays``, ``revenue``, ``claims``, ``flags``,
``operations``); the registry (:data:`KPIS`) and :func:`compute_kpis`. Each KPI states
its formula, period and source; ``docs/kpis.md`` explains them and the roll-up.
"""

from healthos_core.kpis.base import BreakdownItem, KpiDefinition, Tally, Unavailable
from healthos_core.kpis.registry import (
    KPIS,
    LEVELS,
    Kpi,
    KpiReport,
    KpiScope,
    compute_kpis,
    default_sources,
    kpi_targets,
    parse_kpi_date,
)
from healthos_core.kpis.sources import KpiSources, QueueVisit, queue_visit_source

__all__ = [
    "KPIS",
    "LEVELS",
    "BreakdownItem",
    "Kpi",
    "KpiDefinition",
    "KpiReport",
    "KpiScope",
    "KpiSources",
    "QueueVisit",
    "Tally",
    "Unavailable",
    "compute_kpis",
    "default_sources",
    "kpi_targets",
    "parse_kpi_date",
    "queue_visit_source",
]
