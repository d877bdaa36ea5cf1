"""Exact money: parsing a client's amount, formatting minor units, the currency registry."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coffer.kit.money import (
    CURRENCIES,
    HARD_MAX_MINOR,
    Currency,
    InvalidAmount,
    Money,
    UnknownCurrency,
    format_minor,
    get_currency,
    parse_amount,
)

NGN = CURRENCIES["NGN"]
JPY = CURRENCIES["JPY"]
KWD = CURRENCIES["KWD"]

currencies = st.sampled_from(sorted(CURRENCIES.values(), key=lambda c: c.code))
positive_minor = st.integers(min_value=1, max_value=HARD_MAX_MINOR)


def test_registry_holds_the_exponents_the_parser_relies_on() -> None:
    assert (NGN.exponent, JPY.exponent, KWD.exponent) == (2, 0, 3)
    assert all(code == currency.code for code, currency in CURRENCIES.items())


# --- round trips -------------------------------------------------------------------------------


@given(currency=currencies, minor=positive_minor)
def test_formatted_amount_parses_back_to_the_same_minor_units(
    currency: Currency, minor: int
) -> None:
    text = format_minor(minor, currency)
    assert parse_amount(text, currency) == Money(minor, currency)
    assert parse_amount(text, currency.code).format() == text


@given(currency=currencies, minor=positive_minor)
def test_decimal_of_money_parses_back_to_the_same_money(currency: Currency, minor: int) -> None:
    money = Money(minor, currency)
    assert parse_amount(money.to_decimal(), currency) == money


@given(currency=currencies, minor=positive_minor)
def test_formatted_amount_has_exactly_the_currency_decimals(currency: Currency, minor: int) -> None:
    text = format_minor(minor, currency)
    if currency.exponent == 0:
        assert "." not in text
        assert text == str(minor)
    else:
        whole, fraction = text.split(".")
        assert len(fraction) == currency.exponent
        assert int(whole + fraction) == minor


@given(currency=currencies, minor=positive_minor)
def test_minor_units_in_exponent_notation_parse_exactly(currency: Currency, minor: int) -> None:
    assert parse_amount(f"{minor}e-{currency.exponent}", currency).minor == minor


@given(currency=currencies, minor=st.integers(min_value=1, max_value=HARD_MAX_MINOR // 10**3))
def test_whole_int_amounts_are_scaled_to_minor_units(currency: Currency, minor: int) -> None:
    assert parse_amount(minor, currency).minor == minor * 10**currency.exponent


@given(currency=currencies, minor=positive_minor)
def test_negative_minor_units_format_with_a_leading_minus(currency: Currency, minor: int) -> None:
    assert format_minor(-minor, currency) == "-" + format_minor(minor, currency)


@pytest.mark.parametrize(
    ("raw", "code", "expected_minor", "formatted"),
    [
        ("250.50", "NGN", 25050, "250.50"),
        ("250.5", "NGN", 25050, "250.50"),
        ("0.01", "NGN", 1, "0.01"),
        (".5", "USD", 50, "0.50"),
        ("7.", "EUR", 700, "7.00"),
        ("+3", "GBP", 300, "3.00"),
        ("1000", "JPY", 1000, "1000"),
        ("1", "JPY", 1, "1"),
        ("1.234", "KWD", 1234, "1.234"),
        ("0.001", "KWD", 1, "0.001"),
        ("1.5e1", "NGN", 1500, "15.00"),
        ("1.5E1", "NGN", 1500, "15.00"),
        ("1e-2", "NGN", 1, "0.01"),
        ("1e-3", "KWD", 1, "0.001"),
        ("12e2", "JPY", 1200, "1200"),
        ("00012.30", "NGN", 1230, "12.30"),
    ],
)
def test_plain_and_exponent_amounts_parse_to_exact_minor_units(
    raw: str, code: str, expected_minor: int, formatted: str
) -> None:
    money = parse_amount(raw, code)
    assert money.minor == expected_minor
    assert money.currency is CURRENCIES[code]
    assert money.format() == formatted


@pytest.mark.parametrize(
    ("raw", "code", "expected_minor"),
    [
        (Decimal("250.50"), "NGN", 25050),
        (Decimal("1.5E+1"), "NGN", 1500),
        (Decimal("1500"), "JPY", 1500),
        (Decimal("0.007"), "KWD", 7),
        (Decimal(42), "KWD", 42000),
        (42, "NGN", 4200),
    ],
)
def test_exact_decimal_and_int_inputs_parse(raw: object, code: str, expected_minor: int) -> None:
    assert parse_amount(raw, code).minor == expected_minor


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [True, False, None, 1.5, 1.0, float("nan"), float("inf"), [1], {"amount": "1"}, b"1"],
    ids=repr,
)
def test_non_numeric_types_floats_and_bools_are_refused(raw: object) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(raw, "NGN")


@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_every_float_is_refused(value: float) -> None:
    with pytest.raises(InvalidAmount, match="string or an exact JSON number"):
        parse_amount(value, "NGN")


@pytest.mark.parametrize(
    "raw",
    [
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "-Infinity",
        "inf",
        "1_000",
        "1_000.00",
        " 1",
        "1 ",
        "1\n",
        "\t1",
        "1 000",
        "",
        "-",
        ".",
        "e5",
        "1e",
        "1.2.3",
        "0x10",
        "1,000",
        "₦100",
        "100 NGN",
        "1e1000",
    ],
)
def test_text_that_is_not_a_plain_decimal_is_refused(raw: str) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(raw, "NGN")


@pytest.mark.parametrize(
    "raw",
    [
        "\u0661\u0660\u0660",  # Arabic-Indic 100: Decimal() reads it as 100
        "\uff11\uff10\uff10",  # full-width 100
        "1\u0660",  # ASCII 1, Arabic-Indic 0
    ],
)
def test_non_ascii_digits_are_refused(raw: str) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(raw, "NGN")


@pytest.mark.parametrize(
    "raw", [Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-Infinity")]
)
def test_non_finite_decimals_are_refused(raw: Decimal) -> None:
    with pytest.raises(InvalidAmount, match="finite"):
        parse_amount(raw, "NGN")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("1e-3", "NGN"),
        ("0.001", "NGN"),
        ("1.005", "USD"),
        ("1.000", "NGN"),
        ("1.5", "JPY"),
        ("1.0", "JPY"),
        ("1e-1", "JPY"),
        ("0.0001", "KWD"),
        ("1.2345", "KWD"),
        (Decimal("0.001"), "NGN"),
        (Decimal("1500e-2"), "JPY"),
    ],
)
def test_more_decimals_than_the_currency_has_are_refused(raw: object, code: str) -> None:
    with pytest.raises(InvalidAmount, match="decimal places"):
        parse_amount(raw, code)


@given(currency=currencies, minor=positive_minor, extra=st.integers(min_value=1, max_value=9))
def test_one_decimal_too_many_is_always_refused(currency: Currency, minor: int, extra: int) -> None:
    text = format_minor(minor, currency)
    text = text + str(extra) if currency.exponent else f"{text}.{extra}"
    with pytest.raises(InvalidAmount, match="decimal places"):
        parse_amount(text, currency)


@pytest.mark.parametrize("raw", ["0", "0.00", "-0", "+0", "0e5", "0e-2", 0, Decimal("-0.00")])
def test_zero_is_refused_unless_allowed(raw: object) -> None:
    with pytest.raises(InvalidAmount, match="greater than zero"):
        parse_amount(raw, "NGN")
    assert parse_amount(raw, "NGN", allow_zero=True) == Money(0, NGN)


@pytest.mark.parametrize("raw", ["-1", "-0.01", "-1e2", -5, Decimal("-250.50")])
def test_negative_amounts_are_refused(raw: object) -> None:
    with pytest.raises(InvalidAmount, match="greater than zero"):
        parse_amount(raw, "NGN")
    with pytest.raises(InvalidAmount, match="greater than zero"):
        parse_amount(raw, "NGN", allow_zero=True)


def test_amount_at_max_minor_is_accepted_and_one_unit_above_is_refused() -> None:
    assert parse_amount("100.00", "NGN", max_minor=10_000).minor == 10_000
    with pytest.raises(InvalidAmount, match=r"must not exceed 100\.00 NGN"):
        parse_amount("100.01", "NGN", max_minor=10_000)


def test_max_minor_cannot_raise_the_hard_ceiling() -> None:
    at_ceiling = format_minor(HARD_MAX_MINOR, NGN)
    above = format_minor(HARD_MAX_MINOR + 1, NGN)
    assert parse_amount(at_ceiling, "NGN", max_minor=10 * HARD_MAX_MINOR).minor == HARD_MAX_MINOR
    with pytest.raises(InvalidAmount, match="must not exceed"):
        parse_amount(above, "NGN", max_minor=10 * HARD_MAX_MINOR)


@given(currency=currencies, minor=st.integers(min_value=HARD_MAX_MINOR + 1, max_value=10**19))
def test_amounts_above_the_hard_ceiling_are_refused(currency: Currency, minor: int) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(format_minor(minor, currency), currency)


@pytest.mark.parametrize(
    "raw",
    [
        "1e999",
        "9.99e999",
        "1e19",
        10**400,
        # Scaling any of these to minor units would build an integer of a billion digits.
        Decimal("1e999999999"),
        Decimal("9.5E+999999999"),
        Decimal("1E+425000000"),
    ],
    ids=["1e999", "9.99e999", "1e19", "int-10**400", "dec-1e999999999", "dec-9.5e+", "dec-1e+425m"],
)
def test_huge_magnitudes_are_refused_without_building_them(raw: object) -> None:
    with pytest.raises(InvalidAmount, match="too large"):
        parse_amount(raw, "KWD")


def test_text_longer_than_forty_characters_is_refused() -> None:
    forty = "0" * 36 + "1.50"
    assert len(forty) == 40
    assert parse_amount(forty, "NGN").minor == 150
    with pytest.raises(InvalidAmount, match="plain decimal number"):
        parse_amount("0" + forty, "NGN")


def test_unknown_currency_is_refused_before_the_amount_is_read() -> None:
    with pytest.raises(UnknownCurrency):
        parse_amount("1.00", "XYZ")


# --- formatting and Money ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "code", "expected"),
    [
        (0, "NGN", "0.00"),
        (5, "NGN", "0.05"),
        (-5, "NGN", "-0.05"),
        (-25050, "NGN", "-250.50"),
        (-1, "JPY", "-1"),
        (-1000, "JPY", "-1000"),
        (-5, "KWD", "-0.005"),
        (-1234, "KWD", "-1.234"),
        (1000, "KWD", "1.000"),
    ],
)
def test_format_minor_writes_exactly_the_currency_decimals(
    minor: int, code: str, expected: str
) -> None:
    assert format_minor(minor, CURRENCIES[code]) == expected
    assert Money.of(minor, code).format() == expected


def test_money_prints_amount_and_code() -> None:
    assert str(Money.of(25050, "ngn")) == "250.50 NGN"
    assert str(Money.of(-5, KWD)) == "-0.005 KWD"


@pytest.mark.parametrize(
    ("minor", "code", "expected"),
    [(25050, "NGN", Decimal("250.50")), (7, "KWD", Decimal("0.007")), (12, "JPY", Decimal(12))],
)
def test_to_decimal_keeps_the_currency_exponent(minor: int, code: str, expected: Decimal) -> None:
    value = Money.of(minor, code).to_decimal()
    assert value == expected
    assert value.as_tuple().exponent == -CURRENCIES[code].exponent


@pytest.mark.parametrize("minor", [True, 1.0, Decimal(1), "1"], ids=repr)
def test_money_refuses_minor_units_that_are_not_int(minor: object) -> None:
    with pytest.raises(TypeError):
        Money(minor, NGN)  # type: ignore[arg-type]


def test_money_refuses_minor_units_beyond_the_hard_ceiling() -> None:
    assert Money(-HARD_MAX_MINOR, NGN).minor == -HARD_MAX_MINOR
    for minor in (HARD_MAX_MINOR + 1, -HARD_MAX_MINOR - 1):
        with pytest.raises(InvalidAmount, match="out of range"):
            Money(minor, NGN)


# --- currencies --------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["NGN", "ngn", "Ngn", "nGn"])
def test_get_currency_ignores_case(code: str) -> None:
    assert get_currency(code) is NGN


@given(currency=currencies)
def test_every_registered_currency_is_found_in_any_case(currency: Currency) -> None:
    assert get_currency(currency.code.lower()) is currency
    assert get_currency(currency.code) is currency


@pytest.mark.parametrize("code", ["XYZ", "", "NG", "NGNN", " NGN", "NGN ", "BTC", "naira"])
def test_unknown_currency_codes_are_refused(code: str) -> None:
    with pytest.raises(UnknownCurrency):
        get_currency(code)


@pytest.mark.parametrize("code", [None, 566, b"NGN"], ids=repr)
def test_non_string_currency_codes_are_refused(code: object) -> None:
    with pytest.raises(UnknownCurrency):
        get_currency(code)  # type: ignore[arg-type]


def test_unknown_currency_message_quotes_at_most_eight_characters() -> None:
    with pytest.raises(UnknownCurrency) as raised:
        get_currency("Z" * 1000)
    assert "Z" * 8 in raised.value.message
    assert "Z" * 9 not in raised.value.message
