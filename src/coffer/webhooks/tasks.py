"""Webhook jobs: the fan-out from events to deliveries (cheap, database only) and one
delivery attempt (an HTTP call, run apart from other jobs and bounded by its timeout)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog

from coffer.db import Database
from coffer.jobs.registry import Lane, job
from coffer.kit.clock import utcnow
from coffer.settings import Settings
from coffer.webhooks import sender
from coffer.webhooks.deliveries import (
    DELIVER_JOB,
    FAN_OUT_BATCH,
    FAN_OUT_JOB,
    attempt_headers,
    fan_out,
    prepare_attempt,
    record_outcome,
)

log = structlog.get_logger(__name__)

MAX_FAN_OUT_BATCHES_PER_RUN = 20


@job(FAN_OUT_JOB, every=lambda settings: timedelta(seconds=settings.job_recheck_interval_seconds))
async def run_fan_out(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    for _ in range(MAX_FAN_OUT_BATCHES_PER_RUN):
        async with database.transaction() as session:
            read = await fan_out(session)
        if read < FAN_OUT_BATCH:
            return


@job(DELIVER_JOB, lane=Lane.APART)
async def deliver(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    """One attempt; its outcome (whatever the receiver did) is recorded, never raised, so the
    delivery's own schedule, not the job runner's, decides when to try again."""
    async with database.transaction() as session:
        prepared = await prepare_attempt(
            session, settings, int(payload["delivery_id"]), is_resend=bool(payload.get("resend"))
        )
    if prepared is None:
        return
    attempted_at = utcnow()
    headers = attempt_headers(prepared, int(attempted_at.timestamp()))
    outcome = await sender.attempt(settings, prepared.url, headers, prepared.body)
    async with database.transaction() as session:
        await record_outcome(session, settings, prepared, outcome, attempted_at)
    log.info(
        "webhooks.attempted",
        delivery_id=prepared.delivery_id,
        succeeded=outcome.succeeded,
        response_status=outcome.response_status,
        error=outcome.error,
        latency_ms=outcome.latency_ms,
    )
