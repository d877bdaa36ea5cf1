"""Scaled mode on RabbitMQ (the machine's, guest/guest, default vhost): the smoke test. The
queue and its exchange are unique to this run and deleted afterwards."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest

from coffer.db import Database
from coffer.jobs.catalogue import first_lane_queue
from coffer.jobs.celery_app import make_celery
from coffer.settings import Settings
from tests.fixtures.http import Caller
from tests.fixtures.scaled import (
    RABBITMQ_URL,
    all_settled,
    assert_settled_exactly_once,
    describe_process,
    rabbitmq_reachable,
    send_transfer,
    wait_until,
)
from tests.scaled.conftest import Workers

pytestmark = [pytest.mark.scaled, pytest.mark.postgres]


@pytest.fixture(scope="module")
def broker_url(queue: str) -> Iterator[str]:
    if not rabbitmq_reachable():
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
    yield RABBITMQ_URL
    settings = Settings(broker_url=RABBITMQ_URL, celery_queue=queue)
    celery = make_celery(settings)
    with celery.connection_for_write() as connection:
        channel = connection.default_channel
        for name in (queue, first_lane_queue(settings)):
            channel.queue_delete(name)
        channel.exchange_delete(queue)  # both queues are bound to the default exchange


async def test_a_transfer_through_the_api_is_settled_by_a_worker_on_rabbitmq(
    client: httpx.AsyncClient,
    sign_in: Callable[..., Awaitable[Caller]],
    app_database: Database,
    workers: Workers,
) -> None:
    worker = workers.shared()
    sender = await sign_in(fund_minor=9_000, currency="USD")
    recipient = await sign_in(currency="USD")
    opening = {sender.wallet_number: 9_000, recipient.wallet_number: 0}

    references = [await send_transfer(client, sender, recipient, "20.00") for _ in range(3)]

    await wait_until(
        lambda: all_settled(app_database, references), describe=describe_process(worker)
    )
    await assert_settled_exactly_once(app_database, references, opening)
    assert (await client.get("/readyz")).json()["data"]["broker"] == "ok"
