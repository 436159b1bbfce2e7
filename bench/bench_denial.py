"""Benchmark: denial risk of every synthea-rcm claim, end to end, in batch.

1. **DB loading** (reported apart): the patients' bundles, payers, coverage, claims, the
   contract tables and the ClaimResponses are imported into a temporary SQLite database
   (:func:`models.denial.prepare_database`), then
   :func:`reasoning.features.denial.load_context` reads every claim's record context in
   column queries (``context_seconds``: database reads, not feature work);
2. **scoring, end to end** on all claims (best of 3 runs): the features
   (:func:`reasoning.features.denial.build`, numpy), the shipped ``denial`` champion
   through onnxruntime and the exact additive explanation of every claim in the same
   batch (:func:`reasoning.finance.denial_scorer.explain_additive`: probability, base,
   per-group log-odds, and the predicted CARC band): **claims/s** (target ≥ 20,000 on 2
   cores, features included; onnxruntime with 2 intra-op threads, and with 1 for
   reference). Building the :class:`~reasoning.suggestion.Suggestion`
   objects (factor texts, fixes, evidence; no scrubber) is timed apart, and so is the
   scrubber on the claims an edit indicator flags (``scrub="flagged"``), since
   :func:`healthos_core.billing.claims.scrub_claims` is a per-claim Python path;
3. **the same pipeline through scikit-learn**: the calibrated estimator is refitted
   in-process on the training split (:func:`models.training.fit`, as bench_models does)
   and scores the same explanation batch with ``predict_proba``; the ratio is
   sklearn seconds / onnxruntime seconds for step 2.

Prints one JSON document with the figures, the targets and the machine; progress goes to
stderr. Usage::

    python -m bench.bench_denial [--limit N] [--data DIR] [--models-dir DIR]

``--limit`` imports the first N patients' bundles only (a quick run; the claims/s then
come from a smaller batch).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import describe
from healthos_core.db import Base, make_engine, make_session_factory
from models.datasets import Dataset, held_out_mask
from models.denial import DENIAL, default_bundles, prepare_database
from models.training import fit
from reasoning.features import denial as features
from reasoning.finance import denial_scorer
from reasoning.inference import MANIFEST, OnnxModel, shipped_models_dir

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TARGETS = {"end_to_end_claims_per_s": 20_000.0}
RUNS = 3


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _SklearnModel:
    """The refitted estimator behind the OnnxModel interface the explainer uses."""

    def __init__(self, estimator: Any, like: OnnxModel) -> None:
        self.estimator = estimator
        self.name = like.name
        self.version = "sklearn-refit"
        self.feature_names = like.feature_names
        self.manifest = like.manifest
        self.groups = like.groups
        self.reference = like.reference

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.estimator.predict_proba(np.asarray(x, dtype=np.float64))[:, 1]
        return out


def _best(call: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(RUNS):
        gc.collect()
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def _explanation_rows(model: OnnxModel, X: np.ndarray) -> int:
    """Rows :func:`~reasoning.finance.denial_scorer.explain_additive` scores for ``X``."""
    index = {name: i for i, name in enumerate(model.feature_names)}
    groups = model.manifest["explanation"]["groups"]
    distinct = sum(
        len(np.unique(np.nan_to_num(X[:, [index[f] for f in groups[g]]], nan=-1e300), axis=0))
        for g in model.groups
    )
    return int(1 + distinct + len(X))


def run(data_dir: Path, models_root: Path, limit: int | None) -> dict[str, Any]:
    """Run the benchmark; return its figures."""
    directory = models_root / "denial"
    if not (directory / MANIFEST).is_file():
        message = f"no shipped model in {directory} (run `healthos train denial` first)"
        _say(f"skipping: {message}")
        return {"skipped": message, "machine": describe()}
    # the batch path uses both cores; single-row serving keeps one intra-op thread
    model = OnnxModel(directory, threads=2)
    model_1 = OnnxModel(directory)
    as_of = dt.datetime(2021, 8, 1, tzinfo=dt.UTC)  # the data are "as of" 2021-07-31
    with tempfile.TemporaryDirectory(prefix="healthos-bench-denial-") as tmp_name:
        tmp = Path(tmp_name)
        engine = make_engine(f"sqlite:///{tmp / 'bench.db'}")
        try:
            Base.metadata.create_all(engine)
            factory = make_session_factory(engine)
            _say("importing bundles, payers, coverage, claims, contracts and answers")
            started = time.perf_counter()
            _, import_seconds = prepare_database(
                factory, data_dir, default_bundles(data_dir), limit=limit, tmp=tmp, scrub=False
            )
            import_total = time.perf_counter() - started
            with factory() as session:
                started = time.perf_counter()
                ctx = features.load_context(session, as_of=as_of)
                context_seconds = time.perf_counter() - started
                _say(f"context of {int(ctx.target.sum()):,} claims read in {context_seconds:.1f} s")
                built = features.build(ctx)  # warm-up (ICD-10-CM table, imports)
                explained = denial_scorer.explain_additive(model, built.X)
                n = len(built.claim_ids)

                def end_to_end(scorer: Any = model) -> object:
                    rows = features.build(ctx)
                    explained = denial_scorer.explain_additive(scorer, rows.X)
                    return denial_scorer.predicted_bands(explained)

                features_s = _best(lambda: features.build(ctx))
                ort_s = _best(end_to_end)
                ort_1_s = _best(lambda: end_to_end(model_1))
                explain_only_s = _best(lambda: denial_scorer.explain_additive(model, built.X))
                predict_only_s = _best(lambda: model.predict_proba(built.X))
                _say(f"end to end (onnxruntime): {n / ort_s:,.0f} claims/s")

                started = time.perf_counter()
                suggestions = denial_scorer._suggestions(
                    ctx, built, explained, {}, model, as_of, built.claim_ids, 5
                )
                suggestions_s = time.perf_counter() - started

                flags = np.zeros(n, dtype=bool)
                for name in denial_scorer._EDIT_FLAGS:
                    flags |= built.column(name) > 0
                flagged = [cid for cid, f in zip(built.claim_ids, flags, strict=True) if f]
                started = time.perf_counter()
                denial_scorer._scrub(session, flagged, as_of)
                scrub_s = time.perf_counter() - started
                session.rollback()

                y = np.array([ctx.responses[c][1] for c in built.claim_ids], dtype=np.int64)
                patients = np.asarray(built.patient_ids)
                split = model.manifest["split"]
                mask = held_out_mask(
                    patients, seed=split["seed"], test_fraction=split["test_fraction"]
                )
                train = Dataset(
                    feature_names=features.FEATURE_NAMES,
                    X=built.X,
                    y=y,
                    patients=patients,
                    subjects=built.claim_ids,
                ).subset(~mask)
                _say(f"refitting scikit-learn on {len(train.y):,} training claims")
                started = time.perf_counter()
                estimator = fit(DENIAL, train)
                refit_s = time.perf_counter() - started
                sk = _SklearnModel(estimator, model)
                sk_s = _best(lambda: end_to_end(sk))
                p_sk = denial_scorer.explain_additive(sk, built.X).probability  # type: ignore[arg-type]
                _say(f"end to end (scikit-learn): {n / sk_s:,.0f} claims/s")
        finally:
            engine.dispose()
    return {
        "claims": n,
        "lines": len(built.line_X),
        "model": model.describe(),
        "db_loading": {
            "import_seconds": {k: round(v, 1) for k, v in import_seconds.items()},
            "import_total_seconds": round(import_total, 1),
            "context_seconds": round(context_seconds, 2),
            "context_claims_per_s": round(n / context_seconds, 1),
        },
        "end_to_end": {
            "what": "features + onnxruntime + exact explanations + band, one batch",
            "seconds": round(ort_s, 4),
            "claims_per_s": round(n / ort_s, 1),
            "features_seconds": round(features_s, 4),
            "explain_seconds": round(explain_only_s, 4),
            "predict_only_seconds": round(predict_only_s, 4),
            "explanation_rows_scored": _explanation_rows(model, built.X),
            "onnxruntime_threads": 2,
            "one_thread_seconds": round(ort_1_s, 4),
            "one_thread_claims_per_s": round(n / ort_1_s, 1),
        },
        "suggestion_objects": {
            "seconds": round(suggestions_s, 3),
            "claims_per_s": round(n / suggestions_s, 1),
            "with_end_to_end_claims_per_s": round(n / (ort_s + suggestions_s), 1),
            "count": len(suggestions),
        },
        "scrubber_on_flagged": {
            "claims": len(flagged),
            "seconds": round(scrub_s, 2),
            "claims_per_s": round(len(flagged) / scrub_s, 1) if scrub_s else None,
        },
        "sklearn": {
            "refit_seconds": round(refit_s, 1),
            "end_to_end_seconds": round(sk_s, 4),
            "claims_per_s": round(n / sk_s, 1),
            "onnxruntime_speed_up": round(sk_s / ort_s, 2),
            "max_abs_diff_vs_onnx": round(float(np.max(np.abs(p_sk - explained.probability))), 6),
        },
        "targets": TARGETS,
        "meets_target": n / ort_s >= TARGETS["end_to_end_claims_per_s"],
        "limit": limit,
        "machine": describe(),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--data", type=Path, default=SHARED / "synthea-rcm")
    parser.add_argument("--models-dir", type=Path, default=shipped_models_dir())
    args = parser.parse_args(argv)
    print(json.dumps(run(args.data, args.models_dir, args.limit), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
