"""Fan-outs racing on PostgreSQL over separate connections turn each event into exactly one
delivery (and one delivery job) per subscribed endpoint, whoever wins the cursor."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from coffer.db import Database
from coffer.models import OutboxJob, WebhookDelivery
from coffer.settings import Settings
from coffer.webhooks import service
from coffer.webhooks.deliveries import DELIVER_JOB, fan_out
from tests.fixtures.factories import fund, make_user

EVENTS = 40
RACERS = 4


@pytest.mark.parametrize("fresh_database_url", ["postgres"], indirect=True)
async def test_racing_fan_outs_make_one_delivery_per_event_and_endpoint(
    fresh_database_url: Callable[..., str],
) -> None:
    url = fresh_database_url()
    settings = Settings(database_url=url, webhooks_allow_private_targets=True)
    setup = Database(url, pool_size=2)
    racers = [Database(url, pool_size=1) for _ in range(RACERS)]
    try:
        async with setup.transaction() as session:
            owner = await make_user(session)
            for events in (["balance.updated"], ["balance.updated", "fee.charged"]):
                await service.create_endpoint(
                    session,
                    settings,
                    owner.user.id,
                    url="http://127.0.0.1:9/hooks",
                    event_types=events,
                )
        for _ in range(EVENTS):
            async with setup.transaction() as session:
                await fund(session, owner.primary_wallet, 100)

        async def race(database: Database) -> None:
            while True:
                async with database.transaction() as session:
                    if not await fan_out(session):
                        return

        await asyncio.gather(*(race(database) for database in racers))

        async with setup.transaction() as session:
            per_event = (
                await session.execute(
                    select(WebhookDelivery.event_id, func.count())
                    .group_by(WebhookDelivery.event_id)
                    .order_by(WebhookDelivery.event_id)
                )
            ).all()
            jobs = (
                await session.execute(
                    select(func.count()).select_from(OutboxJob).where(OutboxJob.name == DELIVER_JOB)
                )
            ).scalar_one()
        assert len(per_event) == EVENTS
        assert {count for _, count in per_event} == {2}
        assert jobs == 2 * EVENTS
    finally:
        for database in (setup, *racers):
            await database.dispose()
