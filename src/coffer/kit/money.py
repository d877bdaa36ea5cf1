"""Exact money: integer minor units inside, `Decimal` at the edges, never `float`.

A client's amount arrives as a JSON string or number. It is parsed from its text (or an exact
`Decimal`/`int`), never through a binary float, and refused unless it is a finite number with
no more decimals than the currency has, inside the allowed range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

from coffer.errors import AppError


class InvalidAmount(AppError):
    code = "invalid_amount"
    http_status = 422
    default_message = "The amount is not valid"


class UnknownCurrency(AppError):
    code = "unsupported_currency"
    http_status = 422
    default_message = "The currency is not supported"


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    exponent: int
    """How many decimal places the minor unit has (ISO 4217): 2 for NGN, 0 for JPY, 3 for KWD."""
    name: str


CURRENCIES: Final[dict[str, Currency]] = {
    c.code: c
    for c in (
        Currency("NGN", 2, "Nigerian naira"),
        Currency("USD", 2, "US dollar"),
        Currency("EUR", 2, "Euro"),
        Currency("GBP", 2, "Pound sterling"),
        Currency("KZT", 2, "Kazakhstani tenge"),
        Currency("KES", 2, "Kenyan shilling"),
        Currency("GHS", 2, "Ghanaian cedi"),
        Currency("ZAR", 2, "South African rand"),
        Currency("CAD", 2, "Canadian dollar"),
        Currency("JPY", 0, "Japanese yen"),
        Currency("KWD", 3, "Kuwaiti dinar"),
    )
}

# The absolute ceiling, far inside BIGINT, so sums of many amounts cannot overflow.
HARD_MAX_MINOR: Final = 10**15
_MAX_TEXT_LENGTH: Final = 40
# ASCII digits, an optional fraction, an optional exponent: no spaces, underscores, NaN,
# Infinity or non-ASCII digits (Arabic-Indic, full-width), all of which Decimal() would
# otherwise accept.
_AMOUNT_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?", re.ASCII)


def get_currency(code: str) -> Currency:
    """The registered currency for an ISO 4217 code (case-insensitive)."""
    currency = CURRENCIES.get(code.upper()) if isinstance(code, str) else None
    if currency is None:
        raise UnknownCurrency(f"Unsupported currency: {str(code)[:8]!r}")
    return currency


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: integer minor units of one currency."""

    minor: int
    currency: Currency

    def __post_init__(self) -> None:
        if type(self.minor) is not int:
            raise TypeError("Money.minor must be an int")
        if abs(self.minor) > HARD_MAX_MINOR:
            raise InvalidAmount("The amount is out of range")

    @classmethod
    def of(cls, minor: int, currency: str | Currency) -> Money:
        return cls(minor, currency if isinstance(currency, Currency) else get_currency(currency))

    def to_decimal(self) -> Decimal:
        return Decimal(self.minor).scaleb(-self.currency.exponent)

    def format(self) -> str:
        """Exactly the currency's decimals: "250.50", "1000" for JPY, "-0.005" for KWD."""
        return format_minor(self.minor, self.currency)

    def __str__(self) -> str:
        return f"{self.format()} {self.currency.code}"


def format_minor(minor: int, currency: Currency) -> str:
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**currency.exponent)
    if currency.exponent == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{currency.exponent}d}"


def parse_amount(
    raw: object,
    currency: str | Currency,
    *,
    max_minor: int = HARD_MAX_MINOR,
    allow_zero: bool = False,
) -> Money:
    """Parse a client's amount (JSON string, int or exact Decimal) into a positive `Money`.

    Floats are refused outright: by the time a value is a float it may already be wrong.
    """
    currency = currency if isinstance(currency, Currency) else get_currency(currency)
    value = _to_decimal(raw)
    sign, _, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise InvalidAmount("The amount must be a finite number")
    if value.is_zero():
        if allow_zero:
            return Money(0, currency)
        raise InvalidAmount("The amount must be greater than zero")
    if sign:
        raise InvalidAmount("The amount must be greater than zero")
    if -exponent > currency.exponent:
        raise InvalidAmount(
            f"{currency.code} amounts have at most {currency.exponent} decimal places"
        )
    # Bound the magnitude before scaling so "1e999" cannot build a huge integer.
    if value.adjusted() > 18:
        raise InvalidAmount("The amount is too large")
    minor = int(value.scaleb(currency.exponent))
    if minor > min(max_minor, HARD_MAX_MINOR):
        limit = format_minor(min(max_minor, HARD_MAX_MINOR), currency)
        raise InvalidAmount(f"The amount must not exceed {limit} {currency.code}")
    return Money(minor, currency)


def _to_decimal(raw: object) -> Decimal:
    if isinstance(raw, bool) or raw is None:
        raise InvalidAmount("The amount must be a number or a numeric string")
    if isinstance(raw, int):
        return Decimal(raw)
    if isinstance(raw, Decimal):
        if not raw.is_finite():
            raise InvalidAmount("The amount must be a finite number")
        return raw
    if isinstance(raw, str):
        if len(raw) > _MAX_TEXT_LENGTH or not _AMOUNT_TEXT.fullmatch(raw):
            raise InvalidAmount('The amount must be a plain decimal number such as "250.50"')
        try:
            return Decimal(raw)
        except InvalidOperation as exc:  # pragma: no cover - the pattern admits only valid text
            raise InvalidAmount("The amount is not a number") from exc
    if isinstance(raw, float):
        raise InvalidAmount("Send the amount as a string or an exact JSON number")
    raise InvalidAmount("The amount must be a number or a numeric string")
