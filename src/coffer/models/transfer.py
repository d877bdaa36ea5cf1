"""Transfer requests between wallets, stored pending and settled by the batch processor."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from coffer.kit.clock import utcnow
from coffer.models.base import Base, BigId, JsonDocument, UTCDateTime
from coffer.models.fx import DecimalText


class TransferStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


class Transfer(Base):
    __tablename__ = "transfers"
    __table_args__ = (
        UniqueConstraint("sender_user_id", "idempotency_key"),
        # The processor's queue: only pending rows, oldest first, stays small however large
        # the table grows.
        Index(
            "ix_transfers_pending",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)
    sender_user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"))
    sender_wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    recipient_wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    receive_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    """What the recipient gets, in `receive_currency`; None when no conversion is needed."""
    receive_currency: Mapped[str | None] = mapped_column(String(3))
    fx_rate: Mapped[Decimal | None] = mapped_column(DecimalText)
    """Units of `receive_currency` per unit of `currency`, fixed when the request was accepted."""
    fee_minor: Mapped[int | None] = mapped_column(BigInteger)
    """The FX spread taken from `amount_minor` (in `currency`) into system:fees:<currency>."""
    quote_id: Mapped[str | None] = mapped_column(ForeignKey("fx_quotes.id"), unique=True)
    """The quote whose terms this transfer used; unique, so a quote is used once."""
    limit_day: Mapped[date | None] = mapped_column(Date)
    """The limit day whose transfer allowance this consumed (given back if it fails)."""
    narration: Mapped[str | None] = mapped_column(String(255))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    """Unique per sender; a retried request finds the transfer it already made."""
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 of the request's content, to tell a replay from a reused key."""
    status: Mapped[str] = mapped_column(String(16), default=TransferStatus.PENDING)
    failure_reason: Mapped[str | None] = mapped_column(String(64))
    ledger_entry_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When it completed or failed."""
    linked_batch_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    """The linked batch (transfer_batches.id) this transfer settles with, all or nothing; the
    ordinary processor queue skips such transfers."""


class BatchMode(StrEnum):
    INDEPENDENT = "independent"
    """Each item its own outcome."""
    LINKED = "linked"
    """All or nothing, at acceptance and at settlement."""


class GroupStatus(StrEnum):
    PENDING = "pending"
    """A linked batch whose transfers wait to be settled together."""
    SETTLED = "settled"


class TransferBatch(Base):
    """One `POST /transfers/batch` request: its items' outcomes at acceptance, in order."""

    __tablename__ = "transfer_batches"
    __table_args__ = (
        # The linked settlement queue, like ix_transfers_pending.
        Index(
            "ix_transfer_batches_group_pending",
            "id",
            postgresql_where=text("group_status = 'pending'"),
            sqlite_where=text("group_status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), index=True)
    mode: Mapped[str] = mapped_column(String(16))
    items: Mapped[list[dict[str, Any]]] = mapped_column(JsonDocument)
    """Per item, in request order: its idempotency key and either the transfer reference it
    was answered with or the error code it was refused with."""
    group_status: Mapped[str | None] = mapped_column(String(16))
    """None for an independent batch (or a linked one that stored nothing new)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
