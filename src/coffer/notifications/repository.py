"""Every query of the notifications domain."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from coffer.db import ResultRow
from coffer.kit.clock import utcnow
from coffer.ledger.repository import is_postgres
from coffer.models import Base, Event, NotificationPreference, SentNotification, User, Wallet

_sent = Base.metadata.tables[SentNotification.__tablename__]
_preferences = Base.metadata.tables[NotificationPreference.__tablename__]
_events = Base.metadata.tables[Event.__tablename__]
_wallets = Base.metadata.tables[Wallet.__tablename__]

EVENTS_LOCK_KEY = 0x636F_6666_6572
"""PostgreSQL advisory lock that orders event ids by commit ("coffer")."""


async def recipients(
    session: AsyncSession, user_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, bool]]:
    """Each user's address and whether they take activity emails (yes unless they said no)."""
    if not user_ids:
        return {}
    rows = await session.execute(
        select(User.id, User.email, NotificationPreference.activity_emails)
        .outerjoin(NotificationPreference, NotificationPreference.user_id == User.id)
        .where(User.id.in_(user_ids))
    )
    return {row.id: (row.email, row.activity_emails is not False) for row in rows}


async def claim_dedupe_keys(session: AsyncSession, keys: Collection[str]) -> set[str]:
    """The keys claimed now (not before); the rows commit with the queued emails."""
    if not keys:
        return set()
    dialect_insert = postgresql.insert if is_postgres(session) else sqlite.insert
    now = utcnow()
    inserted = await session.execute(
        dialect_insert(_sent)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(_sent.c.dedupe_key),
        [{"dedupe_key": key, "created_at": now} for key in keys],
    )
    return set(inserted.scalars())


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


def wallets_by_ledger_account(
    session: Session, account_ids: Collection[int]
) -> dict[int, ResultRow]:
    """The wallets among these ledger accounts (synchronous: it runs inside a commit)."""
    rows = session.execute(
        select(
            _wallets.c.ledger_account_id, _wallets.c.user_id, _wallets.c.number, _wallets.c.currency
        ).where(_wallets.c.ledger_account_id.in_(sorted(account_ids)))
    )
    return {row.ledger_account_id: row for row in rows}


def insert_events(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert events in id order = commit order: on PostgreSQL under an advisory lock held to
    the commit (synchronous: it runs inside a commit, as the transaction's last statements)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENTS_LOCK_KEY})
    # executemany form: one cached statement, which SQLAlchemy sends as multi-row INSERTs in
    # row order ("insertmanyvalues"), so ids still follow the list.
    session.execute(insert(_events), list(rows))


_EVENT_COLUMNS = (
    _events.c.id,
    _events.c.user_id,
    _events.c.type,
    _events.c.version,
    _events.c.data,
    _events.c.created_at,
)


async def events_after(
    session: AsyncSession,
    after_id: int,
    *,
    limit: int,
    user_ids: Collection[uuid.UUID] | None = None,
) -> list[ResultRow]:
    """Events with ids above `after_id`, oldest first (of these users only, when given)."""
    query = select(*_EVENT_COLUMNS).where(_events.c.id > after_id)
    if user_ids is not None:
        query = query.where(_events.c.user_id.in_(list(user_ids)))
    return list((await session.execute(query.order_by(_events.c.id).limit(limit))).all())


async def newest_event_id(session: AsyncSession) -> int:
    return int(
        (await session.execute(select(func.coalesce(func.max(_events.c.id), 0)))).scalar_one()
    )


async def delete_events_before(session: AsyncSession, cutoff: datetime, *, limit: int) -> int:
    """Delete up to `limit` of the oldest events created before `cutoff`; how many went."""
    doomed = (
        select(_events.c.id)
        .where(_events.c.created_at < cutoff)
        .order_by(_events.c.id)
        .limit(limit)
        .scalar_subquery()
    )
    result = await session.execute(delete(_events).where(_events.c.id.in_(doomed)))
    return int(getattr(result, "rowcount", 0) or 0)
