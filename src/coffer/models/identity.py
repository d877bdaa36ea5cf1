"""Sign-in state: sessions (refresh-token families) and their rotating refresh tokens, one-time
codes, Google identities and OAuth states, TOTP credentials and recovery codes."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint, Uuid
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
    stepped_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """The last fresh proof (sign-in, password or TOTP step-up) within this session; sensitive
    actions need one younger than COFFER_STEP_UP_TTL_SECONDS (`coffer.auth.step_up`)."""


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


class CodePurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose, not a password
    VERIFY_PHONE = "verify_phone"
    """Proves `users.pending_phone` (sent by SMS)."""
    CHANGE_EMAIL = "change_email"
    """Proves `users.pending_email` (sent to the new address)."""


class OneTimeCode(Base):
    """The current 6-digit code of one purpose for one user. Sending a new code replaces the
    old one in place, so the row id (the sign-up's `verification_id`) stays the same."""

    __tablename__ = "one_time_codes"
    __table_args__ = (UniqueConstraint("user_id", "purpose"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"))
    purpose: Mapped[str] = mapped_column(String(16))
    code_hash: Mapped[str] = mapped_column(String(64))
    """HMAC-SHA256 of the row id and the code with a server key; the code itself is never kept."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Wrong guesses so far; at the configured maximum the code no longer matches anything."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    send_count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    """Codes sent in the current window: a resend resets the attempts, so sends are capped."""
    window_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UserIdentity(Base):
    """A sign-in identity at an external provider, keyed on the provider's `sub` (emails can
    change hands; subjects do not)."""

    __tablename__ = "user_identities"
    __table_args__ = (UniqueConstraint("provider", "subject"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    """The verified email the provider asserted when the identity was linked."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OAuthState(Base):
    """One authorization request in flight: what the callback needs to finish it, used once."""

    __tablename__ = "oauth_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    """HMAC-SHA256 of the `state` parameter; the state itself only travels through the browser."""
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier_sealed: Mapped[str] = mapped_column(String(512))
    """The PKCE verifier, encrypted (AES-GCM)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class TotpCredential(Base):
    """A user's TOTP secret: pending after setup, enabled once a code from it was confirmed."""

    __tablename__ = "totp_credentials"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), primary_key=True)
    secret_sealed: Mapped[str] = mapped_column(String(512))
    """The base32 secret, encrypted (AES-GCM) and bound to the user id."""
    enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_step: Mapped[int | None] = mapped_column(BigInteger)
    """The 30-second step of the last accepted code: a code is good once, never replayed."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RecoveryCode(Base):
    """A single-use 2FA recovery code, stored as a keyed hash."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
