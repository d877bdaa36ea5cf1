"""Why a transfer is refused: each error has a stable code (the envelope's `error.code`)."""

from __future__ import annotations

from coffer.errors import AppError


class RecipientNotFound(AppError):
    code = "recipient_not_found"
    http_status = 404
    default_message = "Recipient not found"


class CannotTransferToSelf(AppError):
    code = "cannot_transfer_to_self"
    http_status = 400
    default_message = "You cannot transfer to your own wallet"


class WalletFrozen(AppError):
    code = "wallet_frozen"
    http_status = 403
    default_message = "The wallet is frozen"


class WalletBlocked(AppError):
    code = "wallet_blocked"
    http_status = 403
    default_message = "The wallet is blocked until its fees are paid"


class WalletClosed(AppError):
    code = "wallet_closed"
    http_status = 403
    default_message = "The wallet is closed"


class AccountInactive(AppError):
    code = "account_inactive"
    http_status = 403
    default_message = "The account is not active"


class RecipientInactive(AppError):
    code = "recipient_inactive"
    http_status = 400
    default_message = "The recipient cannot receive money right now"


class RecipientFrozen(AppError):
    code = "recipient_wallet_frozen"
    http_status = 400
    default_message = "The recipient's wallet is frozen and cannot receive money"


class CurrencyMismatch(AppError):
    """The recipient's wallet is not in the currency the transfer was priced for."""

    code = "currency_mismatch"
    http_status = 422
    default_message = "The recipient's wallet is in another currency"
