"""Outbound webhooks: the endpoints users register, one delivery per event and endpoint, and
every attempt to deliver it."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from coffer.models.base import Base, BigId, JsonDocument, UTCDateTime


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    """Waiting for its next attempt (or being attempted)."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    """Every scheduled attempt failed, or its endpoint was disabled or deleted first."""


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index(None, "user_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id"))
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[str]] = mapped_column(JsonDocument)
    """The catalogue types this endpoint is sent (`coffer.notifications.events`)."""
    secret_sealed: Mapped[str] = mapped_column(String(512))
    """The `whsec_…` signing secret, encrypted (AES-GCM, bound to the endpoint)."""
    previous_secret_sealed: Mapped[str | None] = mapped_column(String(512))
    """The secret before the last rotation, also signing until `previous_secret_expires_at`."""
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    encryption_key_id: Mapped[str] = mapped_column(String(64))
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(64))
    """`user` (PATCH) or `failing` (a delivery exhausted its retries with no success since)."""
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Deleted endpoints keep their row (their deliveries' history) and receive nothing."""


class WebhookDelivery(Base):
    """One event for one endpoint: the exact body sent on every attempt and its `webhook-id`."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index(None, "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("webhook_endpoints.id"))
    event_id: Mapped[int] = mapped_column(BigInteger)
    """The `events` row announced (not a foreign key: events are purged after retention)."""
    event_type: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(String(40), unique=True)
    """The `webhook-id` header: the same on every attempt, so receivers can deduplicate."""
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    """Scheduled attempts made so far; the retry schedule is indexed by it."""
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"
    __table_args__ = (Index(None, "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    response_status: Mapped[int | None] = mapped_column(Integer)
    """The receiver's HTTP status; null when no response came (refused, timeout, no route)."""
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(64))
    """Why it failed without a status: `timeout`, `connection_failed`, `target_refused`, …"""


class WebhookFanOutCursor(Base):
    """One row: the newest event the fan-out has turned into deliveries."""

    __tablename__ = "webhook_fan_out_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_event_id: Mapped[int] = mapped_column(BigInteger)
