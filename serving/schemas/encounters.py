"""API shapes of encounters and their observations."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from healthos_core.access import RecordView
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
    """A contact between a patient and the hospital (class AMB, EMER, IMP …).

    The same fields in the list and the read of an encounter; ``reason_code`` (a
    clinical fact) only for the roles that need it (``docs/access.md``).
    """

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
    reason_code: str | None = Field(default=None, description="null if the role may not see it")
    admit_source: str | None = None
    discharge_disposition: str | None = None

    @classmethod
    def from_entity(cls, encounter: Encounter, view: RecordView) -> EncounterPublic:
        """Build from an encounter, showing what the caller's role may see.

        Parameters
        ----------
        encounter : Encounter
            The encounter.
        view : healthos_core.access.RecordView
            What the caller's role sees (:func:`healthos_core.access.record_view`).

        Returns
        -------
        EncounterPublic
            ``reason_code`` is ``None`` unless ``view.encounter_reason``.
        """
        public = cls.model_validate(encounter)
        if not view.encounter_reason:
            public.reason_code = None
        return public


class EncounterDetailPublic(EncounterPublic):
    """An encounter with its observations, oldest first (clinical roles only)."""

    observations: list[ObservationPublic] | None = Field(
        default=None,
        description="Oldest first; null if the role may not see observations (finance, "
        "operations, admin)",
    )

    @classmethod
    def from_entities(
        cls, encounter: Encounter, observations: Iterable[Observation], view: RecordView
    ) -> EncounterDetailPublic:
        """Build from an encounter and its observations, as the caller's role may see them.

        Parameters
        ----------
        encounter : Encounter
            The encounter.
        observations : iterable of Observation
            Its observations, in the order to show.
        view : healthos_core.access.RecordView
            What the caller's role sees.

        Returns
        -------
        EncounterDetailPublic
            The fields of :meth:`EncounterPublic.from_entity`, plus ``observations`` if
            ``view.observations`` (else ``None``).
        """
        base = EncounterPublic.from_entity(encounter, view)
        shown = [ObservationPublic.model_validate(o) for o in observations]
        return cls(**base.model_dump(), observations=shown if view.observations else None)


class EncountersPublic(BaseModel):
    """A page of encounters; ``count`` is the number matching, ignoring the page."""

    data: list[EncounterPublic]
    count: int
