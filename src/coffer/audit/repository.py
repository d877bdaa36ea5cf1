"""Every query of the audit log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.models import AuditChainHead, AuditEvent, Base, User

_events = Base.metadata.tables[AuditEvent.__tablename__]
HEAD_ID = 1
_WALK_BATCH = 1000


async def get_head_for_update(session: AsyncSession) -> AuditChainHead:
    """The chain head, locked until the caller's transaction ends: appends queue here, so no
    two chain to the same predecessor. (SQLite write transactions are serial already.)"""
    head = (
        await session.execute(
            select(AuditChainHead)
            .where(AuditChainHead.id == HEAD_ID)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    return head


async def append(session: AsyncSession, values: dict[str, Any]) -> int:
    event_id = (
        await session.execute(insert(_events).values(**values).returning(_events.c.id))
    ).scalar_one()
    await session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == HEAD_ID)
        .values(last_event_id=event_id, last_hash=values["hash"])
        .execution_options(synchronize_session=False)
    )
    return int(event_id)


async def get_head(session: AsyncSession) -> AuditChainHead:
    return (
        await session.execute(
            select(AuditChainHead)
            .where(AuditChainHead.id == HEAD_ID)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()


async def walk(session: AsyncSession) -> AsyncIterator[AuditEvent]:
    """Every event, oldest first, read in keyset batches."""
    after = 0
    while True:
        rows = (
            (
                await session.execute(
                    select(AuditEvent)
                    .where(AuditEvent.id > after)
                    .order_by(AuditEvent.id)
                    .limit(_WALK_BATCH)
                    .execution_options(populate_existing=True)
                )
            )
            .scalars()
            .all()
        )
        for row in rows:
            yield row
        if len(rows) < _WALK_BATCH:
            return
        after = rows[-1].id


async def page(
    session: AsyncSession,
    *,
    limit: int,
    before_id: int | None,
    subject_user_id: uuid.UUID | None = None,
    actions: Sequence[str] | None = None,
) -> Sequence[AuditEvent]:
    """Newest first, keyset on id."""
    query = select(AuditEvent)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    if subject_user_id is not None:
        query = query.where(AuditEvent.subject_user_id == subject_user_id)
    if actions is not None:
        query = query.where(AuditEvent.action.in_(actions))
    return (
        (await session.execute(query.order_by(AuditEvent.id.desc()).limit(limit))).scalars().all()
    )


async def recent_details(
    session: AsyncSession, user_id: uuid.UUID, action: str, *, limit: int
) -> list[dict[str, Any]]:
    """The details of the user's latest events of one kind, newest first."""
    rows = await session.execute(
        select(AuditEvent.details)
        .where(AuditEvent.subject_user_id == user_id, AuditEvent.action == action)
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )
    return [dict(details) for details in rows.scalars()]


async def user_id_by_email_or_phone(session: AsyncSession, account: str) -> uuid.UUID | None:
    return (
        await session.execute(
            select(User.id).where(or_(User.email == account, User.phone == account))
        )
    ).scalar_one_or_none()
