"""FHIR export: a patient's record as a searchset Bundle that validates with R4B models."""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from healthos_core.billing.entities import ChargeItem
from healthos_core.errors import NotFoundError
from healthos_core.fhir.exporter import export_patient, to_fhir
from healthos_core.fhir.importer import import_document, import_paths
from healthos_core.fhir.refs import parse_datetime
from healthos_core.record.entities import (
    Condition,
    Coverage,
    Encounter,
    MedicationAdministration,
    Observation,
    Procedure,
)
from serving.cli import app
from tests.conftest import table_counts
from tests.core.fhir_factories import (
    ENTRY_NAMES,
    ENTRY_TYPES,
    BundleIds,
    entry_resource,
    organization,
    patient,
    practitioner,
    resolved,
    transaction_bundle,
    write_json,
)
from tests.factories import (
    LOINC,
    SNOMED,
    T0,
    make_encounter,
    make_location,
    make_medication_request,
    make_organization,
    make_patient,
)

STORED = [name for name in ENTRY_NAMES if name != "careplan"]


def _by_key(bundle: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["resource"]["resourceType"], e["resource"]["id"]): e for e in bundle["entry"]}


@pytest.fixture
def imported(session: Session) -> BundleIds:
    """One :func:`transaction_bundle` (key ``x``) imported and committed."""
    import_document(session, transaction_bundle("x"))
    session.commit()
    return BundleIds("x")


def test_export_patient_bundle_validates_with_r4b(session: Session, imported: BundleIds) -> None:
    bundle = export_patient(session, imported.patient)

    parsed = Bundle.model_validate(bundle)

    assert parsed.type == "searchset"
    assert len(parsed.entry) == len(STORED)
    json.dumps(bundle)  # JSON-ready as it is


def test_export_patient_holds_patient_compartment_and_referenced_resources(
    session: Session, imported: BundleIds
) -> None:
    bundle = export_patient(session, imported.patient)

    entries = _by_key(bundle)
    assert set(entries) == {(ENTRY_TYPES[name], getattr(imported, name)) for name in STORED}
    modes = {key: entry["search"]["mode"] for key, entry in entries.items()}
    assert modes.pop(("Patient", imported.patient)) == "match"
    assert set(modes.values()) == {"include"}
    assert bundle["entry"][0]["resource"]["resourceType"] == "Patient"
    assert bundle["total"] == 1
    assert all(e["fullUrl"] == f"urn:uuid:{e['resource']['id']}" for e in bundle["entry"])


def test_export_patient_round_trip_equals_imported_resources(
    session: Session, imported: BundleIds
) -> None:
    sent = transaction_bundle("x")
    exported = _by_key(export_patient(session, imported.patient))

    for name in STORED:
        original = resolved(entry_resource(sent, name), "x")
        back = copy.deepcopy(exported[(ENTRY_TYPES[name], getattr(imported, name))]["resource"])
        if name == "encounter":
            # the encounter's period is laid over from its (UTC) columns: same instants
            for edge in ("start", "end"):
                assert parse_datetime(back["period"][edge]) == parse_datetime(
                    original["period"][edge]
                )
            back.pop("period")
            original.pop("period")
        assert back == original, name


def _path(resource: dict[str, Any], path: str) -> Any:
    node: Any = resource
    for key in path.split("."):
        node = node[int(key)] if key.isdigit() else node[key]
    return node


#: The fields HealthOS maps to columns, per entry: ids, codes, values, times, references.
MAPPED_FIELDS: dict[str, list[str]] = {
    "patient": [
        "gender",
        "birthDate",
        "name.0.family",
        "identifier.0.value",
        "identifier.1.system",
        "managingOrganization.reference",
    ],
    "encounter": [
        "status",
        "class.code",
        "type.0.coding.0.code",
        "subject.reference",
        "serviceProvider.reference",
        "participant.0.individual.reference",
        "period.start",
        "period.end",
    ],
    "condition": [
        "code.coding.0.system",
        "code.coding.0.code",
        "clinicalStatus.coding.0.code",
        "onsetDateTime",
        "subject.reference",
        "encounter.reference",
    ],
    "observation": [
        "status",
        "code.coding.0.code",
        "valueQuantity.value",
        "valueQuantity.code",
        "effectiveDateTime",
        "subject.reference",
        "encounter.reference",
    ],
    "bp_panel": [
        "code.coding.0.code",
        "component.0.code.coding.0.code",
        "component.0.valueQuantity.value",
        "component.1.valueQuantity.value",
    ],
    "procedure": [
        "code.coding.0.code",
        "performedPeriod.start",
        "performedPeriod.end",
        "subject.reference",
    ],
    "medication_request": [
        "medicationCodeableConcept.coding.0.code",
        "intent",
        "authoredOn",
        "requester.reference",
    ],
    "immunization": ["vaccineCode.coding.0.code", "occurrenceDateTime", "patient.reference"],
    "diagnostic_report": [
        "code.coding.0.code",
        "issued",
        "result.0.reference",
        "result.1.reference",
    ],
    "allergy": ["code.coding.0.code", "criticality", "category.0", "patient.reference"],
    "claim": [
        "total.value",
        "total.currency",
        "item.0.net.value",
        "item.1.productOrService.coding.0.code",
        "diagnosis.0.diagnosisReference.reference",
        "item.0.encounter.0.reference",
        "prescription.reference",
        "provider.reference",
    ],
    "eob": [
        "claim.reference",
        "outcome",
        "payment.amount.value",
        "total.0.amount.value",
        "patient.reference",
    ],
    "organization": ["name", "identifier.0.value"],
    "practitioner": ["identifier.0.value", "name.0.family"],
}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str) and len(a) > 10 and a[4:5] == "-" and "T" in a:
        return parse_datetime(a) == parse_datetime(b)
    return bool(a == b)


def test_export_patient_round_trip_keeps_every_mapped_field(
    session: Session, imported: BundleIds
) -> None:
    sent = transaction_bundle("x")
    exported = _by_key(export_patient(session, imported.patient))
    assert set(MAPPED_FIELDS) == set(STORED)

    for name, fields in MAPPED_FIELDS.items():
        original = resolved(entry_resource(sent, name), "x")
        back = exported[(ENTRY_TYPES[name], getattr(imported, name))]["resource"]
        assert back["id"] == original["id"]
        for field in fields:
            assert _same(_path(back, field), _path(original, field)), (name, field)
        # references come back as "Type/id"
        for field in fields:
            if field.endswith("reference"):
                kind, _, target = _path(back, field).partition("/")
                assert kind in ENTRY_TYPES.values() and target


def test_export_patient_lays_current_state_over_the_received_resource(
    session: Session, imported: BundleIds
) -> None:
    encounter = session.get(Encounter, imported.encounter)
    obs = session.get(Observation, imported.observation)
    assert encounter is not None and obs is not None
    encounter.status = "entered-in-error"
    encounter.period_end = dt.datetime(2024, 3, 2, 8, tzinfo=dt.UTC)
    obs.status = "entered-in-error"
    session.commit()

    entries = _by_key(export_patient(session, imported.patient))

    enc = entries[("Encounter", imported.encounter)]["resource"]
    assert enc["status"] == "entered-in-error"
    assert parse_datetime(enc["period"]["end"]) == dt.datetime(2024, 3, 2, 8, tzinfo=dt.UTC)
    assert (
        entries[("Observation", imported.observation)]["resource"]["status"] == "entered-in-error"
    )


def test_export_patient_unknown_patient_raises_not_found(session: Session) -> None:
    with pytest.raises(NotFoundError, match="Patient/nobody does not exist"):
        export_patient(session, "nobody")


def test_export_patient_leaves_other_patients_out(session: Session) -> None:
    import_document(session, transaction_bundle("one"))
    import_document(session, transaction_bundle("two"))
    session.commit()

    exported = export_patient(session, BundleIds("one").patient)

    ids_two = {getattr(BundleIds("two"), name) for name in ENTRY_NAMES}
    assert not ids_two & {e["resource"]["id"] for e in exported["entry"]}
    assert len(exported["entry"]) == len(STORED)


def test_export_patient_includes_organization_and_practitioner_referenced_by_the_patient(
    session: Session,
) -> None:
    pat = patient("p-gp", organization_ref="Organization/org-gp")
    pat["generalPractitioner"] = [{"reference": "Practitioner/dr-gp"}]
    import_document(
        session,
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {"resource": organization("org-gp")},
                {"resource": practitioner("dr-gp")},
                {"resource": pat},
            ],
        },
    )
    session.commit()

    bundle = export_patient(session, "p-gp")

    Bundle.model_validate(bundle)
    assert set(_by_key(bundle)) == {
        ("Patient", "p-gp"),
        ("Organization", "org-gp"),
        ("Practitioner", "dr-gp"),
    }


def test_export_patient_reimported_changes_nothing(
    engine: Engine, session: Session, imported: BundleIds
) -> None:
    exported = export_patient(session, imported.patient)
    before = table_counts(engine)

    result = import_document(session, exported, source="export.json")
    session.commit()

    assert table_counts(engine) == before
    assert sum(result.created.values()) == 0
    assert sum(result.imported.values()) == len(STORED)


def test_export_patient_builds_resources_created_without_fhir(session: Session) -> None:
    org = make_organization(session, id="lib-org")
    ward = make_location(session, id="lib-ward", managing_organization_id=org.id)
    pat = make_patient(session, id="lib-p", identifiers=[("urn:mrn", "42")], facility_id=org.id)
    enc = make_encounter(
        session,
        patient=pat,
        id="lib-e",
        location_id=ward.id,
        service_provider_id=org.id,
        class_code="IMP",
    )
    order = make_medication_request(session, patient_id=pat.id, id="lib-mr", encounter_id=enc.id)
    session.add_all(
        [
            Coverage(id="lib-cov", patient_id=pat.id, payor_display="medicare", period_start=T0),
            Condition(
                id="lib-c",
                patient_id=pat.id,
                encounter_id=enc.id,
                code_system=SNOMED,
                code="233604007",
                display="Pneumonia",
                clinical_status="active",
                onset_at=T0,
            ),
            Observation(
                id="lib-o1",
                patient_id=pat.id,
                encounter_id=enc.id,
                status="final",
                category="vital-signs",
                code_system=LOINC,
                code="8867-4",
                display="Heart rate",
                effective_at=T0,
                value=88.0,
                unit="/min",
            ),
            Observation(
                id="lib-o2",
                patient_id=pat.id,
                encounter_id=enc.id,
                status="final",
                code_system=LOINC,
                code="85354-9",
                effective_at=T0,
                components=[
                    {
                        "system": LOINC,
                        "code": "8480-6",
                        "display": "Systolic",
                        "value": 120.0,
                        "unit": "mm[Hg]",
                    }
                ],
            ),
            Procedure(
                id="lib-pr",
                patient_id=pat.id,
                encounter_id=enc.id,
                status="completed",
                code_system=SNOMED,
                code="399208008",
                performed_start=T0,
                performed_end=T0 + dt.timedelta(minutes=15),
            ),
            MedicationAdministration(
                id="lib-ma",
                patient_id=pat.id,
                encounter_id=enc.id,
                request_id=order.id,
                status="completed",
                code="308182",
                effective_start=T0,
                dose_value=250.0,
                dose_unit="mg",
            ),
            ChargeItem(
                id="lib-ch",
                patient_id=pat.id,
                encounter_id=enc.id,
                status="billable",
                code_system=SNOMED,
                code="399208008",
                quantity=Decimal("1"),
                unit_price=Decimal("80.10"),
                total=Decimal("80.10"),
                currency="USD",
                service_ref="Procedure/lib-pr",
                occurred_at=T0,
                entered_at=T0,
            ),
        ]
    )
    session.flush()

    bundle = export_patient(session, "lib-p")

    Bundle.model_validate(bundle)
    entries = _by_key(bundle)
    assert set(entries) == {
        ("Patient", "lib-p"),
        ("Coverage", "lib-cov"),
        ("Encounter", "lib-e"),
        ("Condition", "lib-c"),
        ("Observation", "lib-o1"),
        ("Observation", "lib-o2"),
        ("Procedure", "lib-pr"),
        ("MedicationRequest", "lib-mr"),
        ("MedicationAdministration", "lib-ma"),
        ("ChargeItem", "lib-ch"),
        ("Organization", "lib-org"),
        ("Location", "lib-ward"),
    }
    assert all("fullUrl" not in e for e in bundle["entry"])  # ids that are not UUIDs
    condition = entries[("Condition", "lib-c")]["resource"]
    assert condition["code"]["coding"][0]["code"] == "233604007"
    assert condition["subject"] == {"reference": "Patient/lib-p"}
    assert "status" not in condition
    hr = entries[("Observation", "lib-o1")]["resource"]
    assert hr["valueQuantity"]["value"] == 88.0 and hr["valueQuantity"]["code"] == "/min"
    assert parse_datetime(hr["effectiveDateTime"]) == T0
    encounter = entries[("Encounter", "lib-e")]["resource"]
    assert encounter["class"]["code"] == "IMP"
    assert encounter["location"] == [
        {
            "location": {"reference": "Location/lib-ward"},
            "status": "active",
            "period": {"start": encounter["period"]["start"]},
        }
    ]
    assert entries[("Patient", "lib-p")]["resource"]["identifier"] == [
        {"system": "urn:mrn", "value": "42"}
    ]


def test_to_fhir_condition_without_resource_has_no_status(session: Session) -> None:
    pat = make_patient(session, id="c-p")
    condition = Condition(id="c-1", patient_id=pat.id, code="38341003", clinical_status="active")

    resource = to_fhir(condition)

    assert resource["resourceType"] == "Condition" and resource["id"] == "c-1"
    assert "status" not in resource
    assert resource["clinicalStatus"]["coding"][0]["code"] == "active"


# --------------------------------------------------------------------------- CLI


def test_cli_export_prints_a_valid_bundle(tmp_path: Path, cli_db_url: str) -> None:
    ids = BundleIds("cli")
    path = write_json(tmp_path / "in.json", transaction_bundle("cli"))
    runner = CliRunner()
    assert runner.invoke(app, ["import", str(path), "--db", cli_db_url, "--json"]).exit_code == 0

    result = runner.invoke(app, ["export", ids.ref("patient"), "--db", cli_db_url])

    assert result.exit_code == 0, result.stderr
    bundle = json.loads(result.stdout)
    Bundle.model_validate(bundle)
    assert {e["resource"]["id"] for e in bundle["entry"]} == {getattr(ids, n) for n in STORED}

    out = tmp_path / "out" / "patient.json"
    out.parent.mkdir()
    to_file = runner.invoke(
        app, ["export", ids.ref("patient"), "--db", cli_db_url, "--out", str(out)]
    )
    assert to_file.exit_code == 0
    assert f"wrote {len(STORED)} resources" in to_file.stderr
    assert json.loads(out.read_text())["entry"] == bundle["entry"]


def test_cli_export_unknown_patient_exits_not_found(cli_db_url: str) -> None:
    result = CliRunner().invoke(app, ["export", "Patient/nobody", "--db", cli_db_url])

    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == ["error: Patient/nobody does not exist"]


def test_cli_export_rejects_a_non_patient_reference(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["export", "Encounter/1", "--db", f"sqlite:///{tmp_path / 'x.db'}"]
    )

    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "is not a Patient reference" in result.stderr


def test_export_patient_after_import_paths_on_both_backends(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    ids = BundleIds("ip")
    import_paths(session_factory, [write_json(tmp_path / "ip.json.gz", transaction_bundle("ip"))])
    with session_factory() as s:
        bundle = export_patient(s, ids.patient)
    Bundle.model_validate(bundle)
    assert _by_key(bundle)[("Claim", ids.claim)]["resource"]["total"] == {
        "value": 392.6,
        "currency": "USD",
    }
