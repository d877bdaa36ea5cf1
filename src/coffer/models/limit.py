"""Daily limits: how much each user has moved per kind, currency and limit day."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coffer.models.base import Base, UTCDateTime


class DailyLimitUsage(Base):
    __tablename__ = "daily_limit_usage"
    __table_args__ = (
        CheckConstraint("used_minor >= 0 AND used_minor <= limit_minor", name="within_limit"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    """`transfer` or `withdrawal`."""
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    """The calendar day in COFFER_LIMITS_TIMEZONE."""
    used_minor: Mapped[int] = mapped_column(BigInteger)
    """Consumed by accepted requests, given back when one fails."""
    limit_minor: Mapped[int] = mapped_column(BigInteger)
    """The limit in force at the last consumption, in this currency."""


class LimitOverride(Base):
    """An admin's daily limit for one user, kind and currency, in force until `expires_at`;
    the limits consult it before the configured default."""

    __tablename__ = "limit_overrides"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    limit_minor: Mapped[int] = mapped_column(BigInteger)
    """In `currency`'s minor unit."""
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
