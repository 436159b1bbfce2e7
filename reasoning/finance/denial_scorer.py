"""Claim denial risk: a calibrated probability per claim before the payer answers.

:func:`score_claims` is the batch path (used by :class:`DenialRiskScorer` and the bench):

1. :func:`reasoning.features.denial.load_context` reads the claims and their record
   context; :func:`reasoning.features.denial.build` builds the feature matrix (numpy,
   vectorised);
2. the ``denial`` model (:mod:`reasoning.inference`, onnxruntime) gives the calibrated
   probability, and :func:`explain_additive` its explanation for the whole batch: the
   model is additive (one feature per tree, sigmoid calibration), so the log-odds
   contribution of a group is exactly ``logit p(reference with the group's values) −
   logit p(reference)`` and the contributions add up with the base to ``logit p``. Each
   group's distinct values are scored once, all in one onnxruntime call;
3. the **band** is the predicted CARC group (:data:`reasoning.features.denial.CARC_GROUPS`):
   the group whose features push the log-odds up most, if by at least
   :data:`BAND_MIN_CONTRIBUTION` (else ``other``);
4. the scrubber (:func:`healthos_core.billing.claims.scrub_claims`, about 900 claims/s)
   runs **only on claims a deterministic edit indicator of the features flags**
   (coverage, authorisation, filing, diagnosis, completeness, duplicate, units,
   bundling): its error and warning issues become factors ``rule:<edit>`` with
   contribution 0.0 — the model's own factors already carry those signals in log-odds; the
   rule factors give the deterministic reason, its message and its CARC (``value``, unit
   ``X12 CARC``). ``scrub="all"`` scrubs every claim, ``"none"`` none.

Severity from the calibrated probability: ≥ 0.5 critical, ≥ 0.2 warning, else info. The
amount at stake is the claim total; the worklist orders by expected loss (p × total).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Final, Literal

import numpy as np
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from healthos_core.billing.claims import ClaimIssue, scrub_claims
from healthos_core.billing.entities import Claim, ClaimBillingStatus, ClaimResponse
from reasoning.base import Scorer, resolve_as_of, subject_ids
from reasoning.features import denial as features
from reasoning.finance.fixes import (
    CATEGORY_WORDS,
    CLASS_WORDS,
    EDIT_GROUP,
    GROUP_LABEL,
    money,
)
from reasoning.inference import ModelNotAvailableError, ModelStore, OnnxModel, default_store
from reasoning.suggestion import Audience, Explanation, Factor, Severity, Source, Suggestion

__all__ = [
    "SCORABLE_STATUSES",
    "AdditiveExplanation",
    "DenialRiskScorer",
    "explain_additive",
    "predicted_bands",
    "score_claims",
]

MODEL_NAME: Final = "denial"
SCORER_NAME: Final = "denial_risk"
SCORER_VERSION: Final = "1.0.0"
REFERENCE: Final = (
    "HealthOS denial-risk model (see its model card), trained on synthea-rcm ClaimResponses; "
    "X12 CARC groups; HealthOS claim scrubber edits"
)
#: A claim is scored while it has no payer answer: draft, or submitted and not adjudicated.
SCORABLE_STATUSES: Final = (ClaimBillingStatus.DRAFT.value, ClaimBillingStatus.SUBMITTED.value)
#: (lower bound of p, severity), highest first.
_SEVERITY: Final = ((0.5, Severity.CRITICAL), (0.2, Severity.WARNING), (0.0, Severity.INFO))
#: Feature columns whose non-zero value means a scrubber edit fires on the claim.
_EDIT_FLAGS: Final = (
    "coverage_inactive",
    "coverage_payer_mismatch",
    "coverage_not_primary",
    "auth_missing_lines",
    "filing_over_limit",
    "diagnosis_missing",
    "principal_not_valid_icd10cm",
    "diagnosis_pointer_invalid",
    "lines_incomplete",
    "provider_missing",
    "duplicate",
    "units_over_limit_lines",
    "bundled_lines",
)
#: A CARC group is the band only if its features add at least this many log-odds (about
#: x1.6 the odds); below, the band is ``other``.
BAND_MIN_CONTRIBUTION: Final = 0.5
_EPS: Final = 1e-7
_NAN_KEY: Final = np.float32(-3.0e38)
_TOP_FACTORS: Final = 5


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p.astype(np.float64), _EPS, 1.0 - _EPS)
    return np.asarray(np.log(q / (1.0 - q)))


@dataclass(frozen=True, slots=True)
class AdditiveExplanation:
    """Probabilities and exact group contributions of a batch.

    Attributes
    ----------
    probability : numpy.ndarray
        ``(n,)`` calibrated probabilities.
    base_logit : float
        Log-odds of the reference row (training medians).
    groups : tuple of str
        The model's explanation groups (columns of ``contributions``).
    contributions : numpy.ndarray
        ``(n, len(groups))`` log-odds; ``base_logit + row sum == logit(probability)``.
    """

    probability: np.ndarray
    base_logit: float
    groups: tuple[str, ...]
    contributions: np.ndarray


def explain_additive(model: OnnxModel, X: np.ndarray) -> AdditiveExplanation:
    """Score and explain a batch with one onnxruntime call (exact for an additive model).

    For each group, the distinct values of its columns in ``X`` are switched into the
    reference row and scored once; a row's contribution is the change in log-odds its
    values make. This equals :meth:`reasoning.inference.OnnxModel.explain` with one group
    order when the model is additive (``interaction_cst="no_interactions"`` and sigmoid
    calibration), as the ``denial`` models are.

    Parameters
    ----------
    model : OnnxModel
    X : numpy.ndarray
        ``(n, n_features)``; NaN = missing.

    Raises
    ------
    ValueError
        If the width differs from the model's features.
    """
    data = np.asarray(X, dtype=np.float32)
    if data.ndim != 2 or data.shape[1] != len(model.feature_names):
        raise ValueError(
            f"{model.name}: expected features of shape (n, {len(model.feature_names)}), "
            f"got {np.shape(X)}"
        )
    n = len(data)
    index = {name: i for i, name in enumerate(model.feature_names)}
    spec = model.manifest["explanation"]["groups"]
    reference = model.reference.astype(np.float32)
    blocks: list[np.ndarray] = [reference[None, :]]
    inverses: list[np.ndarray] = []
    offsets: list[int] = []
    offset = 1
    for group in model.groups:
        columns = np.array([index[f] for f in spec[group]], dtype=np.intp)
        values = data[:, columns]
        keyed = np.where(np.isnan(values), _NAN_KEY, values)
        unique, inverse = np.unique(keyed, axis=0, return_inverse=True)
        unique = np.where(unique == _NAN_KEY, np.float32(np.nan), unique)
        block = np.repeat(reference[None, :], len(unique), axis=0)
        block[:, columns] = unique
        blocks.append(block)
        inverses.append(np.asarray(inverse).reshape(-1))
        offsets.append(offset)
        offset += len(unique)
    blocks.append(data)
    probabilities = model.predict_proba(np.vstack(blocks))
    logits = _logit(probabilities)
    base = float(logits[0])
    contributions = np.empty((n, len(model.groups)), dtype=np.float64)
    for j, (inverse, start) in enumerate(zip(inverses, offsets, strict=True)):
        contributions[:, j] = logits[start + inverse] - base
    return AdditiveExplanation(
        probability=probabilities[offset:],
        base_logit=base,
        groups=tuple(model.groups),
        contributions=contributions,
    )


def predicted_bands(explained: AdditiveExplanation) -> np.ndarray:
    """Return the predicted CARC group of each row (vectorised).

    The CARC group (:data:`reasoning.features.denial.CARC_GROUP_OF`) whose explanation
    groups add the most log-odds, if at least :data:`BAND_MIN_CONTRIBUTION`; else
    ``"other"``.
    """
    carc_groups = [g for g in features.CARC_GROUPS if g != "other"]
    of = [features.CARC_GROUP_OF.get(g, "other") for g in explained.groups]
    summed = np.zeros((len(explained.probability), len(carc_groups)))
    for j, group in enumerate(of):
        if group != "other":
            summed[:, carc_groups.index(group)] += explained.contributions[:, j]
    best = np.argmax(summed, axis=1) if len(carc_groups) else np.zeros(0, dtype=np.intp)
    top = summed[np.arange(len(best)), best]
    names = np.array([*carc_groups, "other"], dtype=object)
    return np.asarray(np.where(top >= BAND_MIN_CONTRIBUTION, names[best], "other"))


def _iso(day: float) -> str:
    if math.isnan(day) or math.isinf(day):
        return "unknown date"
    return dt.date.fromordinal(int(day) + dt.date(1970, 1, 1).toordinal()).isoformat()


class _Row:
    """Feature values of one claim by name (a view on its row of ``X``)."""

    __slots__ = ("_column", "_values")

    def __init__(self, values: list[float], column: dict[str, int]) -> None:
        self._values = values
        self._column = column

    def __getitem__(self, name: str) -> float:
        return self._values[self._column[name]]


class _Claims:
    """Per-claim details for factor texts and fixes, read from the context."""

    def __init__(self, ctx: features.DenialContext, built: features.DenialFeatures) -> None:
        self.ctx = ctx
        self.built = built
        self.lines: dict[int, list[int]] = {}
        for position, c in enumerate(ctx.line_claim.tolist()):
            self.lines.setdefault(c, []).append(position)
        self.column = {name: i for i, name in enumerate(features.FEATURE_NAMES)}

    def first_day(self, c: int) -> float:
        days = [self.ctx.line_day[p] for p in self.lines.get(c, [])]
        known = [d for d in days if not math.isnan(d)]
        return min(known) if known else float(self.ctx.billable_start_day[c])

    def coverage(self, c: int) -> tuple[str, str, bool, float, float, int | None] | None:
        for cov in self.ctx.coverages.get(self.ctx.patient_id[c], ()):
            if cov[0] == self.ctx.coverage_id[c]:
                return cov
        return None

    def payer(self, c: int) -> str:
        terms = self.ctx.contracts.get(self.ctx.insurer_id[c])
        if terms is not None and terms.payer_name:
            return terms.payer_name
        return f"Organization/{self.ctx.insurer_id[c]}" if self.ctx.insurer_id[c] else "the payer"

    def line(self, c: int, sequence: int) -> int | None:
        for p in self.lines.get(c, []):
            if int(self.ctx.line_sequence[p]) == sequence:
                return p
        return None

    def category(self, position: int) -> str:
        ctx = self.ctx
        cat = ctx.line_category[position] or ctx.code_category.get(
            (ctx.line_system[position], ctx.line_code[position]), ""
        )
        return CATEGORY_WORDS.get(cat, cat or "service")


def _describe(group: str, v: _Row, c: int, info: _Claims) -> tuple[float | str | None, str]:
    """Return a factor's value and its text in a biller's words."""
    ctx = info.ctx
    cid = ctx.claim_id[c]
    if group == "coverage":
        cov = info.coverage(c)
        if v["coverage_missing"]:
            return "missing", "no coverage (member id) on the claim"
        if v["coverage_payer_mismatch"]:
            return "payer mismatch", "the claim's payer is not the coverage's payer"
        if v["coverage_days_after_end"] > 0 and cov is not None:
            return v["coverage_days_after_end"], (
                f"coverage ended {_iso(cov[4])}, {int(v['coverage_days_after_end'])} days "
                "before the date of service"
            )
        if v["coverage_days_before_start"] > 0 and cov is not None:
            return v["coverage_days_before_start"], (
                f"coverage starts {_iso(cov[3])}, after the date of service"
            )
        if v["coverage_inactive"]:
            return "inactive", "coverage not in force on a date of service"
        if v["coverage_not_primary"]:
            return "secondary", "billed to a secondary coverage while a primary is active"
        return "active", "coverage active on the date of service"
    if group == "authorization":
        if v["auth_missing_lines"]:
            return v["auth_missing_lines"], (
                f"{int(v['auth_missing_lines'])} line(s) need prior authorisation and none is "
                "on the claim"
            )
        if v["auth_required_lines"]:
            return v["auth_required_lines"], "prior authorisation needed and on the claim"
        return 0.0, "no prior authorisation needed"
    if group == "filing":
        return v["filing_days"], (
            f"submitted {int(v['filing_days'])} days after service; payer limit "
            f"{int(v['filing_limit_days'])} days"
            if not math.isnan(v["filing_limit_days"]) and not math.isnan(v["filing_days"])
            else "filing delay unknown (no contract or date of service)"
        )
    if group == "diagnosis":
        if v["diagnosis_missing"]:
            return 0.0, "no diagnosis on the claim"
        if v["principal_not_valid_icd10cm"]:
            return v["n_diagnoses"], "principal diagnosis is not a billable ICD-10-CM code"
        if v["diagnosis_pointer_invalid"]:
            return v["diagnosis_pointer_invalid"], "a line points to a diagnosis not on the claim"
        return v["n_diagnoses"], f"{int(v['n_diagnoses'])} diagnosis code(s)"
    if group == "completeness":
        if v["provider_missing"]:
            return "no provider", "no billing provider on the claim"
        return v["lines_incomplete"], (
            f"{int(v['lines_incomplete'])} incomplete line(s)"
            if v["lines_incomplete"]
            else "lines complete"
        )
    if group == "duplicate":
        other = info.built.duplicate_of.get(cid)
        if other:
            return 1.0, f"same patient, date and services as Claim/{other}"
        return v["same_day_claims_before"], "no earlier claim with the same services"
    if group == "bundling":
        return v["bundled_lines"], (
            f"{int(v['bundled_lines'])} line(s) bundled into another code on the claim"
            if v["bundled_lines"]
            else "no bundled pair"
        )
    if group == "units":
        return v["units_over_limit_lines"], (
            f"{int(v['units_over_limit_lines'])} line(s) over the payer's unit limit"
            if v["units_over_limit_lines"]
            else "units within the payer's limits"
        )
    if group == "payer":
        terms = ctx.contracts.get(ctx.insurer_id[c])
        plan = terms.coverage_type_code if terms is not None else None
        return info.payer(c), f"{info.payer(c)}" + (f" ({plan})" if plan else "")
    if group == "encounter_class":
        klass = ctx.class_code[c]
        return klass or None, CLASS_WORDS.get(klass, "encounter class unknown")
    if group == "services":
        counts = sorted(
            ((v[f"lines_{cat}"], cat) for cat in features.CATEGORIES if v[f"lines_{cat}"]),
            reverse=True,
        )
        words = ", ".join(CATEGORY_WORDS.get(cat, cat) for _, cat in counts[:3])
        return v["n_lines"], f"{int(v['n_lines'])} line(s): {words or 'no category'}"
    if group == "amount":
        total = float(ctx.total[c]) if not math.isnan(ctx.total[c]) else 0.0
        return total, f"claim total {money(total, ctx.currency[c])}"
    if group == "resubmission":
        if v["corrected"]:
            return 1.0, "corrected claim" + (
                "; the original was denied" if v["original_denied"] else ""
            )
        return 0.0, "initial submission"
    if group == "patient_history":
        return v["patient_prior_denials"], (
            f"patient: {int(v['patient_prior_denials'])} denial(s) in "
            f"{int(v['patient_prior_claims'])} earlier answered claim(s)"
        )
    if group == "payer_history":
        return round(v["payer_prior_denial_rate"], 4), (
            f"payer denied {v['payer_prior_denial_rate']:.0%} of earlier claims"
        )
    return None, group.replace("_", " ")


def _fix(band: str, v: _Row, c: int, info: _Claims, issues: Sequence[ClaimIssue]) -> str:
    """Return the concrete fix for the predicted CARC group."""
    ctx = info.ctx
    cid = ctx.claim_id[c]
    built = info.built
    if band == "eligibility":
        cov = info.coverage(c)
        if v["coverage_missing"] or cov is None:
            return "verify eligibility: the claim names no coverage; attach the active Coverage"
        if v["coverage_payer_mismatch"]:
            return f"send the claim to the coverage's payer (Organization/{cov[1]})"
        if v["coverage_days_after_end"] > 0:
            return f"verify eligibility: coverage ended {_iso(cov[4])}; rebill the active payer"
        if v["coverage_days_before_start"] > 0:
            return f"verify eligibility: coverage starts {_iso(cov[3])}; rebill the active payer"
        if v["coverage_not_primary"]:
            return "bill the primary coverage first, then this one with its remittance"
        return f"verify eligibility with {info.payer(c)} for {_iso(info.first_day(c))}"
    if band == "authorization":
        for sequence in built.auth_missing_lines.get(cid, []):
            position = info.line(c, sequence)
            if position is not None:
                return (
                    f"request prior authorisation for {ctx.line_code[position]} "
                    f"({info.category(position)}) from {info.payer(c)}, or add its reference"
                )
        return f"check prior-authorisation needs with {info.payer(c)} and add the reference"
    if band == "timely_filing":
        limit = v["filing_limit_days"]
        days = v["filing_days"]
        if math.isnan(limit) or math.isnan(days):
            return "check the payer's filing limit and submit now"
        if days > limit:
            return (
                f"filing limit passed by {int(days - limit)} days (payer limit {int(limit)} "
                "days): appeal with proof of timely filing or write off"
            )
        return f"submit within {int(limit - days)} days: payer limit {int(limit)} days"
    if band == "coding":
        if v["diagnosis_missing"]:
            first = next(iter(sorted(info.lines.get(c, []))), None)
            line = int(ctx.line_sequence[first]) if first is not None else 1
            return f"attach a diagnosis for line {line} (principal ICD-10-CM)"
        if v["principal_not_valid_icd10cm"]:
            return "code the principal diagnosis as a billable ICD-10-CM code"
        if v["provider_missing"]:
            return "add the billing provider (the encounter's service provider)"
        for issue in issues:
            if EDIT_GROUP.get(issue.edit) == "coding":
                return issue.message[:200]
        return "review the diagnoses and line data before submitting"
    if band == "duplicate":
        other = built.duplicate_of.get(cid)
        if other:
            return f"void: duplicate of Claim/{other} (correct that claim instead)"
        return "check for an earlier claim of the same encounter before submitting"
    if band == "bundling":
        for sequence, comprehensive in built.bundled_lines.get(cid, []):
            return f"drop line {sequence}: bundled into {comprehensive} on the same claim"
        return "check the payer's bundling edits before submitting"
    if band == "units":
        for sequence in built.over_limit_lines.get(cid, []):
            position = info.line(c, sequence)
            if position is not None:
                limit = ctx.unit_limits.get(
                    (ctx.line_system[position], ctx.line_code[position]),
                    1,
                )
                return f"bill line {sequence} units ≤ {limit} (payer limit)"
        return "check the units of each line against the payer's limits"
    if issues:
        return f"fix: {issues[0].message}"[:300]
    return f"review before submitting to {info.payer(c)}"


def _severity(p: float) -> Severity:
    for low, severity in _SEVERITY:
        if p >= low:
            return severity
    return Severity.INFO


def _summary(text: str) -> str:
    return text if len(text) <= 140 else text[:137] + "..."


def _scrub(
    session: Session, claim_ids: Iterable[str], as_of: dt.datetime
) -> dict[str, list[ClaimIssue]]:
    ids = list(claim_ids)
    if not ids:
        return {}
    claims: list[Claim] = []
    for start in range(0, len(ids), 500):
        claims += list(session.scalars(select(Claim).where(Claim.id.in_(ids[start : start + 500]))))
    return scrub_claims(session, claims, as_of=as_of)


def score_claims(
    session: Session,
    claims_or_ids: Sequence[Claim | str],
    *,
    as_of: dt.datetime,
    model: OnnxModel | None = None,
    scrub: Literal["flagged", "all", "none"] = "flagged",
    top_factors: int = _TOP_FACTORS,
) -> list[Suggestion]:
    """Return one denial-risk suggestion per claim, in the order given.

    Parameters
    ----------
    session : Session
        Read only (the scrubber's reads are rolled back by the caller's session as usual;
        nothing is added or changed).
    claims_or_ids : sequence of Claim or str
    as_of : aware datetime
        The moment of scoring: answers after it are ignored; an unsubmitted claim's
        filing delay counts to it.
    model : OnnxModel, optional
        Default: the ``denial`` model of :func:`reasoning.inference.default_store`.
    scrub : {"flagged", "all", "none"}, default "flagged"
        Which claims the scrubber runs on for the ``rule:<edit>`` factors.
    top_factors : int, default 5

    Raises
    ------
    ModelNotAvailableError
        No ``denial`` model is available.
    ValueError
        ``as_of`` is naive.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware (UTC)")
    ids = [c if isinstance(c, str) else c.id for c in claims_or_ids]
    if not ids:
        return []
    model = model or default_store().get(MODEL_NAME)
    ctx = features.load_context(session, ids, as_of=as_of)
    built = features.build(ctx)
    explained = explain_additive(model, built.X)
    flags = np.zeros(len(built.claim_ids), dtype=bool)
    for name in _EDIT_FLAGS:
        flags |= built.column(name) > 0
    if scrub == "all":
        to_scrub = list(built.claim_ids)
    elif scrub == "flagged":
        to_scrub = [cid for cid, flag in zip(built.claim_ids, flags, strict=True) if flag]
    else:
        to_scrub = []
    issues = _scrub(session, to_scrub, as_of)
    return _suggestions(ctx, built, explained, issues, model, as_of, ids, top_factors)


def _suggestions(
    ctx: features.DenialContext,
    built: features.DenialFeatures,
    explained: AdditiveExplanation,
    issues: dict[str, list[ClaimIssue]],
    model: OnnxModel,
    as_of: dt.datetime,
    order: Sequence[str],
    top_factors: int,
) -> list[Suggestion]:
    info = _Claims(ctx, built)
    groups = explained.groups
    bands = predicted_bands(explained).tolist()
    # Python lists once: per-row numpy scalar access is the slow part of this loop
    probabilities = explained.probability.tolist()
    contributions_all = np.round(explained.contributions, 4).tolist()
    ranked_all = np.argsort(-np.abs(explained.contributions), axis=1, kind="stable")[
        :, :top_factors
    ].tolist()
    rows_of = built.rows.tolist()
    X_rows = built.X.tolist()
    source = Source(
        name=SCORER_NAME, version=f"{SCORER_VERSION}+model.{model.version}", reference=REFERENCE
    )
    method = f"model:{model.name}@{model.version}"
    by_id: dict[str, Suggestion] = {}
    for row, cid in enumerate(built.claim_ids):
        c = rows_of[row]
        p = probabilities[row]
        contributions = contributions_all[row]
        band = bands[row]
        values = _Row(X_rows[row], info.column)
        factors: list[Factor] = []
        for j in ranked_all[row]:
            value, text = _describe(groups[j], values, c, info)
            factors.append(
                Factor(
                    name=groups[j],
                    value=value,
                    contribution=contributions[j],
                    unit="log-odds",
                    text=text,
                )
            )
        found = issues.get(cid, [])
        for issue in found:
            factors.append(
                Factor(
                    name=f"rule:{issue.edit}",
                    value=issue.carc,
                    contribution=0.0,
                    unit="X12 CARC",
                    text=(
                        f"{issue.severity}"
                        + (f" (line {issue.sequence})" if issue.sequence is not None else "")
                        + f": {issue.message}"
                    ),
                )
            )
        evidence = [f"Claim/{cid}"]
        if ctx.coverage_id[c]:
            evidence.append(f"Coverage/{ctx.coverage_id[c]}")
        if ctx.insurer_id[c]:
            evidence.append(f"Contract/{ctx.insurer_id[c]}")
        flagged_lines = set(built.auth_missing_lines.get(cid, [])) | set(
            built.over_limit_lines.get(cid, [])
        )
        flagged_lines |= {s for s, _ in built.bundled_lines.get(cid, [])}
        for sequence in sorted(flagged_lines):
            position = info.line(c, sequence)
            if position is not None and ctx.line_procedure[position]:
                evidence.append(f"Procedure/{ctx.line_procedure[position]}")
        duplicate = built.duplicate_of.get(cid)
        if duplicate:
            evidence.append(f"Claim/{duplicate}")
        if ctx.related_id[c]:
            evidence.append(f"Claim/{ctx.related_id[c]}")
        for issue in found:
            evidence.extend(e for e in issue.evidence if e not in evidence)
        action = _fix(band, values, c, info, found)
        amount = ctx.total_amount[c]
        currency = ctx.currency[c]
        label = GROUP_LABEL[band]
        by_id[cid] = Suggestion(
            kind=DenialRiskScorer.kind,
            audience=Audience.FINANCE,
            severity=_severity(p),
            subject=f"Claim/{cid}",
            patient_id=ctx.patient_id[c],
            score=round(p, 4),
            band=band,
            summary=_summary(f"Denial risk {p:.0%}, likely {label}: {action}"),
            explanation=Explanation(
                method=method, factors=tuple(factors), evidence=tuple(dict.fromkeys(evidence))
            ),
            recommended_action=action,
            source=source,
            amount_at_stake=Decimal(amount) if amount is not None else None,
            currency=currency,
            created_at=as_of,
        )
    return [by_id[cid] for cid in order if cid in by_id]


class DenialRiskScorer(Scorer):
    """Denial risk of every claim not yet answered by its payer (draft or submitted).

    Parameters
    ----------
    store : ModelStore, optional
        Where the ``denial`` model is loaded from (default :func:`default_store`).
    min_probability : float, default 0.1
        Claims below it get no suggestion (the training denial rate is 11 %).
    scrub : {"flagged", "all", "none"}, default "flagged"
        See :func:`score_claims`.
    """

    name: ClassVar[str] = SCORER_NAME
    kind: ClassVar[str] = "finance.denial_risk"
    version: ClassVar[str] = SCORER_VERSION
    reference: ClassVar[str | None] = REFERENCE

    def __init__(
        self,
        *,
        store: ModelStore | None = None,
        min_probability: float = 0.1,
        scrub: Literal["flagged", "all", "none"] = "flagged",
    ) -> None:
        self.store = store
        self.min_probability = min_probability
        self.scrub = scrub

    def _model(self) -> OnnxModel | None:
        try:
            return (self.store or default_store()).get(MODEL_NAME)
        except ModelNotAvailableError:
            return None

    def score(self, session: Session, *, as_of: dt.datetime | None = None) -> list[Suggestion]:
        """Return a suggestion per unanswered claim at or above ``min_probability``.

        Sorted by expected loss (p × claim total), highest first.
        """
        return self._score(session, as_of=as_of, claim_ids=None)

    def score_subjects(
        self, session: Session, subjects: Collection[str], *, as_of: dt.datetime | None = None
    ) -> list[Suggestion]:
        """Score only the claims among ``subjects`` (see :meth:`Scorer.score_subjects`)."""
        ids = subject_ids(subjects, "Claim")
        return self._score(session, as_of=as_of, claim_ids=ids) if ids else []

    def _score(
        self, session: Session, *, as_of: dt.datetime | None, claim_ids: list[str] | None
    ) -> list[Suggestion]:
        now = resolve_as_of(as_of)
        model = self._model()
        if model is None:
            return []
        answered = exists().where(ClaimResponse.claim_id == Claim.id)
        query = select(Claim.id).where(Claim.billing_status.in_(SCORABLE_STATUSES), ~answered)
        if claim_ids is not None:
            query = query.where(Claim.id.in_(claim_ids))
        ids = list(session.scalars(query.order_by(Claim.id)))
        found = score_claims(session, ids, as_of=now, model=model, scrub=self.scrub)
        kept = [s for s in found if (s.score or 0.0) >= self.min_probability]
        return sorted(kept, key=_expected_loss, reverse=True)


def _expected_loss(suggestion: Suggestion) -> float:
    amount = float(suggestion.amount_at_stake or 0)
    return (suggestion.score or 0.0) * amount
