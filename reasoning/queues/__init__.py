"""Queue model of HealthOS's queue points: Erlang C, ciw simulation, rates, roster what-if.

Plain data in, plain data out: nothing here reads the record, so the caller (the bottleneck
scorer) wires it to ``healthos_core.operations``. See ``docs/operations.md`` (Queue model).
"""

from reasoning.queues.erlang import ErlangCResult, erlang_b, erlang_c, smallest_servers
from reasoning.queues.errors import QueueInputError
from reasoning.queues.estimation import (
    HourlyEstimate,
    ProfileHour,
    TicketLike,
    estimate_hourly,
    hourly_profile,
)
from reasoning.queues.roster import (
    HourProjection,
    RosterChange,
    RosterRecommendation,
    RosterVerification,
    SimulatedChange,
    recommend_roster_change,
    smallest_change_by_simulation,
    verify_by_simulation,
)
from reasoning.queues.simulation import (
    DrawnPatient,
    Estimate,
    Scenario,
    SimulationResult,
    TriageClass,
    draw_patients,
    simulate,
)

__all__ = [
    "DrawnPatient",
    "ErlangCResult",
    "Estimate",
    "HourProjection",
    "HourlyEstimate",
    "ProfileHour",
    "QueueInputError",
    "RosterChange",
    "RosterRecommendation",
    "RosterVerification",
    "Scenario",
    "SimulatedChange",
    "SimulationResult",
    "TicketLike",
    "TriageClass",
    "draw_patients",
    "erlang_b",
    "erlang_c",
    "estimate_hourly",
    "hourly_profile",
    "recommend_roster_change",
    "simulate",
    "smallest_change_by_simulation",
    "smallest_servers",
    "verify_by_simulation",
]
