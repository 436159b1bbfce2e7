"""Predicted-CARC groups of the denial worklist and the fix a biller applies for each.

Groups (X12 Claim Adjustment Reason Codes, external code source 139):

* ``eligibility`` — CARC 26 (expenses before coverage), 27 (after coverage terminated),
  31 (not identified as our insured), 109 (not covered by this payer), 22 (coordination
  of benefits);
* ``authorization`` — CARC 197 (precertification/authorization absent);
* ``timely_filing`` — CARC 29 (time limit for filing has expired);
* ``coding`` — CARC 16 (claim lacks information or has submission/billing errors,
  with RARC M76 missing diagnosis, M53 units, N257 billing provider);
* ``duplicate`` — CARC 18 (exact duplicate claim/service);
* ``bundling`` — CARC 97 (included in the allowance of another service, NCCI-style
  bundling edits);
* ``units`` — CARC 151 (units exceed what is supported) and 119 (benefit maximum
  reached: units over the payer's limit);
* ``other`` — anything else (CARC 50, 96, 252 ...).
"""

from __future__ import annotations

from typing import Final

#: Scrubber edit (:data:`healthos_core.billing.claims.SCRUBBER_EDITS`) → CARC group.
EDIT_GROUP: Final[dict[str, str]] = {
    "coverage-inactive": "eligibility",
    "coverage-payer-mismatch": "eligibility",
    "coverage-not-primary": "eligibility",
    "contract-missing": "other",
    "authorization-missing": "authorization",
    "filing-limit": "timely_filing",
    "provider-missing": "coding",
    "line-incomplete": "coding",
    "diagnosis-missing": "coding",
    "diagnosis-not-icd10cm": "coding",
    "diagnosis-invalid": "coding",
    "diagnosis-pointer": "coding",
    "duplicate": "duplicate",
    "units-over-mue": "units",
    "units-over-limit": "units",
    "bundled": "bundling",
}

#: CARC → group, for reading payer answers in the same terms.
CARC_GROUP: Final[dict[str, str]] = {
    "26": "eligibility",
    "27": "eligibility",
    "31": "eligibility",
    "109": "eligibility",
    "22": "eligibility",
    "197": "authorization",
    "29": "timely_filing",
    "16": "coding",
    "18": "duplicate",
    "97": "bundling",
    "151": "units",
    "119": "units",
}

#: A short label of each group for summaries.
GROUP_LABEL: Final[dict[str, str]] = {
    "eligibility": "eligibility (CARC 27/26)",
    "authorization": "prior authorisation (CARC 197)",
    "timely_filing": "timely filing (CARC 29)",
    "coding": "missing information (CARC 16)",
    "duplicate": "duplicate (CARC 18)",
    "bundling": "bundling (CARC 97)",
    "units": "units over limit (CARC 151/119)",
    "other": "other reasons",
}

CATEGORY_WORDS: Final[dict[str, str]] = {
    "advanced_imaging": "advanced imaging",
    "cardiac_procedure": "cardiac procedure",
    "diagnostic_imaging": "diagnostic imaging",
    "emergency": "emergency visit",
    "evaluation_management": "evaluation and management",
    "immunization": "immunisation",
    "inpatient_admission": "inpatient admission",
    "laboratory": "laboratory",
    "minor_procedure": "minor procedure",
    "obstetric_procedure": "obstetric procedure",
    "oncology": "oncology",
    "specialty_therapy": "specialty therapy",
    "surgical_procedure": "surgical procedure",
}

CLASS_WORDS: Final[dict[str, str]] = {
    "AMB": "ambulatory encounter",
    "EMER": "emergency encounter",
    "IMP": "inpatient stay",
}


def money(amount: float, currency: str) -> str:
    """Return an amount as a biller reads it (``"USD 1,234.50"``)."""
    return f"{currency} {amount:,.2f}"
