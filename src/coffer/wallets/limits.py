"""Daily limits per user, per currency, per kind (transfers, withdrawals).

A request consumes its amount when it is accepted, decided under the usage row's lock
(`used + amount <= limit`), so two concurrent requests can never both squeeze under the
limit. A request that later fails gives its amount back. The limits are written in
COFFER_LIMITS_CURRENCY and converted to the wallet's currency at the current rate (rounded
down); a day starts at midnight in COFFER_LIMITS_TIMEZONE.

The queries live here rather than in the wallets repository: the locking is the rule itself.
Usage rows are locked in one global order (user, kind, currency, day), so concurrent batches
queue instead of deadlocking.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.errors import AppError
from coffer.fx.conversion import convert_minor
from coffer.fx.service import RateBook
from coffer.kit.money import HARD_MAX_MINOR, format_minor, get_currency, parse_amount
from coffer.ledger.repository import is_postgres
from coffer.models import Base, DailyLimitUsage
from coffer.settings import Settings
from coffer.wallets import limit_overrides

_usage = Base.metadata.tables[DailyLimitUsage.__tablename__]


UsageKey = tuple[uuid.UUID, str, str, date]
"""A usage row's key: (user, kind, currency, day), also the order rows are locked in."""


class LimitKind(StrEnum):
    TRANSFER = "transfer"
    WITHDRAWAL = "withdrawal"


class DailyLimitExceeded(AppError):
    code = "daily_limit_exceeded"
    http_status = 403
    default_message = "This would exceed your daily limit"


@dataclass(frozen=True, slots=True)
class LimitClaim:
    user_id: uuid.UUID
    kind: LimitKind
    currency: str
    day: date
    amount_minor: int

    @property
    def key(self) -> UsageKey:
        return (self.user_id, self.kind.value, self.currency, self.day)


def limit_day(now: datetime, timezone: str) -> date:
    """The limit day `now` falls on: the calendar date in the limits' timezone."""
    return now.astimezone(ZoneInfo(timezone)).date()


def _configured_limit(settings: Settings, kind: LimitKind) -> Decimal:
    if kind is LimitKind.TRANSFER:
        return settings.daily_transfer_limit
    return settings.daily_withdrawal_limit


def daily_limit_minor(settings: Settings, kind: LimitKind, currency: str, rates: RateBook) -> int:
    """The day's limit in `currency`'s minor units, converted at the current rate (rounded
    down); raises the FX errors when no fresh rate converts it."""
    limits_currency = get_currency(settings.limits_currency)
    limit = parse_amount(_configured_limit(settings, kind), limits_currency)
    target = get_currency(currency)
    if target == limits_currency:
        return limit.minor
    converted = convert_minor(
        limit.minor, rates.rate(limits_currency.code, target.code), limits_currency, target
    )
    return min(converted, HARD_MAX_MINOR)


def exceeded(claim: LimitClaim, limit_minor: int) -> DailyLimitExceeded:
    currency = get_currency(claim.currency)
    return DailyLimitExceeded(
        details={
            "kind": claim.kind.value,
            "limit": format_minor(limit_minor, currency),
            "currency": currency.code,
        }
    )


async def consume(session: AsyncSession, claims: Sequence[tuple[LimitClaim, int]]) -> list[bool]:
    """Consume each (claim, limit in minor units) in order; True where it fit under its limit.

    Two statements whatever the number of claims: lock every usage row involved (creating it
    at zero) and read what it holds, then write each row's new total. Between the two the
    rows are locked (SQLite: the writer lock), so deciding here in order, earliest request
    first, is as safe as deciding in the database, and a batch of 1,000 transfers from one
    sender costs two statements, not 1,000.
    """
    claims = await limit_overrides.apply(session, claims)
    by_row: dict[UsageKey, list[int]] = defaultdict(list)
    for index, (claim, _) in enumerate(claims):
        by_row[claim.key].append(index)
    if not by_row:
        return []
    used = await _lock_rows(session, [claims[indices[0]] for indices in by_row.values()])
    granted = [False] * len(claims)
    totals: dict[UsageKey, tuple[int, int]] = {}
    for key, indices in by_row.items():
        total = used[key]
        for index in indices:
            claim, limit_minor = claims[index]
            if total + claim.amount_minor <= limit_minor:
                total += claim.amount_minor
                granted[index] = True
                totals[key] = (total, limit_minor)
    await _store_totals(session, totals)
    return granted


_ROW_KEY = ("user_id", "kind", "currency", "day")


async def _lock_rows(
    session: AsyncSession, claims: Sequence[tuple[LimitClaim, int]]
) -> dict[UsageKey, int]:
    """Lock each claim's usage row, in the global order, creating it at zero; what each holds.

    The conflict branch rewrites nothing (a new limit is written only with a consumption,
    which keeps `used <= limit`), but taking it locks the row.
    """
    dialect_insert = postgresql.insert if is_postgres(session) else sqlite.insert
    statement = dialect_insert(_usage)
    rows = await session.execute(
        statement.on_conflict_do_update(
            index_elements=list(_ROW_KEY), set_={"used_minor": _usage.c.used_minor}
        ).returning(*(_usage.c[name] for name in _ROW_KEY), _usage.c.used_minor),
        [
            {
                "user_id": claim.user_id,
                "kind": claim.kind.value,
                "currency": claim.currency,
                "day": claim.day,
                "used_minor": 0,
                "limit_minor": limit_minor,
            }
            for claim, limit_minor in sorted(claims, key=lambda pair: pair[0].key)
        ],
    )
    # asyncpg returns its own UUID type: normalise, so keys compare with the claims'.
    return {(uuid.UUID(str(r.user_id)), r.kind, r.currency, r.day): r.used_minor for r in rows}


async def _store_totals(session: AsyncSession, totals: dict[UsageKey, tuple[int, int]]) -> None:
    """Write each locked row's new total and the limit it was checked against."""
    if not totals:
        return
    await session.execute(
        update(_usage)
        .where(*(_usage.c[name] == bindparam(f"k_{name}") for name in _ROW_KEY))
        .values(used_minor=bindparam("k_used"), limit_minor=bindparam("k_limit")),
        [
            {
                "k_user_id": user_id,
                "k_kind": kind,
                "k_currency": currency,
                "k_day": day,
                "k_used": used,
                "k_limit": limit_minor,
            }
            for (user_id, kind, currency, day), (used, limit_minor) in sorted(totals.items())
        ],
    )


async def release(session: AsyncSession, claims: Sequence[LimitClaim]) -> None:
    """Give back what failed requests consumed (never below zero), one statement per row."""
    totals: dict[UsageKey, int] = defaultdict(int)
    for claim in claims:
        totals[claim.key] += claim.amount_minor
    if not totals:
        return
    await session.execute(
        update(_usage)
        .where(
            _usage.c.user_id == bindparam("k_user_id"),
            _usage.c.kind == bindparam("k_kind"),
            _usage.c.currency == bindparam("k_currency"),
            _usage.c.day == bindparam("k_day"),
        )
        .values(used_minor=_usage.c.used_minor - bindparam("k_amount"))
        .where(_usage.c.used_minor >= bindparam("k_amount")),
        [
            {
                "k_user_id": user_id,
                "k_kind": kind,
                "k_currency": currency,
                "k_day": day,
                "k_amount": amount,
            }
            for (user_id, kind, currency, day), amount in sorted(totals.items())
        ],
    )


async def used_minor(
    session: AsyncSession, user_id: uuid.UUID, kind: LimitKind, currency: str, day: date
) -> int:
    """How much of the day's limit is consumed (0 for a day with no requests)."""
    used = await session.scalar(
        select(DailyLimitUsage.used_minor).where(
            DailyLimitUsage.user_id == user_id,
            DailyLimitUsage.kind == kind.value,
            DailyLimitUsage.currency == currency,
            DailyLimitUsage.day == day,
        )
    )
    return int(used or 0)
