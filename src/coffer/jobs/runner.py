"""The database job runner: claims due outbox rows, runs their jobs, and keeps the schedules.

It runs inside the API process in embedded mode (started by the lifespan) or alone as
`coffer worker` when no broker is configured. Several runners may share one database: a claim
takes rows with `FOR UPDATE SKIP LOCKED` (SQLite serializes claims instead) and leases them, so
each job runs once at a time; a runner that dies loses its lease within seconds and another
picks the job up.

Each job has a lane (coffer.jobs.registry.Lane), and no lane waits behind another's queue:
- `FIRST` (the transfer processor) is claimed one job at a time by a loop of its own beside
  the others, so settling money never waits behind thousands of queued emails;
- `APART` (webhook deliveries, which wait on other people's servers) runs as tasks beside the
  others, at most COFFER_WEBHOOK_DELIVERY_CONCURRENCY at once: a receiver that takes its whole
  timeout delays no transfer, email or fee job;
- `IN_LINE` (everything else) is claimed in chunks, oldest first, and run one after another.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, select, update

from coffer.db import Database
from coffer.jobs import catalogue
from coffer.jobs.execution import (
    ClaimedJob,
    is_final_attempt,
    lease,
    leases_kept,
    record_failure,
    run_claimed,
)
from coffer.jobs.outbox import enqueue
from coffer.jobs.registry import Lane
from coffer.kit.clock import utcnow
from coffer.models import OutboxJob, OutboxStatus
from coffer.settings import Settings

log = structlog.get_logger(__name__)

CLAIM_LIMIT = 20
MAX_BACKOFF = timedelta(minutes=30)
RUNNABLE = (OutboxStatus.PENDING, OutboxStatus.SENT)
"""A row published to a broker that is gone (the deployment went back to embedded) is run by
the database runner once its redelivery time passes."""


@dataclass(slots=True)
class DueSchedule:
    """A catalogue schedule and when this runner next enqueues it."""

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
        # Due at start, so a runner that was down refreshes rates before they go stale.
        self.schedules = [
            DueSchedule(schedule.name, schedule.interval, now)
            for schedule in catalogue.schedules(settings)
        ]
        self._first_wake = asyncio.Event()
        self._lane_names = {
            lane: sorted(job.name for job in catalogue.all_jobs() if job.lane is lane)
            for lane in Lane
        }
        self._apart_tasks: set[asyncio.Task[None]] = set()
        database.jobs_committed_listeners.append(self.wake)

    def wake(self) -> None:
        self._wake.set()
        self._first_wake.set()

    async def claim(
        self, limit: int = CLAIM_LIMIT, *, lane: Lane = Lane.IN_LINE
    ) -> list[ClaimedJob]:
        """Lease up to `limit` due jobs of one lane."""
        now = utcnow()
        if lane is Lane.IN_LINE:
            beside = self._lane_names[Lane.FIRST] + self._lane_names[Lane.APART]
            in_lane = OutboxJob.name.not_in(beside)
        elif self._lane_names[lane]:
            in_lane = OutboxJob.name.in_(self._lane_names[lane])
        else:
            return []
        async with self.database.transaction() as session:
            rows = (
                await session.execute(
                    select(OutboxJob.id, OutboxJob.name, OutboxJob.payload, OutboxJob.attempts)
                    .where(
                        OutboxJob.status.in_(RUNNABLE),
                        OutboxJob.run_at <= now,
                        or_(OutboxJob.locked_until.is_(None), OutboxJob.locked_until <= now),
                        in_lane,
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
                        locked_until=now + lease(self.settings),
                        attempts=OutboxJob.attempts + 1,
                        dedupe_key=None,
                    )
                )
        return [ClaimedJob(row.id, row.name, row.payload, row.attempts + 1) for row in rows]

    async def run_job(self, claimed: ClaimedJob) -> None:
        async with leases_kept(self.database, self.settings, {claimed.id}):
            await self._run_held(claimed)

    async def _run_held(self, claimed: ClaimedJob) -> None:
        error = await run_claimed(self.database, self.settings, claimed)
        if error is None:
            return
        dead = is_final_attempt(self.settings, claimed)
        await record_failure(
            self.database,
            claimed,
            error,
            status=OutboxStatus.DEAD if dead else OutboxStatus.PENDING,
            run_at=utcnow() + retry_delay(claimed.attempts),
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
        """Enqueue due schedules, then claim and run due jobs of every lane (the first lane's
        before the rest), waiting for the apart ones too; returns how many ran."""
        await self.enqueue_due_schedules()
        ran = await self._run_first() + await self._step()
        await self.idle()
        return ran

    async def _run_first(self) -> int:
        """Run due first-lane jobs one after another until none is due; returns how many."""
        ran = 0
        while claimed := await self.claim(1, lane=Lane.FIRST):
            await self.run_job(claimed[0])
            ran += 1
        return ran

    async def idle(self) -> None:
        """Wait until no apart job is running."""
        while self._apart_tasks:
            await asyncio.wait(set(self._apart_tasks))

    async def _step(self) -> int:
        """Start what apart jobs fit, then run the others in line; returns how many of both."""
        await self.enqueue_due_schedules()
        started = await self._start_apart()
        claimed = await self.claim()
        await self.run_jobs(claimed)
        return started + len(claimed)

    async def _start_apart(self) -> int:
        free = self.settings.webhook_delivery_concurrency - len(self._apart_tasks)
        if free <= 0:
            return 0
        claimed = await self.claim(free, lane=Lane.APART)
        for job in claimed:
            task = asyncio.create_task(self.run_job(job))
            self._apart_tasks.add(task)
            task.add_done_callback(self._apart_done)
        return len(claimed)

    def _apart_done(self, task: asyncio.Task[None]) -> None:
        self._apart_tasks.discard(task)
        # A slot is free: claim the next apart job now rather than at the next poll.
        self.wake()

    async def _stop_apart(self) -> None:
        for task in self._apart_tasks:
            task.cancel()
        await asyncio.gather(*self._apart_tasks, return_exceptions=True)

    async def run_jobs(self, claimed: list[ClaimedJob]) -> None:
        """Run jobs claimed together one after another, keeping every waiting one's lease."""
        held = {job.id for job in claimed}
        async with leases_kept(self.database, self.settings, held):
            for job in claimed:
                await self._run_held(job)
                held.discard(job.id)

    async def run_forever(self) -> None:
        first = asyncio.create_task(
            self._poll(self._run_first, self._first_wake), name="jobs.first_lane"
        )
        try:
            await self._poll(self._step, self._wake)
        finally:
            first.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await first
            await self._stop_apart()

    async def _poll(self, step: Callable[[], Awaitable[int]], wake: asyncio.Event) -> None:
        """Run `step` again at once while it finds work, else after a poll or a wake-up."""
        poll_seconds = self.settings.job_poll_interval_seconds
        while True:
            wake.clear()
            try:
                ran = await step()
            except Exception as error:
                # The database may be briefly unreachable; the loop must outlive that.
                log.error("jobs.runner_error", error_type=type(error).__name__)
                ran = 0
            if ran == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=poll_seconds)
