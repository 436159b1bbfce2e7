"""Readers for the public datasets HealthOS is evaluated on (stdlib only).

* :mod:`healthos_core.datasets.physionet2012` -- PhysioNet/CinC Challenge 2012 ICU stays
  and their outcomes.
"""

from healthos_core.datasets.physionet2012 import (
    Measurement,
    Outcome,
    Stay,
    iter_stays,
    read_outcomes,
)

__all__ = ["Measurement", "Outcome", "Stay", "iter_stays", "read_outcomes"]
