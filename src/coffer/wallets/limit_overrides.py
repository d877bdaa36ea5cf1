"""Admin overrides of a user's daily limit, per kind and currency, until an expiry.

Kept apart from `limits` (one lookup that `limits.consume` consults): an override in force
replaces the configured limit for that user, kind and currency; an expired one is ignored.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.kit.clock import utcnow
from coffer.ledger.repository import is_postgres
from coffer.models import Base, LimitOverride

if TYPE_CHECKING:
    from coffer.wallets.limits import LimitClaim

_overrides = Base.metadata.tables[LimitOverride.__tablename__]


async def apply(
    session: AsyncSession, claims: Sequence[tuple[LimitClaim, int]]
) -> list[tuple[LimitClaim, int]]:
    """The claims with each limit replaced by the user's override where one is in force."""
    users = {claim.user_id for claim, _ in claims}
    if not users:
        return list(claims)
    rows = await session.execute(
        select(LimitOverride).where(
            LimitOverride.user_id.in_(users), LimitOverride.expires_at > utcnow()
        )
    )
    found = {(o.user_id, o.kind, o.currency): o.limit_minor for o in rows.scalars()}
    return [
        (claim, found.get((claim.user_id, claim.kind.value, claim.currency), limit))
        for claim, limit in claims
    ]


async def set_override(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    kind: str,
    currency: str,
    limit_minor: int,
    expires_at: datetime,
    created_by: str,
) -> None:
    dialect_insert = postgresql.insert if is_postgres(session) else sqlite.insert
    values = {
        "user_id": user_id,
        "kind": kind,
        "currency": currency,
        "limit_minor": limit_minor,
        "expires_at": expires_at,
        "created_by": created_by,
    }
    statement = dialect_insert(_overrides).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["user_id", "kind", "currency"],
            set_={k: statement.excluded[k] for k in ("limit_minor", "expires_at", "created_by")},
        )
    )


async def in_force(session: AsyncSession, user_id: uuid.UUID) -> Sequence[LimitOverride]:
    return (
        (
            await session.execute(
                select(LimitOverride)
                .where(LimitOverride.user_id == user_id, LimitOverride.expires_at > utcnow())
                .order_by(LimitOverride.kind, LimitOverride.currency)
            )
        )
        .scalars()
        .all()
    )
