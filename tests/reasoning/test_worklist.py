"""The finance denial worklist (ranking, filters, audited outcomes) and the finance summary.

Suggestions are built here as ``reasoning.Suggestion`` objects following the denial-risk
and revenue-leakage contracts and stored with ``save_suggestions``; claims, payers,
encounters and coverage are real rows. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from healthos_core.advisory import (
    SuggestionAction,
    SuggestionRecord,
    act_on_suggestion,
    save_suggestions,
)
from healthos_core.billing.entities import ChargeItem
from healthos_core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from healthos_core.record.entities import Coverage
from reasoning.finance.summary import finance_summary
from reasoning.finance.worklist import (
    expected_loss,
    record_worklist_action,
    worklist,
    worklist_item,
    worklist_page,
)
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion
from tests.factories import make_claim, make_encounter, make_organization, make_patient

T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)
LATER = T0 + dt.timedelta(days=1)
PAYERS = {"payer-acme": "Acme Health", "payer-beta": "Beta Mutual"}

#: claim id → (p(denial), claim total, predicted reason, payer, claim facility,
#: suggestion facility). Expected loss, by hand (half-up to cents):
#:   c2 0.30 × 4000.00 = 1200.00
#:   c1 0.81 × 1250.50 = 1012.905 → 1012.91
#:   c5 0.50 × 2025.00 = 1012.50
#:   c6 0.20 ×  950.00 =  190.00  (ties c3; larger amount first)
#:   c3 0.95 ×  200.00 =  190.00  (highest probability, ranked low)
#:   c4 0.125 × 999.99 =  124.99875 → 125.00
DENIALS: dict[str, tuple[float, str, str, str, str, str | None]] = {
    "c1": (0.81, "1250.50", "authorization", "payer-acme", "fac-north", "fac-north"),
    "c2": (0.30, "4000.00", "eligibility", "payer-beta", "fac-south", "fac-south"),
    "c3": (0.95, "200.00", "timely_filing", "payer-acme", "fac-south", "fac-south"),
    "c4": (0.125, "999.99", "coding", "payer-beta", "fac-north", None),  # facility from claim
    "c5": (0.50, "2025.00", "authorization", "payer-acme", "fac-north", "fac-north"),
    "c6": (0.20, "950.00", "eligibility", "payer-beta", "fac-south", "fac-south"),
}
RANKED = ["c2", "c1", "c5", "c6", "c3", "c4"]
LOSS = {
    "c1": Decimal("1012.91"),
    "c2": Decimal("1200.00"),
    "c3": Decimal("190.00"),
    "c4": Decimal("125.00"),
    "c5": Decimal("1012.50"),
    "c6": Decimal("190.00"),
}


def denial_suggestion(claim_id: str, **overrides: Any) -> Suggestion:
    """A denial-risk suggestion about ``Claim/<claim_id>`` per :data:`DENIALS`."""
    p, amount, reason, _, _, facility = DENIALS.get(
        claim_id, (0.5, "100.00", "other", "", "", None)
    )
    fields: dict[str, Any] = {
        "kind": "finance.denial_risk",
        "audience": Audience.FINANCE,
        "severity": Severity.WARNING,
        "subject": f"Claim/{claim_id}",
        "summary": f"Denial risk {p:.0%} ({reason})",
        "explanation": Explanation(
            method="model:denial@1",
            factors=(
                Factor(name="payer", value="payer-x", contribution=0.1),
                Factor(name="authorization", value="missing", contribution=-0.6),
                Factor(name="rule:prior_auth_missing", value="yes", contribution=0.9),
                Factor(name="age_days", value=3.0, contribution=0.05, unit="d"),
            ),
            evidence=(f"Claim/{claim_id}",),
        ),
        "recommended_action": f"Fix the {reason} issue on claim {claim_id}",
        "source": Source(name="denial_risk", version="1"),
        "score": p,
        "band": reason,
        "facility_id": facility,
        "amount_at_stake": Decimal(amount),
        "currency": "USD",
        "created_at": T0,
    }
    fields.update(overrides)
    return Suggestion(**fields)


def leakage_suggestion(subject: str, kind: str, amount: str, **overrides: Any) -> Suggestion:
    """A revenue-leakage suggestion about ``subject``."""
    fields: dict[str, Any] = {
        "kind": "finance.revenue_leakage",
        "audience": Audience.FINANCE,
        "severity": Severity.WARNING,
        "subject": subject,
        "summary": f"{kind}: {amount} at stake",
        "explanation": Explanation(method="rule:leakage", evidence=(subject,)),
        "recommended_action": "Post the missing charge",
        "source": Source(name="revenue_leakage", version="1"),
        "score": float(amount),
        "band": kind,
        "amount_at_stake": Decimal(amount),
        "currency": "USD",
        "created_at": T0,
    }
    fields.update(overrides)
    return Suggestion(**fields)


def seed_worklist(session: Session) -> dict[str, str]:
    """Payers, facilities, claims c1–c6 and their denial-risk suggestions.

    Also a NEWS2 suggestion and a leakage suggestion (neither on the worklist). Returns
    claim id → suggestion id.
    """
    for payer, name in PAYERS.items():
        make_organization(session, id=payer, name=name, type_code="pay")
    for facility in ("fac-north", "fac-south"):
        make_organization(session, id=facility, name=facility)
    patient = make_patient(session)
    for claim_id, (_, amount, _, payer, facility, _) in DENIALS.items():
        make_claim(
            session,
            id=claim_id,
            patient_id=patient.id,
            insurer_id=payer,
            facility_id=facility,
            total=amount,
        )
    suggestions = {claim_id: denial_suggestion(claim_id) for claim_id in DENIALS}
    other = [
        leakage_suggestion("Claim/c1", "underpayment", "5000.00"),
        denial_suggestion(
            "enc-x",
            kind="clinical.news2",
            audience=Audience.NURSE,
            subject="Encounter/enc-x",
            amount_at_stake=None,
        ),
    ]
    save_suggestions(session, [*suggestions.values(), *other])
    return {claim_id: s.id for claim_id, s in suggestions.items()}


def claims(items: list[Any]) -> list[str]:
    return [item.claim_id for item in items]


# --- ranking --------------------------------------------------------------------------


def test_expected_loss_is_probability_times_amount_in_cents() -> None:
    assert expected_loss(0.81, Decimal("1250.50")) == Decimal("1012.91")
    assert expected_loss(0.125, Decimal("999.99")) == Decimal("125.00")
    assert expected_loss(1.0, Decimal("0.00")) == Decimal("0.00")
    assert expected_loss(None, Decimal("10.00")) is None
    assert expected_loss(0.5, None) is None


def test_worklist_ranks_by_expected_loss_not_probability(session: Session) -> None:
    ids = seed_worklist(session)

    items = worklist(session)

    assert claims(items) == RANKED
    assert [item.expected_loss for item in items] == [LOSS[c] for c in RANKED]
    first = items[1]
    assert first == worklist_item(session, ids["c1"])
    assert (first.suggestion_id, first.claim_id, first.payer_id, first.payer_name) == (
        ids["c1"],
        "c1",
        "payer-acme",
        "Acme Health",
    )
    assert (first.facility_id, first.amount, first.currency, first.probability) == (
        "fac-north",
        Decimal("1250.50"),
        "USD",
        0.81,
    )
    assert (first.reason, first.fix, first.status, first.outcome) == (
        "authorization",
        "Fix the authorization issue on claim c1",
        "open",
        None,
    )
    # the top three factors by absolute contribution
    assert [(f["name"], f["contribution"]) for f in first.factors] == [
        ("rule:prior_auth_missing", 0.9),
        ("authorization", -0.6),
        ("payer", 0.1),
    ]
    assert first.to_dict()["expected_loss"] == "1012.91"
    assert first.to_dict()["amount"] == "1250.50"


def test_worklist_pages_and_counts(session: Session) -> None:
    seed_worklist(session)

    items, count = worklist_page(session, limit=2, offset=1)

    assert (claims(items), count) == (["c1", "c5"], 6)
    assert worklist(session, offset=6) == []


def test_suggestion_without_amount_ranks_last(session: Session) -> None:
    seed_worklist(session)
    save_suggestions(session, [denial_suggestion("c9", amount_at_stake=None, score=0.99)])

    items = worklist(session)

    assert claims(items) == [*RANKED, "c9"]
    assert (items[-1].expected_loss, items[-1].payer_id) == (None, None)


# --- filters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"payer": "payer-acme"}, ["c1", "c5", "c3"]),
        ({"payer": "Acme Health"}, ["c1", "c5", "c3"]),
        ({"payer": "beta mutual"}, ["c2", "c6", "c4"]),
        ({"payer": "payer-none"}, []),
        ({"facility": "fac-north"}, ["c1", "c5", "c4"]),  # c4: the claim's facility
        ({"facility": "fac-south"}, ["c2", "c6", "c3"]),
        ({"reason": "authorization"}, ["c1", "c5"]),
        ({"reason": "units"}, []),
        ({"payer": "payer-beta", "facility": "fac-south", "reason": "eligibility"}, ["c2", "c6"]),
    ],
)
def test_worklist_filters(session: Session, filters: dict[str, str], expected: list[str]) -> None:
    seed_worklist(session)

    assert claims(worklist(session, **filters)) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reason": "medical_necessity"}, "eligibility, authorization, timely_filing"),
        ({"status": ("open", "closed")}, "closed"),
        ({"payer": "  "}, "payer"),
        ({"facility": ""}, "facility"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
    ],
)
def test_worklist_refuses_bad_filters(
    session: Session, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        worklist(session, **kwargs)


# --- outcomes -------------------------------------------------------------------------


def audit(session: Session, suggestion_id: str) -> list[tuple[Any, ...]]:
    rows = session.execute(
        select(
            SuggestionAction.action,
            SuggestionAction.outcome,
            SuggestionAction.actor,
            SuggestionAction.role,
            SuggestionAction.reason,
            SuggestionAction.at,
        )
        .where(SuggestionAction.suggestion_id == suggestion_id)
        .order_by(SuggestionAction.id)
    )
    return [tuple(row) for row in rows]


def test_outcomes_are_recorded_and_audited(session: Session) -> None:
    ids = seed_worklist(session)
    t1, t2 = T0 + dt.timedelta(hours=2), T0 + dt.timedelta(hours=5)

    resubmitted = record_worklist_action(
        session,
        ids["c1"],
        outcome="resubmitted",
        actor="biller-7",
        role="finance",
        note="  added PA ref 123  ",
        at=t1,
    )
    appealed = record_worklist_action(
        session, ids["c1"], outcome="appealed", actor="biller-8", role="finance", at=t2
    )
    before = dt.datetime.now(dt.UTC)
    accepted = record_worklist_action(
        session, ids["c2"], outcome="accepted", actor="biller-7", role="finance"
    )
    session.commit()
    session.expire_all()

    assert (resubmitted.status, resubmitted.outcome) == ("acted", "resubmitted")
    assert (appealed.status, appealed.outcome, len(appealed.actions)) == ("acted", "appealed", 2)
    assert audit(session, ids["c1"]) == [
        ("act", "resubmitted", "biller-7", "finance", "added PA ref 123", t1),
        ("note", "appealed", "biller-8", "finance", None, t2),  # a follow-up step
    ]
    [(action, outcome, actor, role, note, at)] = audit(session, ids["c2"])
    assert (action, outcome, actor, role, note) == (
        "dismiss",
        "accepted",
        "biller-7",
        "finance",
        None,
    )
    assert before <= at <= dt.datetime.now(dt.UTC)
    assert accepted.status == "dismissed"
    record = session.get(SuggestionRecord, ids["c1"])
    assert record is not None
    # the item stays acted by the biller who first worked it
    assert (record.status, record.status_by, record.status_at) == ("acted", "biller-7", t1)
    # worked items leave the default worklist and show on the worked one
    assert claims(worklist(session)) == ["c5", "c6", "c3", "c4"]
    worked = worklist(session, status=("acted", "dismissed"))
    assert [(i.claim_id, i.status, i.outcome) for i in worked] == [
        ("c2", "dismissed", "accepted"),
        ("c1", "acted", "appealed"),
    ]
    assert [(a.outcome, a.actor, a.note) for a in worked[1].actions] == [
        ("resubmitted", "biller-7", "added PA ref 123"),
        ("appealed", "biller-8", None),
    ]


def test_accepted_item_is_closed(session: Session) -> None:
    ids = seed_worklist(session)
    record_worklist_action(session, ids["c3"], outcome="accepted", actor="b", role="finance")

    with pytest.raises(ConflictError, match="dismissed"):
        record_worklist_action(session, ids["c3"], outcome="fixed", actor="b", role="finance")

    assert [row[1] for row in audit(session, ids["c3"])] == ["accepted"]


def test_accepting_an_item_already_acted_on_is_refused(session: Session) -> None:
    """Acted is closed: accepting the risk afterwards would dismiss it (issue 9 item 6)."""
    ids = seed_worklist(session)
    record_worklist_action(session, ids["c1"], outcome="fixed", actor="b1", role="finance", at=T0)

    with pytest.raises(ConflictError, match="acted") as refused:
        record_worklist_action(session, ids["c1"], outcome="accepted", actor="b2", role="finance")

    assert "b1" in str(refused.value) and T0.isoformat() in str(refused.value)
    assert [row[:3] for row in audit(session, ids["c1"])] == [("act", "fixed", "b1")]


@pytest.mark.parametrize(
    ("role", "error"),
    [
        ("admin", PermissionDeniedError),  # reads everything, decides nothing
        ("leadership", PermissionDeniedError),  # reads finance, acts on its own
        ("nurse", NotFoundError),  # may not even read it
    ],
)
def test_only_roles_that_act_on_finance_suggestions_may_record_outcomes(
    session: Session, role: str, error: type[Exception]
) -> None:
    ids = seed_worklist(session)

    with pytest.raises(error):
        record_worklist_action(session, ids["c1"], outcome="fixed", actor="x", role=role)

    assert audit(session, ids["c1"]) == []


@pytest.mark.parametrize("outcome", ["paid", "", "Fixed", "act"])
def test_unknown_outcome_is_rejected_and_nothing_written(session: Session, outcome: str) -> None:
    ids = seed_worklist(session)

    with pytest.raises(InvalidInputError, match="fixed, resubmitted, appealed, accepted"):
        record_worklist_action(session, ids["c1"], outcome=outcome, actor="b", role="finance")

    assert session.scalar(select(func.count()).select_from(SuggestionAction)) == 0
    record = session.get(SuggestionRecord, ids["c1"])
    assert record is not None and (record.status, record.status_by) == ("open", None)


def test_outcome_needs_actor_and_role(session: Session) -> None:
    ids = seed_worklist(session)

    with pytest.raises(InvalidInputError, match="actor and their role"):
        record_worklist_action(session, ids["c1"], outcome="fixed", actor=" ", role="finance")

    assert audit(session, ids["c1"]) == []


def test_outcome_on_something_not_on_the_worklist_is_not_found(session: Session) -> None:
    seed_worklist(session)
    news2 = denial_suggestion(
        "enc-x", kind="clinical.news2", audience=Audience.NURSE, subject="Encounter/enc-x"
    )

    for suggestion_id in ("no-such-id", news2.id):
        with pytest.raises(NotFoundError, match="no denial worklist item"):
            record_worklist_action(
                session, suggestion_id, outcome="fixed", actor="b", role="finance"
            )
        with pytest.raises(NotFoundError):
            worklist_item(session, suggestion_id)


def test_advisory_outcome_column_is_checked(session: Session) -> None:
    ids = seed_worklist(session)

    with pytest.raises(InvalidInputError, match="outcome"):
        act_on_suggestion(
            session, ids["c1"], action="act", actor="b", role="finance", outcome="x" * 17
        )
    # a dismissal whose outcome says why needs no separate reason
    record = act_on_suggestion(
        session, ids["c1"], action="dismiss", actor="b", role="finance", outcome="accepted"
    )

    assert (record.status, record.actions[-1].outcome) == ("dismissed", "accepted")


# --- summary --------------------------------------------------------------------------


def seed_leakage(session: Session) -> dict[str, str]:
    """Leakage on an encounter (payer from coverage), a claim, a charge and an unknown subject.

    Returns a name → suggestion id map.
    """
    patient = make_patient(session)
    covered = make_encounter(session, patient=patient, facility_id="fac-north")
    session.add(
        Coverage(
            id="cov-1",
            patient_id=patient.id,
            payor_id="payer-acme",
            status="active",
            period_start=T0 - dt.timedelta(days=365),
        )
    )
    billed = make_encounter(session, patient=patient, facility_id="fac-south")
    make_claim(session, patient_id=patient.id, encounter_id=billed.id, insurer_id="payer-beta")
    session.add(
        ChargeItem(
            id="charge-1",
            patient_id=patient.id,
            encounter_id=billed.id,
            facility_id="fac-south",
            code_system="http://snomed.info/sct",
            code="1234",
            unit_price=Decimal("80.00"),
            total=Decimal("80.00"),
            currency="USD",
        )
    )
    session.flush()
    leaks = {
        "missed": leakage_suggestion(
            f"Encounter/{covered.id}", "missed_charge", "300.00", facility_id="fac-north"
        ),
        "underpaid": leakage_suggestion(
            "Claim/c2", "underpayment", "120.55", facility_id="fac-south"
        ),
        "charge": leakage_suggestion("ChargeItem/charge-1", "late_charge", "80.00"),
        "unknown": leakage_suggestion("Encounter/not-in-record", "late_charge", "10.00"),
        "dismissed": leakage_suggestion("Encounter/other", "missed_charge", "999.00"),
        "future": leakage_suggestion(
            "Encounter/future", "missed_charge", "50.00", created_at=LATER + dt.timedelta(days=1)
        ),
    }
    save_suggestions(session, leaks.values())
    act_on_suggestion(
        session,
        leaks["dismissed"].id,
        action="dismiss",
        actor="b",
        role="finance",
        reason="charge posted in the source system",
        at=T0 + dt.timedelta(hours=1),
    )
    return {name: s.id for name, s in leaks.items()}


def test_summary_totals_leakage_by_kind_payer_and_facility(session: Session) -> None:
    seed_worklist(session)
    seed_leakage(session)

    leakage = finance_summary(session, as_of=LATER)["revenue_leakage"]

    # open: 300.00 + 120.55 + 80.00 + 10.00, plus the 5000.00 underpayment of c1
    assert (leakage["count"], leakage["amount_at_stake"]) == (5, "5510.55")
    assert leakage["by_kind"] == {
        "missed_charge": {"count": 1, "amount_at_stake": "300.00"},
        "unbilled_encounter": {"count": 0, "amount_at_stake": "0.00"},
        "late_charge": {"count": 2, "amount_at_stake": "90.00"},
        "underpayment": {"count": 2, "amount_at_stake": "5120.55"},
        "unworked_denial": {"count": 0, "amount_at_stake": "0.00"},
        "charge_without_event": {"count": 0, "amount_at_stake": "0.00"},
    }
    assert leakage["by_payer"] == {
        "payer-acme": {"payer": "Acme Health", "count": 2, "amount_at_stake": "5300.00"},
        "payer-beta": {"payer": "Beta Mutual", "count": 2, "amount_at_stake": "200.55"},
        "unknown": {"payer": None, "count": 1, "amount_at_stake": "10.00"},
    }
    assert list(leakage["by_payer"]) == ["payer-acme", "payer-beta", "unknown"]
    assert leakage["by_facility"] == {
        "fac-north": {"count": 2, "amount_at_stake": "5300.00"},  # c1's claim facility
        "fac-south": {"count": 2, "amount_at_stake": "200.55"},  # the charge's facility
        "unknown": {"count": 1, "amount_at_stake": "10.00"},
    }


def test_summary_totals_denial_risk_by_reason_payer_and_facility(session: Session) -> None:
    ids = seed_worklist(session)
    record_worklist_action(
        session,
        ids["c2"],
        outcome="fixed",
        actor="b",
        role="finance",
        at=T0 + dt.timedelta(hours=1),
    )

    summary = finance_summary(session, as_of=LATER)
    risk = summary["denial_risk"]

    # open: c1, c3, c4, c5, c6 (c2 was fixed)
    assert (risk["count"], risk["billed_at_risk"], risk["expected_loss"]) == (
        5,
        "5425.49",  # 1250.50 + 200.00 + 999.99 + 2025.00 + 950.00
        "2530.41",  # 1012.91 + 190.00 + 125.00 + 1012.50 + 190.00
    )
    assert risk["by_reason"]["authorization"] == {
        "count": 2,
        "billed_at_risk": "3275.50",
        "expected_loss": "2025.41",
    }
    assert risk["by_reason"]["eligibility"] == {
        "count": 1,
        "billed_at_risk": "950.00",
        "expected_loss": "190.00",
    }
    assert risk["by_reason"]["units"] == {
        "count": 0,
        "billed_at_risk": "0.00",
        "expected_loss": "0.00",
    }
    assert list(risk["by_reason"]) == [
        "eligibility",
        "authorization",
        "timely_filing",
        "coding",
        "duplicate",
        "bundling",
        "units",
        "other",
    ]
    assert risk["by_payer"] == {
        "payer-acme": {
            "payer": "Acme Health",
            "count": 3,
            "billed_at_risk": "3475.50",
            "expected_loss": "2215.41",
        },
        "payer-beta": {
            "payer": "Beta Mutual",
            "count": 2,
            "billed_at_risk": "1949.99",
            "expected_loss": "315.00",
        },
    }
    assert risk["by_facility"] == {
        "fac-north": {"count": 3, "billed_at_risk": "4275.49", "expected_loss": "2150.41"},
        "fac-south": {"count": 2, "billed_at_risk": "1150.00", "expected_loss": "380.00"},
    }
    assert summary["currency"] == "USD"
    assert summary["as_of"] == LATER.isoformat()


def test_summary_counts_worked_and_open_from_the_audit_trail(session: Session) -> None:
    ids = seed_worklist(session)
    seed_leakage(session)
    t1, t2 = T0 + dt.timedelta(hours=2), T0 + dt.timedelta(hours=6)
    act_on_suggestion(session, ids["c4"], action="acknowledge", actor="b", role="finance", at=t1)
    record_worklist_action(session, ids["c1"], outcome="fixed", actor="b", role="finance", at=t1)
    record_worklist_action(
        session, ids["c1"], outcome="resubmitted", actor="b", role="finance", at=t2
    )
    record_worklist_action(session, ids["c3"], outcome="accepted", actor="b", role="finance", at=t2)

    between = finance_summary(session, as_of=t1 + dt.timedelta(hours=1))
    after = finance_summary(session, as_of=LATER)

    assert after["work"]["finance.denial_risk"] == {
        "open": 3,
        "acknowledged": 1,
        "acted": 1,
        "dismissed": 1,
        "worked": 2,
        "unworked": 4,
        "outcomes": {"fixed": 1, "resubmitted": 1, "appealed": 0, "accepted": 1},
    }
    # before the second round of actions: c3 still open, one outcome so far
    assert between["work"]["finance.denial_risk"] == {
        "open": 4,
        "acknowledged": 1,
        "acted": 1,
        "dismissed": 0,
        "worked": 1,
        "unworked": 5,
        "outcomes": {"fixed": 1, "resubmitted": 0, "appealed": 0, "accepted": 0},
    }
    assert between["denial_risk"]["count"] == 5  # c3 open, acknowledged c4 counted
    assert after["denial_risk"]["count"] == 4
    # leakage: the dismissed one is worked; the one made after as_of is not counted
    assert after["work"]["finance.revenue_leakage"] == {
        "open": 5,
        "acknowledged": 0,
        "acted": 0,
        "dismissed": 1,
        "worked": 1,
        "unworked": 5,
        "outcomes": {"fixed": 0, "resubmitted": 0, "appealed": 0, "accepted": 0},
    }


def test_summary_of_an_empty_record_is_zero(session: Session) -> None:
    summary = finance_summary(session, as_of=T0)

    assert summary["currency"] is None
    assert (summary["revenue_leakage"]["count"], summary["revenue_leakage"]["amount_at_stake"]) == (
        0,
        "0.00",
    )
    assert summary["denial_risk"]["expected_loss"] == "0.00"
    assert summary["denial_risk"]["by_payer"] == {}
    assert summary["work"]["finance.denial_risk"]["unworked"] == 0


def test_summary_needs_an_aware_time(session: Session) -> None:
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        finance_summary(session, as_of=dt.datetime(2025, 3, 1))
