"""The outbox statements of the scaled mode and of operators: claiming one delivered row,
publishing, and dead jobs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.kit.clock import utcnow
from coffer.models import OutboxJob, OutboxStatus

LIVE = (OutboxStatus.PENDING, OutboxStatus.SENT)


def _unleased(now: datetime) -> Any:
    return or_(OutboxJob.locked_until.is_(None), OutboxJob.locked_until <= now)


async def claim_one(
    session: AsyncSession, job_id: int, lease: timedelta
) -> tuple[int, str, dict[str, Any], int] | None:
    """Lease the row a message names, unless it is done, dead or leased by another worker
    (a duplicate delivery): then None. Clears the dedupe key, as the runner's claim does."""
    now = utcnow()
    row = (
        await session.execute(
            update(OutboxJob)
            .where(OutboxJob.id == job_id, OutboxJob.status.in_(LIVE), _unleased(now))
            .values(locked_until=now + lease, attempts=OutboxJob.attempts + 1, dedupe_key=None)
            .returning(OutboxJob.id, OutboxJob.name, OutboxJob.payload, OutboxJob.attempts)
        )
    ).first()
    return None if row is None else (row.id, row.name, row.payload, row.attempts)


async def renew_leases(session: AsyncSession, job_ids: list[int], lease: timedelta) -> None:
    await session.execute(
        update(OutboxJob).where(OutboxJob.id.in_(job_ids)).values(locked_until=utcnow() + lease)
    )


async def finish(session: AsyncSession, job_ids: list[int]) -> None:
    await session.execute(delete(OutboxJob).where(OutboxJob.id.in_(job_ids)))


async def store_failure(session: AsyncSession, job_id: int, values: dict[str, Any]) -> None:
    await session.execute(update(OutboxJob).where(OutboxJob.id == job_id).values(**values))


async def lock_due_for_publishing(session: AsyncSession, limit: int) -> list[tuple[int, str]]:
    """Rows to publish: pending ones that are due, and sent ones no worker finished by their
    redelivery time. Locked, so concurrent relays publish each row once per round."""
    now = utcnow()
    rows = (
        await session.execute(
            select(OutboxJob.id, OutboxJob.name)
            .where(OutboxJob.status.in_(LIVE), OutboxJob.run_at <= now, _unleased(now))
            .order_by(OutboxJob.run_at, OutboxJob.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    return [(row.id, row.name) for row in rows]


async def mark_sent(session: AsyncSession, job_ids: list[int], redeliver_at: datetime) -> None:
    await session.execute(
        update(OutboxJob)
        .where(OutboxJob.id.in_(job_ids))
        .values(status=OutboxStatus.SENT, run_at=redeliver_at)
    )


async def dead_jobs(session: AsyncSession, limit: int) -> list[OutboxJob]:
    return list(
        (
            await session.scalars(
                select(OutboxJob)
                .where(OutboxJob.status == OutboxStatus.DEAD)
                .order_by(OutboxJob.id)
                .limit(limit)
            )
        ).all()
    )


async def revive(session: AsyncSession, job_id: int) -> bool:
    """Make a dead job pending and due now, with fresh attempts; False if it is not dead."""
    result = await session.execute(
        update(OutboxJob)
        .where(OutboxJob.id == job_id, OutboxJob.status == OutboxStatus.DEAD)
        .values(status=OutboxStatus.PENDING, attempts=0, run_at=utcnow(), locked_until=None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def outbox_counts(session: AsyncSession) -> list[tuple[str, str, int]]:
    """(job name, status, rows) for every pair present."""
    rows = (
        await session.execute(
            select(OutboxJob.name, OutboxJob.status, func.count())
            .group_by(OutboxJob.name, OutboxJob.status)
            .order_by(OutboxJob.name, OutboxJob.status)
        )
    ).all()
    return [(name, status, int(count)) for name, status, count in rows]
