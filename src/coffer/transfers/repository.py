"""Every query of the transfers domain. The processor's row lock is taken in `claim_pending`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, bindparam, insert, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from coffer.db import ResultRow
from coffer.ledger.repository import is_postgres
from coffer.models import (
    Base,
    GroupStatus,
    LedgerAccount,
    Transfer,
    TransferBatch,
    TransferStatus,
    User,
    Wallet,
)

_transfers = Base.metadata.tables[Transfer.__tablename__]

_WALLET_WITH_OWNER = (
    Wallet.id,
    Wallet.number,
    Wallet.user_id,
    Wallet.currency,
    Wallet.status,
    Wallet.is_primary,
    Wallet.ledger_account_id,
    User.is_active.label("owner_active"),
    User.first_name,
    User.last_name,
    User.email,
    User.phone,
)


async def wallets_of_users(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> Sequence[ResultRow]:
    return (
        await session.execute(
            select(*_WALLET_WITH_OWNER)
            .join(User, User.id == Wallet.user_id)
            .where(Wallet.user_id.in_(user_ids))
        )
    ).all()


async def wallets_matching(
    session: AsyncSession, numbers: Sequence[str], emails: Sequence[str], phones: Sequence[str]
) -> Sequence[ResultRow]:
    """Wallets with one of these numbers, or owned by a user with one of these emails/phones."""
    conditions = []
    if numbers:
        conditions.append(Wallet.number.in_(numbers))
    if emails:
        conditions.append(User.email.in_(emails))
    if phones:
        conditions.append(User.phone.in_(phones))
    if not conditions:
        return []
    return (
        await session.execute(
            select(*_WALLET_WITH_OWNER)
            .join(User, User.id == Wallet.user_id)
            .where(or_(*conditions))
        )
    ).all()


async def running_balances(session: AsyncSession, account_ids: Sequence[int]) -> dict[int, int]:
    """Balances read without a lock: good for a fast pre-check, never for a decision."""
    rows = await session.execute(
        select(LedgerAccount.id, LedgerAccount.balance).where(LedgerAccount.id.in_(account_ids))
    )
    return {row.id: row.balance for row in rows}


async def find_by_idempotency_keys(
    session: AsyncSession, keys: Sequence[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], ResultRow]:
    if not keys:
        return {}
    rows = await session.execute(
        select(_transfers, Wallet.number.label("recipient_wallet_number"))
        .join(Wallet, Wallet.id == _transfers.c.recipient_wallet_id)
        .where(tuple_(_transfers.c.sender_user_id, _transfers.c.idempotency_key).in_(keys))
    )
    return {(row.sender_user_id, row.idempotency_key): row for row in rows}


async def insert_new(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert transfers, skipping any whose idempotency key a concurrent request already used.

    Returns the references actually inserted; the rest lost a race to an equal key.
    """
    dialect_insert = postgresql.insert if is_postgres(session) else sqlite.insert
    result = await session.execute(
        dialect_insert(_transfers).on_conflict_do_nothing().returning(_transfers.c.reference),
        list(rows),
    )
    return set(result.scalars())


async def get_by_reference(session: AsyncSession, reference: str) -> Transfer | None:
    return (
        await session.execute(select(Transfer).where(Transfer.reference == reference))
    ).scalar_one_or_none()


def _pending_with_parties() -> Select[*tuple[Any, ...]]:
    """Pending transfers with both wallets' and owners' state: what settling one needs."""
    sender, recipient = aliased(Wallet), aliased(Wallet)
    sender_owner, recipient_owner = aliased(User), aliased(User)
    return (
        select(
            Transfer.id,
            Transfer.reference,
            Transfer.sender_user_id,
            Transfer.amount_minor,
            Transfer.currency,
            Transfer.receive_amount_minor,
            Transfer.receive_currency,
            Transfer.fx_rate,
            Transfer.fee_minor,
            Transfer.quote_id,
            Transfer.limit_day,
            Transfer.narration,
            sender.id.label("sender_wallet_id"),
            sender.number.label("sender_number"),
            sender.status.label("sender_status"),
            sender.ledger_account_id.label("sender_account_id"),
            sender_owner.is_active.label("sender_active"),
            sender_owner.first_name.label("sender_first_name"),
            sender_owner.last_name.label("sender_last_name"),
            recipient.id.label("recipient_wallet_id"),
            recipient.number.label("recipient_number"),
            recipient.status.label("recipient_status"),
            recipient.currency.label("recipient_currency"),
            recipient.ledger_account_id.label("recipient_account_id"),
            recipient.user_id.label("recipient_user_id"),
            recipient_owner.is_active.label("recipient_active"),
            recipient_owner.first_name.label("recipient_first_name"),
            recipient_owner.last_name.label("recipient_last_name"),
        )
        .join(sender, sender.id == Transfer.sender_wallet_id)
        .join(sender_owner, sender_owner.id == sender.user_id)
        .join(recipient, recipient.id == Transfer.recipient_wallet_id)
        .join(recipient_owner, recipient_owner.id == recipient.user_id)
        .where(Transfer.status == TransferStatus.PENDING)
        .order_by(Transfer.id)
    )


# Built once: the processor claims many times a second and the statements never change.
# Transfers of a linked batch settle together (claim_linked_group), never one by one.
_CLAIM = (
    _pending_with_parties()
    .where(Transfer.linked_batch_id.is_(None))
    .limit(bindparam("claim_limit"))
    .with_for_update(skip_locked=True, of=Transfer)
)
_CLAIM_GROUP = (
    _pending_with_parties()
    .where(Transfer.linked_batch_id == bindparam("batch_id"))
    .with_for_update(of=Transfer)
)
_batches = Base.metadata.tables[TransferBatch.__tablename__]


async def claim_pending(session: AsyncSession, limit: int) -> Sequence[ResultRow]:
    """Lock up to `limit` pending transfers, oldest first, skipping any another processor holds.

    With the sender's and recipient's wallet state as of now, so a wallet frozen after the
    request was accepted stops the transfer.
    """
    return (await session.execute(_CLAIM, {"claim_limit": limit})).all()


async def linked_batch_waiting(session: AsyncSession) -> bool:
    """Whether a linked batch waits to settle (a look, no lock: `claim_linked_batch` decides)."""
    return (
        await session.execute(
            select(_batches.c.id).where(_batches.c.group_status == GroupStatus.PENDING).limit(1)
        )
    ).first() is not None


async def claim_linked_batch(session: AsyncSession) -> int | None:
    """Lock the oldest linked batch still to settle, skipping any another processor holds.

    Its lock is the group's: the ordinary claim never takes a linked batch's transfers.
    """
    return (
        await session.execute(
            select(_batches.c.id)
            .where(_batches.c.group_status == GroupStatus.PENDING)
            .order_by(_batches.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
    ).scalar_one_or_none()


async def claim_linked_group(session: AsyncSession, batch_id: int) -> Sequence[ResultRow]:
    """Every pending transfer of a linked batch (whose row the caller holds), as claim_pending
    gives them."""
    return (await session.execute(_CLAIM_GROUP, {"batch_id": batch_id})).all()


async def mark_group_settled(session: AsyncSession, batch_id: int) -> None:
    await session.execute(
        update(_batches).where(_batches.c.id == batch_id).values(group_status=GroupStatus.SETTLED)
    )


async def insert_batch(session: AsyncSession, row: dict[str, Any]) -> int:
    result = await session.execute(insert(_batches).values(**row).returning(_batches.c.id))
    return int(result.scalar_one())


async def link_to_batch(session: AsyncSession, batch_id: int, references: Sequence[str]) -> None:
    """Make these (just inserted, not yet committed) transfers settle with the linked batch."""
    await session.execute(
        update(_transfers)
        .where(_transfers.c.reference.in_(references))
        .values(linked_batch_id=batch_id)
    )


async def find_batch(
    session: AsyncSession, reference: str, user_id: uuid.UUID
) -> TransferBatch | None:
    """A batch as its owner sees it; None for an unknown reference or another user's."""
    return (
        await session.execute(
            select(TransferBatch).where(
                TransferBatch.reference == reference, TransferBatch.user_id == user_id
            )
        )
    ).scalar_one_or_none()


async def settlement_states(
    session: AsyncSession, references: Sequence[str]
) -> dict[str, ResultRow]:
    """Status and failure reason of each of these transfers, by reference."""
    if not references:
        return {}
    rows = await session.execute(
        select(Transfer.reference, Transfer.status, Transfer.failure_reason).where(
            Transfer.reference.in_(references)
        )
    )
    return {row.reference: row for row in rows}


async def mark_settled(session: AsyncSession, outcomes: Sequence[dict[str, Any]]) -> None:
    """Write each claimed transfer's final status (executemany, one round trip batch)."""
    await session.execute(
        update(_transfers)
        .where(_transfers.c.id == bindparam("transfer_id"))
        .values(
            status=bindparam("status"),
            failure_reason=bindparam("failure_reason"),
            ledger_entry_id=bindparam("ledger_entry_id"),
            settled_at=bindparam("settled_at"),
        ),
        list(outcomes),
    )


async def find_for_sender(
    session: AsyncSession, reference: str, sender_user_id: uuid.UUID
) -> ResultRow | None:
    """A transfer as its sender sees it; None for an unknown reference or another user's."""
    return (
        await session.execute(
            select(
                Transfer.reference,
                Transfer.status,
                Transfer.amount_minor,
                Transfer.currency,
                Transfer.failure_reason,
                Transfer.created_at,
                Transfer.settled_at,
                Wallet.number.label("recipient_wallet_number"),
            )
            .join(Wallet, Wallet.id == Transfer.recipient_wallet_id)
            .where(Transfer.reference == reference, Transfer.sender_user_id == sender_user_id)
        )
    ).one_or_none()


def _completed_with_parties() -> Select[*tuple[Any, ...]]:
    sender_wallet, recipient_wallet = aliased(Wallet), aliased(Wallet)
    sender, recipient = aliased(User), aliased(User)
    return (
        select(
            Transfer.reference,
            Transfer.amount_minor,
            Transfer.currency,
            Transfer.receive_amount_minor,
            Transfer.receive_currency,
            sender.id.label("sender_user_id"),
            sender.first_name.label("sender_first_name"),
            sender.last_name.label("sender_last_name"),
            sender_wallet.number.label("sender_number"),
            recipient.id.label("recipient_user_id"),
            recipient.first_name.label("recipient_first_name"),
            recipient.last_name.label("recipient_last_name"),
            recipient_wallet.number.label("recipient_number"),
        )
        .join(sender_wallet, sender_wallet.id == Transfer.sender_wallet_id)
        .join(sender, sender.id == sender_wallet.user_id)
        .join(recipient_wallet, recipient_wallet.id == Transfer.recipient_wallet_id)
        .join(recipient, recipient.id == recipient_wallet.user_id)
        .where(
            Transfer.reference.in_(bindparam("references", expanding=True)),
            Transfer.status == TransferStatus.COMPLETED,
        )
        .order_by(Transfer.id)
    )


# Built once, like the claims: every settled batch's notices read it.
_COMPLETED_WITH_PARTIES = _completed_with_parties()


async def completed_with_parties(
    session: AsyncSession, references: Sequence[str]
) -> Sequence[ResultRow]:
    """Completed transfers with both wallets and owners, for the settled notices."""
    if not references:
        return []
    return (await session.execute(_COMPLETED_WITH_PARTIES, {"references": list(references)})).all()
