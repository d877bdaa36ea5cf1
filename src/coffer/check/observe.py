"""What the checker sees from the outside once everything has settled: SQL on its own cluster
and status queries and replays through the API, never coffer's internals."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import text

from coffer.check.client import STATUS_PATHS, Intent, send
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
_DEPOSITS = text(
    """
    SELECT d.reference, u.email, d.idempotency_key, d.status, d.amount_minor, d.currency,
           w.number AS wallet, sc.status AS charge_status
    FROM deposits d
    JOIN users u ON u.id = d.user_id
    JOIN wallets w ON w.id = d.wallet_id
    LEFT JOIN sandbox_charges sc ON sc.reference = d.reference
    """
)
_WITHDRAWALS = text(
    """
    SELECT wd.reference, u.email, wd.status, wd.failure_reason, wd.amount_minor, wd.currency,
           w.number AS wallet, pd.account_last4
    FROM withdrawals wd
    JOIN users u ON u.id = wd.user_id
    JOIN wallets w ON w.id = wd.wallet_id
    JOIN payout_destinations pd ON pd.id = wd.destination_id
    """
)
_STORED_ANSWERS = text("SELECT key, response_body FROM idempotency_records")
"""A withdrawal's key is in the stored answer of its request (the route's generic store),
committed with the withdrawal itself."""
_PAYMENT_ENTRIES = text(
    "SELECT reference, COUNT(*) FROM ledger_entries "
    "WHERE kind IN ('deposit', 'withdrawal', 'withdrawal_reversal') GROUP BY reference"
)
_PENDING = text(
    "SELECT (SELECT COUNT(*) FROM transfers WHERE status = 'pending')"
    " + (SELECT COUNT(*) FROM withdrawals WHERE status IN ('pending', 'processing'))"
    " + (SELECT COUNT(*) FROM deposits d JOIN sandbox_charges sc ON sc.reference = d.reference"
    "    WHERE d.status = 'pending' AND sc.status <> 'pending')"
)
"""Transfers, withdrawals in flight, and deposits whose payer chose but coffer has not
applied the choice (one nobody paid or declined yet is pending by right)."""
_UNCHOSEN = text(
    "SELECT d.reference, u.email, d.amount_minor, d.currency FROM deposits d"
    " JOIN users u ON u.id = d.user_id"
    " JOIN sandbox_charges sc ON sc.reference = d.reference"
    " WHERE d.status = 'pending' AND sc.status = 'pending'"
)


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
class DepositRow:
    reference: str
    sender_email: str
    key: str | None
    status: str
    amount_minor: int
    currency: str
    wallet: str
    charge_status: str | None
    """The sandbox's own record: what the payer chose (None: coffer never asked it)."""


@dataclass(frozen=True, slots=True)
class WithdrawalRow:
    reference: str
    sender_email: str
    key: str | None
    status: str
    failure_reason: str | None
    amount_minor: int
    currency: str
    wallet: str
    account_last4: str


Row = TransferRow | DepositRow | WithdrawalRow


@dataclass(frozen=True, slots=True)
class Observation:
    transfers: list[TransferRow]
    wallets: dict[str, tuple[str, int]]
    """wallet number -> (currency, balance in minor units)."""
    entries_per_reference: dict[str, int]
    ledger_checks: list[InvariantCheck]
    settle_seconds: float
    pending: int
    deposits: list[DepositRow] = field(default_factory=list)
    withdrawals: list[WithdrawalRow] = field(default_factory=list)
    payment_entries: dict[str, int] = field(default_factory=dict)
    """Ledger entries per reference of deposits (`dep-…`) and withdrawals (`wd_…` debit,
    `.settled`, `.refund`, `.reversal`)."""
    webhooks_received: int = 0
    """Webhook inbox rows: distinct events, each applied at most once."""

    @property
    def rows(self) -> dict[tuple[str, str], Row]:
        """Every money row that holds its key, by (sender email, Idempotency-Key)."""
        every: list[Row] = [*self.transfers, *self.deposits, *self.withdrawals]
        return {(r.sender_email, r.key): r for r in every if r.key is not None}

    @property
    def keyless(self) -> list[Row]:
        """Rows without a key: none is asked for so, but a deposit whose start was cut off is
        failed and gives its key to the retry's fresh deposit."""
        every: list[Row] = [*self.transfers, *self.deposits, *self.withdrawals]
        return [r for r in every if r.key is None]


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
            deposits = [
                DepositRow(
                    r.reference,
                    r.email,
                    r.idempotency_key,
                    r.status,
                    r.amount_minor,
                    r.currency,
                    r.wallet,
                    r.charge_status,
                )
                for r in await session.execute(_DEPOSITS)
            ]
            keys = _withdrawal_keys(await session.execute(_STORED_ANSWERS))
            withdrawals = [
                WithdrawalRow(
                    r.reference,
                    r.email,
                    keys.get(r.reference),
                    r.status,
                    r.failure_reason,
                    r.amount_minor,
                    r.currency,
                    r.wallet,
                    r.account_last4,
                )
                for r in await session.execute(_WITHDRAWALS)
            ]
            payment_entries = {
                str(r[0]): int(r[1]) for r in await session.execute(_PAYMENT_ENTRIES)
            }
            received = int(await session.scalar(text("SELECT COUNT(*) FROM webhook_inbox")) or 0)
            checks = await verify_ledger(session)
    finally:
        await database.dispose()
    return Observation(
        transfers,
        wallets,
        entries,
        checks,
        settle_seconds,
        pending,
        deposits,
        withdrawals,
        payment_entries,
        received,
    )


def _withdrawal_keys(stored: Iterable[Any]) -> dict[str, str]:
    keys = {}
    for key, body in stored:
        try:
            reference = (json.loads(body).get("data") or {}).get("reference")
        except (ValueError, AttributeError):
            continue
        if isinstance(reference, str) and reference.startswith("wd_"):
            keys[reference] = str(key)
    return keys


async def unchosen_deposits(database_url: str) -> list[tuple[str, str, int, str]]:
    """(reference, email, amount, currency) of deposits whose checkout nobody answered."""
    database = Database(database_url, pool_size=1)
    try:
        async with database.transaction() as session:
            return [tuple(r) for r in await session.execute(_UNCHOSEN)]
    finally:
        await database.dispose()


async def status_of(
    base_url: str, requests: Sequence[tuple[str, str, str]]
) -> dict[str, str | None]:
    """The status route of each (token, kind, reference): what each sender is told (None when
    the API does not know the reference)."""
    statuses: dict[str, str | None] = {}
    gate = asyncio.Semaphore(STATUS_CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def one(token: str, kind: str, reference: str) -> None:
            async with gate:
                for _ in range(5):
                    try:
                        response = await client.get(
                            STATUS_PATHS[kind].format(reference),
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

        await asyncio.gather(*(one(*request) for request in requests))
    return statuses


async def replay(base_url: str, token: str, intent: Intent, epoch: float) -> Intent:
    """The same request again with the same key, as the careful client would after an error."""
    again = Intent(-1, "replay", intent.sender, intent.path, intent.body, intent.key)
    async with httpx.AsyncClient(base_url=base_url) as client:
        await send(client, token, again, epoch)
    return again
