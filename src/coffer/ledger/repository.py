"""Every query of the ledger. Row locks are taken in `lock_balances` and nowhere else.

PostgreSQL gets array-parameter statements whose text never changes with the batch size, so
one prepared plan serves every batch. SQLite runs each transaction under `BEGIN IMMEDIATE`
(one writer at a time), so it needs no row locks and takes plain per-row statements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.ledger.postings import AccountInfo, Posting
from coffer.models import Base, LedgerAccount, LedgerEntry, LedgerPosting

_accounts = Base.metadata.tables[LedgerAccount.__tablename__]
_entries = Base.metadata.tables[LedgerEntry.__tablename__]
_postings = Base.metadata.tables[LedgerPosting.__tablename__]


@dataclass(frozen=True, slots=True)
class StoredEntry:
    id: int
    kind: str
    metadata: Mapping[str, Any]
    postings: tuple[Posting, ...]


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def load_accounts(session: AsyncSession, ids: Sequence[int]) -> dict[int, AccountInfo]:
    rows = await session.execute(
        select(_accounts.c.id, _accounts.c.currency, _accounts.c.allow_negative).where(
            _accounts.c.id.in_(ids)
        )
    )
    return {row.id: AccountInfo(row.id, row.currency, row.allow_negative) for row in rows}


async def lock_balances(session: AsyncSession, ids: Sequence[int]) -> dict[int, int]:
    """Lock the running-balance accounts in ascending id order and read their balances.

    Every writer locks in the same global order, so writers queue instead of deadlocking.
    """
    if not ids:
        return {}
    if is_postgres(session):
        rows = await session.execute(
            text(
                "SELECT id, balance FROM ledger_accounts "
                "WHERE id = ANY(CAST(:ids AS BIGINT[])) ORDER BY id FOR UPDATE"
            ),
            {"ids": sorted(ids)},
        )
    else:
        rows = await session.execute(
            select(_accounts.c.id, _accounts.c.balance)
            .where(_accounts.c.id.in_(ids))
            .order_by(_accounts.c.id)
        )
    return {row.id: row.balance for row in rows}


async def apply_deltas(session: AsyncSession, deltas: Mapping[int, int]) -> dict[int, int]:
    """Add each delta to its account's running balance, refusing to go below zero.

    The condition repeats the check the caller made under the lock: an account missing from
    the result means the two disagree, which the caller treats as an invariant failure.
    """
    ids = sorted(deltas)
    if is_postgres(session):
        rows = await session.execute(
            text(
                "UPDATE ledger_accounts AS a SET balance = a.balance + v.delta "
                "FROM unnest(CAST(:ids AS BIGINT[]), CAST(:deltas AS BIGINT[])) AS v(id, delta) "
                "WHERE a.id = v.id AND NOT a.allow_negative AND a.balance + v.delta >= 0 "
                "RETURNING a.id, a.balance"
            ),
            {"ids": ids, "deltas": [deltas[i] for i in ids]},
        )
        return {row.id: row.balance for row in rows}
    balances: dict[int, int] = {}
    for account_id in ids:
        row = (
            await session.execute(
                text(
                    "UPDATE ledger_accounts SET balance = balance + :delta "
                    "WHERE id = :id AND NOT allow_negative AND balance + :delta >= 0 "
                    "RETURNING balance"
                ),
                {"id": account_id, "delta": deltas[account_id]},
            )
        ).one_or_none()
        if row is not None:
            balances[account_id] = row.balance
    return balances


async def find_entries(session: AsyncSession, references: Sequence[str]) -> dict[str, StoredEntry]:
    entry_rows = (
        await session.execute(
            select(_entries.c.id, _entries.c.kind, _entries.c.reference, _entries.c.metadata).where(
                _entries.c.reference.in_(references)
            )
        )
    ).all()
    if not entry_rows:
        return {}
    postings: dict[int, list[Posting]] = {row.id: [] for row in entry_rows}
    posting_rows = await session.execute(
        select(_postings.c.entry_id, _postings.c.account_id, _postings.c.amount).where(
            _postings.c.entry_id.in_(list(postings))
        )
    )
    for row in posting_rows:
        postings[row.entry_id].append(Posting(row.account_id, row.amount))
    return {
        row.reference: StoredEntry(row.id, row.kind, row.metadata or {}, tuple(postings[row.id]))
        for row in entry_rows
    }


async def insert_entries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert entries and return their ids in the order given."""
    result = await session.execute(
        insert(_entries).returning(_entries.c.id, sort_by_parameter_order=True), list(rows)
    )
    return [row.id for row in result]


async def insert_postings(session: AsyncSession, rows: Iterable[dict[str, Any]]) -> None:
    await session.execute(insert(_postings), list(rows))


def _account_values(code: str, currency: str, allow_negative: bool) -> dict[str, Any]:
    return {
        "code": code,
        "currency": currency,
        "allow_negative": allow_negative,
        "balance": None if allow_negative else 0,
    }


async def insert_account(
    session: AsyncSession, code: str, currency: str, *, allow_negative: bool
) -> int:
    result = await session.execute(
        insert(_accounts)
        .values(**_account_values(code, currency, allow_negative))
        .returning(_accounts.c.id)
    )
    return int(result.scalar_one())


async def insert_account_if_absent(
    session: AsyncSession, code: str, currency: str, *, allow_negative: bool
) -> None:
    """Race-free get-or-create: concurrent callers both succeed, one row results."""
    dialect_insert = postgresql.insert if is_postgres(session) else sqlite.insert
    await session.execute(
        dialect_insert(_accounts)
        .values(**_account_values(code, currency, allow_negative))
        .on_conflict_do_nothing(index_elements=["code"])
    )


async def account_id_by_code(session: AsyncSession, code: str) -> int | None:
    account_id: int | None = (
        await session.execute(select(_accounts.c.id).where(_accounts.c.code == code))
    ).scalar_one_or_none()
    return account_id


async def derived_balance(session: AsyncSession, account_id: int) -> int:
    total = await session.execute(
        text("SELECT COALESCE(SUM(amount), 0) FROM ledger_postings WHERE account_id = :id"),
        {"id": account_id},
    )
    return int(total.scalar_one())


async def running_balance(session: AsyncSession, account_id: int) -> int | None:
    return (
        await session.execute(select(_accounts.c.balance).where(_accounts.c.id == account_id))
    ).scalar_one_or_none()
