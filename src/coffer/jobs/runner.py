"""The job runner: claims due outbox rows, runs their jobs, and keeps the periodic schedule.

It runs inside the API process in embedded mode (started by the lifespan) or alone as
`coffer worker`. Several runners may share one database: a claim takes rows with
`FOR UPDATE SKIP LOCKED` (SQLite serializes claims instead) and leases them, so each job runs
once at a time; a runner that dies loses its lease and another picks the job up.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, or_, select, update

from coffer.db import Database
from coffer.fees.service import CHARGE_JOB as FEES_CHARGE_JOB
from coffer.fx.service import REFRESH_JOB as FX_REFRESH_JOB
from coffer.jobs.outbox import enqueue
from coffer.jobs.registry import get_job
from coffer.kit.clock import utcnow
from coffer.models import OutboxJob, OutboxStatus
from coffer.settings import Settings
from coffer.transfers.service import PROCESS_JOB

log = structlog.get_logger(__name__)

LEASE = timedelta(minutes=5)
CLAIM_LIMIT = 20
MAX_BACKOFF = timedelta(minutes=30)
MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: int
    name: str
    payload: dict[str, Any]
    attempts: int


@dataclass(slots=True)
class Schedule:
    """A job enqueued every `interval`: the sweepers that catch work no event announced."""

    name: str
    interval: timedelta
    next_run: datetime


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff from 2 s, capped."""
    return min(timedelta(seconds=2**attempts), MAX_BACKOFF)


class JobRunner:
    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        self._wake = asyncio.Event()
        now = utcnow()
        poll = timedelta(seconds=settings.job_poll_interval_seconds)
        self.schedules = [
            Schedule(PROCESS_JOB, poll, now),
            # Due at start, so a runner that was down refreshes rates before they go stale.
            Schedule(FX_REFRESH_JOB, timedelta(seconds=settings.fx_refresh_interval_seconds), now),
            Schedule(FEES_CHARGE_JOB, timedelta(seconds=settings.fee_charge_interval_seconds), now),
        ]
        database.jobs_committed_listeners.append(self.wake)

    def wake(self) -> None:
        self._wake.set()

    async def claim(self, limit: int = CLAIM_LIMIT) -> list[ClaimedJob]:
        now = utcnow()
        async with self.database.transaction() as session:
            rows = (
                await session.execute(
                    select(OutboxJob.id, OutboxJob.name, OutboxJob.payload, OutboxJob.attempts)
                    .where(
                        OutboxJob.status == OutboxStatus.PENDING,
                        OutboxJob.run_at <= now,
                        or_(OutboxJob.locked_until.is_(None), OutboxJob.locked_until <= now),
                    )
                    .order_by(OutboxJob.run_at, OutboxJob.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if rows:
                # Clearing the dedupe key lets new work enqueue a fresh job while this one runs.
                await session.execute(
                    update(OutboxJob)
                    .where(OutboxJob.id.in_([row.id for row in rows]))
                    .values(
                        locked_until=now + LEASE,
                        attempts=OutboxJob.attempts + 1,
                        dedupe_key=None,
                    )
                )
        return [ClaimedJob(row.id, row.name, row.payload, row.attempts + 1) for row in rows]

    async def run_job(self, claimed: ClaimedJob) -> None:
        function = get_job(claimed.name)
        try:
            if function is None:
                raise LookupError(f"no job is registered as {claimed.name!r}")
            await function(self.database, self.settings, claimed.payload)
        except Exception as error:
            await self._record_failure(claimed, error)
            return
        async with self.database.transaction() as session:
            await session.execute(delete(OutboxJob).where(OutboxJob.id == claimed.id))

    async def _record_failure(self, claimed: ClaimedJob, error: Exception) -> None:
        is_dead = claimed.attempts >= self.settings.job_max_attempts
        log.error(
            "jobs.failed",
            job=claimed.name,
            job_id=claimed.id,
            attempts=claimed.attempts,
            dead=is_dead,
            error_type=type(error).__name__,
        )
        async with self.database.transaction() as session:
            await session.execute(
                update(OutboxJob)
                .where(OutboxJob.id == claimed.id)
                .values(
                    status=OutboxStatus.DEAD if is_dead else OutboxStatus.PENDING,
                    run_at=utcnow() + retry_delay(claimed.attempts),
                    locked_until=None,
                    last_error=f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH],
                )
            )

    async def enqueue_due_schedules(self) -> None:
        now = utcnow()
        due = [schedule for schedule in self.schedules if schedule.next_run <= now]
        if not due:
            return
        async with self.database.transaction() as session:
            for schedule in due:
                await enqueue(session, schedule.name, dedupe_key=schedule.name)
                schedule.next_run = now + schedule.interval

    async def run_once(self) -> int:
        """Enqueue due schedules, then claim and run due jobs; returns how many ran."""
        await self.enqueue_due_schedules()
        claimed = await self.claim()
        for job in claimed:
            await self.run_job(job)
        return len(claimed)

    async def run_forever(self) -> None:
        poll_seconds = self.settings.job_poll_interval_seconds
        while True:
            self._wake.clear()
            try:
                ran = await self.run_once()
            except Exception as error:
                # The database may be briefly unreachable; the loop must outlive that.
                log.error("jobs.runner_error", error_type=type(error).__name__)
                ran = 0
            if ran == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=poll_seconds)
