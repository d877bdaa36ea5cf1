"""The arithmetic of a conversion: exact, never in the customer's favour by even a fraction of
a minor unit, and never against them by more than the one rounding that must happen.

A rate is the exact ratio of two cached rates against the base (a `Fraction`), so a round
trip through the base adds no error. The spread fee is rounded up to a whole minor unit and
the amount received is rounded down; nothing else is rounded. The rate shown to people is
that ratio cut to `RATE_SIGNIFICANT_DIGITS` (rounded down).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_DOWN, Context, Decimal
from fractions import Fraction
from typing import Any

from coffer.kit.money import HARD_MAX_MINOR, Currency, InvalidAmount, Money

RATE_SIGNIFICANT_DIGITS = 12
BPS_PER_UNIT = 10_000
_DISPLAY = Context(prec=RATE_SIGNIFICANT_DIGITS, rounding=ROUND_DOWN)


def cross_rate(from_per_base: Decimal, to_per_base: Decimal) -> Fraction:
    """Units of `to` per unit of `from`, exactly, given both against a common base."""
    if not (from_per_base.is_finite() and to_per_base.is_finite()):
        raise ValueError("rates are finite")
    if from_per_base <= 0 or to_per_base <= 0:
        raise ValueError("rates are positive")
    return Fraction(to_per_base) / Fraction(from_per_base)


def display_rate(rate: Fraction) -> Decimal:
    """The rate as people see it: 12 significant digits, rounded down."""
    return _DISPLAY.divide(Decimal(rate.numerator), Decimal(rate.denominator))


def convert_minor(amount_minor: int, rate: Fraction, source: Currency, target: Currency) -> int:
    """`amount_minor` of `source` in minor units of `target`, rounded down."""
    return math.floor(amount_minor * rate * Fraction(10) ** (target.exponent - source.exponent))


def spread_fee_minor(amount_minor: int, spread_bps: int) -> int:
    """The spread on `amount_minor`, rounded up to a whole minor unit."""
    return -(-amount_minor * spread_bps // BPS_PER_UNIT)


@dataclass(frozen=True, slots=True)
class Conversion:
    rate: Decimal
    """Units of the receive currency per unit of the send currency, as shown."""
    send: Money
    """What leaves the sender's wallet, the fee included."""
    fee: Money
    """The spread, in the send currency, to system:fees:<ccy>."""
    receive: Money

    def terms(self, quote_id: str | None) -> dict[str, Any]:
        """The conversion as stored in ledger and history metadata (amounts as strings)."""
        details: dict[str, Any] = {
            "rate": format(self.rate, "f"),
            "send_amount": self.send.format(),
            "send_currency": self.send.currency.code,
            "receive_amount": self.receive.format(),
            "receive_currency": self.receive.currency.code,
            "fee": self.fee.format(),
        }
        if quote_id is not None:
            details["quote_id"] = quote_id
        return details


def stored_conversion(row: Any) -> Conversion | None:
    """The conversion a stored transfer row carries (its `fx_rate`, `amount_minor`,
    `currency`, `fee_minor`, `receive_amount_minor` and `receive_currency`); None when the
    transfer stays in one currency."""
    if row.receive_currency is None:
        return None
    return Conversion(
        row.fx_rate,
        Money.of(row.amount_minor, row.currency),
        Money.of(row.fee_minor or 0, row.currency),
        Money.of(row.receive_amount_minor, row.receive_currency),
    )


def convert(
    send: Money,
    target: Currency,
    rate: Fraction,
    spread_bps: int,
    *,
    max_minor: int = HARD_MAX_MINOR,
) -> Conversion:
    """Price sending `send` into `target` at `rate`, less the spread."""
    fee = spread_fee_minor(send.minor, spread_bps)
    net = send.minor - fee
    receive = convert_minor(net, rate, send.currency, target) if net > 0 else 0
    if receive <= 0:
        raise InvalidAmount(f"The amount is too small to convert into {target.code}")
    if receive > min(max_minor, HARD_MAX_MINOR):
        raise InvalidAmount(f"The converted amount is too large for {target.code}")
    return Conversion(display_rate(rate), send, Money(fee, send.currency), Money(receive, target))
