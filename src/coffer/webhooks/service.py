"""Managing a user's webhook endpoints: create (the secret shown once), list, change, delete,
and rotate the secret with an overlap during which deliveries carry both signatures.

Secrets are sealed at rest (AES-GCM, `coffer.kit.crypto`), since every delivery must be
signed with them; the plain secret leaves coffer once, in the response that creates it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.errors import AppError
from coffer.kit.clock import utcnow
from coffer.kit.crypto import current_key_id, seal, unseal
from coffer.kit.pagination import decode_moment_cursor, encode_cursor
from coffer.models import WebhookEndpoint
from coffer.notifications.events import EventType
from coffer.settings import Settings
from coffer.webhooks import repository
from coffer.webhooks.signing import new_secret
from coffer.webhooks.ssrf import check_registration

MAX_ENDPOINTS_PER_USER = 10
DEFAULT_ROTATION_OVERLAP = timedelta(hours=24)
MAX_ROTATION_OVERLAP = timedelta(days=7)
RESEAL_BATCH = 500


class WebhookEndpointNotFound(AppError):
    code = "webhook_endpoint_not_found"
    http_status = 404
    default_message = "Webhook endpoint not found"


class WebhookEndpointLimitReached(AppError):
    code = "webhook_endpoint_limit_reached"
    http_status = 409
    default_message = f"At most {MAX_ENDPOINTS_PER_USER} webhook endpoints; delete one first"


class UnknownEventType(AppError):
    code = "unknown_event_type"
    http_status = 422
    default_message = "Unknown event type"


@dataclass(frozen=True, slots=True)
class IssuedSecret:
    endpoint: WebhookEndpoint
    secret: str


def secret_context(endpoint: WebhookEndpoint) -> str:
    """What a sealed secret is bound to: copied to another endpoint's row, it does not open."""
    return f"webhook-endpoint:{endpoint.user_id}:{endpoint.id}"


def signing_secrets(settings: Settings, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the one it replaced
    while the rotation's overlap lasts."""
    context = secret_context(endpoint)
    found = [unseal(settings, endpoint.secret_sealed, context=context)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_sealed is not None and expires is not None and expires > now:
        found.append(unseal(settings, endpoint.previous_secret_sealed, context=context))
    return found


def canonical_event_types(event_types: Sequence[str]) -> list[str]:
    """The types, each checked against the catalogue, without repeats, in catalogue order."""
    known = {str(event_type) for event_type in EventType}
    unknown = sorted({name for name in event_types if name not in known})
    if unknown:
        raise UnknownEventType(
            f"Unknown event type: {', '.join(unknown)[:200]}",
            details={"unknown": unknown[:20], "known": sorted(known)},
        )
    wanted = set(event_types)
    return [str(event_type) for event_type in EventType if str(event_type) in wanted]


async def create_endpoint(
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    *,
    url: str,
    event_types: Sequence[str],
) -> IssuedSecret:
    types = canonical_event_types(event_types)
    await check_registration(url, allow_private=settings.webhooks_allow_private_targets)
    await repository.lock_owner_for_update(session, user_id)
    if await repository.count_live(session, user_id) >= MAX_ENDPOINTS_PER_USER:
        raise WebhookEndpointLimitReached()
    now = utcnow()
    secret = new_secret()
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(),
        user_id=user_id,
        url=url,
        event_types=types,
        encryption_key_id=current_key_id(settings),
        is_enabled=True,
        created_at=now,
        updated_at=now,
    )
    endpoint.secret_sealed = seal(settings, secret, context=secret_context(endpoint))
    session.add(endpoint)
    await session.flush()
    return IssuedSecret(endpoint, secret)


async def get_endpoint(
    session: AsyncSession, user_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    endpoint = await repository.get_owned(session, user_id, endpoint_id)
    if endpoint is None:
        raise WebhookEndpointNotFound()
    return endpoint


async def list_endpoints(
    session: AsyncSession, user_id: uuid.UUID, *, limit: int, cursor: str | None
) -> tuple[Sequence[WebhookEndpoint], str | None]:
    """A page of the user's endpoints, newest first, and the next page's cursor (if any)."""
    before = decode_moment_cursor(cursor) if cursor is not None else None
    endpoints = await repository.list_owned(session, user_id, limit=limit + 1, before=before)
    if len(endpoints) <= limit:
        return endpoints, None
    last = endpoints[limit - 1]
    return endpoints[:limit], encode_cursor(last.created_at.isoformat(), str(last.id))


async def update_endpoint(
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    url: str | None,
    event_types: Sequence[str] | None,
    enabled: bool | None,
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, user_id, endpoint_id)
    if event_types is not None:
        endpoint.event_types = canonical_event_types(event_types)
    if url is not None:
        await check_registration(url, allow_private=settings.webhooks_allow_private_targets)
        endpoint.url = url
    if enabled is not None and enabled != endpoint.is_enabled:
        endpoint.is_enabled = enabled
        endpoint.disabled_reason = None if enabled else "user"
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint


async def delete_endpoint(
    session: AsyncSession, user_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    """Stop every delivery to it at once (pending ones fail when their turn comes)."""
    endpoint = await get_endpoint(session, user_id, endpoint_id)
    now = utcnow()
    endpoint.deleted_at = now
    endpoint.is_enabled = False
    endpoint.updated_at = now
    await session.flush()
    return endpoint


async def rotate_secret(
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    overlap: timedelta,
) -> IssuedSecret:
    """A new secret; the current one keeps signing (beside it) for `overlap`, so receivers
    can switch without missing a delivery. A secret older than that stops at once."""
    endpoint = await get_endpoint(session, user_id, endpoint_id)
    now = utcnow()
    context = secret_context(endpoint)
    current = unseal(settings, endpoint.secret_sealed, context=context)
    secret = new_secret()
    endpoint.previous_secret_sealed = seal(settings, current, context=context) if overlap else None
    endpoint.previous_secret_expires_at = now + overlap if overlap else None
    endpoint.secret_sealed = seal(settings, secret, context=context)
    endpoint.encryption_key_id = current_key_id(settings)
    endpoint.updated_at = now
    await session.flush()
    return IssuedSecret(endpoint, secret)


async def reseal_secrets(session: AsyncSession, settings: Settings) -> int:
    """Re-seal one batch of endpoint secrets with the current data encryption key; returns how
    many changed (0: all done). For `coffer keys rotate-encryption`."""
    current = current_key_id(settings)
    endpoints = await repository.endpoints_sealed_not_with(session, current, RESEAL_BATCH)
    for endpoint in endpoints:
        context = secret_context(endpoint)
        endpoint.secret_sealed = seal(
            settings, unseal(settings, endpoint.secret_sealed, context=context), context=context
        )
        if endpoint.previous_secret_sealed is not None:
            previous = unseal(settings, endpoint.previous_secret_sealed, context=context)
            endpoint.previous_secret_sealed = seal(settings, previous, context=context)
        endpoint.encryption_key_id = current
    await session.flush()
    return len(endpoints)
