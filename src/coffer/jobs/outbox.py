"""Enqueueing: a job is a row written in the caller's transaction, so it exists exactly when
the change it follows is committed. The runner (or, scaled, Celery) consumes the rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import JOBS_ENQUEUED
from coffer.kit.clock import utcnow
from coffer.ledger.repository import is_postgres
from coffer.models import Base, OutboxJob, OutboxStatus

_outbox = Base.metadata.tables[OutboxJob.__tablename__]


async def enqueue(
    session: AsyncSession,
    name: str,
    payload: dict[str, Any] | None = None,
    *,
    dedupe_key: str | None = None,
    run_at: datetime | None = None,
) -> None:
    """Add a job to the outbox in the caller's transaction.

    With a `dedupe_key`, at most one such job waits at a time: a second enqueue while one is
    waiting does nothing (the waiting one will see the new work).
    """
    now = utcnow()
    values = {
        "name": name,
        "payload": payload or {},
        "dedupe_key": dedupe_key,
        "status": OutboxStatus.PENDING,
        "run_at": run_at or now,
        "attempts": 0,
        "created_at": now,
    }
    dialect_insert = postgresql.insert if is_postgres(session) else sqlite.insert
    statement = dialect_insert(_outbox).values(**values)
    if dedupe_key is not None:
        statement = statement.on_conflict_do_nothing(index_elements=["dedupe_key"])
    await session.execute(statement)
    session.info[JOBS_ENQUEUED] = True


async def enqueue_many(
    session: AsyncSession, name: str, payloads: Sequence[dict[str, Any]]
) -> None:
    """Add one job per payload in one statement (no dedupe key: each is its own job)."""
    if not payloads:
        return
    now = utcnow()
    await session.execute(
        insert(_outbox),
        [
            {
                "name": name,
                "payload": payload,
                "dedupe_key": None,
                "status": OutboxStatus.PENDING,
                "run_at": now,
                "attempts": 0,
                "created_at": now,
            }
            for payload in payloads
        ],
    )
    session.info[JOBS_ENQUEUED] = True
