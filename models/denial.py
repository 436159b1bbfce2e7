"""The claim denial-risk models: ``denial`` (per claim) and ``denial_line`` (per claim line).

Data: ``shared/data/synthea-rcm`` (claims as submitted, Coverage, payers, contracts, service
codes, unit limits, bundling edits, and the payers' ClaimResponses) on the Synthea patients
of ``shared/data/synthea-fhir-r4/bundles``. :func:`load_denial` imports them into a
temporary SQLite database exactly as HealthOS would receive them
(:func:`models.evaluation.scrubber.import_synthea_rcm`, the contract tables, then the
ClaimResponses, which post to the ledger), and builds the features from that database
through :mod:`reasoning.features.denial` — the same code the scorer runs.

Labels (recomputed from the FHIR ClaimResponses, not read from ``labels.csv.gz``)
--------------------------------------------------------------------------------
* ``denial``: 1 when the claim's response has outcome ``error`` (rejected) or a
  claim-level ``denied`` adjudication, or every submitted dollar is denied line by line
  (whole claim denied): the README's ``denied`` (all 10,231 agree with labels.csv.gz).
* ``denial_line``: 1 when the line has a ``denied`` adjudication (some or all of its
  units; X12 CARC 97, 50, 197, 119, 151, ...) or the whole claim is denied.

**Corrected claims are included** (593 of 10,231; ``Claim.related`` ``prior``) with the
features ``corrected`` and ``original_denied``: the worklist scores every claim before
it goes out, resubmissions too, and their filing-limit exemption is part of the
contract. Metrics are reported over all claims and, apart, over initial submissions.

Rules baseline
--------------
``Dataset.baselines["rules"]``: the number of **error** issues
:func:`healthos_core.billing.claims.scrub_claims` raises on the claim (lines: on the
line or on the whole claim), each claim scrubbed as of its own submission, before any
ClaimResponse is imported (as :func:`models.evaluation.scrubber.evaluate_scrubber`).

Splits are by patient (:func:`models.datasets.held_out_mask`, seed 20271) and the same
for both models. Hyper-parameters: additive gradient boosting (one feature per tree,
``interaction_cst="no_interactions"``) so explanations are exact and batchable; chosen
by 5-fold patient-grouped CV on the training split only (claim model, 8,307 claims):
additive, learning rate 0.1, 4 leaves, 10 per leaf: AUROC 0.944, AUPRC 0.899, Brier
0.0196; learning rate 0.05, 8 leaves, 20 per leaf: 0.941 / 0.896 / 0.0198; with
interactions (15 leaves): 0.940 / 0.897 / 0.0194 — interactions do not help, so the
additive model stays.

Ceiling: 160 of the 1,139 whole-claim denials (CARC 252, and CARC 16 with RARC MA130,
N290 or N286) fall on 1.5 % of claims evenly across years, weekdays, payers and
encounter classes, with nothing in the claim that tells them apart; a score that knew
every other denial exactly and was random on these would reach AUROC 0.935 on the
training split and 0.928 on the test split.
"""

from __future__ import annotations

import gzip
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

import healthos_core  # noqa: F401  (registers every entity)
from healthos_core.billing.entities import Claim
from healthos_core.billing.payers import (
    load_bundling_edits_csv,
    load_contracts_csv,
    load_service_codes,
)
from healthos_core.billing.remittance import ClaimResponseAdjudication
from healthos_core.db import Base, make_engine, make_session_factory, session_scope
from healthos_core.errors import InvalidInputError
from healthos_core.fhir.importer import import_paths
from healthos_core.record.entities import Patient
from healthos_core.wiring import wired
from models.datasets import Dataset, Progress
from models.evaluation.scrubber import scrub_by_patient
from models.specs import ModelSpec, register_spec
from reasoning.features import denial as features

__all__ = [
    "DENIAL",
    "DENIAL_LINE",
    "DenialData",
    "load_denial",
    "load_denial_data",
    "prepare_database",
]

SEED = 20271
_RCM_FILES = ("payers.ndjson.gz", "coverage.ndjson.gz", "claims.ndjson.gz")
#: In-process memo of the last loads (``train denial`` then ``train denial_line`` in one
#: process read the data once). Nothing is written to disk.
_MEMO: dict[tuple[str, str, int | None], DenialData] = {}


class DenialData:
    """Both datasets of one load, with the context timings.

    Attributes
    ----------
    claims, lines : Dataset
    rules_claim_issues : dict of str to list
        Claim id → the scrubber's error issues (for the rules baseline and tests).
    seconds : dict of str to float
        ``import``, ``context``, ``features``, ``scrub``.
    """

    def __init__(
        self,
        claims: Dataset,
        lines: Dataset,
        issues: dict[str, list[Any]],
        seconds: dict[str, float],
    ) -> None:
        self.claims = claims
        self.lines = lines
        self.rules_claim_issues = issues
        self.seconds = seconds


def default_bundles(data_dir: Path) -> Path:
    """Return ``<data_dir>/../synthea-fhir-r4/bundles``."""
    return data_dir.parent / "synthea-fhir-r4" / "bundles"


def _patient_ref(resource: dict[str, Any]) -> str:
    ref = resource.get("patient") or resource.get("beneficiary") or {}
    return str(ref.get("reference", "")).removeprefix("Patient/")


def _filtered(source: Path, target: Path, patients: set[str]) -> Path:
    """Copy the NDJSON lines of ``source`` whose patient is in ``patients``."""
    with gzip.open(source, "rt", encoding="utf-8") as inp, gzip.open(target, "wt") as out:
        for line in inp:
            if line.strip() and _patient_ref(json.loads(line)) in patients:
                out.write(line)
    return target


def _import(
    factory: Any, data: Path, bundles: Path, limit: int | None, tmp: Path, say: Progress | None
) -> dict[str, Any]:
    files = sorted(p for p in bundles.iterdir() if p.name.endswith((".json", ".json.gz")))
    if limit is not None:
        files = files[:limit]
    if not files:
        raise InvalidInputError(f"{bundles}: no bundles")
    extras = sorted(p for p in bundles.parent.glob("*Information*.json*") if p.parent != bundles)
    record = import_paths(factory, [*extras, *files])
    if say is not None:
        say(len(files))
    with factory() as session:
        patients = set(session.scalars(select(Patient.id)))
    rcm: list[Path] = []
    responses = data / "claimresponses.ndjson.gz"
    for name in _RCM_FILES:
        path = data / name
        if not path.is_file():
            raise InvalidInputError(f"{path} does not exist: pass the synthea-rcm folder")
        rcm.append(
            path
            if limit is None or name == "payers.ndjson.gz"
            else _filtered(path, tmp / name, patients)
        )
    if limit is not None:
        responses = _filtered(responses, tmp / responses.name, patients)
    imported = import_paths(factory, rcm)
    if imported.rejected:
        first = imported.rejected[0]
        raise InvalidInputError(f"synthea-rcm file rejected: {first['file']}: {first['reason']}")
    with session_scope(factory) as session:
        load_contracts_csv(session, data / "contracts.csv")
        load_service_codes(session, data / "service_categories.csv", data / "unit_limits.csv")
        load_bundling_edits_csv(session, data / "bundling_edits.csv")
    return {"bundle_files": record.files, "responses": responses, "patients": len(patients)}


def _scrub_all(factory: Any) -> dict[str, list[Any]]:
    """Error issues of every claim, each as of its own submission (before any answer)."""
    with factory() as session:
        claims = list(session.scalars(select(Claim).where(Claim.billing_status.is_not(None))))
        found = scrub_by_patient(session, claims)
        session.rollback()
    return {k: [i for i in v if i.is_error] for k, v in found.items()}


@wired()  # imported Claims and ClaimResponses post as `healthos import` posts them
def prepare_database(
    factory: Any,
    data: Path,
    bundles: Path,
    *,
    limit: int | None,
    tmp: Path,
    progress: Progress | None = None,
    scrub: bool = True,
) -> tuple[dict[str, list[Any]], dict[str, float]]:
    """Fill an empty database with synthea-rcm as HealthOS receives it.

    Bundles (first ``limit`` files), payers, coverage and claims
    (:func:`models.evaluation.scrubber.import_synthea_rcm`'s order), the contract tables;
    then (``scrub``) every claim is scrubbed as of its own submission **before** the
    ClaimResponses are imported (they post to the ledger and move claim statuses).

    Returns
    -------
    tuple
        Claim id → its scrubber error issues (empty without ``scrub``), and the seconds
        of ``import_claims``, ``scrub`` and ``import_responses``.

    Raises
    ------
    InvalidInputError
        A file is missing or rejected.
    """
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    info = _import(factory, data, bundles, limit, tmp, progress)
    seconds["import_claims"] = time.perf_counter() - started
    started = time.perf_counter()
    issues = _scrub_all(factory) if scrub else {}
    seconds["scrub"] = time.perf_counter() - started
    started = time.perf_counter()
    answers = import_paths(factory, [info["responses"]])
    if answers.rejected:
        first = answers.rejected[0]
        raise InvalidInputError(f"ClaimResponses rejected: {first['file']}: {first['reason']}")
    seconds["import_responses"] = time.perf_counter() - started
    return issues, seconds


def load_denial_data(
    path: str | Path,
    *,
    limit: int | None = None,
    progress: Progress | None = None,
    bundles: str | Path | None = None,
) -> DenialData:
    """Import synthea-rcm into a temporary database and build both models' rows.

    Parameters
    ----------
    path : str or Path
        The ``synthea-rcm`` folder.
    limit : int, optional
        First N patients' bundles (sorted by file name) and their claims only.
    progress : callable, optional
        Called with the number of bundles imported.
    bundles : str or Path, optional
        The FHIR bundles (default ``<path>/../synthea-fhir-r4/bundles``).

    Raises
    ------
    InvalidInputError
        A folder or file is missing, a synthea-rcm file is rejected, or no claim is read.
    """
    data = Path(path)
    bundle_dir = Path(bundles) if bundles is not None else default_bundles(data)
    key = (str(data.resolve()), str(bundle_dir.resolve()), limit)
    if key in _MEMO:
        return _MEMO[key]
    for needed in (data / "claims.ndjson.gz", data / "contracts.csv", bundle_dir):
        if not needed.exists():
            raise InvalidInputError(f"{needed} does not exist: pass the synthea-rcm folder")
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="healthos-denial-") as tmp_name:
        tmp = Path(tmp_name)
        engine = make_engine(f"sqlite:///{tmp / 'denial.db'}")
        try:
            Base.metadata.create_all(engine)
            factory = make_session_factory(engine)
            issues, timings = prepare_database(
                factory, data, bundle_dir, limit=limit, tmp=tmp, progress=progress
            )
            seconds.update(timings)
            with factory() as session:
                started = time.perf_counter()
                ctx = features.load_context(session)
                seconds["context"] = time.perf_counter() - started
                line_denials = set(
                    session.execute(
                        select(
                            ClaimResponseAdjudication.claim_id,
                            ClaimResponseAdjudication.item_sequence,
                        ).where(
                            ClaimResponseAdjudication.category == "denied",
                            ClaimResponseAdjudication.item_sequence.is_not(None),
                        )
                    )
                )
            started = time.perf_counter()
            built = features.build(ctx)
            seconds["features"] = time.perf_counter() - started
        finally:
            engine.dispose()
    result = _datasets(ctx, built, issues, {(c, int(q)) for c, q in line_denials if q is not None})
    out = DenialData(result[0], result[1], issues, {k: round(v, 2) for k, v in seconds.items()})
    _MEMO.clear()
    _MEMO[key] = out
    return out


def _datasets(
    ctx: features.DenialContext,
    built: features.DenialFeatures,
    issues: dict[str, list[Any]],
    line_denials: set[tuple[str, int]],
) -> tuple[Dataset, Dataset]:
    if not built.claim_ids:
        raise InvalidInputError("no claims read")
    missing = [cid for cid in built.claim_ids if cid not in ctx.responses]
    if missing:
        raise InvalidInputError(f"{len(missing)} claims have no ClaimResponse (e.g. {missing[0]})")
    y = np.array([ctx.responses[cid][1] for cid in built.claim_ids], dtype=np.int64)
    rules = np.array([len(issues.get(cid, [])) for cid in built.claim_ids], dtype=np.float64)
    rows = built.rows
    payer = [ctx.insurer_id[r] for r in rows]
    klass = [ctx.class_code[r] or "unknown" for r in rows]
    submission = ["corrected" if ctx.related_id[r] else "initial" for r in rows]
    claims = Dataset(
        feature_names=features.FEATURE_NAMES,
        X=built.X,
        y=y,
        patients=np.asarray(built.patient_ids),
        subjects=[f"Claim/{cid}" for cid in built.claim_ids],
        subgroups={"payer": payer, "encounter_class": klass, "submission": submission},
        baselines={"rules": rules},
    )
    line_claim = [built.claim_ids[r] for r in built.line_row]
    line_y = np.array(
        [
            int(y[r] == 1 or (cid, int(seq)) in line_denials)
            for r, cid, seq in zip(built.line_row, line_claim, built.line_sequence, strict=True)
        ],
        dtype=np.int64,
    )
    line_rules = np.array(
        [
            sum(1 for i in issues.get(cid, []) if i.sequence is None or i.sequence == int(seq))
            for cid, seq in zip(line_claim, built.line_sequence, strict=True)
        ],
        dtype=np.float64,
    )
    lines = Dataset(
        feature_names=features.LINE_FEATURE_NAMES,
        X=built.line_X,
        y=line_y,
        patients=np.asarray([built.patient_ids[r] for r in built.line_row]),
        subjects=[
            f"Claim/{cid}#{int(seq)}"
            for cid, seq in zip(line_claim, built.line_sequence, strict=True)
        ],
        subgroups={
            "payer": [payer[r] for r in built.line_row],
            "encounter_class": [klass[r] for r in built.line_row],
            "submission": [submission[r] for r in built.line_row],
        },
        baselines={"rules": line_rules},
    )
    return claims, lines


def load_denial(
    path: str | Path,
    *,
    limit: int | None = None,
    progress: Progress | None = None,
    bundles: str | Path | None = None,
) -> Dataset:
    """Return the ``denial`` rows (one per claim); see :func:`load_denial_data`."""
    return load_denial_data(path, limit=limit, progress=progress, bundles=bundles).claims


def load_denial_lines(
    path: str | Path,
    *,
    limit: int | None = None,
    progress: Progress | None = None,
    bundles: str | Path | None = None,
) -> Dataset:
    """Return the ``denial_line`` rows (one per claim line); see :func:`load_denial_data`."""
    return load_denial_data(path, limit=limit, progress=progress, bundles=bundles).lines


_ESTIMATOR: dict[str, Any] = {
    # Additive (one variable per tree): exact, batchable explanations.
    "interaction_cst": "no_interactions",
    "learning_rate": 0.1,
    "max_iter": 800,
    "max_leaf_nodes": 4,
    "min_samples_leaf": 10,
    "l2_regularization": 1.0,
    "early_stopping": True,
    "validation_fraction": 0.15,
    "n_iter_no_change": 30,
}

_NOTE = (
    "Advisory only: the score ranks the finance worklist (expected loss = p(denial) x "
    "amount); it never blocks, changes or submits a claim. The scrubber's deterministic "
    "edits are shown beside it."
)
_DATA = (
    "synthea-rcm (this repository's shared data): institutional claims as submitted on the "
    "488 Synthea R4 patients (10,231 claims: 9,638 initial, 593 corrected), their "
    "ClaimResponses with X12 CARC/RARC, Coverage periods and 5 payer contracts; service "
    "dates 2011-2021. Labels recomputed from the ClaimResponses."
)
_LIMITS = [
    "Synthetic payers and adjudication rules: the model learns their rules, not a real "
    "payer's; retrain on the hospital's own remittances before use.",
    "Payer identity enters only through contract terms (plan type, filing limit, "
    "authorisation categories) and the payer's prior denial rate.",
    "CARC 252 (attachment required) and CARC 16 with RARC MA130/N290/N286 (160 of 1,139 "
    "whole-claim denials, 1.5 % of claims evenly across years, payers and classes) have no "
    "signal in the claim: even an oracle for every other denial reaches AUROC 0.93 only.",
    "Prior denials count only answers received before the claim was submitted; a new "
    "patient or payer starts from the prior (11 %).",
]

DENIAL = ModelSpec(
    name="denial",
    title="Claim denied or rejected by the payer (whole claim)",
    load=load_denial,
    feature_groups=features.FEATURE_GROUPS,
    estimator=_ESTIMATOR,
    permutations=1,
    seed=SEED,
    card={
        "intended_use": (
            "Before a claim goes to the payer, estimate the calibrated probability that the "
            "payer denies or rejects the whole claim, with the predicted reason group and "
            "the fix, so billers work the riskiest claims first. " + _NOTE
        ),
        "intended_users": ["billers", "coders", "revenue-cycle managers"],
        "out_of_scope": [
            "Clinical decisions",
            "Deciding whether to bill a service at all",
            "Payers and contracts not in the training data without retraining",
        ],
        "data": _DATA,
        "data_licence": "Apache License 2.0 (derived from Synthea sample data)",
        "data_citation": (
            "Walonoski J, et al. Synthea: An approach, method, and software mechanism for "
            "generating synthetic patients and the synthetic electronic health care record. "
            "JAMIA 2018;25(3):230-238."
        ),
        "known_limits": _LIMITS,
    },
)

DENIAL_LINE = ModelSpec(
    name="denial_line",
    title="Claim line denied by the payer (line or whole claim)",
    load=load_denial_lines,
    feature_groups=features.LINE_FEATURE_GROUPS,
    estimator=_ESTIMATOR,
    permutations=1,
    seed=SEED,
    card={
        **DENIAL.card,
        "intended_use": (
            "Before a claim goes to the payer, estimate for each line the calibrated "
            "probability that the payer denies it (a denied adjudication on the line, or the "
            "whole claim denied), so the biller fixes or drops the line. " + _NOTE
        ),
    },
)

register_spec(DENIAL)
register_spec(DENIAL_LINE)
