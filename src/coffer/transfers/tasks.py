"""The transfer processor job: settle pending transfers batch by batch, one commit per batch
(and per linked batch)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog

from coffer.db import Database
from coffer.jobs.outbox import enqueue
from coffer.jobs.registry import Lane, job
from coffer.settings import Settings
from coffer.transfers.repository import linked_batch_waiting
from coffer.transfers.settlement import (
    PROCESS_JOB,
    BatchReport,
    process_batch,
    process_linked_batch,
)

log = structlog.get_logger(__name__)

MAX_BATCHES_PER_RUN = 50
"""A bound on one run, so a busy queue cannot hold a job lease forever; a run that stops at
the bound enqueues its successor."""


async def process_pending(database: Database, batch_size: int) -> BatchReport:
    """Run batches until the queue is empty (or the bound is reached); returns the totals.

    Each round settles a batch of ordinary transfers and, when one waits, one linked batch's
    group, each in a transaction of its own (the ordinary batch's transaction looks whether
    one waits, so a round without linked batches costs one transaction).
    """
    claimed = completed = failed = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        async with database.transaction() as session:
            report = await process_batch(session, batch_size)
            linked_waiting = await linked_batch_waiting(session)
        group = BatchReport(0, 0, 0)
        if linked_waiting:
            async with database.transaction() as session:
                group = await process_linked_batch(session)
        claimed, completed, failed = (
            claimed + report.claimed + group.claimed,
            completed + report.completed + group.completed,
            failed + report.failed + group.failed,
        )
        if report.claimed < batch_size and not group.claimed:
            break
    else:
        async with database.transaction() as session:
            await enqueue(session, PROCESS_JOB, dedupe_key=PROCESS_JOB)
    if claimed:
        log.info("transfers.processed", claimed=claimed, completed=completed, failed=failed)
    return BatchReport(claimed, completed, failed)


@job(
    PROCESS_JOB,
    every=lambda settings: timedelta(seconds=settings.job_recheck_interval_seconds),
    lane=Lane.FIRST,
)
async def run_processor(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    await process_pending(database, settings.transfer_batch_size)
