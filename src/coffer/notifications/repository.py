"""Every query of the notifications domain."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.kit.clock import utcnow
from coffer.ledger.repository import is_postgres
from coffer.models import Base, NotificationPreference, SentNotification, User

_sent = Base.metadata.tables[SentNotification.__tablename__]
_preferences = Base.metadata.tables[NotificationPreference.__tablename__]


async def recipient(session: AsyncSession, user_id: uuid.UUID) -> tuple[str, bool] | None:
    """The user's address and whether they take activity emails (yes unless they said no)."""
    row = (
        await session.execute(
            select(User.email, NotificationPreference.activity_emails)
            .outerjoin(NotificationPreference, NotificationPreference.user_id == User.id)
            .where(User.id == user_id)
        )
    ).one_or_none()
    if row is None:
        return None
    return row.email, row.activity_emails is not False


async def claim_dedupe_key(session: AsyncSession, key: str) -> bool:
    """True the first time `key` is claimed; the row commits with the queued email."""
    dialect_insert = postgresql.insert if is_postgres(session) else sqlite.insert
    inserted = await session.execute(
        dialect_insert(_sent)
        .values(dedupe_key=key, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(_sent.c.dedupe_key)
    )
    return inserted.first() is not None


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
