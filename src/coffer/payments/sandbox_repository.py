"""Every query of the sandbox provider's own state: its checkouts, recipients and payouts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.kit.sql import dialect_insert
from coffer.models import Base, SandboxCharge, SandboxPayout, SandboxRecipient

_recipients = Base.metadata.tables[SandboxRecipient.__tablename__]
_sandbox_payouts = Base.metadata.tables[SandboxPayout.__tablename__]


async def insert_sandbox_charge(session: AsyncSession, charge: SandboxCharge) -> None:
    session.add(charge)
    await session.flush()


async def sandbox_charge(session: AsyncSession, reference: str) -> SandboxCharge | None:
    return await session.get(SandboxCharge, reference)


async def settle_sandbox_charge(
    session: AsyncSession,
    reference: str,
    status: str,
    *,
    paid_at: datetime | None,
    authorization_code: str | None,
) -> bool:
    """Pay or decline a pending sandbox checkout once; False when it was already settled."""
    result = await session.execute(
        update(SandboxCharge)
        .where(SandboxCharge.reference == reference, SandboxCharge.status == "pending")
        .values(status=status, paid_at=paid_at, authorization_code=authorization_code)
        .returning(SandboxCharge.reference)
    )
    return result.first() is not None


async def sandbox_authorization_exists(session: AsyncSession, authorization_code: str) -> bool:
    found = await session.execute(
        select(SandboxCharge.reference)
        .where(SandboxCharge.authorization_code == authorization_code)
        .limit(1)
    )
    return found.first() is not None


async def upsert_sandbox_recipient(
    session: AsyncSession, recipient_code: str, account_suffix: str
) -> None:
    await session.execute(
        dialect_insert(session, _recipients)
        .values(recipient_code=recipient_code, account_suffix=account_suffix)
        .on_conflict_do_nothing(index_elements=["recipient_code"])
    )


async def sandbox_recipient_suffix(session: AsyncSession, recipient_code: str) -> str | None:
    suffix: str | None = (
        await session.execute(
            select(SandboxRecipient.account_suffix).where(
                SandboxRecipient.recipient_code == recipient_code
            )
        )
    ).scalar_one_or_none()
    return suffix


async def insert_sandbox_payout(session: AsyncSession, values: dict[str, Any]) -> bool:
    """False when a payout with this reference exists (the provider's idempotency)."""
    result = await session.execute(
        dialect_insert(session, _sandbox_payouts)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["reference"])
        .returning(_sandbox_payouts.c.reference)
    )
    return result.first() is not None


async def sandbox_payout(session: AsyncSession, reference: str) -> SandboxPayout | None:
    return await session.get(SandboxPayout, reference)


async def set_sandbox_payout_status(
    session: AsyncSession, reference: str, status: str, failure_reason: str | None
) -> None:
    await session.execute(
        update(SandboxPayout)
        .where(SandboxPayout.reference == reference)
        .values(status=status, failure_reason=failure_reason)
    )
