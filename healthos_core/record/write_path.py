"""The one write path of the record: a fact as its FHIR resource, through the importer.

Every library write of a clinical fact (:mod:`healthos_core.record.service`,
:mod:`healthos_core.record.movements`) ends here, in
:func:`healthos_core.fhir.importer.import_unit` with ``origin="live"``, the function FHIR
writes and ``healthos import --live`` use too (``docs/architecture.md``, "One write path").
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.orm import Session

from healthos_core.errors import ConflictError, NotFoundError
from healthos_core.events import EventBus
from healthos_core.fhir.exporter import to_fhir
from healthos_core.fhir.importer import Unit, import_unit
from healthos_core.record.entities import RecordMixin

__all__ = ["write_entity", "write_resource"]

_E = TypeVar("_E", bound=RecordMixin)


def write_entity(
    session: Session, entity: _E, bus: EventBus | None, *, replace: bool = False
) -> _E:
    """Write ``entity`` (transient) through the one write path; return the stored entity.

    The FHIR resource of ``entity`` goes to :func:`~healthos_core.fhir.importer.import_unit`
    (``origin="live"``). If a row with its id exists: with ``replace`` (a state change of
    a stored fact, e.g. a discharge) it is updated; otherwise the same content is an
    idempotent repeat (nothing written or published) and other content a conflict.

    Raises
    ------
    ConflictError
        The id is taken by other content (and not ``replace``).
    """
    entity_type = type(entity)
    resource = to_fhir(entity)
    stored = session.get(entity_type, entity.id)
    if stored is not None and not replace:
        if _comparable(to_fhir(stored)) == _comparable(resource):
            return stored
        raise ConflictError(
            f"{entity_type.__name__}/{entity.id} already exists with other content: "
            "choose another id"
        )
    return write_resource(session, entity_type, resource, bus)


def write_resource(
    session: Session, entity_type: type[_E], resource: dict[str, Any], bus: EventBus | None
) -> _E:
    """Write one FHIR resource through the one write path; return its stored entity.

    :func:`~healthos_core.fhir.importer.import_unit` with ``origin="live"``: validated,
    upserted as the importer maps it, and what it changed published as live events, in a
    savepoint of the caller's transaction. For library writes whose domain rules the
    caller has checked (:mod:`healthos_core.record.service`, :mod:`~.movements`).

    Raises
    ------
    FhirValidationError
        The resource is not valid FHIR R4 or names a missing resource.
    """
    unit = Unit(source=f"{entity_type.__name__}/{resource['id']}", entries=[(None, resource)])
    import_unit(session, unit, origin="live", bus=bus)
    written = session.get(entity_type, resource["id"], populate_existing=True)
    if written is None:  # pragma: no cover - import_unit wrote it or raised
        raise NotFoundError(f"{entity_type.__name__}/{resource['id']} was not stored")
    return written


def _comparable(resource: dict[str, Any]) -> dict[str, Any]:
    """Return ``resource`` without what the server sets (``meta``), to compare two writes."""
    return {k: v for k, v in resource.items() if k != "meta"}
