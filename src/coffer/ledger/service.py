"""Posting entries: the only code that changes a balance.

`post_entries` takes a batch and is the primitive; `post_entry` is a batch of one. The checks
run as a ladder, top to bottom, before anything is written:

1. shape: kinds, references, amounts, accounts distinct (pure, `postings.py`);
2. idempotency: a reference already posted with the same content returns the original entry;
   with different content it is an error;
3. accounts exist, and every entry balances per currency;
4. funds: the running-balance accounts are locked in ascending id order, and the batch is
   applied in order in memory; an entry that would take a non-negative account below zero is
   rejected (`InsufficientFunds`) and the rest go on.

From there on it must succeed: entries, postings and one conditional balance update per
account are written, and the database's answer must equal the computed balances. Each posted
entry's new balances are held in the session (`BALANCES_CHANGED`) until it commits, so the
balance changes are announced (`balance.updated`) from this one place, whoever posted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.kit import pending
from coffer.kit.clock import utcnow
from coffer.ledger import repository
from coffer.ledger.errors import (
    AccountNotFound,
    EntryReferenceConflict,
    InsufficientFunds,
    LedgerInvariantError,
)
from coffer.ledger.postings import (
    EntryKind,
    EntryRequest,
    Posting,
    check_balanced,
    check_batch_shape,
    same_postings,
)

SYSTEM_PREFIX = "system"
BALANCES_CHANGED = "ledger.balances_changed"
"""`coffer.kit.pending` kind of the `BalancesChanged` a transaction's posted entries left."""


@dataclass(frozen=True, slots=True)
class PostedEntry:
    reference: str
    entry_id: int
    replayed: bool
    """True when the reference had already been posted with this content: nothing was written."""
    balances_after: Mapping[int, int] = field(default_factory=dict)
    """Running balances of the accounts this entry touched, right after it."""


@dataclass(frozen=True, slots=True)
class RejectedEntry:
    reference: str
    error: InsufficientFunds


EntryResult = PostedEntry | RejectedEntry


@dataclass(frozen=True, slots=True)
class BalancesChanged:
    reference: str
    kind: str
    balances_after: Mapping[int, int]
    """Running balance of each account the entry moved, by ledger account id."""


def _normalized(metadata: Mapping[str, Any]) -> dict[str, Any]:
    # Compare metadata as the database will return it (JSON round trip).
    normalized: dict[str, Any] = json.loads(json.dumps(metadata, sort_keys=True, default=str))
    return normalized


async def post_entries(
    session: AsyncSession, requests: Sequence[EntryRequest]
) -> list[EntryResult]:
    """Post a batch of entries in the caller's transaction, in order; see the module doc."""
    check_batch_shape(requests)
    if not requests:
        return []
    results: list[EntryResult | None] = [None] * len(requests)

    existing = await repository.find_entries(session, [r.reference for r in requests])
    fresh: list[int] = []
    for index, request in enumerate(requests):
        stored = existing.get(request.reference)
        if stored is None:
            fresh.append(index)
            continue
        if (
            stored.kind != request.kind
            or not same_postings(request, stored.postings)
            or dict(stored.metadata) != _normalized(request.metadata)
        ):
            raise EntryReferenceConflict(details={"reference": request.reference})
        results[index] = PostedEntry(request.reference, stored.id, replayed=True)

    account_ids = sorted({p.account_id for i in fresh for p in requests[i].postings})
    accounts = await repository.load_accounts(session, account_ids)
    missing = set(account_ids) - accounts.keys()
    if missing:
        raise AccountNotFound(f"unknown ledger accounts {sorted(missing)}")
    for index in fresh:
        check_balanced(requests[index], accounts)

    running_ids = [i for i in account_ids if not accounts[i].allow_negative]
    opening = await repository.lock_balances(session, running_ids)
    balances = dict(opening)
    accepted: list[tuple[int, dict[int, int]]] = []
    for index in fresh:
        request = requests[index]
        after = {
            p.account_id: balances[p.account_id] + p.amount
            for p in request.postings
            if p.account_id in balances
        }
        short = next((account for account, balance in after.items() if balance < 0), None)
        if short is not None:
            results[index] = RejectedEntry(request.reference, InsufficientFunds(short))
            continue
        balances.update(after)
        accepted.append((index, after))

    if accepted:
        entry_ids = await _write(session, requests, accepted, opening, balances)
        for (index, after), entry_id in zip(accepted, entry_ids, strict=True):
            results[index] = PostedEntry(requests[index].reference, entry_id, False, after)
            pending.add(
                session,
                BALANCES_CHANGED,
                BalancesChanged(requests[index].reference, str(requests[index].kind), after),
            )

    posted = [r for r in results if r is not None]
    if len(posted) != len(requests):
        raise LedgerInvariantError("an entry was neither posted nor rejected")
    return posted


async def _write(
    session: AsyncSession,
    requests: Sequence[EntryRequest],
    accepted: Sequence[tuple[int, Mapping[int, int]]],
    opening: Mapping[int, int],
    closing: Mapping[int, int],
) -> list[int]:
    """From here on it must succeed; any disagreement with the database rolls back the lot."""
    now = utcnow()
    entry_ids = await repository.insert_entries(
        session,
        [
            {
                "kind": str(requests[index].kind),
                "reference": requests[index].reference,
                "metadata": _normalized(requests[index].metadata),
                "created_at": now,
            }
            for index, _ in accepted
        ],
    )
    await repository.insert_postings(
        session,
        [
            {
                "entry_id": entry_id,
                "account_id": posting.account_id,
                "amount": posting.amount,
                "balance_after": after.get(posting.account_id),
            }
            for (index, after), entry_id in zip(accepted, entry_ids, strict=True)
            for posting in requests[index].postings
        ],
    )
    deltas = {
        account: closing[account] - opening[account]
        for account in opening
        if closing[account] != opening[account]
    }
    if deltas:
        written = await repository.apply_deltas(session, deltas)
        expected = {account: closing[account] for account in deltas}
        if written != expected:
            raise LedgerInvariantError("balances written differ from balances computed")
    return entry_ids


async def post_entry(
    session: AsyncSession,
    kind: EntryKind,
    reference: str,
    postings: Sequence[Posting],
    metadata: Mapping[str, Any] | None = None,
) -> PostedEntry:
    """Post one entry; raises `InsufficientFunds` (with nothing written) instead of rejecting."""
    request = EntryRequest(kind, reference, tuple(postings), metadata or {})
    (result,) = await post_entries(session, [request])
    if isinstance(result, RejectedEntry):
        raise result.error
    return result


def movement(
    debit_account_id: int, credit_account_id: int, amount_minor: int
) -> tuple[Posting, ...]:
    """The two postings that move `amount_minor` from one account to another."""
    return (Posting(debit_account_id, -amount_minor), Posting(credit_account_id, amount_minor))


async def open_account(session: AsyncSession, code: str, currency: str) -> int:
    """Open a running-balance account that can never go below zero (a wallet)."""
    return await repository.insert_account(session, code, currency, allow_negative=False)


def system_account_code(purpose: str, currency: str) -> str:
    return f"{SYSTEM_PREFIX}:{purpose}:{currency}"


async def system_account(
    session: AsyncSession, purpose: str, currency: str, *, allow_negative: bool = True
) -> int:
    """The id of `system:<purpose>:<ccy>`, opened on first use.

    System accounts that face the outside world may go negative and keep no running balance;
    ones that hold money in flight (`allow_negative=False`) keep one like a wallet.
    """
    code = system_account_code(purpose, currency)
    account_id = await repository.account_id_by_code(session, code)
    if account_id is None:
        await repository.insert_account_if_absent(
            session, code, currency, allow_negative=allow_negative
        )
        account_id = await repository.account_id_by_code(session, code)
    if account_id is None:
        raise LedgerInvariantError(f"system account {code} could not be opened")
    return account_id


async def balance_of(session: AsyncSession, account_id: int) -> int:
    """An account's balance: the running balance, or the sum of postings where there is none."""
    balance = await repository.running_balance(session, account_id)
    if balance is None:
        return await repository.derived_balance(session, account_id)
    return balance
