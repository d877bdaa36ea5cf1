"""A receiver that never answers does not hold up the transfer processor: deliveries run apart
from the other jobs in the database runner, so transfers settle while a delivery waits."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable

import httpx

from coffer.db import Database
from coffer.jobs.runner import JobRunner
from coffer.settings import Settings
from tests.fixtures.factories import assert_ledger_sound
from tests.fixtures.http import API, Caller
from tests.webhooks.conftest import CreateEndpoint, Credit, MakeReceiver

SETTLE_WAIT_SECONDS = 25.0
"""Below the delivery timeout: a processor stuck behind the delivery cannot settle in time."""


async def test_a_slow_receiver_does_not_slow_the_transfer_processor(
    client: httpx.AsyncClient,
    sign_in: Callable[..., Awaitable[Caller]],
    create_endpoint: CreateEndpoint,
    credit: Credit,
    make_receiver: MakeReceiver,
    app_database: Database,
    app_settings: Settings,
) -> None:
    hold = threading.Event()
    slow = make_receiver(hold=hold)
    sender = await sign_in(fund_minor=100_000)
    recipient = await sign_in()
    endpoint = await create_endpoint(sender, slow.url, ["balance.updated", "transfer.completed"])
    settings = app_settings.model_copy(
        update={"webhook_timeout_seconds": 30.0, "job_poll_interval_seconds": 0.05}
    )
    runner = JobRunner(app_database, settings)
    running = asyncio.create_task(runner.run_forever())
    try:
        await credit(sender, 100)
        await asyncio.to_thread(slow.wait_for, 1)  # a delivery is in flight, held

        accepted = await client.post(
            f"{API}/wallet/transfer",
            json={"wallet_number": recipient.wallet_number, "amount": "10.00"},
            headers=sender.headers,
        )
        assert accepted.status_code == 202, accepted.text
        status_url = f"{API}/wallet/transfer/{accepted.json()['data']['reference']}/status"
        status = "pending"
        for _ in range(int(SETTLE_WAIT_SECONDS / 0.1)):
            status = (await client.get(status_url, headers=sender.headers)).json()["data"]["status"]
            if status != "pending":
                break
            await asyncio.sleep(0.1)
        assert status == "completed"

        listed = await client.get(
            f"{API}/webhook-endpoints/{endpoint['id']}/deliveries", headers=sender.headers
        )
        held = listed.json()["data"]["deliveries"][-1]
        assert (held["status"], held["attempts"]) == ("pending", [])  # still in flight
        async with app_database.transaction() as session:
            await assert_ledger_sound(session)
    finally:
        hold.set()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
