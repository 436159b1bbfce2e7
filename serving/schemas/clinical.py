"""API shapes of clinical writes: what comes in (``XCreate``) and what goes back.

Every body refuses unknown fields (``extra="forbid"``), takes times only as ISO 8601
strings with a zone (a naive time is refused, naming the field), and bounds every
number: vital signs by the physiological ranges of
:data:`healthos_core.record.vitals.VITAL_RANGES`, the one place they are defined. Every
answer carries the stored resource and ``charge_items``: the ChargeItems that write
posted (charge capture runs in the same transaction).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from healthos_core import terminology as t
from healthos_core.billing.entities import ChargeItem
from healthos_core.record.entities import EncounterClass, MedicationAdministration, Procedure
from healthos_core.record.vitals import VITAL_RANGES, VITAL_UNITS
from serving.schemas.billing import money_text, quantity_text
from serving.schemas.common import IsoDate, IsoDateTime
from serving.schemas.encounters import EncounterPublic, ObservationPublic
from serving.schemas.patients import PatientPublic

#: A FHIR id (R4 datatype ``id``).
FhirId = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9\-.]{1,64}$", examples=["b5d0c7e2-1f4a-4a43-9a55-0c1f4e1c2d3a"])
]
#: Text with at least one visible character.
Text = Annotated[str, Field(pattern=r"\S")]
Code = Annotated[Text, Field(min_length=1, max_length=64)]
Display = Annotated[Text, Field(min_length=1, max_length=512)]
System = Annotated[Text, Field(min_length=1, max_length=128)]
Name = Annotated[Text, Field(min_length=1, max_length=128)]
Gender = Literal["male", "female", "other", "unknown"]
ACVPULevel = Literal["A", "C", "V", "P", "U"]

#: How far ahead of the server's clock a clinical time may be (clock skew between devices).
CLOCK_SKEW = dt.timedelta(hours=1)
#: The earliest clinical time accepted.
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)


def clinical_time(value: dt.datetime) -> dt.datetime:
    """Return an aware time as UTC, refusing times before 1900 or ahead of the clock.

    A measurement, a procedure or a move is recorded when it has happened: a time more
    than :data:`CLOCK_SKEW` ahead of the server's clock is a typing slip (or a wrong zone),
    and a year such as 0001 cannot even be turned into UTC.

    Raises
    ------
    ValueError
        Out of range (a 422 naming the field).
    """
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("the time is out of range: give a time after 1900") from None
    if utc < EARLIEST:
        raise ValueError("the time is before 1900")
    if utc > dt.datetime.now(dt.UTC) + CLOCK_SKEW:
        raise ValueError("the time is in the future: record what has happened")
    return utc


#: An aware ISO 8601 time of something that has happened (see :func:`clinical_time`).
ClinicalTime = Annotated[IsoDateTime, AfterValidator(clinical_time)]


def _vital(name: str, description: str, example: float) -> Any:
    low, high = VITAL_RANGES[name]
    return Field(
        default=None,
        ge=low,
        le=high,
        strict=True,  # a JSON number only: "97" is not one (schemathesis negative data)
        allow_inf_nan=False,
        description=f"{description}, {VITAL_UNITS[name]} ({low:g}-{high:g})",
        examples=[example],
    )


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdentifierCreate(_Body):
    """A business identifier: ``system`` + ``value`` and its HL7 v2-0203 type (``MR`` …)."""

    system: Annotated[str, Field(max_length=255)] = Field(
        default="", examples=["urn:oid:1.2.36.146.595.217.0.1"]
    )
    value: Annotated[Text, Field(min_length=1, max_length=128)] = Field(examples=["MRN-00042"])
    type: Annotated[str, Field(pattern=r"^[A-Z]{1,16}$")] | None = Field(
        default=None, examples=["MR"], description="HL7 v2-0203 identifier type code"
    )


class PatientCreate(_Body):
    """A patient to register; ``identifiers`` must not belong to another patient (409)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "given": "Asha",
                    "family": "Rao",
                    "gender": "female",
                    "birth_date": "1980-05-17",
                    "identifiers": [{"system": "urn:mrn", "value": "MRN-00042", "type": "MR"}],
                }
            ]
        },
    )

    given: Name
    family: Name
    gender: Gender
    birth_date: IsoDate
    identifiers: list[IdentifierCreate] = Field(default=[], max_length=20)
    facility_id: FhirId | None = Field(default=None, description="The registering Organization")
    id: FhirId | None = Field(default=None, description="FHIR id; default a new uuid")

    @field_validator("birth_date")
    @classmethod
    def _not_in_future(cls, value: dt.date) -> dt.date:
        if value > dt.datetime.now(dt.UTC).date():
            raise ValueError("the birth date is in the future")
        if value.year < 1850:
            raise ValueError("the birth date is before 1850")
        return value


class EncounterCreate(_Body):
    """An admission or visit: an encounter ``in-progress`` from ``start``, at a ward or bed."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "patient_id": "pat-1",
                    "class_code": "IMP",
                    "start": "2026-03-02T08:30:00Z",
                    "location_id": "bed-ward-a-3",
                    "type_code": "32485007",
                    "type_display": "Hospital admission",
                }
            ]
        },
    )

    patient_id: FhirId
    class_code: EncounterClass = Field(description="v3 ActCode: AMB, EMER, IMP …")
    start: ClinicalTime
    facility_id: FhirId | None = Field(default=None, description="Default the patient's")
    location_id: FhirId | None = Field(default=None, description="Ward or bed (a Location)")
    type_code: Code | None = Field(default=None, description="SNOMED CT encounter type")
    type_display: Display | None = None
    id: FhirId | None = Field(default=None, description="FHIR id; default a new uuid")


class VitalSignsCreate(_Body):
    """A vital-sign set taken together at ``effective_at``; at least one measurement.

    For a NEWS2 give all seven parameters: respiratory rate, SpO2, oxygen (a flow rate,
    ``0`` for room air, or FiO2), systolic pressure, heart rate, ACVPU and temperature.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "effective_at": "2026-03-02T10:00:00Z",
                    "respiratory_rate": 24,
                    "spo2": 91,
                    "oxygen_flow_rate": 2,
                    "systolic_bp": 98,
                    "diastolic_bp": 60,
                    "heart_rate": 118,
                    "consciousness": "A",
                    "temperature": 38.6,
                }
            ]
        },
    )

    effective_at: ClinicalTime
    respiratory_rate: float | None = _vital("respiratory_rate", "Respiratory rate", 18)
    spo2: float | None = _vital("spo2", "Oxygen saturation (pulse oximetry)", 97)
    oxygen_flow_rate: float | None = _vital(
        "oxygen_flow_rate", "Supplemental oxygen flow; 0 = room air", 0
    )
    fio2: float | None = _vital("fio2", "Inhaled oxygen concentration", 21)
    systolic_bp: float | None = _vital("systolic_bp", "Systolic blood pressure", 120)
    diastolic_bp: float | None = _vital("diastolic_bp", "Diastolic blood pressure", 80)
    heart_rate: float | None = _vital("heart_rate", "Heart rate", 72)
    consciousness: ACVPULevel | None = Field(default=None, description="ACVPU level")
    temperature: float | None = _vital("temperature", "Body temperature", 36.8)

    @model_validator(mode="after")
    def _a_measurement(self) -> VitalSignsCreate:
        measured = self.model_dump(exclude={"effective_at"}, exclude_none=True)
        if not measured:
            raise ValueError("give at least one measurement")
        if self.diastolic_bp is not None and self.systolic_bp is None:
            raise ValueError("diastolic_bp needs systolic_bp: a blood pressure is a pair")
        return self


class ProcedureCreate(_Body):
    """A procedure performed during the encounter; priced by its code if the chargemaster has it."""

    id: FhirId | None = Field(
        default=None,
        description="The client's id for the procedure (default: a new one). Sending the "
        "same procedure again with its id changes nothing; other content under it is 409.",
    )
    code_system: System = Field(default=t.SNOMED, examples=[t.SNOMED])
    code: Code = Field(examples=["73761001"])
    display: Display | None = Field(default=None, examples=["Colonoscopy"])
    performed_at: ClinicalTime
    performed_end: ClinicalTime | None = None


class MedicationAdministrationCreate(_Body):
    """A dose given during the encounter; ``dose_unit`` (UCUM) is required with ``dose_value``."""

    code_system: System = Field(default=t.RXNORM, examples=[t.RXNORM])
    code: Code = Field(examples=["310965"])
    display: Display | None = Field(default=None, examples=["Ibuprofen 200 MG Oral Tablet"])
    effective_at: ClinicalTime
    effective_end: ClinicalTime | None = None
    dose_value: float | None = Field(
        default=None, gt=0, le=1_000_000, strict=True, allow_inf_nan=False, examples=[200]
    )
    dose_unit: Annotated[Text, Field(min_length=1, max_length=32)] | None = Field(
        default=None, examples=["mg"]
    )
    request_id: FhirId | None = Field(default=None, description="The MedicationRequest filled")

    @model_validator(mode="after")
    def _unit_with_dose(self) -> MedicationAdministrationCreate:
        if self.dose_value is not None and self.dose_unit is None:
            raise ValueError("dose_unit is required with dose_value")
        return self


class TransferCreate(_Body):
    """A move of the patient to another ward or bed at ``at``."""

    location_id: FhirId = Field(examples=["bed-icu-2"])
    at: ClinicalTime


class DischargeCreate(_Body):
    """The end of the encounter; ``disposition`` is a FHIR discharge-disposition code."""

    end: ClinicalTime
    disposition: Annotated[Text, Field(min_length=1, max_length=32)] | None = Field(
        default=None, examples=["home"]
    )


# --------------------------------------------------------------------------- answers


class ChargeItemPublic(BaseModel):
    """A charge posted for a clinical event (FHIR ChargeItem); amounts as decimal strings."""

    id: str
    status: str
    service_ref: str | None = Field(description='The event charged, "Procedure/<id>" …')
    encounter_id: str | None = None
    code_system: str
    code: str
    display: str | None = None
    quantity: str
    unit_price: str
    total: str
    currency: str
    occurred_at: dt.datetime | None = None

    @classmethod
    def from_entity(cls, charge: ChargeItem) -> ChargeItemPublic:
        """Build from a :class:`~healthos_core.billing.entities.ChargeItem`."""
        return cls(
            id=charge.id,
            status=charge.status,
            service_ref=charge.service_ref,
            encounter_id=charge.encounter_id,
            code_system=charge.code_system,
            code=charge.code,
            display=charge.display,
            quantity=quantity_text(Decimal(charge.quantity)) or "1",
            unit_price=money_text(charge.unit_price),
            total=money_text(charge.total),
            currency=charge.currency,
            occurred_at=charge.occurred_at,
        )


class ProcedurePublic(BaseModel):
    """A performed procedure."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    patient_id: str
    encounter_id: str | None = None
    status: str
    code_system: str | None = None
    code: str | None = None
    display: str | None = None
    performed_start: dt.datetime | None = None
    performed_end: dt.datetime | None = None

    @classmethod
    def from_entity(cls, procedure: Procedure) -> ProcedurePublic:
        """Build from a :class:`~healthos_core.record.entities.Procedure`."""
        return cls.model_validate(procedure)


class MedicationAdministrationPublic(BaseModel):
    """A dose given."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    patient_id: str
    encounter_id: str | None = None
    request_id: str | None = None
    status: str
    code_system: str | None = None
    code: str | None = None
    display: str | None = None
    effective_start: dt.datetime | None = None
    effective_end: dt.datetime | None = None
    dose_value: float | None = None
    dose_unit: str | None = None

    @classmethod
    def from_entity(
        cls, administration: MedicationAdministration
    ) -> MedicationAdministrationPublic:
        """Build from a :class:`~healthos_core.record.entities.MedicationAdministration`."""
        return cls.model_validate(administration)


def _charges() -> Any:
    return Field(description="The ChargeItems this write posted (none if nothing is priced)")


class PatientWritePublic(BaseModel):
    """The registered patient and the charges registering posted (none today)."""

    patient: PatientPublic
    charge_items: list[ChargeItemPublic] = _charges()


class EncounterWritePublic(BaseModel):
    """The encounter as stored after the write, and the charges it posted (a visit fee)."""

    encounter: EncounterPublic
    location_history: list[dict[str, Any]] = Field(
        description="FHIR Encounter.location entries, oldest first"
    )
    charge_items: list[ChargeItemPublic] = _charges()


class ObservationsWritePublic(BaseModel):
    """The observations of a vital-sign set and the charges they posted."""

    observations: list[ObservationPublic]
    charge_items: list[ChargeItemPublic] = _charges()


class ProcedureWritePublic(BaseModel):
    """The stored procedure and the charges it posted."""

    procedure: ProcedurePublic
    charge_items: list[ChargeItemPublic] = _charges()


class MedicationAdministrationWritePublic(BaseModel):
    """The stored administration and the charges it posted."""

    medication_administration: MedicationAdministrationPublic
    charge_items: list[ChargeItemPublic] = _charges()
