"""Money under real concurrency on PostgreSQL: many connections accepting transfers while two
processors settle them, and identical requests racing on one idempotency key.

Only PostgreSQL runs this (SQLite serializes every writer by design).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
from sqlalchemy import func, select

from coffer.db import Database
from coffer.identity.service import NewUser
from coffer.kit.money import format_minor, get_currency
from coffer.models import LedgerAccount, LedgerEntry, LedgerPosting, Transaction, Transfer
from coffer.transfers import service as transfers
from coffer.transfers import settlement
from coffer.transfers.service import AcceptedTransfer, RecipientKind, TransferRequest
from tests.fixtures.factories import assert_ledger_sound, fund, make_user

# PostgreSQL only: SQLite serializes every writer by design, so it has no race to show.
pytestmark = pytest.mark.parametrize("backend", ["postgres"])

WALLETS = 50
ACCEPT_CONNECTIONS = 20
REQUESTS = 7_000
OPENING_BALANCE_MINOR = 100_000
HOT_SHARE = 0.2
SETTLE_BATCH = 100


async def _processor(database: Database, accepting_done: asyncio.Event) -> int:
    """Settle batches until accepting is over and the queue is empty; returns transfers claimed."""
    claimed = 0
    while True:
        async with database.transaction() as session:
            report = await settlement.process_batch(session, SETTLE_BATCH)
        claimed += report.claimed
        if report.claimed == 0:
            if accepting_done.is_set():
                async with database.transaction() as session:
                    report = await settlement.process_batch(session, SETTLE_BATCH)
                claimed += report.claimed
                if report.claimed == 0:
                    return claimed
            else:
                await asyncio.sleep(0)


@pytest.mark.slow
async def test_many_connections_and_two_processors_conserve_money(
    backend: str, fresh_database_url
) -> None:
    url = fresh_database_url()
    accept = Database(url, pool_size=ACCEPT_CONNECTIONS)
    processors = [Database(url, pool_size=2), Database(url, pool_size=2)]
    rng = random.Random(8)
    try:
        async with accept.transaction() as session:
            users: list[NewUser] = [await make_user(session) for _ in range(WALLETS)]
            hot = await make_user(session, first_name="Hot")
            for user in users:
                await fund(session, user.primary_wallet, OPENING_BALANCE_MINOR)
        numbers = [u.primary_wallet.number for u in users]

        requests = []
        for _ in range(REQUESTS):
            sender = rng.choice(users)
            target = hot.primary_wallet.number if rng.random() < HOT_SHARE else rng.choice(numbers)
            # Mostly small amounts, and some large enough that pending ones collide: the
            # pre-check passes them one by one, the processor must refuse the ones that
            # together exceed the balance.
            amount_minor = (
                rng.randint(1, 1_000) if rng.random() < 0.85 else rng.randint(20_000, 90_000)
            )
            requests.append(
                TransferRequest(
                    sender_user_id=sender.user.id,
                    recipient_kind=RecipientKind.WALLET_NUMBER,
                    recipient=target,
                    amount=format_minor(amount_minor, get_currency("NGN")),
                )
            )
        queue: asyncio.Queue[list[TransferRequest]] = asyncio.Queue()
        position = 0
        while position < len(requests):
            size = rng.randint(1, 10)
            queue.put_nowait(requests[position : position + size])
            position += size
        accepted: list[AcceptedTransfer] = []
        refused: Counter[str] = Counter()

        async def acceptor() -> None:
            while not queue.empty():
                chunk = queue.get_nowait()
                async with accept.transaction() as session:
                    outcomes = await transfers.create_transfers(session, chunk)
                for outcome in outcomes:
                    if isinstance(outcome, AcceptedTransfer):
                        accepted.append(outcome)
                    else:
                        refused[outcome.code] += 1

        accepting_done = asyncio.Event()
        processor_tasks = [asyncio.create_task(_processor(db, accepting_done)) for db in processors]
        await asyncio.gather(*(acceptor() for _ in range(ACCEPT_CONNECTIONS)))
        accepting_done.set()
        claimed_by = await asyncio.gather(*processor_tasks)

        async with accept.transaction() as session:
            await assert_ledger_sound(session)
            references = [a.reference for a in accepted]
            rows = (
                await session.execute(
                    select(
                        Transfer.reference,
                        Transfer.status,
                        Transfer.failure_reason,
                        Transfer.amount_minor,
                    ).where(Transfer.reference.in_(references))
                )
            ).all()
            statuses = Counter(row.status for row in rows)
            reasons = Counter(row.failure_reason for row in rows if row.status == "failed")
            wallet_ids = [u.primary_wallet.ledger_account_id for u in users] + [
                hot.primary_wallet.ledger_account_id
            ]
            balances = dict(
                (
                    await session.execute(
                        select(LedgerAccount.id, LedgerAccount.balance).where(
                            LedgerAccount.id.in_(wallet_ids)
                        )
                    )
                ).all()
            )
            entries_per_reference = Counter(
                (
                    await session.execute(
                        select(LedgerEntry.reference).where(LedgerEntry.reference.in_(references))
                    )
                ).scalars()
            )
            postings_per_entry = Counter(
                (
                    await session.execute(
                        select(LedgerPosting.entry_id)
                        .join(LedgerEntry, LedgerEntry.id == LedgerPosting.entry_id)
                        .where(LedgerEntry.reference.in_(references))
                    )
                ).scalars()
            )
            history = Counter(
                (row.reference, row.type)
                for row in (
                    await session.execute(
                        select(Transaction.reference, Transaction.type).where(
                            Transaction.reference.in_(references)
                        )
                    )
                ).all()
            )
            hot_received = await session.scalar(
                select(func.coalesce(func.sum(Transfer.amount_minor), 0)).where(
                    Transfer.recipient_wallet_id == hot.primary_wallet.id,
                    Transfer.status == "completed",
                )
            )

        # Enough traffic, and the negative space: many accepted transfers failed on funds.
        assert len(accepted) >= 5_000, (len(accepted), refused)
        assert statuses["pending"] == 0
        assert statuses["completed"] > 1_000
        assert reasons["insufficient_funds"] > 50, reasons
        assert set(reasons) == {"insufficient_funds"}
        # Each accepted transfer claimed exactly once across both processors, both working.
        assert sum(claimed_by) == len(accepted)
        assert all(count > 0 for count in claimed_by), claimed_by
        # Total conserved, nothing negative, each completed transfer applied exactly once.
        assert sum(balances.values()) == WALLETS * OPENING_BALANCE_MINOR
        assert min(balances.values()) >= 0
        completed = {row.reference for row in rows if row.status == "completed"}
        assert set(entries_per_reference) == completed
        assert set(entries_per_reference.values()) == {1}
        assert set(postings_per_entry.values()) == {2}
        assert all(history[(ref, "transfer_out")] == 1 for ref in references)
        assert all(
            history[(ref, "transfer_in")] == (1 if ref in completed else 0) for ref in references
        )
        # The hot wallet only receives: it holds exactly what its completed transfers brought.
        assert balances[hot.primary_wallet.ledger_account_id] == hot_received
    finally:
        await accept.dispose()
        for database in processors:
            await database.dispose()


async def test_identical_requests_racing_on_one_key_make_one_transfer(
    backend: str, fresh_database_url
) -> None:
    url = fresh_database_url()
    databases = [Database(url, pool_size=1) for _ in range(8)]
    try:
        async with databases[0].transaction() as session:
            sender = await make_user(session)
            recipient = await make_user(session)
            await fund(session, sender.primary_wallet, 10_000)
        request = TransferRequest(
            sender_user_id=sender.user.id,
            recipient_kind=RecipientKind.WALLET_NUMBER,
            recipient=recipient.primary_wallet.number,
            amount="10.00",
            idempotency_key="pay-once",
        )

        async def submit(database: Database) -> AcceptedTransfer:
            async with database.transaction() as session:
                (outcome,) = await transfers.create_transfers(session, [request])
            assert isinstance(outcome, AcceptedTransfer), outcome
            return outcome

        outcomes = await asyncio.gather(*(submit(db) for db in databases))
        assert len({o.reference for o in outcomes}) == 1
        assert sum(not o.replayed for o in outcomes) == 1
        async with databases[0].transaction() as session:
            stored = await session.scalar(
                select(func.count())
                .select_from(Transfer)
                .where(Transfer.sender_user_id == sender.user.id)
            )
        assert stored == 1
    finally:
        for database in databases:
            await database.dispose()
