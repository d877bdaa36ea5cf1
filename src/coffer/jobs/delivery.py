"""One Celery delivery of an outbox row: claim it, run its job, and decide about a retry.

Celery retries with exponential backoff and full jitter; the outbox row counts the attempts,
so the limit holds across redeliveries and sweeps, and after the last one the row is dead for
an operator (`coffer jobs dead`, `coffer jobs retry ID`).
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from celery.utils.time import get_exponential_backoff_interval

from coffer.db import Database
from coffer.jobs import repository
from coffer.jobs.execution import (
    ClaimedJob,
    is_final_attempt,
    lease,
    leases_kept,
    record_failure,
    run_claimed,
)
from coffer.kit.clock import utcnow
from coffer.models import OutboxStatus
from coffer.settings import Settings

log = structlog.get_logger(__name__)

BACKOFF_FACTOR_SECONDS = 2
MAX_BACKOFF_SECONDS = 1800


async def deliver(database: Database, settings: Settings, job_id: int) -> int | None:
    """Run the job a message names; returns the retry countdown in seconds, or None when
    there is nothing more to do (done, dead, or a duplicate delivery)."""
    async with database.transaction() as session:
        row = await repository.claim_one(session, job_id, lease(settings))
    if row is None:
        log.info("jobs.delivery_skipped", job_id=job_id)
        return None
    claimed = ClaimedJob(*row)
    async with leases_kept(database, settings, {claimed.id}):
        error = await run_claimed(database, settings, claimed)
    if error is None:
        return None
    now = utcnow()
    if is_final_attempt(settings, claimed):
        await record_failure(database, claimed, error, status=OutboxStatus.DEAD, run_at=now)
        return None
    countdown = get_exponential_backoff_interval(
        BACKOFF_FACTOR_SECONDS, claimed.attempts, MAX_BACKOFF_SECONDS, full_jitter=True
    )
    # The retry message is due in `countdown`; the sweeper steps in only if it never comes.
    redeliver_at = now + timedelta(seconds=countdown + settings.outbox_redeliver_after_seconds)
    await record_failure(database, claimed, error, status=OutboxStatus.SENT, run_at=redeliver_at)
    return int(countdown)
