"""Finance KPIs for leadership: open revenue leakage, denial risk and how much is worked.

:func:`finance_summary` totals the stored ``finance.revenue_leakage`` and
``finance.denial_risk`` suggestions (see :mod:`reasoning.finance.worklist` for the
denial-risk contract) as they stood at a moment, from the audit trail: a suggestion is
counted if it was made by then, and its status then is the one set by its last
:class:`~healthos_core.advisory.SuggestionAction` up to that moment (``open`` if none).
"Open" in the totals means not yet worked: ``open`` or ``acknowledged``.

Amounts are the suggestions' current content (a re-score refreshes them); money is
summed as :class:`~decimal.Decimal` and returned as strings with two decimals.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from healthos_core.advisory import SuggestionAction, SuggestionRecord
from healthos_core.billing.entities import ChargeItem, Claim
from healthos_core.billing.payers import coverage_active_on, coverage_order
from healthos_core.db import utcnow
from healthos_core.errors import InvalidInputError
from healthos_core.record.entities import Coverage, Encounter, Organization
from healthos_core.suggestion_history import statuses_at
from reasoning.finance.worklist import (
    DENIAL_REASONS,
    DENIAL_RISK_KIND,
    OPEN_STATUSES,
    OUTCOMES,
    expected_loss,
)

__all__ = ["LEAKAGE_KINDS", "REVENUE_LEAKAGE_KIND", "UNKNOWN", "finance_summary"]

#: Kind of the revenue-leakage scorer's suggestions.
REVENUE_LEAKAGE_KIND: Final = "finance.revenue_leakage"
#: Leakage kinds (the ``band`` of a leakage suggestion).
LEAKAGE_KINDS: Final[tuple[str, ...]] = (
    "missed_charge",
    "unbilled_encounter",
    "late_charge",
    "underpayment",
    "unworked_denial",
    "charge_without_event",
)
#: Key of the group of suggestions with no payer, facility or band.
UNKNOWN: Final = "unknown"

_KINDS: Final = (DENIAL_RISK_KIND, REVENUE_LEAKAGE_KIND)
_STATUSES: Final = ("open", "acknowledged", "acted", "dismissed")
_CHUNK: Final = 500
_ZERO: Final = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class _Row:
    id: str
    kind: str
    band: str | None
    subject: str
    facility_id: str | None
    score: float | None
    amount: Decimal | None
    currency: str | None


@dataclass(slots=True)
class _Total:
    count: int = 0
    amount: Decimal = _ZERO
    loss: Decimal = _ZERO

    def add(self, amount: Decimal | None, loss: Decimal | None = None) -> None:
        self.count += 1
        self.amount += amount or _ZERO
        self.loss += loss or _ZERO


def _money(amount: Decimal) -> str:
    return format(amount.quantize(Decimal("0.01")), "f")


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _split(subject: str) -> tuple[str, str]:
    kind, _, ident = subject.partition("/")
    return kind, ident


def _subject_context(
    session: Session, subjects: Iterable[str]
) -> dict[str, tuple[str | None, str | None]]:
    """Return ``subject → (payer id, facility id)`` for Claim, Encounter and ChargeItem subjects.

    A claim's payer is its insurer. An encounter's is the insurer of its first claim
    (oldest, then by id), else the primary coverage of the patient active on the day
    the encounter started; a charge's is its encounter's (or, without one, the primary
    coverage active on the day of the service). Other subjects have neither.
    """
    ids: dict[str, list[str]] = defaultdict(list)
    for subject in set(subjects):
        kind, ident = _split(subject)
        ids[kind].append(ident)
    context: dict[str, tuple[str | None, str | None]] = {}
    for chunk in _chunks(ids["Claim"]):
        for cid, insurer, facility in session.execute(
            select(Claim.id, Claim.insurer_id, Claim.facility_id).where(Claim.id.in_(chunk))
        ):
            context[f"Claim/{cid}"] = (insurer, facility)
    # Charges → their encounter (or the patient and day, without one).
    charge_encounter: dict[str, str] = {}
    charge_day: dict[str, tuple[str, dt.date]] = {}
    for chunk in _chunks(ids["ChargeItem"]):
        for row in session.execute(
            select(
                ChargeItem.id,
                ChargeItem.encounter_id,
                ChargeItem.patient_id,
                ChargeItem.facility_id,
                ChargeItem.occurred_at,
                ChargeItem.entered_at,
            ).where(ChargeItem.id.in_(chunk))
        ):
            context[f"ChargeItem/{row.id}"] = (None, row.facility_id)
            if row.encounter_id is not None:
                charge_encounter[row.id] = row.encounter_id
            else:
                charge_day[row.id] = (row.patient_id, (row.occurred_at or row.entered_at).date())
    encounter_ids = sorted(set(ids["Encounter"]) | set(charge_encounter.values()))
    encounters: dict[str, tuple[str, str | None, dt.date | None]] = {}
    encounter_payer: dict[str, str] = {}
    for chunk in _chunks(encounter_ids):
        for eid, patient, facility, start in session.execute(
            select(
                Encounter.id, Encounter.patient_id, Encounter.facility_id, Encounter.period_start
            ).where(Encounter.id.in_(chunk))
        ):
            encounters[eid] = (patient, facility, None if start is None else start.date())
        for claim_encounter, insurer in session.execute(
            select(Claim.encounter_id, Claim.insurer_id)
            .where(Claim.encounter_id.in_(chunk), Claim.insurer_id.is_not(None))
            .order_by(Claim.encounter_id, Claim.created.nulls_last(), Claim.id)
        ):
            if claim_encounter is not None and insurer is not None:
                encounter_payer.setdefault(claim_encounter, insurer)
    wanted = {
        (patient, day)
        for eid, (patient, _, day) in encounters.items()
        if eid not in encounter_payer and day is not None
    } | set(charge_day.values())
    coverage_payer = _coverage_payers(session, wanted)
    for eid, (patient, facility, day) in encounters.items():
        payer = encounter_payer.get(eid)
        if payer is None and day is not None:
            payer = coverage_payer.get((patient, day))
        context[f"Encounter/{eid}"] = (payer, facility)
    for charge, eid in charge_encounter.items():
        ref = f"ChargeItem/{charge}"
        payer = context.get(f"Encounter/{eid}", (None, None))[0]
        context[ref] = (payer, context[ref][1] or encounters.get(eid, ("", None, None))[1])
    for charge, key in charge_day.items():
        ref = f"ChargeItem/{charge}"
        context[ref] = (coverage_payer.get(key), context[ref][1])
    return context


def _coverage_payers(
    session: Session, wanted: set[tuple[str, dt.date]]
) -> dict[tuple[str, dt.date], str]:
    """Return ``(patient, day) → payer`` of the primary coverage active that day."""
    patients = sorted({patient for patient, _ in wanted})
    coverages: dict[str, list[Coverage]] = defaultdict(list)
    for chunk in _chunks(patients):
        for coverage in session.scalars(
            select(Coverage).where(Coverage.patient_id.in_(chunk), Coverage.payor_id.is_not(None))
        ):
            coverages[coverage.patient_id].append(coverage)

    def primary_first(coverage: Coverage) -> tuple[int, float, str]:
        order = coverage_order(coverage)
        start = coverage.period_start.timestamp() if coverage.period_start else float("-inf")
        return (order if order is not None else 1, -start, coverage.id)

    payers: dict[tuple[str, dt.date], str] = {}
    for patient, day in wanted:
        active = [c for c in coverages.get(patient, ()) if coverage_active_on(c, day)[0]]
        if active and (payer := min(active, key=primary_first).payor_id) is not None:
            payers[(patient, day)] = payer
    return payers


def _outcomes_at(session: Session, as_of: dt.datetime) -> dict[str, Counter[str]]:
    """Return per suggestion kind the number of actions by outcome up to ``as_of``."""
    counts: dict[str, Counter[str]] = {kind: Counter() for kind in _KINDS}
    query = (
        select(SuggestionRecord.kind, SuggestionAction.outcome)
        .join(SuggestionRecord, SuggestionRecord.id == SuggestionAction.suggestion_id)
        .where(
            SuggestionRecord.kind.in_(_KINDS),
            SuggestionRecord.created_at <= as_of,
            SuggestionAction.at <= as_of,
            SuggestionAction.outcome.is_not(None),
        )
    )
    for kind, outcome in session.execute(query):
        if outcome is not None:
            counts[kind][outcome] += 1
    return counts


def _groups(
    totals: dict[str, _Total], names: dict[str, str | None] | None, *, loss: bool, amount_key: str
) -> dict[str, dict[str, Any]]:
    """Render totals keyed by group, largest amount first (then by key)."""
    out: dict[str, dict[str, Any]] = {}
    for key, total in sorted(totals.items(), key=lambda kv: (-kv[1].amount, kv[0])):
        entry: dict[str, Any] = {}
        if names is not None:
            entry["payer"] = names.get(key)
        entry["count"] = total.count
        entry[amount_key] = _money(total.amount)
        if loss:
            entry["expected_loss"] = _money(total.loss)
        out[key] = entry
    return out


def _fixed_groups(
    totals: dict[str, _Total], keys: Sequence[str], *, loss: bool, amount_key: str
) -> dict[str, dict[str, Any]]:
    """Render totals of a fixed vocabulary: every known key (zeros too), then others."""
    out: dict[str, dict[str, Any]] = {}
    for key in [*keys, *sorted(set(totals) - set(keys))]:
        total = totals.get(key, _Total())
        entry: dict[str, Any] = {"count": total.count, amount_key: _money(total.amount)}
        if loss:
            entry["expected_loss"] = _money(total.loss)
        out[key] = entry
    return out


def finance_summary(session: Session, *, as_of: dt.datetime | None = None) -> dict[str, Any]:
    """Return the finance KPIs of the command center: open leakage, denial risk, work done.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        The caller's session (read only).
    as_of : datetime, optional
        Aware moment to report at (default now): suggestions made by then, with the
        status their audit trail gave them then.

    Returns
    -------
    dict
        JSON-ready; amounts are decimal strings with two decimals in ``currency`` (the
        one currency of the suggestions; ``"mixed"`` when there is more than one, and
        then totals add across currencies, as in ``healthos billing report``; ``None``
        when there are none). Payer and facility groups are keyed by Organization id
        (:data:`UNKNOWN` when the subject has none) and listed largest amount first.

        ``as_of``
            ISO 8601 UTC.
        ``currency``
            As above.
        ``revenue_leakage``
            Open leakage: ``count``, ``amount_at_stake``, and ``by_kind`` (every one of
            :data:`LEAKAGE_KINDS`, zeros included), ``by_payer`` (each with its
            ``payer`` name) and ``by_facility``, each ``{"count", "amount_at_stake"}``.
            A leakage subject's payer is its claim's insurer, or for an encounter or
            charge the insurer of the encounter's claim, else the patient's primary
            coverage active on the day of service.
        ``denial_risk``
            Open denial risk: ``count``, ``billed_at_risk`` (sum of claim totals),
            ``expected_loss`` (sum of each claim's p(denial) × amount in cents), and
            ``by_reason`` (every one of :data:`~reasoning.finance.worklist.DENIAL_REASONS`),
            ``by_payer`` and ``by_facility`` with the same three figures.
        ``work``
            Per kind (``finance.denial_risk``, ``finance.revenue_leakage``): the
            number of suggestions ``open``, ``acknowledged``, ``acted`` and
            ``dismissed`` at ``as_of``, ``worked`` (acted + dismissed), ``unworked``
            (open + acknowledged), and ``outcomes``: the number of audited actions by
            worklist outcome (``fixed``, ``resubmitted``, ``appealed``, ``accepted``).

    Raises
    ------
    InvalidInputError
        If ``as_of`` is naive.
    """
    if as_of is None:
        as_of = utcnow()
    elif as_of.tzinfo is None or as_of.utcoffset() is None:
        raise InvalidInputError("as_of must be timezone-aware (e.g. 2025-03-01T00:00:00Z)")
    as_of = as_of.astimezone(dt.UTC)
    session.flush()
    rows = [
        _Row(*r)
        for r in session.execute(
            select(
                SuggestionRecord.id,
                SuggestionRecord.kind,
                SuggestionRecord.band,
                SuggestionRecord.subject,
                SuggestionRecord.facility_id,
                SuggestionRecord.score,
                SuggestionRecord.amount_at_stake,
                SuggestionRecord.currency,
            )
            .where(SuggestionRecord.kind.in_(_KINDS), SuggestionRecord.created_at <= as_of)
            .order_by(SuggestionRecord.id)
        )
    ]
    statuses = statuses_at(session, [r.id for r in rows], as_of)
    work: dict[str, Counter[str]] = {kind: Counter() for kind in _KINDS}
    open_rows: list[_Row] = []
    for row in rows:
        status = statuses.get(row.id, "open")
        work[row.kind][status] += 1
        if status in OPEN_STATUSES:
            open_rows.append(row)
    context = _subject_context(session, (r.subject for r in open_rows))
    leak: dict[str, dict[str, _Total]] = {g: defaultdict(_Total) for g in ("kind", "payer", "fac")}
    risk: dict[str, dict[str, _Total]] = {g: defaultdict(_Total) for g in ("kind", "payer", "fac")}
    leak_total, risk_total = _Total(), _Total()
    payer_ids: set[str] = set()
    currencies = {r.currency for r in open_rows if r.currency}
    for row in open_rows:
        payer, subject_facility = context.get(row.subject, (None, None))
        if payer is not None:
            payer_ids.add(payer)
        keys = {
            "kind": row.band or UNKNOWN,
            "payer": payer or UNKNOWN,
            "fac": row.facility_id or subject_facility or UNKNOWN,
        }
        if row.kind == REVENUE_LEAKAGE_KIND:
            leak_total.add(row.amount)
            for group, key in keys.items():
                leak[group][key].add(row.amount)
        else:
            loss = expected_loss(row.score, row.amount)
            risk_total.add(row.amount, loss)
            for group, key in keys.items():
                risk[group][key].add(row.amount, loss)
    names: dict[str, str | None] = dict.fromkeys(payer_ids)
    for chunk in _chunks(sorted(payer_ids)):
        for payer_id, name in session.execute(
            select(Organization.id, Organization.name).where(Organization.id.in_(chunk))
        ):
            names[payer_id] = name
    names.setdefault(UNKNOWN, None)
    return {
        "as_of": as_of.isoformat(),
        "currency": (
            None if not currencies else currencies.pop() if len(currencies) == 1 else "mixed"
        ),
        "revenue_leakage": {
            "count": leak_total.count,
            "amount_at_stake": _money(leak_total.amount),
            "by_kind": _fixed_groups(
                leak["kind"], LEAKAGE_KINDS, loss=False, amount_key="amount_at_stake"
            ),
            "by_payer": _groups(leak["payer"], names, loss=False, amount_key="amount_at_stake"),
            "by_facility": _groups(leak["fac"], None, loss=False, amount_key="amount_at_stake"),
        },
        "denial_risk": {
            "count": risk_total.count,
            "billed_at_risk": _money(risk_total.amount),
            "expected_loss": _money(risk_total.loss),
            "by_reason": _fixed_groups(
                risk["kind"], DENIAL_REASONS, loss=True, amount_key="billed_at_risk"
            ),
            "by_payer": _groups(risk["payer"], names, loss=True, amount_key="billed_at_risk"),
            "by_facility": _groups(risk["fac"], None, loss=True, amount_key="billed_at_risk"),
        },
        "work": {
            kind: {
                **{status: work[kind][status] for status in _STATUSES},
                "worked": work[kind]["acted"] + work[kind]["dismissed"],
                "unworked": work[kind]["open"] + work[kind]["acknowledged"],
                "outcomes": {o: outcomes[o] for o in OUTCOMES},
            }
            for kind, outcomes in _outcomes_at(session, as_of).items()
        },
    }
