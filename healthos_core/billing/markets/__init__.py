"""Billing markets as configuration, not forks: US, India and the UK (SPEC §4).

One code base serves every market. What differs between markets (currency, the tax on a
charge, how a service is priced, which clocks and code systems apply) sits behind the
:class:`Market` interface, and a deployment or a single facility chooses its market.

How a market is chosen (:func:`get_market`), first match wins:

1. an explicit ``code`` argument (``"US"``, ``"IN"`` or ``"UK"``);
2. the facility: an :class:`~healthos_core.record.entities.Organization` whose FHIR
   ``resource`` carries the extension :data:`MARKET_EXTENSION_URL` with a ``valueCode``
   (``{"url": MARKET_EXTENSION_URL, "valueCode": "IN"}``). Only the facility's own
   resource is read: the ``part_of`` hierarchy is not walked, so every billing facility
   of a multi-market network carries the extension itself;
3. the deployment default, ``Settings.market`` (environment ``HEALTHOS_MARKET``).

Markets
-------
``US``
    :class:`healthos_core.billing.markets.us.USMarket`: no tax lines; ICD-10-CM, HCPCS and
    X12 CARC/RARC code systems; payer filing limits from contracts.
``IN``
    :class:`healthos_core.billing.markets.india.IndiaMarket`: GST per line (health care
    exempt, non-ICU room rent above INR 5,000 a day at 5 % without input tax credit, goods
    at their own rate) and the IRDAI cashless clocks (:func:`~.india.tpa_clock`).
``UK``
    :class:`healthos_core.billing.markets.uk.UKMarket`: NHS Payment Scheme, HRG unit
    price × market forces factor (:func:`~.uk.price_activity`).

The deployment's market also sets the currency its ledger keeps all money in, unless
``HEALTHOS_CURRENCY`` is set (:func:`healthos_core.billing.money.ledger_currency`): a
facility whose market keeps another currency cannot share that ledger.

Everything here is a pure function or a frozen dataclass: no table, no session.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, get_args

from healthos_core.errors import InvalidInputError, PricingError
from healthos_core.settings import get_settings

if TYPE_CHECKING:
    from healthos_core.billing.entities import ChargeItem, ChargemasterEntry
    from healthos_core.record.entities import Organization

__all__ = [
    "MARKET_CODES",
    "MARKET_EXTENSION_URL",
    "Market",
    "MarketCode",
    "TaxLine",
    "TaxableCharge",
    "facility_market_code",
    "get_market",
    "round_money",
]

#: The markets HealthOS knows (``Settings.market`` accepts the same codes).
MarketCode = Literal["US", "IN", "UK"]
MARKET_CODES: Final[tuple[str, ...]] = get_args(MarketCode)

#: FHIR extension on a facility's Organization resource naming its billing market.
MARKET_EXTENSION_URL: Final = "https://healthos.dev/fhir/StructureDefinition/billing-market"

_CENT: Final = Decimal("0.01")


def round_money(amount: Decimal) -> Decimal:
    """Round an amount to the minor unit (2 places), half up.

    Parameters
    ----------
    amount : Decimal
        An exact amount (never a float).

    Returns
    -------
    Decimal
        ``amount`` quantized to ``0.01`` with ``ROUND_HALF_UP``. INR (paise), GBP (pence) and
        USD (cents) all have 2 decimal places (ISO 4217). Half-up is the HealthOS convention
        for every computed amount (tax, MFF-adjusted price): none of the sources in
        ``shared/billing-facts.md`` gives a rounding rule.

    Raises
    ------
    InvalidInputError
        ``amount`` is not a finite ``Decimal``.

    Examples
    --------
    >>> round_money(Decimal("250.045"))
    Decimal('250.05')
    """
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise InvalidInputError(
            f"amount {amount!r} is not a finite Decimal: pass Decimal('12.34'), never a float"
        )
    return amount.quantize(_CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, kw_only=True)
class TaxLine:
    """The tax treatment of one charge under one rule.

    Exempt charges get a line too (rate 0, amount 0), so an itemised bill can show why a
    line carries no tax.

    Attributes
    ----------
    tax_code : str
        ``"GST"`` for a taxed supply, ``"GST-EXEMPT"`` for an exempt one.
    rate_percent : Decimal
        The rate in percent (``Decimal("5")`` is 5 %), the whole tax (for India: central
        plus state tax, or integrated tax).
    taxable_amount : Decimal
        The amount the rate applies to, in ``currency``.
    amount : Decimal
        The tax, ``taxable_amount × rate_percent / 100`` rounded by :func:`round_money`.
    currency : str
        ISO 4217 code.
    input_tax_credit : bool
        Whether the supplier may claim input tax credit for this supply.
    rule : str
        HealthOS rule id, e.g. ``"IN-GST-ROOM-RENT"``.
    source : str
        The legal or published source of the rule.
    """

    tax_code: str
    rate_percent: Decimal
    taxable_amount: Decimal
    amount: Decimal
    currency: str
    input_tax_credit: bool
    rule: str
    source: str


@dataclass(frozen=True, kw_only=True)
class TaxableCharge:
    """What a market needs to know about a charge to tax it (plain values, no session).

    Attributes
    ----------
    code : str
        The service code of the charge.
    unit_price : Decimal
        Price per unit in ``currency``; for room rent, the charge **per day**.
    quantity : Decimal, default=Decimal(1)
        Units; for room rent, the number of days at ``unit_price``.
    amount : Decimal or None, default=None
        The amount actually charged for the line (``ChargeItem.total``), when it differs
        from ``unit_price × quantity`` (e.g. after a discount); ``None`` means
        ``unit_price × quantity``.
    currency : str
        ISO 4217 code.
    tax_category : str or None, default=None
        ``ChargemasterEntry.tax_category`` of the priced entry (market vocabulary: see
        :data:`healthos_core.billing.markets.india.TAX_CATEGORIES`).
    location_kind : str or None, default=None
        ``Location.kind`` where the service was given (``"icu"``, ``"ward"`` …), if known.
    service_date : datetime.date or None, default=None
        Day of service; rules with a start date apply from that date. ``None`` means the
        rules in force today.
    separate_supply : bool, default=True
        For goods (medicines, consumables): ``True`` when supplied separately (e.g. a
        pharmacy sale), so they carry their own rate; ``False`` when they are part of the
        composite supply of health care to an in-patient and take its exemption.
    reference : str or None, default=None
        ``"ChargeItem/<id>"``, for messages.
    """

    code: str
    unit_price: Decimal
    quantity: Decimal = Decimal(1)
    amount: Decimal | None = None
    currency: str
    tax_category: str | None = None
    location_kind: str | None = None
    service_date: dt.date | None = None
    separate_supply: bool = True
    reference: str | None = None

    def __post_init__(self) -> None:
        """Refuse floats and non-finite amounts."""
        for name in ("unit_price", "quantity", "amount"):
            value = getattr(self, name)
            if name == "amount" and value is None:
                continue
            if not isinstance(value, Decimal) or not value.is_finite():
                raise InvalidInputError(
                    f"{self.reference or self.code}: {name}={value!r} is not a finite Decimal"
                )

    @property
    def total(self) -> Decimal:
        """The line amount (``amount``, else ``unit_price × quantity``), to the minor unit."""
        if self.amount is not None:
            return round_money(self.amount)
        return round_money(self.unit_price * self.quantity)

    @classmethod
    def from_charge_item(
        cls,
        item: ChargeItem,
        entry: ChargemasterEntry | None = None,
        *,
        location_kind: str | None = None,
        separate_supply: bool = True,
    ) -> TaxableCharge:
        """Build from a stored ``ChargeItem`` and the chargemaster entry that priced it.

        Parameters
        ----------
        item : ChargeItem
            The charge.
        entry : ChargemasterEntry or None, default=None
            Its chargemaster entry (``item.chargemaster_entry_id``), which holds
            ``tax_category``; ``None`` leaves the category empty.
        location_kind : str or None, default=None
            ``Location.kind`` of the place of service (ICU rooms are exempt in India).
        separate_supply : bool, default=True
            See the class attribute.

        Returns
        -------
        TaxableCharge
            ``amount`` is ``item.total``; ``service_date`` is the UTC date of
            ``item.occurred_at`` when set.
        """
        occurred = item.occurred_at
        return cls(
            code=item.code,
            unit_price=item.unit_price,
            quantity=item.quantity,
            amount=item.total,
            currency=item.currency,
            tax_category=entry.tax_category if entry is not None else None,
            location_kind=location_kind,
            service_date=occurred.astimezone(dt.UTC).date() if occurred is not None else None,
            separate_supply=separate_supply,
            reference=f"ChargeItem/{item.id}",
        )


class Market(ABC):
    """A billing market: currency, tax, pricing and claim conventions.

    Subclasses set the class variables and implement :meth:`tax_lines`; they may override
    :meth:`price_service` (the pricing hook).

    Attributes
    ----------
    code : {"US", "IN", "UK"}
        Market code, as in ``Settings.market``.
    name : str
        Human-readable name.
    currency : str
        ISO 4217 currency of the market's prices.
    """

    code: ClassVar[MarketCode]
    name: ClassVar[str]
    currency: ClassVar[str]

    @abstractmethod
    def tax_lines(self, charge: TaxableCharge) -> list[TaxLine]:
        """Return the tax treatment of one charge.

        Parameters
        ----------
        charge : TaxableCharge
            The charge (plain values).

        Returns
        -------
        list of TaxLine
            Empty when the market levies no tax on the charge and has nothing to show.
        """

    def price_service(
        self,
        *,
        code: str,
        on: dt.date,
        list_price: Decimal | None,
        facility_id: str | None = None,
    ) -> Decimal:
        """Return the unit price the market charges for a service (the pricing hook).

        The default (US, India) is the hospital's own chargemaster price: payer contracts
        change the *allowed* amount on a claim, not the charge.

        Parameters
        ----------
        code : str
            Service code (for the UK, an HRG code).
        on : datetime.date
            Day of service.
        list_price : Decimal or None
            The chargemaster price in force on ``on`` (``None`` if there is none).
        facility_id : str or None, default=None
            The facility (Organization id) that provided the service.

        Returns
        -------
        Decimal
            Unit price rounded to the minor unit.

        Raises
        ------
        PricingError
            No price can be found.
        """
        if list_price is None:
            raise PricingError(
                f"no chargemaster price for {code!r} on {on.isoformat()} in market {self.code}: "
                "load one with `healthos chargemaster load`"
            )
        return round_money(list_price)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, currency={self.currency!r})"


def _extension_code(resource: Mapping[str, Any] | None) -> str | None:
    for extension in (resource or {}).get("extension", []) or []:
        if isinstance(extension, Mapping) and extension.get("url") == MARKET_EXTENSION_URL:
            value = extension.get("valueCode")
            if not isinstance(value, str) or not value.strip():
                raise InvalidInputError(
                    f"extension {MARKET_EXTENSION_URL} has no valueCode: set it to one of "
                    f"{', '.join(MARKET_CODES)}"
                )
            return value
    return None


def facility_market_code(facility: Organization | Mapping[str, Any] | None) -> str | None:
    """Return the market a facility declares, or ``None`` if it declares none.

    Parameters
    ----------
    facility : Organization, FHIR Organization dict or None
        The facility; its FHIR ``resource`` (or the dict itself) is searched for the
        extension :data:`MARKET_EXTENSION_URL`.

    Returns
    -------
    str or None
        The extension's ``valueCode`` as written (validated by :func:`get_market`).

    Raises
    ------
    InvalidInputError
        The extension is present but has no ``valueCode``.
    """
    if facility is None:
        return None
    if isinstance(facility, Mapping):
        return _extension_code(facility)
    return _extension_code(getattr(facility, "resource", None))


def get_market(code: str | None = None, *, facility: Any = None) -> Market:
    """Return the billing market for an explicit code, a facility, or the deployment.

    Parameters
    ----------
    code : {"US", "IN", "UK"} or None, default=None
        Explicit market (case-insensitive); wins over everything else.
    facility : Organization, FHIR Organization dict or None, default=None
        A facility whose resource may carry :data:`MARKET_EXTENSION_URL`.

    Returns
    -------
    Market
        A new market object. The UK market returned here has no tariff loaded; build
        :class:`~healthos_core.billing.markets.uk.UKMarket` with a tariff to price HRGs.

    Raises
    ------
    InvalidInputError
        The code (given, or found on the facility) is not a known market.

    Examples
    --------
    >>> get_market("IN").currency
    'INR'
    >>> org = {"resourceType": "Organization",
    ...        "extension": [{"url": MARKET_EXTENSION_URL, "valueCode": "UK"}]}
    >>> get_market(facility=org).code
    'UK'
    """
    from healthos_core.billing.markets import india, uk, us

    origin = "code"
    chosen = code
    if chosen is None:
        chosen = facility_market_code(facility)
        origin = "facility extension"
    if chosen is None:
        chosen = get_settings().market
        origin = "HEALTHOS_MARKET"
    key = chosen.strip().upper()
    markets: dict[str, type[Market]] = {
        "US": us.USMarket,
        "IN": india.IndiaMarket,
        "UK": uk.UKMarket,
    }
    if key not in markets:
        raise InvalidInputError(
            f"unknown market {chosen!r} (from {origin}): use one of {', '.join(MARKET_CODES)}"
        )
    return markets[key]()
