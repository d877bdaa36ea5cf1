"""Reading a transfer's status as its sender, and waiting for it to settle (`Prefer: wait=N`).

Waiting polls the one row by its unique reference with a short, growing backoff, each read a
short transaction of its own, so a waiting client holds no transaction or connection.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import Database
from coffer.errors import AppError
from coffer.kit.money import Money
from coffer.models import TransferStatus
from coffer.transfers import repository

MAX_WAIT_SECONDS = 10
FIRST_POLL_DELAY_SECONDS = 0.05
MAX_POLL_DELAY_SECONDS = 0.5
_PREFER_WAIT = re.compile(r"(?:^|[,;])\s*wait\s*=\s*\"?(\d{1,6})\"?\s*(?=$|[,;])", re.IGNORECASE)


class TransferNotFound(AppError):
    code = "transfer_not_found"
    http_status = 404
    default_message = "Transfer not found"


@dataclass(frozen=True, slots=True)
class TransferView:
    reference: str
    status: TransferStatus
    amount: Money
    recipient_wallet_number: str
    created_at: datetime
    settled_at: datetime | None
    failure_reason: str | None

    @property
    def is_final(self) -> bool:
        return self.status is not TransferStatus.PENDING


def requested_wait_seconds(prefer: str | None) -> int | None:
    """The `wait` preference of a Prefer header (RFC 7240), capped at MAX_WAIT_SECONDS; None
    when absent or unreadable (a preference is a hint, never an error)."""
    match = _PREFER_WAIT.search(prefer or "")
    return None if match is None else min(int(match.group(1)), MAX_WAIT_SECONDS)


async def get_status(session: AsyncSession, user_id: uuid.UUID, reference: str) -> TransferView:
    row = await repository.find_for_sender(session, reference, user_id)
    if row is None:
        raise TransferNotFound()
    return TransferView(
        reference=row.reference,
        status=TransferStatus(row.status),
        amount=Money.of(row.amount_minor, row.currency),
        recipient_wallet_number=row.recipient_wallet_number,
        created_at=row.created_at,
        settled_at=row.settled_at,
        failure_reason=row.failure_reason,
    )


async def wait_for_settlement(
    database: Database, user_id: uuid.UUID, reference: str, timeout_seconds: float
) -> TransferView:
    """The status once final, or as it stands when `timeout_seconds` have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    delay = FIRST_POLL_DELAY_SECONDS
    while True:
        async with database.transaction() as session:
            view = await get_status(session, user_id, reference)
        remaining = deadline - loop.time()
        if view.is_final or remaining <= 0:
            return view
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, MAX_POLL_DELAY_SECONDS)
