"""Daily limits and balances under real concurrency on PostgreSQL: 50 transfer requests race,
each in its own transaction, and two processors settle them.

Only PostgreSQL runs this (SQLite serializes every writer by design).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from coffer.db import Database
from coffer.errors import AppError
from coffer.identity.service import NewUser
from coffer.kit.clock import utcnow
from coffer.models import Transfer
from coffer.settings import Settings
from coffer.transfers import service as transfers
from coffer.transfers.service import AcceptedTransfer, TransferOutcome, TransferRequest
from coffer.transfers.tasks import process_pending
from coffer.wallets import limits
from coffer.wallets.limits import LimitKind
from tests.fixtures.factories import assert_ledger_sound, fund, make_user
from tests.transfers.test_service import balance_minor, request_to

PARALLEL = 50
AMOUNT = "3.00"


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[Database]:
    """The shared PostgreSQL database (SQLite has no race to show)."""
    db = Database(postgres_url, pool_size=5)
    yield db
    await db.dispose()


async def race(
    database: Database, requests: list[TransferRequest], settings: Settings
) -> list[TransferOutcome]:
    """Each request in its own transaction, all at once."""

    async def one(request: TransferRequest) -> TransferOutcome:
        async with database.transaction() as session:
            (outcome,) = await transfers.create_transfers(session, [request], settings=settings)
        return outcome

    return list(await asyncio.gather(*(one(r) for r in requests)))


async def settle_with_two_processors(database_url: str) -> None:
    processors = [Database(database_url, pool_size=2), Database(database_url, pool_size=2)]
    try:
        await asyncio.gather(*(process_pending(p, batch_size=7) for p in processors))
    finally:
        for processor in processors:
            await processor.dispose()


async def three_wallets(database: Database, opening_minor: int) -> tuple[NewUser, NewUser, NewUser]:
    """A funded USD sender, a USD recipient and an NGN one (every other request converts)."""
    async with database.transaction() as session:
        sender = await make_user(session, currency="USD")
        dollars = await make_user(session, currency="USD")
        naira = await make_user(session, currency="NGN")
        await fund(session, sender.primary_wallet, opening_minor)
    return sender, dollars, naira


def requests_from(sender: NewUser, *recipients: NewUser) -> list[TransferRequest]:
    return [
        request_to(sender, recipients[i % len(recipients)].primary_wallet.number, AMOUNT)
        for i in range(PARALLEL)
    ]


async def statuses(database: Database, outcomes: list[TransferOutcome]) -> Counter[str]:
    references = [o.reference for o in outcomes if isinstance(o, AcceptedTransfer)]
    async with database.transaction() as session:
        rows = await session.execute(
            select(Transfer.status, Transfer.failure_reason).where(
                Transfer.reference.in_(references)
            )
        )
        return Counter(f"{row.status}:{row.failure_reason}" for row in rows)


async def test_parallel_requests_cannot_squeeze_past_the_daily_limit(
    database: Database, postgres_url: str
) -> None:
    settings = Settings()  # 100.00 USD a day: 33 transfers of 3.00, not 34
    sender, dollars, naira = await three_wallets(database, 100_000)
    outcomes = await race(database, requests_from(sender, dollars, naira), settings)

    refused = Counter(o.code for o in outcomes if isinstance(o, AppError))
    assert refused == Counter({"daily_limit_exceeded": PARALLEL - 33})
    await settle_with_two_processors(postgres_url)

    assert await statuses(database, outcomes) == Counter({"completed:None": 33})
    async with database.transaction() as session:
        used = await limits.used_minor(
            session, sender.user.id, LimitKind.TRANSFER, "USD", utcnow().date()
        )
        assert used == 33 * 300
        assert await balance_minor(session, sender.primary_wallet) == 100_000 - 33 * 300
        # Which 33 requests win the race is up to the database, so split by where they went.
        to_dollars, rest = divmod(await balance_minor(session, dollars.primary_wallet), 300)
        to_naira, rest_naira = divmod(
            await balance_minor(session, naira.primary_wallet), 300 * 1500
        )
        assert (to_dollars + to_naira, rest, rest_naira) == (33, 0, 0)
        await assert_ledger_sound(session)


async def test_parallel_requests_beyond_the_balance_fail_and_give_their_allowance_back(
    database: Database, postgres_url: str
) -> None:
    settings = Settings(daily_transfer_limit=Decimal("1000.00"))
    sender, dollars, naira = await three_wallets(database, 10_000)  # 100.00 USD: 33 x 3.00
    outcomes = await race(database, requests_from(sender, dollars, naira), settings)

    # The accept side only pre-checks the balance; every request fits, one by one.
    assert all(isinstance(o, AcceptedTransfer) for o in outcomes), outcomes
    await settle_with_two_processors(postgres_url)

    assert await statuses(database, outcomes) == Counter(
        {"completed:None": 33, "failed:insufficient_funds": PARALLEL - 33}
    )
    async with database.transaction() as session:
        assert await balance_minor(session, sender.primary_wallet) == 100
        used = await limits.used_minor(
            session, sender.user.id, LimitKind.TRANSFER, "USD", utcnow().date()
        )
        assert used == 33 * 300
        completed_to_naira = await session.scalar(
            select(func.count()).where(
                Transfer.sender_user_id == sender.user.id,
                Transfer.receive_currency == "NGN",
                Transfer.status == "completed",
            )
        )
        assert await balance_minor(session, naira.primary_wallet) == (
            completed_to_naira * 300 * 1500
        )
        await assert_ledger_sound(session)


async def _wait_until_blocked_on_a_lock(database: Database) -> None:
    """Until another session of this database waits for a row lock (bounded, no sleeps as
    guesses: it polls the server's own view of who is waiting)."""
    for _ in range(500):
        async with database.transaction() as session:
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the retry never waited for the original's lock")


async def test_a_retry_while_the_original_is_in_flight_is_answered_as_its_replay(
    database: Database,
) -> None:
    settings = Settings()  # 100.00 USD a day: the original's 60.00 leaves no room for another
    sender, dollars, _ = await three_wallets(database, 100_000)
    request = request_to(sender, dollars.primary_wallet.number, "60.00", idempotency_key="retry-1")
    async with database.sessionmaker() as original, original.begin():
        (first,) = await transfers.create_transfers(original, [request], settings=settings)
        retry = asyncio.create_task(race(database, [request], settings))
        await _wait_until_blocked_on_a_lock(database)
    (second,) = await retry

    assert isinstance(first, AcceptedTransfer)
    assert isinstance(second, AcceptedTransfer), second
    assert second.reference == first.reference
    assert second.replayed
