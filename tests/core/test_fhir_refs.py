"""FHIR helpers (references, codings, dates, money) and reference resolution in a unit."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session

from healthos_core.errors import FhirValidationError, InvalidInputError
from healthos_core.fhir.importer import import_document, resolve_references
from healthos_core.fhir.refs import (
    coded_columns,
    first_coding,
    format_datetime,
    money,
    parse_date,
    parse_datetime,
    parse_ref,
    period,
    ref,
    ref_id,
)
from tests.core.fhir_factories import (
    ORG_SYSTEM,
    BundleIds,
    observation,
    organization,
    patient,
    transaction_bundle,
)

# --------------------------------------------------------------------------- refs.py


def test_ref_builds_type_slash_id() -> None:
    assert ref("Patient", "p-1") == "Patient/p-1"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Encounter/abc", ("Encounter", "abc")),
        ("http://fhir.example.org/r4/Patient/123", ("Patient", "123")),
        ("Patient/123/_history/4", ("Patient", "123")),
        ("https://x.org/fhir/Observation/o.1/_history/2", ("Observation", "o.1")),
    ],
)
def test_parse_ref_splits_type_and_id(reference: str, expected: tuple[str, str]) -> None:
    assert parse_ref(reference) == expected


@pytest.mark.parametrize("reference", ["abc", "Patient/", "patient/1", "", "/1"])
def test_parse_ref_rejects_non_type_id(reference: str) -> None:
    with pytest.raises(InvalidInputError, match="not of the form"):
        parse_ref(reference)


@pytest.mark.parametrize(
    ("value", "resource_type", "expected"),
    [
        ({"reference": "Patient/p1"}, None, "p1"),
        ({"reference": "Patient/p1"}, "Patient", "p1"),
        ({"reference": "Group/g1"}, "Patient", None),
        ({"reference": "Device/d1"}, "Patient", None),
        ({"reference": "EpisodeOfCare/e1"}, "Encounter", None),
        ({"reference": "#contained"}, None, None),
        ({"display": "no reference"}, None, None),
        ({}, None, None),
        (None, "Patient", None),
    ],
)
def test_ref_id_returns_id_of_the_wanted_type_only(
    value: dict[str, Any] | None, resource_type: str | None, expected: str | None
) -> None:
    assert ref_id(value, resource_type) == expected


def test_first_coding_uses_text_when_coding_has_no_display() -> None:
    concept = {"coding": [{"system": "s", "code": "c"}], "text": "Shown"}
    assert first_coding(concept) == {"system": "s", "code": "c", "display": "Shown"}
    assert first_coding({"text": "only text"}) == {"display": "only text"}
    assert first_coding(None) == {}
    assert first_coding({"coding": []}) == {}


def test_coded_columns_maps_first_coding_and_caps_display() -> None:
    concept = {"coding": [{"system": "http://loinc.org", "code": "8302-2", "display": "x" * 600}]}
    columns = coded_columns(concept)
    assert columns["code_system"] == "http://loinc.org"
    assert columns["code"] == "8302-2"
    assert columns["display"] == "x" * 512
    assert coded_columns(None) == {"code_system": None, "code": None, "display": None}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2011-10-14T23:37:54+02:00", dt.datetime(2011, 10, 14, 21, 37, 54, tzinfo=dt.UTC)),
        ("2011-10-14T23:37:54Z", dt.datetime(2011, 10, 14, 23, 37, 54, tzinfo=dt.UTC)),
        (
            "2011-10-14T23:37:54.530+00:00",
            dt.datetime(2011, 10, 14, 23, 37, 54, 530000, tzinfo=dt.UTC),
        ),
        ("2011-10-14T23:37:54", dt.datetime(2011, 10, 14, 23, 37, 54, tzinfo=dt.UTC)),
        ("2011-10-14", dt.datetime(2011, 10, 14, tzinfo=dt.UTC)),
        ("1956-08", dt.datetime(1956, 8, 1, tzinfo=dt.UTC)),
        ("1914", dt.datetime(1914, 1, 1, tzinfo=dt.UTC)),
    ],
)
def test_parse_datetime_returns_aware_utc(text: str, expected: dt.datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("text", ["2024-13-45", "yesterday", "2024-02-30T10:00:00Z", "20x4"])
def test_parse_datetime_rejects_non_dates(text: str) -> None:
    with pytest.raises(InvalidInputError, match="not a FHIR date"):
        parse_datetime(text)


def test_parse_datetime_and_date_pass_none_through() -> None:
    assert parse_datetime(None) is None
    assert parse_date(None) is None
    assert format_datetime(None) is None


def test_parse_date_keeps_the_calendar_date() -> None:
    assert parse_date("1961-04-12") == dt.date(1961, 4, 12)


def test_format_datetime_round_trips_through_parse() -> None:
    value = dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.UTC)
    assert parse_datetime(format_datetime(value)) == value


def test_money_is_exact_decimal_to_the_cent() -> None:
    assert money({"value": 392.6, "currency": "USD"}) == (Decimal("392.60"), "USD")
    assert money({"value": 0.1 + 0.2, "currency": "EUR"}) == (Decimal("0.30"), "EUR")
    assert money({"value": 125}) == (Decimal("125.00"), None)
    assert money(None) == (None, None)
    assert money({"currency": "USD"}) == (None, None)


def test_money_rejects_a_non_number() -> None:
    with pytest.raises(InvalidInputError, match="not a number"):
        money({"value": "abc", "currency": "USD"})


def test_period_returns_start_and_end() -> None:
    start, end = period({"start": "2024-03-01T09:00:00+00:00", "end": "2024-03-01T13:30:00+02:00"})
    assert start == dt.datetime(2024, 3, 1, 9, tzinfo=dt.UTC)
    assert end == dt.datetime(2024, 3, 1, 11, 30, tzinfo=dt.UTC)
    assert period(None) == (None, None)
    assert period({"start": "2024-03-01"}) == (dt.datetime(2024, 3, 1, tzinfo=dt.UTC), None)


# --------------------------------------------------------------------------- resolve_references


def _entries(bundle: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    return [(e.get("fullUrl"), e["resource"]) for e in copy.deepcopy(bundle)["entry"]]


def test_resolve_references_rewrites_urn_uuid_to_type_id(session: Session) -> None:
    ids = BundleIds("r1")
    entries = _entries(transaction_bundle("r1"))
    resolve_references(session, entries, source="b.json")
    by_type = {(r["resourceType"], r["id"]): r for _, r in entries}
    obs = by_type[("Observation", ids.observation)]
    assert obs["subject"] == {"reference": ids.ref("patient")}
    assert obs["encounter"] == {"reference": ids.ref("encounter")}
    report = by_type[("DiagnosticReport", ids.diagnostic_report)]
    assert [r["reference"] for r in report["result"]] == [
        ids.ref("bp_panel"),
        ids.ref("observation"),
    ]
    claim = by_type[("Claim", ids.claim)]
    assert claim["diagnosis"][0]["diagnosisReference"] == {"reference": ids.ref("condition")}
    assert claim["item"][0]["encounter"] == [{"reference": ids.ref("encounter")}]
    eob = by_type[("ExplanationOfBenefit", ids.eob)]
    # references inside contained resources are resolved; contained references are kept
    assert eob["contained"][0]["beneficiary"] == {"reference": ids.ref("patient")}
    assert eob["insurance"][0]["coverage"] == {"reference": "#coverage"}
    assert "urn:uuid:" not in repr([r for _, r in entries])


def test_resolve_references_accepts_type_id_and_absolute_urls_within_the_unit(
    session: Session,
) -> None:
    entries: list[tuple[str | None, dict[str, Any]]] = [
        (None, patient("p-abs")),
        (None, observation("o-1", subject="http://fhir.example.org/r4/Patient/p-abs")),
        (None, observation("o-2", subject="Patient/p-abs/_history/3")),
    ]
    resolve_references(session, entries, source="x.ndjson")
    assert entries[1][1]["subject"] == {"reference": "Patient/p-abs"}
    assert entries[2][1]["subject"] == {"reference": "Patient/p-abs"}


def test_resolve_references_resolves_conditional_reference_within_the_unit(
    session: Session,
) -> None:
    ids = BundleIds("r2")
    entries = _entries(transaction_bundle("r2", conditional_organization=True))
    encounter = next(r for _, r in entries if r["resourceType"] == "Encounter")
    assert encounter["serviceProvider"]["reference"].startswith(
        f"Organization?identifier={ORG_SYSTEM}|"
    )
    resolve_references(session, entries, source="b.json")
    assert encounter["serviceProvider"] == {"reference": ids.ref("organization")}


def test_resolve_references_decodes_percent_encoded_conditional_reference(session: Session) -> None:
    org = organization("org-pct")
    value = org["identifier"][0]["value"]
    encoded = (
        f"Organization?identifier={ORG_SYSTEM.replace(':', '%3A').replace('/', '%2F')}%7C{value}"
    )
    pat = patient("p-pct", organization_ref=encoded)
    entries: list[tuple[str | None, dict[str, Any]]] = [(None, org), (None, pat)]
    resolve_references(session, entries, source="b.json")
    assert pat["managingOrganization"] == {"reference": "Organization/org-pct"}


def test_resolve_references_conditional_reference_with_wrong_system_matches_nothing(
    session: Session,
) -> None:
    org = organization("org-sys")
    value = org["identifier"][0]["value"]
    pat = patient("p-sys", organization_ref=f"Organization?identifier=urn:other|{value}")
    with pytest.raises(FhirValidationError, match=r"conditional reference .* matches nothing"):
        resolve_references(session, [(None, org), (None, pat)], source="b.json")


def test_resolve_references_rejects_urn_not_in_the_bundle(session: Session) -> None:
    obs = observation("o-lost", subject="urn:uuid:00000000-0000-4000-8000-000000000000")
    with pytest.raises(FhirValidationError) as caught:
        resolve_references(
            session, [("urn:uuid:11111111-1111-4111-8111-111111111111", obs)], source="f.json"
        )
    assert caught.value.source == "f.json"
    assert caught.value.reason == (
        "Observation/o-lost (entry 0): reference urn:uuid:00000000-0000-4000-8000-000000000000 "
        "is not in the bundle"
    )


def test_resolve_references_looks_up_the_database(session: Session) -> None:
    import_document(
        session,
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": patient("p-in-db")}],
        },
    )
    entries: list[tuple[str | None, dict[str, Any]]] = [
        (None, observation("o-db", subject="Patient/p-in-db"))
    ]
    resolve_references(session, entries, source="o.ndjson")
    assert entries[0][1]["subject"] == {"reference": "Patient/p-in-db"}

    missing: list[tuple[str | None, dict[str, Any]]] = [
        (None, observation("o-none", subject="Patient/x"))
    ]
    with pytest.raises(
        FhirValidationError, match=r"Patient/x is neither in the bundle nor in the database"
    ):
        resolve_references(session, missing, source="o.ndjson")


def test_resolve_references_rejects_reference_to_a_type_never_stored(session: Session) -> None:
    obs = observation("o-cp", subject="Patient/p-any")
    obs["basedOn"] = [{"reference": "CarePlan/cp-1"}]
    with pytest.raises(FhirValidationError, match="CarePlan/cp-1 is neither"):
        resolve_references(session, [(None, patient("p-any")), (None, obs)], source="o.ndjson")
