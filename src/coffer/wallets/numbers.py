"""Wallet numbers: 13 digits, random rather than sequential, the last a Luhn check digit.

Random numbers reveal nothing about how many wallets exist; the check digit refuses a mistyped
number before any database lookup.
"""

from __future__ import annotations

import secrets

WALLET_NUMBER_LENGTH = 13


def luhn_check_digit(digits: str) -> str:
    total = 0
    # Double every second digit from the right of the payload (the check digit goes after it).
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def generate_wallet_number() -> str:
    payload = str(
        secrets.randbelow(9 * 10 ** (WALLET_NUMBER_LENGTH - 2)) + 10 ** (WALLET_NUMBER_LENGTH - 2)
    )
    return payload + luhn_check_digit(payload)


def is_valid_wallet_number(number: str) -> bool:
    return (
        isinstance(number, str)
        and len(number) == WALLET_NUMBER_LENGTH
        and number.isascii()
        and number.isdigit()
        and luhn_check_digit(number[:-1]) == number[-1]
    )
