"""Every query of the FX domain."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import ResultRow
from coffer.ledger.repository import is_postgres
from coffer.models import Base, FxFixedRate, FxQuote, FxRate, FxRateHold, Transfer

_rates = Base.metadata.tables[FxRate.__tablename__]
_fixed = Base.metadata.tables[FxFixedRate.__tablename__]
_holds = Base.metadata.tables[FxRateHold.__tablename__]


async def cached_rates(
    session: AsyncSession, base: str, source: str, currencies: Collection[str]
) -> Sequence[ResultRow]:
    return (
        await session.execute(
            select(FxRate.currency, FxRate.rate, FxRate.fetched_at).where(
                FxRate.base_currency == base,
                FxRate.source == source,
                FxRate.currency.in_(sorted(currencies)),
            )
        )
    ).all()


async def all_cached_rates(session: AsyncSession) -> Sequence[FxRate]:
    return (
        (await session.execute(select(FxRate).order_by(FxRate.base_currency, FxRate.currency)))
        .scalars()
        .all()
    )


def _upsert(session: AsyncSession, table: Any, keys: list[str], updated: list[str]) -> Any:
    dialect_insert = postgresql.insert if is_postgres(session) else sqlite.insert
    statement = dialect_insert(table)
    return statement.on_conflict_do_update(
        index_elements=keys, set_={name: statement.excluded[name] for name in updated}
    )


async def upsert_cached_rates(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(
            _upsert(
                session,
                _rates,
                ["base_currency", "currency"],
                ["rate", "source", "published_at", "fetched_at"],
            ),
            list(rows),
        )


async def upsert_holds(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(
            _upsert(
                session,
                _holds,
                ["base_currency", "currency"],
                ["rate", "source", "published_at", "fetched_at"],
            ),
            list(rows),
        )


async def delete_holds(session: AsyncSession, base: str, currencies: Collection[str]) -> None:
    if currencies:
        await session.execute(
            delete(FxRateHold).where(
                FxRateHold.base_currency == base, FxRateHold.currency.in_(sorted(currencies))
            )
        )


async def take_hold(session: AsyncSession, base: str, currency: str) -> FxRateHold | None:
    """The held rate, removed from the holds (the caller caches it in the same transaction)."""
    hold = await session.get(FxRateHold, (base, currency))
    if hold is not None:
        await session.delete(hold)
    return hold


async def fixed_rates(session: AsyncSession, base: str) -> Sequence[FxFixedRate]:
    return (
        (await session.execute(select(FxFixedRate).where(FxFixedRate.base_currency == base)))
        .scalars()
        .all()
    )


async def upsert_fixed_rate(
    session: AsyncSession, base: str, currency: str, rate: Decimal, now: datetime
) -> None:
    await session.execute(
        _upsert(session, _fixed, ["base_currency", "currency"], ["rate", "updated_at"]),
        [{"base_currency": base, "currency": currency, "rate": rate, "updated_at": now}],
    )


async def quotes_with_use(session: AsyncSession, quote_ids: Sequence[str]) -> dict[str, ResultRow]:
    """Quotes by id, each with `used_by`: the transfer that used it, if one did."""
    if not quote_ids:
        return {}
    rows = await session.execute(
        select(FxQuote, Transfer.reference.label("used_by"))
        .outerjoin(Transfer, Transfer.quote_id == FxQuote.id)
        .where(FxQuote.id.in_(sorted(set(quote_ids))))
    )
    return {row.FxQuote.id: row for row in rows}


async def count_open_quotes(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> int:
    """The user's quotes that have not expired and no transfer used."""
    return int(
        await session.scalar(
            select(func.count())
            .select_from(FxQuote)
            .where(
                FxQuote.user_id == user_id,
                FxQuote.expires_at > now,
                ~exists().where(Transfer.quote_id == FxQuote.id),
            )
        )
        or 0
    )


async def delete_quotes_expired_before(session: AsyncSession, cutoff: datetime) -> int:
    """Drop old quotes no transfer used (a used quote stays, as the transfer's terms)."""
    result = await session.execute(
        delete(FxQuote).where(
            FxQuote.expires_at < cutoff, ~exists().where(Transfer.quote_id == FxQuote.id)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
