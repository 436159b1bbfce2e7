"""The suggestion store: upsert, worklist order and filters, audited actions."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from healthos_core.advisory import (
    SuggestionAction,
    SuggestionRecord,
    SuggestionStatus,
    act_on_suggestion,
    apply_rescore,
    get_suggestion,
    list_suggestions,
    save_suggestions,
)
from healthos_core.db import make_engine
from healthos_core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from healthos_core.suggestion_revision import poll_suggestion_revision, read_suggestion_revision
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion

T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)


def make_suggestion(n: int = 1, **overrides: Any) -> Suggestion:
    """A synthetic NEWS2 suggestion about ``Encounter/enc-<n>``."""
    fields: dict[str, Any] = {
        "kind": "clinical.news2",
        "audience": Audience.NURSE,
        "severity": Severity.WARNING,
        "subject": f"Encounter/enc-{n}",
        "summary": "NEWS2 5 (medium): urgent ward-based response",
        "explanation": Explanation(
            method="rule:news2",
            factors=(
                Factor(
                    name="resp_rate",
                    value=24.0,
                    contribution=2.0,
                    unit="/min",
                    text="respiratory rate 24/min",
                ),
                Factor(name="consciousness", value="A", contribution=0.0),
            ),
            evidence=(f"Observation/rr-{n}",),
        ),
        "recommended_action": "Inform the nurse in charge; assess within the hour",
        "source": Source(name="news2", version="1.0.0", reference="RCP NEWS2 2017"),
        "score": 5.0,
        "band": "medium",
        "patient_id": f"pat-{n}",
        "created_at": T0,
    }
    fields.update(overrides)
    return Suggestion(**fields)


@dataclasses.dataclass
class PlainFactor:
    name: str
    value: float | str | None
    contribution: float
    unit: str | None = None
    text: str | None = None


@dataclasses.dataclass
class PlainExplanation:
    method: str
    factors: list[PlainFactor]
    evidence: list[str]


@dataclasses.dataclass
class PlainSource:
    name: str
    version: str
    reference: str | None = None


@dataclasses.dataclass
class PlainSuggestion:
    """Not a ``reasoning.Suggestion``: core accepts anything with the same fields."""

    id: str
    kind: str = "finance.denial_risk"
    audience: str = "finance"
    severity: str = "critical"
    subject: str = "Claim/9"
    summary: str = "Denial risk 81%: prior authorisation missing"
    explanation: PlainExplanation = dataclasses.field(
        default_factory=lambda: PlainExplanation(
            method="model:denial@3",
            factors=[PlainFactor(name="prior_auth", value="missing", contribution=1.4)],
            evidence=["Claim/9"],
        )
    )
    recommended_action: str = "Add the prior-authorisation reference"
    source: PlainSource = dataclasses.field(
        default_factory=lambda: PlainSource(name="denial_risk", version="3")
    )
    score: float | None = 0.81
    band: str | None = "high"
    patient_id: str | None = "pat-9"
    facility_id: str | None = "org-1"
    amount_at_stake: Decimal | None = Decimal("1250.5")
    currency: str | None = "USD"
    created_at: dt.datetime = T0


def count_rows(session: Session, entity: type[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(entity)) or 0)


# --- the suggestions' revision ----------------------------------------------------------


def test_every_change_to_suggestions_gives_a_new_revision_and_a_rescore_keeps_it(
    session: Session,
) -> None:
    seen = []
    save_suggestions(session, [make_suggestion(1), make_suggestion(2)])
    seen.append(read_suggestion_revision(session))
    save_suggestions(session, [make_suggestion(1), make_suggestion(2)])  # the same state
    assert read_suggestion_revision(session) == seen[-1]
    save_suggestions(session, [make_suggestion(2, score=7.0)])  # content changed
    seen.append(read_suggestion_revision(session))
    save_suggestions(session, [make_suggestion(3)])  # a new one
    seen.append(read_suggestion_revision(session))
    act_on_suggestion(
        session, make_suggestion(1).id, action="note", actor="n-1", role="nurse", reason="seen"
    )
    seen.append(read_suggestion_revision(session))
    act_on_suggestion(
        session, make_suggestion(1).id, action="acknowledge", actor="n-1", role="nurse"
    )
    seen.append(read_suggestion_revision(session))
    assert len(set(seen)) == len(seen) == 5
    assert all(isinstance(r, str) and len(r) == 32 and int(r, 16) >= 0 for r in seen)


def test_a_refused_action_leaves_the_revision(session: Session) -> None:
    save_suggestions(session, [make_suggestion(1)])
    session.commit()
    before = read_suggestion_revision(session)
    with pytest.raises(InvalidInputError):
        act_on_suggestion(session, make_suggestion(1).id, action="dismiss", actor="a", role="nurse")
    session.rollback()
    assert read_suggestion_revision(session) == before


def test_the_poll_reads_the_committed_revision(session: Session) -> None:
    save_suggestions(session, [make_suggestion(1)])
    session.commit()
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    assert poll_suggestion_revision(engine) == read_suggestion_revision(session) is not None


def test_the_poll_raises_sqlalchemy_errors(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/empty.db")  # no tables
    with pytest.raises(OperationalError, match="suggestion_revision"):
        poll_suggestion_revision(engine)
    engine.dispose()


# --- save_suggestions -----------------------------------------------------------------


def test_save_suggestions_stores_every_field(session: Session) -> None:
    suggestion = make_suggestion(
        facility_id="org-1", amount_at_stake=Decimal("12.5"), currency="USD"
    )

    assert save_suggestions(session, [suggestion]) == 1
    session.commit()
    session.expire_all()

    record = session.get(SuggestionRecord, suggestion.id)
    assert record is not None
    assert (record.kind, record.audience, record.severity) == ("clinical.news2", "nurse", "warning")
    assert (record.subject, record.patient_id, record.facility_id) == (
        "Encounter/enc-1",
        "pat-1",
        "org-1",
    )
    assert (record.score, record.band) == (5.0, "medium")
    assert (record.source_name, record.source_version, record.source_reference) == (
        "news2",
        "1.0.0",
        "RCP NEWS2 2017",
    )
    assert record.amount_at_stake == Decimal("12.50")
    assert record.created_at == T0
    assert record.status == SuggestionStatus.OPEN
    assert record.explanation == {
        "method": "rule:news2",
        "factors": [
            {
                "name": "resp_rate",
                "value": 24.0,
                "contribution": 2.0,
                "unit": "/min",
                "text": "respiratory rate 24/min",
            },
            {
                "name": "consciousness",
                "value": "A",
                "contribution": 0.0,
                "unit": None,
                "text": None,
            },
        ],
        "evidence": ["Observation/rr-1"],
    }


def test_save_suggestions_accepts_any_object_with_the_fields(session: Session) -> None:
    assert save_suggestions(session, [PlainSuggestion(id="claim-9-denial")]) == 1

    record = session.get(SuggestionRecord, "claim-9-denial")
    assert record is not None
    assert (record.audience, record.severity, record.amount_at_stake) == (
        "finance",
        "critical",
        Decimal("1250.50"),
    )


def test_save_suggestions_refreshes_content_and_keeps_status_and_audit(session: Session) -> None:
    first = make_suggestion()
    save_suggestions(session, [first])
    act_on_suggestion(
        session,
        first.id,
        action="acknowledge",
        actor="nurse-a",
        role="nurse",
        at=T0 + dt.timedelta(minutes=5),
    )
    session.commit()

    rescored = dataclasses.replace(
        first,
        severity=Severity.CRITICAL,
        score=7.0,
        band="high",
        summary="NEWS2 7 (high): emergency response",
        created_at=T0 + dt.timedelta(hours=1),
    )
    assert rescored.id == first.id
    assert save_suggestions(session, [rescored]) == 1
    session.commit()
    session.expire_all()

    record = get_suggestion(session, first.id)
    assert (record.severity, record.score, record.band) == ("critical", 7.0, "high")
    assert record.summary == "NEWS2 7 (high): emergency response"
    assert record.created_at == T0  # first made
    assert (record.status, record.status_by) == ("acknowledged", "nurse-a")
    assert [a.action for a in record.actions] == ["acknowledge"]
    assert count_rows(session, SuggestionRecord) == 1


def test_save_suggestions_keeps_dismissed_suggestions_dismissed(session: Session) -> None:
    suggestion = make_suggestion()
    save_suggestions(session, [suggestion])
    act_on_suggestion(
        session,
        suggestion.id,
        action="dismiss",
        actor="dr-b",
        role="clinician",
        reason="known COPD, target SpO2 88-92%",
    )

    save_suggestions(session, [suggestion])

    assert get_suggestion(session, suggestion.id).status == "dismissed"


def test_save_suggestions_last_duplicate_wins(session: Session) -> None:
    a = make_suggestion(score=5.0)
    b = dataclasses.replace(a, score=6.0)

    assert save_suggestions(session, [a, b]) == 1

    assert count_rows(session, SuggestionRecord) == 1
    assert get_suggestion(session, a.id).score == 6.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"severity": "urgent"}, "severity"),
        ({"audience": "patients"}, "audience"),
        ({"summary": "x" * 141}, "141 characters"),
        ({"kind": "k" * 65}, "kind"),
        ({"subject": "Encounter-1"}, "Type/id"),
        ({"score": float("nan")}, "finite"),
        ({"created_at": dt.datetime(2025, 3, 1, 8, 0)}, "timezone-aware"),
        ({"id": ""}, "no id"),
    ],
)
def test_save_suggestions_refuses_invalid_input_and_writes_nothing(
    session: Session, overrides: dict[str, Any], message: str
) -> None:
    good = PlainSuggestion(id="good")
    bad = dataclasses.replace(PlainSuggestion(id="bad"), **overrides)

    with pytest.raises(InvalidInputError, match=message):
        save_suggestions(session, [good, bad])

    assert count_rows(session, SuggestionRecord) == 0


def test_save_suggestions_stores_non_finite_factor_values_as_null(session: Session) -> None:
    suggestion = make_suggestion(
        explanation=Explanation(
            method="rule:x", factors=(Factor(name="lactate", value=float("nan"), contribution=0.0),)
        ),
    )

    save_suggestions(session, [suggestion])
    session.commit()
    session.expire_all()

    assert get_suggestion(session, suggestion.id).explanation["factors"][0]["value"] is None


# --- list_suggestions -----------------------------------------------------------------


def test_list_suggestions_orders_by_severity_then_score_then_newest(session: Session) -> None:
    made = {
        "info-high-score": make_suggestion(1, severity=Severity.INFO, score=99.0),
        "warning-3": make_suggestion(2, severity=Severity.WARNING, score=3.0),
        "warning-no-score": make_suggestion(3, severity=Severity.WARNING, score=None),
        "warning-6-old": make_suggestion(4, severity=Severity.WARNING, score=6.0),
        "warning-6-new": make_suggestion(
            5, severity=Severity.WARNING, score=6.0, created_at=T0 + dt.timedelta(hours=2)
        ),
        "critical-1": make_suggestion(6, severity=Severity.CRITICAL, score=1.0),
    }
    save_suggestions(session, made.values())
    session.commit()
    names = {s.id: name for name, s in made.items()}

    records, count = list_suggestions(session)

    assert count == 6
    assert [names[r.id] for r in records] == [
        "critical-1",
        "warning-6-new",
        "warning-6-old",
        "warning-3",
        "warning-no-score",
        "info-high-score",
    ]


def test_list_suggestions_filters(session: Session) -> None:
    nurse = make_suggestion(1)
    clinician = make_suggestion(
        2, audience=Audience.CLINICIAN, kind="clinical.qsofa", patient_id="pat-1"
    )
    finance = PlainSuggestion(id="fin-1")
    save_suggestions(session, [nurse, clinician, finance])
    act_on_suggestion(session, clinician.id, action="acknowledge", actor="dr-a", role="clinician")

    def ids(**filters: Any) -> set[str]:
        records, count = list_suggestions(session, **filters)
        assert count == len(records)
        return {r.id for r in records}

    assert ids(audience="nurse") == {nurse.id}
    assert ids(audience=["nurse", "clinician"]) == {nurse.id, clinician.id}
    assert ids(audience=[]) == set()
    assert ids(subject="Encounter/enc-2") == {clinician.id}
    assert ids(patient_id="pat-1") == {nurse.id, clinician.id}
    assert ids(kind="clinical.qsofa") == {clinician.id}
    assert ids(status="open") == {nurse.id, finance.id}
    assert ids(status=["acknowledged", "acted"]) == {clinician.id}
    assert ids(audience="nurse", status="acknowledged") == set()


def test_list_suggestions_pages_and_counts_all_matches(session: Session) -> None:
    save_suggestions(session, [make_suggestion(n, score=float(n)) for n in range(1, 6)])

    page, count = list_suggestions(session, limit=2, offset=1)

    assert count == 5
    assert [r.score for r in page] == [4.0, 3.0]


@pytest.mark.parametrize(
    "kwargs", [{"status": "closed"}, {"limit": 0}, {"limit": 1001}, {"offset": -1}]
)
def test_list_suggestions_refuses_bad_arguments(session: Session, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        list_suggestions(session, **kwargs)


# --- act_on_suggestion ----------------------------------------------------------------


def test_act_on_suggestion_records_who_when_why_and_audits(session: Session) -> None:
    suggestion = make_suggestion()
    save_suggestions(session, [suggestion])
    t1, t2, t3 = (T0 + dt.timedelta(minutes=m) for m in (5, 20, 60))

    act_on_suggestion(
        session, suggestion.id, action="acknowledge", actor="nurse-a", role="nurse", at=t1
    )
    act_on_suggestion(
        session,
        suggestion.id,
        action="act",
        actor="dr-b",
        role="clinician",
        reason="  reviewed, fluids started  ",
        at=t2,
    )
    record = act_on_suggestion(
        session,
        suggestion.id,
        action="note",
        actor="nurse-a",
        role="nurse",
        reason="resolved after fluids",
        at=t3,
    )
    session.commit()
    session.expire_all()

    record = get_suggestion(session, suggestion.id)
    assert (record.status, record.status_by, record.status_at, record.status_reason) == (
        "acted",
        "dr-b",
        t2,
        "reviewed, fluids started",
    )
    assert [(a.action, a.actor, a.role, a.reason, a.at) for a in record.actions] == [
        ("acknowledge", "nurse-a", "nurse", None, t1),
        ("act", "dr-b", "clinician", "reviewed, fluids started", t2),
        ("note", "nurse-a", "nurse", "resolved after fluids", t3),
    ]


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_act_on_suggestion_dismiss_needs_a_reason(session: Session, reason: str | None) -> None:
    suggestion = make_suggestion()
    save_suggestions(session, [suggestion])

    with pytest.raises(InvalidInputError, match="reason"):
        act_on_suggestion(
            session, suggestion.id, action="dismiss", actor="dr-b", role="clinician", reason=reason
        )

    record = get_suggestion(session, suggestion.id)
    assert (record.status, record.actions) == ("open", [])


def test_act_on_suggestion_unknown_id_is_not_found(session: Session) -> None:
    with pytest.raises(NotFoundError):
        act_on_suggestion(session, "nope", action="acknowledge", actor="a", role="nurse")


def test_act_on_suggestion_refuses_dismissed_suggestions(session: Session) -> None:
    suggestion = make_suggestion()
    save_suggestions(session, [suggestion])
    act_on_suggestion(
        session,
        suggestion.id,
        action="dismiss",
        actor="dr-b",
        role="clinician",
        reason="not applicable",
    )

    for action in ("acknowledge", "act", "dismiss"):
        with pytest.raises(ConflictError, match="dismissed"):
            act_on_suggestion(
                session,
                suggestion.id,
                action=action,  # type: ignore[arg-type]
                actor="dr-c",
                role="clinician",
                reason="again",
            )

    assert count_rows(session, SuggestionAction) == 1


def test_act_on_suggestion_does_not_move_acted_back_to_acknowledged(session: Session) -> None:
    suggestion = make_suggestion()
    save_suggestions(session, [suggestion])
    act_on_suggestion(session, suggestion.id, action="act", actor="dr-b", role="clinician")

    with pytest.raises(ConflictError):
        act_on_suggestion(session, suggestion.id, action="acknowledge", actor="n", role="nurse")
    assert get_suggestion(session, suggestion.id).status == "acted"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"action": "approve", "actor": "a", "role": "nurse"},
        {"action": "acknowledge", "actor": " ", "role": "nurse"},
        {"action": "acknowledge", "actor": "a", "role": ""},
        {"action": "acknowledge", "actor": "a", "role": "nurse", "at": dt.datetime(2025, 1, 1)},
    ],
)
def test_act_on_suggestion_refuses_bad_arguments(session: Session, kwargs: dict[str, Any]) -> None:
    suggestion = make_suggestion()
    save_suggestions(session, [suggestion])

    with pytest.raises(InvalidInputError):
        act_on_suggestion(session, suggestion.id, **kwargs)


# --- the lifecycle: every (status, action) pair (docs/suggestions.md) -----------------

#: How a suggestion gets into each status before the tested action: who did it, in which
#: role, with which reason.
SETUP: dict[str, tuple[str, str, str, str | None] | None] = {
    "open": None,
    "acknowledged": ("acknowledge", "nurse-a", "nurse", None),
    "acted": ("act", "dr-b", "clinician", "escalated to outreach"),
    "dismissed": ("dismiss", "dr-b", "clinician", "known COPD, target SpO2 88-92%"),
    # Not a person's action: rescoring found that the condition cleared (apply_rescore).
    "resolved": ("resolve", "system:rescoring", "system", None),
}
#: (status before, action) → status after, or ``None`` when the action is refused (409).
TRANSITIONS: dict[tuple[str, str], str | None] = {
    ("open", "acknowledge"): "acknowledged",
    ("open", "act"): "acted",
    ("open", "dismiss"): "dismissed",
    ("open", "note"): "open",
    ("acknowledged", "acknowledge"): None,
    ("acknowledged", "act"): "acted",
    ("acknowledged", "dismiss"): "dismissed",
    ("acknowledged", "note"): "acknowledged",
    ("acted", "acknowledge"): None,
    ("acted", "act"): None,
    ("acted", "dismiss"): None,
    ("acted", "note"): "acted",
    ("dismissed", "acknowledge"): None,
    ("dismissed", "act"): None,
    ("dismissed", "dismiss"): None,
    ("dismissed", "note"): "dismissed",
    ("resolved", "acknowledge"): None,
    ("resolved", "act"): None,
    ("resolved", "dismiss"): None,
    ("resolved", "note"): "resolved",
}


@pytest.mark.parametrize(("before", "action"), sorted(TRANSITIONS))
def test_every_lifecycle_transition(session: Session, before: str, action: str) -> None:
    suggestion = make_suggestion()
    save_suggestions(session, [suggestion])
    t1, t2 = T0 + dt.timedelta(minutes=5), T0 + dt.timedelta(minutes=30)
    setup = SETUP[before]
    if setup is not None and setup[0] == "resolve":
        apply_rescore(
            session,
            subject=suggestion.subject,
            kind=suggestion.kind,
            suggestions=[],
            cause="ObservationRecorded Observation/9 (outbox event 1)",
            at=t1,
        )
    elif setup is not None:
        first, actor, role, reason = setup
        act_on_suggestion(
            session,
            suggestion.id,
            action=first,  # type: ignore[arg-type]
            actor=actor,
            role=role,
            reason=reason,
            at=t1,
        )
    record = get_suggestion(session, suggestion.id)
    status_before = (record.status, record.status_by, record.status_at, record.status_reason)
    actions_before = len(record.actions)
    after = TRANSITIONS[(before, action)]

    def later() -> SuggestionRecord:
        return act_on_suggestion(
            session,
            suggestion.id,
            action=action,  # type: ignore[arg-type]
            actor="nurse-c",
            role="nurse",
            reason="second opinion",
            at=t2,
        )

    if after is None:
        with pytest.raises(ConflictError) as refused:
            later()
        message = str(refused.value)
        assert before in message  # the current status
        assert setup is not None and setup[1] in message  # who set it
        assert t1.isoformat() in message  # and when
        record = get_suggestion(session, suggestion.id)
        assert (record.status, record.status_by, record.status_at, record.status_reason) == (
            status_before
        )
        assert len(record.actions) == actions_before
        return
    record = later()
    assert record.status == after
    assert [a.action for a in record.actions][-1] == action
    assert (record.actions[-1].actor, record.actions[-1].reason) == ("nurse-c", "second opinion")
    if action == "note":  # a note never changes the status, nor who set it, nor why
        assert (record.status, record.status_by, record.status_at, record.status_reason) == (
            status_before
        )
    else:
        assert (record.status_by, record.status_at, record.status_reason) == (
            "nurse-c",
            t2,
            "second opinion",
        )


def test_the_transition_table_covers_every_status_and_action() -> None:
    statuses = {s.value for s in SuggestionStatus}
    assert {before for before, _ in TRANSITIONS} == statuses
    assert {action for _, action in TRANSITIONS} == {"acknowledge", "act", "dismiss", "note"}
    assert len(TRANSITIONS) == len(statuses) * 4


@pytest.mark.parametrize("reason", [None, "  "])
def test_a_note_needs_text(session: Session, reason: str | None) -> None:
    suggestion = make_suggestion()
    save_suggestions(session, [suggestion])

    with pytest.raises(InvalidInputError, match="note"):
        act_on_suggestion(
            session, suggestion.id, action="note", actor="n", role="nurse", reason=reason
        )

    assert get_suggestion(session, suggestion.id).actions == []


def test_admin_may_not_act_on_any_suggestion(session: Session) -> None:
    nurse, finance = make_suggestion(), PlainSuggestion(id="fin-1")
    save_suggestions(session, [nurse, finance])

    for sid in (nurse.id, "fin-1", "no-such-id"):
        for action in ("acknowledge", "act", "dismiss", "note"):
            with pytest.raises(PermissionDeniedError, match="admin"):
                act_on_suggestion(
                    session,
                    sid,
                    action=action,  # type: ignore[arg-type]
                    actor="root",
                    role="admin",
                    reason="tidy up",
                )

    assert count_rows(session, SuggestionAction) == 0


def test_a_suggestion_the_role_may_not_read_is_not_found(session: Session) -> None:
    save_suggestions(session, [PlainSuggestion(id="fin-1")])

    with pytest.raises(NotFoundError) as hidden:
        act_on_suggestion(session, "fin-1", action="acknowledge", actor="n", role="nurse")
    with pytest.raises(NotFoundError) as missing:
        act_on_suggestion(session, "fin-2", action="acknowledge", actor="n", role="nurse")
    with pytest.raises(NotFoundError) as hidden_read:
        get_suggestion(session, "fin-1", audiences={"nurse"})

    assert str(hidden.value) == str(missing.value).replace("fin-2", "fin-1")
    assert str(hidden_read.value) == str(hidden.value)
    assert count_rows(session, SuggestionAction) == 0


def test_leadership_reads_finance_suggestions_but_may_not_act_on_them(session: Session) -> None:
    save_suggestions(session, [PlainSuggestion(id="fin-1")])

    with pytest.raises(PermissionDeniedError, match="leadership"):
        act_on_suggestion(session, "fin-1", action="acknowledge", actor="cfo", role="leadership")
