"""Long-format measurements (``patient, time, parameter, value``) into Observations.

A mapping file names, for each local parameter, its LOINC (or local) code, display,
UCUM unit, category, a scale factor and the plausible range. Values outside the range
are **flagged, not imported as facts**: they are stored with status
``entered-in-error`` and a ``quality_flag`` so the source stays auditable, and no
scorer reads them. Parameters missing from the mapping are counted and reported.

The PhysioNet/CinC Challenge 2012 layout (``set-*.tar.gz`` + ``Outcomes-*.txt``) is
supported out of the box (:func:`import_physionet2012`): each ICU stay becomes a
Patient, an inpatient Encounter (class IMP) at the ICU Location of its ``ICUType``,
and its Observations.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.datasets.physionet2012 import Stay, iter_stays
from healthos_core.db import session_scope, utcnow
from healthos_core.errors import InvalidInputError
from healthos_core.fhir.importer import upsert_statement
from healthos_core.fhir.refs import parse_datetime
from healthos_core.record.entities import Encounter, Location, Observation, Organization, Patient

MAPPING_COLUMNS = (
    "parameter",
    "system",
    "code",
    "display",
    "unit",
    "category",
    "scale",
    "min",
    "max",
)

#: Fixed admission time given to every PhysioNet stay (the challenge publishes only
#: hours since ICU admission, never dates).
PHYSIONET_ANCHOR = dt.datetime(2012, 1, 1, tzinfo=dt.UTC)
PHYSIONET_FACILITY = "physionet-2012"
#: ICUType → (Location id, name): 1 coronary care, 2 cardiac surgery recovery, 3 medical,
#: 4 surgical.
ICU_LOCATIONS = {
    1: ("physionet-2012-ccu", "Coronary Care Unit"),
    2: ("physionet-2012-csru", "Cardiac Surgery Recovery Unit"),
    3: ("physionet-2012-micu", "Medical ICU"),
    4: ("physionet-2012-sicu", "Surgical ICU"),
}


@dataclass(frozen=True, kw_only=True)
class ParameterMapping:
    """How one local parameter becomes an Observation.

    Attributes
    ----------
    parameter : str
        Local name in the source (e.g. ``"HR"``).
    system, code, display : str
        The Observation code (LOINC where one exists).
    unit : str
        UCUM unit of the stored value (after scaling).
    category : str
        FHIR observation-category code (``vital-signs``, ``laboratory`` …).
    scale : float
        Factor applied to the source value (e.g. 100 for a fraction stored as %).
    min, max : float
        Plausible range of the *source* value, inclusive; outside it the value is flagged.
    """

    parameter: str
    system: str
    code: str
    display: str
    unit: str
    category: str
    scale: float
    min: float
    max: float


def load_mapping(path: Path | None = None) -> dict[str, ParameterMapping]:
    """Read a parameter mapping CSV (default: the shipped PhysioNet 2012 mapping).

    Raises
    ------
    InvalidInputError
        If a column is missing, a number does not parse, or ``min > max``; the message
        names the file and line.
    """
    if path is None:
        text = (
            resources.files("healthos_core").joinpath("data/mappings/physionet2012.csv").read_text()
        )
        source = "physionet2012.csv"
    else:
        text = path.read_text(encoding="utf-8")
        source = str(path)
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in MAPPING_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InvalidInputError(f"{source}: mapping lacks column(s) {', '.join(missing)}")
    mapping: dict[str, ParameterMapping] = {}
    for line, row in enumerate(reader, start=2):
        try:
            item = ParameterMapping(
                parameter=row["parameter"],
                system=row["system"],
                code=row["code"],
                display=row["display"],
                unit=row["unit"],
                category=row["category"],
                scale=float(row["scale"]),
                min=float(row["min"]),
                max=float(row["max"]),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{source}, line {line}: {exc}") from exc
        if item.min > item.max:
            raise InvalidInputError(f"{source}, line {line}: min {item.min} > max {item.max}")
        mapping[item.parameter] = item
    return mapping


@dataclass(frozen=True)
class LongRow:
    """One measurement: patient, aware UTC time, local parameter name, numeric value."""

    patient_id: str
    time: dt.datetime
    parameter: str
    value: float


@dataclass
class LongImportReport:
    """What a long-format import did (``healthos import --json`` shape)."""

    files: int = 0
    imported: Counter[str] = field(default_factory=Counter)
    flagged: Counter[str] = field(default_factory=Counter)
    unmapped: Counter[str] = field(default_factory=Counter)
    rejected: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready report."""
        return {
            "files": self.files,
            "imported": dict(sorted(self.imported.items())),
            "skipped": {f"unmapped parameter {k}": v for k, v in sorted(self.unmapped.items())},
            "flagged": dict(sorted(self.flagged.items())),
            "rejected": self.rejected,
            "seconds": round(self.seconds, 3),
        }


def observation_rows(
    rows: Iterable[LongRow],
    mapping: dict[str, ParameterMapping],
    *,
    encounter_id: str | None,
    facility_id: str | None,
    id_prefix: str,
    flagged: Counter[str],
    unmapped: Counter[str],
) -> list[dict[str, Any]]:
    """Turn long rows into ``observation`` table rows (pure; nothing is written).

    Ids are ``f"{id_prefix}-{n}"`` with ``n`` the row's position, so re-importing the
    same source updates rather than duplicates. Implausible values are kept with status
    ``entered-in-error`` and ``quality_flag = "implausible: <value> outside [min, max]"``.
    """
    now = utcnow()
    out: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        spec = mapping.get(row.parameter)
        if spec is None:
            unmapped[row.parameter] += 1
            continue
        plausible = spec.min <= row.value <= spec.max
        if not plausible:
            flagged[row.parameter] += 1
        out.append(
            {
                "id": f"{id_prefix}-{index}",
                "facility_id": facility_id,
                "resource": None,
                "created_at": now,
                "updated_at": now,
                "code_system": spec.system,
                "code": spec.code,
                "display": spec.display,
                "patient_id": row.patient_id,
                "encounter_id": encounter_id,
                "status": "final" if plausible else "entered-in-error",
                "category": spec.category,
                "effective_at": row.time,
                "value": row.value * spec.scale,
                "unit": spec.unit,
                "value_code": None,
                "value_string": None,
                "components": None,
                "quality_flag": None
                if plausible
                else f"implausible: {row.value:g} outside [{spec.min:g}, {spec.max:g}]",
            }
        )
    return out


def _physionet_reference_rows(
    now: dt.datetime,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    organization = {
        "id": PHYSIONET_FACILITY,
        "facility_id": PHYSIONET_FACILITY,
        "resource": None,
        "created_at": now,
        "updated_at": now,
        "name": "PhysioNet 2012 ICU cohort (MIMIC-II)",
        "type_code": "prov",
        "active": True,
        "part_of_id": None,
    }
    locations = [
        {
            "id": location_id,
            "facility_id": PHYSIONET_FACILITY,
            "resource": None,
            "created_at": now,
            "updated_at": now,
            "name": name,
            "kind": "icu",
            "physical_type": "wa",
            "status": "active",
            "operational_status": None,
            "part_of_id": None,
            "managing_organization_id": PHYSIONET_FACILITY,
        }
        for location_id, name in ICU_LOCATIONS.values()
    ]
    return [organization], locations


def _stay_rows(
    stay: Stay, now: dt.datetime
) -> tuple[dict[str, Any], dict[str, Any], list[LongRow]]:
    patient_id = f"physionet-2012-{stay.record_id}"
    age = stay.descriptors.get("Age")
    sex = stay.descriptors.get("Gender")
    gender = {0.0: "female", 1.0: "male"}.get(sex, "unknown") if sex is not None else "unknown"
    birth = dt.date(PHYSIONET_ANCHOR.year - int(age), 1, 1) if age is not None else None
    patient = {
        "id": patient_id,
        "facility_id": PHYSIONET_FACILITY,
        "resource": None,
        "created_at": now,
        "updated_at": now,
        "family": None,
        "given": None,
        "gender": gender,
        "birth_date": birth,
        "deceased_at": None,
    }
    icu_descriptor = stay.descriptors.get("ICUType")
    icu_type = int(icu_descriptor) if icu_descriptor is not None else 3
    location_id = ICU_LOCATIONS.get(icu_type, ICU_LOCATIONS[3])[0]
    last_minute = max((m.minutes for m in stay.measurements), default=0)
    encounter = {
        "id": f"{patient_id}-icu",
        "facility_id": PHYSIONET_FACILITY,
        "resource": None,
        "created_at": now,
        "updated_at": now,
        "patient_id": patient_id,
        "status": "finished",
        "class_code": "IMP",
        "type_code": None,
        "type_display": "ICU stay",
        "period_start": PHYSIONET_ANCHOR,
        "period_end": PHYSIONET_ANCHOR + dt.timedelta(minutes=max(last_minute, 48 * 60)),
        "service_provider_id": PHYSIONET_FACILITY,
        "practitioner_id": None,
        "location_id": location_id,
        "admit_source": None,
        "discharge_disposition": None,
        "reason_code": None,
    }
    rows = [
        LongRow(patient_id, PHYSIONET_ANCHOR, name, float(value))
        for name, value in (
            ("Height", stay.descriptors.get("Height")),
            ("Weight", stay.descriptors.get("Weight")),
        )
        if value is not None
    ]
    rows.extend(
        LongRow(
            patient_id, PHYSIONET_ANCHOR + dt.timedelta(minutes=m.minutes), m.parameter, m.value
        )
        for m in stay.measurements
    )
    return patient, encounter, rows


def stay_record(
    stay: Stay,
    mapping: dict[str, ParameterMapping],
    *,
    flagged: Counter[str] | None = None,
    unmapped: Counter[str] | None = None,
    now: dt.datetime | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """Convert one PhysioNet 2012 stay into record rows, without writing anything.

    This is the importer's conversion: :func:`import_physionet2012` writes exactly these
    rows, and the deterioration features read a stay through it so that a stay read
    from the archive and the same stay read back from the record give the same vector.

    Parameters
    ----------
    stay : Stay
        One stay from :func:`healthos_core.datasets.physionet2012.iter_stays`.
    mapping : dict
        Parameter mapping (see :func:`load_mapping`).
    flagged, unmapped : Counter, optional
        Incremented per implausible value / unmapped parameter.
    now : datetime, optional
        ``created_at`` / ``updated_at`` of the rows (default now).

    Returns
    -------
    tuple
        ``(patient row, encounter row, observation rows)`` as column dicts.
    """
    now = now or utcnow()
    patient, encounter, rows = _stay_rows(stay, now)
    observations = observation_rows(
        rows,
        mapping,
        encounter_id=encounter["id"],
        facility_id=PHYSIONET_FACILITY,
        id_prefix=encounter["id"],
        flagged=flagged if flagged is not None else Counter(),
        unmapped=unmapped if unmapped is not None else Counter(),
    )
    return patient, encounter, observations


def import_physionet2012(
    factory: sessionmaker[Session],
    directory: Path,
    *,
    limit: int | None = None,
    batch_size: int = 200,
    on_stay: Callable[[int, int | None], None] | None = None,
    mapping: dict[str, ParameterMapping] | None = None,
) -> LongImportReport:
    """Import a PhysioNet 2012 folder as Patients, ICU Encounters and Observations.

    Parameters
    ----------
    factory : sessionmaker
        One transaction per batch of stays.
    directory : Path
        Folder with ``set-*.tar.gz`` (as ``../shared/data/physionet-2012-icu-mortality``).
    limit : int, optional
        First N stays only.
    batch_size : int, default=200
        Stays per transaction.
    on_stay : callable, optional
        ``on_stay(done, total)`` after each batch (total is None when unknown).
    mapping : dict, optional
        Defaults to the shipped ``physionet2012.csv`` mapping.

    Returns
    -------
    LongImportReport
        ``imported`` per resource type, ``flagged`` per parameter (implausible values,
        stored as ``entered-in-error``), ``unmapped`` parameters.

    Raises
    ------
    FileNotFoundError, ValueError
        From the reader, for a missing folder or a malformed record (naming it).
    """
    started = time.perf_counter()
    mapping = mapping or load_mapping()
    report = LongImportReport(files=len(list(directory.glob("set-*.tar.gz"))))
    now = utcnow()
    organizations, locations = _physionet_reference_rows(now)
    with session_scope(factory) as session:
        dialect = session.get_bind().dialect.name
        session.execute(upsert_statement(Organization.__table__, dialect), organizations)
        session.execute(upsert_statement(Location.__table__, dialect), locations)
    done = 0
    pending: list[Stay] = []

    def flush() -> None:
        nonlocal done
        patients, encounters, observations = [], [], []
        for stay in pending:
            patient, encounter, rows = stay_record(
                stay, mapping, flagged=report.flagged, unmapped=report.unmapped, now=now
            )
            patients.append(patient)
            encounters.append(encounter)
            observations.extend(rows)
        with session_scope(factory) as session:
            dialect = session.get_bind().dialect.name
            session.execute(upsert_statement(Patient.__table__, dialect), patients)
            session.execute(upsert_statement(Encounter.__table__, dialect), encounters)
            if observations:
                session.execute(upsert_statement(Observation.__table__, dialect), observations)
        report.imported["Patient"] += len(patients)
        report.imported["Encounter"] += len(encounters)
        report.imported["Observation"] += len(observations)
        done += len(pending)
        pending.clear()
        if on_stay is not None:
            on_stay(done, limit)

    for stay in iter_stays(directory, limit=limit):
        pending.append(stay)
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    report.imported["Organization"] += 1
    report.imported["Location"] += len(locations)
    report.seconds = time.perf_counter() - started
    return report


LONG_COLUMNS = ("patient", "time", "parameter", "value")


def read_long_csv(path: Path) -> list[LongRow]:
    """Read a long-format CSV with columns ``patient,time,parameter,value``.

    ``patient`` is a Patient id in the record, ``time`` an ISO 8601 date-time with a
    zone (UTC assumed without one), ``value`` a number.

    Raises
    ------
    InvalidInputError
        If a column is missing or a time or value does not parse (naming file and line).
    """
    rows: list[LongRow] = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in LONG_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInputError(f"{path}: lacks column(s) {', '.join(missing)}")
        for line, raw in enumerate(reader, start=2):
            try:
                when = parse_datetime(raw["time"])
                value = float(raw["value"])
            except (InvalidInputError, TypeError, ValueError) as exc:
                raise InvalidInputError(f"{path}, line {line}: {exc}") from exc
            if when is None or not raw["patient"] or not raw["parameter"]:
                raise InvalidInputError(
                    f"{path}, line {line}: patient, time and parameter are required"
                )
            rows.append(LongRow(raw["patient"], when, raw["parameter"], value))
    return rows


def import_long_rows(
    session: Session,
    rows: list[LongRow],
    mapping: dict[str, ParameterMapping],
    *,
    source: str,
) -> LongImportReport:
    """Store long-format rows as Observations of existing patients, all or nothing.

    Each row is attached to the patient's encounter whose period contains its time (the
    latest-starting one when several do), else to no encounter. Ids derive from
    ``source`` and the row number, so importing the same file again changes nothing.

    Parameters
    ----------
    session : Session
        The caller's session (flushed, not committed).
    rows : list of LongRow
    mapping : dict
        From :func:`load_mapping`.
    source : str
        A stable name of the source (e.g. the file name), used in the ids.

    Raises
    ------
    InvalidInputError
        If a row names a patient that is not in the record; nothing is written.
    """
    report = LongImportReport(files=1)
    patient_ids = sorted({row.patient_id for row in rows})
    known = set(session.scalars(select(Patient.id).where(Patient.id.in_(patient_ids))))
    unknown = [p for p in patient_ids if p not in known]
    if unknown:
        raise InvalidInputError(f"{source}: unknown patient(s) {', '.join(unknown[:5])}")
    encounters: dict[str, list[Encounter]] = {}
    for encounter in session.scalars(
        select(Encounter)
        .where(Encounter.patient_id.in_(patient_ids))
        .order_by(Encounter.period_start)
    ):
        encounters.setdefault(encounter.patient_id, []).append(encounter)

    def encounter_of(row: LongRow) -> Encounter | None:
        found: Encounter | None = None
        for encounter in encounters.get(row.patient_id, []):
            start, end = encounter.period_start, encounter.period_end
            if start is not None and start <= row.time and (end is None or row.time <= end):
                found = encounter
        return found

    prefix = "long-" + hashlib.sha256(source.encode()).hexdigest()[:16]
    out: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        match = encounter_of(row)
        out.extend(
            observation_rows(
                [row],
                mapping,
                encounter_id=match.id if match else None,
                facility_id=match.facility_id if match else None,
                id_prefix=f"{prefix}-{index}",
                flagged=report.flagged,
                unmapped=report.unmapped,
            )
        )
    if out:
        dialect = session.get_bind().dialect.name
        with session.begin_nested():
            session.execute(upsert_statement(Observation.__table__, dialect), out)
    report.imported["Observation"] = len(out)
    return report
