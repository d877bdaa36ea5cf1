"""Webhook endpoint management. Signed-in users only: an API key can neither read nor change
where a user's events are sent (403 `permission_denied`)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from coffer.auth.principal import UserPrincipal
from coffer.http import AppSettings, Session, error_responses
from coffer.idempotency.dependency import Idempotency, IdempotentRoute
from coffer.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from coffer.schemas import Envelope
from coffer.webhooks import deliveries, service
from coffer.webhooks.schemas import (
    IssuedWebhookEndpoint,
    SecretRotation,
    WebhookAttemptOut,
    WebhookDeliveryOut,
    WebhookDeliveryPage,
    WebhookEndpointCreate,
    WebhookEndpointOut,
    WebhookEndpointPage,
    WebhookEndpointUpdate,
)

router = APIRouter(prefix="/webhook-endpoints", tags=["webhooks"], route_class=IdempotentRoute)

_ISSUING = Depends(Idempotency(shown_once=("secret",)))
_IDEMPOTENT = Depends(Idempotency())
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=512)]


def _endpoint(endpoint: WebhookEndpoint) -> WebhookEndpointOut:
    return WebhookEndpointOut(
        id=endpoint.id,
        url=endpoint.url,
        events=endpoint.event_types,
        enabled=endpoint.is_enabled,
        disabled_reason=endpoint.disabled_reason,
        previous_secret_expires_at=endpoint.previous_secret_expires_at,
        last_success_at=endpoint.last_success_at,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
    )


def _issued(issued: service.IssuedSecret) -> IssuedWebhookEndpoint:
    return IssuedWebhookEndpoint(**_endpoint(issued.endpoint).model_dump(), secret=issued.secret)


def _delivery(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> WebhookDeliveryOut:
    return WebhookDeliveryOut(
        id=delivery.id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        webhook_id=delivery.message_id,
        status=delivery.status,
        attempt_count=delivery.attempt_count,
        next_attempt_at=delivery.next_attempt_at,
        created_at=delivery.created_at,
        completed_at=delivery.completed_at,
        attempts=[WebhookAttemptOut.model_validate(attempt) for attempt in attempts],
    )


@router.post(
    "",
    status_code=201,
    summary="Register a webhook endpoint (its signing secret is shown once)",
    dependencies=[_ISSUING],
    responses=error_responses(401, 403, 409, 422, 429),
)
async def create_endpoint(
    body: WebhookEndpointCreate, principal: UserPrincipal, session: Session, settings: AppSettings
) -> Envelope[IssuedWebhookEndpoint]:
    issued = await service.create_endpoint(
        session, settings, principal.user_id, url=body.url, event_types=body.events
    )
    return Envelope(
        status_code=201,
        message="Webhook endpoint created; store its secret now",
        data=_issued(issued),
    )


@router.get(
    "", summary="List your webhook endpoints", responses=error_responses(401, 403, 422, 429)
)
async def list_endpoints(
    principal: UserPrincipal, session: Session, limit: Limit = 50, cursor: Cursor = None
) -> Envelope[WebhookEndpointPage]:
    endpoints, next_cursor = await service.list_endpoints(
        session, principal.user_id, limit=limit, cursor=cursor
    )
    return Envelope(
        data=WebhookEndpointPage(
            endpoints=[_endpoint(e) for e in endpoints], next_cursor=next_cursor
        )
    )


@router.get(
    "/{endpoint_id}",
    summary="One webhook endpoint",
    responses=error_responses(401, 403, 404, 422, 429),
)
async def get_endpoint(
    endpoint_id: uuid.UUID, principal: UserPrincipal, session: Session
) -> Envelope[WebhookEndpointOut]:
    endpoint = await service.get_endpoint(session, principal.user_id, endpoint_id)
    return Envelope(data=_endpoint(endpoint))


@router.patch(
    "/{endpoint_id}",
    summary="Change a webhook endpoint's URL or events, or disable / enable it",
    dependencies=[_IDEMPOTENT],
    responses=error_responses(401, 403, 404, 409, 422, 429),
)
async def update_endpoint(
    endpoint_id: uuid.UUID,
    body: WebhookEndpointUpdate,
    principal: UserPrincipal,
    session: Session,
    settings: AppSettings,
) -> Envelope[WebhookEndpointOut]:
    endpoint = await service.update_endpoint(
        session,
        settings,
        principal.user_id,
        endpoint_id,
        url=body.url,
        event_types=body.events,
        enabled=body.enabled,
    )
    return Envelope(message="Webhook endpoint updated", data=_endpoint(endpoint))


@router.delete(
    "/{endpoint_id}",
    summary="Delete a webhook endpoint (nothing more is delivered to it)",
    dependencies=[_IDEMPOTENT],
    responses=error_responses(401, 403, 404, 409, 422, 429),
)
async def delete_endpoint(
    endpoint_id: uuid.UUID, principal: UserPrincipal, session: Session
) -> Envelope[WebhookEndpointOut]:
    endpoint = await service.delete_endpoint(session, principal.user_id, endpoint_id)
    return Envelope(message="Webhook endpoint deleted", data=_endpoint(endpoint))


@router.post(
    "/{endpoint_id}/rotate-secret",
    summary="Replace the signing secret (shown once); the old one signs too during the overlap",
    dependencies=[_ISSUING],
    responses=error_responses(401, 403, 404, 409, 422, 429),
)
async def rotate_secret(
    endpoint_id: uuid.UUID,
    principal: UserPrincipal,
    session: Session,
    settings: AppSettings,
    body: SecretRotation | None = None,
) -> Envelope[IssuedWebhookEndpoint]:
    rotation = body or SecretRotation()
    issued = await service.rotate_secret(
        session,
        settings,
        principal.user_id,
        endpoint_id,
        overlap=timedelta(seconds=rotation.overlap_seconds),
    )
    return Envelope(message="Signing secret rotated; store it now", data=_issued(issued))


@router.get(
    "/{endpoint_id}/deliveries",
    summary="Deliveries to this endpoint, newest first, with their attempts",
    responses=error_responses(401, 403, 404, 422, 429),
)
async def list_deliveries(
    endpoint_id: uuid.UUID,
    principal: UserPrincipal,
    session: Session,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Envelope[WebhookDeliveryPage]:
    page, next_cursor = await deliveries.list_deliveries(
        session, principal.user_id, endpoint_id, limit=limit, cursor=cursor
    )
    return Envelope(
        data=WebhookDeliveryPage(
            deliveries=[_delivery(d, attempts) for d, attempts in page], next_cursor=next_cursor
        )
    )


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/retry",
    status_code=202,
    summary="Send a finished delivery again, now (the same webhook-id and body)",
    dependencies=[_IDEMPOTENT],
    responses=error_responses(401, 403, 404, 409, 422, 429),
)
async def retry_delivery(
    endpoint_id: uuid.UUID,
    delivery_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    principal: UserPrincipal,
    session: Session,
) -> Envelope[WebhookDeliveryOut]:
    delivery = await deliveries.resend(session, principal.user_id, endpoint_id, delivery_id)
    return Envelope(status_code=202, message="Delivery queued again", data=_delivery(delivery, []))
