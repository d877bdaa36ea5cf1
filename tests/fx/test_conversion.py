"""The conversion arithmetic: exact, and never in the customer's favour (property-based)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coffer.fx.conversion import convert, cross_rate, display_rate, spread_fee_minor
from coffer.kit.money import CURRENCIES, InvalidAmount, Money, get_currency

currencies = st.sampled_from(sorted(CURRENCIES))
# Rates against the base as providers quote them: up to 8 significant digits, wide range.
rates = st.decimals(
    min_value=Decimal("0.0001"), max_value=Decimal("100000"), places=4, allow_nan=False
).filter(lambda d: d > 0)


@given(
    send_minor=st.integers(min_value=1, max_value=10**13),
    source=currencies,
    target=currencies,
    source_per_base=rates,
    target_per_base=rates,
    spread_bps=st.integers(min_value=0, max_value=1000),
)
def test_the_customer_never_gains_and_loses_less_than_one_minor_unit_per_rounding(
    send_minor: int,
    source: str,
    target: str,
    source_per_base: Decimal,
    target_per_base: Decimal,
    spread_bps: int,
) -> None:
    send = Money.of(send_minor, source)
    rate = cross_rate(source_per_base, target_per_base)
    try:
        result = convert(send, get_currency(target), rate, spread_bps)
    except InvalidAmount:
        return
    fee = result.fee.minor
    # The fee is the spread rounded up: at least the exact spread, less than one unit above.
    exact_fee = Fraction(send_minor * spread_bps, 10_000)
    assert exact_fee <= fee < exact_fee + 1
    # What arrives is the exact value of what is converted, rounded down.
    scale = Fraction(10) ** (get_currency(target).exponent - get_currency(source).exponent)
    exact_receive = (send_minor - fee) * rate * scale
    assert result.receive.minor <= exact_receive < result.receive.minor + 1
    assert result.send == send
    assert result.receive.currency.code == target
    # The rate shown is never better than the one applied.
    assert Fraction(result.rate) <= rate


def test_a_round_trip_through_the_base_adds_no_error() -> None:
    # 1 USD = 1500 NGN: 1500.00 NGN is exactly 1.00 USD, not 0.99.
    rate = cross_rate(Decimal("1500"), Decimal("1"))
    result = convert(Money.of(150_000, "NGN"), get_currency("USD"), rate, 0)
    assert result.receive == Money.of(100, "USD")
    assert result.rate == Decimal("0.000666666666666")


def test_currency_exponents_are_respected() -> None:
    # JPY has no minor unit, KWD has three decimals.
    rate = cross_rate(Decimal("150"), Decimal("0.307"))
    result = convert(Money.of(1000, "JPY"), get_currency("KWD"), rate, 0)
    assert result.receive == Money.of(2046, "KWD")  # 2.046666… KWD, rounded down


@pytest.mark.parametrize(
    ("send_minor", "spread_bps", "fee_minor"),
    [(10_000, 0, 0), (10_000, 50, 50), (10_001, 50, 51), (1, 1, 1), (19_999, 100, 200)],
)
def test_the_spread_fee_is_rounded_up(send_minor: int, spread_bps: int, fee_minor: int) -> None:
    assert spread_fee_minor(send_minor, spread_bps) == fee_minor


def test_an_amount_that_would_convert_to_nothing_is_refused() -> None:
    rate = cross_rate(Decimal("1500"), Decimal("1"))
    with pytest.raises(InvalidAmount, match="too small"):
        convert(Money.of(66, "NGN"), get_currency("USD"), rate, 0)
    with pytest.raises(InvalidAmount, match="too small"):
        convert(Money.of(1, "USD"), get_currency("NGN"), Fraction(1500), 10_000)


def test_the_displayed_rate_is_cut_to_twelve_significant_digits() -> None:
    assert display_rate(Fraction(2, 3)) == Decimal("0.666666666666")
    assert display_rate(Fraction(1500)) == Decimal("1500")
