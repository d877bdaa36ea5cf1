"""Every query of the wallets domain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.models import Base, Transaction, TransactionStatus, TransactionType, User, Wallet

_transactions = Base.metadata.tables[Transaction.__tablename__]


async def get_by_number(session: AsyncSession, number: str) -> Wallet | None:
    return (
        await session.execute(select(Wallet).where(Wallet.number == number))
    ).scalar_one_or_none()


async def get_with_owner_by_number(
    session: AsyncSession, number: str
) -> tuple[Wallet, User] | None:
    row = (
        await session.execute(
            select(Wallet, User)
            .join(User, User.id == Wallet.user_id)
            .where(Wallet.number == number)
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])


async def get_primary(session: AsyncSession, user_id: uuid.UUID) -> Wallet | None:
    return (
        await session.execute(
            select(Wallet).where(Wallet.user_id == user_id, Wallet.is_primary.is_(True))
        )
    ).scalar_one_or_none()


async def list_for_user(session: AsyncSession, user_id: uuid.UUID) -> Sequence[Wallet]:
    return (
        (await session.execute(select(Wallet).where(Wallet.user_id == user_id).order_by(Wallet.id)))
        .scalars()
        .all()
    )


async def insert_history(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Append history rows (one per wallet per event) in one statement."""
    if rows:
        await session.execute(insert(_transactions), list(rows))


async def lock_owner_for_update(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Serialize wallet opening per user, so concurrent requests cannot pass the wallet limit
    together. (SQLite needs no lock: its write transactions are already serial.)"""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())


async def history_page(
    session: AsyncSession,
    wallet_id: int,
    *,
    limit: int,
    before_id: int | None = None,
    type_: TransactionType | None = None,
    status: TransactionStatus | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Sequence[Transaction]:
    """Newest first, keyset on (wallet_id, id): the same cost at any depth."""
    query = select(Transaction).where(Transaction.wallet_id == wallet_id)
    if before_id is not None:
        query = query.where(Transaction.id < before_id)
    if type_ is not None:
        query = query.where(Transaction.type == type_)
    if status is not None:
        query = query.where(Transaction.status == status)
    if since is not None:
        query = query.where(Transaction.created_at >= since)
    if until is not None:
        query = query.where(Transaction.created_at < until)
    query = query.order_by(Transaction.id.desc()).limit(limit)
    return (await session.execute(query)).scalars().all()


async def get_by_ids(session: AsyncSession, wallet_ids: Sequence[int]) -> dict[int, Wallet]:
    rows = (await session.execute(select(Wallet).where(Wallet.id.in_(wallet_ids)))).scalars()
    return {wallet.id: wallet for wallet in rows}


async def set_status(
    session: AsyncSession, wallet_ids: Sequence[int], *, from_status: str, to_status: str
) -> list[int]:
    """Move the wallets that are in `from_status` to `to_status`; returns those that moved."""
    if not wallet_ids:
        return []
    moved = await session.execute(
        update(Wallet)
        .where(Wallet.id.in_(wallet_ids), Wallet.status == from_status)
        .values(status=to_status)
        .returning(Wallet.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(moved.scalars().all())
