"""Job leases: short, renewed while the job runs, released when it fails even if the database
just restarted (issue 18: a job claimed at the moment of a restart stayed leased 5 minutes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from coffer.db import Database
from coffer.jobs.outbox import enqueue
from coffer.jobs.registry import job
from coffer.jobs.runner import JobRunner
from coffer.kit.clock import utcnow
from coffer.models import OutboxJob, OutboxStatus
from coffer.settings import Settings

RESTARTS_DATABASE_JOB = "tests.leases.database_restarts_under_it"
OUTLIVES_LEASE_JOB = "tests.leases.runs_longer_than_a_lease"
QUICK_JOB = "tests.leases.quick"
SHORT_LEASE_SECONDS = 0.6

_finish_gates: dict[str, asyncio.Event] = {}
"""Set by a test when its long job may end (made in the test's own event loop)."""


@job(RESTARTS_DATABASE_JOB)
async def _database_restarts(
    database: Database, settings: Settings, payload: dict[str, Any]
) -> None:
    """Every connection of the pool dies, as in a PostgreSQL restart, and the job fails."""
    dsn = make_url(database.url).set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    raise ConnectionError("the database restarted")


@job(OUTLIVES_LEASE_JOB)
async def _outlives_lease(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    await asyncio.wait_for(_finish_gates[payload["gate"]].wait(), timeout=30)


@job(QUICK_JOB)
async def _quick(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    return None


async def _only_row(database: Database) -> OutboxJob:
    async with database.transaction() as session:
        [row] = (await session.scalars(select(OutboxJob))).all()
    return row


@pytest.mark.parametrize("fresh_database_url", ["postgres"], indirect=True)
async def test_a_job_failing_through_a_database_restart_releases_its_lease(
    fresh_database_url: Callable[..., str],
) -> None:
    settings = Settings(database_url=fresh_database_url(), job_poll_interval_seconds=60)
    database = Database(settings.database_url, pool_size=3)
    try:
        async with database.transaction() as session:
            await enqueue(session, RESTARTS_DATABASE_JOB)
        runner = JobRunner(database, settings)
        [claimed] = await runner.claim()

        # The first attempt to record the failure meets a dead connection; a retry records it.
        await runner.run_job(claimed)

        row = await _only_row(database)
    finally:
        await database.dispose()
    assert row.locked_until is None
    assert row.status == OutboxStatus.PENDING
    assert row.attempts == 1
    assert row.last_error == "ConnectionError: the database restarted"


async def test_a_running_job_and_the_jobs_claimed_with_it_keep_their_short_leases(
    backend: str, fresh_database_url: Callable[..., str]
) -> None:
    settings = Settings(
        database_url=fresh_database_url(),
        job_poll_interval_seconds=60,
        job_lease_seconds=SHORT_LEASE_SECONDS,
    )
    database = Database(settings.database_url, pool_size=3)
    try:
        async with database.transaction() as session:
            await enqueue(session, OUTLIVES_LEASE_JOB, {"gate": backend})
            await enqueue(session, QUICK_JOB)
        runner, other_runner = JobRunner(database, settings), JobRunner(database, settings)
        claimed = await runner.claim()
        assert [job.name for job in claimed] == [OUTLIVES_LEASE_JOB, QUICK_JOB]
        _finish_gates[backend] = may_finish = asyncio.Event()
        running = asyncio.create_task(runner.run_jobs(claimed))

        # Several leases long: without the heartbeat the other runner would take the running
        # job, or the one waiting behind it.
        for _ in range(5):
            await asyncio.sleep(SHORT_LEASE_SECONDS)
            assert await other_runner.claim() == []
            async with database.transaction() as session:
                leases = (await session.scalars(select(OutboxJob.locked_until))).all()
            assert len(leases) == 2
            assert all(until is not None and until > utcnow() for until in leases)

        may_finish.set()
        await running
        async with database.transaction() as session:
            left = (await session.scalars(select(OutboxJob))).all()
    finally:
        await database.dispose()
    assert left == []
