"""FHIR import: Bundles and NDJSON (plain or gzip, files or folders) into the record.

Every test runs on SQLite and on PostgreSQL. The corrupted-input suite proves that a
rejected file leaves every table exactly as it was and says why in one line naming
the file and the resource.
"""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from healthos_core.billing.entities import Claim, ClaimItem, ExplanationOfBenefit
from healthos_core.errors import FhirValidationError, InvalidInputError
from healthos_core.fhir.importer import ImportReport, import_document, import_paths
from healthos_core.record.entities import (
    AllergyIntolerance,
    Condition,
    DiagnosticReport,
    Encounter,
    Immunization,
    MedicationAdministration,
    MedicationRequest,
    Observation,
    Organization,
    Patient,
    PatientIdentifier,
    Practitioner,
    Procedure,
)
from serving.cli import EXIT_REJECTED, app
from tests.conftest import table_counts, url_table_counts
from tests.core.fhir_factories import (
    ENTRY_NAMES,
    ENTRY_TYPES,
    MRN,
    ORG_SYSTEM,
    SSN,
    BundleIds,
    entry_resource,
    observation,
    patient,
    resolved,
    transaction_bundle,
    write_json,
    write_ndjson,
)
from tests.factories import make_encounter, make_organization, make_patient

#: Counts of one :func:`transaction_bundle` per stored type (CarePlan is skipped).
BUNDLE_COUNTS = {
    "Organization": 1,
    "Practitioner": 1,
    "Patient": 1,
    "Encounter": 1,
    "Condition": 1,
    "Observation": 2,
    "Procedure": 1,
    "MedicationRequest": 1,
    "Immunization": 1,
    "DiagnosticReport": 1,
    "AllergyIntolerance": 1,
    "Claim": 1,
    "ExplanationOfBenefit": 1,
}
#: Rows one bundle adds, per table.
BUNDLE_ROWS = {
    "organization": 1,
    "practitioner": 1,
    "patient": 1,
    "patient_identifier": 2,
    "encounter": 1,
    "condition": 1,
    "observation": 2,
    "procedure": 1,
    "medication_request": 1,
    "immunization": 1,
    "diagnostic_report": 1,
    "allergy_intolerance": 1,
    "claim": 1,
    "claim_item": 2,
    "claim_diagnosis": 1,
    "explanation_of_benefit": 1,
}


def _grown_by(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


def _assert_one_line(reason: str) -> None:
    assert reason and "\n" not in reason and "\r" not in reason


# --------------------------------------------------------------------------- happy paths


def test_import_paths_transaction_bundle_stores_every_supported_type(
    tmp_path: Path, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    path = write_json(tmp_path / "a.json", transaction_bundle("a"))
    before = table_counts(engine)

    report = import_paths(session_factory, [path])

    assert report.files == 1
    assert report.rejected == []
    assert dict(report.imported) == BUNDLE_COUNTS
    assert dict(report.created) == BUNDLE_COUNTS
    assert dict(report.skipped) == {"CarePlan": 1}
    assert report.seconds > 0
    assert _grown_by(before, table_counts(engine)) == BUNDLE_ROWS


def test_import_paths_maps_typed_columns(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    ids = BundleIds("m")
    import_paths(session_factory, [write_json(tmp_path / "m.json", transaction_bundle("m"))])

    with session_factory() as s:
        pat = s.get(Patient, ids.patient)
        assert pat is not None
        assert (pat.family, pat.given, pat.gender) == ("Testperson", "Ada Marie", "female")
        assert pat.birth_date == dt.date(1961, 4, 12)
        assert pat.facility_id == ids.organization
        assert {(i.system, i.value, i.type_code) for i in pat.identifiers} == {
            (MRN, f"MRN-{ids.patient[:8]}", "MR"),
            (SSN, "999-55-0101", "SS"),
        }

        org = s.get(Organization, ids.organization)
        assert org is not None and (org.name, org.type_code) == (
            "Synthetic General Hospital",
            "prov",
        )
        practitioner = s.get(Practitioner, ids.practitioner)
        assert practitioner is not None and practitioner.npi == "9999999901"

        enc = s.get(Encounter, ids.encounter)
        assert enc is not None
        assert (enc.status, enc.class_code, enc.type_code) == ("finished", "EMER", "50849002")
        assert enc.period_start == dt.datetime(2024, 3, 1, 9, tzinfo=dt.UTC)
        assert enc.period_end == dt.datetime(2024, 3, 1, 11, 30, tzinfo=dt.UTC)  # +02:00 → UTC
        assert enc.service_provider_id == enc.facility_id == ids.organization
        assert enc.practitioner_id == ids.practitioner
        assert enc.reason_code == "233604007"

        cond = s.get(Condition, ids.condition)
        assert cond is not None
        assert (cond.code, cond.clinical_status, cond.verification_status) == (
            "233604007",
            "active",
            "confirmed",
        )
        assert cond.onset_at == dt.datetime(2024, 2, 27, 2, 30, tzinfo=dt.UTC)
        assert cond.facility_id == ids.organization  # from its encounter

        temp = s.get(Observation, ids.observation)
        assert temp is not None
        assert (temp.code_system, temp.code, temp.value, temp.unit) == (
            "http://loinc.org",
            "8310-5",
            38.6,
            "Cel",
        )
        assert temp.category == "vital-signs"
        assert temp.effective_at == dt.datetime(2024, 3, 1, 9, 10, tzinfo=dt.UTC)
        assert temp.patient_id == ids.patient and temp.encounter_id == ids.encounter

        bp = s.get(Observation, ids.bp_panel)
        assert bp is not None and bp.code == "55284-4" and bp.value is None
        assert [(c["code"], c["value"], c["unit"]) for c in bp.components or []] == [
            ("8480-6", 92, "mm[Hg]"),
            ("8462-4", 58, "mm[Hg]"),
        ]

        proc = s.get(Procedure, ids.procedure)
        assert proc is not None and proc.code == "399208008"
        assert proc.performed_end == dt.datetime(2024, 3, 1, 9, 45, tzinfo=dt.UTC)
        med = s.get(MedicationRequest, ids.medication_request)
        assert med is not None
        assert (med.code, med.intent, med.requester_id) == ("308182", "order", ids.practitioner)
        imm = s.get(Immunization, ids.immunization)
        assert imm is not None and imm.code == "140" and imm.patient_id == ids.patient
        report = s.get(DiagnosticReport, ids.diagnostic_report)
        assert report is not None and report.result_ids == [ids.bp_panel, ids.observation]
        allergy = s.get(AllergyIntolerance, ids.allergy)
        assert allergy is not None
        assert (allergy.code, allergy.category, allergy.criticality) == ("91935009", "food", "low")

        claim = s.get(Claim, ids.claim)
        assert claim is not None
        assert claim.total == Decimal("392.60") and claim.currency == "USD"
        assert (claim.type_code, claim.coverage_display) == ("institutional", "medicare")
        assert claim.encounter_id == ids.encounter and claim.facility_id == ids.organization
        items = s.scalars(
            select(ClaimItem).where(ClaimItem.claim_id == ids.claim).order_by(ClaimItem.sequence)
        ).all()
        assert [(i.sequence, i.code, i.net) for i in items] == [
            (1, "50849002", Decimal("312.50")),
            (2, "399208008", Decimal("80.10")),
        ]
        assert items[0].encounter_id == ids.encounter
        assert items[1].service_date == dt.date(2024, 3, 1)
        assert items[1].diagnosis_sequence == [1]

        eob = s.get(ExplanationOfBenefit, ids.eob)
        assert eob is not None
        assert eob.claim_id == ids.claim
        assert (eob.total_submitted, eob.total_payment) == (Decimal("392.60"), Decimal("301.15"))
        assert eob.outcome == "complete"


def test_import_paths_stores_resources_with_references_as_type_id(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    ids = BundleIds("s")
    import_paths(session_factory, [write_json(tmp_path / "s.json", transaction_bundle("s"))])
    with session_factory() as s:
        stored = s.get(Observation, ids.observation)
        assert stored is not None and stored.resource is not None
        assert stored.resource["subject"] == {"reference": ids.ref("patient")}
        assert stored.resource["encounter"] == {"reference": ids.ref("encounter")}
        assert all(
            "urn:uuid:" not in json.dumps(row.resource)
            for row in s.scalars(select(Claim)).all()
            + s.scalars(select(ExplanationOfBenefit)).all()
        )


def test_import_paths_reads_bundles_and_ndjson_plain_and_gzip_from_folders(
    tmp_path: Path, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    folder = tmp_path / "export"
    write_json(folder / "transaction.json", transaction_bundle("t"))
    write_json(
        folder / "nested" / "collection.json.gz", transaction_bundle("c", bundle_type="collection")
    )
    write_ndjson(folder / "Patient.ndjson", [patient("nd-p1"), patient("nd-p2")])
    write_ndjson(
        folder / "Observation.ndjson.gz",
        [observation(f"nd-o{i}", subject="Patient/nd-p1") for i in range(3)],
    )
    (folder / "README.md").write_text("not FHIR")
    (folder / "manifest.csv").write_text("a,b\n1,2\n")

    report = import_paths(session_factory, [folder])

    assert report.files == 4
    assert report.rejected == []
    assert report.imported["Patient"] == 4
    assert report.imported["Observation"] == 2 + 2 + 3
    counts = table_counts(engine)
    assert counts["patient"] == 4
    assert counts["observation"] == 7


def test_import_paths_accepts_a_single_resource_document(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    report = import_paths(session_factory, [write_json(tmp_path / "p.json", patient("single-1"))])
    assert report.rejected == []
    assert dict(report.imported) == {"Patient": 1}


def test_import_paths_twice_changes_no_table_count(
    tmp_path: Path, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    folder = tmp_path / "in"
    write_json(folder / "a.json.gz", transaction_bundle("i1"))
    write_json(folder / "b.json", transaction_bundle("i2", bundle_type="collection"))
    write_ndjson(folder / "o.ndjson", [observation("i-o1", subject=BundleIds("i1").ref("patient"))])
    first = import_paths(session_factory, [folder])
    after_first = table_counts(engine)

    second = import_paths(session_factory, [folder])

    assert table_counts(engine) == after_first
    assert second.rejected == []
    assert second.imported == first.imported
    assert sum(second.created.values()) == 0
    assert sum(first.created.values()) == sum(first.imported.values())
    assert second.skipped == first.skipped == {"CarePlan": 2}


def test_import_paths_reimport_updates_changed_resources(
    tmp_path: Path, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    ids = BundleIds("u")
    bundle = transaction_bundle("u")
    import_paths(session_factory, [write_json(tmp_path / "v1.json", bundle)])
    counts = table_counts(engine)

    changed = copy.deepcopy(bundle)
    entry_resource(changed, "observation")["valueQuantity"]["value"] = 39.2
    entry_resource(changed, "encounter")["status"] = "cancelled"
    claim = entry_resource(changed, "claim")
    claim["item"] = claim["item"][:1]
    claim["total"] = {"value": 312.5, "currency": "USD"}
    report = import_paths(session_factory, [write_json(tmp_path / "v2.json", changed)])

    assert report.rejected == []
    assert sum(report.created.values()) == 0
    assert _grown_by(counts, table_counts(engine)) == {"claim_item": -1}
    with session_factory() as s:
        obs = s.get(Observation, ids.observation)
        assert obs is not None and obs.value == 39.2
        assert obs.resource is not None and obs.resource["valueQuantity"]["value"] == 39.2
        enc = s.get(Encounter, ids.encounter)
        assert enc is not None and enc.status == "cancelled"
        stored_claim = s.get(Claim, ids.claim)
        assert stored_claim is not None and stored_claim.total == Decimal("312.50")
        assert [i.sequence for i in stored_claim.items] == [1]


def test_import_paths_counts_unsupported_types_as_skipped(
    tmp_path: Path, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    resources = [
        patient("sk-p"),
        {
            "resourceType": "Goal",
            "id": "g1",
            "lifecycleStatus": "active",
            "description": {"text": "walk"},
            "subject": {"reference": "Patient/sk-p"},
        },
        {
            "resourceType": "Goal",
            "id": "g2",
            "lifecycleStatus": "active",
            "description": {"text": "eat"},
            "subject": {"reference": "Patient/sk-p"},
        },
        {"resourceType": "Device", "id": "d1", "status": "active"},
        {
            "resourceType": "CarePlan",
            "id": "cp1",
            "status": "active",
            "intent": "plan",
            "subject": {"reference": "Patient/sk-p"},
        },
    ]
    before = table_counts(engine)

    report = import_paths(session_factory, [write_ndjson(tmp_path / "mixed.ndjson", resources)])

    assert report.rejected == []
    assert dict(report.imported) == {"Patient": 1}
    assert dict(report.skipped) == {"Goal": 2, "Device": 1, "CarePlan": 1}
    assert report.to_dict()["skipped"] == {"CarePlan": 1, "Device": 1, "Goal": 2}
    assert _grown_by(before, table_counts(engine)) == {"patient": 1, "patient_identifier": 2}


def test_import_paths_ndjson_resolves_patient_imported_earlier(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    ids = BundleIds("e")
    import_paths(session_factory, [write_json(tmp_path / "bundle.json", transaction_bundle("e"))])
    later = [
        observation(
            "late-1", subject=ids.ref("patient"), encounter=ids.ref("encounter"), value=37.1
        ),
        observation("late-2", subject=f"http://fhir.example.org/Patient/{ids.patient}", value=36.9),
    ]

    report = import_paths(session_factory, [write_ndjson(tmp_path / "Observation.ndjson", later)])

    assert report.rejected == []
    assert dict(report.created) == {"Observation": 2}
    with session_factory() as s:
        first = s.get(Observation, "late-1")
        second = s.get(Observation, "late-2")
        assert first is not None and second is not None
        assert first.patient_id == second.patient_id == ids.patient
        assert first.encounter_id == ids.encounter
        # the facility comes from the encounter found in the database
        assert first.facility_id == ids.organization
        assert second.resource is not None
        assert second.resource["subject"] == {"reference": ids.ref("patient")}


def test_import_paths_into_database_that_already_has_data(
    tmp_path: Path, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory.begin() as s:
        org = make_organization(s, id="existing-org")
        existing = make_patient(
            s, id="existing-patient", identifiers=[(MRN, "OLD-1")], facility_id=org.id
        )
        make_encounter(s, patient=existing, id="existing-encounter")
    before = table_counts(engine)

    report = import_paths(
        session_factory, [write_json(tmp_path / "new.json", transaction_bundle("n"))]
    )
    notes = [
        observation(
            "on-existing",
            subject="Patient/existing-patient",
            encounter="Encounter/existing-encounter",
        )
    ]
    report_ndjson = import_paths(session_factory, [write_ndjson(tmp_path / "o.ndjson", notes)])

    assert report.rejected == report_ndjson.rejected == []
    grown = _grown_by(before, table_counts(engine))
    assert grown == {**BUNDLE_ROWS, "observation": BUNDLE_ROWS["observation"] + 1}
    with session_factory() as s:
        kept = s.get(Patient, "existing-patient")
        assert kept is not None and kept.resource is None and kept.family == "Patient"
        assert [(i.system, i.value) for i in kept.identifiers] == [(MRN, "OLD-1")]
        obs = s.get(Observation, "on-existing")
        assert obs is not None and obs.encounter_id == "existing-encounter"
        assert obs.facility_id == "existing-org"


def test_import_paths_resolves_conditional_reference_within_bundle(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    ids = BundleIds("cr")
    bundle = transaction_bundle("cr", conditional_organization=True)
    encounter = entry_resource(bundle, "encounter")
    assert encounter["serviceProvider"]["reference"].startswith(
        f"Organization?identifier={ORG_SYSTEM}|"
    )

    report = import_paths(session_factory, [write_json(tmp_path / "cond.json", bundle)])

    assert report.rejected == []
    with session_factory() as s:
        enc = s.get(Encounter, ids.encounter)
        assert enc is not None
        assert enc.service_provider_id == enc.facility_id == ids.organization
        assert enc.resource is not None
        assert enc.resource["serviceProvider"] == {"reference": ids.ref("organization")}
        claim = s.get(Claim, ids.claim)
        assert claim is not None and claim.provider_id == ids.organization


def test_import_paths_gives_resources_without_id_a_stable_id(
    tmp_path: Path, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    bundle = transaction_bundle("noid")
    del entry_resource(bundle, "observation")["id"]  # takes the id of its urn:uuid fullUrl
    nameless = observation("tmp", subject=BundleIds("noid").ref("patient"))
    del nameless["id"]  # NDJSON without fullUrl: a content hash
    folder = tmp_path / "noid"
    write_json(folder / "b.json", bundle)
    write_ndjson(folder / "o.ndjson", [nameless])

    first = import_paths(session_factory, [folder])
    counts = table_counts(engine)
    second = import_paths(session_factory, [folder])

    assert first.rejected == second.rejected == []
    assert table_counts(engine) == counts
    assert sum(second.created.values()) == 0
    with session_factory() as s:
        assert s.get(Observation, BundleIds("noid").observation) is not None
        ids = set(s.scalars(select(Observation.id)))
        assert len(ids) == 3


def test_import_paths_ndjson_line_may_hold_unicode_line_separators(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    named = patient("u2028")
    named["name"][0]["text"] = "Ada\u2028Marie\u0085Testperson\u2029"
    path = tmp_path / "Patient.ndjson"
    path.write_text(json.dumps(named, ensure_ascii=False) + "\n", encoding="utf-8")

    report = import_paths(session_factory, [path])

    assert report.rejected == []
    with session_factory() as s:
        stored = s.get(Patient, "u2028")
        assert stored is not None and stored.resource is not None
        assert stored.resource["name"][0]["text"] == "Ada\u2028Marie\u0085Testperson\u2029"


def test_import_paths_ndjson_accepts_crlf_and_blank_lines(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    path = tmp_path / "Patient.jsonl"
    path.write_bytes(
        (
            json.dumps(patient("crlf-1")) + "\r\n\r\n" + json.dumps(patient("crlf-2")) + "\r\n"
        ).encode()
    )
    report = import_paths(session_factory, [path])
    assert report.rejected == []
    assert dict(report.imported) == {"Patient": 2}


def test_import_paths_bulk_export_folder_imports_in_any_file_order(
    tmp_path: Path, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    # An NDJSON bulk export: one file per type, sorted so that referrers come first.
    bundle = transaction_bundle("bulk", bundle_type="collection")
    by_type: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle["entry"]:
        resource = resolved(entry["resource"], "bulk")  # references as "Type/id"
        by_type.setdefault(resource["resourceType"], []).append(resource)
    folder = tmp_path / "bulk"
    for resource_type, resources in by_type.items():
        write_ndjson(folder / f"{resource_type}.ndjson.gz", resources)
    order: list[str] = []

    report = import_paths(session_factory, [folder], on_file=lambda p, r, why: order.append(p.name))

    assert report.rejected == []
    assert report.files == len(by_type) == len(order) == len(set(order))
    assert dict(report.imported) == BUNDLE_COUNTS
    assert dict(report.skipped) == {"CarePlan": 1}
    assert table_counts(engine)["claim_item"] == 2
    assert sorted(order) == sorted(f"{t}.ndjson.gz" for t in by_type)
    assert order.index("Patient.ndjson.gz") < order.index("Observation.ndjson.gz")


def test_import_paths_rejected_file_does_not_stop_the_others(
    tmp_path: Path, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    folder = tmp_path / "mixed"
    write_json(folder / "1-good.json", transaction_bundle("g1"))
    (folder / "2-bad.json").write_text("{not json")
    write_json(folder / "3-good.json.gz", transaction_bundle("g2"))
    seen: list[tuple[str, bool, str | None]] = []

    report = import_paths(
        session_factory,
        [folder],
        on_file=lambda path, result, reason: seen.append((path.name, result is not None, reason)),
    )

    assert report.files == 3
    assert report.imported["Patient"] == 2
    assert [r["file"] for r in report.rejected] == [str(folder / "2-bad.json")]
    assert [(name, ok) for name, ok, _ in seen] == [
        ("1-good.json", True),
        ("2-bad.json", False),
        ("3-good.json.gz", True),
    ]
    assert seen[1][2] == report.rejected[0]["reason"]
    assert table_counts(engine)["patient"] == 2


def test_import_paths_missing_path_raises_before_importing_anything(
    tmp_path: Path, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    good = write_json(tmp_path / "good.json", transaction_bundle("mp"))
    before = table_counts(engine)
    missing = tmp_path / "nowhere.json"

    with pytest.raises(InvalidInputError, match=r"nowhere\.json: no such file or folder"):
        import_paths(session_factory, [good, missing])

    assert table_counts(engine) == before


def test_import_report_to_dict_is_json_ready() -> None:
    report = ImportReport(files=2, seconds=1.23456)
    report.imported.update({"Patient": 1, "Encounter": 3})
    report.rejected.append({"file": "x.json", "reason": "bad"})
    data = json.loads(json.dumps(report.to_dict()))
    assert data == {
        "files": 2,
        "imported": {"Encounter": 3, "Patient": 1},
        "created": {},
        "skipped": {},
        "rejected": [{"file": "x.json", "reason": "bad"}],
        "seconds": 1.235,
    }


# --------------------------------------------------------------------------- import_document


def test_import_document_does_not_modify_the_document(session: Session) -> None:
    bundle = transaction_bundle("doc")
    del entry_resource(bundle, "observation")["id"]
    original = copy.deepcopy(bundle)

    import_document(session, bundle)

    assert bundle == original


def test_import_document_is_undone_by_the_callers_rollback(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    before = table_counts(engine)
    with session_factory() as s:
        result = import_document(s, transaction_bundle("rb"))
        assert result.imported["Patient"] == 1
        assert s.scalar(select(func.count()).select_from(Patient)) == 1
        s.rollback()
    assert table_counts(engine) == before

    with session_factory() as s:
        import_document(s, transaction_bundle("rb"))
        s.commit()
    assert _grown_by(before, table_counts(engine)) == BUNDLE_ROWS


def test_import_document_rejected_bundle_keeps_the_callers_earlier_work(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    before = table_counts(engine)
    bad = transaction_bundle("kb")
    entry_resource(bad, "claim")["item"][0]["net"]["value"] = "lots"
    with session_factory() as s:
        import_document(s, transaction_bundle("ka"))
        with pytest.raises(FhirValidationError, match=r"Claim/.*item\.0\.net\.value"):
            import_document(s, bad, source="kb.json")
        s.commit()
    assert _grown_by(before, table_counts(engine)) == BUNDLE_ROWS
    with session_factory() as s:
        assert s.get(Patient, BundleIds("ka").patient) is not None
        assert s.get(Patient, BundleIds("kb").patient) is None


def test_import_document_medication_administration_context_may_be_an_episode_of_care(
    session: Session,
) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:5b0c6a1e-0000-4000-8000-000000000001",
                "resource": patient("ma-p"),
            },
            {
                "fullUrl": "urn:uuid:5b0c6a1e-0000-4000-8000-000000000002",
                "resource": {
                    "resourceType": "EpisodeOfCare",
                    "id": "eoc-1",
                    "status": "active",
                    "patient": {"reference": "urn:uuid:5b0c6a1e-0000-4000-8000-000000000001"},
                },
            },
            {
                "fullUrl": "urn:uuid:5b0c6a1e-0000-4000-8000-000000000003",
                "resource": {
                    "resourceType": "MedicationAdministration",
                    "id": "ma-1",
                    "status": "completed",
                    "medicationCodeableConcept": {"coding": [{"code": "308182"}]},
                    "subject": {"reference": "urn:uuid:5b0c6a1e-0000-4000-8000-000000000001"},
                    "context": {"reference": "urn:uuid:5b0c6a1e-0000-4000-8000-000000000002"},
                    "effectiveDateTime": "2024-03-01T10:00:00+00:00",
                    "dosage": {"dose": {"value": 250, "unit": "mg", "code": "mg"}},
                },
            },
        ],
    }

    result = import_document(session, bundle)

    assert dict(result.imported) == {"Patient": 1, "MedicationAdministration": 1}
    assert dict(result.skipped) == {"EpisodeOfCare": 1}
    given = session.get(MedicationAdministration, "ma-1")
    assert given is not None
    assert given.patient_id == "ma-p" and given.encounter_id is None
    assert (given.dose_value, given.dose_unit) == (250.0, "mg")
    assert given.resource is not None
    assert given.resource["context"] == {"reference": "EpisodeOfCare/eoc-1"}


# --------------------------------------------------------------------------- corrupted input


def _truncated_gzip(d: Path) -> Path:
    data = gzip.compress(json.dumps(transaction_bundle("bad")).encode())
    path = d / "truncated.json.gz"
    path.write_bytes(data[: len(data) // 2])
    return path


def _not_gzip(d: Path) -> Path:
    path = d / "plain.json.gz"
    path.write_text(json.dumps(patient("bad-plain")))
    return path


def _invalid_json(d: Path) -> Path:
    path = d / "invalid.json"
    path.write_text(json.dumps(transaction_bundle("bad"))[:-40])
    return path


def _not_utf8(d: Path) -> Path:
    path = d / "latin1.json"
    path.write_bytes(
        json.dumps(patient("bad-latin")).replace("Testperson", "M\u00fcller").encode("latin-1")
    )
    return path


def _bundle_with(change: Callable[[dict[str, Any]], None], name: str) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        bundle = transaction_bundle("bad")
        change(bundle)
        return write_json(d / name, bundle)

    return build


def _set(entry: str, path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(bundle: dict[str, Any]) -> None:
        node: Any = entry_resource(bundle, entry)
        *parents, last = path.split(".")
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value

    return change


def _label(entry: str) -> str:
    index = ENTRY_NAMES.index(entry)
    return f"{ENTRY_TYPES[entry]}/{getattr(BundleIds('bad'), entry)} (entry {index})"


def _ndjson_bad_line(d: Path) -> Path:
    path = d / "Observation.ndjson"
    good = json.dumps(patient("bad-nd-p"))
    obs = json.dumps(observation("bad-nd-o", subject="Patient/bad-nd-p"))
    path.write_text(f'{good}\n{obs}\n{{"resourceType": "Observation", "id": \n{obs}\n')
    return path


def _ndjson_not_a_resource(d: Path) -> Path:
    path = d / "Patient.ndjson.gz"
    lines = [json.dumps(patient("bad-nd-q")), json.dumps({"id": "no-type"})]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def _ndjson_invalid_resource(d: Path) -> Path:
    return write_ndjson(
        d / "Mixed.ndjson",
        [patient("bad-nd-r"), observation("bad-nd-v", subject="Patient/bad-nd-r", value="abc")],
    )


def _no_resource(bundle: dict[str, Any]) -> None:
    bundle["entry"].insert(4, {"fullUrl": "urn:uuid:00000000-0000-4000-8000-00000000dead"})


def _unknown_type(bundle: dict[str, Any]) -> None:
    entry_resource(bundle, "careplan")["resourceType"] = "Spaceship"


def _subject_is_a_device(bundle: dict[str, Any]) -> None:
    bundle["entry"].append(
        {
            "fullUrl": "urn:uuid:00000000-0000-4000-8000-00000000dec0",
            "resource": {"resourceType": "Device", "id": "bad-device", "status": "active"},
        }
    )
    entry_resource(bundle, "observation")["subject"] = {
        "reference": "urn:uuid:00000000-0000-4000-8000-00000000dec0"
    }


def _orphan_urn(bundle: dict[str, Any]) -> None:
    entry_resource(bundle, "observation")["subject"] = {
        "reference": "urn:uuid:00000000-0000-4000-8000-000000000000"
    }


# (case id, file builder, fragments the one-line reason must contain)
CORRUPTED: list[tuple[str, Callable[[Path], Path], list[str]]] = [
    ("truncated-gzip", _truncated_gzip, ["cannot read file", "end-of-stream"]),
    ("not-gzip", _not_gzip, ["cannot read file", "Not a gzipped file"]),
    ("invalid-json", _invalid_json, ["invalid JSON at line 1"]),
    ("not-utf8", _not_utf8, ["cannot read file", "utf-8"]),
    (
        "urn-nowhere",
        _bundle_with(_orphan_urn, "orphan-urn.json"),
        [
            _label("observation"),
            "urn:uuid:00000000-0000-4000-8000-000000000000 is not in the bundle",
        ],
    ),
    (
        "patient-x-nowhere",
        _bundle_with(_set("observation", "subject", {"reference": "Patient/x"}), "patient-x.json"),
        [_label("observation"), "Patient/x is neither in the bundle nor in the database"],
    ),
    (
        "quantity-not-a-number",
        _bundle_with(_set("observation", "valueQuantity.value", "abc"), "value-abc.json"),
        [_label("observation"), "valueQuantity.value"],
    ),
    (
        "birthdate-a-number",
        _bundle_with(_set("patient", "birthDate", 12), "birthdate-12.json"),
        [_label("patient"), "birthDate"],
    ),
    (
        "encounter-status-a-list",
        _bundle_with(_set("encounter", "status", ["finished"]), "status-list.json"),
        [_label("encounter"), "status", "valid string"],
    ),
    (
        "tenth-resource-invalid",
        _bundle_with(_set("immunization", "occurrenceDateTime", "not a date"), "tenth.json"),
        [_label("immunization"), "occurrenceDateTime"],
    ),
    (
        "bad-date-value",
        _bundle_with(_set("condition", "onsetDateTime", "2024-02-30"), "feb-30.json"),
        [_label("condition"), "onsetDateTime"],
    ),
    (
        "money-not-a-number",
        _bundle_with(_set("claim", "total.value", "lots"), "money.json"),
        [_label("claim"), "total.value"],
    ),
    (
        "money-too-large",
        _bundle_with(_set("claim", "total.value", 12345678901234.5), "money-large.json"),
        [
            f"Claim/{BundleIds('bad').claim}",
            "claim.total 12345678901234.50 has more than the 12 digits",
        ],
    ),
    (
        "non-fhir-json",
        lambda d: write_json(d / "config.json", {"name": "x", "entries": [1]}),
        ["not a FHIR resource (no resourceType)"],
    ),
    (
        "json-array",
        lambda d: write_json(d / "array.json", [patient("bad-arr")]),
        ["not a FHIR resource (no resourceType)"],
    ),
    (
        "unknown-resource-type",
        _bundle_with(_unknown_type, "spaceship.json"),
        [
            f"Spaceship/{BundleIds('bad').careplan} (entry 14)",
            "'Spaceship' is not a FHIR R4 resource type",
        ],
    ),
    (
        "entry-without-resource",
        _bundle_with(_no_resource, "no-resource.json"),
        ["entry 4 has no resource"],
    ),
    ("ndjson-bad-line", _ndjson_bad_line, ["line 3: invalid JSON"]),
    ("ndjson-not-a-resource", _ndjson_not_a_resource, ["line 2: not a FHIR resource"]),
    (
        "ndjson-invalid-resource",
        _ndjson_invalid_resource,
        ["Observation/bad-nd-v (entry 1)", "valueQuantity.value"],
    ),
    (
        "conditional-reference-matches-nothing",
        _bundle_with(
            _set(
                "encounter",
                "serviceProvider",
                {"reference": f"Organization?identifier={ORG_SYSTEM}|nope"},
            ),
            "conditional.json",
        ),
        [_label("encounter"), "conditional reference", "matches nothing"],
    ),
    (
        "code-longer-than-stored",
        _bundle_with(_set("encounter", "type.0.coding.0.code", "9" * 100), "long-code.json"),
        [f"Encounter/{BundleIds('bad').encounter}", "encounter.type_code is 100 characters long"],
    ),
    (
        "id-longer-than-64",
        _bundle_with(_set("procedure", "id", "p" * 65), "long-id.json"),
        [f"Procedure/{'p' * 65}", "procedure.id is 65 characters long"],
    ),
    (
        "subject-is-not-a-patient",
        _bundle_with(_subject_is_a_device, "device-subject.json"),
        [f"Observation/{BundleIds('bad').observation}", "no patient (subject) reference"],
    ),
]


@pytest.mark.parametrize(
    ("builder", "fragments"), [c[1:] for c in CORRUPTED], ids=[c[0] for c in CORRUPTED]
)
def test_import_paths_rejects_corrupted_input_and_changes_nothing(
    tmp_path: Path,
    engine: Engine,
    session_factory: sessionmaker[Session],
    builder: Callable[[Path], Path],
    fragments: list[str],
) -> None:
    # a database that already holds a record, so "unchanged" means something
    import_paths(session_factory, [write_json(tmp_path / "seed.json", transaction_bundle("seed"))])
    path = builder(tmp_path)
    before = table_counts(engine)

    report = import_paths(session_factory, [path])

    assert table_counts(engine) == before
    assert report.files == 1
    assert sum(report.imported.values()) == 0
    assert len(report.rejected) == 1
    rejected = report.rejected[0]
    assert set(rejected) == {"file", "reason"}
    assert rejected["file"] == str(path)
    _assert_one_line(rejected["reason"])
    for fragment in fragments:
        assert fragment in rejected["reason"]


def test_import_paths_tenth_invalid_resource_writes_none_of_the_first_nine(
    tmp_path: Path, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    bundle = transaction_bundle("ten")
    assert ENTRY_NAMES[9] == "immunization"
    entry_resource(bundle, "immunization")["status"] = {"code": "completed"}
    before = table_counts(engine)

    report = import_paths(session_factory, [write_json(tmp_path / "tenth.json", bundle)])

    assert table_counts(engine) == before
    assert (
        f"Immunization/{BundleIds('ten').immunization} (entry 9): status"
        in report.rejected[0]["reason"]
    )
    ids = BundleIds("ten")
    with session_factory() as s:
        for name in ENTRY_NAMES[:9]:
            entity = {
                "organization": Organization,
                "practitioner": Practitioner,
                "patient": Patient,
                "encounter": Encounter,
                "condition": Condition,
                "observation": Observation,
                "bp_panel": Observation,
                "procedure": Procedure,
                "medication_request": MedicationRequest,
            }[name]
            assert s.get(entity, getattr(ids, name)) is None, name
        assert s.scalar(select(func.count()).select_from(PatientIdentifier)) == 0


def test_import_paths_database_rejection_names_the_file_and_leaves_nothing(
    tmp_path: Path, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    # Two Organizations each partOf the other: every reference resolves, but no insert
    # order satisfies the foreign key, so the database refuses the unit mid-write.
    orgs = [
        {
            "resourceType": "Organization",
            "id": "cyc-a",
            "name": "A",
            "partOf": {"reference": "Organization/cyc-b"},
        },
        {
            "resourceType": "Organization",
            "id": "cyc-b",
            "name": "B",
            "partOf": {"reference": "Organization/cyc-a"},
        },
    ]
    import_paths(session_factory, [write_json(tmp_path / "seed.json", transaction_bundle("cyc"))])
    path = write_ndjson(tmp_path / "Organization.ndjson", orgs)
    before = table_counts(engine)

    report = import_paths(session_factory, [path])

    assert table_counts(engine) == before
    assert sum(report.imported.values()) == 0
    assert report.rejected[0]["file"] == str(path)
    _assert_one_line(report.rejected[0]["reason"])
    assert report.rejected[0]["reason"].startswith("rejected by the database: ")
    assert "foreign key" in report.rejected[0]["reason"].lower()


# --------------------------------------------------------------------------- CLI


def test_cli_import_json_reports_files_imported_skipped_rejected_seconds(
    tmp_path: Path, cli_db_url: str
) -> None:
    folder = tmp_path / "cli"
    write_json(folder / "a.json.gz", transaction_bundle("cli"))
    (folder / "broken.json").write_text('{"resourceType": "Bundle", "entry": [')

    result = CliRunner().invoke(app, ["import", str(folder), "--db", cli_db_url, "--json"])

    # the good file is imported; the rejected one makes the exit code EXIT_REJECTED
    assert result.exit_code == EXIT_REJECTED, result.output
    data = json.loads(result.stdout)
    assert {"files", "imported", "skipped", "rejected", "seconds"} <= set(data)
    assert data["files"] == 2
    assert data["imported"] == BUNDLE_COUNTS
    assert data["skipped"] == {"CarePlan": 1}
    assert data["rejected"] == [
        {"file": str(folder / "broken.json"), "reason": data["rejected"][0]["reason"]}
    ]
    assert data["rejected"][0]["reason"].startswith("invalid JSON at line 1")
    assert isinstance(data["seconds"], float) and data["seconds"] >= 0
    counts = url_table_counts(cli_db_url)
    assert counts["patient"] == 1 and counts["claim_item"] == 2

    again = CliRunner().invoke(app, ["import", str(folder), "--db", cli_db_url, "--json"])
    assert again.exit_code == EXIT_REJECTED
    assert json.loads(again.stdout)["imported"] == BUNDLE_COUNTS
    assert sum(json.loads(again.stdout)["created"].values()) == 0
    assert url_table_counts(cli_db_url) == counts


def test_cli_import_only_rejections_exits_non_zero_and_names_file_and_resource(
    tmp_path: Path, cli_db_url: str
) -> None:
    bundle = transaction_bundle("clibad")
    entry_resource(bundle, "observation")["valueQuantity"]["value"] = "abc"
    path = write_json(tmp_path / "bad-obs.json", bundle)

    result = CliRunner().invoke(app, ["import", str(path), "--db", cli_db_url])

    assert result.exit_code == EXIT_REJECTED
    # (rich wraps long lines of the human summary at the console width)
    said = " ".join(result.stderr.split())
    assert (
        f"rejected {path}: Observation/{BundleIds('clibad').observation} (entry 5): "
        "valueQuantity.value"
    ) in said
    assert url_table_counts(cli_db_url)["observation"] == 0

    as_json = CliRunner().invoke(app, ["import", str(path), "--db", cli_db_url, "--json"])
    assert as_json.exit_code == EXIT_REJECTED
    rejected = json.loads(as_json.stdout)["rejected"]
    assert [r["file"] for r in rejected] == [str(path)]
    _assert_one_line(rejected[0]["reason"])
    assert rejected[0]["reason"].startswith(
        f"Observation/{BundleIds('clibad').observation} (entry 5)"
    )


def test_cli_import_missing_path_exits_non_zero_with_one_line_reason(tmp_path: Path) -> None:
    db_file = tmp_path / "never.db"
    missing = tmp_path / "no-such-folder"

    result = CliRunner().invoke(
        app, ["import", str(missing), "--db", f"sqlite:///{db_file}", "--json"]
    )

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"error: {missing}: no such file or folder"]
    assert not db_file.exists()


# --------------------------------------------------------------------------- hooks


def test_import_hook_sees_resolved_resources_and_can_reject_the_unit(
    tmp_path: Path, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    from healthos_core.fhir.importer import register_import_hook, unregister_import_hook

    seen: list[str] = []

    def hook(session: Session, resources: list[dict], source: str) -> None:
        seen.extend(r["subject"]["reference"] for r in resources)
        if any(r["id"].endswith("reject") for r in resources):
            raise FhirValidationError("hook says no", source=source)

    register_import_hook("Condition", hook)
    register_import_hook("Condition", hook)  # idempotent
    try:
        path = write_json(tmp_path / "a.json", transaction_bundle("a"))
        report = import_paths(session_factory, [path])
        assert report.rejected == []
        assert len(seen) == 1 and seen[0].startswith("Patient/")
        bundle = transaction_bundle("b")
        for entry in bundle["entry"]:
            if entry["resource"]["resourceType"] == "Condition":
                entry["resource"]["id"] = "cond-reject"
        before = table_counts(engine)
        report = import_paths(session_factory, [write_json(tmp_path / "b.json", bundle)])
        assert [r["reason"] for r in report.rejected] == ["hook says no"]
        assert table_counts(engine) == before
    finally:
        unregister_import_hook("Condition", hook)


def test_iter_source_files_orders_a_folder_referents_first(tmp_path: Path) -> None:
    from healthos_core.fhir.importer import iter_source_files

    folder = tmp_path / "export"
    folder.mkdir()
    for name, resource_type in [
        ("a.ndjson", "ClaimResponse"),
        ("b.ndjson", "Claim"),
        ("c.ndjson", "Coverage"),
        ("d.ndjson", "Organization"),
        ("e.ndjson", "Patient"),
    ]:
        (folder / name).write_text(json.dumps({"resourceType": resource_type}) + "\n")
    (folder / "z.json").write_text("{}")
    names = [p.name for p in iter_source_files([folder])]
    assert names == ["d.ndjson", "z.json", "e.ndjson", "c.ndjson", "b.ndjson", "a.ndjson"]
