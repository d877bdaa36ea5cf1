"""Exchange rates: the operator's fixed rates, the refreshed rate cache, and quotes."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, TypeDecorator, Uuid
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column

from coffer.models.base import Base, UTCDateTime


class DecimalText(TypeDecorator[Decimal]):
    """An exact decimal kept as its text: SQLite would turn NUMERIC into a binary float."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, Decimal) or not value.is_finite():
            raise ValueError("DecimalText takes a finite Decimal")
        return format(value, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class FxFixedRate(Base):
    """A rate set by an operator, read by the `fixed` provider (embedded mode and tests)."""

    __tablename__ = "fx_fixed_rates"

    base_currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    rate: Mapped[Decimal] = mapped_column(DecimalText)
    """Units of `currency` for one unit of `base_currency`."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FxRate(Base):
    """The rate cache the money paths read; written only by the refresh job (or the CLI)."""

    __tablename__ = "fx_rates"

    base_currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    rate: Mapped[Decimal] = mapped_column(DecimalText)
    """Units of `currency` for one unit of `base_currency`."""
    source: Mapped[str] = mapped_column(String(32))
    """The provider that gave it; only the configured provider's rates are used."""
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the provider says it last updated the rate."""
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    """When a refresh last confirmed it; the age that COFFER_FX_MAX_AGE_SECONDS bounds."""


class FxRateHold(Base):
    """A fetched rate that moved more than COFFER_FX_MAX_JUMP_BPS from the cached one: kept
    out of the cache (the old rate stays, and ages towards stale) until an operator confirms
    it with `coffer fx confirm-rate`."""

    __tablename__ = "fx_rate_holds"

    base_currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    rate: Mapped[Decimal] = mapped_column(DecimalText)
    source: Mapped[str] = mapped_column(String(32))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FxQuote(Base):
    """A rate held for one user for a short while; a transfer naming it uses its terms once."""

    __tablename__ = "fx_quotes"
    __table_args__ = (Index("ix_fx_quotes_user_id_expires_at", "user_id", "expires_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"))
    from_currency: Mapped[str] = mapped_column(String(3))
    to_currency: Mapped[str] = mapped_column(String(3))
    rate: Mapped[Decimal] = mapped_column(DecimalText)
    send_amount_minor: Mapped[int] = mapped_column(BigInteger)
    fee_minor: Mapped[int] = mapped_column(BigInteger)
    """The spread, in `from_currency`, included in the send amount."""
    receive_amount_minor: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
