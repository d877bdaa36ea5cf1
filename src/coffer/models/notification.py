"""Email notification state: what a user opted out of, and which events were already
announced (so a retried job never emails twice)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coffer.kit.clock import utcnow
from coffer.models.base import Base, UTCDateTime


class NotificationPreference(Base):
    __tablename__ = "notification_preferences"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), primary_key=True)
    activity_emails: Mapped[bool] = mapped_column(Boolean, default=True)
    """Money and account activity emails; security emails are always sent."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SentNotification(Base):
    __tablename__ = "sent_notifications"

    dedupe_key: Mapped[str] = mapped_column(String(160), primary_key=True)
    """`<event>:<reference>:<recipient>`: at most one email per event and recipient."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
