"""API keys that let a user's services act on their wallets, and the Idempotency-Key store."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coffer.models.base import Base, BigId, JsonDocument, UTCDateTime


class ApiKey(Base):
    """A scoped, expiring credential; the key itself is shown once and never stored."""

    __tablename__ = "api_keys"
    __table_args__ = (Index(None, "user_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(24), unique=True)
    """The key's first characters (`sk_test_` + 8 random ones): shown in lists, and the O(1)
    lookup of a presented key before its hash is compared in constant time."""
    key_hash: Mapped[str] = mapped_column(String(64))
    """HMAC-SHA256 of the whole key with a key derived from COFFER_SECRET_KEY, hex."""
    permissions: Mapped[list[str]] = mapped_column(JsonDocument)
    """A subset of read, deposit, transfer, withdraw."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rolled_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Set when a successor replaced this expired key: a key is rolled over once."""
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Written at most once a minute per key, so authenticating is not a write."""


class IdempotencyRecord(Base):
    """The stored answer to a mutating request made with an Idempotency-Key (DESIGN.md §6)."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(String(64))
    """Whose key it is: `user:<id>` or `key:<api key id>` (`Principal.scope`)."""
    key: Mapped[str] = mapped_column(String(255))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    """SHA-256 of method, path and body, to tell a replay from a reused key."""
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    """The JSON body sent, with values shown only once (a new API key) blanked out."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
