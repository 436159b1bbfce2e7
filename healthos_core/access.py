"""Who may see and do what: the one role policy of HealthOS (``docs/access.md``).

Three policies live here, each defined once and used by the library, the API and the CLI:

* **Suggestions**: the audiences whose suggestions each role may read
  (:data:`ROLE_READ_AUDIENCES`) and act on (:data:`ROLE_ACT_AUDIENCES`). Acting is a
  professional's decision, so ``admin`` reads everything and acts on nothing, and the
  finance worklist uses the same rule (:func:`roles_acting_for`).
* **Minimum necessary**: what each role sees of a patient and of an encounter
  (:data:`RECORD_VIEWS`). HIPAA requires reasonable efforts to limit protected health
  information to the minimum necessary for the purpose (45 CFR 164.502(b)) and, for a
  covered entity's own workforce, a policy naming for each class of person the categories
  of information they need (45 CFR 164.514(d)(2)); this table is that policy.

* **Record writes**: which roles may write which clinical facts (:data:`RECORD_WRITERS`).

Patient identifiers are grouped into :class:`IdentifierCategory` by their HL7 v2-0203
type code (``MR``, ``MB``, ``SS`` …) and by their system URI; an identifier the policy
cannot classify is shown to no role.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from sqlalchemy import ColumnElement, and_, false, func, not_, or_

from healthos_core.errors import PermissionDeniedError
from healthos_core.record.entities import PatientIdentifier
from healthos_core.vocabulary import Audience

__all__ = [
    "AUDIENCES",
    "BED_STATUS_WRITERS",
    "OPERATIONS_READERS",
    "QUEUE_SETUP_ROLES",
    "QUEUE_TICKET_WRITERS",
    "RECORD_VIEWS",
    "RECORD_WRITERS",
    "ROLE_ACT_AUDIENCES",
    "ROLE_READ_AUDIENCES",
    "IdentifierCategory",
    "RecordView",
    "RecordWrite",
    "actionable_audiences",
    "check_record_write",
    "identifier_category",
    "readable_audiences",
    "record_view",
    "roles_acting_for",
    "visible_identifier",
]

# --------------------------------------------------------------------------------------
# Suggestions: which audiences each role reads and acts for.
# --------------------------------------------------------------------------------------

#: Who a suggestion can be for (:class:`~healthos_core.vocabulary.Audience` values).
AUDIENCES: Final[tuple[str, ...]] = tuple(audience.value for audience in Audience)

_CLINICAL: Final = frozenset({"clinician", "nurse"})
#: Role → the audiences whose suggestions it may read. Other roles read none.
ROLE_READ_AUDIENCES: Final[dict[str, frozenset[str]]] = {
    "clinician": _CLINICAL,
    "nurse": _CLINICAL,
    "finance": frozenset({"finance"}),
    "operations": frozenset({"operations"}),
    "leadership": frozenset({"leadership", "operations", "finance"}),
    "admin": frozenset(AUDIENCES),
}
#: Role → the audiences whose suggestions it may acknowledge, act on, dismiss or annotate.
#: ``admin`` is absent on purpose: a professional of the audience decides, everywhere
#: (the suggestions API and the finance worklist alike).
ROLE_ACT_AUDIENCES: Final[dict[str, frozenset[str]]] = {
    "clinician": _CLINICAL,
    "nurse": _CLINICAL,
    "finance": frozenset({"finance"}),
    "operations": frozenset({"operations"}),
    "leadership": frozenset({"leadership"}),
}


def readable_audiences(role: str) -> frozenset[str]:
    """Return the audiences whose suggestions ``role`` may read (empty for other roles).

    Parameters
    ----------
    role : str
        The caller's role.

    Returns
    -------
    frozenset of str
        From :data:`ROLE_READ_AUDIENCES`.
    """
    return ROLE_READ_AUDIENCES.get(role, frozenset())


def actionable_audiences(role: str) -> frozenset[str]:
    """Return the audiences whose suggestions ``role`` may act on (empty for ``admin``).

    Parameters
    ----------
    role : str
        The caller's role.

    Returns
    -------
    frozenset of str
        From :data:`ROLE_ACT_AUDIENCES`.
    """
    return ROLE_ACT_AUDIENCES.get(role, frozenset())


def roles_acting_for(audience: str) -> tuple[str, ...]:
    """Return the roles that may act on ``audience``'s suggestions, sorted.

    Parameters
    ----------
    audience : str
        One of :data:`AUDIENCES`.

    Returns
    -------
    tuple of str
        E.g. ``("finance",)`` for ``"finance"``: who may work the finance worklist.
    """
    return tuple(sorted(r for r, a in ROLE_ACT_AUDIENCES.items() if audience in a))


# --------------------------------------------------------------------------------------
# Minimum necessary: what each role sees of a patient and an encounter.
# --------------------------------------------------------------------------------------


class IdentifierCategory(enum.StrEnum):
    """What a patient identifier is for, which decides who may see it."""

    RECORD = "record"
    """The hospital's medical record number (v2-0203 ``MR``)."""
    HEALTH = "health"
    """A national health number used in care (NHS number, v2-0203 ``JHN``)."""
    INSURANCE = "insurance"
    """A payer's member, subscriber, Medicare or Medicaid number (``MB``/``SN``/``MC``/``MA``)."""
    GOVERNMENT = "government"
    """An identity document: SSN, driver's licence, passport, national or tax id."""
    OTHER = "other"
    """Anything unclassified (e.g. a source system's internal id): shown to no role."""


#: v2-0203 identifier type code → category (HL7 table 0203).
TYPE_CATEGORY: Final[dict[str, IdentifierCategory]] = {
    "MR": IdentifierCategory.RECORD,
    "JHN": IdentifierCategory.HEALTH,
    "MB": IdentifierCategory.INSURANCE,
    "SN": IdentifierCategory.INSURANCE,
    "MC": IdentifierCategory.INSURANCE,
    "MA": IdentifierCategory.INSURANCE,
    "SS": IdentifierCategory.GOVERNMENT,
    "DL": IdentifierCategory.GOVERNMENT,
    "PPN": IdentifierCategory.GOVERNMENT,
    "NI": IdentifierCategory.GOVERNMENT,
    "TAX": IdentifierCategory.GOVERNMENT,
    "CZ": IdentifierCategory.GOVERNMENT,
}
#: Identifier system URI → category, whatever the type code says (a system known to hold
#: government identifiers is never shown under another label).
SYSTEM_CATEGORY: Final[dict[str, IdentifierCategory]] = {
    "http://hl7.org/fhir/sid/us-ssn": IdentifierCategory.GOVERNMENT,
    "http://standardhealthrecord.org/fhir/StructureDefinition/passportNumber": (
        IdentifierCategory.GOVERNMENT
    ),
    "https://fhir.nhs.uk/Id/nhs-number": IdentifierCategory.HEALTH,
}
#: US state driver's licence numbers: the HL7 OID arc 2.16.840.1.113883.4.3.<state FIPS>
#: (Synthea writes Massachusetts, ``...4.3.25``).
DRIVERS_LICENCE_OID_PREFIX: Final = "urn:oid:2.16.840.1.113883.4.3."

_GOVERNMENT_TYPES: Final = frozenset(
    t for t, c in TYPE_CATEGORY.items() if c is IdentifierCategory.GOVERNMENT
)
_GOVERNMENT_SYSTEMS: Final = frozenset(
    s for s, c in SYSTEM_CATEGORY.items() if c is IdentifierCategory.GOVERNMENT
)


def identifier_category(system: str, type_code: str | None) -> IdentifierCategory:
    """Return the category of a patient identifier.

    A government system, a driver's-licence OID or a government type code makes it
    :attr:`~IdentifierCategory.GOVERNMENT`; otherwise a known system decides, then the
    type code; anything else is :attr:`~IdentifierCategory.OTHER`.
    :func:`visible_identifier` is the same rule in SQL.

    Parameters
    ----------
    system : str
        The identifier's system URI (may be empty).
    type_code : str or None
        Its v2-0203 type code.

    Returns
    -------
    IdentifierCategory

    Examples
    --------
    >>> identifier_category("http://hl7.org/fhir/sid/us-ssn", "MR")
    <IdentifierCategory.GOVERNMENT: 'government'>
    >>> identifier_category("http://hospital.smarthealthit.org", "MR")
    <IdentifierCategory.RECORD: 'record'>
    """
    code = type_code or ""
    if (
        system in _GOVERNMENT_SYSTEMS
        or system.startswith(DRIVERS_LICENCE_OID_PREFIX)
        or code in _GOVERNMENT_TYPES
    ):
        return IdentifierCategory.GOVERNMENT
    if system in SYSTEM_CATEGORY:
        return SYSTEM_CATEGORY[system]
    return TYPE_CATEGORY.get(code, IdentifierCategory.OTHER)


def visible_identifier(categories: Collection[IdentifierCategory]) -> ColumnElement[bool]:
    """Return a SQL condition on :class:`PatientIdentifier` rows in ``categories``.

    The same rule as :func:`identifier_category` (a test checks they agree), so an
    identifier search cannot confirm an identifier the caller may not see.

    Parameters
    ----------
    categories : collection of IdentifierCategory
        The categories the caller may see.

    Returns
    -------
    sqlalchemy.ColumnElement
        True for the identifiers whose category is in ``categories``.
    """
    wanted = frozenset(categories)
    code = func.coalesce(PatientIdentifier.type_code, "")
    system = PatientIdentifier.system
    government = or_(
        system.in_(sorted(_GOVERNMENT_SYSTEMS)),
        system.startswith(DRIVERS_LICENCE_OID_PREFIX, autoescape=True),
        code.in_(sorted(_GOVERNMENT_TYPES)),
    )
    known_systems = sorted(SYSTEM_CATEGORY)
    by_system = [s for s, c in SYSTEM_CATEGORY.items() if c in wanted]
    by_type = [t for t, c in TYPE_CATEGORY.items() if c in wanted]
    options: list[ColumnElement[bool]] = []
    if by_system:
        options.append(system.in_(sorted(by_system)))
    if by_type:
        options.append(and_(system.not_in(known_systems), code.in_(sorted(by_type))))
    if IdentifierCategory.OTHER in wanted:
        options.append(and_(system.not_in(known_systems), code.not_in(sorted(TYPE_CATEGORY))))
    non_government = and_(not_(government), or_(*options)) if options else false()
    if IdentifierCategory.GOVERNMENT in wanted:
        return or_(government, non_government)
    return non_government


@dataclass(frozen=True, slots=True)
class RecordView:
    """What one role sees of patients and encounters.

    Attributes
    ----------
    identifiers : frozenset of IdentifierCategory
        The patient identifiers shown (and searchable).
    demographics : bool
        Whether gender, birth date and date of death are shown (the name always is).
    encounter_reason : bool
        Whether an encounter's reason code (a clinical fact) is shown.
    observations : bool
        Whether an encounter's observations (vital signs, labs) are shown.
    """

    identifiers: frozenset[IdentifierCategory]
    demographics: bool
    encounter_reason: bool
    observations: bool


_CARE: Final = RecordView(
    identifiers=frozenset({IdentifierCategory.RECORD, IdentifierCategory.HEALTH}),
    demographics=True,
    encounter_reason=True,
    observations=True,
)
_LOCATE: Final = RecordView(
    identifiers=frozenset({IdentifierCategory.RECORD}),
    demographics=False,
    encounter_reason=False,
    observations=False,
)
#: Role → what it sees of the record (``docs/access.md`` gives the reasons). Roles not
#: listed (``leadership``, ``data_scientist``, ``patient``) read no patient or encounter.
#: No role sees government identifiers (SSN, driver's licence, passport): treatment
#: identifies a patient by name, birth date and MRN, billing by the payer's member id.
RECORD_VIEWS: Final[dict[str, RecordView]] = {
    "clinician": _CARE,
    "nurse": _CARE,
    # Claims need the patient's birth date and sex (X12 837 DMG) and the reason for the
    # visit (UB-04 FL 70), and the payer's member id; not the clinical observations.
    "finance": RecordView(
        identifiers=frozenset({IdentifierCategory.RECORD, IdentifierCategory.INSURANCE}),
        demographics=True,
        encounter_reason=True,
        observations=False,
    ),
    # Beds, queues and system administration: find the patient and the encounter.
    "operations": _LOCATE,
    "admin": _LOCATE,
}


def record_view(role: str, *, what: str = "patients or encounters") -> RecordView:
    """Return what ``role`` sees of patients and encounters.

    Parameters
    ----------
    role : str
        The caller's role.
    what : str, default="patients or encounters"
        Named in the error.

    Returns
    -------
    RecordView

    Raises
    ------
    PermissionDeniedError
        If the role reads no patient data (``leadership``, ``data_scientist``,
        ``patient`` and unknown roles).
    """
    view = RECORD_VIEWS.get(role)
    if view is None:
        allowed = ", ".join(sorted(RECORD_VIEWS))
        raise PermissionDeniedError(
            f"the {role} role may not read {what}; allowed roles: {allowed}"
        )
    return view


# --------------------------------------------------------------------------------------
# Record writes: who may write which clinical facts.
# --------------------------------------------------------------------------------------


class RecordWrite(enum.StrEnum):
    """A kind of write to the patient record."""

    REGISTER = "register a patient"
    ADMIT = "admit"
    TRANSFER = "transfer"
    DISCHARGE = "discharge"
    OBSERVATION = "record observations"
    PROCEDURE = "record a procedure"
    MEDICATION_ADMINISTRATION = "record a medication administration"


#: Care: the professionals who observe, treat and give medication.
_CARE_WRITERS: Final = frozenset({"clinician", "nurse"})
#: Patient movement (ADT): care, plus the admissions desk and bed management (operations).
_MOVEMENT_WRITERS: Final = _CARE_WRITERS | {"operations"}
#: Write → the roles that may do it. Clinical facts (vital signs, procedures, doses given)
#: are written only by those who observed or did them; registering, admitting,
#: transferring and discharging are also the admissions desk's work. ``admin`` runs the
#: system and writes no clinical fact; finance, leadership, data scientists and patients
#: write none either (``docs/access.md``).
RECORD_WRITERS: Final[dict[RecordWrite, frozenset[str]]] = {
    RecordWrite.REGISTER: _MOVEMENT_WRITERS,
    RecordWrite.ADMIT: _MOVEMENT_WRITERS,
    RecordWrite.TRANSFER: _MOVEMENT_WRITERS,
    RecordWrite.DISCHARGE: _MOVEMENT_WRITERS,
    RecordWrite.OBSERVATION: _CARE_WRITERS,
    RecordWrite.PROCEDURE: _CARE_WRITERS,
    RecordWrite.MEDICATION_ADMINISTRATION: _CARE_WRITERS,
}


def check_record_write(role: str, write: RecordWrite) -> None:
    """Refuse ``role`` a write to the record that :data:`RECORD_WRITERS` does not allow.

    Parameters
    ----------
    role : str
        The caller's role.
    write : RecordWrite
        What the caller wants to write.

    Raises
    ------
    PermissionDeniedError
        If ``role`` may not do ``write``; the message names the roles that may.

    Examples
    --------
    >>> check_record_write("nurse", RecordWrite.OBSERVATION)
    >>> check_record_write("finance", RecordWrite.ADMIT)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    healthos_core.errors.PermissionDeniedError: the finance role may not admit; ...
    """
    allowed = RECORD_WRITERS[write]
    if role not in allowed:
        names = ", ".join(sorted(allowed))
        raise PermissionDeniedError(
            f"the {role} role may not {write.value}; allowed roles: {names}"
        )


# --------------------------------------------------------------------------------------
# Operations: queue points, rosters, queue tickets, appointments and beds.
# --------------------------------------------------------------------------------------

#: Who reads the queue board and the bed census (``docs/operations.md``): those who run
#: the flow (operations), those who answer for it (leadership), the system's
#: administrators, and the clinicians and nurses who work the queues and wards.
OPERATIONS_READERS: Final = frozenset({"operations", "leadership", "admin", "clinician", "nurse"})
#: Who sets up queue points and their rosters: operations (and admin, who runs the system).
QUEUE_SETUP_ROLES: Final = frozenset({"operations", "admin"})
#: Who records a queue ticket's steps and books appointments: the people at the desk and
#: in the clinic (clinicians, nurses, operations) and admin (an interface account).
QUEUE_TICKET_WRITERS: Final = frozenset({"clinician", "nurse", "operations", "admin"})
#: Who sets a bed's HL7 v2-0116 status (housekeeping done, isolation, closure): ward nurses,
#: bed management (operations) and admin.
BED_STATUS_WRITERS: Final = frozenset({"nurse", "operations", "admin"})
