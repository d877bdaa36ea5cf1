"""Accepting and settling transfers through the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import Database
from coffer.errors import AppError, ValidationFailed
from coffer.identity.service import NewUser
from coffer.kit.money import InvalidAmount, Money
from coffer.ledger.errors import InsufficientFunds
from coffer.models import (
    LedgerEntry,
    OutboxJob,
    Transaction,
    Transfer,
    User,
    Wallet,
    WalletStatus,
)
from coffer.transfers import service as transfers
from coffer.transfers.service import (
    AcceptedTransfer,
    RecipientKind,
    TransferOutcome,
    TransferRequest,
)
from coffer.transfers.settlement import SETTLED_JOB
from coffer.transfers.tasks import process_pending
from coffer.wallets import service as wallets
from coffer.wallets.service import InvalidWalletNumber
from tests.fixtures.factories import assert_ledger_sound, fund, make_user


def request_to(
    sender: NewUser, recipient: str, amount: object, **options: object
) -> TransferRequest:
    kind = options.pop("kind", RecipientKind.WALLET_NUMBER)
    return TransferRequest(
        sender_user_id=sender.user.id,
        recipient_kind=kind,  # type: ignore[arg-type]
        recipient=recipient,
        amount=amount,
        **options,  # type: ignore[arg-type]
    )


async def send(database: Database, *requests: TransferRequest) -> list[TransferOutcome]:
    async with database.transaction() as session:
        return await transfers.create_transfers(session, list(requests))


def accepted(outcome: TransferOutcome) -> AcceptedTransfer:
    assert isinstance(outcome, AcceptedTransfer), outcome
    return outcome


async def balance_minor(session: AsyncSession, wallet: Wallet) -> int:
    return (await wallets.balance(session, wallet)).minor


async def transfer_row(session: AsyncSession, reference: str) -> Transfer:
    return (
        await session.execute(select(Transfer).where(Transfer.reference == reference))
    ).scalar_one()


@pytest.fixture
async def pair(database: Database) -> tuple[NewUser, NewUser]:
    """A funded sender (100.00 NGN) and an empty recipient."""
    async with database.transaction() as session:
        sender = await make_user(session, first_name="Sender")
        recipient = await make_user(session, first_name="Recipient")
        await fund(session, sender.primary_wallet, 10_000)
    return sender, recipient


async def test_accepted_transfer_is_pending_until_processed_then_moves_money(
    database: Database, pair: tuple[NewUser, NewUser]
) -> None:
    sender, recipient = pair
    (outcome,) = await send(
        database, request_to(sender, recipient.primary_wallet.number, "25.50", narration="rent")
    )
    transfer = accepted(outcome)
    assert transfer.status == "pending"
    assert transfer.reference.startswith("TRF_")
    assert transfer.amount.format() == "25.50"
    async with database.transaction() as session:
        assert await balance_minor(session, sender.primary_wallet) == 10_000

    report = await process_pending(database, batch_size=50)
    assert report.completed >= 1

    async with database.transaction() as session:
        assert await balance_minor(session, sender.primary_wallet) == 10_000 - 2_550
        assert await balance_minor(session, recipient.primary_wallet) == 2_550
        row = await transfer_row(session, transfer.reference)
        assert row.status == "completed"
        assert row.settled_at is not None
        assert row.ledger_entry_id is not None
        history = (
            (
                await session.execute(
                    select(Transaction).where(Transaction.reference == transfer.reference)
                )
            )
            .scalars()
            .all()
        )
        sides = {(h.wallet_id, h.type, h.status) for h in history}
        assert sides == {
            (sender.primary_wallet.id, "transfer_out", "success"),
            (recipient.primary_wallet.id, "transfer_in", "success"),
        }
        outgoing = next(h for h in history if h.type == "transfer_out")
        assert outgoing.counterparty_wallet_number == recipient.primary_wallet.number
        assert outgoing.counterparty_name == "Recipient User"
        assert outgoing.metadata_ == {"narration": "rent"}
        await assert_ledger_sound(session)


async def test_processor_fails_the_transfer_the_balance_no_longer_covers(
    database: Database, pair: tuple[NewUser, NewUser]
) -> None:
    sender, recipient = pair
    first, second = await send(
        database,
        request_to(sender, recipient.primary_wallet.number, "60.00"),
        request_to(sender, recipient.primary_wallet.number, "60.00"),
    )
    await process_pending(database, batch_size=50)
    async with database.transaction() as session:
        rows = [await transfer_row(session, accepted(o).reference) for o in (first, second)]
        assert [r.status for r in rows] == ["completed", "failed"]
        assert rows[1].failure_reason == "insufficient_funds"
        assert rows[1].ledger_entry_id is None
        assert await balance_minor(session, sender.primary_wallet) == 4_000
        failed_history = (
            (
                await session.execute(
                    select(Transaction).where(Transaction.reference == rows[1].reference)
                )
            )
            .scalars()
            .all()
        )
        assert [(h.wallet_id, h.type, h.status, h.failure_reason) for h in failed_history] == [
            (sender.primary_wallet.id, "transfer_out", "failed", "insufficient_funds")
        ]
        entries = await session.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.reference == rows[1].reference)
        )
        assert entries == 0
        await assert_ledger_sound(session)


async def test_settled_transfers_are_announced_through_the_outbox(
    database: Database, pair: tuple[NewUser, NewUser]
) -> None:
    sender, recipient = pair
    (outcome,) = await send(database, request_to(sender, recipient.primary_wallet.number, "1.00"))
    reference = accepted(outcome).reference
    await process_pending(database, batch_size=50)
    async with database.transaction() as session:
        payloads = (
            await session.execute(select(OutboxJob.payload).where(OutboxJob.name == SETTLED_JOB))
        ).scalars()
        announced = [
            t for payload in payloads for t in payload["transfers"] if t["reference"] == reference
        ]
    assert announced == [{"reference": reference, "status": "completed", "failure_reason": None}]


async def test_recipient_can_be_named_by_email_or_phone(database: Database) -> None:
    async with database.transaction() as session:
        sender = await make_user(session)
        recipient = await make_user(session)
        await session.execute(
            update(User).where(User.id == recipient.user.id).values(phone="+2348031234567")
        )
        await fund(session, sender.primary_wallet, 1_000)
    by_email, by_phone = await send(
        database,
        request_to(sender, recipient.user.email.upper(), "1.00", kind=RecipientKind.EMAIL),
        request_to(sender, "+234 803 123 4567", "2.00", kind=RecipientKind.PHONE),
    )
    assert accepted(by_email).recipient_wallet_number == recipient.primary_wallet.number
    assert accepted(by_phone).recipient_wallet_number == recipient.primary_wallet.number
    # Leave the shared phone number free for other runs.
    async with database.transaction() as session:
        await session.execute(update(User).where(User.id == recipient.user.id).values(phone=None))


@pytest.mark.parametrize(
    ("recipient", "amount", "error_code"),
    [
        ("1234567890123", "1.00", "invalid_wallet_number"),
        ("not-a-number", "1.00", "invalid_wallet_number"),
        ("SELF", "1.00", "cannot_transfer_to_self"),
        ("RECIPIENT", "0", "invalid_amount"),
        ("RECIPIENT", "-5.00", "invalid_amount"),
        ("RECIPIENT", "1.001", "invalid_amount"),
        ("RECIPIENT", 1.5, "invalid_amount"),
        ("RECIPIENT", True, "invalid_amount"),
        ("RECIPIENT", "NaN", "invalid_amount"),
        ("RECIPIENT", "100.01", "insufficient_funds"),
    ],
)
async def test_refused_requests_store_nothing(
    database: Database,
    pair: tuple[NewUser, NewUser],
    recipient: str,
    amount: object,
    error_code: str,
) -> None:
    sender, target = pair
    number = {"SELF": sender.primary_wallet.number, "RECIPIENT": target.primary_wallet.number}
    (outcome,) = await send(database, request_to(sender, number.get(recipient, recipient), amount))
    assert isinstance(outcome, AppError)
    assert outcome.code == error_code
    async with database.transaction() as session:
        stored = await session.scalar(
            select(func.count())
            .select_from(Transfer)
            .where(Transfer.sender_user_id == sender.user.id)
        )
    assert stored == 0


async def test_unknown_wallet_number_with_valid_check_digit_is_recipient_not_found(
    database: Database, pair: tuple[NewUser, NewUser]
) -> None:
    sender, _ = pair
    number = "123456789012"
    from coffer.wallets.numbers import luhn_check_digit

    (outcome,) = await send(database, request_to(sender, number + luhn_check_digit(number), "1.00"))
    assert isinstance(outcome, AppError)
    assert outcome.code == "recipient_not_found"


@pytest.mark.parametrize(
    ("status", "error_code"),
    [(WalletStatus.FROZEN, "wallet_frozen"), (WalletStatus.BLOCKED, "wallet_blocked")],
)
async def test_a_sender_wallet_that_may_not_send_is_refused(
    database: Database, pair: tuple[NewUser, NewUser], status: WalletStatus, error_code: str
) -> None:
    sender, recipient = pair
    async with database.transaction() as session:
        await session.execute(
            update(Wallet).where(Wallet.id == sender.primary_wallet.id).values(status=status)
        )
    (outcome,) = await send(database, request_to(sender, recipient.primary_wallet.number, "1.00"))
    assert isinstance(outcome, AppError)
    assert outcome.code == error_code


async def test_inactive_sender_and_inactive_recipient_are_refused(
    database: Database, pair: tuple[NewUser, NewUser]
) -> None:
    sender, recipient = pair
    async with database.transaction() as session:
        await session.execute(
            update(User).where(User.id == recipient.user.id).values(is_active=False)
        )
    (to_inactive,) = await send(
        database, request_to(sender, recipient.primary_wallet.number, "1.00")
    )
    async with database.transaction() as session:
        await session.execute(update(User).where(User.id == sender.user.id).values(is_active=False))
    (from_inactive,) = await send(
        database, request_to(sender, recipient.primary_wallet.number, "1.00")
    )
    assert isinstance(to_inactive, AppError)
    # Answered like a recipient nobody has: an inactive account is not revealed.
    assert to_inactive.code == "recipient_not_found"
    assert isinstance(from_inactive, AppError)
    assert from_inactive.code == "account_inactive"


async def test_other_currency_recipient_gets_the_converted_amount(database: Database) -> None:
    # The migration's placeholder rate: 1 USD = 1500 NGN.
    async with database.transaction() as session:
        sender = await make_user(session)
        dollars = await make_user(session, currency="USD")
        await fund(session, sender.primary_wallet, 300_000)
    converted, too_small = await send(
        database,
        request_to(sender, dollars.primary_wallet.number, "1500.00"),
        request_to(sender, dollars.primary_wallet.number, "1.00"),
    )
    assert accepted(converted).receive_amount == Money.of(100, "USD")
    assert isinstance(too_small, AppError)
    assert too_small.code == "invalid_amount"
    await process_pending(database, batch_size=50)
    async with database.transaction() as session:
        assert await balance_minor(session, sender.primary_wallet) == 150_000
        assert await balance_minor(session, dollars.primary_wallet) == 100
        await assert_ledger_sound(session)


async def test_one_bad_request_does_not_fail_its_neighbours(
    database: Database, pair: tuple[NewUser, NewUser]
) -> None:
    sender, recipient = pair
    good_before, bad, good_after = await send(
        database,
        request_to(sender, recipient.primary_wallet.number, "1.00"),
        request_to(sender, recipient.primary_wallet.number, "1.005"),
        request_to(sender, recipient.primary_wallet.number, Decimal("2.00")),
    )
    assert isinstance(bad, InvalidAmount)
    assert accepted(good_before).amount.minor == 100
    assert accepted(good_after).amount.minor == 200


async def test_narration_and_idempotency_key_lengths_are_bounded(
    database: Database, pair: tuple[NewUser, NewUser]
) -> None:
    sender, recipient = pair
    number = recipient.primary_wallet.number
    long_narration, long_key = await send(
        database,
        request_to(sender, number, "1.00", narration="x" * 256),
        request_to(sender, number, "1.00", idempotency_key="k" * 256),
    )
    assert isinstance(long_narration, ValidationFailed)
    assert isinstance(long_key, ValidationFailed)


async def test_same_idempotency_key_and_body_replays_the_same_transfer(
    database: Database, pair: tuple[NewUser, NewUser]
) -> None:
    sender, recipient = pair
    number = recipient.primary_wallet.number
    (first,) = await send(database, request_to(sender, number, "5.00", idempotency_key="order-1"))
    await process_pending(database, batch_size=50)
    (again,) = await send(database, request_to(sender, number, "5.00", idempotency_key="order-1"))
    (reused,) = await send(database, request_to(sender, number, "6.00", idempotency_key="order-1"))
    replay = accepted(again)
    assert replay.reference == accepted(first).reference
    assert replay.replayed
    assert replay.status == "completed"
    assert isinstance(reused, AppError)
    assert reused.code == "idempotency_key_reused"
    async with database.transaction() as session:
        assert await balance_minor(session, sender.primary_wallet) == 9_500


async def test_a_retry_of_a_transfer_that_drained_the_balance_replays_it(
    database: Database, pair: tuple[NewUser, NewUser]
) -> None:
    """Found by `coffer check bank`: the balance pre-check ran before the key was looked up,
    so a duplicate of an accepted transfer that had since spent the balance was refused
    `insufficient_funds`, and the next duplicate replayed it as accepted."""
    sender, recipient = pair
    number = recipient.primary_wallet.number
    (first,) = await send(database, request_to(sender, number, "100.00", idempotency_key="all"))
    await process_pending(database, batch_size=50)
    async with database.transaction() as session:
        assert await balance_minor(session, sender.primary_wallet) == 0

    (again,) = await send(database, request_to(sender, number, "100.00", idempotency_key="all"))
    (fresh,) = await send(database, request_to(sender, number, "100.00", idempotency_key="new"))

    replay = accepted(again)
    assert replay.reference == accepted(first).reference
    assert replay.replayed
    assert replay.status == "completed"
    assert isinstance(fresh, InsufficientFunds)
    async with database.transaction() as session:
        assert await balance_minor(session, sender.primary_wallet) == 0
        assert await balance_minor(session, recipient.primary_wallet) == 10_000


async def test_the_same_key_twice_in_one_batch_makes_one_transfer(
    database: Database, pair: tuple[NewUser, NewUser]
) -> None:
    sender, recipient = pair
    number = recipient.primary_wallet.number
    first, second, different = await send(
        database,
        request_to(sender, number, "5.00", idempotency_key="twice"),
        request_to(sender, number, "5.00", idempotency_key="twice"),
        request_to(sender, number, "7.00", idempotency_key="twice"),
    )
    assert accepted(second).reference == accepted(first).reference
    assert accepted(second).replayed
    assert not accepted(first).replayed
    assert isinstance(different, AppError)
    assert different.code == "idempotency_key_reused"
    async with database.transaction() as session:
        stored = await session.scalar(
            select(func.count())
            .select_from(Transfer)
            .where(Transfer.sender_user_id == sender.user.id)
        )
    assert stored == 1


async def test_a_wallet_frozen_after_acceptance_fails_at_processing(
    database: Database, pair: tuple[NewUser, NewUser]
) -> None:
    sender, recipient = pair
    (outcome,) = await send(database, request_to(sender, recipient.primary_wallet.number, "3.00"))
    async with database.transaction() as session:
        await session.execute(
            update(Wallet)
            .where(Wallet.id == recipient.primary_wallet.id)
            .values(status=WalletStatus.FROZEN)
        )
    await process_pending(database, batch_size=50)
    async with database.transaction() as session:
        row = await transfer_row(session, accepted(outcome).reference)
        assert (row.status, row.failure_reason) == ("failed", "recipient_wallet_frozen")
        assert await balance_minor(session, sender.primary_wallet) == 10_000


async def test_operator_debit_beyond_the_balance_is_refused(
    database: Database, pair: tuple[NewUser, NewUser]
) -> None:
    sender, _ = pair

    with pytest.raises(InsufficientFunds):
        async with database.transaction() as session:
            await wallets.adjust(
                session,
                sender.primary_wallet,
                Money.of(10_001, "NGN"),
                reason="test",
                credit=False,
                actor="test",
            )
    async with database.transaction() as session:
        assert await balance_minor(session, sender.primary_wallet) == 10_000


INJECT_FAILURE = {
    "sqlite": [
        "CREATE TRIGGER inject_failure BEFORE INSERT ON transactions "
        "WHEN NEW.reference = '{reference}' BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    ],
    "postgres": [
        "CREATE FUNCTION inject_failure() RETURNS trigger AS $$ BEGIN "
        "IF NEW.reference = '{reference}' THEN RAISE EXCEPTION 'injected failure'; END IF; "
        "RETURN NEW; END; $$ LANGUAGE plpgsql",
        "CREATE TRIGGER inject_failure BEFORE INSERT ON transactions "
        "FOR EACH ROW EXECUTE FUNCTION inject_failure()",
    ],
}
REMOVE_FAILURE = {
    "sqlite": ["DROP TRIGGER inject_failure"],
    "postgres": ["DROP TRIGGER inject_failure ON transactions", "DROP FUNCTION inject_failure()"],
}


async def test_a_failure_mid_batch_leaves_no_partial_entry_and_the_retry_completes(
    backend: str, fresh_database_url
) -> None:
    database = Database(fresh_database_url())
    try:
        async with database.transaction() as session:
            sender = await make_user(session)
            recipient = await make_user(session)
            await fund(session, sender.primary_wallet, 10_000)
        outcomes = await send(
            database,
            *(request_to(sender, recipient.primary_wallet.number, "1.00") for _ in range(5)),
        )
        references = [accepted(o).reference for o in outcomes]
        # History rows are written after the ledger entries, so failing the middle transfer's
        # history row fails the batch after its postings were written.
        async with database.transaction() as session:
            for statement in INJECT_FAILURE[backend]:
                await session.execute(text(statement.format(reference=references[2])))

        with pytest.raises(Exception, match="injected failure"):
            await process_pending(database, batch_size=10)

        async with database.transaction() as session:
            entries = await session.scalar(
                select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "transfer")
            )
            statuses = set((await session.execute(select(Transfer.status))).scalars())
            assert entries == 0
            assert statuses == {"pending"}
            assert await balance_minor(session, sender.primary_wallet) == 10_000
            for statement in REMOVE_FAILURE[backend]:
                await session.execute(text(statement))

        report = await process_pending(database, batch_size=10)
        assert (report.claimed, report.completed) == (5, 5)
        async with database.transaction() as session:
            assert await balance_minor(session, recipient.primary_wallet) == 500
            await assert_ledger_sound(session)
    finally:
        await database.dispose()


async def test_invalid_wallet_number_is_refused_before_lookup(database: Database) -> None:
    async with database.transaction() as session:
        with pytest.raises(InvalidWalletNumber):
            await wallets.find_wallet(session, "0000000000001")
