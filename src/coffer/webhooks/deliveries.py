"""From events to deliveries, and each delivery's attempts.

The fan-out (`webhooks.fan_out`, a cheap job) reads the events table after its cursor, in id
order (ids are allocated in commit order, so nothing below the cursor can still appear), and
makes one delivery per event and subscribed endpoint, each with its own `webhook.deliver`
job. An attempt is one HTTP POST, outside any transaction; its outcome is recorded after it.
A failed attempt schedules the next after `RETRY_DELAYS`; after the last the delivery fails,
and an endpoint with no success since that delivery began is disabled and its owner emailed.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.errors import AppError
from coffer.jobs.outbox import enqueue
from coffer.kit.clock import utcnow
from coffer.kit.pagination import decode_cursor, encode_cursor
from coffer.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from coffer.notifications.events import StoredEvent
from coffer.notifications.service import Event, notify
from coffer.settings import Settings
from coffer.webhooks import repository
from coffer.webhooks.sender import Outcome
from coffer.webhooks.service import get_endpoint, signing_secrets
from coffer.webhooks.signing import new_message_id, signature_header

DELIVER_JOB = "webhooks.deliver"
FAN_OUT_JOB = "webhooks.fan_out"
FAN_OUT_BATCH = 500
"""Events read per fan-out transaction."""


def _retry_delays() -> tuple[timedelta, ...]:
    """30 s, doubling each time, at most 12 h apart, for as long as the whole stays within
    three days: 15 retries, the last about 65 hours after the first attempt."""
    delays: list[timedelta] = []
    total = timedelta(0)
    delay = timedelta(seconds=30)
    while total + delay <= timedelta(days=3):
        delays.append(delay)
        total += delay
        delay = min(delay * 2, timedelta(hours=12))
    return tuple(delays)


RETRY_DELAYS = _retry_delays()
"""The wait before each retry: `RETRY_DELAYS[n - 1]` follows the n-th failed attempt."""
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1


class WebhookDeliveryNotFound(AppError):
    code = "webhook_delivery_not_found"
    http_status = 404
    default_message = "Webhook delivery not found"


class WebhookDeliveryPending(AppError):
    code = "webhook_delivery_pending"
    http_status = 409
    default_message = "This delivery is still being attempted; it cannot be resent yet"


class WebhookEndpointDisabled(AppError):
    code = "webhook_endpoint_disabled"
    http_status = 409
    default_message = "The endpoint is disabled; enable it (PATCH) before resending"


@dataclass(frozen=True, slots=True)
class PreparedAttempt:
    """Everything one attempt needs, read before the HTTP call (no transaction stays open)."""

    delivery_id: int
    endpoint_id: uuid.UUID
    user_id: uuid.UUID
    url: str
    message_id: str
    body: bytes
    signing_secrets: list[str]
    attempt_count: int
    created_at: datetime
    is_resend: bool


async def _enqueue_attempt(
    session: AsyncSession, delivery_id: int, run_at: datetime, *, is_resend: bool = False
) -> None:
    await enqueue(
        session,
        DELIVER_JOB,
        {"delivery_id": delivery_id, "resend": is_resend},
        dedupe_key=f"{DELIVER_JOB}:{delivery_id}",
        run_at=run_at,
    )


def _body(event: StoredEvent) -> str:
    return json.dumps(event.envelope(), separators=(",", ":"), sort_keys=True)


async def fan_out(session: AsyncSession) -> int:
    """One batch of events after the cursor into deliveries; returns how many events were
    read (a full batch means more may wait)."""
    cursor = await repository.lock_fan_out_cursor(session)
    high = await repository.newest_event_id(session)
    if high <= cursor:
        return 0
    rows = await repository.events_for_endpoints(session, cursor, high, FAN_OUT_BATCH)
    endpoints: dict[uuid.UUID, list[WebhookEndpoint]] = {}
    for endpoint in await repository.live_endpoints_of(session, list({r.user_id for r in rows})):
        endpoints.setdefault(endpoint.user_id, []).append(endpoint)
    now = utcnow()
    for row in rows:
        event = StoredEvent(row.id, row.user_id, row.type, row.version, row.data, row.created_at)
        for endpoint in endpoints.get(row.user_id, []):
            # An endpoint hears what happens from its creation on, nothing older.
            if event.type not in endpoint.event_types or event.created_at < endpoint.created_at:
                continue
            delivery_id = await repository.insert_delivery(
                session,
                {
                    "endpoint_id": endpoint.id,
                    "event_id": event.id,
                    "event_type": event.type,
                    "message_id": new_message_id(),
                    "body": _body(event),
                    "status": DeliveryStatus.PENDING,
                    "attempt_count": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                },
            )
            if delivery_id is not None:
                await _enqueue_attempt(session, delivery_id, now)
    # A short page read everything up to `high`; a full one stops at its last row.
    advanced = rows[-1].id if len(rows) == FAN_OUT_BATCH else high
    await repository.move_fan_out_cursor(session, advanced)
    return len(rows)


async def prepare_attempt(
    session: AsyncSession, settings: Settings, delivery_id: int, *, is_resend: bool
) -> PreparedAttempt | None:
    """The attempt to make now, or None: the delivery is no longer pending (a duplicate job),
    or its endpoint was disabled or deleted (then the delivery fails here, unattempted)."""
    found = await repository.delivery_with_endpoint(session, delivery_id)
    if found is None:
        return None
    delivery, endpoint = found
    if delivery.status != DeliveryStatus.PENDING:
        return None
    now = utcnow()
    if not endpoint.is_enabled or endpoint.deleted_at is not None:
        await repository.settle_delivery(
            session,
            delivery_id,
            seen_attempt_count=None,
            values={"status": DeliveryStatus.FAILED, "next_attempt_at": None, "completed_at": now},
        )
        return None
    return PreparedAttempt(
        delivery_id=delivery.id,
        endpoint_id=endpoint.id,
        user_id=endpoint.user_id,
        url=endpoint.url,
        message_id=delivery.message_id,
        body=delivery.body.encode(),
        signing_secrets=signing_secrets(settings, endpoint, now),
        attempt_count=delivery.attempt_count,
        created_at=delivery.created_at,
        is_resend=is_resend,
    )


async def record_outcome(
    session: AsyncSession,
    settings: Settings,
    prepared: PreparedAttempt,
    outcome: Outcome,
    attempted_at: datetime,
) -> None:
    """Store the attempt and move the delivery on: done, retried later, or given up."""
    await repository.insert_attempt(
        session,
        {
            "delivery_id": prepared.delivery_id,
            "attempted_at": attempted_at,
            "succeeded": outcome.succeeded,
            "response_status": outcome.response_status,
            "latency_ms": outcome.latency_ms,
            "error": outcome.error,
        },
    )
    now = utcnow()
    counted = prepared.attempt_count + (0 if prepared.is_resend else 1)
    # A resend is one extra try: it neither uses up nor restarts the schedule.
    seen = None if prepared.is_resend else prepared.attempt_count
    if outcome.succeeded:
        await repository.settle_delivery(
            session,
            prepared.delivery_id,
            seen_attempt_count=seen,
            values={
                "status": DeliveryStatus.SUCCEEDED,
                "attempt_count": counted,
                "next_attempt_at": None,
                "completed_at": now,
            },
        )
        await repository.mark_endpoint_succeeded(session, prepared.endpoint_id, now)
        return
    if not prepared.is_resend and counted < MAX_ATTEMPTS:
        next_at = now + RETRY_DELAYS[counted - 1]
        if await repository.settle_delivery(
            session,
            prepared.delivery_id,
            seen_attempt_count=seen,
            values={"attempt_count": counted, "next_attempt_at": next_at},
        ):
            await _enqueue_attempt(session, prepared.delivery_id, next_at)
        return
    gave_up = await repository.settle_delivery(
        session,
        prepared.delivery_id,
        seen_attempt_count=seen,
        values={
            "status": DeliveryStatus.FAILED,
            "attempt_count": counted,
            "next_attempt_at": None,
            "completed_at": now,
        },
    )
    if gave_up and not prepared.is_resend:
        await _disable_if_failing(session, settings, prepared, now)


async def _disable_if_failing(
    session: AsyncSession, settings: Settings, prepared: PreparedAttempt, now: datetime
) -> None:
    if not await repository.disable_failing_endpoint(
        session, prepared.endpoint_id, prepared.created_at, now
    ):
        return
    await notify(
        session,
        settings,
        prepared.user_id,
        Event.WEBHOOK_ENDPOINT_DISABLED,
        {
            "host": urlsplit(prepared.url).hostname or "",
            "endpoint_id": str(prepared.endpoint_id),
            "days": round(sum(RETRY_DELAYS, timedelta(0)) / timedelta(days=1), 1),
        },
        key=f"{prepared.endpoint_id}:{prepared.delivery_id}",
    )


async def list_deliveries(
    session: AsyncSession,
    user_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[tuple[WebhookDelivery, list[WebhookAttempt]]], str | None]:
    """A page of the endpoint's deliveries, newest first, each with its newest attempts."""
    await get_endpoint(session, user_id, endpoint_id)
    before_id = decode_cursor(cursor, int)[0] if cursor is not None else None
    deliveries = await repository.list_deliveries(
        session, endpoint_id, limit=limit + 1, before_id=before_id
    )
    page = list(deliveries[:limit])
    attempts: dict[int, list[WebhookAttempt]] = {}
    if page:
        for attempt in await repository.attempts_of(session, [d.id for d in page]):
            attempts.setdefault(attempt.delivery_id, []).append(attempt)
    next_cursor = encode_cursor(page[-1].id) if len(deliveries) > limit else None
    return [(delivery, attempts.get(delivery.id, [])) for delivery in page], next_cursor


async def resend(
    session: AsyncSession, user_id: uuid.UUID, endpoint_id: uuid.UUID, delivery_id: int
) -> WebhookDelivery:
    """Send a finished delivery again, now, once (same `webhook-id` and body)."""
    endpoint = await get_endpoint(session, user_id, endpoint_id)
    delivery = await repository.get_delivery(session, endpoint_id, delivery_id)
    if delivery is None:
        raise WebhookDeliveryNotFound()
    if not endpoint.is_enabled:
        raise WebhookEndpointDisabled()
    now = utcnow()
    if not await repository.reopen_delivery(session, delivery_id, now):
        raise WebhookDeliveryPending()
    await _enqueue_attempt(session, delivery_id, now, is_resend=True)
    await session.refresh(delivery)
    return delivery


def attempt_headers(prepared: PreparedAttempt, timestamp: int) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt (signed anew: the timestamp is now)."""
    return {
        "webhook-id": prepared.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            prepared.signing_secrets, prepared.message_id, timestamp, prepared.body
        ),
    }
