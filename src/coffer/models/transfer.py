"""Transfer requests between wallets, stored pending and settled by the batch processor."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from coffer.kit.clock import utcnow
from coffer.models.base import Base, BigId, UTCDateTime


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
