"""Who is calling: one `Principal` for every protected route, from a Bearer access token
(a user, with every permission on their own resources) or an `x-api-key` (a service, with
only its key's permissions).

Routes state what they need in their signature:
`TransferWriter = Annotated[Principal, Depends(require(Permission.TRANSFER))]`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.apikeys.authenticator import InvalidApiKey, authenticate_api_key
from coffer.apikeys.ratelimit import ApiKeyRateLimiter
from coffer.auth.request_limits import RequestLimits
from coffer.db import writer_for
from coffer.errors import AppError, RecordedRefusal
from coffer.http import DatabaseDependency, Session
from coffer.identity.tokens import InvalidToken, decode_token
from coffer.kit.clock import utcnow
from coffer.models import AuthSession, Role, User
from coffer.settings import Settings


class Permission(StrEnum):
    READ = "read"
    DEPOSIT = "deposit"
    TRANSFER = "transfer"
    WITHDRAW = "withdraw"


ALL_PERMISSIONS = frozenset(Permission)


class NotAuthenticated(AppError):
    code = "not_authenticated"
    http_status = 401
    default_message = "Authentication required: send a Bearer token or an x-api-key"


class PermissionDenied(AppError):
    code = "permission_denied"
    http_status = 403
    default_message = "This credential may not do that"


class AccountInactive(AppError):
    code = "account_inactive"
    http_status = 403
    default_message = "The account is not active"


class SessionExpired(AppError):
    code = "session_expired"
    http_status = 401
    default_message = "The session has ended; sign in again"


class SessionTimedOut(RecordedRefusal):
    """Answered like `SessionExpired`, but the session's revocation is committed."""

    code = "session_expired"
    http_status = 401
    default_message = "The session timed out after inactivity; sign in again"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID
    role: Role
    permissions: frozenset[Permission]
    session_id: uuid.UUID | None = None
    """Set for a signed-in user (Bearer token)."""
    api_key_id: uuid.UUID | None = None
    """Set for a service acting through an API key."""
    stepped_up_at: datetime | None = None
    """The session's last fresh proof (sign-in or step-up); never set for an API key."""

    @property
    def is_api_key(self) -> bool:
        return self.api_key_id is not None

    @property
    def scope(self) -> str:
        """What idempotency keys and rate limits are scoped to."""
        return f"key:{self.api_key_id}" if self.api_key_id else f"user:{self.user_id}"


def _last_seen_write_interval(settings: Settings) -> timedelta:
    # Writing on every request would make each one a write; a third of the idle timeout
    # (at most a minute) keeps the timeout accurate enough.
    return timedelta(seconds=min(60, settings.session_idle_timeout_seconds / 3))


async def authenticate_access_token(
    session: AsyncSession, settings: Settings, token: str
) -> Principal:
    """A Bearer token is good while its session is open, not idle, and its user active."""
    claims = decode_token(settings, token)
    row = (
        await session.execute(
            select(AuthSession, User.role, User.is_active)
            .join(User, User.id == AuthSession.user_id)
            .where(AuthSession.id == claims.session_id, AuthSession.user_id == claims.user_id)
        )
    ).one_or_none()
    if row is None:
        raise InvalidToken()
    auth_session, role, is_active = row
    now = utcnow()
    if auth_session.revoked_at is not None or auth_session.expires_at <= now:
        raise SessionExpired()
    if now - auth_session.last_seen_at > timedelta(seconds=settings.session_idle_timeout_seconds):
        async with writer_for(session) as writer:
            await writer.execute(
                update(AuthSession)
                .where(AuthSession.id == auth_session.id, AuthSession.revoked_at.is_(None))
                .values(revoked_at=now, revoke_reason="idle_timeout")
            )
        raise SessionTimedOut()
    if not is_active:
        raise AccountInactive()
    if now - auth_session.last_seen_at >= _last_seen_write_interval(settings):
        async with writer_for(session) as writer:
            await writer.execute(
                update(AuthSession)
                .where(AuthSession.id == auth_session.id)
                .values(last_seen_at=now)
            )
    return Principal(
        user_id=claims.user_id,
        role=Role(role),
        permissions=ALL_PERMISSIONS,
        session_id=auth_session.id,
        stepped_up_at=auth_session.stepped_up_at,
    )


async def get_principal(request: Request, session: Session) -> Principal:
    return await _authenticate_within_limits(request, session)


async def _authenticate_within_limits(request: Request, session: AsyncSession) -> Principal:
    """Per-IP limits and the failed-authentication lockout before authenticating, the
    per-user limit after."""
    limits: RequestLimits = request.app.state.request_limits
    ip = request.client.host if request.client else None
    await limits.before_authentication(ip)
    try:
        principal = await _authenticate(request, session)
    except (InvalidToken, InvalidApiKey):
        await limits.authentication_failed(ip)
        raise
    if not principal.is_api_key:
        await limits.user_request(principal.user_id.hex)
    return principal


async def _authenticate(request: Request, session: AsyncSession) -> Principal:
    settings: Settings = request.app.state.settings
    api_key = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization")
    if api_key is not None:
        if authorization is not None:
            raise NotAuthenticated("Send either a Bearer token or an x-api-key, not both")
        return await authenticate_key(
            session, settings, request.app.state.api_key_rate_limiter, api_key.strip()
        )
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated()
    return await authenticate_access_token(session, settings, token.strip())


async def authenticate_key(
    session: AsyncSession, settings: Settings, limiter: ApiKeyRateLimiter, presented: str
) -> Principal:
    """An API key is good while neither revoked nor expired, with only its permissions."""
    key = await authenticate_api_key(session, settings, limiter, presented)
    return Principal(
        user_id=key.user_id,
        role=Role(key.role),
        permissions=frozenset(Permission(p) for p in key.permissions),
        api_key_id=key.id,
    )


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_user_principal_apart(request: Request, database: DatabaseDependency) -> Principal:
    """A signed-in user, authenticated in a unit of work of its own that has committed when the
    route starts: for routes that check a password, whose argon2 must not run while the
    request's transaction holds anything (on SQLite, the write lock)."""
    async with database.transaction() as session:
        principal = await _authenticate_within_limits(request, session)
    return await require_user(principal)


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller must hold `permission` (users hold all on their own wallets)."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if permission not in principal.permissions:
            raise PermissionDenied(f"This API key lacks the '{permission}' permission")
        return principal

    return check


async def require_user(principal: CurrentPrincipal) -> Principal:
    """Signed-in users only: API keys never manage keys, 2FA, passwords or sessions."""
    if principal.is_api_key:
        raise PermissionDenied("API keys cannot do this; sign in as the user")
    return principal


async def require_admin(principal: CurrentPrincipal) -> Principal:
    if principal.is_api_key or principal.role is not Role.ADMIN:
        raise PermissionDenied("Admins only")
    return principal


UserPrincipal = Annotated[Principal, Depends(require_user)]
UserPrincipalApart = Annotated[Principal, Depends(get_user_principal_apart)]
"""Like `UserPrincipal`, but the request's `Session` is not begun by authenticating."""
AdminPrincipal = Annotated[Principal, Depends(require_admin)]
Reader = Annotated[Principal, Depends(require(Permission.READ))]
Depositor = Annotated[Principal, Depends(require(Permission.DEPOSIT))]
TransferWriter = Annotated[Principal, Depends(require(Permission.TRANSFER))]
Withdrawer = Annotated[Principal, Depends(require(Permission.WITHDRAW))]
