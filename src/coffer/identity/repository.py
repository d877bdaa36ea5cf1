"""Every query of the identity domain. The one row lock is in `release_phone`."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.models import AuthSession, OneTimeCode, User, UserIdentity


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()


async def get_by_phone(session: AsyncSession, phone: str) -> User | None:
    return (await session.execute(select(User).where(User.phone == phone))).scalar_one_or_none()


async def get_by_id(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_code(session: AsyncSession, code_id: uuid.UUID) -> OneTimeCode | None:
    return await session.get(OneTimeCode, code_id)


async def get_identity(session: AsyncSession, provider: str, subject: str) -> UserIdentity | None:
    return (
        await session.execute(
            select(UserIdentity).where(
                UserIdentity.provider == provider, UserIdentity.subject == subject
            )
        )
    ).scalar_one_or_none()


async def release_phone(session: AsyncSession, phone: str, *, keep: uuid.UUID) -> list[User]:
    """Take a number from everyone but `keep` (who just proved it): other claims are dropped,
    and a previous verified holder loses it. Returns those previous holders."""
    await session.execute(
        update(User)
        .where(User.pending_phone == phone, User.id != keep)
        .values(pending_phone=None)
        .execution_options(synchronize_session=False)
    )
    holders = list(
        (
            await session.execute(
                select(User).where(User.phone == phone, User.id != keep).with_for_update()
            )
        ).scalars()
    )
    for holder in holders:
        holder.phone = None
    await session.flush()
    return holders


async def ended_sessions(
    session: AsyncSession, session_ids: Collection[uuid.UUID], now: datetime, idle: timedelta
) -> dict[uuid.UUID, str]:
    """Of these sign-in sessions, the ones no longer good, each with why (one query for all:
    the websocket re-checks every open socket's credential at once)."""
    if not session_ids:
        return {}
    rows = await session.execute(
        select(
            AuthSession.id,
            AuthSession.revoked_at,
            AuthSession.expires_at,
            AuthSession.last_seen_at,
            User.is_active,
        )
        .join(User, User.id == AuthSession.user_id)
        .where(AuthSession.id.in_(list(session_ids)))
    )
    found = {row.id: row for row in rows}
    ended: dict[uuid.UUID, str] = {}
    for session_id in session_ids:
        row = found.get(session_id)
        if row is None or row.revoked_at is not None:
            ended[session_id] = "session_revoked"
        elif row.expires_at <= now or now - row.last_seen_at > idle:
            ended[session_id] = "session_expired"
        elif not row.is_active:
            ended[session_id] = "account_inactive"
    return ended
