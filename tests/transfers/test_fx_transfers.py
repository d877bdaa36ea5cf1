"""Transfers to a wallet in another currency: one ledger entry through the FX accounts, each
currency balanced, the spread to fees, history in each wallet's own currency."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import Database
from coffer.errors import AppError
from coffer.kit.clock import utcnow
from coffer.kit.money import Money
from coffer.models import FxRate, LedgerAccount, LedgerEntry, LedgerPosting, Transaction, Transfer
from coffer.settings import Settings
from coffer.transfers import service as transfers
from coffer.transfers.tasks import process_pending
from tests.fixtures.factories import assert_ledger_sound, fund, make_user
from tests.fixtures.fx import set_fixed_rates
from tests.transfers.test_service import accepted, balance_minor, request_to, send


async def entry_postings(session: AsyncSession, reference: str) -> dict[str, int]:
    rows = await session.execute(
        select(LedgerAccount.code, LedgerPosting.amount)
        .join(LedgerPosting, LedgerPosting.account_id == LedgerAccount.id)
        .join(LedgerEntry, LedgerEntry.id == LedgerPosting.entry_id)
        .where(LedgerEntry.reference == reference)
    )
    return {row.code: row.amount for row in rows}


def per_currency(postings: dict[str, int], currency_of: dict[str, str]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for code, amount in postings.items():
        totals[currency_of[code]] += amount
    return dict(totals)


async def test_a_cross_currency_transfer_is_one_entry_balanced_in_each_currency(
    fx_database: Database,
) -> None:
    settings = Settings()
    await set_fixed_rates(fx_database, settings, {"NGN": "1532.5"})
    async with fx_database.transaction() as session:
        sender = await make_user(session, currency="USD", first_name="Dollar")
        recipient = await make_user(session, currency="NGN", first_name="Naira")
        await fund(session, sender.primary_wallet, 10_000)
    (outcome,) = await send(
        fx_database,
        request_to(sender, recipient.primary_wallet.number, "10.00", narration="school fees"),
    )
    transfer = accepted(outcome)
    assert transfer.amount == Money.of(1_000, "USD")
    assert transfer.receive_amount == Money.of(1_532_500, "NGN")
    assert transfer.fee == Money.of(0, "USD")
    await process_pending(fx_database, batch_size=10)

    async with fx_database.transaction() as session:
        assert await balance_minor(session, sender.primary_wallet) == 9_000
        assert await balance_minor(session, recipient.primary_wallet) == 1_532_500
        postings = await entry_postings(session, transfer.reference)
        sender_code = f"wallet:{sender.primary_wallet.number}"
        recipient_code = f"wallet:{recipient.primary_wallet.number}"
        assert postings == {
            sender_code: -1_000,
            "system:fx:USD": 1_000,
            "system:fx:NGN": -1_532_500,
            recipient_code: 1_532_500,
        }
        currency_of = {
            sender_code: "USD",
            "system:fx:USD": "USD",
            "system:fx:NGN": "NGN",
            recipient_code: "NGN",
        }
        assert per_currency(postings, currency_of) == {"USD": 0, "NGN": 0}

        row = (
            await session.execute(select(Transfer).where(Transfer.reference == transfer.reference))
        ).scalar_one()
        assert (row.status, row.receive_currency, row.receive_amount_minor) == (
            "completed",
            "NGN",
            1_532_500,
        )
        history = {
            h.type: h
            for h in (
                await session.execute(
                    select(Transaction).where(Transaction.reference == transfer.reference)
                )
            ).scalars()
        }
        out, into = history["transfer_out"], history["transfer_in"]
        assert (out.wallet_id, out.amount_minor, out.currency) == (
            sender.primary_wallet.id,
            1_000,
            "USD",
        )
        assert (into.wallet_id, into.amount_minor, into.currency) == (
            recipient.primary_wallet.id,
            1_532_500,
            "NGN",
        )
        fx_terms = {
            "rate": "1532.5",
            "send_amount": "10.00",
            "send_currency": "USD",
            "receive_amount": "15325.00",
            "receive_currency": "NGN",
            "fee": "0.00",
        }
        assert into.metadata_ == {"narration": "school fees", "fx": fx_terms}
        assert out.metadata_ == {"narration": "school fees", "fx": fx_terms}
        await assert_ledger_sound(session)


async def test_the_spread_goes_to_fees_in_the_senders_currency(database: Database) -> None:
    settings = Settings(fx_spread_bps=75)
    async with database.transaction() as session:
        sender = await make_user(session, currency="USD")
        recipient = await make_user(session, currency="NGN")
        await fund(session, sender.primary_wallet, 10_000)
    async with database.transaction() as session:
        (outcome,) = await transfers.create_transfers(
            session,
            [request_to(sender, recipient.primary_wallet.number, "10.01")],
            settings=settings,
        )
    transfer = accepted(outcome)
    # 0.75% of 10.01 USD is 0.075075, rounded up to 0.08; 9.93 USD at 1500 is 14895.00 NGN.
    assert transfer.fee == Money.of(8, "USD")
    assert transfer.receive_amount == Money.of(1_489_500, "NGN")
    await process_pending(database, batch_size=50)
    async with database.transaction() as session:
        postings = await entry_postings(session, transfer.reference)
        assert postings == {
            f"wallet:{sender.primary_wallet.number}": -1_001,
            "system:fx:USD": 993,
            "system:fees:USD": 8,
            "system:fx:NGN": -1_489_500,
            f"wallet:{recipient.primary_wallet.number}": 1_489_500,
        }
        assert await balance_minor(session, sender.primary_wallet) == 10_000 - 1_001
        await assert_ledger_sound(session)


async def test_a_transfer_without_a_fresh_rate_is_refused_and_stores_nothing(
    fx_database: Database,
) -> None:
    async with fx_database.transaction() as session:
        sender = await make_user(session, currency="USD")
        tenge = await make_user(session, currency="KZT")
        naira = await make_user(session, currency="NGN")
        await fund(session, sender.primary_wallet, 10_000)
        await session.execute(delete(FxRate).where(FxRate.currency == "KZT"))
    (no_rate,) = await send(fx_database, request_to(sender, tenge.primary_wallet.number, "1.00"))
    later = utcnow() + timedelta(seconds=Settings().fx_max_age_seconds + 1)
    async with fx_database.transaction() as session:
        (stale,) = await transfers.create_transfers(
            session, [request_to(sender, naira.primary_wallet.number, "1.00")], now=later
        )
    assert isinstance(no_rate, AppError)
    assert (no_rate.code, no_rate.http_status) == ("fx_rate_unavailable", 422)
    assert isinstance(stale, AppError)
    assert (stale.code, stale.http_status) == ("fx_rate_stale", 422)
    async with fx_database.transaction() as session:
        assert (await session.execute(select(Transfer.id))).first() is None


async def test_a_failed_cross_currency_transfer_moves_nothing(database: Database) -> None:
    async with database.transaction() as session:
        sender = await make_user(session, currency="USD")
        recipient = await make_user(session, currency="EUR")
        await fund(session, sender.primary_wallet, 1_000)
    first, second = await send(
        database,
        request_to(sender, recipient.primary_wallet.number, "6.00"),
        request_to(sender, recipient.primary_wallet.number, "6.00"),
    )
    await process_pending(database, batch_size=50)
    async with database.transaction() as session:
        statuses = [
            (
                await session.execute(
                    select(Transfer.status, Transfer.failure_reason).where(
                        Transfer.reference == accepted(o).reference
                    )
                )
            ).one()
            for o in (first, second)
        ]
        assert [tuple(s) for s in statuses] == [
            ("completed", None),
            ("failed", "insufficient_funds"),
        ]
        assert await entry_postings(session, accepted(second).reference) == {}
        assert await balance_minor(session, sender.primary_wallet) == 400
        assert await balance_minor(session, recipient.primary_wallet) == 552  # 6.00 x 0.92
        await assert_ledger_sound(session)
