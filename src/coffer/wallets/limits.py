"""Daily limits per user, per currency, per kind (transfers, withdrawals).

A request consumes its amount when it is accepted, with one conditional upsert per usage row
(`used + amount <= limit`): the database decides under the row's lock, so two concurrent
requests can never both squeeze under the limit. A request that later fails gives its amount
back. The limits are written in COFFER_LIMITS_CURRENCY and converted to the wallet's currency
at the current rate (rounded down); a day starts at midnight in COFFER_LIMITS_TIMEZONE.

The queries live here rather than in the wallets repository: the conditional upsert is the
rule itself. Usage rows are locked in one global order (user, kind, currency, day), so
concurrent batches queue instead of deadlocking.
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

from sqlalchemy import bindparam, literal, select, text, update
from sqlalchemy.dialects import sqlite
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
    def key(self) -> tuple[uuid.UUID, str, str, date]:
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

    Claims of one usage row are applied in the order given, so the earliest requests win.
    """
    claims = await limit_overrides.apply(session, claims)
    granted = [False] * len(claims)
    # Round r applies the r-th claim of every usage row: within a statement each row is
    # touched once (PostgreSQL refuses an upsert that hits one row twice).
    rounds: list[list[int]] = []
    seen: dict[tuple[uuid.UUID, str, str, date], int] = defaultdict(int)
    for index, (claim, _) in enumerate(claims):
        round_number = seen[claim.key]
        seen[claim.key] += 1
        if round_number == len(rounds):
            rounds.append([])
        rounds[round_number].append(index)
    for members in rounds:
        ordered = sorted(members, key=lambda i: claims[i][0].key)
        applied = await _upsert(session, [claims[i] for i in ordered])
        for index in ordered:
            granted[index] = claims[index][0].key in applied
    return granted


async def _upsert(
    session: AsyncSession, claims: Sequence[tuple[LimitClaim, int]]
) -> set[tuple[uuid.UUID, str, str, date]]:
    """Add each claim to its row where `used + amount <= limit`; returns the rows that took it."""
    if is_postgres(session):
        rows = await session.execute(
            text(
                "INSERT INTO daily_limit_usage AS u "
                "(user_id, kind, currency, day, used_minor, limit_minor) "
                "SELECT v.user_id, v.kind, v.currency, v.day, v.amount, v.lim FROM unnest("
                "CAST(:user_ids AS UUID[]), CAST(:kinds AS TEXT[]), CAST(:currencies AS TEXT[]), "
                "CAST(:days AS DATE[]), CAST(:amounts AS BIGINT[]), CAST(:limits AS BIGINT[])"
                ") AS v(user_id, kind, currency, day, amount, lim) WHERE v.amount <= v.lim "
                "ON CONFLICT (user_id, kind, currency, day) DO UPDATE SET "
                "used_minor = u.used_minor + EXCLUDED.used_minor, "
                "limit_minor = EXCLUDED.limit_minor "
                "WHERE u.used_minor + EXCLUDED.used_minor <= EXCLUDED.limit_minor "
                "RETURNING u.user_id, u.kind, u.currency, u.day"
            ),
            {
                "user_ids": [c.user_id for c, _ in claims],
                "kinds": [c.kind.value for c, _ in claims],
                "currencies": [c.currency for c, _ in claims],
                "days": [c.day for c, _ in claims],
                "amounts": [c.amount_minor for c, _ in claims],
                "limits": [limit for _, limit in claims],
            },
        )
        # asyncpg returns its own UUID type: normalise, so keys compare with the claims'.
        return {(uuid.UUID(str(r.user_id)), r.kind, r.currency, r.day) for r in rows}
    # SQLite runs one writer at a time (BEGIN IMMEDIATE): a statement per claim costs no lock.
    applied = set()
    for claim, limit_minor in claims:
        values = select(
            literal(claim.user_id, _usage.c.user_id.type),
            literal(claim.kind.value, _usage.c.kind.type),
            literal(claim.currency, _usage.c.currency.type),
            literal(claim.day, _usage.c.day.type),
            literal(claim.amount_minor, _usage.c.used_minor.type),
            literal(limit_minor, _usage.c.limit_minor.type),
        ).where(literal(claim.amount_minor) <= literal(limit_minor))
        insert = sqlite.insert(_usage).from_select(
            ["user_id", "kind", "currency", "day", "used_minor", "limit_minor"], values
        )
        statement = insert.on_conflict_do_update(
            index_elements=["user_id", "kind", "currency", "day"],
            set_={
                "used_minor": _usage.c.used_minor + insert.excluded.used_minor,
                "limit_minor": insert.excluded.limit_minor,
            },
            where=_usage.c.used_minor + insert.excluded.used_minor <= insert.excluded.limit_minor,
        ).returning(_usage.c.used_minor)
        if (await session.execute(statement)).first() is not None:
            applied.add(claim.key)
    return applied


async def release(session: AsyncSession, claims: Sequence[LimitClaim]) -> None:
    """Give back what failed requests consumed (never below zero), one statement per row."""
    totals: dict[tuple[uuid.UUID, str, str, date], int] = defaultdict(int)
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
