"""United States: claim code systems, X12 transactions and filing limits.

Sources are those collected in ``shared/billing-facts.md`` §3:

* HIPAA-mandated X12 5010 transactions: 837P (005010X222A1), 837I (005010X223A2), 835
  (005010X221A1); adjustments carry a group code (CO/PR/OA/PI) and a CARC, remarks a RARC
  (x12.org X12 835 X221A1 reference page).
* Timely filing: Medicare requires claims within 12 months of the date of service
  (42 CFR 424.44; CMS Claims Processing Manual Pub. 100-04 ch. 1 §70); commercial limits
  are contract-specific (often 90–180 days), so they come from the payer contract. A late
  claim is denied with CARC 29.

Tax: HealthOS adds no tax lines to US hospital charges. billing-facts.md has no US tax
rules; state taxes on particular goods, where a hospital owes them, are out of scope.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import ClassVar, Final

from healthos_core.billing.markets import Market, MarketCode, TaxableCharge, TaxLine
from healthos_core.errors import InvalidInputError

__all__ = [
    "CARC_SYSTEM",
    "CARC_TIMELY_FILING",
    "CAS_GROUP_CODES",
    "CAS_GROUP_SYSTEM",
    "HCPCS_SYSTEM",
    "ICD10CM_SYSTEM",
    "MEDICARE_FILING_LIMIT_MONTHS",
    "RARC_SYSTEM",
    "X12_835",
    "X12_837I",
    "X12_837P",
    "USMarket",
    "filing_deadline",
    "medicare_filing_deadline",
]

#: ICD-10-CM diagnoses (HL7 FHIR system URI, as used by the importer).
ICD10CM_SYSTEM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
#: HCPCS Level II (and CPT as Level I) procedure codes.
HCPCS_SYSTEM: Final = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
#: X12 Claim Adjustment Reason Codes.
CARC_SYSTEM: Final = "https://x12.org/codes/claim-adjustment-reason-codes"
#: X12 Remittance Advice Remark Codes.
RARC_SYSTEM: Final = "https://x12.org/codes/remittance-advice-remark-codes"
#: X12 claim adjustment group codes (CAS01).
CAS_GROUP_SYSTEM: Final = "https://x12.org/codes/claim-adjustment-group-codes"
#: CAS group codes: contractual obligations, patient responsibility, other adjustments,
#: payer initiated reductions, corrections and reversals (legacy) —
#: ``shared/data/billing/x12-carc-rarc/group_codes.csv``.
CAS_GROUP_CODES: Final = frozenset({"CO", "PR", "OA", "PI", "CR"})
#: CARC for a claim filed after the payer's limit.
CARC_TIMELY_FILING: Final = "29"
#: X12 5010 implementation guides.
X12_837P: Final = "005010X222A1"
X12_837I: Final = "005010X223A2"
X12_835: Final = "005010X221A1"
#: Medicare's filing limit (42 CFR 424.44). A contract that states it in days (the
#: synthea-rcm Medicare contract says 365) is applied with :func:`filing_deadline`.
MEDICARE_FILING_LIMIT_MONTHS: Final = 12


def _day(name: str, value: dt.date) -> dt.date:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise InvalidInputError(
            f"{name} must be a date (the day of service), got {type(value).__name__}"
        )
    return value


def filing_deadline(service_date: dt.date, *, limit_days: int) -> dt.date:
    """Return the last day a claim can reach the payer under a contract's filing limit.

    Parameters
    ----------
    service_date : datetime.date
        Day of service (for an inpatient claim, the day the contract counts from).
    limit_days : int
        The contract's filing limit in days (commercial limits are contract-specific,
        often 90–180; billing-facts.md §3).

    Returns
    -------
    datetime.date
        ``service_date + limit_days``; a claim received after it is late (CARC 29).

    Raises
    ------
    InvalidInputError
        ``limit_days`` is not a positive integer or ``service_date`` is not a date.

    Examples
    --------
    >>> filing_deadline(dt.date(2024, 1, 31), limit_days=90)
    datetime.date(2024, 4, 30)
    """
    _day("service_date", service_date)
    if isinstance(limit_days, bool) or not isinstance(limit_days, int) or limit_days <= 0:
        raise InvalidInputError(f"limit_days={limit_days!r} must be a positive number of days")
    return service_date + dt.timedelta(days=limit_days)


def medicare_filing_deadline(service_date: dt.date) -> dt.date:
    """Return the last day to file a Medicare claim: 12 months after the date of service.

    Parameters
    ----------
    service_date : datetime.date
        Day of service.

    Returns
    -------
    datetime.date
        The same day 12 months later (42 CFR 424.44); a day that does not exist in that
        month (29 February) becomes its last day.

    Examples
    --------
    >>> medicare_filing_deadline(dt.date(2024, 2, 29))
    datetime.date(2025, 2, 28)
    """
    _day("service_date", service_date)
    months = service_date.month - 1 + MEDICARE_FILING_LIMIT_MONTHS
    year, month = service_date.year + months // 12, months % 12 + 1
    return dt.date(year, month, min(service_date.day, calendar.monthrange(year, month)[1]))


class USMarket(Market):
    """United States: USD, no tax lines, ICD-10-CM / HCPCS / CARC-RARC.

    Prices are the chargemaster's (the default pricing hook); the allowed amount and the
    filing limit of each payer come from its contract.
    """

    code: ClassVar[MarketCode] = "US"
    name: ClassVar[str] = "United States"
    currency: ClassVar[str] = "USD"
    diagnosis_system: ClassVar[str] = ICD10CM_SYSTEM
    procedure_system: ClassVar[str] = HCPCS_SYSTEM

    def tax_lines(self, charge: TaxableCharge) -> list[TaxLine]:
        """Return no tax lines: HealthOS levies no tax on US hospital charges."""
        return []
