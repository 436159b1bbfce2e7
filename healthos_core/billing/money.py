"""What money HealthOS accepts: the ledger currency and the dates a payment may carry.

One deployment keeps its money in **one currency**, because the ledger's accounts are
shared by every patient, payer and facility (``cash``, ``revenue``, ``unbilled_ar`` …) and
an account keeps one currency for life (:mod:`healthos_core.billing.ledger`). A single
payment in another currency would turn ``cash`` into an account of that currency and
lock out every later payment (issue 9, item 1). So every path that brings money in —
patient payments and refunds, remittances (FHIR ClaimResponse and X12 835), write-offs,
charges, chargemaster and contract loads — asks :func:`check_currency` first and is
refused, before anything is written, when the currency is not :func:`ledger_currency`.

Which currency (:func:`ledger_currency`), first match wins:

1. ``HEALTHOS_CURRENCY`` (``Settings.currency``) when it is set explicitly;
2. the currency of the deployment's market ``HEALTHOS_MARKET`` (US → USD, IN → INR,
   UK → GBP; :class:`~healthos_core.billing.markets.Market`).

A facility may declare its own market (:func:`~healthos_core.billing.markets.get_market`)
for tax and pricing, but that market must keep the same currency: a facility whose market
has another currency belongs in a deployment of its own.

Payment and refund dates (:func:`check_payment_time`): money is received in the past, so
``at`` may not be later than now plus :data:`CLOCK_SKEW` (five minutes, for a till whose
clock runs ahead), and not before ``Settings.leakage_billing_start`` (default
2011-01-01), the day from which the deployment bills: events before it are history.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Final

from healthos_core.billing.markets import get_market
from healthos_core.db import utcnow
from healthos_core.errors import InvalidInputError
from healthos_core.settings import get_settings

__all__ = [
    "CLOCK_SKEW",
    "check_currency",
    "check_payment_time",
    "earliest_payment_time",
    "ledger_currency",
]

#: How far ahead of the server's clock a payment or refund time may be.
CLOCK_SKEW: Final = dt.timedelta(minutes=5)
_ISO_4217: Final = re.compile(r"^[A-Z]{3}$")


def ledger_currency(*, facility: Any = None) -> str:
    """Return the ISO 4217 currency the deployment keeps its money in.

    Parameters
    ----------
    facility : Organization, FHIR Organization dict or None, default=None
        A facility whose own market (the extension
        :data:`~healthos_core.billing.markets.MARKET_EXTENSION_URL`), if it declares one,
        must keep the same currency.

    Returns
    -------
    str
        ``Settings.currency`` (``HEALTHOS_CURRENCY``) when set explicitly, else the
        currency of ``Settings.market`` (``HEALTHOS_MARKET``): ``"USD"`` by default.

    Raises
    ------
    InvalidInputError
        ``HEALTHOS_CURRENCY`` is not a 3-letter code, or the facility declares a market
        whose currency is not the deployment's (its money cannot share this ledger).

    Examples
    --------
    >>> ledger_currency()  # doctest: +SKIP
    'USD'
    """
    settings = get_settings()
    if "currency" in settings.model_fields_set:
        currency = settings.currency.strip().upper()
        origin = "HEALTHOS_CURRENCY"
        if not _ISO_4217.match(currency):
            raise InvalidInputError(
                f"HEALTHOS_CURRENCY={settings.currency!r} is not an ISO 4217 code such as USD"
            )
    else:
        currency = get_market(settings.market).currency
        origin = f"the currency of market {settings.market} (HEALTHOS_MARKET)"
    if facility is not None:
        market = get_market(facility=facility)
        if market.currency != currency:
            raise InvalidInputError(
                f"the facility's market {market.code} keeps its money in {market.currency}, "
                f"but this deployment's ledger is kept in {currency} ({origin}): one ledger "
                "holds one currency, so run that facility in a deployment of its own"
            )
    return currency


def check_currency(given: str | None, *, field: str = "currency", facility: Any = None) -> str:
    """Return the ledger currency if ``given`` is it (or is absent); refuse any other.

    The one check every money-accepting path makes before it writes anything: see the
    module docstring for why one deployment keeps one currency.

    Parameters
    ----------
    given : str or None
        The currency a caller, a file or a message names; ``None`` or ``""`` means "not
        given" and takes the ledger currency. Compared case-insensitively.
    field : str, default="currency"
        What the value is called where it came from, for the message (e.g.
        ``"currency"``, ``"chargemaster.csv, line 3, column 'currency'"``).
    facility : Organization, FHIR Organization dict or None, default=None
        See :func:`ledger_currency`.

    Returns
    -------
    str
        The ledger currency (upper case).

    Raises
    ------
    InvalidInputError
        ``given`` is another currency (or not text); the message names ``field``, the
        value given and the expected currency.

    Examples
    --------
    >>> check_currency(None)  # doctest: +SKIP
    'USD'
    >>> check_currency("EUR")  # doctest: +SKIP
    Traceback (most recent call last):
    InvalidInputError: currency 'EUR' is refused: HealthOS keeps its money in USD ...
    """
    expected = ledger_currency(facility=facility)
    if given is None or given == "":
        return expected
    if not isinstance(given, str) or given.strip().upper() != expected:
        raise InvalidInputError(
            f"{field} {given!r} is refused: HealthOS keeps its money in {expected} "
            f"(HEALTHOS_CURRENCY, else the market's currency); give {expected} or leave "
            "the currency out"
        )
    return expected


def earliest_payment_time() -> dt.datetime:
    """Return the earliest time a payment or refund may carry.

    Returns
    -------
    datetime
        Midnight UTC of ``Settings.leakage_billing_start`` (default 2011-01-01): the day
        from which this deployment bills, so no money can have been received for its
        charges before it.
    """
    start = get_settings().leakage_billing_start
    return dt.datetime.combine(start, dt.time(0), tzinfo=dt.UTC)


def check_payment_time(
    at: dt.datetime, *, field: str = "at", now: dt.datetime | None = None
) -> dt.datetime:
    """Refuse a payment or refund time in the future or before billing started.

    Parameters
    ----------
    at : datetime
        When the money was received or paid out; must be timezone-aware.
    field : str, default="at"
        The field's name, for the message.
    now : datetime, optional
        The current time (default :func:`healthos_core.db.utcnow`); for tests.

    Returns
    -------
    datetime
        ``at`` unchanged.

    Raises
    ------
    InvalidInputError
        ``at`` is naive, later than ``now`` + :data:`CLOCK_SKEW` (five minutes), or
        earlier than :func:`earliest_payment_time` (``Settings.leakage_billing_start``).
    """
    if not isinstance(at, dt.datetime) or at.utcoffset() is None:
        raise InvalidInputError(
            f"{field} must be an aware datetime (with a UTC offset), got {at!r}"
        )
    now = now or utcnow()
    if at > now + CLOCK_SKEW:
        raise InvalidInputError(
            f"{field} {at.isoformat()} is in the future: money is posted when it is received "
            f"(at most {int(CLOCK_SKEW.total_seconds() // 60)} minutes ahead of the server "
            f"clock, {now.isoformat(timespec='seconds')})"
        )
    earliest = earliest_payment_time()
    if at < earliest:
        raise InvalidInputError(
            f"{field} {at.isoformat()} is before {earliest.date().isoformat()}, the day this "
            "deployment started billing (HEALTHOS_LEAKAGE_BILLING_START)"
        )
    return at
