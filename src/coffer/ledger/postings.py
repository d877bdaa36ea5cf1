"""Pure entry shapes and the checks that need no database."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from coffer.kit.money import HARD_MAX_MINOR
from coffer.ledger.errors import InvalidEntry

MAX_POSTINGS_PER_ENTRY = 16
MAX_ENTRIES_PER_BATCH = 10_000
MAX_REFERENCE_LENGTH = 128


class EntryKind(StrEnum):
    DEPOSIT = "deposit"
    TRANSFER = "transfer"
    WITHDRAWAL = "withdrawal"
    WITHDRAWAL_REVERSAL = "withdrawal_reversal"
    FEE = "fee"
    FX = "fx"
    ADJUSTMENT = "adjustment"
    REVERSAL = "reversal"


@dataclass(frozen=True, slots=True)
class Posting:
    account_id: int
    amount: int
    """Signed minor units: positive credits the account, negative debits it."""


@dataclass(frozen=True, slots=True)
class EntryRequest:
    kind: EntryKind
    reference: str
    postings: tuple[Posting, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AccountInfo:
    id: int
    currency: str
    allow_negative: bool


def check_shape(request: EntryRequest) -> None:
    """Everything about one entry that can be checked without the database."""
    if not isinstance(request.kind, EntryKind):
        raise InvalidEntry(f"unknown entry kind {request.kind!r}")
    if not request.reference or len(request.reference) > MAX_REFERENCE_LENGTH:
        raise InvalidEntry("the reference must have 1 to 128 characters")
    if not 2 <= len(request.postings) <= MAX_POSTINGS_PER_ENTRY:
        raise InvalidEntry(f"an entry has 2 to {MAX_POSTINGS_PER_ENTRY} postings")
    seen: set[int] = set()
    for posting in request.postings:
        if type(posting.amount) is not int or type(posting.account_id) is not int:
            raise InvalidEntry("posting amounts and account ids are integers")
        if posting.amount == 0 or abs(posting.amount) > HARD_MAX_MINOR:
            raise InvalidEntry("a posting moves a non-zero amount within range")
        if posting.account_id in seen:
            raise InvalidEntry("an account appears once per entry")
        seen.add(posting.account_id)


def check_batch_shape(requests: Sequence[EntryRequest]) -> None:
    if len(requests) > MAX_ENTRIES_PER_BATCH:
        raise InvalidEntry(f"at most {MAX_ENTRIES_PER_BATCH} entries per batch")
    references: set[str] = set()
    for request in requests:
        check_shape(request)
        if request.reference in references:
            raise InvalidEntry(f"reference {request.reference!r} appears twice in the batch")
        references.add(request.reference)


def check_balanced(request: EntryRequest, accounts: Mapping[int, AccountInfo]) -> None:
    """Invariant 1: the postings of an entry sum to zero in every currency."""
    totals: dict[str, int] = defaultdict(int)
    for posting in request.postings:
        totals[accounts[posting.account_id].currency] += posting.amount
    unbalanced = {currency: total for currency, total in totals.items() if total != 0}
    if unbalanced:
        raise InvalidEntry(f"entry {request.reference!r} does not balance: {unbalanced}")


def same_postings(request: EntryRequest, stored: Sequence[Posting]) -> bool:
    return sorted((p.account_id, p.amount) for p in request.postings) == sorted(
        (p.account_id, p.amount) for p in stored
    )
