"""Benchmark: the shipped models — full retrain time, onnxruntime vs scikit-learn, explanations.

For each model shipped in ``reasoning/artifacts/<name>/`` (skipped, with a message, when it
is absent or its manifest names other features than the loader builds):

1. loads its dataset from ``../shared/data`` with the model's loader
   (:meth:`models.specs.ModelSpec.load_data`) and splits it by patient with the
   manifest's split seed and test fraction (:func:`models.datasets.held_out_mask`);
2. **full retrain time** — refits the scikit-learn estimator on the training rows with
   :func:`models.training.fit` (target: < 5 min on 2 cores for deterioration), then
   checks the refit against the shipped ONNX model on the test rows (max |Δp|; on the
   full data the refit reproduces the shipped model);
3. **single-row latency** over 2,000 calls after a warm-up, one test row per call (the
   float64 feature vector as :mod:`reasoning.features` builds it): the shipped model
   through onnxruntime (:meth:`reasoning.inference.OnnxModel.predict_proba`, one intra-op
   thread, as serving loads it) and the refit estimator's ``predict_proba`` — the
   in-process baseline, also on one (OpenMP) thread: a parallel region only adds overhead
   to one row, and on a busy 2-core machine its threads wait on each other for tens of
   milliseconds; p50/p99 in ms and the ratio (targets: ORT p99 < 0.1 ms and ≥ 50× faster
   than scikit-learn);
4. **batch throughput** — one 10,000-row batch (the test rows repeated), rows/s both ways
   (scikit-learn with its default threads; onnxruntime with one thread and with one per
   core);
5. **explanation time** — :meth:`~reasoning.inference.OnnxModel.explain` of 1,000 test
   rows, one call each: p50/p99 in ms (target < 1 ms per suggestion).

Prints one JSON document with the figures, the ratios, the targets and the machine.
Progress goes to stderr. Usage::

    python -m bench.bench_models [--model NAME] [--limit N] [--data DIR] [--models-dir DIR]

``--limit`` reads the first N stays / rows of each dataset only, for a quick run: the refit
then sees fewer rows than the shipped model did and stops with fewer trees, so the retrain
time, the agreement with the shipped model and the scikit-learn latency and throughput are
not the full-data figures (the onnxruntime and explanation figures still are: they use the
shipped model).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bench.machine import describe
from models.datasets import held_out_mask
from models.specs import SPECS, get_spec
from models.training import fit
from reasoning.inference import MANIFEST, OnnxModel, shipped_models_dir

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: Each model's dataset, relative to ``--data``.
DATASETS = {
    "deterioration": "physionet-2012-icu-mortality",
    "readmission": "uci-diabetes-130/diabetic_data.csv.gz",
}
SINGLE_CALLS = 2000
WARM_UP_CALLS = 200
BATCH_ROWS = 10_000
EXPLAIN_CALLS = 1000
TARGETS = {
    "retrain_seconds_deterioration": 300.0,
    "ort_single_row_p99_ms": 0.1,
    "ort_vs_sklearn_single_row_speed_up": 50.0,
    "explain_p99_ms": 1.0,
}


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _latencies_ms(call: Callable[[int], object], rows: int, calls: int) -> np.ndarray:
    """Time ``call(i % rows)`` ``calls`` times after a warm-up; return each call in ms.

    The garbage collector is off while timing, as :mod:`timeit` does: a full collection
    over the loaded dataset's objects costs milliseconds and would land in whichever call
    it interrupts (a server freezes its start-up heap with :func:`gc.freeze` for the same
    reason).
    """
    for i in range(min(WARM_UP_CALLS, calls)):
        call(i % rows)
    gc.collect()
    out = np.empty(calls, dtype=np.float64)
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for i in range(calls):
            started = clock()
            call(i % rows)
            out[i] = clock() - started
    finally:
        gc.enable()
    return out / 1e6


def _summary(ms: np.ndarray) -> dict[str, float]:
    p50, p99 = np.percentile(ms, [50, 99])
    return {
        "p50_ms": round(float(p50), 4),
        "p99_ms": round(float(p99), 4),
        "mean_ms": round(float(ms.mean()), 4),
        "max_ms": round(float(ms.max()), 3),
    }


def _batch_rows_per_s(predict: Callable[[np.ndarray], object], X: np.ndarray) -> float:
    predict(X[:100])  # warm-up
    gc.collect()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        predict(X)
        best = min(best, time.perf_counter() - started)
    return round(len(X) / best, 1)


def bench_model(name: str, data_root: Path, models_root: Path, limit: int | None) -> dict[str, Any]:
    """Run the benchmark of one shipped model; return its figures (or why it was skipped)."""
    directory = models_root / name
    if not (directory / MANIFEST).is_file():
        message = f"{name}: no shipped model in {directory} (run `healthos train {name}` first)"
        _say(f"skipping {message}")
        return {"model": name, "skipped": message}
    data_path = data_root / DATASETS[name]
    if not data_path.exists():
        message = f"{name}: dataset {data_path} not found"
        _say(f"skipping {message}")
        return {"model": name, "skipped": message}
    spec = get_spec(name)
    ort_model = OnnxModel(directory)
    manifest = ort_model.manifest

    _say(f"{name}: reading {data_path}" + (f" (first {limit:,})" if limit else ""))
    started = time.perf_counter()
    data = spec.load_data(data_path, limit=limit)
    load_seconds = time.perf_counter() - started
    if data.feature_names != ort_model.feature_names:
        message = f"{name}: the shipped model in {directory} has other features than the loader"
        _say(f"skipping {message}")
        return {"model": name, "skipped": message}
    split = manifest["split"]
    mask = held_out_mask(data.patients, seed=split["seed"], test_fraction=split["test_fraction"])
    train, test = data.subset(~mask), data.subset(mask)

    # onnxruntime first, before the refit: the fit's OpenMP worker threads and the memory it
    # churned would otherwise sit in the shipped model's timings (serving never fits).
    X = test.X  # float64, as reasoning.features builds the vectors
    rows = [X[i : i + 1] for i in range(len(X))]
    _say(f"{name}: single-row latency (onnxruntime), {SINGLE_CALLS:,} calls")
    ort_single = _latencies_ms(lambda i: ort_model.predict_proba(rows[i]), len(rows), SINGLE_CALLS)
    _say(f"{name}: explanations, {EXPLAIN_CALLS:,} rows")
    explain = _latencies_ms(lambda i: ort_model.explain(X[i]), len(X), EXPLAIN_CALLS)

    patients = len(np.unique(train.patients))
    _say(f"{name}: refitting on {len(train.y):,} rows ({patients:,} patients)")
    started = time.perf_counter()
    model = fit(spec, train)
    retrain_seconds = time.perf_counter() - started
    _say(f"{name}: refit in {retrain_seconds:.1f} s")
    agreement = float(np.max(np.abs(model.predict_proba(X)[:, 1] - ort_model.predict_proba(X))))

    _say(f"{name}: single-row latency (scikit-learn), {SINGLE_CALLS:,} calls")
    with threadpool_limits(limits=1, user_api="openmp"):
        sk_single = _latencies_ms(lambda i: model.predict_proba(rows[i]), len(rows), SINGLE_CALLS)
    ort_s, sk_s = _summary(ort_single), _summary(sk_single)

    _say(f"{name}: {BATCH_ROWS:,}-row batch")
    batch = np.resize(X, (BATCH_ROWS, X.shape[1]))
    ort_threaded = OnnxModel(directory, threads=os.cpu_count() or 1)
    ort_rows_s = _batch_rows_per_s(ort_model.predict_proba, batch)
    ort_threaded_rows_s = _batch_rows_per_s(ort_threaded.predict_proba, batch)
    sk_rows_s = _batch_rows_per_s(model.predict_proba, batch)

    explain_s = _summary(explain)
    switched_rows = len(manifest["explanation"]["orders"]) * len(ort_model.groups) + 2

    result: dict[str, Any] = {
        "model": name,
        "shipped": {
            "directory": str(directory),
            "version": ort_model.version,
            "created": manifest.get("created"),
            "n_train": manifest.get("n_train"),
            "fit_seconds_at_training": manifest.get("training_seconds"),
        },
        "data": {
            "path": str(data_path),
            "limit": limit,
            "rows": len(data.y),
            "train_rows": len(train.y),
            "test_rows": len(test.y),
            "features": len(data.feature_names),
            "load_seconds": round(load_seconds, 1),
        },
        "full_retrain": {
            "seconds": round(retrain_seconds, 1),
            "iterations": int(model.calibrated_classifiers_[0].estimator.n_iter_),
            "max_abs_diff_vs_shipped_onnx": float(f"{agreement:.3g}"),
        },
        "single_row": {
            "onnxruntime_1_thread": ort_s,
            "sklearn_1_thread": sk_s,
            "speed_up_p50": round(sk_s["p50_ms"] / ort_s["p50_ms"], 1),
            "speed_up_p99": round(sk_s["p99_ms"] / ort_s["p99_ms"], 1),
        },
        "batch_10k": {
            "onnxruntime_rows_per_s_1_thread": ort_rows_s,
            f"onnxruntime_rows_per_s_{os.cpu_count()}_threads": ort_threaded_rows_s,
            "sklearn_rows_per_s": sk_rows_s,
            "speed_up_1_thread": round(ort_rows_s / sk_rows_s, 1),
        },
        "explain": {
            **explain_s,
            "groups": len(ort_model.groups),
            "rows_scored_per_explanation": switched_rows,
        },
    }
    result["meets_targets"] = {
        "ort_single_row_p99_below_0.1_ms": ort_s["p99_ms"] < TARGETS["ort_single_row_p99_ms"],
        "ort_50x_faster_than_sklearn_p99": result["single_row"]["speed_up_p99"]
        >= TARGETS["ort_vs_sklearn_single_row_speed_up"],
        "explain_p99_below_1_ms": explain_s["p99_ms"] < TARGETS["explain_p99_ms"],
    }
    if name == "deterioration":
        result["meets_targets"]["retrain_below_5_min"] = (
            retrain_seconds < TARGETS["retrain_seconds_deterioration"]
        )
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print a JSON result."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", choices=sorted(SPECS), help="only this model")
    parser.add_argument("--limit", type=int, default=None, help="first N stays/rows only")
    parser.add_argument("--data", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=shipped_models_dir(),
        help="where the models are (default: the shipped reasoning/artifacts)",
    )
    args = parser.parse_args(argv)
    names = [args.model] if args.model else sorted(SPECS)
    results = [bench_model(name, args.data, args.models_dir, args.limit) for name in names]
    output = {
        "benchmark": "models",
        "models": results,
        "targets": TARGETS,
        "calls": {
            "single_row": SINGLE_CALLS,
            "warm_up": WARM_UP_CALLS,
            "batch_rows": BATCH_ROWS,
            "explain": EXPLAIN_CALLS,
        },
        "machine": {
            **describe(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
    }
    print(json.dumps(output, indent=2))
    return output


if __name__ == "__main__":
    main(sys.argv[1:])
