"""Monthly maintenance fees: one row per wallet per 30-day period, paid or still owed."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from coffer.kit.clock import utcnow
from coffer.models.base import Base, BigId, UTCDateTime


class FeeStatus(StrEnum):
    PAID = "paid"
    OWED = "owed"
    """The balance could not cover it when due; the wallet is blocked until it is paid."""
    WAIVED = "waived"
    """Due before the fee was introduced (COFFER_MONTHLY_FEE_SINCE): never charged."""


class WalletFee(Base):
    __tablename__ = "wallet_fees"
    __table_args__ = (
        # Never twice for one period, whichever runner gets there first.
        UniqueConstraint("wallet_id", "period"),
        Index(None, "status", "wallet_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    period: Mapped[int] = mapped_column(Integer)
    """1 for the first 30 days after the wallet opened, 2 for the next, ..."""
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    """The wallet's opening plus 30 days times `period`."""
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(8))
    ledger_entry_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
