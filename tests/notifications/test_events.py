"""Events are written with the change they announce, or not at all, on SQLite and PostgreSQL:
a settled transfer batch, fees, an operator's freeze, and a rollback or savepoint that drops
them. Ids follow commit order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.admin import wallets as admin_wallets
from coffer.db import Database
from coffer.fees.service import PERIOD, charge_due
from coffer.kit.clock import utcnow
from coffer.models import Event
from coffer.notifications.tasks import purge_events
from coffer.settings import Settings
from coffer.transfers import service as transfers
from coffer.transfers.service import RecipientKind, TransferRequest
from coffer.transfers.tasks import process_pending
from tests.fixtures.events import events_of
from tests.fixtures.factories import fund, make_user

Shift = Callable[[timedelta], None]


def _request(sender_id: object, number: str, amount: str) -> TransferRequest:
    return TransferRequest(
        sender_user_id=sender_id,  # type: ignore[arg-type]
        recipient_kind=RecipientKind.WALLET_NUMBER,
        recipient=number,
        amount=amount,
    )


async def test_a_settled_batch_announces_each_side_and_each_balance(database: Database) -> None:
    async with database.transaction() as session:
        alice = await make_user(session, first_name="Alice")
        bob = await make_user(session, first_name="Bob")
        await fund(session, alice.primary_wallet, 10_000)
    async with database.transaction() as session:
        ok, too_much = await transfers.create_transfers(
            session,
            [
                _request(alice.user.id, bob.primary_wallet.number, "30.00"),
                _request(alice.user.id, bob.primary_wallet.number, "80.00"),
            ],
        )
    # The second passed the unlocked pre-check but not the ledger once the first settled.
    assert isinstance(ok, transfers.AcceptedTransfer)
    assert isinstance(too_much, transfers.AcceptedTransfer)
    await process_pending(database, batch_size=50)

    sent = await events_of(database, alice.user.id)
    assert [e["type"] for e in sent] == [
        "balance.updated",  # the funding adjustment
        "balance.updated",  # the 30.00 leaving
        "transfer.completed",
        "transfer.failed",
    ]
    assert sent[1]["data"] == {
        "wallet_number": alice.primary_wallet.number,
        "currency": "NGN",
        "balance": "70.00",
        "reference": ok.reference,
        "cause": "transfer",
    }
    assert sent[2]["data"]["reference"] == ok.reference
    assert sent[2]["data"]["amount"] == "30.00"
    assert sent[3]["data"]["reference"] == too_much.reference
    assert sent[3]["data"]["failure_reason"] == "insufficient_funds"
    assert [e["id"] for e in sent] == sorted(e["id"] for e in sent)

    received = await events_of(database, bob.user.id)
    assert [e["type"] for e in received] == ["balance.updated", "transfer.received"]
    assert received[0]["data"]["balance"] == "30.00"
    assert received[1]["data"] == {
        "amount": "30.00",
        "currency": "NGN",
        "reference": ok.reference,
        "wallet_number": bob.primary_wallet.number,
        "sender_wallet_number": alice.primary_wallet.number,
        "sender_name": "Alice User",
    }
    assert received[1]["version"] == 1
    assert received[1]["created_at"].endswith("Z")


async def test_a_rolled_back_transaction_announces_nothing(database: Database) -> None:
    async with database.transaction() as session:
        user = await make_user(session)

    async def fund_then_fail() -> None:
        async with database.transaction() as session:
            await fund(session, user.primary_wallet, 5_000)
            raise RuntimeError("after the credit")

    with pytest.raises(RuntimeError, match="after the credit"):
        await fund_then_fail()
    assert await events_of(database, user.user.id) == []


async def test_events_recorded_in_a_rolled_back_savepoint_are_dropped(database: Database) -> None:
    async with database.transaction() as session:
        user = await make_user(session)

    async def fund_in_savepoint_then_fail(session: AsyncSession) -> None:
        async with session.begin_nested():
            await fund(session, user.primary_wallet, 2_000)
            raise RuntimeError("inside the savepoint")

    async with database.transaction() as session:
        await fund(session, user.primary_wallet, 1_000)
        with pytest.raises(RuntimeError, match="inside the savepoint"):
            await fund_in_savepoint_then_fail(session)
        async with session.begin_nested():
            await fund(session, user.primary_wallet, 4_000)

    balances = [e["data"]["balance"] for e in await events_of(database, user.user.id)]
    assert balances == ["10.00", "50.00"]


async def test_fees_announce_the_charge_the_block_and_the_unblock(
    database: Database, shift_clock: Shift
) -> None:
    fees = {"KZT": Decimal("200.00")}
    async with database.transaction() as session:
        rich = await make_user(session, currency="KZT")
        poor = await make_user(session, currency="KZT")
        await fund(session, rich.primary_wallet, 50_000)
    shift_clock(PERIOD + timedelta(minutes=1))
    after = 0
    while True:
        async with database.transaction() as session:
            report = await charge_due(session, fees, after_wallet_id=after, limit=50)
        if report.wallets < 50:
            break
        after = report.last_wallet_id

    charged = await events_of(database, rich.user.id, "fee.charged")
    assert [e["data"]["amount"] for e in charged] == ["200.00"]
    assert charged[0]["data"]["period"] == 1
    (blocked,) = await events_of(database, poor.user.id, "wallet.blocked")
    assert blocked["data"]["owed_amount"] == "200.00"
    assert blocked["data"]["status"] == "blocked"

    async with database.transaction() as session:
        await fund(session, poor.primary_wallet, 30_000)
    tail = await events_of(database, poor.user.id, after_id=blocked["id"])
    assert [e["type"] for e in tail] == [
        "balance.updated",
        "balance.updated",
        "fee.charged",
        "wallet.unblocked",
    ]
    assert [tail[0]["data"]["balance"], tail[1]["data"]["balance"]] == ["300.00", "100.00"]
    assert tail[3]["data"]["paid_amount"] == "200.00"


async def test_a_freeze_and_an_unfreeze_are_announced(database: Database) -> None:
    settings = Settings()
    async with database.transaction() as session:
        user = await make_user(session)
    async with database.transaction() as session:
        await admin_wallets.freeze(
            session, settings, user.primary_wallet.number, reason="review", actor="test"
        )
    async with database.transaction() as session:
        await admin_wallets.unfreeze(
            session, settings, user.primary_wallet.number, reason="cleared", actor="test"
        )
    found = await events_of(database, user.user.id)
    assert [(e["type"], e["data"]["status"], e["data"]["reason"]) for e in found] == [
        ("wallet.frozen", "frozen", "review"),
        ("wallet.unfrozen", "active", "cleared"),
    ]


async def test_concurrent_writers_get_ids_in_commit_order(database: Database) -> None:
    """Each writer records, then waits before committing (the first to start commits last);
    the ids must follow the commits, or a reader past a later one would miss an earlier."""
    async with database.transaction() as session:
        users = [await make_user(session) for _ in range(6)]
    committed: list[int] = []

    async def credit(index: int) -> None:
        async with database.transaction() as session:
            await fund(session, users[index].primary_wallet, 100 + index)
            await asyncio.sleep(0.02 * (6 - index))
        committed.append(index)

    await asyncio.gather(*(credit(index) for index in range(6)))
    ids = {index: (await events_of(database, users[index].user.id))[0]["id"] for index in range(6)}
    assert [ids[index] for index in committed] == sorted(ids.values())


async def test_the_purge_deletes_only_events_past_retention(
    database: Database, shift_clock: Shift
) -> None:
    async with database.transaction() as session:
        old = await make_user(session)
        await fund(session, old.primary_wallet, 100)
    shift_clock(timedelta(seconds=3_600))
    async with database.transaction() as session:
        recent = await make_user(session)
        await fund(session, recent.primary_wallet, 100)

    await purge_events(database, Settings(events_retention_seconds=1_800), {})

    assert await events_of(database, old.user.id) == []
    assert len(await events_of(database, recent.user.id)) == 1
    async with database.transaction() as session:
        oldest = (await session.execute(select(func.min(Event.created_at)))).scalar_one()
    assert oldest is not None
    assert oldest >= utcnow() - timedelta(seconds=1_800)
