"""Clinical writes: register, admit, vital signs, procedures, doses, transfer, discharge.

Each route calls one library write (:mod:`healthos_core.record.service`,
:mod:`healthos_core.record.vitals`, :mod:`healthos_core.record.movements`) in the
request's one transaction (:data:`~serving.deps.SessionDep`), and answers with the
stored resource and the ChargeItems the write posted: charge capture, wired by the
app's lifespan, posts them in the same transaction, so the clinical fact and its charges
commit together, or, on any error, neither is written.

=================================================== ======================== ==========
route                                               library write            roles
=================================================== ======================== ==========
``POST /patients``                                  ``register_patient``     care, ops
``POST /encounters``                                ``admit``                care, ops
``POST /encounters/{id}/observations``              ``record_vital_signs``   care
``POST /encounters/{id}/procedures``                ``record_procedure``     care
``POST /encounters/{id}/medication-administrations`` ``record_medication_…``  care
``POST /encounters/{id}/transfer``                  ``transfer``             care, ops
``POST /encounters/{id}/discharge``                 ``discharge``            care, ops
=================================================== ======================== ==========

care = ``clinician``, ``nurse``; ops = ``operations`` (the admissions desk); the rule is
:data:`healthos_core.access.RECORD_WRITERS` (``docs/access.md``). Answers show the
caller's role what it may read (:data:`healthos_core.access.RECORD_VIEWS`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response, status
from sqlalchemy import event
from sqlalchemy.orm import Session

from healthos_core.access import RecordView, RecordWrite, check_record_write, record_view
from healthos_core.billing.entities import ChargeItem
from healthos_core.record.entities import Encounter
from healthos_core.record.movements import location_history, transfer
from healthos_core.record.service import (
    admit,
    discharge,
    record_medication_administration,
    record_procedure,
    register_patient,
)
from healthos_core.record.vitals import record_vital_signs
from serving.deps import CurrentUser, Principal, SessionDep
from serving.schemas.clinical import (
    ChargeItemPublic,
    DischargeCreate,
    EncounterCreate,
    EncounterWritePublic,
    MedicationAdministrationCreate,
    MedicationAdministrationPublic,
    MedicationAdministrationWritePublic,
    ObservationsWritePublic,
    PatientCreate,
    PatientWritePublic,
    ProcedureCreate,
    ProcedurePublic,
    ProcedureWritePublic,
    TransferCreate,
    VitalSignsCreate,
)
from serving.schemas.encounters import EncounterPublic, ObservationPublic
from serving.schemas.patients import PatientPublic

router = APIRouter()

EncounterId = Annotated[str, Path(min_length=1, max_length=64, description="FHIR Encounter id")]


def record_writer(write: RecordWrite) -> Callable[[Principal], Awaitable[RecordView]]:
    """Return a dependency that lets through the roles allowed ``write`` (403 for others).

    Parameters
    ----------
    write : RecordWrite
        The write the route does.

    Returns
    -------
    callable
        A dependency returning what the caller's role sees of the record.
    """

    async def check(user: CurrentUser) -> RecordView:
        check_record_write(user.role, write)
        return record_view(user.role)

    return check


Registrar = Annotated[RecordView, Depends(record_writer(RecordWrite.REGISTER))]
Admitter = Annotated[RecordView, Depends(record_writer(RecordWrite.ADMIT))]
Transferrer = Annotated[RecordView, Depends(record_writer(RecordWrite.TRANSFER))]
Discharger = Annotated[RecordView, Depends(record_writer(RecordWrite.DISCHARGE))]


def _may(write: RecordWrite) -> list[Any]:
    """Route dependencies refusing the roles not allowed ``write`` (403)."""
    return [Depends(record_writer(write))]


@contextmanager
def posted_charges(session: Session) -> Iterator[list[ChargeItem]]:
    """Collect the ChargeItems added to ``session`` inside the ``with`` block.

    The charges a write posted, whatever rule posted them (charge capture adds each one
    to the caller's session), without a query or a guess by service reference.

    Yields
    ------
    list of ChargeItem
        Filled as charges are added; read it after the block.
    """
    posted: list[ChargeItem] = []

    def collect(_: Session, instance: object) -> None:
        if isinstance(instance, ChargeItem):
            posted.append(instance)

    event.listen(session, "transient_to_pending", collect)
    try:
        yield posted
    finally:
        event.remove(session, "transient_to_pending", collect)


def _charges(session: Session, posted: list[ChargeItem]) -> list[ChargeItemPublic]:
    session.flush()
    return [ChargeItemPublic.from_entity(c) for c in posted]


@router.post(
    "/patients",
    response_model=PatientWritePublic,
    status_code=status.HTTP_201_CREATED,
    tags=["patients"],
)
def create_patient(
    *, session: SessionDep, view: Registrar, body: PatientCreate, response: Response
) -> PatientWritePublic:
    """Register a patient with identifiers (MRN …); 409 if an identifier is someone else's."""
    with posted_charges(session) as posted:
        patient = register_patient(
            session,
            given=body.given,
            family=body.family,
            gender=body.gender,
            birth_date=body.birth_date,
            identifiers=[
                {"system": i.system, "value": i.value, "type_code": i.type}
                for i in body.identifiers
            ],
            facility_id=body.facility_id,
            id=body.id,
        )
    response.headers["Location"] = f"/api/v1/patients/{patient.id}"
    return PatientWritePublic(
        patient=PatientPublic.from_entity(patient, view), charge_items=_charges(session, posted)
    )


def _encounter_answer(
    session: Session, encounter: Encounter, view: RecordView, posted: list[ChargeItem]
) -> EncounterWritePublic:
    return EncounterWritePublic(
        encounter=EncounterPublic.from_entity(encounter, view),
        location_history=location_history(encounter),
        charge_items=_charges(session, posted),
    )


@router.post(
    "/encounters",
    response_model=EncounterWritePublic,
    status_code=status.HTTP_201_CREATED,
    tags=["encounters"],
)
def create_encounter(
    *, session: SessionDep, view: Admitter, body: EncounterCreate, response: Response
) -> EncounterWritePublic:
    """Admit: start an encounter (in-progress) at a ward or bed; posts the visit fee if priced."""
    with posted_charges(session) as posted:
        encounter = admit(
            session,
            patient_id=body.patient_id,
            class_code=body.class_code.value,
            start=body.start,
            facility_id=body.facility_id,
            location_id=body.location_id,
            type_code=body.type_code,
            type_display=body.type_display,
            id=body.id,
        )
    response.headers["Location"] = f"/api/v1/encounters/{encounter.id}"
    return _encounter_answer(session, encounter, view, posted)


@router.post(
    "/encounters/{encounter_id}/observations",
    response_model=ObservationsWritePublic,
    status_code=status.HTTP_201_CREATED,
    tags=["encounters"],
    dependencies=_may(RecordWrite.OBSERVATION),
)
def create_vital_signs(
    *, session: SessionDep, encounter_id: EncounterId, body: VitalSignsCreate
) -> ObservationsWritePublic:
    """Record a vital-sign set (one Observation per measurement, LOINC-coded as NEWS2 reads)."""
    with posted_charges(session) as posted:
        observations = record_vital_signs(
            session,
            encounter_id=encounter_id,
            effective_at=body.effective_at,
            respiratory_rate=body.respiratory_rate,
            spo2=body.spo2,
            oxygen_flow_rate=body.oxygen_flow_rate,
            fio2=body.fio2,
            systolic_bp=body.systolic_bp,
            diastolic_bp=body.diastolic_bp,
            heart_rate=body.heart_rate,
            consciousness=body.consciousness,
            temperature=body.temperature,
        )
    return ObservationsWritePublic(
        observations=[ObservationPublic.model_validate(o) for o in observations],
        charge_items=_charges(session, posted),
    )


@router.post(
    "/encounters/{encounter_id}/procedures",
    response_model=ProcedureWritePublic,
    status_code=status.HTTP_201_CREATED,
    tags=["encounters"],
    dependencies=_may(RecordWrite.PROCEDURE),
)
def create_procedure(
    *, session: SessionDep, encounter_id: EncounterId, body: ProcedureCreate
) -> ProcedureWritePublic:
    """Record a performed procedure; posts its charge if the chargemaster prices the code."""
    with posted_charges(session) as posted:
        procedure = record_procedure(
            session,
            encounter_id=encounter_id,
            code_system=body.code_system,
            code=body.code,
            display=body.display,
            performed_at=body.performed_at,
            performed_end=body.performed_end,
            id=body.id,
        )
    return ProcedureWritePublic(
        procedure=ProcedurePublic.from_entity(procedure), charge_items=_charges(session, posted)
    )


@router.post(
    "/encounters/{encounter_id}/medication-administrations",
    response_model=MedicationAdministrationWritePublic,
    status_code=status.HTTP_201_CREATED,
    tags=["encounters"],
    dependencies=_may(RecordWrite.MEDICATION_ADMINISTRATION),
)
def create_medication_administration(
    *,
    session: SessionDep,
    encounter_id: EncounterId,
    body: MedicationAdministrationCreate,
) -> MedicationAdministrationWritePublic:
    """Record a dose given; posts its charge if the chargemaster prices the medication."""
    with posted_charges(session) as posted:
        administration = record_medication_administration(
            session,
            encounter_id=encounter_id,
            code_system=body.code_system,
            code=body.code,
            display=body.display,
            effective_at=body.effective_at,
            effective_end=body.effective_end,
            dose_value=body.dose_value,
            dose_unit=body.dose_unit,
            request_id=body.request_id,
        )
    return MedicationAdministrationWritePublic(
        medication_administration=MedicationAdministrationPublic.from_entity(administration),
        charge_items=_charges(session, posted),
    )


@router.post(
    "/encounters/{encounter_id}/transfer",
    response_model=EncounterWritePublic,
    tags=["encounters"],
)
def transfer_encounter(
    *, session: SessionDep, view: Transferrer, encounter_id: EncounterId, body: TransferCreate
) -> EncounterWritePublic:
    """Move the patient to another ward or bed; the location history keeps the places left."""
    with posted_charges(session) as posted:
        encounter = transfer(session, encounter_id, body.location_id, body.at)
    return _encounter_answer(session, encounter, view, posted)


@router.post(
    "/encounters/{encounter_id}/discharge",
    response_model=EncounterWritePublic,
    tags=["encounters"],
)
def discharge_encounter(
    *, session: SessionDep, view: Discharger, encounter_id: EncounterId, body: DischargeCreate
) -> EncounterWritePublic:
    """Finish the encounter (status finished); nothing more may be recorded on it (409)."""
    with posted_charges(session) as posted:
        encounter = discharge(
            session, encounter_id=encounter_id, end=body.end, disposition=body.disposition
        )
    return _encounter_answer(session, encounter, view, posted)
