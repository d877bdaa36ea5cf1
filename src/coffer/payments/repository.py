"""Every query of the payments domain (the sandbox provider's own tables: sandbox_repository).

State changes of deposits and withdrawals are conditional updates (`WHERE status IN (...)`):
a webhook and reconciliation racing on one deposit both try, the database lets one win, and
only the winner moves money.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.kit.sql import dialect_insert
from coffer.models import (
    Base,
    Deposit,
    DepositStatus,
    InboxOutcome,
    PayoutDestination,
    SavedCard,
    Transaction,
    User,
    WebhookInboxEntry,
    Withdrawal,
    WithdrawalStatus,
)

_transactions = Base.metadata.tables[Transaction.__tablename__]
_inbox = Base.metadata.tables[WebhookInboxEntry.__tablename__]
_cards = Base.metadata.tables[SavedCard.__tablename__]


# Deposits


async def add(session: AsyncSession, row: Deposit | Withdrawal | PayoutDestination) -> None:
    session.add(row)
    await session.flush()


async def deposit_by_key(session: AsyncSession, user_id: uuid.UUID, key: str) -> Deposit | None:
    return (
        await session.execute(
            select(Deposit).where(Deposit.user_id == user_id, Deposit.idempotency_key == key)
        )
    ).scalar_one_or_none()


async def deposit_by_reference(session: AsyncSession, reference: str) -> Deposit | None:
    return (
        await session.execute(select(Deposit).where(Deposit.reference == reference))
    ).scalar_one_or_none()


async def email_of(session: AsyncSession, user_id: uuid.UUID) -> str:
    email: str = (await session.execute(select(User.email).where(User.id == user_id))).scalar_one()
    return email


async def set_checkout(
    session: AsyncSession, deposit_id: int, provider_reference: str, authorization_url: str | None
) -> None:
    await session.execute(
        update(Deposit)
        .where(Deposit.id == deposit_id)
        .values(provider_reference=provider_reference, authorization_url=authorization_url)
    )


async def finish_deposit(
    session: AsyncSession,
    deposit_id: int,
    status: DepositStatus,
    *,
    failure_reason: str | None = None,
    paid_at: datetime | None = None,
    release_idempotency_key: bool = False,
) -> bool:
    """Move a pending deposit to a final state; False when it was no longer pending."""
    values: dict[str, Any] = {"status": status, "failure_reason": failure_reason}
    if paid_at is not None:
        values["paid_at"] = paid_at
    if release_idempotency_key:
        values["idempotency_key"] = None
    result = await session.execute(
        update(Deposit)
        .where(Deposit.id == deposit_id, Deposit.status == DepositStatus.PENDING)
        .values(**values)
        .returning(Deposit.id)
    )
    return result.first() is not None


async def pending_deposits_before(
    session: AsyncSession, before: datetime, limit: int
) -> Sequence[Deposit]:
    return (
        (
            await session.execute(
                select(Deposit)
                .where(Deposit.status == DepositStatus.PENDING, Deposit.created_at < before)
                .order_by(Deposit.created_at)
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )


# History rows (the `transactions` table) of deposits and withdrawals


async def update_history(
    session: AsyncSession,
    *,
    wallet_id: int,
    type_: str,
    reference: str,
    status: str,
    failure_reason: str | None = None,
    ledger_entry_id: int | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "failure_reason": failure_reason}
    if ledger_entry_id is not None:
        values["ledger_entry_id"] = ledger_entry_id
    await session.execute(
        update(_transactions)
        .where(
            _transactions.c.wallet_id == wallet_id,
            _transactions.c.type == type_,
            _transactions.c.reference == reference,
        )
        .values(**values)
    )


# Webhook inbox


async def insert_inbox(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """Insert the event unless (provider, event_key) is already there; None for a duplicate.

    A concurrent duplicate waits on the first one's unique-index entry and, once that
    commits, inserts nothing: exactly one delivery goes on to apply the event."""
    result = await session.execute(
        dialect_insert(session, _inbox)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["provider", "event_key"])
        .returning(_inbox.c.id)
    )
    inserted: int | None = result.scalar_one_or_none()
    return inserted


async def set_inbox_outcome(
    session: AsyncSession, entry_id: int, outcome: InboxOutcome, reason: str | None
) -> None:
    await session.execute(
        update(_inbox).where(_inbox.c.id == entry_id).values(outcome=outcome, reason=reason)
    )


async def inbox_for_review(session: AsyncSession, limit: int) -> Sequence[WebhookInboxEntry]:
    return (
        (
            await session.execute(
                select(WebhookInboxEntry)
                .where(WebhookInboxEntry.outcome == InboxOutcome.REVIEW)
                .order_by(WebhookInboxEntry.received_at.desc())
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )


# Saved cards


async def upsert_card(session: AsyncSession, values: dict[str, Any]) -> None:
    """One row per (user, provider, card signature): a card saved again gets the new
    authorization and comes back if it was deleted."""
    statement = dialect_insert(session, _cards).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["user_id", "provider", "signature"],
            set_={
                "authorization_sealed": statement.excluded.authorization_sealed,
                "encryption_key_id": statement.excluded.encryption_key_id,
                "exp_month": statement.excluded.exp_month,
                "exp_year": statement.excluded.exp_year,
                "deleted_at": None,
            },
        )
    )


async def list_cards(session: AsyncSession, user_id: uuid.UUID) -> Sequence[SavedCard]:
    return (
        (
            await session.execute(
                select(SavedCard)
                .where(SavedCard.user_id == user_id, SavedCard.deleted_at.is_(None))
                .order_by(SavedCard.id)
            )
        )
        .scalars()
        .all()
    )


async def live_card(session: AsyncSession, user_id: uuid.UUID, card_id: int) -> SavedCard | None:
    return (
        await session.execute(
            select(SavedCard).where(
                SavedCard.id == card_id,
                SavedCard.user_id == user_id,
                SavedCard.deleted_at.is_(None),
            )
        )
    ).scalar_one_or_none()


# Payout destinations


async def live_destination_by_fingerprint(
    session: AsyncSession, user_id: uuid.UUID, provider: str, fingerprint: str
) -> PayoutDestination | None:
    return (
        await session.execute(
            select(PayoutDestination).where(
                PayoutDestination.user_id == user_id,
                PayoutDestination.provider == provider,
                PayoutDestination.account_fingerprint == fingerprint,
                PayoutDestination.deleted_at.is_(None),
            )
        )
    ).scalar_one_or_none()


async def list_destinations(
    session: AsyncSession, user_id: uuid.UUID
) -> Sequence[PayoutDestination]:
    return (
        (
            await session.execute(
                select(PayoutDestination)
                .where(PayoutDestination.user_id == user_id, PayoutDestination.deleted_at.is_(None))
                .order_by(PayoutDestination.id)
            )
        )
        .scalars()
        .all()
    )


async def live_destination(
    session: AsyncSession, user_id: uuid.UUID, destination_id: int
) -> PayoutDestination | None:
    return (
        await session.execute(
            select(PayoutDestination).where(
                PayoutDestination.id == destination_id,
                PayoutDestination.user_id == user_id,
                PayoutDestination.deleted_at.is_(None),
            )
        )
    ).scalar_one_or_none()


async def destination_by_id(session: AsyncSession, destination_id: int) -> PayoutDestination:
    return (
        await session.execute(
            select(PayoutDestination).where(PayoutDestination.id == destination_id)
        )
    ).scalar_one()


# Withdrawals


async def withdrawal_by_reference(session: AsyncSession, reference: str) -> Withdrawal | None:
    return (
        await session.execute(select(Withdrawal).where(Withdrawal.reference == reference))
    ).scalar_one_or_none()


async def move_withdrawal(
    session: AsyncSession,
    withdrawal_id: int,
    from_statuses: Collection[WithdrawalStatus],
    to_status: WithdrawalStatus,
    **values: Any,
) -> bool:
    """Move a withdrawal between states; False when it was not in one of `from_statuses`."""
    result = await session.execute(
        update(Withdrawal)
        .where(Withdrawal.id == withdrawal_id, Withdrawal.status.in_(list(from_statuses)))
        .values(status=to_status, **values)
        .returning(Withdrawal.id)
    )
    return result.first() is not None


async def withdrawals_in_flight_before(
    session: AsyncSession, before: datetime, limit: int
) -> Sequence[Withdrawal]:
    return (
        (
            await session.execute(
                select(Withdrawal)
                .where(
                    Withdrawal.status == WithdrawalStatus.PROCESSING,
                    Withdrawal.updated_at < before,
                )
                .order_by(Withdrawal.updated_at)
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )


# Encrypted columns, for key rotation


async def cards_sealed_not_with(
    session: AsyncSession, key_id: str, limit: int
) -> Sequence[SavedCard]:
    return (
        (
            await session.execute(
                select(SavedCard).where(SavedCard.encryption_key_id != key_id).limit(limit)
            )
        )
        .scalars()
        .all()
    )


async def destinations_sealed_not_with(
    session: AsyncSession, key_id: str, limit: int
) -> Sequence[PayoutDestination]:
    return (
        (
            await session.execute(
                select(PayoutDestination)
                .where(PayoutDestination.encryption_key_id != key_id)
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
