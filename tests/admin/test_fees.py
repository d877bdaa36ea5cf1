"""The monthly maintenance fee on the controllable clock: on time, never twice, blocked when
short, collected (and unblocked) by the next credit, each missed period caught up once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from coffer.db import Database
from coffer.fees import repository as fees_repository
from coffer.fees.service import PERIOD, charge_due
from coffer.identity.service import NewUser
from coffer.kit.clock import utcnow
from coffer.models import FeeStatus, Transaction, TransactionType, Wallet, WalletStatus
from coffer.settings import Settings
from coffer.transfers import service as transfers
from coffer.transfers import settlement
from coffer.transfers.service import RecipientKind, TransferRequest
from coffer.wallets import service as wallets
from tests.fixtures.factories import assert_ledger_sound, fund, make_user

FEES = {"KZT": Decimal("200.00")}
Shift = Callable[[timedelta], None]
# Limits written in tenge need no exchange rate (rates go stale on a clock 30 days ahead).
TENGE_LIMITS = Settings(limits_currency="KZT", daily_transfer_limit=Decimal("10000"))


async def _tenge_user(database: Database, balance_minor: int) -> NewUser:
    async with database.transaction() as session:
        created = await make_user(session, currency="KZT")
        if balance_minor:
            await fund(session, created.primary_wallet, balance_minor)
    return created


async def _charge(database: Database) -> None:
    after = 0
    while True:
        async with database.transaction() as session:
            report = await charge_due(session, FEES, after_wallet_id=after, limit=50)
        if report.wallets < 50:
            return
        after = report.last_wallet_id


async def _state(database: Database, user: NewUser) -> tuple[int, str, list[tuple[int, str]]]:
    async with database.transaction() as session:
        wallet = await wallets.find_wallet(session, user.primary_wallet.number)
        balance = await wallets.balance(session, wallet)
        fees = await fees_repository.fees_of_wallet(session, wallet.id)
        await assert_ledger_sound(session)
    return balance.minor, wallet.status, [(fee.period, fee.status) for fee in fees]


async def _fee_history(database: Database, wallet: Wallet) -> list[str]:
    async with database.transaction() as session:
        rows = await session.execute(
            select(Transaction.reference)
            .where(Transaction.wallet_id == wallet.id, Transaction.type == TransactionType.FEE)
            .order_by(Transaction.id)
        )
        return list(rows.scalars())


async def test_the_fee_is_charged_thirty_days_after_opening_and_never_twice(
    database: Database, shift_clock: Shift
) -> None:
    user = await _tenge_user(database, 50_000)

    shift_clock(PERIOD - timedelta(minutes=1))
    await _charge(database)
    assert await _state(database, user) == (50_000, WalletStatus.ACTIVE, [])

    shift_clock(PERIOD + timedelta(minutes=1))
    await _charge(database)
    await _charge(database)
    assert await _state(database, user) == (30_000, WalletStatus.ACTIVE, [(1, FeeStatus.PAID)])
    assert len(await _fee_history(database, user.primary_wallet)) == 1

    shift_clock(PERIOD * 2 + timedelta(minutes=1))
    await _charge(database)
    balance, _, periods = await _state(database, user)
    assert (balance, periods) == (10_000, [(1, FeeStatus.PAID), (2, FeeStatus.PAID)])


async def test_a_wallet_that_cannot_pay_is_blocked_until_a_credit_pays_the_fee(
    database: Database, shift_clock: Shift
) -> None:
    user = await _tenge_user(database, 10_000)
    async with database.transaction() as session:
        payee = await make_user(session, currency="KZT")

    shift_clock(PERIOD + timedelta(minutes=1))
    await _charge(database)
    assert await _state(database, user) == (10_000, WalletStatus.BLOCKED, [(1, FeeStatus.OWED)])

    # Outgoing money is refused with the state named; incoming is allowed.
    async with database.transaction() as session:
        [outcome] = await transfers.create_transfers(
            session,
            [
                TransferRequest(
                    sender_user_id=user.user.id,
                    recipient_kind=RecipientKind.WALLET_NUMBER,
                    recipient=payee.primary_wallet.number,
                    amount="1.00",
                )
            ],
            settings=TENGE_LIMITS,
        )
    assert getattr(outcome, "code", None) == "wallet_blocked"

    # A credit too small to cover the fee takes nothing.
    async with database.transaction() as session:
        await fund(session, user.primary_wallet, 5_000)
    assert await _state(database, user) == (15_000, WalletStatus.BLOCKED, [(1, FeeStatus.OWED)])

    async with database.transaction() as session:
        await fund(session, user.primary_wallet, 10_000)
    assert await _state(database, user) == (5_000, WalletStatus.ACTIVE, [(1, FeeStatus.PAID)])
    assert len(await _fee_history(database, user.primary_wallet)) == 1


async def test_a_transfer_into_a_blocked_wallet_pays_its_fee_at_settlement(
    database: Database, shift_clock: Shift
) -> None:
    user = await _tenge_user(database, 0)
    sender = await _tenge_user(database, 100_000)
    shift_clock(PERIOD + timedelta(minutes=1))
    await _charge(database)
    assert (await _state(database, user))[1] == WalletStatus.BLOCKED
    # The sender paid their own fee from their balance.
    assert (await _state(database, sender))[0] == 80_000

    async with database.transaction() as session:
        [outcome] = await transfers.create_transfers(
            session,
            [
                TransferRequest(
                    sender_user_id=sender.user.id,
                    recipient_kind=RecipientKind.WALLET_NUMBER,
                    recipient=user.primary_wallet.number,
                    amount="300.00",
                )
            ],
            settings=TENGE_LIMITS,
        )
    assert not isinstance(outcome, Exception), outcome
    async with database.transaction() as session:
        await settlement.process_batch(session, 500)

    assert await _state(database, user) == (10_000, WalletStatus.ACTIVE, [(1, FeeStatus.PAID)])


async def test_catch_up_charges_each_missed_period_once_oldest_first(
    database: Database, shift_clock: Shift
) -> None:
    rich = await _tenge_user(database, 100_000)
    short = await _tenge_user(database, 30_000)

    shift_clock(PERIOD * 3 + timedelta(hours=1))
    await _charge(database)
    await _charge(database)

    paid = [(1, FeeStatus.PAID), (2, FeeStatus.PAID), (3, FeeStatus.PAID)]
    assert await _state(database, rich) == (40_000, WalletStatus.ACTIVE, paid)
    assert await _fee_history(database, rich.primary_wallet) == [
        f"fee:{rich.primary_wallet.id}:{period}" for period in (1, 2, 3)
    ]
    owing = [(1, FeeStatus.PAID), (2, FeeStatus.OWED), (3, FeeStatus.OWED)]
    assert await _state(database, short) == (10_000, WalletStatus.BLOCKED, owing)

    async with database.transaction() as session:
        await fund(session, short.primary_wallet, 35_000)
    assert await _state(database, short) == (5_000, WalletStatus.ACTIVE, paid)


async def test_two_runners_racing_charge_each_period_once(
    backend: str, database_url: str, shift_clock: Shift
) -> None:
    if backend != "postgres":
        pytest.skip("the race needs concurrent writers; SQLite serializes them")
    runners = [Database(database_url, pool_size=2) for _ in range(4)]
    try:
        users = [await _tenge_user(runners[0], 100_000) for _ in range(20)]
        shift_clock(PERIOD * 2 + timedelta(hours=1))
        await asyncio.gather(*(_charge(runner) for runner in runners for _ in range(3)))
        for user in users:
            balance, status, periods = await _state(runners[0], user)
            assert (balance, status) == (60_000, WalletStatus.ACTIVE)
            assert periods == [(1, FeeStatus.PAID), (2, FeeStatus.PAID)]
            assert len(await _fee_history(runners[0], user.primary_wallet)) == 2
    finally:
        for runner in runners:
            await runner.dispose()


async def test_periods_due_before_the_fee_was_introduced_are_waived(
    database: Database, shift_clock: Shift
) -> None:
    user = await _tenge_user(database, 100_000)
    shift_clock(PERIOD * 3 + timedelta(hours=1))
    # The fee was turned on just before the third period fell due.
    since = utcnow() - timedelta(hours=2)
    async with database.transaction() as session:
        await charge_due(session, FEES, since=since)
    async with database.transaction() as session:
        await charge_due(session, FEES, since=since)
    waived = [(1, FeeStatus.WAIVED), (2, FeeStatus.WAIVED), (3, FeeStatus.PAID)]
    assert await _state(database, user) == (80_000, WalletStatus.ACTIVE, waived)
