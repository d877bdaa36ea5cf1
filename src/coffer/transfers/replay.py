"""Idempotency replay: a request whose key already made a transfer is answered from it.

The key lives on the transfer row, unique per sender. Intake looks stored transfers up at
three moments (`answer_from_stored` serves all three): before anything is checked (a retry of
a stored transfer is answered as that transfer whatever the sender's balance is now); after a
limit refusal (a retry that waited on the usage row its in-flight original spent); and after
losing the insert race to a concurrent request with the same key. Repeats of a key within one
batch share the first one's outcome.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import ResultRow
from coffer.errors import AppError
from coffer.fx.conversion import stored_conversion
from coffer.idempotency.service import IdempotencyKeyReused
from coffer.kit.money import Money
from coffer.transfers import repository
from coffer.transfers.requests import AcceptedTransfer, Candidate, TransferOutcome

Outcomes = list[TransferOutcome | None]


async def answer_from_stored(
    session: AsyncSession, candidates: Sequence[Candidate], outcomes: Outcomes
) -> list[Candidate]:
    """Answer each candidate whose key already made a transfer (a replay, or
    `idempotency_key_reused` for a different request); returns the others, in order."""
    keys = [key for c in candidates if (key := c.scoped_key) is not None]
    stored = await repository.find_by_idempotency_keys(session, keys) if keys else {}
    return answer_from(stored, candidates, outcomes)


def answer_from(
    stored: dict[tuple[uuid.UUID, str], ResultRow],
    candidates: Sequence[Candidate],
    outcomes: Outcomes,
) -> list[Candidate]:
    """`answer_from_stored` with the stored transfers (by sender and key) already looked up."""
    unanswered: list[Candidate] = []
    for candidate in candidates:
        key = candidate.scoped_key
        original = stored.get(key) if key is not None else None
        if original is None:
            unanswered.append(candidate)
        else:
            outcomes[candidate.index] = _replay(original, candidate.fingerprint)
    return unanswered


def share_repeated_keys(
    candidates: Sequence[Candidate], outcomes: Outcomes
) -> tuple[list[Candidate], list[tuple[Candidate, Candidate]]]:
    """Split out the repeats of a key within one batch.

    Returns the requests still to store, and each repeat paired with the first request that
    carries its key (it shares that one's outcome, see `as_replay`); a repeat with a different
    request is refused here.
    """
    remaining: list[Candidate] = []
    duplicates: list[tuple[Candidate, Candidate]] = []
    first_with_key: dict[tuple[uuid.UUID, str], Candidate] = {}
    for candidate in candidates:
        key = candidate.scoped_key
        first = first_with_key.get(key) if key is not None else None
        if key is None:
            remaining.append(candidate)
        elif first is None:
            first_with_key[key] = candidate
            remaining.append(candidate)
        elif first.fingerprint == candidate.fingerprint:
            duplicates.append((candidate, first))
        else:
            outcomes[candidate.index] = IdempotencyKeyReused()
    return remaining, duplicates


def as_replay(outcome: TransferOutcome | None) -> TransferOutcome:
    """The outcome a repeat within the batch gets: its first request's, marked replayed."""
    if isinstance(outcome, AcceptedTransfer):
        return dataclasses.replace(outcome, replayed=True)
    if outcome is None:
        raise AppError("a repeated request's first request has no outcome")
    return outcome


def _replay(stored: ResultRow, fingerprint: str) -> TransferOutcome:
    if stored.request_fingerprint != fingerprint:
        return IdempotencyKeyReused()
    return AcceptedTransfer.priced(
        reference=stored.reference,
        status=stored.status,
        amount=Money.of(stored.amount_minor, stored.currency),
        recipient_wallet_number=stored.recipient_wallet_number,
        created_at=stored.created_at,
        replayed=True,
        conversion=stored_conversion(stored),
    )
