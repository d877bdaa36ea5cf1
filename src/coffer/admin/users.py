"""Admin actions on users: find, inspect, activate, deactivate, reset 2FA, grant and take the
admin role. Each writes an audit row in the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.admin import repository
from coffer.apikeys import service as apikeys
from coffer.audit.service import Action, record
from coffer.auth.cache import forget_on_commit
from coffer.errors import AppError
from coffer.identity import sessions, totp
from coffer.kit.clock import utcnow
from coffer.kit.money import Money
from coffer.kit.pagination import decode_cursor, encode_cursor
from coffer.models import ApiKey, AuthSession, LimitOverride, Role, User, Wallet
from coffer.notifications.service import Event, notify
from coffer.settings import Settings
from coffer.wallets import limit_overrides
from coffer.wallets import service as wallets

MAX_KEYS_SHOWN = 100


class UserNotFound(AppError):
    code = "user_not_found"
    http_status = 404
    default_message = "No user has this id"


class LastAdmin(AppError):
    code = "last_admin"
    http_status = 409
    default_message = "The last active admin cannot lose the role or be deactivated"


class CannotActOnSelf(AppError):
    code = "cannot_act_on_self"
    http_status = 409
    default_message = "An admin cannot do this to their own account"


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await repository.get_user(session, user_id)
    if user is None:
        raise UserNotFound()
    return user


async def search(
    session: AsyncSession, query: str | None, *, limit: int, cursor: str | None
) -> tuple[Sequence[User], str | None]:
    after = decode_cursor(cursor, str)[0] if cursor is not None else None
    rows = await repository.search_users(
        session, query.strip() if query else None, after_email=after, limit=limit + 1
    )
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor(rows[limit - 1].email)


@dataclass(frozen=True, slots=True)
class UserDetail:
    user: User
    wallets: list[tuple[Wallet, Money]]
    sessions: Sequence[AuthSession]
    keys: Sequence[ApiKey]
    two_factor_enabled: bool
    limit_overrides: Sequence[LimitOverride]


async def detail(session: AsyncSession, user_id: uuid.UUID) -> UserDetail:
    user = await get_user(session, user_id)
    held = await wallets.list_wallets(session, user.id)
    keys, _ = await apikeys.list_keys(session, user.id, limit=MAX_KEYS_SHOWN, cursor=None)
    return UserDetail(
        user=user,
        wallets=[(wallet, await wallets.balance(session, wallet)) for wallet in held],
        sessions=await repository.open_sessions(session, user.id, utcnow()),
        keys=keys,
        two_factor_enabled=await totp.is_enabled(session, user.id),
        limit_overrides=await limit_overrides.in_force(session, user.id),
    )


async def _ensure_another_admin_remains(session: AsyncSession, user: User) -> None:
    if user.role != Role.ADMIN or not user.is_active:
        return
    admins = await repository.lock_admins(session)
    if [admin for admin in admins if admin != user.id] == []:
        raise LastAdmin()


async def end_access(session: AsyncSession, user_id: uuid.UUID, reason: str) -> None:
    """Every session and API key of the user stops working, as when they deactivate
    themselves."""
    await sessions.revoke_user_sessions(session, user_id, reason)
    await apikeys.revoke_all(session, user_id)


async def set_active(
    session: AsyncSession, user_id: uuid.UUID, *, active: bool, actor: str, reason: str | None
) -> User:
    """Activate, or deactivate (ending every session and key); never the last admin."""
    user = await get_user(session, user_id)
    if not active:
        await _ensure_another_admin_remains(session, user)
    user.is_active = active
    await session.flush()
    if not active:
        await end_access(session, user.id, "deactivated_by_admin")
    action = Action.USER_ACTIVATED if active else Action.USER_DEACTIVATED
    await record(session, action, actor=actor, subject_user_id=user.id, reason=reason)
    return user


async def reset_two_factor_by_admin(
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    *,
    actor: str,
    reason: str,
) -> User:
    """The recovery path for a stolen device: TOTP and recovery codes go, and so does every
    session and key that device may hold; the user signs in with their password again."""
    user = await get_user(session, user_id)
    await totp.disable(session, user.id)
    await end_access(session, user.id, "two_factor_reset")
    await record(
        session, Action.TWO_FACTOR_RESET, actor=actor, subject_user_id=user.id, reason=reason
    )
    await notify(
        session,
        settings,
        user.id,
        Event.TWO_FACTOR_CHANGED,
        {"state": "reset by an administrator"},
        key=f"reset:{utcnow().isoformat()}",
    )
    return user


async def set_role(
    session: AsyncSession, user_id: uuid.UUID, role: Role, *, actor: str, reason: str | None
) -> User:
    """Grant or take the admin role; the last active admin keeps theirs."""
    user = await get_user(session, user_id)
    if user.role == role:
        return user
    if role is not Role.ADMIN:
        await _ensure_another_admin_remains(session, user)
    user.role = role
    await session.flush()
    # A cached principal carries the role: the change holds in this process at once.
    forget_on_commit(session, user_id=user.id)
    action = Action.ROLE_GRANTED if role is Role.ADMIN else Action.ROLE_REVOKED
    await record(
        session, action, actor=actor, subject_user_id=user.id, reason=reason, details={"role": role}
    )
    return user
