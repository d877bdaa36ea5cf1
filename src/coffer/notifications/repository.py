"""Every query of the notifications domain."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.kit.clock import utcnow
from coffer.ledger.repository import is_postgres
from coffer.models import Base, NotificationPreference, SentNotification, User

_sent = Base.metadata.tables[SentNotification.__tablename__]
_preferences = Base.metadata.tables[NotificationPreference.__tablename__]


async def recipients(
    session: AsyncSession, user_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, bool]]:
    """Each user's address and whether they take activity emails (yes unless they said no)."""
    if not user_ids:
        return {}
    rows = await session.execute(
        select(User.id, User.email, NotificationPreference.activity_emails)
        .outerjoin(NotificationPreference, NotificationPreference.user_id == User.id)
        .where(User.id.in_(user_ids))
    )
    return {row.id: (row.email, row.activity_emails is not False) for row in rows}


async def claim_dedupe_keys(session: AsyncSession, keys: Collection[str]) -> set[str]:
    """The keys claimed now (not before); the rows commit with the queued emails."""
    if not keys:
        return set()
    dialect_insert = postgresql.insert if is_postgres(session) else sqlite.insert
    now = utcnow()
    inserted = await session.execute(
        dialect_insert(_sent)
        .values([{"dedupe_key": key, "created_at": now} for key in keys])
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(_sent.c.dedupe_key)
    )
    return set(inserted.scalars())


async def set_activity_emails(session: AsyncSession, user_id: uuid.UUID, enabled: bool) -> None:
    dialect_insert = postgresql.insert if is_postgres(session) else sqlite.insert
    statement = dialect_insert(_preferences).values(
        user_id=user_id, activity_emails=enabled, updated_at=utcnow()
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["user_id"],
            set_={"activity_emails": enabled, "updated_at": statement.excluded.updated_at},
        )
    )
