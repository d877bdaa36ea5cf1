"""Which account and wallet states may send and receive: judged at intake, and again at
settlement against the wallets' state then (a wallet frozen in between stops the transfer)."""

from __future__ import annotations

from coffer.db import ResultRow
from coffer.errors import AppError
from coffer.kit.money import Money
from coffer.ledger.errors import InsufficientFunds
from coffer.models import WalletStatus
from coffer.transfers.errors import (
    AccountInactive,
    CannotTransferToSelf,
    CurrencyMismatch,
    RecipientFrozen,
    RecipientInactive,
    RecipientNotFound,
    WalletBlocked,
    WalletClosed,
    WalletFrozen,
)

_OUTGOING_REFUSALS: dict[str, type[AppError]] = {
    WalletStatus.FROZEN: WalletFrozen,
    WalletStatus.BLOCKED: WalletBlocked,
    WalletStatus.CLOSED: WalletClosed,
}


def check_sender(sender: ResultRow, amount: Money, balances: dict[int, int]) -> None:
    """The sender's own state and balance, checked before the recipient is looked at."""
    if not sender.owner_active:
        raise AccountInactive()
    refusal = _OUTGOING_REFUSALS.get(sender.status)
    if refusal is not None:
        raise refusal()
    # A fast pre-check on an unlocked read; the processor decides under the lock.
    if balances.get(sender.ledger_account_id, 0) < amount.minor:
        raise InsufficientFunds(sender.ledger_account_id)


def check_recipient(sender: ResultRow, recipient: ResultRow) -> None:
    """What is left once `check_sender` passed: the recipient's side."""
    if sender.id == recipient.id:
        raise CannotTransferToSelf()
    if not recipient.owner_active or recipient.status == WalletStatus.CLOSED:
        # Answered like a recipient nobody has: an inactive account is not revealed.
        raise RecipientNotFound()
    if recipient.status == WalletStatus.FROZEN:
        # Named (the sender may retry after an operator unfreezes it), but only to a sender
        # whose own checks already passed.
        raise RecipientFrozen()


def refusal_reason(row: ResultRow) -> str | None:
    """Why a claimed transfer cannot go ahead given the wallets' state now, if it cannot."""
    if not row.sender_active:
        return AccountInactive.code
    refusal = _OUTGOING_REFUSALS.get(row.sender_status)
    if refusal is not None:
        return refusal.code
    if row.recipient_status == WalletStatus.FROZEN:
        return RecipientFrozen.code
    if not row.recipient_active or row.recipient_status == WalletStatus.CLOSED:
        return RecipientInactive.code
    if row.recipient_currency != (row.receive_currency or row.currency):
        return CurrencyMismatch.code
    return None
