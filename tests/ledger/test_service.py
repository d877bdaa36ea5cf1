"""Posting entries through the ledger service, on SQLite and PostgreSQL.

Tests on the shared database open their own wallets and system accounts (unique codes), so they
never see each other's balances; the ones that corrupt the ledger on purpose get a database of
their own from `fresh_database_url`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import Database
from coffer.ledger import service as ledger
from coffer.ledger.errors import (
    AccountNotFound,
    EntryReferenceConflict,
    InsufficientFunds,
    InvalidEntry,
)
from coffer.ledger.postings import EntryKind, EntryRequest, Posting
from coffer.ledger.service import PostedEntry, RejectedEntry
from coffer.ledger.verify import verify_ledger
from coffer.models import LedgerEntry
from tests.fixtures.factories import assert_ledger_sound, fund, make_user

CHECK_NAMES = [
    "entries_balance",
    "balances_match_postings",
    "no_negative_wallets",
    "currencies_sum_to_zero",
    "append_only",
]


def new_reference() -> str:
    return f"test-{uuid.uuid4().hex}"


async def wallet_account(session: AsyncSession, *, currency: str = "NGN", funds: int = 0) -> int:
    """The ledger account of a new user's primary wallet, funded through an adjustment."""
    created = await make_user(session, currency=currency)
    if funds:
        await fund(session, created.primary_wallet, funds)
    return created.primary_wallet.ledger_account_id


async def outside_account(session: AsyncSession, currency: str = "NGN") -> int:
    """A system account of this test's own (unique code), facing the outside world."""
    return await ledger.system_account(session, f"test-{uuid.uuid4().hex[:16]}", currency)


async def transfer(
    session: AsyncSession,
    debit: int,
    credit: int,
    amount: int,
    *,
    reference: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> PostedEntry:
    return await ledger.post_entry(
        session,
        EntryKind.TRANSFER,
        reference or new_reference(),
        ledger.movement(debit, credit, amount),
        metadata,
    )


async def scalar(session: AsyncSession, sql: str, **params: Any) -> Any:
    return (await session.execute(text(sql), params)).scalar_one()


async def entries_with_reference(session: AsyncSession, reference: str) -> int:
    sql = "SELECT COUNT(*) FROM ledger_entries WHERE reference = :ref"
    return int(await scalar(session, sql, ref=reference))


async def postings_of(session: AsyncSession, account_id: int) -> list[tuple[int, int | None]]:
    """(amount, balance_after) of an account's postings, oldest first."""
    rows = await session.execute(
        text(
            "SELECT amount, balance_after FROM ledger_postings WHERE account_id = :id ORDER BY id"
        ),
        {"id": account_id},
    )
    return [(row.amount, row.balance_after) for row in rows]


async def stored_balance(session: AsyncSession, account_id: int) -> int | None:
    sql = "SELECT balance FROM ledger_accounts WHERE id = :id"
    balance: int | None = await scalar(session, sql, id=account_id)
    return balance


async def balances(session: AsyncSession, *account_ids: int) -> list[int]:
    return [await ledger.balance_of(session, account_id) for account_id in account_ids]


async def assert_refused(
    database: Database,
    sql: str,
    params: dict[str, Any],
    *,
    match: str,
    error: type[DBAPIError] = DBAPIError,
) -> None:
    """The statement fails; whatever happens, its transaction is rolled back."""
    async with database.sessionmaker() as session:
        try:
            with pytest.raises(error, match=match):
                await session.execute(text(sql), params)
        finally:
            await session.rollback()


@asynccontextmanager
async def fresh_database(fresh_database_url: Callable[..., str]) -> AsyncIterator[Database]:
    # The factory runs Alembic on its own event loop: keep it off this test's loop.
    url = await asyncio.to_thread(fresh_database_url)
    database = Database(url, pool_size=2)
    try:
        yield database
    finally:
        await database.dispose()


# --- posting -----------------------------------------------------------------------------------


async def test_posted_entry_moves_money_and_records_balance_after(database: Database) -> None:
    async with database.transaction() as session:
        payer = await wallet_account(session, funds=1_000)
        payee = await wallet_account(session)
        posted = await transfer(session, payer, payee, 300, metadata={"note": "rent"})

    assert not posted.replayed
    assert posted.balances_after == {payer: 700, payee: 300}
    async with database.transaction() as session:
        assert await balances(session, payer, payee) == [700, 300]
        assert await stored_balance(session, payer) == 700
        assert await postings_of(session, payer) == [(1_000, 1_000), (-300, 700)]
        assert await postings_of(session, payee) == [(300, 300)]
        row = (
            await session.execute(
                select(LedgerEntry.id, LedgerEntry.kind, LedgerEntry.metadata_).where(
                    LedgerEntry.reference == posted.reference
                )
            )
        ).one()
        assert tuple(row) == (posted.entry_id, "transfer", {"note": "rent"})
        await assert_ledger_sound(session)


async def test_insufficient_funds_writes_nothing(database: Database) -> None:
    reference = new_reference()
    async with database.transaction() as session:
        payer = await wallet_account(session, funds=100)
        payee = await wallet_account(session)
        postings_before = await postings_of(session, payer)
        with pytest.raises(InsufficientFunds) as raised:
            await transfer(session, payer, payee, 101, reference=reference)
        assert raised.value.account_id == payer
        # The caller may carry on and commit: the failed entry left nothing behind.

    async with database.transaction() as session:
        assert await entries_with_reference(session, reference) == 0
        assert await postings_of(session, payer) == postings_before
        assert await postings_of(session, payee) == []
        assert await balances(session, payer, payee) == [100, 0]
        assert await stored_balance(session, payee) == 0
        await assert_ledger_sound(session)


async def test_a_wallet_can_be_emptied_to_exactly_zero(database: Database) -> None:
    async with database.transaction() as session:
        payer = await wallet_account(session, funds=250)
        payee = await wallet_account(session)
        posted = await transfer(session, payer, payee, 250)
        assert posted.balances_after == {payer: 0, payee: 250}
        with pytest.raises(InsufficientFunds):
            await transfer(session, payer, payee, 1)
    async with database.transaction() as session:
        assert await balances(session, payer, payee) == [0, 250]
        await assert_ledger_sound(session)


async def test_unbalanced_entry_is_invalid_and_writes_nothing(database: Database) -> None:
    reference = new_reference()
    async with database.transaction() as session:
        payer = await wallet_account(session, funds=500)
        payee = await wallet_account(session)
        with pytest.raises(InvalidEntry, match="does not balance"):
            await ledger.post_entry(
                session,
                EntryKind.TRANSFER,
                reference,
                [Posting(payer, -100), Posting(payee, 90)],
            )
    async with database.transaction() as session:
        assert await entries_with_reference(session, reference) == 0
        assert await balances(session, payer, payee) == [500, 0]


async def test_entry_across_currencies_must_balance_in_each(database: Database) -> None:
    reference = new_reference()
    async with database.transaction() as session:
        naira = await wallet_account(session, currency="NGN", funds=500)
        yen = await wallet_account(session, currency="JPY")
        with pytest.raises(InvalidEntry, match="does not balance"):
            await transfer(session, naira, yen, 100, reference=reference)
    async with database.transaction() as session:
        assert await entries_with_reference(session, reference) == 0
        assert await balances(session, naira, yen) == [500, 0]


async def test_unknown_account_is_refused(database: Database) -> None:
    reference = new_reference()
    async with database.transaction() as session:
        payer = await wallet_account(session, funds=500)
        missing = 1 + int(await scalar(session, "SELECT MAX(id) FROM ledger_accounts"))
        with pytest.raises(AccountNotFound, match=str(missing)):
            await transfer(session, payer, missing, 100, reference=reference)
    async with database.transaction() as session:
        assert await entries_with_reference(session, reference) == 0
        assert await balances(session, payer) == [500]


async def test_malformed_entry_is_refused_before_the_database(database: Database) -> None:
    async with database.transaction() as session:
        payer = await wallet_account(session, funds=500)
        with pytest.raises(InvalidEntry, match="once per entry"):
            await transfer(session, payer, payer, 100)
        with pytest.raises(InvalidEntry, match="non-zero"):
            await transfer(session, payer, await wallet_account(session), 0)
        assert await balances(session, payer) == [500]


# --- idempotency -------------------------------------------------------------------------------


async def test_replayed_reference_posts_nothing_new(database: Database) -> None:
    reference = new_reference()
    metadata = {"note": "rent", "period": {"year": 2026, "month": 11}}
    async with database.transaction() as session:
        payer = await wallet_account(session, funds=1_000)
        payee = await wallet_account(session)
        first = await transfer(session, payer, payee, 300, reference=reference, metadata=metadata)

    async with database.transaction() as session:
        # Same content, postings in another order and metadata keys in another order.
        replay = await ledger.post_entry(
            session,
            EntryKind.TRANSFER,
            reference,
            [Posting(payee, 300), Posting(payer, -300)],
            {"period": {"month": 11, "year": 2026}, "note": "rent"},
        )
        again = await transfer(session, payer, payee, 300, reference=reference, metadata=metadata)

    assert not first.replayed
    assert replay.replayed
    assert again.replayed
    assert replay.entry_id == again.entry_id == first.entry_id
    assert replay.reference == reference
    async with database.transaction() as session:
        assert await entries_with_reference(session, reference) == 1
        assert await balances(session, payer, payee) == [700, 300]
        assert await postings_of(session, payee) == [(300, 300)]
        await assert_ledger_sound(session)


async def test_replay_in_the_same_transaction_posts_nothing_new(database: Database) -> None:
    reference = new_reference()
    async with database.transaction() as session:
        payer = await wallet_account(session, funds=1_000)
        payee = await wallet_account(session)
        first = await transfer(session, payer, payee, 300, reference=reference)
        replay = await transfer(session, payer, payee, 300, reference=reference)
        assert replay == PostedEntry(reference, first.entry_id, replayed=True)
        assert await balances(session, payer, payee) == [700, 300]
    async with database.transaction() as session:
        assert await entries_with_reference(session, reference) == 1
        await assert_ledger_sound(session)


async def test_replay_needs_no_funds(database: Database) -> None:
    # The retry of a transfer that emptied the wallet is answered from the stored entry.
    reference = new_reference()
    async with database.transaction() as session:
        payer = await wallet_account(session, funds=300)
        payee = await wallet_account(session)
        first = await transfer(session, payer, payee, 300, reference=reference)
    async with database.transaction() as session:
        replay = await transfer(session, payer, payee, 300, reference=reference)
    assert replay == PostedEntry(reference, first.entry_id, replayed=True)
    async with database.transaction() as session:
        assert await balances(session, payer, payee) == [0, 300]


async def test_metadata_is_compared_as_stored(database: Database) -> None:
    # Values JSON cannot hold are stored as text; replaying them must still match.
    reference = new_reference()
    metadata = {"amount": Decimal("3.50"), "account": uuid.UUID(int=7)}
    async with database.transaction() as session:
        payer = await wallet_account(session, funds=1_000)
        payee = await wallet_account(session)
        await transfer(session, payer, payee, 350, reference=reference, metadata=metadata)
    async with database.transaction() as session:
        replay = await transfer(session, payer, payee, 350, reference=reference, metadata=metadata)
        assert replay.replayed
        changed = {**metadata, "amount": Decimal("3.5")}
        with pytest.raises(EntryReferenceConflict):
            await transfer(session, payer, payee, 350, reference=reference, metadata=changed)


CONFLICTS = ["amount", "kind", "metadata", "metadata-dropped", "counterparty", "direction"]


@pytest.mark.parametrize("difference", CONFLICTS)
async def test_reused_reference_with_different_content_conflicts(
    database: Database, difference: str
) -> None:
    reference = new_reference()
    async with database.transaction() as session:
        payer = await wallet_account(session, funds=1_000)
        payee = await wallet_account(session, funds=1_000)
        other = await wallet_account(session)
        await transfer(session, payer, payee, 100, reference=reference, metadata={"note": "rent"})

    kind = EntryKind.TRANSFER
    postings = ledger.movement(payer, payee, 100)
    metadata: dict[str, Any] | None = {"note": "rent"}
    if difference == "amount":
        postings = ledger.movement(payer, payee, 101)
    elif difference == "kind":
        kind = EntryKind.ADJUSTMENT
    elif difference == "metadata":
        metadata = {"note": "food"}
    elif difference == "metadata-dropped":
        metadata = None
    elif difference == "counterparty":
        postings = ledger.movement(payer, other, 100)
    elif difference == "direction":
        postings = ledger.movement(payee, payer, 100)

    async with database.transaction() as session:
        with pytest.raises(EntryReferenceConflict) as raised:
            await ledger.post_entry(session, kind, reference, postings, metadata)
        assert raised.value.details == {"reference": reference}

    async with database.transaction() as session:
        assert await entries_with_reference(session, reference) == 1
        assert await balances(session, payer, payee, other) == [900, 1_100, 0]
        await assert_ledger_sound(session)


async def test_a_conflict_in_a_batch_refuses_the_whole_batch(database: Database) -> None:
    used = new_reference()
    fresh = new_reference()
    async with database.transaction() as session:
        payer = await wallet_account(session, funds=1_000)
        payee = await wallet_account(session)
        await transfer(session, payer, payee, 100, reference=used)
    async with database.transaction() as session:
        with pytest.raises(EntryReferenceConflict):
            await ledger.post_entries(
                session,
                [
                    EntryRequest(EntryKind.TRANSFER, fresh, ledger.movement(payer, payee, 50)),
                    EntryRequest(EntryKind.TRANSFER, used, ledger.movement(payer, payee, 999)),
                ],
            )
    async with database.transaction() as session:
        assert await entries_with_reference(session, fresh) == 0
        assert await balances(session, payer, payee) == [900, 100]


# --- batches -----------------------------------------------------------------------------------


async def test_batch_rejects_only_the_entry_that_lacks_funds(database: Database) -> None:
    refs = [new_reference() for _ in range(3)]
    async with database.transaction() as session:
        payer = await wallet_account(session, funds=500)
        first_payee = await wallet_account(session)
        second_payee = await wallet_account(session)
        results = await ledger.post_entries(
            session,
            [
                EntryRequest(EntryKind.TRANSFER, refs[0], ledger.movement(payer, first_payee, 200)),
                # 300 left: this one cannot be covered...
                EntryRequest(
                    EntryKind.TRANSFER, refs[1], ledger.movement(payer, second_payee, 400)
                ),
                # ...but the next one can, and is posted after it.
                EntryRequest(EntryKind.TRANSFER, refs[2], ledger.movement(payer, first_payee, 100)),
            ],
        )

    assert [result.reference for result in results] == refs
    first, rejected, last = results
    assert isinstance(first, PostedEntry)
    assert first.balances_after == {payer: 300, first_payee: 200}
    assert isinstance(rejected, RejectedEntry)
    assert rejected.error.account_id == payer
    assert isinstance(last, PostedEntry)
    assert last.balances_after == {payer: 200, first_payee: 300}
    assert last.entry_id > first.entry_id
    async with database.transaction() as session:
        assert [await entries_with_reference(session, ref) for ref in refs] == [1, 0, 1]
        assert await balances(session, payer, first_payee, second_payee) == [200, 300, 0]
        assert await postings_of(session, payer) == [(500, 500), (-200, 300), (-100, 200)]
        assert await postings_of(session, second_payee) == []
        await assert_ledger_sound(session)


async def test_earlier_entry_in_a_batch_funds_a_later_one(database: Database) -> None:
    async with database.transaction() as session:
        outside = await outside_account(session)
        first = await wallet_account(session)
        second = await wallet_account(session)
        third = await wallet_account(session)
        results = await ledger.post_entries(
            session,
            [
                EntryRequest(
                    EntryKind.DEPOSIT, new_reference(), ledger.movement(outside, first, 500)
                ),
                EntryRequest(
                    EntryKind.TRANSFER, new_reference(), ledger.movement(first, second, 300)
                ),
                EntryRequest(
                    EntryKind.TRANSFER, new_reference(), ledger.movement(second, third, 300)
                ),
            ],
        )

    assert all(isinstance(result, PostedEntry) for result in results)
    assert [r.balances_after for r in results if isinstance(r, PostedEntry)] == [
        {first: 500},
        {first: 200, second: 300},
        {second: 0, third: 300},
    ]
    async with database.transaction() as session:
        assert await balances(session, outside, first, second, third) == [-500, 200, 0, 300]
        assert await postings_of(session, second) == [(300, 300), (-300, 0)]
        await assert_ledger_sound(session)


async def test_a_later_entry_cannot_fund_an_earlier_one(database: Database) -> None:
    async with database.transaction() as session:
        outside = await outside_account(session)
        payer = await wallet_account(session)
        payee = await wallet_account(session)
        results = await ledger.post_entries(
            session,
            [
                EntryRequest(
                    EntryKind.TRANSFER, new_reference(), ledger.movement(payer, payee, 300)
                ),
                EntryRequest(
                    EntryKind.DEPOSIT, new_reference(), ledger.movement(outside, payer, 500)
                ),
            ],
        )
    assert [type(result) for result in results] == [RejectedEntry, PostedEntry]
    async with database.transaction() as session:
        assert await balances(session, payer, payee) == [500, 0]
        await assert_ledger_sound(session)


async def test_batch_mixes_replayed_and_new_entries(database: Database) -> None:
    done = new_reference()
    new = new_reference()
    async with database.transaction() as session:
        payer = await wallet_account(session, funds=1_000)
        payee = await wallet_account(session)
        original = await transfer(session, payer, payee, 100, reference=done)
    async with database.transaction() as session:
        replayed, posted = await ledger.post_entries(
            session,
            [
                EntryRequest(EntryKind.TRANSFER, done, ledger.movement(payer, payee, 100)),
                EntryRequest(EntryKind.TRANSFER, new, ledger.movement(payer, payee, 200)),
            ],
        )
    assert replayed == PostedEntry(done, original.entry_id, replayed=True)
    assert isinstance(posted, PostedEntry)
    assert not posted.replayed
    assert posted.balances_after == {payer: 700, payee: 300}
    async with database.transaction() as session:
        assert await balances(session, payer, payee) == [700, 300]
        await assert_ledger_sound(session)


async def test_empty_batch_posts_nothing(database: Database) -> None:
    async with database.transaction() as session:
        assert await ledger.post_entries(session, []) == []


# --- system accounts ---------------------------------------------------------------------------


async def test_system_accounts_keep_no_running_balance(database: Database) -> None:
    async with database.transaction() as session:
        outside = await outside_account(session)
        first = await wallet_account(session)
        second = await wallet_account(session)
        deposit = await transfer(session, outside, first, 700)
        await transfer(session, outside, second, 300)
        await transfer(session, first, outside, 50)
        assert deposit.balances_after == {first: 700}

    async with database.transaction() as session:
        row = (
            await session.execute(
                text("SELECT balance, allow_negative FROM ledger_accounts WHERE id = :id"),
                {"id": outside},
            )
        ).one()
        assert row.balance is None
        assert row.allow_negative
        assert await postings_of(session, outside) == [(-700, None), (-300, None), (50, None)]
        assert await ledger.balance_of(session, outside) == -950
        assert await balances(session, first, second) == [650, 300]
        await assert_ledger_sound(session)


async def test_system_account_without_postings_has_zero_balance(database: Database) -> None:
    async with database.transaction() as session:
        outside = await outside_account(session)
        assert await ledger.balance_of(session, outside) == 0


async def test_system_account_is_opened_once(database: Database) -> None:
    purpose = f"test-{uuid.uuid4().hex[:16]}"
    code = ledger.system_account_code(purpose, "KWD")
    async with database.transaction() as session:
        first = await ledger.system_account(session, purpose, "KWD")
        assert await ledger.system_account(session, purpose, "KWD") == first
    async with database.transaction() as session:
        assert await ledger.system_account(session, purpose, "KWD") == first
        # Another currency is another account.
        assert await ledger.system_account(session, purpose, "NGN") != first
        rows = await session.execute(
            text("SELECT id, currency FROM ledger_accounts WHERE code = :code"), {"code": code}
        )
        assert [tuple(row) for row in rows] == [(first, "KWD")]


async def test_non_negative_system_account_keeps_a_running_balance(database: Database) -> None:
    async with database.transaction() as session:
        holding = await ledger.system_account(
            session, f"test-{uuid.uuid4().hex[:16]}", "NGN", allow_negative=False
        )
        assert await stored_balance(session, holding) == 0
        payer = await wallet_account(session, funds=400)
        with pytest.raises(InsufficientFunds) as raised:
            await transfer(session, holding, payer, 1)
        assert raised.value.account_id == holding
        await transfer(session, payer, holding, 400)
        assert await stored_balance(session, holding) == 400
        assert await postings_of(session, holding) == [(400, 400)]
    async with database.transaction() as session:
        await assert_ledger_sound(session)


# --- what the database itself refuses ----------------------------------------------------------


async def test_database_refuses_a_negative_wallet_balance(database: Database) -> None:
    async with database.transaction() as session:
        account = await wallet_account(session, funds=100)
    await assert_refused(
        database,
        "UPDATE ledger_accounts SET balance = -1 WHERE id = :id",
        {"id": account},
        match="balance_rule",
        error=IntegrityError,
    )
    async with database.transaction() as session:
        assert await stored_balance(session, account) == 100


async def test_database_refuses_a_running_balance_on_a_system_account(database: Database) -> None:
    async with database.transaction() as session:
        outside = await outside_account(session)
    await assert_refused(
        database,
        "UPDATE ledger_accounts SET balance = 0 WHERE id = :id",
        {"id": outside},
        match="balance_rule",
        error=IntegrityError,
    )
    async with database.transaction() as session:
        assert await stored_balance(session, outside) is None


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET kind = 'reversal' WHERE id = :entry",
        "UPDATE ledger_entries SET reference = reference WHERE id = :entry",
        "DELETE FROM ledger_entries WHERE id = :entry",
        "UPDATE ledger_postings SET amount = amount + 1 WHERE entry_id = :entry",
        "UPDATE ledger_postings SET balance_after = NULL WHERE entry_id = :entry",
        "DELETE FROM ledger_postings WHERE entry_id = :entry",
    ],
)
async def test_ledger_rows_refuse_update_and_delete(database: Database, statement: str) -> None:
    async with database.transaction() as session:
        payer = await wallet_account(session, funds=1_000)
        payee = await wallet_account(session)
        posted = await transfer(session, payer, payee, 300)

    await assert_refused(database, statement, {"entry": posted.entry_id}, match="append-only")

    async with database.transaction() as session:
        row = (
            await session.execute(
                text("SELECT kind, reference FROM ledger_entries WHERE id = :id"),
                {"id": posted.entry_id},
            )
        ).one()
        assert tuple(row) == ("transfer", posted.reference)
        assert await postings_of(session, payee) == [(300, 300)]
        await assert_ledger_sound(session)


# --- verify ------------------------------------------------------------------------------------


async def test_verify_reports_every_check_ok_on_a_sound_ledger(database: Database) -> None:
    async with database.transaction() as session:
        payer = await wallet_account(session, funds=1_000)
        await transfer(session, payer, await wallet_account(session), 400)
    async with database.transaction() as session:
        checks = await verify_ledger(session)
    assert [check.name for check in checks] == CHECK_NAMES
    assert [(check.name, check.violations) for check in checks] == [
        (name, 0) for name in CHECK_NAMES
    ]
    assert all(check.ok for check in checks)


async def _corrupted_report(
    fresh_database_url: Callable[..., str], corruption: str
) -> dict[str, int]:
    """Violations per check after one kind of damage to an otherwise sound, fresh ledger."""
    async with fresh_database(fresh_database_url) as database:
        async with database.transaction() as session:
            payer = await wallet_account(session, funds=1_000)
            payee = await wallet_account(session)
            outside = await outside_account(session)
            await transfer(session, payer, payee, 400)
            before = await verify_ledger(session)
        assert all(check.ok for check in before), before

        async with database.transaction() as session:
            if corruption == "wallet_balance":
                await session.execute(
                    text("UPDATE ledger_accounts SET balance = balance + 5 WHERE id = :id"),
                    {"id": payee},
                )
            elif corruption == "unbalanced_entry":
                entry_id = await insert_entry(session)
                await insert_posting(session, entry_id, outside, 70, None)
                await insert_posting(session, entry_id, payer, -60, 540)
                await session.execute(
                    text("UPDATE ledger_accounts SET balance = 540 WHERE id = :id"), {"id": payer}
                )
            elif corruption == "negative_posting":
                entry_id = await insert_entry(session)
                await insert_posting(session, entry_id, outside, 700, None)
                await insert_posting(session, entry_id, payer, -700, -100)
            elif corruption == "broken_chain":
                # Balanced entries and the right final balance, but a wrong balance_after on
                # the way: only the chain of running balances gives it away.
                first = await insert_entry(session)
                await insert_posting(session, first, outside, -10, None)
                await insert_posting(session, first, payee, 10, 999)
                second = await insert_entry(session)
                await insert_posting(session, second, outside, 10, None)
                await insert_posting(session, second, payee, -10, 400)
            elif corruption == "dropped_trigger":
                if database.is_sqlite:
                    await session.execute(text("DROP TRIGGER ledger_postings_no_delete"))
                else:
                    await session.execute(
                        text("DROP TRIGGER ledger_postings_append_only ON ledger_postings")
                    )
            else:  # pragma: no cover - a typo in the parameters below
                raise AssertionError(corruption)

        async with database.transaction() as session:
            return {check.name: check.violations for check in await verify_ledger(session)}


async def insert_entry(session: AsyncSession) -> int:
    sql = (
        "INSERT INTO ledger_entries (kind, reference, metadata, created_at) "
        "VALUES ('adjustment', :ref, '{}', CURRENT_TIMESTAMP) RETURNING id"
    )
    return int(await scalar(session, sql, ref=new_reference()))


async def insert_posting(
    session: AsyncSession, entry_id: int, account_id: int, amount: int, balance_after: int | None
) -> None:
    await session.execute(
        text(
            "INSERT INTO ledger_postings (entry_id, account_id, amount, balance_after) "
            "VALUES (:entry, :account, :amount, :after)"
        ),
        {"entry": entry_id, "account": account_id, "amount": amount, "after": balance_after},
    )


@pytest.mark.parametrize(
    ("corruption", "broken"),
    [
        # Balance no longer the sum of postings, and NGN no longer sums to zero.
        ("wallet_balance", {"balances_match_postings": 1, "currencies_sum_to_zero": 1}),
        ("unbalanced_entry", {"entries_balance": 1, "currencies_sum_to_zero": 1}),
        # A posting took the payer below zero, behind the back of its running balance.
        (
            "negative_posting",
            {"balances_match_postings": 1, "no_negative_wallets": 1, "currencies_sum_to_zero": 1},
        ),
        # Two links break: 400 -> 999 after +10, then 999 -> 400 after -10.
        ("broken_chain", {"balances_match_postings": 2}),
        ("dropped_trigger", {"append_only": 1}),
    ],
)
async def test_verify_reports_a_corrupted_ledger(
    backend: str, fresh_database_url: Callable[..., str], corruption: str, broken: dict[str, int]
) -> None:
    report = await _corrupted_report(fresh_database_url, corruption)
    assert report == {name: broken.get(name, 0) for name in CHECK_NAMES}
