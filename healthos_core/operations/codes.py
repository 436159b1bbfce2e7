"""The codes and URLs of queues and beds in the record (``docs/operations.md``).

HealthOS's own code systems and extensions live under ``https://healthos.dev/fhir/``
(as :data:`healthos_core.terminology.LOCAL` and the billing-market extension do).
"""

from __future__ import annotations

from typing import Final

_BASE: Final = "https://healthos.dev/fhir"

#: ``Location.type`` system of HealthOS location kinds (``queue``, ``ward``, ``bed`` …).
LOCATION_KIND_SYSTEM: Final = f"{_BASE}/CodeSystem/location-kind"
#: ``Location.type`` system of what a queue point serves or what type a ward is (its pool).
SERVICE_TYPE_SYSTEM: Final = f"{_BASE}/CodeSystem/location-service"
#: ``Location.extension``: a queue point's wait-time target, ``valueDuration`` in minutes.
TARGET_WAIT_EXTENSION: Final = f"{_BASE}/StructureDefinition/queue-target-wait"
#: ``Task.code`` system; the code of a queue ticket is :data:`QUEUE_TICKET`.
TASK_CODE_SYSTEM: Final = f"{_BASE}/CodeSystem/task-code"
QUEUE_TICKET: Final = "queue-ticket"
#: ``Task.extension``: when the patient was called (``valueDateTime``).
CALLED_EXTENSION: Final = f"{_BASE}/StructureDefinition/queue-called"
#: ``Task.extension``: when the patient left without being seen (``valueDateTime``).
LEFT_EXTENSION: Final = f"{_BASE}/StructureDefinition/queue-left-without-being-seen"
#: ``Task.statusReason`` / ``businessStatus`` system of queue states.
QUEUE_STATE_SYSTEM: Final = f"{_BASE}/CodeSystem/queue-state"
#: ``Encounter.extension``: the planned discharge time (``valueDateTime``); FHIR R4 has none.
EXPECTED_DISCHARGE_EXTENSION: Final = f"{_BASE}/StructureDefinition/expected-discharge"
#: ``Encounter.extension``: the decision to admit an ED patient (``valueDateTime``), the
#: start of CMS OP-18/ED-2 "admit decision time to ED departure" (CMS111's boarding time).
ADMIT_DECISION_EXTENSION: Final = f"{_BASE}/StructureDefinition/admit-decision"
#: ``Encounter.extension``: the bed pool an admitted ED patient waits for (``valueCode``).
ADMIT_TO_POOL_EXTENSION: Final = f"{_BASE}/StructureDefinition/admit-to-pool"
#: HL7 v2 table 0116 (Bed Status): the FHIR R4 binding of ``Location.operationalStatus``.
BED_STATUS_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v2-0116"
#: FHIR location-physical-type code system.
PHYSICAL_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/location-physical-type"

#: What a queue point serves.
QUEUE_SERVICES: Final = (
    "opd_clinic",
    "ed_triage",
    "lab_collection",
    "pharmacy",
    "imaging",
    "theatre",
    "bed_assignment",
)
#: Ward types: each is the bed pool of the ward's beds.
WARD_TYPES: Final = (
    "general_medicine",
    "surgery",
    "icu",
    "maternity",
    "paediatrics",
    "mental_health",
    "other",
)

#: HL7 v2 table 0116 bed status code → the census's name for it.
BED_STATUS: Final[dict[str, str]] = {
    "O": "occupied",
    "U": "unoccupied",
    "K": "housekeeping",  # "Contaminated" in table 0116: awaiting cleaning
    "I": "isolated",
    "C": "closed",
}
BED_STATUS_DISPLAY: Final[dict[str, str]] = {
    "O": "Occupied",
    "U": "Unoccupied",
    "K": "Contaminated",
    "I": "Isolated",
    "C": "Closed",
}

#: FHIR request priority (Task.priority), most urgent last.
PRIORITIES: Final = ("routine", "urgent", "asap", "stat")

#: Emergency Severity Index level → Task.priority. ESI (AHRQ, ESI Implementation Handbook
#: v4, 2020): 1 needs immediate life-saving intervention, 2 is high risk (should not wait),
#: 3–5 are ranked by expected resources.
ESI_PRIORITY: Final[dict[int, str]] = {
    1: "stat",
    2: "asap",
    3: "urgent",
    4: "routine",
    5: "routine",
}

#: Default occupancy threshold of every pool (0..1): 85%. Bagust, Place and Posnett (BMJ
#: 1999;319:155-8) showed bed shortages and crises become regular above 85% mean occupancy;
#: the 85% figure is the one the NHS and RCEM quote.
DEFAULT_THRESHOLD: Final = 0.85
#: Per-pool defaults where they differ: a small pool needs more headroom for the same
#: chance of turning a patient away (Erlang loss; de Bruin et al., "Dimensioning hospital
#: wards using the Erlang loss model", Ann Oper Res 2010;178:23-43), so ICU is lower.
DEFAULT_THRESHOLDS: Final[dict[str, float]] = {"icu": 0.80}
#: The pool an admitted ED patient is counted in when the decision names none.
DEFAULT_ADMIT_POOL: Final = "general_medicine"
