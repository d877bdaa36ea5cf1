"""Admin work that belongs to no other domain: the dead jobs of the outbox."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.admin import repository
from coffer.audit.service import Action, record
from coffer.errors import AppError
from coffer.jobs import repository as jobs_repository
from coffer.kit.pagination import decode_cursor, encode_cursor
from coffer.models import OutboxJob


class DeadJobNotFound(AppError):
    code = "dead_job_not_found"
    http_status = 404
    default_message = "No dead job has this id (it may have been retried already)"


async def dead_jobs(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> tuple[Sequence[OutboxJob], str | None]:
    before_id = decode_cursor(cursor, int)[0] if cursor is not None else None
    rows = await repository.dead_jobs(session, before_id=before_id, limit=limit + 1)
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor(rows[limit - 1].id)


async def retry_dead_job(session: AsyncSession, job_id: int, *, actor: str) -> None:
    """Give a dead job fresh attempts, due now (as `coffer jobs retry`), and audit it. With a
    broker, the relay's sweep publishes it."""
    if not await jobs_repository.revive(session, job_id):
        raise DeadJobNotFound()
    await record(
        session, Action.JOB_RETRIED, actor=actor, subject_user_id=None, details={"job_id": job_id}
    )
