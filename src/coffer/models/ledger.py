"""The double-entry ledger: accounts, entries and their postings (DESIGN.md §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from coffer.kit.clock import utcnow
from coffer.models.base import Base, BigId, JsonDocument, UTCDateTime


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        # Invariant 3 held by the database itself, beneath the ledger's own checks.
        CheckConstraint(
            "(allow_negative AND balance IS NULL) OR (NOT allow_negative AND balance >= 0)",
            name="balance_rule",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    """`wallet:<number>` or `system:<purpose>:<ccy>`."""
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[int | None] = mapped_column(BigInteger)
    """Running balance in minor units, for accounts that must never go negative. None on
    `allow_negative` system accounts: they face the outside world, every deposit touches them,
    so they keep no running balance (no hot row); theirs is the sum of their postings."""
    allow_negative: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(128), unique=True)
    """Idempotency of the ledger itself: one entry per reference, ever."""
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JsonDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerPosting(Base):
    __tablename__ = "ledger_postings"
    __table_args__ = (Index(None, "account_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    """Signed, in the currency's minor unit: positive credits the account, negative debits it."""
    balance_after: Mapped[int | None] = mapped_column(BigInteger)
    """The account's running balance after this posting; None for accounts without one."""
