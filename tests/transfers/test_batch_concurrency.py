"""Batches racing on PostgreSQL: linked and independent batches debiting the same wallets,
accepted on many connections while two processors settle them. No wallet is overdrawn, a
linked batch settles whole or not at all, and every completed transfer is applied once.

Only PostgreSQL runs this (SQLite serializes every writer by design).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict

import pytest
from sqlalchemy import select

from coffer.db import Database
from coffer.kit.money import format_minor, get_currency
from coffer.models import BatchMode, LedgerAccount, LedgerEntry, Transfer, TransferStatus
from coffer.settings import Settings
from coffer.transfers.batches import AcceptedBatch, accept_batch
from coffer.transfers.requests import AcceptedTransfer, RecipientKind, TransferRequest
from coffer.transfers.tasks import process_pending
from tests.fixtures.factories import assert_ledger_sound, fund, make_user

pytestmark = pytest.mark.parametrize("backend", ["postgres"])

SENDERS = 4
RECIPIENTS = 6
BATCHES_PER_SENDER = 6
ITEMS_PER_BATCH = 8
OPENING_BALANCE_MINOR = 50_000
"""Each batch moves about half the balance, so most of a sender's batches cannot all be
paid: the pre-check at acceptance passes items one by one, settlement must refuse."""


async def _settle_until_done(database: Database, accepting_done: asyncio.Event) -> int:
    claimed = 0
    while True:
        report = await process_pending(database, batch_size=50)
        claimed += report.claimed
        if not report.claimed:
            if accepting_done.is_set():
                final = await process_pending(database, batch_size=50)
                return claimed + final.claimed
            await asyncio.sleep(0.01)


@pytest.mark.slow
async def test_concurrent_batches_on_one_wallet_never_overdraw(
    backend: str, fresh_database_url
) -> None:
    url = fresh_database_url()
    accept = Database(url, pool_size=SENDERS * 2)
    processors = [Database(url, pool_size=2), Database(url, pool_size=2)]
    settings = Settings(database_url=url, daily_transfer_limit="1000000000")
    rng = random.Random(13)
    try:
        async with accept.transaction() as session:
            senders = [await make_user(session) for _ in range(SENDERS)]
            recipients = [await make_user(session) for _ in range(RECIPIENTS)]
            for sender in senders:
                await fund(session, sender.primary_wallet, OPENING_BALANCE_MINOR)
        plans = []
        for sender in senders:
            for number in range(BATCHES_PER_SENDER):
                mode = BatchMode.LINKED if number % 2 else BatchMode.INDEPENDENT
                requests = [
                    TransferRequest(
                        sender_user_id=sender.user.id,
                        recipient_kind=RecipientKind.WALLET_NUMBER,
                        recipient=rng.choice(recipients).primary_wallet.number,
                        amount=format_minor(rng.randint(500, 6_000), get_currency("NGN")),
                        idempotency_key=uuid.uuid4().hex,
                    )
                    for _ in range(ITEMS_PER_BATCH)
                ]
                plans.append((sender.user.id, mode, requests))
        rng.shuffle(plans)

        async def submit(plan: tuple[uuid.UUID, BatchMode, list[TransferRequest]]) -> AcceptedBatch:
            user_id, mode, requests = plan
            async with accept.transaction() as session:
                return await accept_batch(session, user_id, mode, requests, settings=settings)

        accepting_done = asyncio.Event()
        settling = [
            asyncio.create_task(_settle_until_done(db, accepting_done)) for db in processors
        ]
        accepted = await asyncio.gather(*(submit(plan) for plan in plans))
        accepting_done.set()
        claimed_by = await asyncio.gather(*settling)

        references = {
            outcome.reference: batch
            for batch in accepted
            for outcome in batch.outcomes
            if isinstance(outcome, AcceptedTransfer)
        }
        async with accept.transaction() as session:
            await assert_ledger_sound(session)
            rows = (
                await session.execute(
                    select(
                        Transfer.reference,
                        Transfer.status,
                        Transfer.failure_reason,
                        Transfer.amount_minor,
                        Transfer.sender_user_id,
                    ).where(Transfer.reference.in_(list(references)))
                )
            ).all()
            balances = dict(
                (
                    await session.execute(
                        select(LedgerAccount.id, LedgerAccount.balance).where(
                            LedgerAccount.id.in_(
                                [s.primary_wallet.ledger_account_id for s in senders]
                            )
                        )
                    )
                ).all()
            )
            posted = set(
                (
                    await session.execute(
                        select(LedgerEntry.reference).where(
                            LedgerEntry.reference.in_(list(references))
                        )
                    )
                ).scalars()
            )

        assert sum(claimed_by) == len(references) == len(rows)
        statuses: dict[str, set[str]] = defaultdict(set)
        spent: dict[uuid.UUID, int] = defaultdict(int)
        for row in rows:
            statuses[references[row.reference].reference].add(row.status)
            if row.status == TransferStatus.COMPLETED:
                spent[row.sender_user_id] += row.amount_minor
        for batch in accepted:
            if batch.mode is BatchMode.LINKED and batch.reference in statuses:
                assert len(statuses[batch.reference]) == 1, statuses[batch.reference]
        reasons = {row.failure_reason for row in rows if row.status == TransferStatus.FAILED}
        assert reasons == {"insufficient_funds", "linked_event_failed"}
        assert TransferStatus.PENDING not in {row.status for row in rows}
        assert posted == {r.reference for r in rows if r.status == TransferStatus.COMPLETED}
        for sender in senders:
            balance = balances[sender.primary_wallet.ledger_account_id]
            assert balance >= 0
            assert balance == OPENING_BALANCE_MINOR - spent[sender.user.id]
        # Each linked batch: all completed, all failed at settlement, or refused whole at
        # acceptance (nothing stored); and the race produced both kinds of ending.
        completed, failed = (
            frozenset({TransferStatus.COMPLETED}),
            frozenset({TransferStatus.FAILED}),
        )
        linked = [frozenset(statuses[b.reference]) for b in accepted if b.mode is BatchMode.LINKED]
        assert set(linked) <= {completed, failed, frozenset()}
        assert completed in linked
        assert {failed, frozenset()} & set(linked)
    finally:
        await accept.dispose()
        for database in processors:
            await database.dispose()
