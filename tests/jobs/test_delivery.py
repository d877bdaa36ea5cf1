"""One Celery delivery of an outbox row (`coffer.jobs.delivery.deliver`), run in-process:
duplicates do nothing, failures retry with a backoff, the last failure leaves a dead row."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import select

from coffer.db import Database
from coffer.jobs import repository
from coffer.jobs.delivery import MAX_BACKOFF_SECONDS, deliver
from coffer.jobs.outbox import enqueue
from coffer.jobs.registry import job
from coffer.kit.clock import utcnow
from coffer.models import OutboxJob, OutboxStatus
from coffer.settings import Settings

COUNTS_JOB = "tests.delivery.counts"
FAILS_JOB = "tests.delivery.fails"
_runs: list[str] = []


@job(COUNTS_JOB)
async def _counts(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    _runs.append(payload["n"])


@job(FAILS_JOB)
async def _fails(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    raise RuntimeError("provider said no")


@pytest.fixture
def settings(backend: str, fresh_database_url: Callable[..., str]) -> Settings:
    return Settings(database_url=fresh_database_url(), job_max_attempts=2)


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    db = Database(settings.database_url, pool_size=3)
    yield db
    await db.dispose()


async def _enqueued(database: Database, name: str, payload: dict[str, Any]) -> int:
    async with database.transaction() as session:
        await enqueue(session, name, payload)
        return int(await session.scalar(select(OutboxJob.id).order_by(OutboxJob.id.desc())) or 0)


async def _row(database: Database, job_id: int) -> OutboxJob | None:
    async with database.transaction() as session:
        return await session.get(OutboxJob, job_id)


async def test_a_delivered_job_runs_once_and_a_duplicate_message_does_nothing(
    database: Database, settings: Settings
) -> None:
    token = uuid.uuid4().hex
    job_id = await _enqueued(database, COUNTS_JOB, {"n": token})

    assert await deliver(database, settings, job_id) is None
    assert await deliver(database, settings, job_id) is None

    assert _runs.count(token) == 1
    assert await _row(database, job_id) is None


async def test_a_failure_retries_with_a_backoff_then_the_last_leaves_a_dead_row(
    database: Database, settings: Settings
) -> None:
    job_id = await _enqueued(database, FAILS_JOB, {})

    countdown = await deliver(database, settings, job_id)

    assert countdown is not None
    assert 0 <= countdown <= MAX_BACKOFF_SECONDS
    row = await _row(database, job_id)
    assert row is not None
    assert (row.status, row.attempts, row.locked_until) == (OutboxStatus.SENT, 1, None)
    # Not swept again before the retry message had its chance.
    assert row.run_at > utcnow()

    assert await deliver(database, settings, job_id) is None

    row = await _row(database, job_id)
    assert row is not None
    assert (row.status, row.attempts) == (OutboxStatus.DEAD, 2)
    assert row.last_error == "RuntimeError: provider said no"
    async with database.transaction() as session:
        assert [dead.id for dead in await repository.dead_jobs(session, 10)] == [job_id]
        assert await repository.revive(session, job_id)
    revived = await _row(database, job_id)
    assert revived is not None
    assert (revived.status, revived.attempts) == (OutboxStatus.PENDING, 0)
