"""Every query of the wallets domain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.models import Base, Transaction, User, Wallet

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
