"""Run every HealthOS benchmark on the full shared data and print their JSON results."""

from __future__ import annotations

from bench import (
    bench_api,
    bench_claims,
    bench_denial,
    bench_fhir_import,
    bench_models,
    bench_remittance,
    bench_rescore,
    erlang_vs_ciw,
)


def main() -> None:
    """Run the benchmarks one after another."""
    bench_fhir_import.main([])
    bench_remittance.main([])
    bench_claims.main([])
    bench_models.main([])
    bench_denial.main([])
    bench_api.main([])
    bench_rescore.main([])
    erlang_vs_ciw.main([])


if __name__ == "__main__":
    main()
