"""Scaled mode on Redis: the API publishes, real Celery workers settle; a broker outage and a
SIGKILLed worker lose nothing. One Redis server of the test's own, one database and queue for
the module, and as few worker processes as the scenarios allow."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import select

from coffer.db import Database
from coffer.models import OutboxJob, OutboxStatus, TransferStatus
from coffer.settings import Settings
from coffer.transfers.service import (
    AcceptedTransfer,
    RecipientKind,
    TransferRequest,
    create_transfers,
)
from coffer.transfers.settlement import PROCESS_JOB
from tests.fixtures.http import Caller
from tests.fixtures.scaled import (
    RedisServer,
    all_settled,
    assert_settled_exactly_once,
    describe_process,
    send_transfer,
    transfer_statuses,
    wait_until,
    wallet_balances,
)
from tests.scaled.conftest import LIMIT_OUT_OF_THE_WAY, Workers

pytestmark = [pytest.mark.scaled, pytest.mark.postgres]

SignIn = Callable[..., Awaitable[Caller]]


@pytest.fixture(scope="module")
def broker_url(redis_server: RedisServer) -> str:
    return redis_server.url


async def processor_rows(database: Database) -> list[str]:
    async with database.transaction() as session:
        return list(
            await session.scalars(select(OutboxJob.status).where(OutboxJob.name == PROCESS_JOB))
        )


async def test_with_no_worker_a_transfer_waits_and_a_started_worker_settles_it(
    client: httpx.AsyncClient, sign_in: SignIn, app_database: Database, workers: Workers
) -> None:
    sender = await sign_in(fund_minor=10_000, currency="USD")
    recipient = await sign_in(currency="USD")

    reference = await send_transfer(client, sender, recipient, "12.34")

    # Published to the broker, and nobody consumes it yet.
    async def published() -> bool:
        return OutboxStatus.SENT in await processor_rows(app_database)

    await wait_until(published, within_seconds=20)
    assert await transfer_statuses(app_database, [reference]) == {TransferStatus.PENDING: 1}

    worker = workers.shared()
    await wait_until(
        lambda: all_settled(app_database, [reference]), describe=describe_process(worker)
    )
    balances = await wallet_balances(app_database, [sender.wallet_number, recipient.wallet_number])
    assert balances == {sender.wallet_number: 10_000 - 1234, recipient.wallet_number: 1234}


async def test_a_transfer_through_the_api_is_settled_by_a_celery_worker(
    client: httpx.AsyncClient, sign_in: SignIn, app_database: Database, workers: Workers
) -> None:
    worker = workers.shared()
    sender = await sign_in(fund_minor=5_000, currency="USD")
    recipient = await sign_in(currency="USD")
    opening = {sender.wallet_number: 5_000, recipient.wallet_number: 0}

    references = [await send_transfer(client, sender, recipient, "3.00") for _ in range(3)]

    await wait_until(
        lambda: all_settled(app_database, references), describe=describe_process(worker)
    )
    await assert_settled_exactly_once(app_database, references, opening)


async def test_with_the_broker_down_requests_succeed_and_settle_once_it_is_back(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    app_database: Database,
    workers: Workers,
    redis_server: RedisServer,
) -> None:
    worker = workers.shared()
    senders = [await sign_in(fund_minor=10_000, currency="USD") for _ in range(3)]
    recipient = await sign_in(currency="USD")
    opening = {caller.wallet_number: 10_000 for caller in senders} | {recipient.wallet_number: 0}

    redis_server.stop()
    try:
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["data"]["broker"] == "degraded"
        references = [
            await send_transfer(client, sender, recipient, f"{n + 1}.00")
            for n in range(4)
            for sender in senders
        ]
        # The work is held in the outbox, not lost with the broker: no message can reach the
        # worker now, so the transfers wait.
        assert await processor_rows(app_database)
        assert (await transfer_statuses(app_database, references)).get(TransferStatus.PENDING)
    finally:
        redis_server.start()

    await wait_until(
        lambda: all_settled(app_database, references), describe=describe_process(worker)
    )
    await assert_settled_exactly_once(app_database, references, opening)
    assert (await client.get("/readyz")).json()["data"]["broker"] == "ok"


TRANSFERS_FOR_THE_KILL = 1200
KILL_BATCH_SIZE = "10"


async def _accept_many(
    database: Database, count: int, sign_in: SignIn
) -> tuple[list[str], dict[str, int]]:
    """Accepted transfers in bulk through the service (the API would take minutes here)."""
    callers = [await sign_in(fund_minor=1_000_000, currency="USD") for _ in range(12)]
    opening = {caller.wallet_number: 1_000_000 for caller in callers}
    references: list[str] = []

    settings = Settings(daily_transfer_limit=LIMIT_OUT_OF_THE_WAY)
    for start in range(0, count, 200):
        requests = [
            TransferRequest(
                sender_user_id=callers[n % len(callers)].user_id,
                recipient_kind=RecipientKind.WALLET_NUMBER,
                # Any other wallet: an offset of 1 to k-1 never lands on the sender.
                recipient=callers[
                    (n + 1 + (n // len(callers)) % (len(callers) - 1)) % len(callers)
                ].wallet_number,
                amount=f"{1 + n % 7}.00",
            )
            for n in range(start, min(start + 200, count))
        ]
        async with database.transaction() as session:
            outcomes = await create_transfers(session, requests, settings=settings)
        for outcome in outcomes:
            assert isinstance(outcome, AcceptedTransfer), outcome
            references.append(outcome.reference)
    return references, opening


async def test_a_worker_killed_mid_batch_loses_nothing_and_another_settles_every_transfer(
    sign_in: SignIn, app_database: Database, workers: Workers
) -> None:
    workers.stop_all()
    references, opening = await _accept_many(app_database, TRANSFERS_FOR_THE_KILL, sign_in)

    doomed = workers.start(COFFER_TRANSFER_BATCH_SIZE=KILL_BATCH_SIZE)

    async def under_way() -> bool:
        statuses = await transfer_statuses(app_database, references)
        return statuses.get(TransferStatus.COMPLETED, 0) >= int(KILL_BATCH_SIZE)

    await wait_until(under_way, describe=describe_process(doomed))
    doomed.kill()
    left = (await transfer_statuses(app_database, references)).get(TransferStatus.PENDING, 0)
    assert left > 0, "the worker finished before it was killed: nothing was tested"

    survivor = workers.start(COFFER_TRANSFER_BATCH_SIZE=KILL_BATCH_SIZE)
    await wait_until(
        lambda: all_settled(app_database, references), describe=describe_process(survivor)
    )
    await assert_settled_exactly_once(app_database, references, opening)
