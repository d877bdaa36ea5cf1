"""The transactional outbox and the job runner, on a fresh database per test.

Each test gets its own database so that counting outbox rows, and what `claim` picks up, is not
disturbed by jobs other tests leave behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from coffer.db import Database
from coffer.fx.service import REFRESH_JOB
from coffer.jobs import catalogue
from coffer.jobs.execution import lease
from coffer.jobs.outbox import enqueue
from coffer.jobs.registry import job
from coffer.jobs.runner import JobRunner
from coffer.kit.clock import utcnow
from coffer.models import OutboxJob, OutboxStatus, Transfer, TransferStatus
from coffer.settings import Settings
from coffer.transfers.service import (
    AcceptedTransfer,
    RecipientKind,
    TransferRequest,
    create_transfers,
)
from coffer.transfers.settlement import PROCESS_JOB, SETTLED_JOB
from coffer.webhooks.deliveries import FAN_OUT_JOB
from tests.fixtures.factories import assert_ledger_sound, fund, make_user

SUCCEEDING_JOB = "tests.runner.records_payload"
FAILING_JOB = "tests.runner.always_fails"
MAX_ATTEMPTS = 3

_ran_payloads: list[dict[str, Any]] = []


@job(SUCCEEDING_JOB)
async def _records_payload(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    _ran_payloads.append(payload)


@job(FAILING_JOB)
async def _always_fails(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    raise RuntimeError(f"cannot do {payload.get('what')}")


@pytest.fixture
def settings(backend: str, fresh_database_url: Callable[..., str]) -> Settings:
    return Settings(
        database_url=fresh_database_url(),
        job_max_attempts=MAX_ATTEMPTS,
        job_poll_interval_seconds=60,
    )


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    db = Database(settings.database_url, pool_size=5)
    yield db
    await db.dispose()


@pytest.fixture
def runner(database: Database, settings: Settings) -> JobRunner:
    return JobRunner(database, settings)


async def outbox_rows(database: Database) -> list[OutboxJob]:
    async with database.transaction() as session:
        return list((await session.scalars(select(OutboxJob).order_by(OutboxJob.id))).all())


async def enqueue_then_fail(database: Database) -> None:
    """A unit of work that enqueues a job and then fails, so it rolls back."""
    async with database.transaction() as session:
        await enqueue(session, SUCCEEDING_JOB)
        raise RuntimeError("change failed")


async def make_due_again(database: Database, job_id: int) -> None:
    """As if the retry delay had passed: the row's next run is now in the past."""
    async with database.transaction() as session:
        await session.execute(
            update(OutboxJob)
            .where(OutboxJob.id == job_id)
            .values(run_at=utcnow() - timedelta(seconds=1))
        )


async def test_enqueue_writes_one_pending_row(database: Database) -> None:
    async with database.transaction() as session:
        await enqueue(session, SUCCEEDING_JOB, {"order": 7})

    [row] = await outbox_rows(database)
    assert row.name == SUCCEEDING_JOB
    assert row.payload == {"order": 7}
    assert row.status == OutboxStatus.PENDING
    assert row.attempts == 0
    assert row.locked_until is None
    assert row.run_at <= utcnow()


async def test_enqueue_in_a_rolled_back_transaction_leaves_no_row(database: Database) -> None:
    with pytest.raises(RuntimeError, match="change failed"):
        await enqueue_then_fail(database)

    assert await outbox_rows(database) == []


async def test_enqueue_twice_with_one_dedupe_key_keeps_one_pending_row(
    database: Database,
) -> None:
    async with database.transaction() as session:
        await enqueue(session, SUCCEEDING_JOB, {"n": 1}, dedupe_key="sweep")
    async with database.transaction() as session:
        await enqueue(session, SUCCEEDING_JOB, {"n": 2}, dedupe_key="sweep")
        await enqueue(session, SUCCEEDING_JOB, {"n": 3}, dedupe_key="sweep")

    [row] = await outbox_rows(database)
    assert row.dedupe_key == "sweep"
    assert row.payload == {"n": 1}


async def test_claim_leases_rows_so_a_second_claim_gets_nothing(
    database: Database, runner: JobRunner
) -> None:
    async with database.transaction() as session:
        await enqueue(session, SUCCEEDING_JOB, {"n": 1})
        await enqueue(session, SUCCEEDING_JOB, {"n": 2})

    claimed = await runner.claim()
    again = await runner.claim()

    assert [(c.name, c.payload, c.attempts) for c in claimed] == [
        (SUCCEEDING_JOB, {"n": 1}, 1),
        (SUCCEEDING_JOB, {"n": 2}, 1),
    ]
    assert again == []
    rows = await outbox_rows(database)
    assert [row.attempts for row in rows] == [1, 1]
    assert all(
        row.locked_until is not None
        and utcnow() < row.locked_until <= utcnow() + lease(runner.settings)
        for row in rows
    )


async def test_claim_does_not_take_a_job_before_its_run_at(
    database: Database, runner: JobRunner
) -> None:
    async with database.transaction() as session:
        await enqueue(session, SUCCEEDING_JOB, run_at=utcnow() + timedelta(hours=1))

    assert await runner.claim() == []


@pytest.mark.parametrize("fresh_database_url", ["postgres"], indirect=True)
async def test_claim_skips_jobs_another_runner_holds_locked(
    fresh_database_url: Callable[..., str],
) -> None:
    settings = Settings(database_url=fresh_database_url())
    database = Database(settings.database_url, pool_size=5)
    try:
        async with database.transaction() as session:
            for n in range(4):
                await enqueue(session, SUCCEEDING_JOB, {"n": n})
        ids = [row.id for row in await outbox_rows(database)]
        async with database.engine.connect() as other_runner:
            # Another runner is mid-claim: it holds the two oldest rows locked.
            await other_runner.execute(
                select(OutboxJob.id).where(OutboxJob.id.in_(ids[:2])).with_for_update()
            )

            # Bounded, so a claim that waits on the locks fails the test instead of hanging it.
            claimed = await asyncio.wait_for(JobRunner(database, settings).claim(), timeout=30)

            await other_runner.rollback()
    finally:
        await database.dispose()

    assert [job.id for job in claimed] == ids[2:]


async def test_claim_clears_the_dedupe_key_so_new_work_enqueues_a_fresh_job(
    database: Database, runner: JobRunner
) -> None:
    async with database.transaction() as session:
        await enqueue(session, SUCCEEDING_JOB, {"n": 1}, dedupe_key="sweep")
    [claimed] = await runner.claim()

    async with database.transaction() as session:
        await enqueue(session, SUCCEEDING_JOB, {"n": 2}, dedupe_key="sweep")

    rows = await outbox_rows(database)
    assert [(row.id, row.dedupe_key, row.payload) for row in rows] == [
        (claimed.id, None, {"n": 1}),
        (rows[1].id, "sweep", {"n": 2}),
    ]


async def test_a_successful_job_runs_with_its_payload_and_its_row_is_deleted(
    database: Database, runner: JobRunner
) -> None:
    token = uuid.uuid4().hex
    async with database.transaction() as session:
        await enqueue(session, SUCCEEDING_JOB, {"token": token})
    [claimed] = await runner.claim()

    await runner.run_job(claimed)

    assert {"token": token} in _ran_payloads
    assert await outbox_rows(database) == []


async def test_a_failing_job_is_rescheduled_with_the_error_recorded(
    database: Database, runner: JobRunner
) -> None:
    async with database.transaction() as session:
        await enqueue(session, FAILING_JOB, {"what": "the thing"})
    [claimed] = await runner.claim()

    before = utcnow()
    await runner.run_job(claimed)

    [row] = await outbox_rows(database)
    assert row.status == OutboxStatus.PENDING
    assert row.attempts == 1
    assert row.last_error == "RuntimeError: cannot do the thing"
    assert row.locked_until is None
    assert row.run_at > before  # backed off, not retried at once
    assert await runner.claim() == []


async def test_jobs_claimed_together_are_deleted_together_and_a_failing_one_is_kept(
    database: Database, runner: JobRunner
) -> None:
    token = uuid.uuid4().hex
    async with database.transaction() as session:
        await enqueue(session, SUCCEEDING_JOB, {"token": token, "n": 1})
        await enqueue(session, FAILING_JOB, {"what": "the middle one"})
        await enqueue(session, SUCCEEDING_JOB, {"token": token, "n": 2})
    claimed = await runner.claim()

    await runner.run_jobs(claimed)

    assert [p["n"] for p in _ran_payloads if p.get("token") == token] == [1, 2]
    [row] = await outbox_rows(database)
    assert (row.name, row.status, row.locked_until) == (FAILING_JOB, OutboxStatus.PENDING, None)


def test_the_processor_and_the_fan_out_run_unprompted_on_their_own_interval() -> None:
    settings = Settings(job_poll_interval_seconds=0.05, job_recheck_interval_seconds=5)

    intervals = {schedule.name: schedule.interval for schedule in catalogue.schedules(settings)}

    assert intervals[PROCESS_JOB] == intervals[FAN_OUT_JOB] == timedelta(seconds=5)


async def test_a_failing_job_becomes_dead_after_the_maximum_attempts(
    database: Database, runner: JobRunner
) -> None:
    async with database.transaction() as session:
        await enqueue(session, FAILING_JOB, {"what": "it"})

    statuses = []
    for _ in range(MAX_ATTEMPTS):
        [claimed] = await runner.claim()
        await runner.run_job(claimed)
        [row] = await outbox_rows(database)
        statuses.append((row.attempts, row.status))
        await make_due_again(database, row.id)

    assert statuses == [
        (1, OutboxStatus.PENDING),
        (2, OutboxStatus.PENDING),
        (MAX_ATTEMPTS, OutboxStatus.DEAD),
    ]
    assert await runner.claim() == []  # due, but dead jobs are never claimed
    [row] = await outbox_rows(database)
    assert row.last_error == "RuntimeError: cannot do it"


async def test_an_unknown_job_fails_like_a_failing_job(
    database: Database, settings: Settings
) -> None:
    runner = JobRunner(database, settings.model_copy(update={"job_max_attempts": 1}))
    name = f"tests.runner.unknown_{uuid.uuid4().hex[:8]}"
    async with database.transaction() as session:
        await enqueue(session, name)
    [claimed] = await runner.claim()

    await runner.run_job(claimed)

    [row] = await outbox_rows(database)
    assert row.status == OutboxStatus.DEAD
    assert row.attempts == 1
    assert row.last_error is not None
    assert row.last_error.startswith("LookupError")
    assert name in row.last_error


async def test_a_commit_that_enqueued_a_job_notifies_the_listeners(database: Database) -> None:
    notified: list[str] = []
    database.jobs_committed_listeners.append(lambda: notified.append("committed"))

    async with database.transaction() as session:
        await session.execute(select(func.count()).select_from(OutboxJob))
    assert notified == []

    with pytest.raises(RuntimeError, match="change failed"):
        await enqueue_then_fail(database)
    assert notified == []

    async with database.transaction() as session:
        await enqueue(session, SUCCEEDING_JOB)
    assert notified == ["committed"]

    async with database.transaction() as session:
        await session.execute(select(func.count()).select_from(OutboxJob))
    assert notified == ["committed"]


async def _pending_transfer(database: Database) -> str:
    async with database.transaction() as session:
        sender = await make_user(session)
        recipient = await make_user(session)
        await fund(session, sender.primary_wallet, 10_000)
    async with database.transaction() as session:
        [accepted] = await create_transfers(
            session,
            [
                TransferRequest(
                    sender_user_id=sender.user.id,
                    recipient_kind=RecipientKind.WALLET_NUMBER,
                    recipient=recipient.primary_wallet.number,
                    amount="25.00",
                )
            ],
        )
    assert isinstance(accepted, AcceptedTransfer)
    return accepted.reference


async def _transfer_status(database: Database, reference: str) -> str:
    async with database.transaction() as session:
        return str(
            await session.scalar(select(Transfer.status).where(Transfer.reference == reference))
        )


SETTLE_INTERVAL_SECONDS = 2.0
"""Far longer than a processor run on a fresh database, so "at once" and "waited" differ."""


async def test_processor_runs_start_the_settle_interval_apart_and_the_first_at_once(
    database: Database, runner: JobRunner
) -> None:
    first = await _pending_transfer(database)
    started = time.monotonic()
    ran_first = await runner._run_first(SETTLE_INTERVAL_SECONDS)
    first_done = time.monotonic() - started
    second = await _pending_transfer(database)
    ran_second = await runner._run_first(SETTLE_INTERVAL_SECONDS)
    second_done = time.monotonic() - started

    assert (ran_first, ran_second) == (1, 1)
    assert first_done < SETTLE_INTERVAL_SECONDS, "the first run after a quiet spell waited"
    assert second_done >= SETTLE_INTERVAL_SECONDS, "the next run started before the interval"
    for reference in (first, second):
        assert await _transfer_status(database, reference) == TransferStatus.COMPLETED


async def test_run_once_enqueues_the_due_transfer_processor_and_runs_it(
    database: Database, runner: JobRunner
) -> None:
    reference = await _pending_transfer(database)
    # The event that announced the transfer is lost; only the schedule can find the work now.
    async with database.transaction() as session:
        await session.execute(delete(OutboxJob))

    ran = await runner.run_once()

    # Every schedule is due at start: the transfer processor among them. It runs first, so
    # the settled event it published was due by the time the other lane was claimed.
    assert PROCESS_JOB in [schedule.name for schedule in runner.schedules]
    assert ran == len(runner.schedules) + 1
    assert await _transfer_status(database, reference) == TransferStatus.COMPLETED
    # Each job's success removed its row.
    assert PROCESS_JOB not in {row.name for row in await outbox_rows(database)}
    assert SETTLED_JOB not in {row.name for row in await outbox_rows(database)}
    async with database.transaction() as session:
        await assert_ledger_sound(session)


async def test_run_once_does_not_enqueue_a_schedule_before_its_interval(
    database: Database, runner: JobRunner
) -> None:
    names = [schedule.name for schedule in runner.schedules]
    assert {REFRESH_JOB, PROCESS_JOB} <= set(names)
    assert await runner.run_once() == len(names)  # all due at start

    assert await runner.run_once() == 0
    assert await outbox_rows(database) == []


SLOW_JOB = "tests.runner.slow"
SLOW_JOB_SECONDS = 0.3
SLOW_BACKLOG = 40
"""12 s of queued work in line: far longer than the first lane may wait."""
_slow_started: dict[str, asyncio.Event] = {}
"""The running test's event (one per test: an event belongs to one test's loop)."""


@job(SLOW_JOB)
async def _slow(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    _slow_started["event"].set()
    await asyncio.sleep(SLOW_JOB_SECONDS)


async def test_a_transfer_settles_while_a_backlog_of_other_jobs_is_still_queued(
    database: Database, settings: Settings
) -> None:
    started = _slow_started["event"] = asyncio.Event()
    async with database.transaction() as session:
        for number in range(SLOW_BACKLOG):
            await enqueue(session, SLOW_JOB, {"n": number})
    runner = JobRunner(database, settings.model_copy(update={"job_poll_interval_seconds": 0.05}))
    running = asyncio.create_task(runner.run_forever())
    try:
        await asyncio.wait_for(started.wait(), timeout=30)
        reference = await _pending_transfer(database)  # its processor job is queued last
        for _ in range(100):
            if await _transfer_status(database, reference) == TransferStatus.COMPLETED:
                break
            await asyncio.sleep(0.05)
        left = sum(row.name == SLOW_JOB for row in await outbox_rows(database))
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running

    assert await _transfer_status(database, reference) == TransferStatus.COMPLETED
    assert left > SLOW_BACKLOG // 2, "the transfer waited for the backlog to drain"
    async with database.transaction() as session:
        await assert_ledger_sound(session)
