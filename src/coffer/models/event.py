"""Live events: what happened to a user's money and wallets, written in the transaction that
did it, read by the websocket (and outbound webhooks) in id order."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coffer.kit.clock import utcnow
from coffer.models.base import Base, BigId, JsonDocument, UTCDateTime


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index(None, "user_id", "id"),
        Index(None, "created_at"),
        # Ids are the resume cursor: SQLite must never hand out an id again after the newest
        # rows were deleted by retention.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    """Allocated in commit order (see `coffer.notifications.events`), so it is a cursor."""
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    """The user the event is for; only they (and their API keys) receive it."""
    type: Mapped[str] = mapped_column(String(40))
    """A catalogue name, e.g. `transfer.completed`."""
    version: Mapped[int] = mapped_column()
    """The version of the type's data schema the row was written with."""
    data: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
