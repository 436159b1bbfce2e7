"""Operations entities that are not FHIR resources: queue rosters and bed-pool thresholds."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Date, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from healthos_core.db import Base


class QueueRoster(Base):
    """Staffed servers at a queue point for one hour: weekly (by weekday) or on one date.

    A row has either ``weekday`` (0 = Monday … 6 = Sunday, the weekly pattern) or ``date``
    (an override of that date's hour); ``hour`` is the UTC hour 0–23 the servers work.

    Attributes
    ----------
    location_id : str
        The queue point (a Location of kind ``queue``).
    weekday : int or None
        Day of the week of a weekly row.
    date : datetime.date or None
        The date of an override row.
    hour : int
        UTC hour of day.
    servers : int
        Clinicians, nurses, counters … serving in that hour (0 = closed).
    """

    __tablename__ = "queue_roster"
    __table_args__ = (
        UniqueConstraint("location_id", "weekday", "date", "hour"),
        CheckConstraint("(weekday IS NULL) <> (date IS NULL)", name="weekday_or_date"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    location_id: Mapped[str] = mapped_column(
        ForeignKey("location.id", ondelete="CASCADE"), index=True
    )
    weekday: Mapped[int | None] = mapped_column(Integer)
    date: Mapped[dt.date | None] = mapped_column(Date)
    hour: Mapped[int] = mapped_column(Integer)
    servers: Mapped[int] = mapped_column(Integer)

    def __repr__(self) -> str:
        return f"QueueRoster(location_id={self.location_id!r}, hour={self.hour!r})"


class BedPoolThreshold(Base):
    """The occupancy threshold (0..1) of one bed pool, for one facility or for all (``None``).

    A pool without a row uses :data:`healthos_core.operations.codes.DEFAULT_THRESHOLDS`.
    """

    __tablename__ = "bed_pool_threshold"
    __table_args__ = (UniqueConstraint("facility_id", "pool"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    facility_id: Mapped[str | None] = mapped_column(String(64))
    pool: Mapped[str] = mapped_column(String(32))
    threshold: Mapped[float] = mapped_column(Float)

    def __repr__(self) -> str:
        return f"BedPoolThreshold(pool={self.pool!r}, threshold={self.threshold!r})"
