"""Sessions: one row per sign-in, short-lived JWTs that name it, and a rotating refresh token.

A refresh token is opaque, stored as a keyed hash, and good once: using it marks it used and
issues its successor. Presenting a used one again means two parties hold the family (a token
was stolen), so the whole session is revoked and both must sign in again.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.audit import security
from coffer.auth.principal import AccountInactive, SessionTimedOut
from coffer.errors import AppError, RecordedRefusal
from coffer.identity import repository
from coffer.identity.tokens import issue_access_token
from coffer.kit.clock import utcnow
from coffer.kit.crypto import keyed_hash
from coffer.models import AuthSession, RefreshToken, User
from coffer.settings import Settings

log = structlog.get_logger(__name__)

REFRESH_TOKEN_BYTES = 32
MAX_REFRESH_TOKEN_LENGTH = 256


class InvalidRefreshToken(AppError):
    code = "invalid_refresh_token"
    http_status = 401
    default_message = "The refresh token is invalid or expired; sign in again"


class RefreshTokenReused(RecordedRefusal):
    code = "refresh_token_reused"
    http_status = 401
    default_message = "This refresh token was already used; the session is closed, sign in again"


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    """Seconds the access token is good for."""
    session_id: uuid.UUID
    user_id: uuid.UUID


def _refresh_hash(settings: Settings, token: str) -> str:
    return keyed_hash(settings, "refresh-token", token)


async def _issue_tokens(
    session: AsyncSession, settings: Settings, auth_session: AuthSession, role: str
) -> TokenPair:
    now = utcnow()
    refresh_token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    session.add(
        RefreshToken(
            session_id=auth_session.id,
            token_hash=_refresh_hash(settings, refresh_token),
            created_at=now,
            expires_at=auth_session.expires_at,
        )
    )
    access_token, _ = issue_access_token(
        settings, user_id=auth_session.user_id, session_id=auth_session.id, role=role, now=now
    )
    await session.flush()
    return TokenPair(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in=settings.access_token_ttl_seconds,
        session_id=auth_session.id,
        user_id=auth_session.user_id,
    )


class SessionIdTaken(Exception):
    """A session with the requested id exists (a 2FA challenge completed twice)."""


async def session_exists(session: AsyncSession, session_id: uuid.UUID) -> bool:
    found = await session.execute(select(AuthSession.id).where(AuthSession.id == session_id))
    return found.first() is not None


async def open_session(
    session: AsyncSession, settings: Settings, user: User, *, session_id: uuid.UUID | None = None
) -> TokenPair:
    """Sign the user in: a new session (refresh-token family) and its first tokens. Signing in
    is a fresh proof, so the session starts stepped up (`coffer.auth.step_up`)."""
    now = utcnow()
    auth_session = AuthSession(
        id=session_id or uuid.uuid4(),
        user_id=user.id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=settings.refresh_token_ttl_seconds),
        stepped_up_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(auth_session)
            await session.flush()
    except IntegrityError as error:
        raise SessionIdTaken() from error
    log.info("auth.session_opened", user_id=str(user.id), session_id=str(auth_session.id))
    await security.signed_in(session, settings, user)
    return await _issue_tokens(session, settings, auth_session, user.role)


async def rotate_refresh_token(session: AsyncSession, settings: Settings, token: str) -> TokenPair:
    """Trade a refresh token for new tokens; a reused token revokes its session."""
    if not token or len(token) > MAX_REFRESH_TOKEN_LENGTH:
        raise InvalidRefreshToken()
    row = (
        await session.execute(
            select(RefreshToken, AuthSession, User.role, User.is_active)
            .join(AuthSession, AuthSession.id == RefreshToken.session_id)
            .join(User, User.id == AuthSession.user_id)
            .where(RefreshToken.token_hash == _refresh_hash(settings, token))
        )
    ).one_or_none()
    if row is None:
        raise InvalidRefreshToken()
    refresh, auth_session, role, is_active = row
    now = utcnow()
    if auth_session.revoked_at is not None or auth_session.expires_at <= now:
        raise InvalidRefreshToken()
    if refresh.used_at is not None:
        await _revoke_for_reuse(session, auth_session.id)
    if now - auth_session.last_seen_at > timedelta(seconds=settings.session_idle_timeout_seconds):
        await revoke_session(session, auth_session.id, "idle_timeout")
        raise SessionTimedOut()
    if not is_active:
        raise AccountInactive()
    claimed = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == refresh.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        # A concurrent request used the same token first: the same theft signal.
        await _revoke_for_reuse(session, auth_session.id)
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == auth_session.id)
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )
    auth_session.last_seen_at = now
    return await _issue_tokens(session, settings, auth_session, role)


async def _revoke_for_reuse(session: AsyncSession, session_id: uuid.UUID) -> NoReturn:
    await revoke_session(session, session_id, "refresh_reuse")
    log.warning("auth.refresh_token_reused", session_id=str(session_id))
    raise RefreshTokenReused()


async def revoke_session(session: AsyncSession, session_id: uuid.UUID, reason: str) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoke_reason=reason)
        .execution_options(synchronize_session=False)
    )


async def list_open_sessions(session: AsyncSession, user_id: uuid.UUID) -> Sequence[AuthSession]:
    return await repository.open_sessions(session, user_id, utcnow())


async def revoke_own_session(
    session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID
) -> None:
    """The user ends one of their sessions (a lost phone); another user's id changes nothing."""
    await session.execute(
        update(AuthSession)
        .where(
            AuthSession.id == session_id,
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow(), revoke_reason="revoked_by_user")
        .execution_options(synchronize_session=False)
    )


async def mark_stepped_up(session: AsyncSession, session_id: uuid.UUID) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(stepped_up_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def revoke_user_sessions(
    session: AsyncSession, user_id: uuid.UUID, reason: str, *, keep: uuid.UUID | None = None
) -> None:
    """End every open session of the user (except `keep`, the caller's own)."""
    statement = update(AuthSession).where(
        AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
    )
    if keep is not None:
        statement = statement.where(AuthSession.id != keep)
    await session.execute(
        statement.values(revoked_at=utcnow(), revoke_reason=reason).execution_options(
            synchronize_session=False
        )
    )
