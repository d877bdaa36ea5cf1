"""Rates from the cache, quotes, and refreshing the cache from a provider's snapshot.

The money paths read rates only from the `fx_rates` cache, never from a provider over the
network: a refresh job (`fx.refresh_rates`) keeps it current, and a rate not refreshed for
COFFER_FX_MAX_AGE_SECONDS is refused rather than used. Rates are held against one pivot
currency (COFFER_FX_BASE_CURRENCY), so one provider call per refresh prices every pair.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import ResultRow
from coffer.errors import AppError, ValidationFailed
from coffer.fx import repository
from coffer.fx.conversion import Conversion, convert, cross_rate
from coffer.fx.guard import split_by_jump
from coffer.kit.clock import utcnow
from coffer.kit.money import CURRENCIES, Money, get_currency, parse_amount
from coffer.models import FxQuote
from coffer.settings import Settings

REFRESH_JOB = "fx.refresh_rates"
QUOTE_RETENTION = timedelta(days=1)
"""Unused quotes are deleted this long after they expire."""
ONE = Decimal(1)
MAX_QUOTE_ID_LENGTH = 40


class FxRateUnavailable(AppError):
    code = "fx_rate_unavailable"
    http_status = 422
    default_message = "No exchange rate is available for this currency"


class FxRateStale(AppError):
    code = "fx_rate_stale"
    http_status = 422
    default_message = "The exchange rate is out of date; try again later"


class FxProviderError(AppError):
    """The rate provider failed or answered something unusable (the refresh job retries)."""

    code = "fx_provider_error"
    http_status = 502
    default_message = "The exchange-rate provider failed"


class TooManyQuotes(AppError):
    code = "too_many_fx_quotes"
    http_status = 429
    default_message = "Too many open quotes; use one or let them expire"


class QuoteNotFound(AppError):
    code = "quote_not_found"
    http_status = 404
    default_message = "Quote not found"


class QuoteExpired(AppError):
    code = "quote_expired"
    http_status = 422
    default_message = "The quote has expired; ask for a new one"


class QuoteAlreadyUsed(AppError):
    code = "quote_already_used"
    http_status = 409
    default_message = "The quote was already used by another transfer"


class QuoteMismatch(AppError):
    code = "quote_mismatch"
    http_status = 422
    default_message = "The quote is for different currencies or a different amount"


@dataclass(frozen=True, slots=True)
class CachedRate:
    per_base: Decimal
    fetched_at: datetime


class RateBook:
    """The cached rates a unit of work needs, read once; pairs are priced through the base."""

    def __init__(
        self, base: str, rates: Mapping[str, CachedRate], max_age: timedelta, now: datetime
    ) -> None:
        self.base = base
        self._rates = rates
        self._oldest_allowed = now - max_age

    def _per_base(self, currency: str) -> Decimal:
        if currency == self.base:
            return ONE
        cached = self._rates.get(currency)
        if cached is None:
            raise FxRateUnavailable(
                f"No exchange rate is available for {currency}", details={"currency": currency}
            )
        if cached.fetched_at < self._oldest_allowed:
            raise FxRateStale(details={"currency": currency})
        return cached.per_base

    def rate(self, source: str, target: str) -> Fraction:
        """Units of `target` per unit of `source`, exactly."""
        if source == target:
            return Fraction(1)
        return cross_rate(self._per_base(source), self._per_base(target))


async def load_rates(
    session: AsyncSession,
    settings: Settings,
    currencies: Collection[str],
    now: datetime | None = None,
) -> RateBook:
    """One query for every rate these currencies need, from the configured provider only."""
    rows = await repository.cached_rates(
        session, settings.fx_base_currency, settings.fx_provider, currencies
    )
    return RateBook(
        settings.fx_base_currency,
        {row.currency: CachedRate(row.rate, row.fetched_at) for row in rows},
        timedelta(seconds=settings.fx_max_age_seconds),
        now or utcnow(),
    )


@dataclass(frozen=True, slots=True)
class RateSnapshot:
    """What a provider says: units of each currency per unit of `base`."""

    base: str
    rates: Mapping[str, Decimal]
    published_at: datetime | None


async def store_snapshot(
    session: AsyncSession,
    snapshot: RateSnapshot,
    source: str,
    now: datetime | None = None,
    *,
    max_jump_bps: int | None = None,
) -> int:
    """Write a provider's rates into the cache; currencies coffer does not know are skipped.
    With `max_jump_bps`, a rate that far from the cached one is held instead (coffer.fx.guard).

    Returns how many rates were stored.
    """
    fetched_at = now or utcnow()
    rows: list[dict[str, Any]] = [
        {
            "base_currency": snapshot.base,
            "currency": currency,
            "rate": rate,
            "source": source,
            "published_at": snapshot.published_at,
            "fetched_at": fetched_at,
        }
        for currency, rate in sorted(snapshot.rates.items())
        if currency in CURRENCIES and rate.is_finite() and rate > 0
    ]
    held: list[dict[str, Any]] = []
    if max_jump_bps is not None:
        cached = await repository.cached_rates(
            session, snapshot.base, source, [row["currency"] for row in rows]
        )
        rows, held = split_by_jump(rows, {r.currency: r.rate for r in cached}, max_jump_bps)
    await repository.upsert_cached_rates(session, rows)
    await repository.upsert_holds(session, held)
    # A rate back within bounds ends its hold: nothing is left for an operator to confirm.
    await repository.delete_holds(session, snapshot.base, [row["currency"] for row in rows])
    return len(rows)


class FxHoldNotFound(AppError):
    code = "fx_hold_not_found"
    http_status = 404
    default_message = "No fetched rate is held for this currency"


async def confirm_held_rate(session: AsyncSession, base: str, currency: str) -> Decimal:
    """An operator believes a held rate: it enters the cache as fetched. Returns the rate."""
    hold = await repository.take_hold(session, base, get_currency(currency).code)
    if hold is None:
        raise FxHoldNotFound()
    await repository.upsert_cached_rates(
        session,
        [
            {
                "base_currency": hold.base_currency,
                "currency": hold.currency,
                "rate": hold.rate,
                "source": hold.source,
                "published_at": hold.published_at,
                "fetched_at": hold.fetched_at,
            }
        ],
    )
    return hold.rate


async def set_fixed_rate(
    session: AsyncSession, base: str, currency: str, rate: Decimal, now: datetime | None = None
) -> None:
    """Set an operator's rate for the `fixed` provider (takes effect at the next refresh)."""
    base, currency = get_currency(base).code, get_currency(currency).code
    if not rate.is_finite() or rate <= 0:
        raise ValidationFailed("The rate must be a positive number")
    if base == currency and rate != ONE:
        raise ValidationFailed("A currency's rate against itself is 1")
    await repository.upsert_fixed_rate(session, base, currency, rate, now or utcnow())


async def prune_quotes(session: AsyncSession, now: datetime | None = None) -> int:
    return await repository.delete_quotes_expired_before(
        session, (now or utcnow()) - QUOTE_RETENTION
    )


def new_quote_id() -> str:
    return f"FXQ_{secrets.token_hex(12).upper()}"


async def create_quote(
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    *,
    from_currency: str,
    to_currency: str,
    amount: object,
    now: datetime | None = None,
) -> FxQuote:
    """Price sending `amount` of `from_currency` into `to_currency`, held for the quote's TTL."""
    source, target = get_currency(from_currency), get_currency(to_currency)
    if source == target:
        raise ValidationFailed("A quote converts between two different currencies")
    send = parse_amount(amount, source, max_minor=settings.max_amount_minor)
    now = now or utcnow()
    # A cap, not a ledger rule: concurrent requests may pass it together, by a few at most.
    if await repository.count_open_quotes(session, user_id, now) >= (
        settings.max_open_fx_quotes_per_user
    ):
        raise TooManyQuotes()
    book = await load_rates(session, settings, {source.code, target.code}, now)
    conversion = convert(
        send,
        target,
        book.rate(source.code, target.code),
        settings.fx_spread_bps,
        max_minor=settings.max_amount_minor,
    )
    quote = FxQuote(
        id=new_quote_id(),
        user_id=user_id,
        from_currency=source.code,
        to_currency=target.code,
        rate=conversion.rate,
        send_amount_minor=send.minor,
        fee_minor=conversion.fee.minor,
        receive_amount_minor=conversion.receive.minor,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.fx_quote_ttl_seconds),
    )
    session.add(quote)
    await session.flush()
    return quote


def quote_conversion(quote: FxQuote) -> Conversion:
    return Conversion(
        quote.rate,
        Money.of(quote.send_amount_minor, quote.from_currency),
        Money.of(quote.fee_minor, quote.from_currency),
        Money.of(quote.receive_amount_minor, quote.to_currency),
    )


def use_quote(
    found: ResultRow | None, user_id: uuid.UUID, send: Money, target: str, now: datetime
) -> Conversion:
    """The terms of a quote a transfer names, if this user may use them for this transfer.

    Checked on a plain read; the unique `transfers.quote_id` is what makes a quote single-use
    when two transfers race for it.
    """
    if found is None or found.FxQuote.user_id != user_id:
        raise QuoteNotFound()
    quote: FxQuote = found.FxQuote
    if found.used_by is not None:
        raise QuoteAlreadyUsed()
    if quote.expires_at <= now:
        raise QuoteExpired()
    if (
        quote.from_currency != send.currency.code
        or quote.to_currency != target
        or quote.send_amount_minor != send.minor
    ):
        raise QuoteMismatch(
            details={
                "from_currency": quote.from_currency,
                "to_currency": quote.to_currency,
                "send_amount": Money.of(quote.send_amount_minor, quote.from_currency).format(),
            }
        )
    return quote_conversion(quote)
