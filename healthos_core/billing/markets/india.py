"""India: GST on hospital charges and the IRDAI cashless (TPA) clocks.

Sources are those collected in ``shared/billing-facts.md`` §4, cited by their official
numbers:

* **Exemption.** Notification No. 12/2017-Central Tax (Rate), Sl. No. 74, with its
  definitions 2(zg) "health care services" and 2(s) "clinical establishment": health care
  services (diagnosis, treatment or care for illness, injury, deformity, abnormality or
  pregnancy in a recognised system of medicine) by a clinical establishment, an authorised
  medical practitioner or para-medics are exempt; so are consultation and diagnostics,
  and room rent for in-patients (CBIC Circular 27/01/2018-GST).
* **Room rent.** GST Council 47th meeting (press release 29.06.2022), in force from
  **18 July 2022**: room rent (excluding ICU) exceeding INR 5,000 per day per patient is
  taxed at 5 % without input tax credit, "on the amount charged for the room". The
  amending notification, Notification No. 04/2022-Central Tax (Rate), lists the exempt
  units as ICU, CCU, ICCU and NICU. (billing-facts.md marks that list "not verified from a
  stored copy"; stored copies of taxguru.in "GST on hospitals – curtailing exemption" and
  rmpsco.com quote the taxable entry as Sl. No. 31A, heading 9993, inserted into
  Notification No. 11/2017-CT(Rate) by Notification No. 03/2022-CT(Rate) of 13.07.2022:
  "room [other than Intensive Care Unit (ICU)/Critical Care Unit (CCU)/Intensive Cardiac
  Care Unit (ICCU)/Neo natal Intensive Care Unit (NICU)] having room charges exceeding
  Rs. 5000 per day", 2.5 % central tax, on condition that input tax credit "has not been
  taken".)
* **Goods.** Medicines and consumables supplied separately (e.g. pharmacy sales to
  out-patients) are taxable supplies of goods at their own rate; the rate changes over
  time (GST Council 56th meeting, 03.09.2025: from 22 Sep 2025 drugs 5 % or nil), so it
  is kept per chargemaster entry (``tax_category`` ``"gst-5"``, ``"gst-12"`` …), whose
  effective dating carries the change. Non-health-care services (cosmetic surgery unless
  reconstructive, non-patient services) take ``"gst-18"`` the same way.
* **Cashless clocks.** IRDAI Master Circular on Health Insurance (29 May 2024, repealing
  55 earlier circulars; reported by The New Indian Express 31.05.2024 as the "master
  circular on health insurance products"): the insurer/TPA decides a cashless
  authorisation request "immediately, within one hour", and gives final authorisation on
  discharge within three hours of the hospital's request; delay beyond three hours makes
  the insurer bear the extra hospital charges from shareholders' funds. The stored sources
  give no paragraph number.

Tax amounts are rounded to the paisa, half up (:func:`~healthos_core.billing.markets.round_money`):
a HealthOS convention, not a rule from these sources.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Final, Literal

from healthos_core.billing.markets import (
    Market,
    MarketCode,
    TaxableCharge,
    TaxLine,
    round_money,
)
from healthos_core.errors import InvalidInputError

__all__ = [
    "CASHLESS_PREAUTH_LIMIT",
    "DISCHARGE_AUTH_LIMIT",
    "EXEMPT_SOURCE",
    "ICU_LOCATION_KINDS",
    "ROOM_RENT_GST_FROM",
    "ROOM_RENT_GST_PERCENT",
    "ROOM_RENT_SOURCE",
    "ROOM_RENT_THRESHOLD_INR",
    "TAX_CATEGORIES",
    "TPA_CLOCK_KINDS",
    "IndiaMarket",
    "TpaClock",
    "TpaClockKind",
    "gst_tax_lines",
    "tpa_clock",
]

# --------------------------------------------------------------------------- GST

#: Room rent per day per patient above which non-ICU room rent is taxed (strictly greater).
ROOM_RENT_THRESHOLD_INR: Final = Decimal("5000")
#: GST on such room rent, percent, without input tax credit.
ROOM_RENT_GST_PERCENT: Final = Decimal("5")
#: First day the room-rent levy applies.
ROOM_RENT_GST_FROM: Final = dt.date(2022, 7, 18)
#: ``Location.kind`` / room categories that stay exempt (ICU, CCU, ICCU, NICU).
ICU_LOCATION_KINDS: Final = frozenset({"icu", "ccu", "iccu", "nicu"})

EXEMPT_SOURCE: Final = (
    "Notification No. 12/2017-Central Tax (Rate), Sl. No. 74 (health care services by a "
    "clinical establishment; definitions 2(zg), 2(s)); CBIC Circular 27/01/2018-GST"
)
ROOM_RENT_SOURCE: Final = (
    "GST Council 47th meeting (29.06.2022), from 18.07.2022; Notification No. "
    "04/2022-Central Tax (Rate) (ICU/CCU/ICCU/NICU stay exempt); rate entry Sl. No. 31A of "
    "Notification No. 11/2017-CT(Rate) as inserted by Notification No. 03/2022-CT(Rate)"
)
ICU_ROOM_SOURCE: Final = ROOM_RENT_SOURCE + "; ICU rooms remain under " + EXEMPT_SOURCE
GOODS_SOURCE: Final = (
    "taxable supply of goods at the item's own GST rate (chargemaster tax_category); "
    "rates per GST Council decisions, e.g. 56th meeting 03.09.2025 (medicines 5 % or nil "
    "from 22.09.2025)"
)
COMPOSITE_SOURCE: Final = (
    "part of the composite supply of health care to an in-patient (CBIC Circular "
    "32/06/2018-GST); " + EXEMPT_SOURCE
)
_ROOM_RENT_UNTIL_SOURCE: Final = (
    "room rent for in-patients exempt before 18.07.2022 (CBIC Circular 27/01/2018-GST; "
    "Notification No. 12/2017-Central Tax (Rate), Sl. No. 74)"
)

_EXEMPT_CATEGORIES: Final = frozenset(
    {
        "exempt",
        "healthcare",
        "health-care",
        "consultation",
        "diagnostic",
        "diagnostics",
        "lab",
        "laboratory",
        "procedure",
        "ambulance",
        "inpatient-food",
    }
)
_ROOM_CATEGORIES: Final = frozenset({"room", "room-rent"})
_ICU_ROOM_CATEGORIES: Final = frozenset(f"room-{kind}" for kind in ICU_LOCATION_KINDS)
_GOODS: Final = re.compile(r"gst-(\d{1,2}(?:\.\d{1,2})?)")

#: The ``tax_category`` vocabulary of the India market (case-insensitive). Empty or
#: ``None`` means a health care service (exempt). ``gst-<rate>`` is any other taxable
#: supply at ``<rate>`` percent (``gst-0``, ``gst-5``, ``gst-12``, ``gst-18`` …).
TAX_CATEGORIES: Final = (
    *sorted(_EXEMPT_CATEGORIES | _ROOM_CATEGORIES | _ICU_ROOM_CATEGORIES),
    "gst-<rate>",
)


def _line(
    charge: TaxableCharge,
    *,
    tax_code: str,
    rate: Decimal,
    input_tax_credit: bool,
    rule: str,
    source: str,
) -> TaxLine:
    taxable = charge.total
    return TaxLine(
        tax_code=tax_code,
        rate_percent=rate,
        taxable_amount=taxable,
        amount=round_money(taxable * rate / 100),
        currency=charge.currency,
        input_tax_credit=input_tax_credit,
        rule=rule,
        source=source,
    )


def _exempt(charge: TaxableCharge, rule: str, source: str) -> TaxLine:
    # An exempt supply carries no tax and therefore no input tax credit for it.
    return _line(
        charge,
        tax_code="GST-EXEMPT",
        rate=Decimal(0),
        input_tax_credit=False,
        rule=rule,
        source=source,
    )


def gst_tax_lines(charge: TaxableCharge) -> list[TaxLine]:
    """Return the GST treatment of one charge of a clinical establishment in India.

    Parameters
    ----------
    charge : TaxableCharge
        In INR. ``tax_category`` (case-insensitive) decides the rule:

        * empty, ``exempt``, ``healthcare``, ``consultation``, ``diagnostic(s)``,
          ``lab(oratory)``, ``procedure``, ``ambulance``, ``inpatient-food``: health care
          service, exempt;
        * ``room`` / ``room-rent``: room rent for ``quantity`` days. The charge per day
          per patient is the amount charged divided by the days (``unit_price`` when no
          separate ``amount`` is given). Exempt when the room is an ICU, CCU, ICCU or NICU
          (``location_kind``), when the charge per day is at most INR 5,000, or when the
          service date is before 18 July 2022; otherwise 5 % on the whole amount charged
          for the room (not only the part above 5,000), without input tax credit;
        * ``room-icu``, ``room-ccu``, ``room-iccu``, ``room-nicu``: ICU room rent, exempt
          at any price;
        * ``gst-<rate>``: goods (medicines, consumables) or a non-health-care service at
          ``<rate>`` percent, with input tax credit; if ``separate_supply`` is ``False``
          the item is part of an in-patient's composite health care supply and exempt.

    Returns
    -------
    list of TaxLine
        Exactly one line: ``GST`` (taxed, possibly at 0 %) or ``GST-EXEMPT``.

    Raises
    ------
    InvalidInputError
        The currency is not INR, or the category is not in :data:`TAX_CATEGORIES`.

    Notes
    -----
    The threshold is tested on one charge's daily price. A patient charged for two rooms
    on one day (a transfer) needs the day's room charges combined into one charge before
    the test, because the rule is per day per patient.

    Examples
    --------
    >>> room = TaxableCharge(code="ROOM-PVT", unit_price=Decimal("6000"), currency="INR",
    ...                      tax_category="room")
    >>> [(t.tax_code, t.amount, t.input_tax_credit) for t in gst_tax_lines(room)]
    [('GST', Decimal('300.00'), False)]
    """
    who = charge.reference or charge.code
    if charge.currency.upper() != "INR":
        raise InvalidInputError(
            f"{who}: GST rules are in INR but the charge is in {charge.currency}: "
            "price Indian facilities in INR"
        )
    category = (charge.tax_category or "").strip().lower()
    location = (charge.location_kind or "").strip().lower()

    if category in ("", *_EXEMPT_CATEGORIES):
        return [_exempt(charge, "IN-GST-HEALTHCARE-EXEMPT", EXEMPT_SOURCE)]

    if category in _ICU_ROOM_CATEGORIES or (
        category in _ROOM_CATEGORIES and location in ICU_LOCATION_KINDS
    ):
        return [_exempt(charge, "IN-GST-ICU-ROOM-EXEMPT", ICU_ROOM_SOURCE)]

    if category in _ROOM_CATEGORIES:
        if charge.service_date is not None and charge.service_date < ROOM_RENT_GST_FROM:
            return [_exempt(charge, "IN-GST-ROOM-RENT-BEFORE-2022-07-18", _ROOM_RENT_UNTIL_SOURCE)]
        per_day = charge.total / charge.quantity if charge.quantity > 0 else charge.unit_price
        if per_day <= ROOM_RENT_THRESHOLD_INR:
            return [_exempt(charge, "IN-GST-ROOM-RENT-UPTO-5000", ROOM_RENT_SOURCE)]
        return [
            _line(
                charge,
                tax_code="GST",
                rate=ROOM_RENT_GST_PERCENT,
                input_tax_credit=False,
                rule="IN-GST-ROOM-RENT",
                source=ROOM_RENT_SOURCE,
            )
        ]

    match = _GOODS.fullmatch(category)
    if match is not None:
        if not charge.separate_supply:
            return [_exempt(charge, "IN-GST-COMPOSITE-HEALTHCARE", COMPOSITE_SOURCE)]
        return [
            _line(
                charge,
                tax_code="GST",
                rate=Decimal(match.group(1)),
                input_tax_credit=True,
                rule=f"IN-GST-ITEM-{match.group(1)}",
                source=GOODS_SOURCE,
            )
        ]

    raise InvalidInputError(
        f"{who}: tax_category {charge.tax_category!r} is not an India GST category: use one "
        f"of {', '.join(TAX_CATEGORIES)} in the chargemaster"
    )


# --------------------------------------------------------------------------- TPA clocks

#: ``PriorAuthorization.kind`` values that run an IRDAI clock.
TpaClockKind = Literal["cashless-preauth", "discharge-auth"]
#: Insurer/TPA decision on a cashless authorisation request: "immediately, within one hour".
CASHLESS_PREAUTH_LIMIT: Final = dt.timedelta(hours=1)
#: Final authorisation on discharge: within three hours of the hospital's request.
DISCHARGE_AUTH_LIMIT: Final = dt.timedelta(hours=3)
TPA_CLOCK_KINDS: Final[dict[str, dt.timedelta]] = {
    "cashless-preauth": CASHLESS_PREAUTH_LIMIT,
    "discharge-auth": DISCHARGE_AUTH_LIMIT,
}
_CIRCULAR: Final = "IRDAI Master Circular on Health Insurance, 29 May 2024"
_TPA_SOURCES: Final[dict[str, str]] = {
    "cashless-preauth": f"{_CIRCULAR}: cashless authorisation decided immediately, within 1 hour",
    "discharge-auth": (
        f"{_CIRCULAR}: final discharge authorisation within 3 hours of the request; beyond 3 "
        "hours extra hospital charges are borne by the insurer from shareholders' funds"
    ),
}


@dataclass(frozen=True, kw_only=True)
class TpaClock:
    """The state of one IRDAI cashless clock.

    Attributes
    ----------
    kind : {"cashless-preauth", "discharge-auth"}
        Which request.
    requested_at : datetime.datetime
        When the hospital sent the request (aware).
    due_at : datetime.datetime
        ``requested_at`` + the limit (1 hour or 3 hours); a decision at ``due_at`` exactly
        is on time.
    decided_at : datetime.datetime or None
        When the insurer/TPA decided; ``None`` while waiting.
    decided_within : bool or None
        Whether the decision came by ``due_at``; ``None`` while undecided.
    breached : bool
        Decided after ``due_at``, or still undecided after ``due_at`` at ``now``.
    minutes_remaining_or_overdue : int
        Signed whole minutes between ``due_at`` and the decision (or ``now`` while
        undecided): positive = minutes to spare (rounded down), negative = minutes overdue
        (rounded up, so a breach never shows 0).
    limit : datetime.timedelta
        The clock's length.
    source : str
        The rule's source.
    """

    kind: str
    requested_at: dt.datetime
    due_at: dt.datetime
    decided_at: dt.datetime | None
    decided_within: bool | None
    breached: bool
    minutes_remaining_or_overdue: int
    limit: dt.timedelta
    source: str

    @property
    def status(self) -> Literal["running", "met", "breached"]:
        """``"breached"``, ``"met"`` (decided in time) or ``"running"`` (waiting, not due)."""
        if self.breached:
            return "breached"
        return "met" if self.decided_at is not None else "running"

    @property
    def overdue_minutes(self) -> int:
        """Minutes past ``due_at`` (0 when not breached)."""
        return max(0, -self.minutes_remaining_or_overdue)


def _aware(name: str, value: dt.datetime) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise InvalidInputError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(
            f"{name}={value.isoformat()} is naive: pass an aware datetime "
            "(e.g. with tzinfo=ZoneInfo('Asia/Kolkata') or datetime.UTC)"
        )
    return value


def _signed_minutes(delta: dt.timedelta) -> int:
    seconds = delta.total_seconds()
    if seconds >= 0:
        return math.floor(seconds / 60)
    return -math.ceil(-seconds / 60)


def tpa_clock(
    kind: str,
    requested_at: dt.datetime,
    decided_at: dt.datetime | None = None,
    *,
    now: dt.datetime,
) -> TpaClock:
    """Return the IRDAI clock of a cashless pre-authorisation or discharge authorisation.

    Parameters
    ----------
    kind : {"cashless-preauth", "discharge-auth"}
        ``PriorAuthorization.kind``. A cashless authorisation request (the initial
        pre-authorisation or an enhancement) has 1 hour; the final discharge authorisation
        has 3 hours.
    requested_at : datetime.datetime
        When the hospital sent the request (aware).
    decided_at : datetime.datetime or None, default=None
        When the insurer/TPA decided (approved or denied); ``None`` while waiting.
    now : datetime.datetime
        The current time (aware); passed in so that the result is deterministic.

    Returns
    -------
    TpaClock
        Due time, whether the decision was in time, whether the clock is breached and the
        signed minutes remaining (positive) or overdue (negative).

    Raises
    ------
    InvalidInputError
        A naive datetime; an unknown ``kind`` (US ``prior-auth`` has no IRDAI clock:
        its timing comes from the payer contract); ``decided_at`` before ``requested_at``;
        ``now`` before ``requested_at`` while undecided.

    Examples
    --------
    >>> t0 = dt.datetime(2024, 8, 1, 10, 0, tzinfo=dt.UTC)
    >>> clock = tpa_clock("cashless-preauth", t0, t0 + dt.timedelta(minutes=61), now=t0)
    >>> clock.breached, clock.minutes_remaining_or_overdue
    (True, -1)
    """
    if kind not in TPA_CLOCK_KINDS:
        raise InvalidInputError(
            f"no IRDAI clock for kind {kind!r}: use one of {', '.join(TPA_CLOCK_KINDS)} "
            "(US prior authorisation timing comes from the payer contract)"
        )
    _aware("requested_at", requested_at)
    _aware("now", now)
    if decided_at is not None:
        _aware("decided_at", decided_at)
        if decided_at < requested_at:
            raise InvalidInputError(
                f"decided_at {decided_at.isoformat()} is before requested_at "
                f"{requested_at.isoformat()}: check the two timestamps"
            )
    elif now < requested_at:
        raise InvalidInputError(
            f"now {now.isoformat()} is before requested_at {requested_at.isoformat()}: "
            "the clock has not started"
        )
    limit = TPA_CLOCK_KINDS[kind]
    due_at = requested_at + limit
    reference = decided_at if decided_at is not None else now
    breached = reference > due_at
    return TpaClock(
        kind=kind,
        requested_at=requested_at,
        due_at=due_at,
        decided_at=decided_at,
        decided_within=None if decided_at is None else not breached,
        breached=breached,
        minutes_remaining_or_overdue=_signed_minutes(due_at - reference),
        limit=limit,
        source=_TPA_SOURCES[kind],
    )


# --------------------------------------------------------------------------- market


class IndiaMarket(Market):
    """India: INR, GST per line (:func:`gst_tax_lines`), IRDAI cashless clocks (:func:`tpa_clock`).

    Prices are the hospital's chargemaster prices (the default pricing hook); TPA package
    rates and PM-JAY/NHA package rates are not modelled here.
    """

    code: ClassVar[MarketCode] = "IN"
    name: ClassVar[str] = "India"
    currency: ClassVar[str] = "INR"

    def tax_lines(self, charge: TaxableCharge) -> list[TaxLine]:
        """Return the GST treatment of ``charge`` (see :func:`gst_tax_lines`)."""
        return gst_tax_lines(charge)

    def tpa_clock(
        self,
        kind: str,
        requested_at: dt.datetime,
        decided_at: dt.datetime | None = None,
        *,
        now: dt.datetime,
    ) -> TpaClock:
        """Return the IRDAI clock of a request (see :func:`tpa_clock`)."""
        return tpa_clock(kind, requested_at, decided_at, now=now)
