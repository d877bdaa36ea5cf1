"""Money in and out through payment providers: deposits, withdrawals, the webhook inbox, saved
cards, payout destinations, and the sandbox provider's own state (DESIGN.md §5)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from coffer.kit.clock import utcnow
from coffer.models.base import Base, BigId, JsonDocument, UTCDateTime


class DepositStatus(StrEnum):
    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"
    ABANDONED = "abandoned"
    """The customer never paid before COFFER_DEPOSIT_ABANDON_AFTER_SECONDS."""


class WithdrawalStatus(StrEnum):
    PENDING = "pending"
    """Debited into the in-flight account; the provider has not been asked yet."""
    PROCESSING = "processing"
    """The provider accepted the payout; its outcome comes by webhook or verify."""
    SUCCESS = "success"
    FAILED = "failed"
    REVERSED = "reversed"


class InboxOutcome(StrEnum):
    APPLIED = "applied"
    IGNORED = "ignored"
    """Verified but nothing to do (an event type coffer does not act on, a settled deposit)."""
    REVIEW = "review"
    """Money may be wrong somewhere: an operator must look (`coffer payments review`)."""


class SavedCard(Base):
    __tablename__ = "saved_cards"
    __table_args__ = (UniqueConstraint("user_id", "provider", "signature"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    authorization_sealed: Mapped[str] = mapped_column(String(512))
    """The provider's reusable authorization code, encrypted (AES-GCM, bound to the row's
    user, provider and signature)."""
    encryption_key_id: Mapped[str] = mapped_column(String(64))
    last4: Mapped[str] = mapped_column(String(4))
    brand: Mapped[str] = mapped_column(String(32))
    exp_month: Mapped[str] = mapped_column(String(2))
    exp_year: Mapped[str] = mapped_column(String(4))
    signature: Mapped[str] = mapped_column(String(128))
    """The provider's fingerprint of the card: the same card saved twice is one row."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Deposit(Base):
    __tablename__ = "deposits"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        Index(None, "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), index=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    provider: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=DepositStatus.PENDING)
    provider_reference: Mapped[str | None] = mapped_column(String(128))
    authorization_url: Mapped[str | None] = mapped_column(String(2048))
    callback_url: Mapped[str] = mapped_column(String(2048))
    failure_reason: Mapped[str | None] = mapped_column(String(64))
    saved_card_id: Mapped[int | None] = mapped_column(ForeignKey("saved_cards.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    """What the Idempotency-Key was first used for: the same key with another body is refused."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookInboxEntry(Base):
    """Every verified provider event, once: the unique key is what makes delivery idempotent."""

    __tablename__ = "webhook_inbox"
    __table_args__ = (
        UniqueConstraint("provider", "event_key"),
        Index(None, "outcome", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    event_key: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    """The parsed event without secrets (no card authorization code)."""
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PayoutDestination(Base):
    __tablename__ = "payout_destinations"
    __table_args__ = (
        # One live destination per account; a deleted one may be added again.
        Index(
            "uq_payout_destinations_live_account",
            "user_id",
            "provider",
            "account_fingerprint",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    bank_code: Mapped[str] = mapped_column(String(32))
    bank_name: Mapped[str] = mapped_column(String(128))
    account_name: Mapped[str] = mapped_column(String(201))
    account_number_sealed: Mapped[str] = mapped_column(String(512))
    """Encrypted (AES-GCM, bound to the row's user and bank)."""
    encryption_key_id: Mapped[str] = mapped_column(String(64))
    account_last4: Mapped[str] = mapped_column(String(4))
    account_fingerprint: Mapped[str] = mapped_column(String(64))
    """Keyed hash of bank code and account number: finds a duplicate without decrypting."""
    recipient_code: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Withdrawal(Base):
    __tablename__ = "withdrawals"
    __table_args__ = (Index(None, "status", "updated_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), index=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    destination_id: Mapped[int] = mapped_column(ForeignKey("payout_destinations.id"))
    provider: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=WithdrawalStatus.PENDING)
    narration: Mapped[str | None] = mapped_column(String(100))
    transfer_code: Mapped[str | None] = mapped_column(String(128))
    failure_reason: Mapped[str | None] = mapped_column(String(64))
    limit_day: Mapped[date] = mapped_column(Date)
    """The limit day the amount was consumed on: a refund gives it back to that day."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SandboxCharge(Base):
    """The sandbox provider's own record of a checkout: what `verify_deposit` answers from."""

    __tablename__ = "sandbox_charges"

    reference: Mapped[str] = mapped_column(String(64), primary_key=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    email: Mapped[str] = mapped_column(String(320))
    callback_url: Mapped[str] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(16))
    authorization_code: Mapped[str | None] = mapped_column(String(64))
    """Issued when the payer asked to remember the card: what a saved-card charge presents."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SandboxRecipient(Base):
    __tablename__ = "sandbox_recipients"

    recipient_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_suffix: Mapped[str] = mapped_column(String(4))
    """The account number's last four digits: all the payout simulator's rule reads."""


class SandboxPayout(Base):
    __tablename__ = "sandbox_payouts"

    reference: Mapped[str] = mapped_column(String(64), primary_key=True)
    transfer_code: Mapped[str] = mapped_column(String(64), unique=True)
    recipient_code: Mapped[str] = mapped_column(String(64))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
