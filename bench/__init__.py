"""HealthOS benchmarks: each prints its figure, a same-run baseline ratio and the machine."""
