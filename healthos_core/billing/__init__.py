"""Billing and revenue cycle: chargemaster, automatic charge capture, claims.

Importing this package (which ``import healthos_core`` does) subscribes charge capture
to the default event bus, so clinical events recorded through
:mod:`healthos_core.record.service` post their charges in the same transaction.
"""

from healthos_core.billing.capture import (
    CaptureSettings,
    ChargeCapture,
    capture_encounter,
    capture_medication_administration,
    capture_observation,
    capture_procedure,
    is_billable_lab,
    register,
    unregister,
)
from healthos_core.billing.chargemaster import (
    DERIVED_EFFECTIVE_FROM,
    derive_chargemaster_from_claims,
    find_price,
    load_chargemaster_csv,
    price,
)

__all__ = [
    "DERIVED_EFFECTIVE_FROM",
    "CaptureSettings",
    "ChargeCapture",
    "capture_encounter",
    "capture_medication_administration",
    "capture_observation",
    "capture_procedure",
    "derive_chargemaster_from_claims",
    "find_price",
    "is_billable_lab",
    "load_chargemaster_csv",
    "price",
    "register",
    "unregister",
]
