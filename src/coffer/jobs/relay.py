"""The outbox relay: publishes committed outbox rows to the Celery broker and marks them sent.

It runs after every commit that enqueued a job (in API processes and in workers) and, from
beat, as the sweeper: rows still pending (the broker was down, the process died between commit
and publish, a delayed job fell due) and rows sent but not finished within
`COFFER_OUTBOX_REDELIVER_AFTER_SECONDS` are published again. A message only names its row;
the worker reads the payload from the database, so a duplicate is harmless (the row is gone or
leased) and no payload, sealed or not, sits in the broker.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from celery import Celery

from coffer.db import Database
from coffer.jobs import catalogue, repository
from coffer.kit.clock import utcnow
from coffer.settings import Settings

log = structlog.get_logger(__name__)

PUBLISH_BATCH = 500


class Relay:
    def __init__(self, database: Database, settings: Settings, celery: Celery) -> None:
        self.database = database
        self.settings = settings
        self.celery = celery
        self._lock = asyncio.Lock()
        self._again = False
        self._task: asyncio.Task[None] | None = None

    def _send(self, rows: list[tuple[int, str]]) -> list[int]:
        """Publish in order until the broker refuses; returns the ids it took."""
        sent: list[int] = []
        try:
            for job_id, name in rows:
                self.celery.send_task(
                    name, args=[job_id], queue=catalogue.celery_queue(self.settings, name)
                )
                sent.append(job_id)
        except Exception as error:
            # The rows stay pending: the sweeper publishes them once the broker is back.
            log.warning(
                "outbox.broker_unavailable",
                unsent=len(rows) - len(sent),
                error_type=type(error).__name__,
            )
        return sent

    async def publish_due(self) -> int:
        """Publish every row due for publishing; returns how many were published."""
        published = 0
        async with self._lock:
            while True:
                async with self.database.transaction() as session:
                    rows = await repository.lock_due_for_publishing(session, PUBLISH_BATCH)
                    sent = await asyncio.to_thread(self._send, rows) if rows else []
                    if sent:
                        redeliver_at = utcnow() + timedelta(
                            seconds=self.settings.outbox_redeliver_after_seconds
                        )
                        await repository.mark_sent(session, sent, redeliver_at)
                published += len(sent)
                if len(rows) < PUBLISH_BATCH or len(sent) < len(rows):
                    return published

    def wake(self) -> None:
        """After a commit that enqueued jobs: publish soon, without delaying the caller."""
        self._again = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._again:
            self._again = False
            try:
                await self.publish_due()
            except Exception as error:
                # The database is unreachable: the sweeper retries later.
                log.warning("outbox.relay_failed", error_type=type(error).__name__)

    async def idle(self) -> None:
        """Wait for a publish that a wake started (a worker, before its task returns)."""
        if self._task is not None:
            await self._task
