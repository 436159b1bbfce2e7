"""Remittance posting: ClaimResponses with CARC/RARC into the ledger, all or nothing."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from healthos_core.billing.entities import Claim, ClaimResponse, ClaimStatusHistory
from healthos_core.billing.ledger import (
    JournalEntry,
    account_balance,
    claim_open_balance,
    patient_ar,
    payer_ar,
    trial_balance,
)
from healthos_core.billing.remittance import (
    ADJUDICATION_SYSTEM,
    CARC_SYSTEM,
    GROUP_CODE_EXTENSION,
    HOSPITAL_ADJUDICATION_SYSTEM,
    RARC_SYSTEM,
    REMARK_CODE_EXTENSION,
    ClaimResponseAdjudication,
    carc_codes,
    post_835,
    post_claim_response,
    post_claim_responses,
    rarc_codes,
)
from healthos_core.errors import FhirValidationError
from healthos_core.events import EventBus
from healthos_core.fhir.importer import import_document, import_paths
from healthos_core.outbox import OutboxEvent, OutboxRecorder
from healthos_core.settings import get_settings
from tests.conftest import table_counts
from tests.factories import make_organization, make_patient, new_id

#: Imported Claims and ClaimResponses post only where the live path is wired.
pytestmark = pytest.mark.usefixtures("live_path")

PAYER = "payer-test-ppo"
SERVICE = "2021-03-01"


# --------------------------------------------------------------------------- factories


def fhir_claim(
    claim_id: str,
    patient_id: str,
    nets: list[str],
    *,
    payer: str = PAYER,
    related: str | None = None,
    created: str = "2021-03-02T10:00:00+00:00",
    pcn: str | None = None,
) -> dict[str, Any]:
    """A FHIR institutional Claim to ``payer`` with one line per net amount."""
    claim: dict[str, Any] = {
        "resourceType": "Claim",
        "id": claim_id,
        "identifier": [
            {
                "system": "https://hospital-os.example/fhir/sid/patient-control-number",
                "value": pcn or claim_id[:20],
            }
        ],
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "institutional",
                }
            ]
        },
        "use": "claim",
        "patient": {"reference": f"Patient/{patient_id}"},
        "billablePeriod": {
            "start": f"{SERVICE}T09:00:00+00:00",
            "end": f"{SERVICE}T10:00:00+00:00",
        },
        "created": created,
        "insurer": {"reference": f"Organization/{payer}"},
        "provider": {"display": "Synthetic General Hospital"},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "Test PPO"}}],
        "item": [
            {
                "sequence": n,
                "productOrService": {
                    "coding": [{"system": "http://snomed.info/sct", "code": f"10{n}"}]
                },
                "servicedDate": SERVICE,
                "net": {"value": float(net), "currency": "USD"},
            }
            for n, net in enumerate(nets, start=1)
        ],
        "total": {"value": float(sum(Decimal(n) for n in nets)), "currency": "USD"},
    }
    if related:
        claim["related"] = [
            {
                "claim": {"reference": f"Claim/{related}"},
                "relationship": {"coding": [{"code": "prior"}]},
            }
        ]
    return claim


def adj(
    category: str,
    amount: str,
    *,
    carc: str | None = None,
    group: str | None = None,
    rarc: str | None = None,
) -> dict[str, Any]:
    """One adjudication in the synthea-rcm conventions."""
    system = (
        ADJUDICATION_SYSTEM
        if category in ("submitted", "eligible", "benefit")
        else HOSPITAL_ADJUDICATION_SYSTEM
    )
    out: dict[str, Any] = {
        "category": {"coding": [{"system": system, "code": category}]},
        "amount": {"value": float(amount), "currency": "USD"},
    }
    if carc is not None:
        out["reason"] = {
            "coding": [{"system": CARC_SYSTEM, "code": carc}],
            "text": f"{group}-{carc}",
        }
        out["extension"] = [
            {
                "url": GROUP_CODE_EXTENSION,
                "valueCoding": {
                    "system": "https://x12.org/codes/claim-adjustment-group-codes",
                    "code": group,
                },
            }
        ]
        if rarc is not None:
            out["extension"].append(
                {"url": REMARK_CODE_EXTENSION, "valueCoding": {"system": RARC_SYSTEM, "code": rarc}}
            )
    return out


def paid_line(
    submitted: str, contractual: str, patient: str = "0", *, pr_carc: str = "2"
) -> list[dict[str, Any]]:
    """A correctly paid line: submitted = benefit + CO-45 + PR."""
    s, c, p = Decimal(submitted), Decimal(contractual), Decimal(patient)
    out = [adj("submitted", submitted), adj("eligible", str(s - c))]
    if c:
        out.append(adj("contractual", contractual, carc="45", group="CO"))
    if p:
        out.append(adj("patient-responsibility", patient, carc=pr_carc, group="PR"))
    out.append(adj("benefit", str(s - c - p)))
    return out


def denied_line(
    submitted: str, carc: str = "197", rarc: str | None = "N54"
) -> list[dict[str, Any]]:
    return [
        adj("submitted", submitted),
        adj("eligible", "0"),
        adj("denied", submitted, carc=carc, group="CO", rarc=rarc),
        adj("benefit", "0"),
    ]


def fhir_response(
    claim_id: str,
    patient_id: str,
    lines: dict[int, list[dict[str, Any]]],
    *,
    response_id: str | None = None,
    outcome: str = "complete",
    payer: str = PAYER,
    claim_level: list[dict[str, Any]] | None = None,
    error_carc: str | None = None,
    payment: str | None = None,
    disposition: str = "Processed as primary",
) -> dict[str, Any]:
    """A ClaimResponse; ``payment`` defaults to the sum of the line benefits."""
    benefit = sum(
        (
            Decimal(str(a["amount"]["value"]))
            for adjudications in lines.values()
            for a in adjudications
            if a["category"]["coding"][0]["code"] == "benefit"
        ),
        Decimal("0"),
    )
    response: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "id": response_id or new_id(),
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "institutional",
                }
            ]
        },
        "use": "claim",
        "patient": {"reference": f"Patient/{patient_id}"},
        "created": "2021-03-20T12:00:00+00:00",
        "insurer": {"reference": f"Organization/{payer}"},
        "request": {"reference": f"Claim/{claim_id}"},
        "outcome": outcome,
        "disposition": disposition,
        "item": [
            {"itemSequence": sequence, "adjudication": adjudications}
            for sequence, adjudications in lines.items()
        ],
    }
    amount = Decimal(payment) if payment is not None else benefit
    if amount:
        response["payment"] = {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/ex-paymenttype",
                        "code": "complete",
                    }
                ]
            },
            "date": "2021-03-21",
            "amount": {"value": float(amount), "currency": "USD"},
        }
    if claim_level:
        response["adjudication"] = claim_level
    if error_carc:
        response["error"] = [{"code": {"coding": [{"system": CARC_SYSTEM, "code": error_carc}]}}]
    return response


class World:
    """A patient and a payer, and helpers to import claims and responses through FHIR."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.payer = make_organization(session, id=PAYER, name="Test PPO", type_code="pay")
        self.patient = make_patient(session)

    def claim(
        self, nets: list[str], *, related: str | None = None, pcn: str | None = None
    ) -> Claim:
        claim_id = new_id()
        import_document(
            self.session, fhir_claim(claim_id, self.patient.id, nets, related=related, pcn=pcn)
        )
        claim = self.session.get(Claim, claim_id)
        assert claim is not None
        return claim

    def respond(self, claim: Claim, lines: dict[int, list[dict[str, Any]]], **kw: Any) -> str:
        response = fhir_response(claim.id, self.patient.id, lines, **kw)
        import_document(self.session, response)
        return str(response["id"])


@pytest.fixture
def world(session: Session) -> World:
    return World(session)


def entries_of(session: Session, source_ref: str) -> dict[str, Decimal]:
    """Journal entry kind → amount (the debit total) for one source."""
    out = {}
    for entry in session.scalars(select(JournalEntry).where(JournalEntry.source_ref == source_ref)):
        out[entry.kind] = sum((p.debit for p in entry.postings), Decimal("0"))
    return out


def history(session: Session, claim_id: str) -> list[tuple[str | None, str, str]]:
    rows = session.scalars(
        select(ClaimStatusHistory)
        .where(ClaimStatusHistory.claim_id == claim_id)
        .order_by(ClaimStatusHistory.id)
    )
    return [(h.from_status, h.to_status, h.actor) for h in rows]


# --------------------------------------------------------------------------- code lists


def test_code_lists_ship_with_the_package() -> None:
    assert len(carc_codes()) == 291 and {"1", "2", "3", "16", "45", "197"} <= carc_codes()
    assert "999" not in carc_codes() and "15" not in carc_codes()  # deactivated CARC 15
    assert len(rarc_codes()) == 1083 and {"N54", "M76", "N30"} <= rarc_codes()


# --------------------------------------------------------------------------- posting


def test_imported_claim_is_charged_to_payer_ar(session: Session, world: World) -> None:
    claim = world.claim(["100.00", "250.50"])
    assert entries_of(session, f"Claim/{claim.id}") == {"charge": Decimal("350.50")}
    assert account_balance(session, payer_ar(PAYER)) == Decimal("350.50")
    assert account_balance(session, "revenue") == Decimal("350.50")
    # Importing the same claim again charges nothing more.
    import_document(session, fhir_claim(claim.id, world.patient.id, ["100.00", "250.50"]))
    assert account_balance(session, payer_ar(PAYER)) == Decimal("350.50")


def test_balanced_lines_post_payment_contractual_and_patient_share(
    session: Session, world: World
) -> None:
    claim = world.claim(["125.00", "200.00"])
    response_id = world.respond(
        claim,
        {1: paid_line("125.00", "47.50", "25.00", pr_carc="3"), 2: paid_line("200.00", "80.00")},
    )
    assert entries_of(session, f"ClaimResponse/{response_id}") == {
        "payment": Decimal("172.50"),
        "contractual_adjustment": Decimal("127.50"),
        "patient_responsibility": Decimal("25.00"),
    }
    assert claim_open_balance(session, claim.id) == Decimal("0.00")
    assert account_balance(session, patient_ar(world.patient.id)) == Decimal("25.00")
    assert account_balance(session, "cash") == Decimal("172.50")
    assert account_balance(session, "contractual_allowance") == Decimal("127.50")
    session.refresh(claim)
    assert claim.billing_status == "paid"
    assert history(session, claim.id) == [("submitted", "paid", "remittance")]
    rows = session.scalars(
        select(ClaimResponseAdjudication).where(
            ClaimResponseAdjudication.claim_response_id == response_id
        )
    ).all()
    assert len(rows) == 9
    copay = next(r for r in rows if r.category == "patient-responsibility")
    assert (copay.group_code, copay.carc, copay.amount, copay.item_sequence) == (
        "PR",
        "3",
        Decimal("25.00"),
        1,
    )
    assert trial_balance(session)["balanced"] is True


def test_denied_claim_stays_in_payer_ar_with_carc_and_rarc(session: Session, world: World) -> None:
    claim = world.claim(["300.00"])
    response_id = world.respond(
        claim,
        {1: denied_line("300.00", carc="197", rarc="N54")},
        claim_level=[adj("denied", "300.00", carc="197", group="CO")],
        disposition="Claim denied: CO-197 precertification absent",
    )
    assert entries_of(session, f"ClaimResponse/{response_id}") == {}
    assert claim_open_balance(session, claim.id) == Decimal("300.00")
    session.refresh(claim)
    assert claim.billing_status == "denied"
    reason = session.scalar(
        select(ClaimStatusHistory.reason).where(ClaimStatusHistory.claim_id == claim.id)
    )
    assert reason == "Claim denied: CO-197 precertification absent"
    denial = session.scalars(
        select(ClaimResponseAdjudication).where(
            ClaimResponseAdjudication.category == "denied",
            ClaimResponseAdjudication.item_sequence == 1,
        )
    ).one()
    assert (denial.group_code, denial.carc, denial.rarc) == ("CO", "197", "N54")


def test_partly_denied_claim_is_partial(session: Session, world: World) -> None:
    claim = world.claim(["100.00", "40.00"])
    world.respond(
        claim,
        {1: paid_line("100.00", "30.00"), 2: denied_line("40.00", carc="97", rarc="M15")},
        outcome="partial",
    )
    session.refresh(claim)
    assert claim.billing_status == "partial"
    assert claim_open_balance(session, claim.id) == Decimal("40.00")


def test_error_outcome_is_a_denial_with_its_carc(session: Session, world: World) -> None:
    claim = world.claim(["80.00"])
    world.respond(
        claim,
        {1: denied_line("80.00", carc="16", rarc="M76")},
        outcome="error",
        error_carc="16",
        claim_level=[adj("denied", "80.00", carc="16", group="CO", rarc="M76")],
    )
    session.refresh(claim)
    assert claim.billing_status == "denied"
    assert claim_open_balance(session, claim.id) == Decimal("80.00")


def test_corrected_claim_settles_the_original_and_marks_it_resubmitted(
    session: Session, world: World
) -> None:
    original = world.claim(["100.00", "60.00"])
    world.respond(
        original,
        {1: paid_line("100.00", "30.00"), 2: denied_line("60.00", carc="16", rarc="M76")},
        outcome="partial",
    )
    assert claim_open_balance(session, original.id) == Decimal("60.00")
    corrected = world.claim(["60.00"], related=original.id)
    # No new charge: the line was charged on the original.
    assert entries_of(session, f"Claim/{corrected.id}") == {}
    session.refresh(original)
    assert original.billing_status == "resubmitted"
    assert history(session, original.id)[-1] == ("partial", "resubmitted", "remittance")
    world.respond(corrected, {1: paid_line("60.00", "18.00", "6.00")})
    assert claim_open_balance(session, original.id) == Decimal("0.00")
    assert claim_open_balance(session, corrected.id) == Decimal("0.00")
    session.refresh(corrected)
    assert corrected.billing_status == "paid"
    assert account_balance(session, payer_ar(PAYER)) == Decimal("0.00")
    assert trial_balance(session)["balanced"] is True


def test_original_answered_after_its_correction_arrives_moves_on_to_resubmitted(
    session: Session, world: World
) -> None:
    original = world.claim(["50.00"])
    world.claim(["50.00"], related=original.id)
    session.refresh(original)
    assert original.billing_status == "submitted"  # not adjudicated yet
    world.respond(original, {1: denied_line("50.00", carc="29", rarc=None)})
    assert [h[1] for h in history(session, original.id)] == ["denied", "resubmitted"]


def test_underpaid_line_is_kept_open_as_underpaid(session: Session, world: World) -> None:
    # synthea-rcm underpayments: allowed 77.50, PR 25.00, paid 46.98 — 5.52 unexplained.
    claim = world.claim(["125.00"])
    line = [
        adj("submitted", "125.00"),
        adj("eligible", "77.50"),
        adj("contractual", "47.50", carc="45", group="CO"),
        adj("patient-responsibility", "25.00", carc="3", group="PR"),
        adj("benefit", "46.98"),
    ]
    response = fhir_response(claim.id, world.patient.id, {1: line})
    summary = post_claim_response(session, response)
    assert (summary.underpaid_lines, summary.underpaid_amount) == (1, Decimal("5.52"))
    assert claim_open_balance(session, claim.id) == Decimal("5.52")
    underpaid = session.scalars(
        select(ClaimResponseAdjudication).where(ClaimResponseAdjudication.category == "underpaid")
    ).one()
    assert (underpaid.amount, underpaid.carc, underpaid.item_sequence) == (Decimal("5.52"), None, 1)
    # A strict 835 balancing check refuses the same line.
    other = world.claim(["125.00"])
    with pytest.raises(FhirValidationError, match=r"submitted 125.00 ≠ benefit 46.98"):
        post_claim_response(
            session, fhir_response(other.id, world.patient.id, {1: line}), strict=True
        )


def test_repost_is_a_no_op_and_a_changed_repost_is_refused(session: Session, world: World) -> None:
    claim = world.claim(["100.00"])
    response = fhir_response(claim.id, world.patient.id, {1: paid_line("100.00", "40.00")})
    import_document(session, response)
    before = trial_balance(session)
    import_document(session, response)
    summary = post_claim_response(session, session.get(ClaimResponse, response["id"]))  # type: ignore[arg-type]
    assert summary.already_posted == 1 and summary.posted == 0
    assert trial_balance(session) == before
    assert session.scalar(select(func.count()).select_from(ClaimStatusHistory)) == 1
    changed = copy.deepcopy(response)
    changed["item"][0]["adjudication"] = paid_line("100.00", "50.00")
    changed["payment"]["amount"]["value"] = 50.0
    with pytest.raises(FhirValidationError, match="already posted with other amounts"):
        post_claim_response(session, changed)
    # A second, different answer to an adjudicated claim needs an appeal first.
    other = fhir_response(claim.id, world.patient.id, {1: paid_line("100.00", "40.00")})
    with pytest.raises(FhirValidationError, match="already adjudicated"):
        post_claim_response(session, other)


# --------------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unknown claim", "Claim/no-such-claim"),
        (
            "unbalanced",
            "line 2: submitted 125.00 ≠ benefit 50.00 + contractual 47.50 + patient 25.00",
        ),
        ("bad carc", "unknown CARC 999"),
        ("bad rarc", "unknown RARC ZZ99"),
        ("pr as denial", "denied with group code PR-204"),
        ("payment", "payment.amount 99.00 ≠ sum of line benefits 60.00"),
        ("unknown line", "line 7 is not a line of Claim/"),
        ("record-only claim", "is not in the revenue cycle"),
    ],
)
def test_rejected_remittance_leaves_the_database_unchanged_and_says_why(
    case: str,
    reason: str,
    engine: Engine,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    with session_factory() as session, session.begin():
        world = World(session)
        claim = world.claim(["100.00", "125.00"])
        good = fhir_response(
            claim.id,
            world.patient.id,
            {1: paid_line("100.00", "40.00"), 2: paid_line("125.00", "47.50", "25.00")},
        )
        patient_id = world.patient.id
        if case == "record-only claim":
            claim.billing_status = None
    bad = copy.deepcopy(good)
    line1, line2 = bad["item"][0]["adjudication"], bad["item"][1]["adjudication"]
    if case == "unknown claim":
        bad["request"]["reference"] = "Claim/no-such-claim"
    elif case == "unbalanced":
        del line2[1]  # no eligible amount: a strict equation
        line2[-1]["amount"]["value"] = 50.0
        bad["payment"]["amount"]["value"] = 110.0
    elif case == "bad carc":
        line1[2]["reason"]["coding"][0]["code"] = "999"
    elif case == "bad rarc":
        line1[2]["extension"].append(
            {"url": REMARK_CODE_EXTENSION, "valueCoding": {"system": RARC_SYSTEM, "code": "ZZ99"}}
        )
    elif case == "pr as denial":
        bad["item"][1]["adjudication"] = [
            adj("submitted", "125.00"),
            adj("eligible", "0"),
            adj("denied", "125.00", carc="204", group="PR"),
            adj("benefit", "0"),
        ]
        bad["payment"]["amount"]["value"] = 60.0
    elif case == "payment":
        bad["payment"]["amount"]["value"] = 99.0
        bad["item"] = bad["item"][:1]
    elif case == "unknown line":
        bad["item"][1]["itemSequence"] = 7
    # The whole file is one unit: a good response beside the bad one is not posted either.
    other_claim_id = new_id()
    with session_factory() as session, session.begin():
        import_document(session, fhir_claim(other_claim_id, patient_id, ["10.00"]))
    neighbour = fhir_response(other_claim_id, patient_id, {1: paid_line("10.00", "4.00")})
    path = tmp_path / "claimresponses.ndjson"
    path.write_text(json.dumps(neighbour) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    before = table_counts(engine)
    with session_factory() as session:
        ledger_before = trial_balance(session)
    report = import_paths(session_factory, [path])
    assert table_counts(engine) == before
    assert len(report.rejected) == 1
    message = report.rejected[0]["reason"]
    assert reason in message
    assert f"ClaimResponse/{bad['id']}" in message
    if case == "unknown claim":  # the importer's reference check says it first
        assert "is neither in the bundle nor in the database" in message
    with session_factory() as session:
        assert trial_balance(session) == ledger_before
    # Called directly, the same rejection raises and writes nothing.
    with session_factory() as session:
        with pytest.raises(FhirValidationError) as raised:
            post_claim_responses(session, [neighbour, bad])
        assert reason in str(raised.value)
        assert f"ClaimResponse/{bad['id']}" in str(raised.value)
        if case == "unknown claim":
            assert "Claim/no-such-claim does not exist" in str(raised.value)
        session.rollback()
    assert table_counts(engine) == before


def test_claim_level_only_denial_of_a_response_without_lines(
    session: Session, world: World
) -> None:
    claim = world.claim(["75.00"])
    response = fhir_response(
        claim.id,
        world.patient.id,
        {},
        outcome="error",
        error_carc="16",
        claim_level=[adj("denied", "75.00", carc="16", group="CO", rarc="M76")],
    )
    summary = post_claim_response(session, response)
    assert summary.posted == 1
    session.refresh(claim)
    assert claim.billing_status == "denied"


def test_response_given_as_a_dict_is_stored(session: Session, world: World) -> None:
    claim = world.claim(["90.00"])
    response = fhir_response(claim.id, world.patient.id, {1: paid_line("90.00", "30.00")})
    post_claim_response(session, response)
    stored = session.get(ClaimResponse, response["id"])
    assert stored is not None and stored.payment_amount == Decimal("60.00")
    assert stored.claim_id == claim.id


def test_claim_charge_refuses_a_total_that_disagrees_with_its_lines(
    session: Session, world: World
) -> None:
    claim = fhir_claim(new_id(), world.patient.id, ["10.00", "20.00"])
    claim["total"]["value"] = 31.0
    with pytest.raises(FhirValidationError, match=r"total 31.00 ≠ sum of its lines 30.00"):
        import_document(session, claim)
    assert session.get(Claim, claim["id"]) is None


def test_changed_claim_amount_is_refused_after_charging(session: Session, world: World) -> None:
    claim = world.claim(["10.00"])
    changed = fhir_claim(claim.id, world.patient.id, ["12.00"])
    with pytest.raises(FhirValidationError, match="already posted with other amounts"):
        import_document(session, changed)


def test_response_in_the_same_batch_twice_for_one_claim_is_refused(
    session: Session, world: World
) -> None:
    claim = world.claim(["10.00"])
    first = fhir_response(claim.id, world.patient.id, {1: paid_line("10.00", "4.00")})
    second = fhir_response(claim.id, world.patient.id, {1: paid_line("10.00", "5.00")})
    with pytest.raises(FhirValidationError, match="also answered by"):
        post_claim_responses(session, [first, second])


def test_times_and_statuses_are_aware_utc(session: Session, world: World) -> None:
    claim = world.claim(["10.00"])
    world.respond(claim, {1: paid_line("10.00", "4.00")})
    entry = session.scalars(select(JournalEntry).where(JournalEntry.kind == "payment")).one()
    assert entry.at == dt.datetime(2021, 3, 20, 12, 0, tzinfo=dt.UTC)
    assert entry.created_by == "remittance"


# --------------------------------------------------------------------------- X12 835

ISA = (
    "ISA*00*          *00*          *ZZ*PAYERID        *ZZ*HOSPITALID     "
    "*210321*1200*^*00501*000000001*0*P*:~\n"
)
SAMPLE_835 = (
    ISA
    + """\
GS*HP*PAYERID*HOSPITALID*20210321*1200*1*X*005010X221A1~
ST*835*0001~
BPR*I*180*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*999988880*DA*98765*20210321~
TRN*1*EFT12345*1512345678~
DTM*405*20210320~
N1*PR*TEST PPO~
N3*1 PAYER WAY~
N4*BOSTON*MA*02101~
PER*BL*PAYER HELP*TE*8005551212~
N1*PE*GENERAL HOSPITAL*XX*1234567893~
LX*1~
CLP*PCN001*1*325*180*25*12*PAYERCLAIM1~
NM1*QC*1*PATIENT*TEST****MI*12345~
SVC*NU:0450*125*52.5**1~
DTM*472*20210301~
CAS*CO*45*47.5~
CAS*PR*3*25~
REF*6R*1~
AMT*B6*77.5~
SVC*NU:0300*200*127.5**1~
DTM*472*20210301~
CAS*CO*45*72.5~
REF*6R*2~
AMT*B6*127.5~
SE*24*0001~
GE*1*1~
IEA*1*000000001~
"""
)


def test_post_835_through_pyx12(session: Session, world: World, tmp_path: Path) -> None:
    claim = world.claim(["125.00", "200.00"], pcn="PCN001")
    path = tmp_path / "remit.835"
    path.write_text(SAMPLE_835, encoding="ascii")
    summary = post_835(session, path)
    assert (summary.posted, summary.journal_entries) == (1, 3)
    assert account_balance(session, "cash") == Decimal("180.00")
    assert account_balance(session, "contractual_allowance") == Decimal("120.00")
    assert account_balance(session, patient_ar(world.patient.id)) == Decimal("25.00")
    assert claim_open_balance(session, claim.id) == Decimal("0.00")
    session.refresh(claim)
    assert claim.billing_status == "paid"
    copay = session.scalars(
        select(ClaimResponseAdjudication).where(
            ClaimResponseAdjudication.category == "patient-responsibility"
        )
    ).one()
    assert (copay.group_code, copay.carc, copay.item_sequence) == ("PR", "3", 1)
    assert post_835(session, path).already_posted == 1  # the same file again: no-op


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (("SE*24*0001", "SE*99*0001"), "X12 error: SE count of 99"),
        (("CLP*PCN001", "CLP*PCN999"), "835 claim PCN999: no claim with this patient control"),
        (("CAS*CO*45*72.5", "CAS*CO*999*72.5"), "unknown CARC 999"),
        (("SVC*NU:0300*200*127.5", "SVC*NU:0300*200*120"), "line 2: submitted 200.00 ≠ "),
    ],
)
def test_post_835_rejections_write_nothing(
    session: Session, world: World, tmp_path: Path, edit: tuple[str, str], reason: str
) -> None:
    world.claim(["125.00", "200.00"], pcn="PCN001")
    session.commit()
    path = tmp_path / "remit.835"
    path.write_text(SAMPLE_835.replace(*edit), encoding="ascii")
    with pytest.raises(FhirValidationError, match=re.escape(reason)):
        post_835(session, path, strict=True)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(JournalEntry)) == 1  # the charge
    assert session.scalar(select(func.count()).select_from(ClaimResponse)) == 0


# ------------------------------------------------- one currency (issue 9, item 1)


def in_euro(resource: dict[str, Any]) -> dict[str, Any]:
    """The same FHIR resource with every amount in EUR."""
    return dict(json.loads(json.dumps(resource).replace('"currency": "USD"', '"currency": "EUR"')))


@pytest.mark.parametrize("path", ["ClaimResponse", "835", "imported Claim"])
def test_remittance_and_imported_claims_in_another_currency_are_refused(
    session: Session, engine: Engine, settings_env: pytest.MonkeyPatch, tmp_path: Path, path: str
) -> None:
    world = World(session)
    # a claim that entered the ledger in EUR before the one-currency rule
    settings_env.setenv("HEALTHOS_CURRENCY", "EUR")
    get_settings.cache_clear()
    claim_id = new_id()
    import_document(
        session, in_euro(fhir_claim(claim_id, world.patient.id, ["125.00", "200.00"], pcn="PCN001"))
    )
    settings_env.delenv("HEALTHOS_CURRENCY")
    get_settings.cache_clear()
    session.commit()
    before = table_counts(engine)

    with pytest.raises(FhirValidationError, match=r"currency.*'EUR' is refused.* in USD"):
        if path == "ClaimResponse":
            lines = {1: paid_line("125.00", "40.00"), 2: paid_line("200.00", "72.50")}
            import_document(session, in_euro(fhir_response(claim_id, world.patient.id, lines)))
        elif path == "835":
            (tmp_path / "remit.835").write_text(SAMPLE_835, encoding="ascii")
            post_835(session, tmp_path / "remit.835")
        else:
            import_document(session, in_euro(fhir_claim(new_id(), world.patient.id, ["10.00"])))
    session.rollback()
    assert table_counts(engine) == before


def test_a_live_claim_or_payer_answer_queues_one_claim_change_and_a_backload_none(
    session: Session, world: World
) -> None:
    bus = EventBus()
    OutboxRecorder().subscribe(bus)

    def pending() -> list[tuple[str, str | None]]:
        rows = session.scalars(
            select(OutboxEvent).where(OutboxEvent.done_at.is_(None)).order_by(OutboxEvent.id)
        )
        found = [(row.event_type, row.subject) for row in rows]
        session.execute(update(OutboxEvent).values(done_at=dt.datetime.now(dt.UTC)))
        return found

    claim_id = new_id()
    claim = fhir_claim(claim_id, world.patient.id, ["100.00"])
    import_document(session, claim, origin="live", bus=bus)
    assert pending() == [("ClaimChanged", f"Claim/{claim_id}")]
    import_document(session, claim, origin="live", bus=bus)  # the same content: no change
    assert pending() == []
    response = fhir_response(claim_id, world.patient.id, {1: paid_line("100.00", "40.00")})
    import_document(session, response, origin="live", bus=bus)
    assert pending() == [("ClaimChanged", f"Claim/{claim_id}")]
    import_document(session, response, origin="live", bus=bus)
    assert pending() == []
    history_claim = fhir_claim(new_id(), world.patient.id, ["10.00"])
    import_document(session, history_claim, origin="backload", bus=bus)
    assert pending() == []
