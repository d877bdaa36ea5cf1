"""Request and response bodies of the webhook endpoint routes. An endpoint's secret appears
only in `IssuedWebhookEndpoint.secret`, in the response that creates or rotates it."""

from __future__ import annotations

import uuid

from pydantic import Field

from coffer.models import DeliveryStatus
from coffer.schemas import RequestSchema, Schema, UtcDateTime
from coffer.webhooks.ssrf import MAX_URL_LENGTH

URL_DESCRIPTION = (
    "Where deliveries are POSTed: http(s), no credentials, a public host (checked again after "
    "DNS at every delivery; redirects are not followed)."
)
EVENTS_DESCRIPTION = "Event types from the catalogue (see the Event_* schemas), at least one."


class WebhookEndpointCreate(RequestSchema):
    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH, description=URL_DESCRIPTION)
    events: list[str] = Field(min_length=1, max_length=50, description=EVENTS_DESCRIPTION)


class WebhookEndpointUpdate(RequestSchema):
    url: str | None = Field(
        default=None, min_length=1, max_length=MAX_URL_LENGTH, description=URL_DESCRIPTION
    )
    events: list[str] | None = Field(
        default=None, min_length=1, max_length=50, description=EVENTS_DESCRIPTION
    )
    enabled: bool | None = Field(
        default=None, description="false pauses deliveries; true resumes a disabled endpoint."
    )


class SecretRotation(RequestSchema):
    overlap_seconds: int = Field(
        default=86_400,
        ge=0,
        le=7 * 86_400,
        description="How long the old secret keeps signing beside the new one (0: stop now).",
    )


class WebhookEndpointOut(Schema):
    id: uuid.UUID
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None = Field(description="`user` or `failing`, when disabled.")
    previous_secret_expires_at: UtcDateTime | None = Field(
        description="While set and in the future, deliveries carry a second signature made "
        "with the secret before the last rotation."
    )
    last_success_at: UtcDateTime | None
    created_at: UtcDateTime
    updated_at: UtcDateTime


class IssuedWebhookEndpoint(WebhookEndpointOut):
    secret: str | None = Field(
        description="The signing secret (`whsec_` + base64): shown once, here. Null when this "
        "response is an idempotent replay (it is never stored in the clear); rotate it then."
    )


class WebhookEndpointPage(Schema):
    endpoints: list[WebhookEndpointOut]
    next_cursor: str | None


class WebhookAttemptOut(Schema):
    attempted_at: UtcDateTime
    succeeded: bool
    response_status: int | None = Field(description="The receiver's HTTP status, if it answered.")
    latency_ms: int
    error: str | None = Field(
        description="Why no answer counted: `timeout`, `connection_failed`, "
        "`target_refused:<reason>`."
    )


class WebhookDeliveryOut(Schema):
    id: int
    event_id: int
    event_type: str
    webhook_id: str = Field(description="The `webhook-id` header, the same on every attempt.")
    status: DeliveryStatus
    attempt_count: int = Field(description="Scheduled attempts so far (resends not counted).")
    next_attempt_at: UtcDateTime | None
    created_at: UtcDateTime
    completed_at: UtcDateTime | None
    attempts: list[WebhookAttemptOut] = Field(description="Newest first, the last 20 at most.")


class WebhookDeliveryPage(Schema):
    deliveries: list[WebhookDeliveryOut]
    next_cursor: str | None
