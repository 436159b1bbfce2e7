"""Automatic charge capture: clinical events post ``ChargeItem``s in the same transaction.

Importing this module subscribes nothing. :func:`register` subscribes one
:class:`ChargeCapture` to a bus (at most one per bus), and
:func:`healthos_core.wiring.wire_live_path` does it for the default bus: the API's
lifespan and the ``healthos`` commands that write call it, and a library user calls it
once at start-up. From then on the record service's writes post charges in the caller's
transaction, so a clinical event and its charge commit or roll back together (SPEC §3–4,
style-anchors §8). Events whose ``origin`` is ``"backload"`` (history loaded after the
fact) are never charged: only live events are.

Charge rules (SPEC §4 "Charge capture")
---------------------------------------
========================  ==========================================================
event                     charge
========================  ==========================================================
ProcedurePerformed        one ChargeItem priced by the procedure's code on the UTC date
                          it was performed.
MedicationAdministered    one ChargeItem priced by the medication code on the UTC date
                          it was given; quantity 1 (see *Per-unit drugs* below).
EncounterStarted          one visit/facility-fee ChargeItem priced by the encounter's
                          ``type_code`` (SNOMED CT, as Synthea and its claims code it),
                          **only if** the chargemaster prices that code; no price is
                          not an error.
ObservationRecorded       one ChargeItem **only if** the observation's code has a
                          chargemaster entry that marks it a billable laboratory test
                          (:func:`is_billable_lab`); vital signs, surveys, etc. are
                          part of the visit and never charged separately.
EncounterFinished         nothing (bed-days are a separate rule, not written yet).
========================  ==========================================================

Every ChargeItem (FHIR R4 ChargeItem) has status ``billable``; ``service_ref`` = the
event's ``"Type/id"`` (FHIR ``ChargeItem.service``); patient, encounter and facility of
the clinical entity; ``occurred_at`` = service time (``ChargeItem.occurrence``);
``entered_at`` = now (``ChargeItem.enteredDate``); ``unit_price``, ``currency`` and
``chargemaster_entry_id`` from the entry; ``total`` = unit price × quantity rounded
half-up to the cent. A second capture of the same event and code posts nothing (charges
are idempotent on ``service_ref`` + code), so replaying events never double-bills.

No price
--------
A clinical fact must never be blocked by billing: when a procedure or medication has
no chargemaster entry on its date, the event is recorded, **no charge is posted** and
nothing is invented; the gap is logged (ids only, no PHI) and left for the
revenue-leakage scorer, which finds clinical events without a ChargeItem by
``service_ref``. With ``CaptureSettings(strict=True)`` the same situation raises
:class:`~healthos_core.errors.PricingError` instead, which rolls back the caller's
transaction (useful in tests and for facilities that want hard stops). Strict mode does
not apply to the conditional charges (visit fee, lab observations). A price in a currency
other than the ledger's (:func:`~healthos_core.billing.money.ledger_currency`; possible
only for entries loaded before that rule) counts as no price, and strict capture raises
:class:`~healthos_core.errors.InvalidInputError` naming it.

Per-unit drugs
--------------
The brief asks for "quantity 1 unless the chargemaster says per-unit", but
``ChargemasterEntry`` has no unit column yet, so every administration is charged as one
unit of the entry's price. A proposed ``unit`` column (UCUM; the price is per that unit)
would let :func:`capture_medication_administration` use ``dose_value`` as the quantity
when ``dose_unit`` matches.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.billing.chargemaster import find_price
from healthos_core.billing.entities import ChargeItem, ChargeItemStatus, ChargemasterEntry
from healthos_core.billing.ledger import post_charge
from healthos_core.billing.money import check_currency, ledger_currency
from healthos_core.db import utcnow
from healthos_core.errors import PricingError
from healthos_core.events import (
    ClinicalEvent,
    EncounterStarted,
    EventBus,
    Handler,
    MedicationAdministered,
    ObservationRecorded,
    ProcedurePerformed,
    default_bus,
)
from healthos_core.record.entities import (
    Encounter,
    MedicationAdministration,
    Observation,
    Procedure,
)

__all__ = [
    "LAB_REVENUE_CODE_PREFIXES",
    "LAB_TAX_CATEGORIES",
    "SNOMED",
    "CaptureSettings",
    "ChargeCapture",
    "capture_encounter",
    "capture_medication_administration",
    "capture_observation",
    "capture_procedure",
    "is_billable_lab",
    "is_registered",
    "register",
    "unregister",
]

logger = logging.getLogger(__name__)

#: SNOMED CT code system URI: the system of ``Encounter.type_code`` in Synthea data.
SNOMED: Final = "http://snomed.info/sct"
#: NUBC UB-04 revenue code groups for laboratory services: 030X "Laboratory" and 031X
#: "Laboratory Pathology" (the hospital charge master in ``shared/data/synthea-rcm/
#: service_categories.csv`` files its laboratory codes under 0300).
LAB_REVENUE_CODE_PREFIXES: Final = ("030", "031")
#: ``ChargemasterEntry.tax_category`` values that also mark an entry a laboratory test
#: (for markets without NUBC revenue codes, e.g. India and the UK).
LAB_TAX_CATEGORIES: Final = frozenset({"lab", "laboratory"})

#: Clinical statuses that are billable (FHIR R4 event-status / observation-status).
_BILLABLE_PROCEDURE_STATUSES: Final = frozenset({"completed"})
_BILLABLE_ADMINISTRATION_STATUSES: Final = frozenset({"completed"})
_BILLABLE_OBSERVATION_STATUSES: Final = frozenset({"final", "amended", "corrected"})
_UNBILLABLE_ENCOUNTER_STATUSES: Final = frozenset({"cancelled", "entered-in-error"})
#: Charges that no longer count, so the event may be charged again.
_VOID_CHARGE_STATUSES: Final = frozenset(
    {ChargeItemStatus.ENTERED_IN_ERROR.value, ChargeItemStatus.ABORTED.value}
)
_CENT: Final = Decimal("0.01")


@dataclass(frozen=True, kw_only=True)
class CaptureSettings:
    """How charge capture behaves.

    Attributes
    ----------
    strict : bool, default=False
        Raise :class:`~healthos_core.errors.PricingError` when a procedure or
        medication administration has no chargemaster price on its date (rolling back
        the caller's transaction) instead of recording the event without a charge.
    encounter_type_system : str, default=SNOMED
        Code system under which ``Encounter.type_code`` is priced for the visit fee.
    charge_encounters : bool, default=True
        Post the visit/facility fee on EncounterStarted when a price exists.
    charge_lab_observations : bool, default=True
        Post a charge for observations whose code is priced as a laboratory test.
    """

    strict: bool = False
    encounter_type_system: str = SNOMED
    charge_encounters: bool = True
    charge_lab_observations: bool = True


_DEFAULT_SETTINGS: Final = CaptureSettings()


def is_billable_lab(entry: ChargemasterEntry) -> bool:
    """Return whether a chargemaster entry marks its code as a billable laboratory test.

    Parameters
    ----------
    entry : ChargemasterEntry
        The entry in force for the observation's code.

    Returns
    -------
    bool
        ``True`` if its revenue code is in NUBC group 030X (Laboratory) or 031X
        (Laboratory Pathology), or its ``tax_category`` is ``lab``/``laboratory``
        (case-insensitive).
    """
    revenue = (entry.revenue_code or "").strip().zfill(4)
    if entry.revenue_code and revenue.startswith(LAB_REVENUE_CODE_PREFIXES):
        return True
    return (entry.tax_category or "").strip().lower() in LAB_TAX_CATEGORIES


def _existing_charge(session: Session, service_ref: str, code_system: str, code: str) -> bool:
    return (
        session.scalar(
            select(ChargeItem.id)
            .where(
                ChargeItem.service_ref == service_ref,
                ChargeItem.code_system == code_system,
                ChargeItem.code == code,
                ChargeItem.status.not_in(_VOID_CHARGE_STATUSES),
            )
            .limit(1)
        )
        is not None
    )


def _post(
    session: Session,
    *,
    entry: ChargemasterEntry,
    service_ref: str,
    patient_id: str,
    encounter_id: str | None,
    facility_id: str | None,
    display: str | None,
    occurred_at: dt.datetime,
    quantity: Decimal = Decimal(1),
    strict: bool = False,
) -> ChargeItem | None:
    if entry.currency != ledger_currency():
        # A price in another currency cannot be charged: the ledger keeps one currency
        # (healthos_core.billing.money). Like a missing price, it never blocks the
        # clinical event unless capture is strict.
        if strict:
            check_currency(
                entry.currency,
                field=f"chargemaster price of {entry.code_system}|{entry.code}: currency",
            )
        logger.warning(
            "charge capture: %s|%s is priced in %s, not the ledger currency; %s recorded "
            "without a charge",
            entry.code_system,
            entry.code,
            entry.currency,
            service_ref,
        )
        return None
    charge = ChargeItem(
        id=str(uuid.uuid4()),
        patient_id=patient_id,
        encounter_id=encounter_id,
        facility_id=facility_id,
        status=ChargeItemStatus.BILLABLE.value,
        code_system=entry.code_system,
        code=entry.code,
        display=entry.description or display,
        quantity=quantity,
        unit_price=entry.unit_price,
        total=(entry.unit_price * quantity).quantize(_CENT, rounding=ROUND_HALF_UP),
        currency=entry.currency,
        service_ref=service_ref,
        occurred_at=occurred_at,
        entered_at=utcnow(),
        chargemaster_entry_id=entry.id,
    )
    session.add(charge)
    session.flush()
    post_charge(session, charge)  # Dr unbilled_ar / Cr revenue, source ChargeItem/<id>
    return charge


def _no_price(
    strict: bool, service_ref: str, code_system: str | None, code: str | None, when: object
) -> None:
    day = when.astimezone(dt.UTC).date().isoformat() if isinstance(when, dt.datetime) else "?"
    if strict:
        if code_system is None or code is None or not isinstance(when, dt.datetime):
            raise PricingError(
                f"cannot price {service_ref}: it has no code or no service time "
                "(strict charge capture)"
            )
        raise PricingError(
            f"no chargemaster price for {code_system}|{code} on {day}: {service_ref} "
            "cannot be charged (strict charge capture); load a price or use strict=False"
        )
    logger.info(
        "charge capture: no price for %s|%s on %s; %s recorded without a charge",
        code_system,
        code,
        day,
        service_ref,
    )


def capture_procedure(
    session: Session, procedure: Procedure, *, settings: CaptureSettings | None = None
) -> ChargeItem | None:
    """Post the charge for a performed procedure.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session (flushed, not committed).
    procedure : Procedure
        A flushed procedure with status ``completed``.
    settings : CaptureSettings, optional
        Default ``CaptureSettings()`` (not strict).

    Returns
    -------
    ChargeItem or None
        The new charge; ``None`` if the procedure is not completed, is already charged,
        or (non-strict) has no price on its date.

    Raises
    ------
    PricingError
        Strict mode and no price (or no code / performed time).
    InvalidInputError
        Strict mode and the price is in a currency other than the ledger's.
    """
    settings = settings or _DEFAULT_SETTINGS
    ref = procedure.reference
    when = procedure.performed_start
    if procedure.status not in _BILLABLE_PROCEDURE_STATUSES:
        return None
    if procedure.code_system is None or procedure.code is None or when is None:
        _no_price(settings.strict, ref, procedure.code_system, procedure.code, when)
        return None
    if _existing_charge(session, ref, procedure.code_system, procedure.code):
        return None
    entry = find_price(session, code_system=procedure.code_system, code=procedure.code, on=when)
    if entry is None:
        _no_price(settings.strict, ref, procedure.code_system, procedure.code, when)
        return None
    return _post(
        session,
        entry=entry,
        service_ref=ref,
        patient_id=procedure.patient_id,
        encounter_id=procedure.encounter_id,
        facility_id=procedure.facility_id,
        display=procedure.display,
        occurred_at=when,
        strict=settings.strict,
    )


def capture_medication_administration(
    session: Session,
    administration: MedicationAdministration,
    *,
    settings: CaptureSettings | None = None,
) -> ChargeItem | None:
    """Post the charge for a medication administration (quantity 1).

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session (flushed, not committed).
    administration : MedicationAdministration
        A flushed administration with status ``completed``.
    settings : CaptureSettings, optional
        Default ``CaptureSettings()`` (not strict).

    Returns
    -------
    ChargeItem or None
        The new charge; ``None`` if not completed, already charged, or (non-strict)
        unpriced.

    Raises
    ------
    PricingError
        Strict mode and no price (or no code / time).
    InvalidInputError
        Strict mode and the price is in a currency other than the ledger's.
    """
    settings = settings or _DEFAULT_SETTINGS
    ref = administration.reference
    when = administration.effective_start
    code_system, code = administration.code_system, administration.code
    if administration.status not in _BILLABLE_ADMINISTRATION_STATUSES:
        return None
    if code_system is None or code is None or when is None:
        _no_price(settings.strict, ref, code_system, code, when)
        return None
    if _existing_charge(session, ref, code_system, code):
        return None
    entry = find_price(session, code_system=code_system, code=code, on=when)
    if entry is None:
        _no_price(settings.strict, ref, code_system, code, when)
        return None
    return _post(
        session,
        entry=entry,
        service_ref=ref,
        patient_id=administration.patient_id,
        encounter_id=administration.encounter_id,
        facility_id=administration.facility_id,
        display=administration.display,
        occurred_at=when,
        strict=settings.strict,
    )


def capture_encounter(
    session: Session, encounter: Encounter, *, settings: CaptureSettings | None = None
) -> ChargeItem | None:
    """Post the visit/facility fee of an encounter, if its type is priced.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session (flushed, not committed).
    encounter : Encounter
        A flushed encounter with ``period_start``.
    settings : CaptureSettings, optional
        Default ``CaptureSettings()``; ``encounter_type_system`` gives the code system
        of ``type_code``.

    Returns
    -------
    ChargeItem or None
        The fee, with ``service_ref`` ``"Encounter/<id>"``; ``None`` when the encounter
        has no type or start, its type has no price on the start date, it is cancelled
        or entered-in-error, or it is already charged. Never raises for a missing price.
    """
    settings = settings or _DEFAULT_SETTINGS
    when = encounter.period_start
    if (
        not settings.charge_encounters
        or encounter.status in _UNBILLABLE_ENCOUNTER_STATUSES
        or encounter.type_code is None
        or when is None
    ):
        return None
    system = settings.encounter_type_system
    if _existing_charge(session, encounter.reference, system, encounter.type_code):
        return None
    entry = find_price(session, code_system=system, code=encounter.type_code, on=when)
    if entry is None:
        logger.info(
            "charge capture: no visit fee for %s|%s; %s has no encounter charge",
            system,
            encounter.type_code,
            encounter.reference,
        )
        return None
    return _post(
        session,
        entry=entry,
        service_ref=encounter.reference,
        patient_id=encounter.patient_id,
        encounter_id=encounter.id,
        facility_id=encounter.facility_id,
        display=encounter.type_display,
        occurred_at=when,
    )


def capture_observation(
    session: Session, observation: Observation, *, settings: CaptureSettings | None = None
) -> ChargeItem | None:
    """Post a laboratory charge for an observation whose code is priced as a lab test.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session (flushed, not committed).
    observation : Observation
        A flushed observation (status final, amended or corrected).
    settings : CaptureSettings, optional
        Default ``CaptureSettings()``.

    Returns
    -------
    ChargeItem or None
        The charge, if the entry in force on the observation's date passes
        :func:`is_billable_lab`; otherwise ``None`` (never an error: most observations
        are not billed separately).
    """
    settings = settings or _DEFAULT_SETTINGS
    when = observation.effective_at
    code_system, code = observation.code_system, observation.code
    if (
        not settings.charge_lab_observations
        or observation.status not in _BILLABLE_OBSERVATION_STATUSES
        or code_system is None
        or code is None
        or when is None
    ):
        return None
    entry = find_price(session, code_system=code_system, code=code, on=when)
    if entry is None or not is_billable_lab(entry):
        return None
    if _existing_charge(session, observation.reference, code_system, code):
        return None
    return _post(
        session,
        entry=entry,
        service_ref=observation.reference,
        patient_id=observation.patient_id,
        encounter_id=observation.encounter_id,
        facility_id=observation.facility_id,
        display=observation.display,
        occurred_at=when,
    )


class ChargeCapture:
    """The charge rules as event-bus subscribers, with their settings.

    Parameters
    ----------
    settings : CaptureSettings, optional
        Default ``CaptureSettings()`` (not strict).

    Examples
    --------
    >>> bus = EventBus()
    >>> capture = register(bus, settings=CaptureSettings(strict=True))
    >>> capture.settings.strict
    True
    """

    def __init__(self, settings: CaptureSettings | None = None) -> None:
        self.settings = settings or _DEFAULT_SETTINGS

    def on_procedure_performed(self, event: ProcedurePerformed, session: Session) -> None:
        """Charge a live procedure (see :func:`capture_procedure`); skip a back-load."""
        if event.origin == "live":
            capture_procedure(session, event.procedure, settings=self.settings)

    def on_medication_administered(self, event: MedicationAdministered, session: Session) -> None:
        """Charge a live administration (see :func:`capture_medication_administration`)."""
        if event.origin == "live":
            capture_medication_administration(session, event.administration, settings=self.settings)

    def on_encounter_started(self, event: EncounterStarted, session: Session) -> None:
        """Charge a live encounter's visit fee (see :func:`capture_encounter`)."""
        if event.origin == "live":
            capture_encounter(session, event.encounter, settings=self.settings)

    def on_observation_recorded(self, event: ObservationRecorded, session: Session) -> None:
        """Charge a live billable lab result (see :func:`capture_observation`)."""
        if event.origin == "live":
            capture_observation(session, event.observation, settings=self.settings)

    def subscriptions(self) -> tuple[tuple[type[ClinicalEvent], Handler], ...]:
        """Return the ``(event type, handler)`` pairs this capture subscribes."""
        return (
            (EncounterStarted, self.on_encounter_started),
            (ProcedurePerformed, self.on_procedure_performed),
            (MedicationAdministered, self.on_medication_administered),
            (ObservationRecorded, self.on_observation_recorded),
        )

    def subscribe(self, bus: EventBus) -> None:
        """Subscribe the four handlers to ``bus`` (idempotent).

        Prefer :func:`register`, which also removes another capture already on ``bus``.
        """
        for event_type, handler in self.subscriptions():
            bus.subscribe(event_type, handler)

    def unsubscribe(self, bus: EventBus) -> None:
        """Remove the four handlers from ``bus``."""
        for event_type, handler in self.subscriptions():
            bus.unsubscribe(event_type, handler)

    def is_subscribed(self, bus: EventBus) -> bool:
        """Return whether all four handlers are subscribed to ``bus``."""
        return all(handler in bus.handlers(t) for t, handler in self.subscriptions())


_EVENT_TYPES: Final = (
    EncounterStarted,
    ProcedurePerformed,
    MedicationAdministered,
    ObservationRecorded,
)


def _captures_on(bus: EventBus) -> list[ChargeCapture]:
    """Return the charge captures subscribed to ``bus``, found from its handlers.

    The bus itself is the record of what is registered, so registration stays
    idempotent even if this module is re-executed (``importlib.reload``) and its
    ``ChargeCapture`` class is a new object: instances are matched by qualified name.
    """
    found: list[ChargeCapture] = []
    for event_type in _EVENT_TYPES:
        for handler in bus.handlers(event_type):
            owner = getattr(handler, "__self__", None)
            cls = type(owner)
            if (
                owner is not None
                and cls.__module__ == __name__
                and cls.__qualname__ == "ChargeCapture"
                and not any(owner is seen for seen in found)
            ):
                found.append(owner)
    return found


def register(
    bus: EventBus | None = None, *, settings: CaptureSettings | None = None
) -> ChargeCapture:
    """Subscribe charge capture to a bus; at most one capture per bus.

    Parameters
    ----------
    bus : EventBus, optional
        Default :func:`~healthos_core.events.default_bus`.
    settings : CaptureSettings, optional
        ``None`` keeps the capture already on the bus (or subscribes one with default
        settings); different settings replace the bus's capture, so a bus never charges
        an event twice.

    Returns
    -------
    ChargeCapture
        The capture subscribed to ``bus``.
    """
    bus = bus if bus is not None else default_bus()
    current = _captures_on(bus)
    if (
        len(current) == 1
        and isinstance(current[0], ChargeCapture)
        and (settings is None or settings == current[0].settings)
    ):
        current[0].subscribe(bus)  # a no-op unless one handler was unsubscribed
        return current[0]
    for stale in current:
        stale.unsubscribe(bus)
    capture = ChargeCapture(settings)
    capture.subscribe(bus)
    return capture


def unregister(bus: EventBus | None = None) -> None:
    """Remove charge capture from a bus (default: the default bus); a no-op if absent.

    Parameters
    ----------
    bus : EventBus, optional
        Default :func:`~healthos_core.events.default_bus`.
    """
    bus = bus if bus is not None else default_bus()
    for capture in _captures_on(bus):
        capture.unsubscribe(bus)


def is_registered(bus: EventBus | None = None) -> bool:
    """Return whether charge capture is subscribed to a bus (default: the default bus).

    Parameters
    ----------
    bus : EventBus, optional
        Default :func:`~healthos_core.events.default_bus`.

    Returns
    -------
    bool
        ``True`` if a :class:`ChargeCapture` handles all four charged event types.
    """
    bus = bus if bus is not None else default_bus()
    return any(capture.is_subscribed(bus) for capture in _captures_on(bus))
