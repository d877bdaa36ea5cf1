"""Every query of the API keys domain. The one row lock is `lock_owner_for_update`."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import ResultRow
from coffer.models import ApiKey, User


async def lock_owner_for_update(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Serialize key changes per user, so two requests cannot both take the fifth slot.
    (SQLite needs no lock: its write transactions are already serial.)"""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())


async def count_active(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> int:
    return (
        await session.execute(
            select(func.count())
            .select_from(ApiKey)
            .where(
                ApiKey.user_id == user_id,
                ApiKey.revoked_at.is_(None),
                ApiKey.expires_at > now,
            )
        )
    ).scalar_one()


async def get_owned(session: AsyncSession, user_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
    return (
        await session.execute(select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id))
    ).scalar_one_or_none()


async def get_by_id(session: AsyncSession, key_id: uuid.UUID) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def claim_rollover(session: AsyncSession, key_id: uuid.UUID, now: datetime) -> bool:
    claimed = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.rolled_over_at.is_(None), ApiKey.revoked_at.is_(None))
        .values(rolled_over_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]


async def list_owned(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
) -> Sequence[ApiKey]:
    """Newest first, by (created_at, id), starting after `before`."""
    query = select(ApiKey).where(ApiKey.user_id == user_id)
    if before is not None:
        query = query.where(tuple_(ApiKey.created_at, ApiKey.id) < tuple_(*before))
    query = query.order_by(ApiKey.created_at.desc(), ApiKey.id.desc()).limit(limit)
    return (await session.execute(query)).scalars().all()


async def find_for_authentication(session: AsyncSession, prefix: str) -> ResultRow | None:
    """One indexed lookup: the key with this display prefix and its owner's state."""
    return (
        await session.execute(
            select(
                ApiKey.id,
                ApiKey.user_id,
                ApiKey.key_hash,
                ApiKey.permissions,
                ApiKey.expires_at,
                ApiKey.revoked_at,
                ApiKey.last_used_at,
                User.role,
                User.is_active,
            )
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.prefix == prefix)
        )
    ).one_or_none()


async def touch(
    session: AsyncSession, key_id: uuid.UUID, now: datetime, stale_before: datetime
) -> None:
    """Record use, unless it was recorded within the interval; a row another request is
    touching right now is skipped rather than waited for."""
    stale = (
        select(ApiKey.id)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < stale_before),
        )
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    await session.execute(update(ApiKey).where(ApiKey.id == stale).values(last_used_at=now))


async def revoke_all_owned(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def ended_keys(
    session: AsyncSession, key_ids: Collection[uuid.UUID], now: datetime
) -> dict[uuid.UUID, str]:
    """Of these keys, the ones no longer good, each with why (one query for all)."""
    if not key_ids:
        return {}
    rows = await session.execute(
        select(ApiKey.id, ApiKey.revoked_at, ApiKey.expires_at, User.is_active)
        .join(User, User.id == ApiKey.user_id)
        .where(ApiKey.id.in_(list(key_ids)))
    )
    found = {row.id: row for row in rows}
    ended: dict[uuid.UUID, str] = {}
    for key_id in key_ids:
        row = found.get(key_id)
        if row is None or row.revoked_at is not None:
            ended[key_id] = "api_key_revoked"
        elif row.expires_at <= now:
            ended[key_id] = "api_key_expired"
        elif not row.is_active:
            ended[key_id] = "account_inactive"
    return ended
