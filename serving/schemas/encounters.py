"""API shapes of encounters and their observations."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

from healthos_core.record.entities import Encounter, Observation


class ObservationPublic(BaseModel):
    """A measurement (vital sign, lab result) with its LOINC code, value and UCUM unit.

    ``quality_flag`` marks values the importer judged implausible; such rows have
    ``status="entered-in-error"`` and are not used by the scorers.
    """

    model_config = ConfigDict(from_attributes=True)

    id: str
    code: str | None = None
    display: str | None = None
    category: str | None = None
    value: float | None = None
    unit: str | None = None
    value_code: str | None = None
    value_string: str | None = None
    components: list[dict[str, Any]] | None = None
    effective_at: dt.datetime | None = None
    status: str
    quality_flag: str | None = None


class EncounterPublic(BaseModel):
    """A contact between a patient and the hospital (class AMB, EMER, IMP …)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    patient_id: str
    status: str
    class_code: str
    type_code: str | None = None
    type_display: str | None = None
    period_start: dt.datetime | None = None
    period_end: dt.datetime | None = None
    service_provider_id: str | None = None
    practitioner_id: str | None = None
    location_id: str | None = None
    reason_code: str | None = None
    admit_source: str | None = None
    discharge_disposition: str | None = None


class EncounterDetailPublic(EncounterPublic):
    """An encounter with its observations, oldest first."""

    observations: list[ObservationPublic] = []

    @classmethod
    def from_entities(
        cls, encounter: Encounter, observations: Iterable[Observation]
    ) -> EncounterDetailPublic:
        """Build from an encounter and its observations."""
        base = EncounterPublic.model_validate(encounter)
        return cls(
            **base.model_dump(),
            observations=[ObservationPublic.model_validate(o) for o in observations],
        )


class EncountersPublic(BaseModel):
    """A page of encounters; ``count`` is the number matching, ignoring the page."""

    data: list[EncounterPublic]
    count: int
