"""Every query of the Idempotency-Key store."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.ledger.repository import is_postgres
from coffer.models import IdempotencyRecord


def _lock_id(scope: str, key: str) -> int:
    digest = hashlib.sha256(f"{scope}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def try_lock(session: AsyncSession, scope: str, key: str) -> bool:
    """Take the key for this transaction, or say that another transaction holds it.

    PostgreSQL: a transaction-scoped advisory lock, released by the commit that stores the
    response. SQLite needs none: its write transactions run one at a time.
    """
    if not is_postgres(session):
        return True
    acquired: bool = (
        await session.execute(
            text("SELECT pg_try_advisory_xact_lock(:lock_id)"), {"lock_id": _lock_id(scope, key)}
        )
    ).scalar_one()
    return acquired


async def find(session: AsyncSession, scope: str, key: str) -> IdempotencyRecord | None:
    return (
        await session.execute(
            select(IdempotencyRecord).where(
                IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
            )
        )
    ).scalar_one_or_none()


async def delete_record(session: AsyncSession, record_id: int) -> None:
    await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))


async def insert_record(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(IdempotencyRecord).values(**values))


async def delete_expired(session: AsyncSession, now: datetime, limit: int) -> int:
    """Delete up to `limit` expired records, oldest first; returns how many."""
    expired = (
        select(IdempotencyRecord.id)
        .where(IdempotencyRecord.expires_at <= now)
        .order_by(IdempotencyRecord.expires_at)
        .limit(limit)
    )
    ids = list((await session.execute(expired)).scalars())
    if ids:
        await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(ids)))
    return len(ids)
