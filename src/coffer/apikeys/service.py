"""Creating, listing, rolling over and revoking a user's API keys.

At most `MAX_ACTIVE_KEYS` keys per user are active (neither expired nor revoked); the check
runs under a lock on the user's row, so concurrent requests cannot both take the last slot.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.apikeys import repository
from coffer.apikeys.keys import hash_key, new_key
from coffer.audit import security
from coffer.auth.cache import forget_on_commit
from coffer.auth.principal import Permission
from coffer.db import violates
from coffer.errors import AppError
from coffer.kit.clock import add_months, utcnow
from coffer.kit.pagination import decode_moment_cursor, encode_cursor
from coffer.models import ApiKey
from coffer.settings import Settings

MAX_ACTIVE_KEYS = 5
_PREFIX_ATTEMPTS = 5


class ApiKeyLimitReached(AppError):
    code = "api_key_limit_reached"
    http_status = 409
    default_message = f"At most {MAX_ACTIVE_KEYS} API keys can be active; revoke one first"


class ApiKeyNotFound(AppError):
    code = "api_key_not_found"
    http_status = 404
    default_message = "API key not found"


class KeyNotExpired(AppError):
    code = "key_not_expired"
    http_status = 400
    default_message = "Only an expired key can be rolled over"


class KeyRevoked(AppError):
    code = "key_revoked"
    http_status = 400
    default_message = "A revoked key cannot be rolled over; create a new key"


class KeyAlreadyRolledOver(AppError):
    code = "key_already_rolled_over"
    http_status = 409
    default_message = "This key was already rolled over; use its successor"


class Expiry(StrEnum):
    HOUR = "1H"
    DAY = "1D"
    MONTH = "1M"
    """One calendar month (31 January → 28/29 February)."""
    YEAR = "1Y"

    def after(self, moment: datetime) -> datetime:
        if self is Expiry.HOUR:
            return moment + timedelta(hours=1)
        if self is Expiry.DAY:
            return moment + timedelta(days=1)
        return add_months(moment, 1 if self is Expiry.MONTH else 12)


class KeyStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


def status_of(key: ApiKey, now: datetime) -> KeyStatus:
    if key.revoked_at is not None:
        return KeyStatus.REVOKED
    return KeyStatus.EXPIRED if key.expires_at <= now else KeyStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ApiKey
    secret: str
    """The key itself: shown in this one response, stored nowhere."""


def _canonical(permissions: Iterable[Permission]) -> list[str]:
    chosen = set(permissions)
    return [str(p) for p in Permission if p in chosen]


async def create_key(
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    *,
    name: str,
    permissions: Iterable[Permission],
    expiry: Expiry,
) -> IssuedKey:
    await repository.lock_owner_for_update(session, user_id)
    now = utcnow()
    if await repository.count_active(session, user_id, now) >= MAX_ACTIVE_KEYS:
        raise ApiKeyLimitReached()
    for _ in range(_PREFIX_ATTEMPTS):
        secret, prefix = new_key(settings)
        key = ApiKey(
            id=uuid.uuid4(),
            user_id=user_id,
            name=name,
            prefix=prefix,
            key_hash=hash_key(settings, secret),
            permissions=_canonical(permissions),
            created_at=now,
            expires_at=expiry.after(now),
        )
        try:
            async with session.begin_nested():
                session.add(key)
                await session.flush()
        except IntegrityError as exc:
            # Only a clash of the random display prefix is worth another draw.
            if not violates(exc, "api_keys.prefix", "uq_api_keys_prefix"):
                raise
            continue
        await security.api_key_created(session, settings, key)
        return IssuedKey(key, secret)
    raise AppError("Could not allocate an API key prefix")


async def rollover(
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    *,
    expired_key_id: uuid.UUID,
    expiry: Expiry,
) -> IssuedKey:
    """A new key with the expired key's name and permissions, once per expired key: the claim
    on the old key is a conditional UPDATE, so concurrent rollovers cannot both succeed."""
    old = await repository.get_owned(session, user_id, expired_key_id)
    if old is None:
        raise ApiKeyNotFound()
    now = utcnow()
    if old.revoked_at is not None:
        raise KeyRevoked()
    if old.rolled_over_at is not None:
        raise KeyAlreadyRolledOver()
    if old.expires_at > now:
        raise KeyNotExpired()
    if not await repository.claim_rollover(session, old.id, now):
        raise KeyAlreadyRolledOver()
    return await create_key(
        session,
        settings,
        user_id,
        name=old.name,
        permissions=[Permission(p) for p in old.permissions],
        expiry=expiry,
    )


async def revoke(session: AsyncSession, user_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    """Revoked at once (the authenticator checks every request); revoking twice is a no-op."""
    key = await repository.get_owned(session, user_id, key_id)
    if key is None:
        raise ApiKeyNotFound()
    if key.revoked_at is None:
        forget_on_commit(session, user_id=key.user_id)
        key.revoked_at = utcnow()
        await session.flush()
        await security.api_key_revoked(session, key)
    return key


async def expire(session: AsyncSession, key_id: uuid.UUID) -> ApiKey:
    """An operator ends a key now (`coffer keys expire ID`): it stops working at once and can
    be rolled over by its owner, unlike a revoked one. An already expired key keeps its date."""
    key = await repository.get_by_id(session, key_id)
    if key is None:
        raise ApiKeyNotFound()
    now = utcnow()
    if key.expires_at > now:
        forget_on_commit(session, user_id=key.user_id)
        key.expires_at = now
        await session.flush()
    return key


async def revoke_all(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Every key of the user stops working at once (deactivation, password reset)."""
    forget_on_commit(session, user_id=user_id)
    await repository.revoke_all_owned(session, user_id, utcnow())


async def list_keys(
    session: AsyncSession, user_id: uuid.UUID, *, limit: int, cursor: str | None
) -> tuple[Sequence[ApiKey], str | None]:
    """A page of the user's keys, newest first, and the cursor of the next page (if any)."""
    before = decode_moment_cursor(cursor) if cursor is not None else None
    keys = await repository.list_owned(session, user_id, limit=limit + 1, before=before)
    if len(keys) <= limit:
        return keys, None
    last = keys[limit - 1]
    return keys[:limit], encode_cursor(last.created_at.isoformat(), str(last.id))
