"""The purge job: expired Idempotency-Key records are deleted in bounded batches."""

from __future__ import annotations

from typing import Any

import structlog

from coffer.db import Database
from coffer.idempotency.service import PURGE_BATCH, PURGE_JOB, purge_expired
from coffer.jobs.registry import job
from coffer.settings import Settings

log = structlog.get_logger(__name__)

MAX_BATCHES_PER_RUN = 20


@job(PURGE_JOB)
async def run_purge(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    deleted = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        async with database.transaction() as session:
            batch = await purge_expired(session)
        deleted += batch
        if batch < PURGE_BATCH:
            break
    if deleted:
        log.info("idempotency.purged", deleted=deleted)
