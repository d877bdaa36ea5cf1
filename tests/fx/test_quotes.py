"""Quotes: a rate held for one user for a minute, used by at most one transfer."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from coffer.db import Database
from coffer.errors import AppError, ValidationFailed
from coffer.fx import service as fx
from coffer.fx.service import FxRateStale
from coffer.kit.clock import utcnow
from coffer.kit.money import Money, UnknownCurrency
from coffer.models import FxQuote
from coffer.settings import Settings
from coffer.transfers import service as transfers
from coffer.transfers.tasks import process_pending
from coffer.wallets import limits
from coffer.wallets.limits import LimitKind
from tests.fixtures.factories import assert_ledger_sound, fund, make_user
from tests.fixtures.fx import set_fixed_rates
from tests.transfers.test_service import accepted, balance_minor, request_to, send

SETTINGS = Settings()


async def quote_for(
    database: Database,
    user_id: uuid.UUID,
    amount: str = "10.00",
    *,
    settings: Settings = SETTINGS,
    from_currency: str = "USD",
    to_currency: str = "NGN",
    now: datetime | None = None,
) -> FxQuote:
    async with database.transaction() as session:
        return await fx.create_quote(
            session,
            settings,
            user_id,
            from_currency=from_currency,
            to_currency=to_currency,
            amount=amount,
            now=now,
        )


async def test_a_quote_prices_the_conversion_and_expires_in_a_minute(database: Database) -> None:
    async with database.transaction() as session:
        user = await make_user(session, currency="USD")
    before = utcnow()
    quote = await quote_for(database, user.user.id, "10.01", settings=Settings(fx_spread_bps=50))
    assert (quote.from_currency, quote.to_currency, quote.rate) == ("USD", "NGN", Decimal(1500))
    assert quote.send_amount_minor == 1001
    assert quote.fee_minor == 6  # 0.50% of 10.01 is 0.05005, rounded up
    assert quote.receive_amount_minor == (1001 - 6) * 1500
    assert quote.id.startswith("FXQ_")
    assert before + timedelta(seconds=60) <= quote.expires_at <= utcnow() + timedelta(seconds=60)


@pytest.mark.parametrize(
    ("from_currency", "to_currency", "amount", "error"),
    [
        ("USD", "USD", "1.00", ValidationFailed),
        ("USD", "XYZ", "1.00", UnknownCurrency),
        ("USD", "NGN", "1.001", AppError),
        ("USD", "NGN", "0", AppError),
    ],
)
async def test_malformed_quotes_are_refused(
    database: Database, from_currency: str, to_currency: str, amount: str, error: type[AppError]
) -> None:
    async with database.transaction() as session:
        user = await make_user(session, currency="USD")
    with pytest.raises(error):
        await quote_for(
            database, user.user.id, amount, from_currency=from_currency, to_currency=to_currency
        )


async def test_a_quote_on_a_stale_rate_is_refused(database: Database) -> None:
    async with database.transaction() as session:
        user = await make_user(session, currency="USD")
    later = utcnow() + timedelta(seconds=SETTINGS.fx_max_age_seconds + 60)
    with pytest.raises(FxRateStale):
        await quote_for(database, user.user.id, now=later)


async def test_a_transfer_naming_a_quote_gets_its_rate_even_after_the_rate_moves(
    fx_database: Database,
) -> None:
    async with fx_database.transaction() as session:
        sender = await make_user(session, currency="USD")
        recipient = await make_user(session, currency="NGN")
        await fund(session, sender.primary_wallet, 10_000)
    quote = await quote_for(fx_database, sender.user.id, "10.00")
    await set_fixed_rates(fx_database, SETTINGS, {"NGN": "1400"})

    with_quote, without = await send(
        fx_database,
        request_to(sender, recipient.primary_wallet.number, "10.00", quote_id=quote.id),
        request_to(sender, recipient.primary_wallet.number, "10.00"),
    )
    assert accepted(with_quote).receive_amount == Money.of(1_500_000, "NGN")
    assert accepted(with_quote).fx_rate == Decimal(1500)
    assert accepted(without).receive_amount == Money.of(1_400_000, "NGN")
    await process_pending(fx_database, batch_size=10)
    async with fx_database.transaction() as session:
        assert await balance_minor(session, recipient.primary_wallet) == 2_900_000
        await assert_ledger_sound(session)


async def test_a_quote_is_used_by_one_transfer_only(database: Database) -> None:
    async with database.transaction() as session:
        sender = await make_user(session, currency="USD")
        recipient = await make_user(session, currency="NGN")
        await fund(session, sender.primary_wallet, 10_000)
    quote = await quote_for(database, sender.user.id, "10.00")
    number = recipient.primary_wallet.number
    first, same_batch = await send(
        database,
        request_to(sender, number, "10.00", quote_id=quote.id),
        request_to(sender, number, "10.00", quote_id=quote.id),
    )
    (later,) = await send(database, request_to(sender, number, "10.00", quote_id=quote.id))
    accepted(first)
    assert isinstance(same_batch, AppError)
    assert same_batch.code == "quote_already_used"
    assert isinstance(later, AppError)
    assert later.code == "quote_already_used"
    # The request that lost the quote in the batch gave its daily allowance back.
    async with database.transaction() as session:
        used = await limits.used_minor(
            session, sender.user.id, LimitKind.TRANSFER, "USD", utcnow().date()
        )
    assert used == 1_000


async def test_a_quote_is_refused_when_expired_foreign_or_for_other_terms(
    database: Database,
) -> None:
    async with database.transaction() as session:
        sender = await make_user(session, currency="USD")
        stranger = await make_user(session, currency="USD")
        recipient = await make_user(session, currency="NGN")
        euros = await make_user(session, currency="EUR")
        await fund(session, sender.primary_wallet, 10_000)
        await fund(session, stranger.primary_wallet, 10_000)
    quote = await quote_for(database, sender.user.id, "10.00")
    number = recipient.primary_wallet.number
    expired_at = quote.expires_at + timedelta(seconds=1)
    async with database.transaction() as session:
        (expired,) = await transfers.create_transfers(
            session, [request_to(sender, number, "10.00", quote_id=quote.id)], now=expired_at
        )
    foreign, other_amount, other_currency, unknown = await send(
        database,
        request_to(stranger, number, "10.00", quote_id=quote.id),
        request_to(sender, number, "9.99", quote_id=quote.id),
        request_to(sender, euros.primary_wallet.number, "10.00", quote_id=quote.id),
        request_to(sender, number, "10.00", quote_id="FXQ_NOPE"),
    )
    codes = [
        o.code if isinstance(o, AppError) else o
        for o in (expired, foreign, other_amount, other_currency, unknown)
    ]
    assert codes == [
        "quote_expired",
        "quote_not_found",
        "quote_mismatch",
        "quote_mismatch",
        "quote_not_found",
    ]
    # Refused requests leave the quote usable.
    (used,) = await send(database, request_to(sender, number, "10.00", quote_id=quote.id))
    assert accepted(used).receive_amount == Money.of(1_500_000, "NGN")
