"""The ledger's named failures, each with a stable code."""

from __future__ import annotations

from coffer.errors import AppError


class LedgerError(AppError):
    code = "ledger_error"
    http_status = 500
    default_message = "The ledger refused the entry"


class InsufficientFunds(LedgerError):
    code = "insufficient_funds"
    http_status = 400
    default_message = "Insufficient funds"

    def __init__(self, account_id: int) -> None:
        super().__init__()
        self.account_id = account_id


class InvalidEntry(LedgerError):
    """The entry's shape is wrong: a bug in the caller, never a client's mistake."""

    code = "ledger_invalid_entry"


class AccountNotFound(LedgerError):
    code = "ledger_account_not_found"


class EntryReferenceConflict(LedgerError):
    """The reference was already used by an entry with different content."""

    code = "entry_reference_conflict"
    http_status = 409
    default_message = "The reference belongs to a different entry"


class LedgerInvariantError(LedgerError):
    """Something that cannot happen did: the transaction is rolled back whole."""

    code = "ledger_invariant_violated"
