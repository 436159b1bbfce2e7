"""The parts every KPI family shares: tallies, definitions, results.

A KPI family computes, for each day asked and each facility, a :class:`Tally`: the
*additive* quantities its formula needs (numerators, denominators, amounts; and, for a
median, the samples). A scope above a facility (network, region) adds its facilities'
tallies and evaluates the formula on the sums, so a ratio is recomputed from summed
numerators and denominators, never averaged (``docs/kpis.md``).
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from sqlalchemy.orm import Session

from healthos_core.kpis.sources import KpiSources

__all__ = [
    "Better",
    "BreakdownItem",
    "Computation",
    "KpiContext",
    "KpiDefinition",
    "Level",
    "Tally",
    "Unavailable",
    "Unit",
    "day_end",
    "number",
    "ratio",
]

Unit = Literal["ratio", "days", "minutes", "currency", "count"]
Better = Literal["higher", "lower"]
Level = Literal["facility", "network", "region"]


@dataclass(slots=True)
class Tally:
    """Additive quantities of one KPI for one scope and day (``sums``) and samples.

    ``sums`` are exact :class:`~decimal.Decimal` (counts, days, money); ``samples`` lists
    of values whose order statistic (median) the formula needs: they are pooled, not
    summed, on roll-up.
    """

    sums: dict[str, Decimal] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, amount: Decimal | int = 1) -> None:
        """Add ``amount`` (default 1: a count) to the quantity ``key``."""
        self.sums[key] = self.sums.get(key, Decimal(0)) + Decimal(amount)

    def sample(self, key: str, value: float) -> None:
        """Append one sample of ``key``."""
        self.samples.setdefault(key, []).append(value)

    def get(self, key: str) -> Decimal:
        """Return the quantity ``key`` (0 if none was added)."""
        return self.sums.get(key, Decimal(0))

    def merge(self, other: Tally) -> None:
        """Add ``other``'s quantities and pool its samples (the roll-up)."""
        for key, amount in other.sums.items():
            self.add(key, amount)
        for key, values in other.samples.items():
            self.samples.setdefault(key, []).extend(values)

    def median(self, key: str) -> float | None:
        """Return the median of the samples of ``key`` (``None`` without samples)."""
        values = self.samples.get(key)
        return statistics.median(values) if values else None

    @classmethod
    def total(cls, tallies: Iterable[Tally]) -> Tally:
        """Return one tally holding the sum of ``tallies``."""
        out = cls()
        for tally in tallies:
            out.merge(tally)
        return out


@dataclass(frozen=True, slots=True)
class BreakdownItem:
    """One line under a KPI: a label and its value (``None`` when not known)."""

    label: str
    value: float | None


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A KPI whose data HealthOS cannot read yet, with the reason shown to the reader."""

    reason: str


#: Day → facility id → tally, for each day asked; or why the KPI is not available.
Computation = dict[dt.date, dict[str, Tally]] | Unavailable


@dataclass(slots=True)
class KpiContext:
    """What a family's computation reads: the session, the days, the sources, a memo.

    ``days`` are the UTC days asked (the date, the day before, a week before);
    ``memo`` lets two KPIs of one family share a query in one pass.
    """

    session: Session
    days: Sequence[dt.date]
    sources: KpiSources
    memo: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class KpiDefinition:
    """A registered KPI: what it means, where it comes from, how it is computed.

    ``compute`` returns a :data:`Computation` for the context's days; ``evaluate`` turns a
    (facility or rolled-up) tally into the value and its breakdown. ``period`` says which
    time the value covers for a date D; ``default_target`` is used unless the setting
    ``HEALTHOS_KPI_TARGETS`` overrides it (``None``: no target).
    """

    key: str
    label: str
    unit: Unit
    better: Better
    formula: str
    source: str
    period: str
    default_target: float | None
    compute: Callable[[KpiContext], Computation]
    evaluate: Callable[[Tally], tuple[float | None, list[BreakdownItem]]]
    money: bool = False


def day_end(day: dt.date) -> dt.datetime:
    """Return the last instant of ``day`` in UTC (23:59:59.999999Z)."""
    return dt.datetime.combine(day, dt.time.max, dt.UTC)


def number(value: Decimal | float | None, places: int) -> float | None:
    """Round ``value`` half-up to ``places`` decimals as a JSON number (``None`` stays)."""
    if value is None:
        return None
    exact = value if isinstance(value, Decimal) else Decimal(str(value))
    return float(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def ratio(numerator: Decimal, denominator: Decimal, places: int = 4) -> float | None:
    """Return ``numerator / denominator`` rounded, ``None`` when the denominator is 0."""
    if denominator == 0:
        return None
    return number(numerator / denominator, places)
