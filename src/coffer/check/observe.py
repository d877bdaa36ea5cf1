"""What the checker sees from the outside once everything has settled: SQL on its own cluster
and status queries and replays through the API, never coffer's internals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from sqlalchemy import text

from coffer.check.client import Intent, send
from coffer.db import Database
from coffer.ledger.verify import InvariantCheck, verify_ledger

SETTLE_TIMEOUT_SECONDS = 300.0
STATUS_CONCURRENCY = 8

_TRANSFERS = text(
    """
    SELECT t.reference, u.email, t.idempotency_key, t.status, t.failure_reason,
           t.amount_minor, t.currency, t.receive_amount_minor, t.ledger_entry_id,
           sw.number AS sender_wallet, rw.number AS recipient_wallet
    FROM transfers t
    JOIN users u ON u.id = t.sender_user_id
    JOIN wallets sw ON sw.id = t.sender_wallet_id
    JOIN wallets rw ON rw.id = t.recipient_wallet_id
    """
)
_WALLETS = text(
    "SELECT w.number, a.currency, a.balance FROM wallets w "
    "JOIN ledger_accounts a ON a.id = w.ledger_account_id"
)
_TRANSFER_ENTRIES = text(
    "SELECT reference, COUNT(*) FROM ledger_entries WHERE kind = 'transfer' GROUP BY reference"
)
_PENDING = text("SELECT COUNT(*) FROM transfers WHERE status = 'pending'")


@dataclass(frozen=True, slots=True)
class TransferRow:
    reference: str
    sender_email: str
    key: str | None
    status: str
    failure_reason: str | None
    amount_minor: int
    currency: str
    receive_minor: int
    sender_wallet: str
    recipient_wallet: str
    ledger_entry_id: int | None


@dataclass(frozen=True, slots=True)
class Observation:
    transfers: list[TransferRow]
    wallets: dict[str, tuple[str, int]]
    """wallet number -> (currency, balance in minor units)."""
    entries_per_reference: dict[str, int]
    ledger_checks: list[InvariantCheck]
    settle_seconds: float
    pending: int


async def _pending(database: Database) -> int:
    async with database.transaction() as session:
        return int(await session.scalar(_PENDING) or 0)


async def settle_and_read(database_url: str) -> Observation:
    """Wait until no transfer is pending (bounded), then read the ledger and the transfers."""
    database = Database(database_url, pool_size=1)
    started = time.monotonic()
    try:
        pending = await _pending(database)
        while pending and time.monotonic() - started < SETTLE_TIMEOUT_SECONDS:
            await asyncio.sleep(0.5)
            pending = await _pending(database)
        settle_seconds = time.monotonic() - started
        async with database.transaction() as session:
            transfers = [
                TransferRow(
                    r.reference,
                    r.email,
                    r.idempotency_key,
                    r.status,
                    r.failure_reason,
                    r.amount_minor,
                    r.currency,
                    r.receive_amount_minor
                    if r.receive_amount_minor is not None
                    else r.amount_minor,
                    r.sender_wallet,
                    r.recipient_wallet,
                    r.ledger_entry_id,
                )
                for r in await session.execute(_TRANSFERS)
            ]
            wallets = {
                r.number: (r.currency, int(r.balance)) for r in await session.execute(_WALLETS)
            }
            entries = {str(r[0]): int(r[1]) for r in await session.execute(_TRANSFER_ENTRIES)}
            checks = await verify_ledger(session)
    finally:
        await database.dispose()
    return Observation(transfers, wallets, entries, checks, settle_seconds, pending)


async def status_of(base_url: str, requests: Sequence[tuple[str, str]]) -> dict[str, str | None]:
    """GET /wallet/transfer/{reference}/status for (token, reference) pairs: the status each
    sender is told (None when the API does not know the reference)."""
    statuses: dict[str, str | None] = {}
    gate = asyncio.Semaphore(STATUS_CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def one(token: str, reference: str) -> None:
            async with gate:
                for _ in range(5):
                    try:
                        response = await client.get(
                            f"/api/v1/wallet/transfer/{reference}/status",
                            headers={"Authorization": f"Bearer {token}"},
                        )
                    except httpx.TransportError:
                        await asyncio.sleep(1)
                        continue
                    if response.status_code == 503:
                        await asyncio.sleep(1)
                        continue
                    statuses[reference] = (
                        response.json()["data"]["status"] if response.status_code == 200 else None
                    )
                    return
                statuses[reference] = None

        await asyncio.gather(*(one(token, reference) for token, reference in requests))
    return statuses


async def replay(base_url: str, token: str, intent: Intent, epoch: float) -> Intent:
    """The same request again with the same key, as the careful client would after an error."""
    again = Intent(-1, "replay", intent.sender, intent.path, intent.body, intent.key)
    async with httpx.AsyncClient(base_url=base_url) as client:
        await send(client, token, again, epoch)
    return again
