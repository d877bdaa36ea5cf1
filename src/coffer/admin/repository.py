"""Every query of the admin domain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.models import AuthSession, OutboxJob, OutboxStatus, Role, User, Wallet


async def search_users(
    session: AsyncSession, query: str | None, *, after_email: str | None, limit: int
) -> Sequence[User]:
    """Users whose email, phone or name contains `query`, or who hold the wallet numbered
    `query`; in email order (keyset: the email is unique)."""
    statement = select(User)
    if query:
        needle = f"%{query.lower()}%"
        statement = statement.where(
            or_(
                User.email.like(needle),
                User.phone.like(f"%{query}%"),
                func.lower(User.first_name).like(needle),
                func.lower(User.last_name).like(needle),
                User.id.in_(select(Wallet.user_id).where(Wallet.number == query)),
            )
        )
    if after_email is not None:
        statement = statement.where(User.email > after_email)
    return (await session.execute(statement.order_by(User.email).limit(limit))).scalars().all()


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def open_sessions(
    session: AsyncSession, user_id: uuid.UUID, now: datetime
) -> Sequence[AuthSession]:
    return (
        (
            await session.execute(
                select(AuthSession)
                .where(
                    AuthSession.user_id == user_id,
                    AuthSession.revoked_at.is_(None),
                    AuthSession.expires_at > now,
                )
                .order_by(AuthSession.created_at.desc())
                .limit(100)
            )
        )
        .scalars()
        .all()
    )


async def lock_admins(session: AsyncSession) -> Sequence[uuid.UUID]:
    """The active admins, locked: two demotions at once cannot both leave one admin less
    than needed."""
    rows = await session.execute(
        select(User.id)
        .where(User.role == Role.ADMIN, User.is_active.is_(True))
        .order_by(User.id)
        .with_for_update()
    )
    return list(rows.scalars())


async def dead_jobs(
    session: AsyncSession, *, before_id: int | None, limit: int
) -> Sequence[OutboxJob]:
    statement = select(OutboxJob).where(OutboxJob.status == OutboxStatus.DEAD)
    if before_id is not None:
        statement = statement.where(OutboxJob.id < before_id)
    return (
        (await session.execute(statement.order_by(OutboxJob.id.desc()).limit(limit)))
        .scalars()
        .all()
    )
