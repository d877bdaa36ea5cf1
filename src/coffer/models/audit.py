"""The tamper-evident audit log: admin actions and security events, each row hashing the one
before it, so an edited or deleted row breaks the chain `coffer audit verify` walks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coffer.kit.clock import utcnow
from coffer.models.base import Base, BigId, JsonDocument, UTCDateTime


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "subject_user_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    actor: Mapped[str] = mapped_column(String(64))
    """`user:<uuid>` (the user or admin acting), `cli` or `system`."""
    subject_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    """The user the event is about (None for system-wide actions)."""
    action: Mapped[str] = mapped_column(String(64))
    """Dotted lowercase, e.g. `admin.wallet_frozen`, `auth.sign_in`."""
    reason: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    previous_hash: Mapped[str] = mapped_column(String(64))
    """The `hash` of the row before (64 zeros for the first)."""
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    """SHA-256 over this row's fields and `previous_hash`."""


class AuditChainHead(Base):
    """One row: the newest event's id and hash. Appends lock it, so concurrent appends queue
    instead of both chaining to the same predecessor (a fork)."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
