"""Sign-in state: sessions (refresh-token families) and their rotating refresh tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coffer.models.base import Base, BigId, UTCDateTime


class AuthSession(Base):
    """One sign-in: the family of refresh tokens it issues and the access tokens that name it.

    Every access token carries its session id, so logging out, changing the password or
    deactivating revokes access at once, not when the token expires.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    """Last authenticated request, written at most every few seconds (the idle timeout)."""
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    """Absolute end of the session, however active."""
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoke_reason: Mapped[str | None] = mapped_column(String(32))


class RefreshToken(Base):
    """An opaque refresh token, stored as a hash; used once, then replaced by its successor."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("auth_sessions.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """HMAC-SHA256 of the token with the server secret."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Set when rotated; presenting a used token again revokes the whole session."""
