"""Admin reads that belong to no other domain: the dead jobs of the outbox."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.admin import repository
from coffer.kit.pagination import decode_cursor, encode_cursor
from coffer.models import OutboxJob


async def dead_jobs(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> tuple[Sequence[OutboxJob], str | None]:
    before_id = decode_cursor(cursor, int)[0] if cursor is not None else None
    rows = await repository.dead_jobs(session, before_id=before_id, limit=limit + 1)
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor(rows[limit - 1].id)
