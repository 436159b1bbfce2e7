"""Feature vectors of HealthOS models, from the record and from public datasets.

This package is the only feature code: training (``models/``) and serving build every
model input through it. Each model has a module with ``FEATURE_NAMES``, ``FEATURE_GROUPS``
(feature → the variable an explanation names), ``vector``/``matrix``, ``from_record`` and
its dataset adapter.
"""
