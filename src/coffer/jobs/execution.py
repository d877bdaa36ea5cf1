"""Running one claimed outbox job: the same steps for the database runner and for Celery.

A claim leases the row for `COFFER_JOB_LEASE_SECONDS` only; a heartbeat renews the lease while
the job runs or waits its turn, so a worker that dies (or loses the database) holds a job for
seconds, never minutes. When a job fails, recording the failure is retried for a few seconds,
because the failure that broke the job (a database restart) often breaks the first attempt to
record it too; if every attempt fails, the lease simply runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from coffer.db import Database
from coffer.jobs import repository
from coffer.jobs.registry import find_job
from coffer.settings import Settings

log = structlog.get_logger(__name__)

MAX_ERROR_LENGTH = 2000
RECORD_RETRY_DELAYS_SECONDS = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Waits between attempts to record a failure: about 8 s in all, well inside one lease."""


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: int
    name: str
    payload: dict[str, Any]
    attempts: int


def lease(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.job_lease_seconds)


async def _heartbeat(
    database: Database, settings: Settings, held: set[int], stop: asyncio.Event
) -> None:
    interval = settings.job_lease_seconds / 3
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
            return
        if not held:
            continue
        try:
            async with database.transaction() as session:
                await repository.renew_leases(session, sorted(held), lease(settings))
        except Exception as error:
            # The job itself will most likely fail the same way and say so.
            log.warning("jobs.heartbeat_failed", jobs=len(held), error_type=type(error).__name__)


@asynccontextmanager
async def leases_kept(
    database: Database, settings: Settings, held: set[int]
) -> AsyncIterator[None]:
    """Renew the leases of the jobs in `held` (the caller removes each one it finishes) every
    third of a lease until the block ends: jobs claimed together and waiting their turn keep
    theirs too, so no other worker takes them while they wait."""
    stop = asyncio.Event()
    heartbeat = asyncio.create_task(_heartbeat(database, settings, held, stop))
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(heartbeat, timeout=settings.job_lease_seconds)


async def run_claimed(
    database: Database, settings: Settings, claimed: ClaimedJob
) -> Exception | None:
    """Run the job (under the caller's `leases_kept`); on success delete its row. Returns the
    failure, if any, for the caller to record (the runner and Celery retry differently)."""
    error = await run_unfinished(database, settings, claimed)
    if error is None:
        await finish(database, [claimed.id])
    return error


async def run_unfinished(
    database: Database, settings: Settings, claimed: ClaimedJob
) -> Exception | None:
    """Run the job and leave its row for the caller to `finish` (with others claimed in the
    same chunk, in one statement); the failure, if any."""
    registered = find_job(claimed.name)
    try:
        if registered is None:
            raise LookupError(f"no job is registered as {claimed.name!r}")
        await registered.function(database, settings, claimed.payload)
    except Exception as error:
        return error
    return None


async def finish(database: Database, job_ids: list[int]) -> None:
    """Delete the rows of jobs that ran to the end."""
    if job_ids:
        async with database.transaction() as session:
            await repository.finish(session, job_ids)


def is_final_attempt(settings: Settings, claimed: ClaimedJob) -> bool:
    return claimed.attempts >= settings.job_max_attempts


async def record_failure(
    database: Database,
    claimed: ClaimedJob,
    error: Exception,
    *,
    status: str,
    run_at: datetime,
) -> bool:
    """Store the failure and release the lease, retrying while the database comes back.
    Returns whether it was stored (if not, the lease expires within seconds anyway)."""
    log.error(
        "jobs.failed",
        job=claimed.name,
        job_id=claimed.id,
        attempts=claimed.attempts,
        status=status,
        error_type=type(error).__name__,
    )
    values = {
        "status": status,
        "run_at": run_at,
        "locked_until": None,
        "last_error": f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH],
    }
    for delay in (0.0, *RECORD_RETRY_DELAYS_SECONDS):
        await asyncio.sleep(delay)
        try:
            async with database.transaction() as session:
                await repository.store_failure(session, claimed.id, values)
        except Exception as record_error:
            log.warning(
                "jobs.record_failure_failed",
                job_id=claimed.id,
                error_type=type(record_error).__name__,
            )
            continue
        return True
    return False
