"""Every query of the fees domain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.ledger.repository import is_postgres
from coffer.models import Base, FeeStatus, Wallet, WalletFee, WalletStatus

_fees = Base.metadata.tables[WalletFee.__tablename__]


async def due_wallets(
    session: AsyncSession,
    currencies: Sequence[str],
    *,
    cutoff: datetime,
    after_wallet_id: int,
    limit: int,
) -> Sequence[Row[int, uuid.UUID, str, str, datetime, int, int]]:
    """Wallets, in id order after `after_wallet_id`, whose next fee is due: their last charged
    period (or their opening) lies at least one period before now (`cutoff`)."""
    last_due = func.coalesce(func.max(WalletFee.due_at), Wallet.created_at)
    query = (
        select(
            Wallet.id,
            Wallet.user_id,
            Wallet.number,
            Wallet.currency,
            Wallet.created_at,
            Wallet.ledger_account_id,
            func.coalesce(func.max(WalletFee.period), 0).label("last_period"),
        )
        .outerjoin(WalletFee, WalletFee.wallet_id == Wallet.id)
        .where(
            Wallet.currency.in_(currencies),
            Wallet.status != WalletStatus.CLOSED,
            Wallet.id > after_wallet_id,
            Wallet.created_at <= cutoff,
        )
        .group_by(
            Wallet.id,
            Wallet.user_id,
            Wallet.number,
            Wallet.currency,
            Wallet.created_at,
            Wallet.ledger_account_id,
        )
        .having(last_due <= cutoff)
        .order_by(Wallet.id)
        .limit(limit)
    )
    return (await session.execute(query)).all()


async def claim_periods(
    session: AsyncSession, rows: Sequence[dict[str, Any]]
) -> set[tuple[int, int]]:
    """Insert the fee rows (as owed) that no one inserted before; returns the (wallet, period)
    pairs this transaction claimed. A concurrent runner's insert of the same period waits for
    ours and then does nothing: the unique (wallet_id, period) decides."""
    if not rows:
        return set()
    dialect_insert = postgresql.insert if is_postgres(session) else sqlite.insert
    claimed = await session.execute(
        dialect_insert(_fees)
        .on_conflict_do_nothing(index_elements=["wallet_id", "period"])
        .returning(_fees.c.wallet_id, _fees.c.period),
        list(rows),
    )
    return {(row.wallet_id, row.period) for row in claimed}


async def owed_for_update(session: AsyncSession, wallet_ids: Sequence[int]) -> Sequence[WalletFee]:
    """The owed fees of these wallets, oldest first, locked: two credits landing at once
    cannot both take the same fee (the second sees it paid)."""
    if not wallet_ids:
        return []
    return (
        (
            await session.execute(
                select(WalletFee)
                .where(WalletFee.wallet_id.in_(wallet_ids), WalletFee.status == FeeStatus.OWED)
                .order_by(WalletFee.wallet_id, WalletFee.period)
                .with_for_update()
            )
        )
        .scalars()
        .all()
    )


async def mark_paid(session: AsyncSession, paid: Sequence[dict[str, Any]]) -> None:
    """`paid`: {wallet_id, period, ledger_entry_id, paid_at} per fee."""
    if not paid:
        return
    await session.execute(
        update(_fees)
        .where(
            _fees.c.wallet_id == bindparam("k_wallet_id"),
            _fees.c.period == bindparam("k_period"),
        )
        .values(
            status=FeeStatus.PAID,
            ledger_entry_id=bindparam("k_entry_id"),
            paid_at=bindparam("k_paid_at"),
        ),
        [
            {
                "k_wallet_id": row["wallet_id"],
                "k_period": row["period"],
                "k_entry_id": row["ledger_entry_id"],
                "k_paid_at": row["paid_at"],
            }
            for row in paid
        ],
    )


async def owed_wallet_ids(session: AsyncSession, wallet_ids: Sequence[int]) -> set[int]:
    if not wallet_ids:
        return set()
    rows = await session.execute(
        select(WalletFee.wallet_id)
        .where(WalletFee.wallet_id.in_(wallet_ids), WalletFee.status == FeeStatus.OWED)
        .distinct()
    )
    return set(rows.scalars().all())


async def fees_of_wallet(session: AsyncSession, wallet_id: int) -> Sequence[WalletFee]:
    return (
        (
            await session.execute(
                select(WalletFee).where(WalletFee.wallet_id == wallet_id).order_by(WalletFee.period)
            )
        )
        .scalars()
        .all()
    )
