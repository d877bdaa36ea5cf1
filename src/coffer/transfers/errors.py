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


class DuplicateItemKey(AppError):
    """Two items of one batch carry the same idempotency key: which one the key names would
    be a guess, so the batch is refused whole."""

    code = "duplicate_idempotency_key"
    http_status = 422
    default_message = "Each transfer of a batch needs its own idempotency key"


class LinkedEventFailed(AppError):
    """A linked batch is all or nothing: this item was fine, another was not."""

    code = "linked_event_failed"
    http_status = 409
    default_message = "Another transfer of this linked batch failed, so none was applied"


class BatchNotFound(AppError):
    code = "batch_not_found"
    http_status = 404
    default_message = "Batch not found"
