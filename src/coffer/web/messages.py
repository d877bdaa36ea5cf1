"""What a person reads when something is refused: the API's stable error codes, in words.

Codes not listed here show the error's own message, which every `AppError` carries; these are
the ones whose own message speaks to API clients (routes, fields) or can be said plainer.
"""

from __future__ import annotations

from coffer.errors import AppError

MESSAGES: dict[str, str] = {
    "invalid_credentials": "That email or phone number and password do not match an account.",
    "account_not_verified": "This account is not verified yet: enter the code we emailed you.",
    "account_inactive": "This account is deactivated. Contact support to reactivate it.",
    "invalid_code": "That code is not right. Check it and try again.",
    "code_expired": "That code has expired. Ask for a new one.",
    "code_attempts_exceeded": "Too many wrong codes. Ask for a new one.",
    "invalid_two_factor_code": "That two-factor code is not right, or it was already used.",
    "two_factor_code_already_used": "That two-factor code was already used; wait for the next.",
    "invalid_challenge_token": "The sign-in took too long. Enter your password again.",
    "weak_password": "Choose a longer password (at least 10 characters, not a common one).",
    "step_up_required": "Confirm it is you before doing this.",
    "two_factor_required": "Enter the current code from your authenticator app.",
    "permission_denied": "This page is for administrators only.",
    "insufficient_funds": "The wallet does not hold enough for this.",
    "recipient_not_found": "No wallet was found for that recipient.",
    "cannot_transfer_to_self": "You cannot send money to your own wallet.",
    "daily_limit_exceeded": "This would go over your daily limit. Try a smaller amount.",
    "wallet_frozen": "This wallet is frozen: money cannot leave or enter it.",
    "wallet_blocked": "This wallet is blocked until its monthly fee is paid by a deposit.",
    "invalid_amount": "Enter an amount greater than zero, with no more decimals than the "
    "currency has.",
    "idempotency_key_reused": "This form was already used for a different request. "
    "Start again from a fresh form.",
    "idempotency_key_in_use": "This request is still being processed. Wait a moment.",
    "rate_limited": "Too many attempts. Wait a little and try again.",
    "user_deposits_disabled": "Deposits are turned off on this service.",
    "not_found": "There is nothing here.",
    "fx_rate_stale": "Exchange rates are out of date right now; try again later.",
    "quote_expired": "The exchange rate quote expired. Review the new rate.",
}


def message_for(code: str, fallback: str) -> str:
    return MESSAGES.get(code, fallback)


def error_message(error: AppError) -> str:
    return message_for(error.code, error.message)
