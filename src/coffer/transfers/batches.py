"""Batches of transfers in one request (`POST /transfers/batch`), like TigerBeetle's
`create_transfers` with per-event results and linked chains.

Accepting a batch is `create_transfers` on its items in the request's one transaction: each
item is checked exactly as a single transfer is (shape, wallets, account states, limits,
idempotency by its own key) and gets its own outcome, in order.

- independent: each item stands alone; the accepted ones settle like any transfer.
- linked: all or nothing. At acceptance the items are stored inside a savepoint that is rolled
  back if any item is refused: then nothing is stored, the refused items keep their own error
  and the others answer `linked_event_failed`. At settlement the batch's transfers are claimed
  and posted together (coffer.transfers.settlement.process_linked_batch), in a savepoint again:
  if one cannot be posted (the sender's balance went elsewhere meanwhile, a wallet was frozen),
  every one fails, and no money moves. An item that replays an earlier transfer (its key was
  used before, with the same content) counts as accepted and is not part of this group: it
  settles, or settled, with the request that made it.

The batch row records each item's outcome at acceptance, so `GET /transfers/batch/{id}` can
show how far settlement has come.
"""

from __future__ import annotations

import functools
import secrets
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.errors import AppError, ValidationFailed
from coffer.kit.clock import utcnow
from coffer.models import BatchMode, GroupStatus, TransferStatus
from coffer.settings import Settings
from coffer.transfers import repository
from coffer.transfers.errors import BatchNotFound, DuplicateItemKey, LinkedEventFailed
from coffer.transfers.requests import AcceptedTransfer, TransferOutcome, TransferRequest
from coffer.transfers.service import create_transfers

MAX_BATCH_ITEMS = 1_000
REFUSED = "refused"
"""An item's status when it was refused at acceptance (no transfer exists for it)."""


@dataclass(frozen=True, slots=True)
class AcceptedBatch:
    reference: str
    mode: BatchMode
    created_at: datetime
    keys: Sequence[str]
    outcomes: Sequence[TransferOutcome]
    """One per item, in order: the accepted transfer, or why it was refused."""


@dataclass(frozen=True, slots=True)
class ItemProgress:
    idempotency_key: str
    reference: str | None
    status: str
    """pending, completed, failed (at settlement) or refused (at acceptance)."""
    error: str | None


@dataclass(frozen=True, slots=True)
class BatchProgress:
    reference: str
    mode: BatchMode
    created_at: datetime
    items: Sequence[ItemProgress]

    @property
    def counts(self) -> dict[str, int]:
        tally = Counter(item.status for item in self.items)
        return {status: tally[status] for status in (*TransferStatus, REFUSED)}


class _LinkBroken(Exception):
    """Control flow: an item of a linked batch was refused, so its savepoint rolls back."""

    def __init__(self, outcomes: list[TransferOutcome]) -> None:
        super().__init__("linked batch refused")
        self.outcomes = outcomes


def new_batch_reference() -> str:
    return f"BAT_{secrets.token_hex(12).upper()}"


def _check_keys(requests: Sequence[TransferRequest]) -> list[str]:
    """Each item's idempotency key: present, and unique within the batch."""
    if not 1 <= len(requests) <= MAX_BATCH_ITEMS:
        raise ValidationFailed(f"A batch has 1 to {MAX_BATCH_ITEMS} transfers")
    keys = [request.idempotency_key for request in requests]
    if None in keys:
        raise ValidationFailed("Each transfer of a batch needs an idempotency_key")
    present = [key for key in keys if key is not None]
    repeated = {key for key, count in Counter(present).items() if count > 1}
    if repeated:
        indexes = [index for index, key in enumerate(present) if key in repeated]
        raise DuplicateItemKey(details={"indexes": indexes})
    return present


async def accept_batch(
    session: AsyncSession,
    user_id: uuid.UUID,
    mode: BatchMode,
    requests: Sequence[TransferRequest],
    *,
    settings: Settings,
) -> AcceptedBatch:
    """Store a batch's transfers as one request would (see the module doc); never commits."""
    keys = _check_keys(requests)
    now = utcnow()
    outcomes = await _create(session, mode, requests, settings, now)
    new = [o.reference for o in outcomes if isinstance(o, AcceptedTransfer) and not o.replayed]
    is_group = mode is BatchMode.LINKED and bool(new)
    reference = new_batch_reference()
    batch_id = await repository.insert_batch(
        session,
        {
            "reference": reference,
            "user_id": user_id,
            "mode": mode,
            "items": [_item(key, outcome) for key, outcome in zip(keys, outcomes, strict=True)],
            "group_status": GroupStatus.PENDING if is_group else None,
            "created_at": now,
        },
    )
    if is_group:
        await repository.link_to_batch(session, batch_id, new)
    return AcceptedBatch(reference, mode, now, keys, outcomes)


async def _create(
    session: AsyncSession,
    mode: BatchMode,
    requests: Sequence[TransferRequest],
    settings: Settings,
    now: datetime,
) -> list[TransferOutcome]:
    intake = functools.partial(
        create_transfers,
        session,
        requests,
        max_amount_minor=settings.max_amount_minor,
        settings=settings,
        now=now,
    )
    if mode is BatchMode.INDEPENDENT:
        return await intake()
    try:
        async with session.begin_nested():
            outcomes = await intake()
            if any(isinstance(outcome, AppError) for outcome in outcomes):
                raise _LinkBroken(outcomes)
    except _LinkBroken as broken:
        return [
            outcome if isinstance(outcome, AppError) else LinkedEventFailed()
            for outcome in broken.outcomes
        ]
    return outcomes


def _item(key: str, outcome: TransferOutcome) -> dict[str, Any]:
    if isinstance(outcome, AcceptedTransfer):
        return {"key": key, "reference": outcome.reference, "error": None}
    return {"key": key, "reference": None, "error": outcome.code}


async def batch_progress(
    session: AsyncSession, user_id: uuid.UUID, reference: str
) -> BatchProgress:
    """Where each item of one of the user's batches stands now."""
    batch = await repository.find_batch(session, reference, user_id)
    if batch is None:
        raise BatchNotFound()
    states = await repository.settlement_states(
        session, [item["reference"] for item in batch.items if item["reference"]]
    )
    items = []
    for item in batch.items:
        state = states.get(item["reference"]) if item["reference"] else None
        items.append(
            ItemProgress(
                idempotency_key=item["key"],
                reference=item["reference"],
                status=state.status if state is not None else REFUSED,
                error=state.failure_reason if state is not None else item["error"],
            )
        )
    return BatchProgress(batch.reference, BatchMode(batch.mode), batch.created_at, items)
