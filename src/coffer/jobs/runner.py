"""The database job runner: claims due outbox rows, runs their jobs, and keeps the schedules.

It runs inside the API process in embedded mode (started by the lifespan) or alone as
`coffer worker` when no broker is configured. Several runners may share one database: a claim
takes rows with `FOR UPDATE SKIP LOCKED` (SQLite serializes claims instead) and leases them, so
each job runs once at a time; a runner that dies loses its lease within seconds and another
picks the job up.

Each job has a lane (coffer.jobs.registry.Lane), and no lane waits behind another's queue:
- `FIRST` (the transfer processor) is claimed one job at a time by a loop of its own beside
  the others, so settling money never waits behind thousands of queued emails; under a steady
  stream of transfers, its runs start COFFER_TRANSFER_SETTLE_INTERVAL_SECONDS apart, so each
  settles what gathered meanwhile in one transaction instead of one or two transfers each;
- `APART` (webhook deliveries, which wait on other people's servers) runs as tasks beside the
  others, at most COFFER_WEBHOOK_DELIVERY_CONCURRENCY at once: a receiver that takes its whole
  timeout delays no transfer, email or fee job;
- `IN_LINE` (everything else) is claimed in chunks, oldest first, and run one after another.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import BindParameter, ColumnElement, Update, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import Database
from coffer.jobs import catalogue, repository
from coffer.jobs.execution import (
    ClaimedJob,
    finish,
    is_final_attempt,
    lease,
    leases_kept,
    record_failure,
    run_unfinished,
)
from coffer.jobs.outbox import enqueue
from coffer.jobs.registry import Lane
from coffer.kit.clock import utcnow
from coffer.models import Base, OutboxJob, OutboxStatus
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


_outbox = Base.metadata.tables[OutboxJob.__tablename__]


def _claim_statement(in_lane: ColumnElement[bool]) -> Update:
    """One statement (built once per lane; the poll runs it many times a second) that leases
    up to `claim_limit` due rows of a lane, oldest first, skipping rows another runner holds.
    Clearing the dedupe key lets new work enqueue a fresh job while this one runs."""
    now: BindParameter[datetime] = bindparam("now")
    due = (
        select(_outbox.c.id)
        .where(
            _outbox.c.status.in_(RUNNABLE),
            _outbox.c.run_at <= now,
            or_(_outbox.c.locked_until.is_(None), _outbox.c.locked_until <= now),
            in_lane,
        )
        .order_by(_outbox.c.run_at, _outbox.c.id)
        .limit(bindparam("claim_limit"))
        .with_for_update(skip_locked=True)
    )
    return (
        update(_outbox)
        .where(_outbox.c.id.in_(due.scalar_subquery()))
        .values(
            locked_until=bindparam("locked_until"),
            attempts=_outbox.c.attempts + 1,
            dedupe_key=None,
        )
        .returning(
            _outbox.c.id,
            _outbox.c.name,
            _outbox.c.payload,
            _outbox.c.attempts,
            _outbox.c.run_at,
        )
    )


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
        self._first_not_before = 0.0
        """Event-loop time before which `run_forever` starts no further first-lane job."""
        self._lane_names = {
            lane: sorted(job.name for job in catalogue.all_jobs() if job.lane is lane)
            for lane in Lane
        }
        beside = self._lane_names[Lane.FIRST] + self._lane_names[Lane.APART]
        self._claims = {
            Lane.IN_LINE: _claim_statement(_outbox.c.name.not_in(beside)),
            **{
                lane: _claim_statement(_outbox.c.name.in_(self._lane_names[lane]))
                if self._lane_names[lane]
                else None
                for lane in (Lane.FIRST, Lane.APART)
            },
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
        async with self.database.transaction() as session:
            return await self._claim_in(session, limit, lane)

    async def _claim_in(self, session: AsyncSession, limit: int, lane: Lane) -> list[ClaimedJob]:
        statement = self._claims[lane]
        if limit <= 0 or statement is None:
            return []
        now = utcnow()
        rows = (
            await session.execute(
                statement,
                {"now": now, "claim_limit": limit, "locked_until": now + lease(self.settings)},
            )
        ).all()
        return [
            ClaimedJob(row.id, row.name, row.payload, row.attempts)
            for row in sorted(rows, key=lambda row: (row.run_at, row.id))
        ]

    async def run_job(self, claimed: ClaimedJob) -> None:
        async with leases_kept(self.database, self.settings, {claimed.id}):
            if await self._run_held(claimed):
                await finish(self.database, [claimed.id])

    async def _run_held(self, claimed: ClaimedJob) -> bool:
        """Run the job; True when it ran to the end (its row is the caller's to finish), else
        its failure is recorded."""
        error = await run_unfinished(self.database, self.settings, claimed)
        if error is None:
            return True
        dead = is_final_attempt(self.settings, claimed)
        await record_failure(
            self.database,
            claimed,
            error,
            status=OutboxStatus.DEAD if dead else OutboxStatus.PENDING,
            run_at=utcnow() + retry_delay(claimed.attempts),
        )
        return False

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

    async def _run_first(self, pace_seconds: float = 0.0) -> int:
        """Run due first-lane jobs one after another until none is due; returns how many.
        Each finished job's row is deleted in the transaction that claims the next.

        With `pace_seconds`, a job starts no sooner than that after the previous one started,
        across calls: the first after a quiet spell starts as soon as it is claimed."""
        ran = 0
        finished: list[int] = []
        loop = asyncio.get_running_loop()
        while True:
            async with self.database.transaction() as session:
                if finished:
                    await repository.finish(session, finished)
                claimed = await self._claim_in(session, 1, Lane.FIRST)
            if not claimed:
                return ran
            async with leases_kept(self.database, self.settings, {claimed[0].id}):
                # What arrives while the job waits is settled by it.
                wait = self._first_not_before - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._first_not_before = loop.time() + pace_seconds
                finished = [claimed[0].id] if await self._run_held(claimed[0]) else []
            ran += 1

    async def idle(self) -> None:
        """Wait until no apart job is running."""
        while self._apart_tasks:
            await asyncio.wait(set(self._apart_tasks))

    async def _step(self) -> int:
        """Start what apart jobs fit, then run the others in line; returns how many of both.
        Both lanes are claimed in one transaction: an idle poll costs one."""
        await self.enqueue_due_schedules()
        free = self.settings.webhook_delivery_concurrency - len(self._apart_tasks)
        async with self.database.transaction() as session:
            apart = await self._claim_in(session, free, Lane.APART)
            in_line = await self._claim_in(session, CLAIM_LIMIT, Lane.IN_LINE)
        for job in apart:
            task = asyncio.create_task(self.run_job(job))
            self._apart_tasks.add(task)
            task.add_done_callback(self._apart_done)
        await self.run_jobs(in_line)
        return len(apart) + len(in_line)

    def _apart_done(self, task: asyncio.Task[None]) -> None:
        self._apart_tasks.discard(task)
        # A slot is free: claim the next apart job now rather than at the next poll.
        self.wake()

    async def _stop_apart(self) -> None:
        for task in self._apart_tasks:
            task.cancel()
        await asyncio.gather(*self._apart_tasks, return_exceptions=True)

    async def run_jobs(self, claimed: list[ClaimedJob]) -> None:
        """Run jobs claimed together one after another, keeping every waiting one's lease, and
        delete the rows of those that ran to the end in one statement when the last is done.

        A worker that dies mid-chunk leaves its finished jobs to run again once their lease
        lapses: at least once, as after a lost acknowledgement (every job is idempotent; an
        email may go twice). Deleting per job cost a transaction per email.
        """
        held = {job.id for job in claimed}
        succeeded: list[int] = []
        async with leases_kept(self.database, self.settings, held):
            for job in claimed:
                if await self._run_held(job):
                    succeeded.append(job.id)
                else:
                    held.discard(job.id)
            await finish(self.database, succeeded)

    async def run_forever(self) -> None:
        paced = functools.partial(self._run_first, self.settings.transfer_settle_interval_seconds)
        first = asyncio.create_task(self._poll(paced, self._first_wake), name="jobs.first_lane")
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
