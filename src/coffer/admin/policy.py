"""Operator policy the money routes consult (seed 002: users cannot deposit, admins can)."""

from __future__ import annotations

from coffer.errors import AppError
from coffer.settings import Settings


class UserDepositsDisabled(AppError):
    code = "user_deposits_disabled"
    http_status = 403
    default_message = "Deposits are made by an administrator on this service"


def deposits_enabled(settings: Settings) -> bool:
    """Whether users may put money in themselves (COFFER_USER_DEPOSITS_ENABLED); when not,
    only admin credits do. The deposit routes call this before starting a deposit."""
    return settings.user_deposits_enabled


def ensure_user_deposits_enabled(settings: Settings) -> None:
    if not deposits_enabled(settings):
        raise UserDepositsDisabled()
