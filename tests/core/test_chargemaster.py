"""Chargemaster: CSV loading (all-or-nothing), effective-dated lookup, derivation from claims."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.billing.chargemaster import (
    DERIVED_EFFECTIVE_FROM,
    derive_chargemaster_from_claims,
    find_price,
    load_chargemaster_csv,
    price,
)
from healthos_core.billing.entities import ChargemasterEntry, Claim
from healthos_core.errors import InvalidInputError, NotFoundError, PricingError
from healthos_core.settings import get_settings
from tests.conftest import table_counts
from tests.factories import (
    CVX,
    RXNORM,
    SNOMED,
    chargemaster_csv,
    make_chargemaster,
    make_claim,
    make_encounter,
    make_explanation_of_benefit,
    make_medication_request,
    make_organization,
    make_patient,
)


def entries(session: Session) -> dict[tuple[str, str, dt.date], ChargemasterEntry]:
    return {
        (e.code_system, e.code, e.effective_from): e
        for e in session.scalars(select(ChargemasterEntry))
    }


def write(tmp_path: Path, text: str, name: str = "cdm.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- CSV loading

GOOD_LINES = [
    f"{SNOMED},73761001,Colonoscopy,1500.00,USD,0360,,2024-01-01,",
    f"{SNOMED},185349003,Encounter for check up,125,USD,510,,2024-01-01,2025-01-01",
    f'{CVX},140,"Influenza, seasonal, injectable",140.52,usd,0771,exempt,2024-01-01,',
    "http://loinc.org,2345-7,Glucose [Mass/volume] in Serum or Plasma,12.5,,0300,laboratory,"
    "2024-01-01,",
]


def test_load_chargemaster_csv_inserts_validated_rows(session: Session, tmp_path: Path) -> None:
    path = write(tmp_path, chargemaster_csv(GOOD_LINES))
    with session.begin():
        assert load_chargemaster_csv(session, path) == 4

    loaded = entries(session)
    colonoscopy = loaded[(SNOMED, "73761001", dt.date(2024, 1, 1))]
    assert colonoscopy.unit_price == Decimal("1500.00")
    assert isinstance(colonoscopy.unit_price, Decimal)
    assert colonoscopy.revenue_code == "0360"
    assert colonoscopy.effective_to is None
    checkup = loaded[(SNOMED, "185349003", dt.date(2024, 1, 1))]
    assert checkup.unit_price == Decimal("125.00")
    assert checkup.revenue_code == "0510"  # zero-padded NUBC code
    assert checkup.effective_to == dt.date(2025, 1, 1)
    flu = loaded[(CVX, "140", dt.date(2024, 1, 1))]
    assert flu.description == "Influenza, seasonal, injectable"
    assert flu.currency == "USD"  # normalised to upper case
    assert flu.tax_category == "exempt"
    glucose = loaded[("http://loinc.org", "2345-7", dt.date(2024, 1, 1))]
    assert glucose.currency == get_settings().currency  # empty currency → settings
    assert glucose.unit_price == Decimal("12.50")


def test_load_chargemaster_csv_accepts_text_and_binary_streams(session: Session) -> None:
    text = chargemaster_csv(GOOD_LINES[:1])
    with session.begin():
        assert load_chargemaster_csv(session, io.StringIO(text)) == 1
        assert load_chargemaster_csv(session, io.BytesIO(("\ufeff" + text).encode())) == 1
    assert len(entries(session)) == 1  # second load updated the same row


def test_load_chargemaster_csv_is_idempotent_and_updates(
    session: Session, engine: Engine, tmp_path: Path
) -> None:
    path = write(tmp_path, chargemaster_csv(GOOD_LINES))
    with session.begin():
        load_chargemaster_csv(session, path)
    counts = table_counts(engine)
    with session.begin():
        assert load_chargemaster_csv(session, path) == 4
    assert table_counts(engine) == counts

    changed = write(
        tmp_path,
        chargemaster_csv(
            [f"{SNOMED},73761001,Colonoscopy (revised),1612.35,USD,0360,,2024-01-01,"]
        ),
        "changed.csv",
    )
    with session.begin():
        assert load_chargemaster_csv(session, changed) == 1
    assert table_counts(engine) == counts
    session.expire_all()
    entry = entries(session)[(SNOMED, "73761001", dt.date(2024, 1, 1))]
    assert entry.unit_price == Decimal("1612.35")
    assert entry.description == "Colonoscopy (revised)"


@pytest.mark.parametrize(
    ("bad_line", "column", "fragment"),
    [
        (f"{SNOMED},X1,Bad price,12.x,USD,,,2024-01-01,", "unit_price", "is not a number"),
        (f"{SNOMED},X1,Negative,-5.00,USD,,,2024-01-01,", "unit_price", "is negative"),
        (f"{SNOMED},X1,No price,,USD,,,2024-01-01,", "unit_price", "is empty"),
        (f"{SNOMED},X1,Sub-cent,1.005,USD,,,2024-01-01,", "unit_price", "more than 2 decimal"),
        (f"{SNOMED},X1,Infinite,Infinity,USD,,,2024-01-01,", "unit_price", "not a finite"),
        (f"{SNOMED},X1,Bad currency,10,US$,,,2024-01-01,", "currency", "ISO 4217"),
        (
            f"{SNOMED},X1,Euro,10,EUR,,,2024-01-01,",
            "currency",
            "'EUR' is refused: HealthOS keeps its money in USD",
        ),
        (
            f"{SNOMED},X1,No currency,10,XXX,,,2024-01-01,",
            "currency",
            "'XXX' is refused: HealthOS keeps its money in USD",
        ),
        (f"{SNOMED},X1,Bad date,10,USD,,,01/02/2024,", "effective_from", "YYYY-MM-DD"),
        (f"{SNOMED},X1,No start,10,USD,,,,", "effective_from", "is empty"),
        (f"{SNOMED},X1,Bad end,10,USD,,,2024-01-01,2024-13-01", "effective_to", "YYYY-MM-DD"),
        (f"{SNOMED},X1,End first,10,USD,,,2024-01-01,2024-01-01", "effective_to", "not after"),
        (f"{SNOMED},,No code,10,USD,,,2024-01-01,", "code", "is empty"),
        (f"{SNOMED},X1,Bad revenue,10,USD,ABC,,2024-01-01,", "revenue_code", "NUBC"),
    ],
)
def test_load_chargemaster_csv_rejects_bad_cell_and_writes_nothing(
    session: Session,
    engine: Engine,
    tmp_path: Path,
    bad_line: str,
    column: str,
    fragment: str,
) -> None:
    path = write(tmp_path, chargemaster_csv([*GOOD_LINES, bad_line]))
    before = table_counts(engine)
    with pytest.raises(InvalidInputError) as raised:
        with session.begin():
            load_chargemaster_csv(session, path)
    message = str(raised.value)
    assert str(path) in message
    assert "line 6" in message  # header is line 1; the bad row is the fifth data row
    assert f"column '{column}'" in message
    assert fragment in message
    assert "nothing was written" in message
    assert table_counts(engine) == before


def test_load_chargemaster_csv_reports_every_problem(session: Session, engine: Engine) -> None:
    text = chargemaster_csv(
        [
            f"{SNOMED},A,One,abc,USD,,,2024-01-01,",
            GOOD_LINES[0],
            f"{SNOMED},B,Two,10,USD,,,2024-02-30,",
            f"{SNOMED},73761001,Duplicate key,99,USD,,,2024-01-01,",
            f"{SNOMED},C,Too many cells,10,USD,,,2024-01-01,,extra",
        ]
    )
    before = table_counts(engine)
    stream = io.StringIO(text)
    stream.name = "upload.csv"  # type: ignore[misc]
    with pytest.raises(InvalidInputError) as raised:
        load_chargemaster_csv(session, stream)
    session.rollback()
    message = str(raised.value)
    assert "4 problems" in message
    assert "upload.csv, line 2, column 'unit_price'" in message
    assert "upload.csv, line 4, column 'effective_from'" in message
    assert (
        "upload.csv, line 5, column 'effective_from'" in message and "already on line 3" in message
    )
    assert "upload.csv, line 6: has 10 cells" in message
    assert table_counts(engine) == before


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("code_system,code,unit_price,currency,effective_from", "missing column(s) description"),
        (
            "code_system,code,description,unit price,currency,revenue_code,tax_category,"
            "effective_from,effective_to",
            "unknown column(s) 'unit price'",
        ),
        ("", "empty file"),
    ],
)
def test_load_chargemaster_csv_rejects_bad_header(
    session: Session, engine: Engine, tmp_path: Path, header: str, fragment: str
) -> None:
    path = write(tmp_path, header + "\n" if header else "")
    before = table_counts(engine)
    with pytest.raises(InvalidInputError, match=r"cdm\.csv") as raised:
        load_chargemaster_csv(session, path)
    session.rollback()
    assert fragment in str(raised.value)
    assert table_counts(engine) == before


def test_load_chargemaster_csv_missing_file_is_not_found(session: Session, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        load_chargemaster_csv(session, tmp_path / "nope.csv")


def test_load_chargemaster_csv_header_only_loads_nothing(session: Session) -> None:
    assert load_chargemaster_csv(session, io.StringIO(chargemaster_csv([]))) == 0


# --------------------------------------------------------------------------- price lookup


@pytest.fixture
def dated_prices(session: Session) -> None:
    """Colonoscopy: 1000.00 in 2023, 1100.00 from 2024-01-01 to 2024-07-01 (exclusive)."""
    with session.begin():
        make_chargemaster(
            session,
            [
                {
                    "code": "73761001",
                    "unit_price": "1000.00",
                    "effective_from": dt.date(2023, 1, 1),
                    "effective_to": dt.date(2024, 1, 1),
                },
                {
                    "code": "73761001",
                    "unit_price": "1100.00",
                    "effective_from": dt.date(2024, 1, 1),
                    "effective_to": dt.date(2024, 7, 1),
                },
            ],
        )


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (dt.date(2023, 1, 1), Decimal("1000.00")),  # effective_from is inclusive
        (dt.date(2023, 12, 31), Decimal("1000.00")),
        (dt.date(2024, 1, 1), Decimal("1100.00")),  # effective_to is exclusive
        (dt.date(2024, 6, 30), Decimal("1100.00")),
    ],
)
def test_price_effective_dated_boundaries(
    session: Session, dated_prices: None, day: dt.date, expected: Decimal
) -> None:
    entry = price(session, code_system=SNOMED, code="73761001", on=day)
    assert entry.unit_price == expected
    assert entry.currency == "USD"


@pytest.mark.parametrize("day", [dt.date(2022, 12, 31), dt.date(2024, 7, 1)])
def test_price_outside_any_period_raises_naming_code_and_date(
    session: Session, dated_prices: None, day: dt.date
) -> None:
    with pytest.raises(PricingError) as raised:
        price(session, code_system=SNOMED, code="73761001", on=day)
    assert f"{SNOMED}|73761001" in str(raised.value)
    assert day.isoformat() in str(raised.value)
    assert find_price(session, code_system=SNOMED, code="73761001", on=day) is None


def test_price_unknown_code_raises(session: Session) -> None:
    with pytest.raises(PricingError, match=r"\|nope on 2024-01-01"):
        price(session, code_system=SNOMED, code="nope", on=dt.date(2024, 1, 1))


def test_price_latest_effective_from_wins_on_overlap(session: Session) -> None:
    with session.begin():
        make_chargemaster(
            session,
            [
                ("73761001", "900.00", dt.date(2020, 1, 1)),
                ("73761001", "950.00", dt.date(2024, 1, 1)),
            ],
        )
    assert price(
        session, code_system=SNOMED, code="73761001", on=dt.date(2023, 12, 31)
    ).unit_price == Decimal("900.00")
    assert price(
        session, code_system=SNOMED, code="73761001", on=dt.date(2024, 1, 1)
    ).unit_price == Decimal("950.00")


def test_price_accepts_aware_datetime_as_its_utc_date(session: Session, dated_prices: None) -> None:
    # 2024-01-01 01:00 in India is still 2023-12-31 in UTC.
    ist = dt.timezone(dt.timedelta(hours=5, minutes=30))
    when = dt.datetime(2024, 1, 1, 1, 0, tzinfo=ist)
    assert price(session, code_system=SNOMED, code="73761001", on=when).unit_price == Decimal(
        "1000.00"
    )
    with pytest.raises(InvalidInputError, match="naive"):
        price(session, code_system=SNOMED, code="73761001", on=dt.datetime(2024, 1, 1))


def test_price_is_per_code_system(session: Session) -> None:
    with session.begin():
        make_chargemaster(session, [{"code_system": CVX, "code": "140", "unit_price": "140.52"}])
    with pytest.raises(PricingError):
        price(session, code_system=SNOMED, code="140", on=dt.date(2024, 1, 1))


# --------------------------------------------------------------------------- derive from claims

# Values copied from the Synthea R4 bundle
# shared/data/synthea-fhir-r4/bundles/Abdul_Koepp_e925b0f3-8006-43f6-aa31-94bd215e55e7.json.gz
# (references rewritten to "Type/id" as the importer stores them).
PATIENT_ID = "018f428e-34f6-4707-8009-5ad742f901e7"
PROVIDER_ID = "4861d01f-019c-3dac-a153-8334e50919f9"
CHECKUP_1991 = "abbc5979-3aca-43fe-91a6-8065b7e4a90f"
CHECKUP_2013 = "5387227c-b388-42eb-b31b-8538872ac415"
EMERGENCY_2017 = "8b7f6202-5ddd-429b-acd1-cf3fbc1c157d"
ORTHO_2017 = "00f7b7ce-8400-4ba1-8923-aa69e2b2afaa"
IBUPROFEN_REQUEST = "288b3dc6-1b86-4447-8826-8eb2de56b933"


def coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def usd(value: float) -> dict[str, Any]:
    return {"value": value, "currency": "USD"}


def load_synthea_sample_claims(session: Session, *, with_item_prices: bool = True) -> None:
    """Four real Synthea claims, one EOB and the prescription behind the pharmacy claim.

    With ``with_item_prices=False`` the ClaimItem rows lose ``net`` (as if the importer
    had not mapped it), so prices must come from the ExplanationOfBenefit.
    """
    make_organization(session, id=PROVIDER_ID, name="PCP2375")
    patient = make_patient(
        session,
        id=PATIENT_ID,
        given="Abdul",
        family="Koepp",
        gender="male",
        birth_date=dt.date(1988, 8, 5),
        facility_id=PROVIDER_ID,
    )
    for encounter_id, class_code, type_code, start in [
        (CHECKUP_1991, "AMB", "185349003", "1991-06-07T23:37:54+00:00"),
        (CHECKUP_2013, "AMB", "185349003", "2013-10-25T23:37:54+00:00"),
        (EMERGENCY_2017, "EMER", "50849002", "2017-03-21T23:37:54+00:00"),
        (ORTHO_2017, "IMP", "183495009", "2017-03-28T23:37:54+00:00"),
    ]:
        make_encounter(
            session,
            patient=patient,
            id=encounter_id,
            class_code=class_code,
            status="finished",
            type_code=type_code,
            period_start=dt.datetime.fromisoformat(start),
        )
    make_medication_request(
        session,
        patient_id=PATIENT_ID,
        id=IBUPROFEN_REQUEST,
        encounter_id=EMERGENCY_2017,
        code_system=RXNORM,
        code="310965",
        display="Ibuprofen 200 MG Oral Tablet",
    )

    def net(value: str) -> str | None:
        return value if with_item_prices else None

    # Claim a37ffc2e…: a check-up; line 2 is a diagnosis listing (no amount).
    make_claim(
        session,
        id="a37ffc2e-7d4f-4e91-8bd9-1f22e96418bf",
        patient_id=PATIENT_ID,
        encounter_id=CHECKUP_1991,
        total="125",
        items=[
            {
                "code_system": SNOMED,
                "code": "185349003",
                "display": "Encounter for check up (procedure)",
                "encounter_id": CHECKUP_1991,
            },
            {
                "code_system": SNOMED,
                "code": "162864005",
                "display": "Body mass index 30+ - obesity (finding)",
                "diagnosis_sequence": [1],
            },
        ],
        resource={
            "resourceType": "Claim",
            "id": "a37ffc2e-7d4f-4e91-8bd9-1f22e96418bf",
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                        "code": "institutional",
                    }
                ]
            },
            "total": usd(125),
            "item": [
                {
                    "sequence": 1,
                    "productOrService": coding(
                        SNOMED, "185349003", "Encounter for check up (procedure)"
                    ),
                    "encounter": [{"reference": f"Encounter/{CHECKUP_1991}"}],
                },
                {
                    "sequence": 2,
                    "diagnosisSequence": [1],
                    "productOrService": coding(
                        SNOMED, "162864005", "Body mass index 30+ - obesity (finding)"
                    ),
                },
            ],
        },
    )
    # Claim 324243e7…: check-up + flu vaccine (CVX 140) + a procedure; total 1021.38.
    checkup_2013 = make_claim(
        session,
        id="324243e7-4ad2-41e0-abcf-1c5b09b6488d",
        patient_id=PATIENT_ID,
        encounter_id=CHECKUP_2013,
        total="1021.38",
        items=[
            # No encounter_id on the row: the encounter line is recognised from the resource.
            {
                "code_system": SNOMED,
                "code": "185349003",
                "display": "Encounter for check up (procedure)",
            },
            {
                "code_system": CVX,
                "code": "140",
                "display": "Influenza, seasonal, injectable, preservative free",
                "net": net("140.52"),
            },
            {
                "code_system": SNOMED,
                "code": "428191000124101",
                "display": "Documentation of current medications",
                "net": net("755.86"),
            },
        ],
        resource={
            "resourceType": "Claim",
            "id": "324243e7-4ad2-41e0-abcf-1c5b09b6488d",
            "total": usd(1021.38),
            "item": [
                {
                    "sequence": 1,
                    "productOrService": coding(
                        SNOMED, "185349003", "Encounter for check up (procedure)"
                    ),
                    "encounter": [{"reference": f"Encounter/{CHECKUP_2013}"}],
                },
                {
                    "sequence": 2,
                    "informationSequence": [1],
                    "productOrService": coding(
                        CVX, "140", "Influenza, seasonal, injectable, preservative free"
                    ),
                    **({"net": usd(140.52)} if with_item_prices else {}),
                },
                {
                    "sequence": 3,
                    "procedureSequence": [1],
                    "productOrService": coding(
                        SNOMED, "428191000124101", "Documentation of current medications"
                    ),
                    **({"net": usd(755.86)} if with_item_prices else {}),
                },
            ],
        },
    )
    # EOB 5217c6ae…: line 2 carries net and adjudications; line 3 only the submitted
    # adjudication here, to exercise that fallback too (the real line also has net 755.86).
    make_explanation_of_benefit(
        session,
        id="5217c6ae-032a-4968-a8af-99f555767062",
        claim=checkup_2013,
        resource={
            "resourceType": "ExplanationOfBenefit",
            "id": "5217c6ae-032a-4968-a8af-99f555767062",
            "claim": {"reference": "Claim/324243e7-4ad2-41e0-abcf-1c5b09b6488d"},
            "item": [
                {
                    "sequence": 1,
                    "productOrService": coding(
                        SNOMED, "185349003", "Encounter for check up (procedure)"
                    ),
                },
                {
                    "sequence": 2,
                    "productOrService": coding(CVX, "140", "Influenza, seasonal"),
                    "net": usd(140.52),
                    "adjudication": [
                        {
                            "category": {
                                "coding": [
                                    {
                                        "system": "https://bluebutton.cms.gov/resources/codesystem/adjudication",
                                        "code": "https://bluebutton.cms.gov/resources/variables/line_coinsrnc_amt",
                                    }
                                ]
                            },
                            "amount": usd(28.104000000000003),
                        },
                    ],
                },
                {
                    "sequence": 3,
                    "productOrService": coding(
                        SNOMED, "428191000124101", "Documentation of current medications"
                    ),
                    "adjudication": [
                        {
                            "category": {
                                "coding": [
                                    {
                                        "system": "https://bluebutton.cms.gov/resources/codesystem/adjudication",
                                        "code": "https://bluebutton.cms.gov/resources/variables/line_prvdr_pmt_amt",
                                    }
                                ]
                            },
                            "amount": usd(604.688),
                        },
                        {
                            "category": {
                                "coding": [
                                    {
                                        "system": "https://bluebutton.cms.gov/resources/codesystem/adjudication",
                                        "code": "https://bluebutton.cms.gov/resources/variables/line_sbmtd_chrg_amt",
                                    }
                                ]
                            },
                            "amount": usd(755.86),
                        },
                    ],
                },
            ],
        },
    )
    # Claim 364b3d5f…: inpatient orthopaedic admission + knee manipulation; total 16022.33.
    make_claim(
        session,
        id="364b3d5f-77bd-4a67-b071-e01fd6f2d1ff",
        patient_id=PATIENT_ID,
        encounter_id=ORTHO_2017,
        total="16022.33",
        items=[
            {
                "code_system": SNOMED,
                "code": "183495009",
                "display": "Non-urgent orthopedic admission",
                "encounter_id": ORTHO_2017,
            },
            {
                "code_system": SNOMED,
                "code": "699253003",
                "display": "Surgical manipulation of joint of knee",
                "net": "15947.33",
            },
        ],
        resource={
            "resourceType": "Claim",
            "total": usd(16022.33),
            "item": [
                {
                    "sequence": 1,
                    "productOrService": coding(
                        SNOMED, "183495009", "Non-urgent orthopedic admission"
                    ),
                    "encounter": [{"reference": f"Encounter/{ORTHO_2017}"}],
                },
                {
                    "sequence": 2,
                    "procedureSequence": [1],
                    "net": usd(15947.33),
                    "productOrService": coding(
                        SNOMED, "699253003", "Surgical manipulation of joint of knee"
                    ),
                },
            ],
        },
    )
    # Claim 0537a347…: pharmacy claim; its only item is the ER encounter code, the total
    # (255) is the cost of the prescribed ibuprofen.
    make_claim(
        session,
        id="0537a347-9720-4cf7-81d9-178e9c2a220c",
        patient_id=PATIENT_ID,
        encounter_id=EMERGENCY_2017,
        type_code="pharmacy",
        total="255",
        items=[
            {
                "code_system": SNOMED,
                "code": "50849002",
                "display": "Emergency room admission (procedure)",
                "encounter_id": EMERGENCY_2017,
            },
        ],
        resource={
            "resourceType": "Claim",
            "total": usd(255),
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                        "code": "pharmacy",
                    }
                ]
            },
            "prescription": {"reference": f"MedicationRequest/{IBUPROFEN_REQUEST}"},
            "item": [
                {
                    "sequence": 1,
                    "productOrService": coding(
                        SNOMED, "50849002", "Emergency room admission (procedure)"
                    ),
                    "encounter": [{"reference": f"Encounter/{EMERGENCY_2017}"}],
                }
            ],
        },
    )


EXPECTED_SYNTHEA_PRICES = {
    (SNOMED, "185349003"): Decimal("125.00"),  # visit fee = total − itemised lines, twice
    (CVX, "140"): Decimal("140.52"),
    (SNOMED, "428191000124101"): Decimal("755.86"),
    (SNOMED, "183495009"): Decimal("75.00"),  # Synthea's inpatient encounter base cost
    (SNOMED, "699253003"): Decimal("15947.33"),
    (RXNORM, "310965"): Decimal("255.00"),  # pharmacy total → the prescribed drug
}


@pytest.mark.parametrize("with_item_prices", [True, False], ids=["claim-net", "eob-fallback"])
def test_derive_chargemaster_from_real_synthea_claims(
    session: Session, with_item_prices: bool
) -> None:
    with session.begin():
        load_synthea_sample_claims(session, with_item_prices=with_item_prices)
        written = derive_chargemaster_from_claims(session)

    assert written == len(EXPECTED_SYNTHEA_PRICES)
    derived = {(e.code_system, e.code): e for e in session.scalars(select(ChargemasterEntry))}
    assert {k: e.unit_price for k, e in derived.items()} == EXPECTED_SYNTHEA_PRICES
    for entry in derived.values():
        assert entry.currency == "USD"
        assert entry.effective_from == DERIVED_EFFECTIVE_FROM
        assert entry.effective_to is None
    # Not priced: the diagnosis listing, and the ER code that only appears on the pharmacy claim.
    assert (SNOMED, "162864005") not in derived
    assert (SNOMED, "50849002") not in derived
    assert derived[(RXNORM, "310965")].description == "Ibuprofen 200 MG Oral Tablet"
    # The derived visit fee prices an encounter of that type on any historical date.
    assert price(
        session, code_system=SNOMED, code="185349003", on=dt.date(1991, 6, 7)
    ).unit_price == Decimal("125.00")


def test_derive_chargemaster_is_idempotent(session: Session, engine: Engine) -> None:
    with session.begin():
        load_synthea_sample_claims(session)
        first = derive_chargemaster_from_claims(session)
    counts = table_counts(engine)
    with session.begin():
        assert derive_chargemaster_from_claims(session) == first
    assert table_counts(engine) == counts


def test_derive_chargemaster_takes_median_per_unit_price(session: Session) -> None:
    with session.begin():
        patient = make_patient(session)
        for net, quantity in [("100.00", None), ("200.00", None), ("3000.00", "2"), ("90", "1")]:
            make_claim(
                session,
                patient_id=patient.id,
                total=net,
                items=[
                    {
                        "code_system": SNOMED,
                        "code": "X",
                        "display": "Thing",
                        "net": net,
                        "quantity": quantity,
                    }
                ],
            )
        # Even count: median is the mean of the middle two, rounded half-up to the cent.
        for net in ["10.00", "10.01"]:
            make_claim(
                session,
                patient_id=patient.id,
                total=net,
                items=[{"code_system": SNOMED, "code": "Y", "net": net}],
            )
        # unit_price wins over net/quantity when given.
        make_claim(
            session,
            patient_id=patient.id,
            total="30",
            items=[
                {
                    "code_system": SNOMED,
                    "code": "Z",
                    "unit_price": "7.50",
                    "quantity": "4",
                    "net": "30",
                }
            ],
        )
        derive_chargemaster_from_claims(session, effective_from=dt.date(2024, 1, 1))

    derived = {e.code: e for e in session.scalars(select(ChargemasterEntry))}
    assert derived["X"].unit_price == Decimal("150.00")  # per unit: 90, 100, 200, 1500
    assert derived["Y"].unit_price == Decimal("10.01")  # (10.00 + 10.01) / 2 = 10.005
    assert derived["Z"].unit_price == Decimal("7.50")
    assert derived["X"].effective_from == dt.date(2024, 1, 1)
    assert derived["X"].description == "Thing"


def test_derive_chargemaster_uses_only_the_ledger_currency_and_skips_void_claims(
    session: Session,
) -> None:
    with session.begin():
        patient = make_patient(session)
        for net, currency in [("100", "USD"), ("8000", "INR"), ("9000", "INR")]:
            make_claim(
                session,
                patient_id=patient.id,
                total=net,
                currency=currency,
                items=[{"code_system": SNOMED, "code": "X", "net": net}],
            )
        make_claim(  # priced only in another currency: not derived
            session,
            patient_id=patient.id,
            total="700",
            currency="INR",
            items=[{"code_system": SNOMED, "code": "ONLY-INR", "net": "700"}],
        )
        make_claim(
            session,
            patient_id=patient.id,
            total="5",
            status="entered-in-error",
            items=[{"code_system": SNOMED, "code": "VOID", "net": "5"}],
        )
        make_claim(
            session,
            patient_id=patient.id,
            total="5",
            use="preauthorization",
            items=[{"code_system": SNOMED, "code": "PREAUTH", "net": "5"}],
        )
        assert derive_chargemaster_from_claims(session) == 1

    (entry,) = session.scalars(select(ChargemasterEntry))
    # most observations of X are in INR, but the ledger keeps USD: only USD prices count
    assert (entry.code, entry.currency, entry.unit_price) == ("X", "USD", Decimal("100.00"))


def test_derive_chargemaster_keeps_curated_revenue_code(session: Session) -> None:
    with session.begin():
        make_chargemaster(
            session,
            [
                {
                    "code": "X",
                    "unit_price": "1",
                    "revenue_code": "0360",
                    "effective_from": DERIVED_EFFECTIVE_FROM,
                }
            ],
        )
        patient = make_patient(session)
        make_claim(
            session,
            patient_id=patient.id,
            total="50",
            items=[{"code_system": SNOMED, "code": "X", "net": "50"}],
        )
        derive_chargemaster_from_claims(session)
    (entry,) = session.scalars(select(ChargemasterEntry))
    assert (entry.unit_price, entry.revenue_code) == (Decimal("50.00"), "0360")


def test_derive_chargemaster_with_no_claims_writes_nothing(session: Session) -> None:
    assert derive_chargemaster_from_claims(session) == 0
    assert session.scalar(select(func.count()).select_from(Claim)) == 0


def test_derived_entries_survive_commit_on_a_fresh_session(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    with session.begin():
        load_synthea_sample_claims(session)
        derive_chargemaster_from_claims(session)
    with session_factory() as fresh:
        entry = price(fresh, code_system=CVX, code="140", on=dt.date(2013, 10, 25))
        assert entry.unit_price == Decimal("140.52")
        assert str(entry.unit_price) == "140.52"
