"""The transactional outbox: jobs written in the same transaction as the change they follow."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from coffer.kit.clock import utcnow
from coffer.models.base import Base, BigId, JsonDocument, UTCDateTime


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    """Published to the broker; `run_at` is when the sweeper republishes it if no worker has
    finished it by then."""
    DEAD = "dead"
    """Gave up after the maximum attempts; kept for an operator to inspect."""


class OutboxJob(Base):
    __tablename__ = "outbox_jobs"
    __table_args__ = (Index(None, "status", "run_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    """The job to run, `<domain>.<verb>`."""
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    """At most one waiting job per key; cleared when the job is claimed, so work that arrives
    while it runs enqueues a fresh one."""
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
