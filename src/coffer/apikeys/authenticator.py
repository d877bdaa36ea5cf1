"""The `x-api-key` authenticator behind `coffer.auth.principal.get_principal`.

One indexed lookup by the key's display prefix, a constant-time comparison of its keyed hash,
expiry and revocation checked on a read at most COFFER_AUTH_CACHE_SECONDS old
(coffer.auth.cache), the per-key rate limit on every request, and `last_used_at` written at
most once a minute (authenticating is not a write).
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.apikeys import repository
from coffer.apikeys.keys import display_prefix, hash_key, is_well_formed
from coffer.apikeys.ratelimit import ApiKeyRateLimiter
from coffer.auth.cache import CACHE, CachedKey
from coffer.db import writer_for
from coffer.errors import AppError
from coffer.kit.clock import utcnow
from coffer.settings import Settings

LAST_USED_WRITE_INTERVAL = timedelta(minutes=1)


class InvalidApiKey(AppError):
    code = "invalid_api_key"
    http_status = 401
    default_message = "The API key is not valid"


class ApiKeyExpired(AppError):
    code = "api_key_expired"
    http_status = 401
    default_message = "The API key has expired; roll it over for a new one"


class ApiKeyRevoked(AppError):
    code = "api_key_revoked"
    http_status = 401
    default_message = "The API key was revoked"


class KeyOwnerInactive(AppError):
    code = "account_inactive"
    http_status = 403
    default_message = "The account is not active"


@dataclass(frozen=True, slots=True)
class AuthenticatedKey:
    id: uuid.UUID
    user_id: uuid.UUID
    role: str
    permissions: frozenset[str]


async def authenticate_api_key(
    session: AsyncSession,
    settings: Settings,
    limiter: ApiKeyRateLimiter,
    presented: str,
    *,
    cached: bool = True,
) -> AuthenticatedKey:
    """With `cached`, a key read within COFFER_AUTH_CACHE_SECONDS answers without the database
    unless its `last_used_at` stamp is due (coffer.auth.cache)."""
    if not is_well_formed(settings, presented):
        raise InvalidApiKey()
    # Hashed before any look-up, so an unknown prefix costs the same as a wrong key.
    presented_hash = hash_key(settings, presented)
    ttl_seconds = settings.auth_cache_seconds if cached else 0
    now = utcnow()
    entry = CACHE.keys.get(presented_hash, ttl_seconds) if ttl_seconds else None
    if entry is not None and entry.expires_at > now and not _use_due(entry.last_used_at, now):
        await limiter.hit(entry.id)
        return AuthenticatedKey(entry.id, entry.user_id, entry.role, entry.permissions)
    row = await repository.find_for_authentication(session, display_prefix(presented))
    if row is None or not hmac.compare_digest(row.key_hash, presented_hash):
        raise InvalidApiKey()
    if row.revoked_at is not None:
        raise ApiKeyRevoked()
    if row.expires_at <= now:
        raise ApiKeyExpired()
    if not row.is_active:
        raise KeyOwnerInactive()
    await limiter.hit(row.id)
    last_used_at = row.last_used_at
    if _use_due(last_used_at, now):
        async with writer_for(session) as writer:
            await repository.touch(writer, row.id, now, now - LAST_USED_WRITE_INTERVAL)
        last_used_at = now
    key = AuthenticatedKey(row.id, row.user_id, row.role, frozenset(row.permissions))
    if ttl_seconds:
        CACHE.keys.put(
            presented_hash,
            row.user_id,
            CachedKey(key.id, key.user_id, key.role, key.permissions, row.expires_at, last_used_at),
        )
    return key


def _use_due(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or now - last_used_at >= LAST_USED_WRITE_INTERVAL
