"""Daily limits: consumed when a transfer is accepted, given back when it fails, converted to
the wallet's currency, and renewed at midnight in the configured timezone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from coffer.db import Database
from coffer.errors import AppError
from coffer.identity.service import NewUser
from coffer.kit.clock import utcnow
from coffer.models import Wallet, WalletStatus
from coffer.settings import Settings
from coffer.transfers import service as transfers
from coffer.transfers.service import TransferOutcome, TransferRequest
from coffer.transfers.tasks import process_pending
from coffer.wallets import limits
from coffer.wallets.limits import LimitClaim, LimitKind
from tests.fixtures.factories import assert_ledger_sound, fund, make_user
from tests.transfers.test_service import accepted, request_to

SETTINGS = Settings()  # 100.00 USD a day for transfers and for withdrawals, UTC days


async def send_at(
    database: Database,
    *requests: TransferRequest,
    now: datetime | None = None,
    settings: Settings = SETTINGS,
) -> list[TransferOutcome]:
    async with database.transaction() as session:
        return await transfers.create_transfers(session, list(requests), settings=settings, now=now)


def refused_code(outcome: TransferOutcome) -> str:
    assert isinstance(outcome, AppError), outcome
    return outcome.code


async def used(database: Database, user: NewUser, currency: str, day: datetime) -> int:
    async with database.transaction() as session:
        return await limits.used_minor(
            session, user.user.id, LimitKind.TRANSFER, currency, day.date()
        )


async def funded_pair(
    database: Database, currency: str, minor: int, recipient_currency: str | None = None
) -> tuple[NewUser, NewUser]:
    async with database.transaction() as session:
        sender = await make_user(session, currency=currency)
        recipient = await make_user(session, currency=recipient_currency or currency)
        await fund(session, sender.primary_wallet, minor)
    return sender, recipient


async def test_the_limit_holds_to_the_minor_unit(database: Database) -> None:
    sender, recipient = await funded_pair(database, "USD", 50_000)
    number = recipient.primary_wallet.number
    sixty, forty, one_cent = await send_at(
        database,
        request_to(sender, number, "60.00"),
        request_to(sender, number, "40.00"),
        request_to(sender, number, "0.01"),
    )
    accepted(sixty)
    accepted(forty)
    assert refused_code(one_cent) == "daily_limit_exceeded"
    assert isinstance(one_cent, AppError)
    assert one_cent.http_status == 403
    assert one_cent.details == {"kind": "transfer", "limit": "100.00", "currency": "USD"}
    assert await used(database, sender, "USD", utcnow()) == 10_000


async def test_the_limit_converts_to_the_wallets_currency(database: Database) -> None:
    # 100.00 USD at the migration's 1500 NGN per USD: 150,000.00 NGN.
    sender, recipient = await funded_pair(database, "NGN", 20_000_000)
    number = recipient.primary_wallet.number
    whole, over = await send_at(
        database, request_to(sender, number, "150000.00"), request_to(sender, number, "0.01")
    )
    accepted(whole)
    assert refused_code(over) == "daily_limit_exceeded"
    assert isinstance(over, AppError)
    assert over.details["limit"] == "150000.00"
    assert await used(database, sender, "NGN", utcnow()) == 15_000_000


async def test_a_limit_that_cannot_be_converted_is_not_guessed(database: Database) -> None:
    sender, recipient = await funded_pair(database, "NGN", 100_000)
    later = utcnow() + timedelta(seconds=SETTINGS.fx_max_age_seconds + 1)
    (outcome,) = await send_at(
        database, request_to(sender, recipient.primary_wallet.number, "1.00"), now=later
    )
    assert refused_code(outcome) == "fx_rate_stale"


async def test_the_limit_renews_at_midnight_in_the_configured_timezone(
    database: Database,
) -> None:
    lagos = Settings(limits_timezone="Africa/Lagos")  # UTC+1 all year
    sender, recipient = await funded_pair(database, "USD", 100_000)
    number = recipient.primary_wallet.number
    late_evening = datetime(2026, 3, 10, 22, 30, tzinfo=UTC)  # 23:30 in Lagos
    just_before = datetime(2026, 3, 10, 22, 59, 59, tzinfo=UTC)
    midnight_in_lagos = datetime(2026, 3, 10, 23, 0, tzinfo=UTC)

    (full,) = await send_at(
        database, request_to(sender, number, "100.00"), now=late_evening, settings=lagos
    )
    (same_day,) = await send_at(
        database, request_to(sender, number, "0.01"), now=just_before, settings=lagos
    )
    (next_day,) = await send_at(
        database, request_to(sender, number, "100.00"), now=midnight_in_lagos, settings=lagos
    )
    accepted(full)
    assert refused_code(same_day) == "daily_limit_exceeded"
    accepted(next_day)

    # In UTC, 23:00 is still the same day as 22:30: another user sees no renewal there.
    other, _ = await funded_pair(database, "USD", 100_000)
    (first,) = await send_at(database, request_to(other, number, "100.00"), now=late_evening)
    (still_today,) = await send_at(
        database, request_to(other, number, "0.01"), now=midnight_in_lagos
    )
    accepted(first)
    assert refused_code(still_today) == "daily_limit_exceeded"


async def test_a_failed_transfer_gives_its_allowance_back(database: Database) -> None:
    sender, recipient = await funded_pair(database, "USD", 10_000)
    number = recipient.primary_wallet.number
    (first,) = await send_at(database, request_to(sender, number, "100.00"))
    accepted(first)
    async with database.transaction() as session:
        await session.execute(
            update(Wallet)
            .where(Wallet.id == recipient.primary_wallet.id)
            .values(status=WalletStatus.FROZEN)
        )
    await process_pending(database, batch_size=50)
    assert await used(database, sender, "USD", utcnow()) == 0

    async with database.transaction() as session:
        await session.execute(
            update(Wallet)
            .where(Wallet.id == recipient.primary_wallet.id)
            .values(status=WalletStatus.ACTIVE)
        )
    (again,) = await send_at(database, request_to(sender, number, "100.00"))
    await process_pending(database, batch_size=50)
    accepted(again)
    assert await used(database, sender, "USD", utcnow()) == 10_000
    async with database.transaction() as session:
        await assert_ledger_sound(session)


async def test_withdrawals_have_their_own_allowance(database: Database) -> None:
    async with database.transaction() as session:
        user_id = (await make_user(session, currency="USD")).user.id
    today = utcnow().date()
    claim = LimitClaim(user_id, LimitKind.WITHDRAWAL, "USD", today, 7_000)
    async with database.transaction() as session:
        granted = await limits.consume(session, [(claim, 10_000), (claim, 10_000)])
        assert granted == [True, False]
        withdrawn = await limits.used_minor(session, user_id, LimitKind.WITHDRAWAL, "USD", today)
        transferred = await limits.used_minor(session, user_id, LimitKind.TRANSFER, "USD", today)
        assert (withdrawn, transferred) == (7_000, 0)
        await limits.release(session, [claim])
        assert await limits.used_minor(session, user_id, LimitKind.WITHDRAWAL, "USD", today) == 0
