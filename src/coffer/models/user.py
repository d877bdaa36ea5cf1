"""People who own wallets. The identity domain adds sign-in on top of this table."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coffer.kit.clock import utcnow
from coffer.models.base import Base, UTCDateTime


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    """Stored lower-cased, so uniqueness and lookups are case-insensitive."""
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    """E.164, verified by an SMS code: only verified numbers live here, so this unique
    constraint is uniqueness among verified numbers, and sign-in and transfers by phone find
    only them. An unverified claim waits in `pending_phone` and blocks nobody."""
    pending_phone: Mapped[str | None] = mapped_column(String(20))
    """A number claimed (at sign-up or on /me) and sent a code, not yet proven; not unique."""
    pending_email: Mapped[str | None] = mapped_column(String(320))
    """A new address asked for on /me, sent a code; `email` changes only once it is proven."""
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    """None for accounts that only sign in through Google."""
    role: Mapped[str] = mapped_column(String(16), default=Role.USER)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    """False once deactivated: no sign-in, no session, no key works until an admin reactivates."""
    is_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    """True once the sign-up code was confirmed (operator-created and Google users start so)."""
    profile_image_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def display_name(self) -> str:
        names = " ".join(n for n in (self.first_name, self.last_name) if n)
        return names or self.email
