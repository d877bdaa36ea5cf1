"""Forgotten and changed passwords."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.auth.principal import AccountInactive
from coffer.identity import codes, sessions
from coffer.identity.passwords import hash_password
from coffer.identity.service.accounts import (
    PasswordNotSet,
    WrongPassword,
    check_password_policy,
    get_user,
)
from coffer.identity.service.signin import check_password, find_by_identifier
from coffer.identity.service.signup import mark_verified, send_code
from coffer.models import CodePurpose, User
from coffer.settings import Settings

log = structlog.get_logger(__name__)


async def request_password_reset(session: AsyncSession, settings: Settings, email: str) -> None:
    """Email a reset code if the account exists; the caller answers the same either way."""
    user = await find_by_identifier(session, email=email, phone=None)
    if user is None or not user.is_active:
        return
    await send_code(session, settings, user, CodePurpose.RESET_PASSWORD)


async def reset_password(
    session: AsyncSession, settings: Settings, *, email: str, code: str, new_password: str
) -> None:
    """Set a new password with an emailed code: every session ends, and the address is proven."""
    check_password_policy(new_password)
    user = await find_by_identifier(session, email=email, phone=None)
    row = await codes.get_code_row(session, user.id, CodePurpose.RESET_PASSWORD) if user else None
    if user is None or row is None:
        raise codes.InvalidCode()
    await codes.consume_code(session, settings, row.id, CodePurpose.RESET_PASSWORD, code)
    if not user.is_active:
        raise AccountInactive()
    user.password_hash = await hash_password(new_password, settings)
    await mark_verified(session, settings, user)
    await sessions.revoke_user_sessions(session, user.id, "password_reset")
    log.info("auth.password_reset", user_id=str(user.id))


async def confirm_password(
    session: AsyncSession, settings: Settings, user: User, password: str
) -> None:
    if user.password_hash is None:
        raise PasswordNotSet()
    if not await check_password(session, settings, user, password):
        raise WrongPassword()


async def change_password(
    session: AsyncSession,
    settings: Settings,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID | None,
    current_password: str,
    new_password: str,
) -> None:
    """New password; every other session of the user ends (this one stays signed in)."""
    user = await get_user(session, user_id)
    await confirm_password(session, settings, user, current_password)
    check_password_policy(new_password)
    user.password_hash = await hash_password(new_password, settings)
    await session.flush()
    await sessions.revoke_user_sessions(session, user.id, "password_changed", keep=session_id)
    log.info("auth.password_changed", user_id=str(user.id))
