"""Wallets: a user's holding in one currency, each backed by one ledger account."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from coffer.kit.clock import utcnow
from coffer.models.base import Base, BigId, JsonDocument, UTCDateTime


class WalletStatus(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"
    """Stopped by an admin: no deposit, transfer or withdrawal."""
    BLOCKED = "blocked"
    """An unpaid fee: money may come in, none may go out."""
    CLOSED = "closed"


class Wallet(Base):
    __tablename__ = "wallets"
    __table_args__ = (
        UniqueConstraint("user_id", "currency"),
        Index(
            "uq_wallets_primary_per_user",
            "user_id",
            unique=True,
            postgresql_where=text("is_primary"),
            sqlite_where=text("is_primary"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(13), unique=True)
    """13 random digits, the last a Luhn check digit."""
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=WalletStatus.ACTIVE)
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str | None] = mapped_column(String(64))
    ledger_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TransactionType(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"
    FEE = "fee"
    FX_IN = "fx_in"
    FX_OUT = "fx_out"
    ADJUSTMENT = "adjustment"


class TransactionStatus(StrEnum):
    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"
    REVERSED = "reversed"


class Transaction(Base):
    """User-facing history: one row per wallet per event, failed attempts included."""

    __tablename__ = "transactions"
    __table_args__ = (
        Index(None, "wallet_id", "id"),
        UniqueConstraint("wallet_id", "type", "reference"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    type: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    """Unsigned; the type says which way the money went."""
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(String(128))
    counterparty_wallet_number: Mapped[str | None] = mapped_column(String(13))
    counterparty_name: Mapped[str | None] = mapped_column(String(201))
    failure_reason: Mapped[str | None] = mapped_column(String(64))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JsonDocument, default=dict)
    ledger_entry_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
