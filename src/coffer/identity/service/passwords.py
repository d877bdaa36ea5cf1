"""Forgotten and changed passwords. Hashing runs before the caller's unit of work is touched,
so no transaction is open while argon2 works."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.apikeys import service as apikeys
from coffer.audit import security
from coffer.auth.principal import AccountInactive
from coffer.identity import codes, sessions
from coffer.identity.passwords import hash_password
from coffer.identity.service import messages
from coffer.identity.service.accounts import check_password_policy, get_user
from coffer.identity.service.signin import Credentials, confirm_password, find_by_identifier
from coffer.identity.service.signup import mark_verified
from coffer.models import CodePurpose
from coffer.settings import Settings

log = structlog.get_logger(__name__)


async def request_password_reset(session: AsyncSession, settings: Settings, email: str) -> None:
    """Email a reset code if the account exists; the caller answers the same either way."""
    user = await find_by_identifier(session, email=email, phone=None)
    if user is None or not user.is_active:
        return
    try:
        await messages.send_code(session, settings, user, CodePurpose.RESET_PASSWORD)
    except codes.TooManyCodes:
        log.info("auth.password_reset_codes_capped", user_id=str(user.id))


async def reset_password(
    session: AsyncSession, settings: Settings, *, email: str, code: str, new_password: str
) -> None:
    """Set a new password with an emailed code. Whoever held the account may have held its
    credentials too, so every session ends and every API key is revoked; the address is
    proven, and its owner is told."""
    check_password_policy(new_password)
    new_hash = await hash_password(new_password, settings)
    user = await find_by_identifier(session, email=email, phone=None)
    row = await codes.get_code_row(session, user.id, CodePurpose.RESET_PASSWORD) if user else None
    if user is None or row is None:
        raise codes.InvalidCode()
    await codes.consume_code(session, settings, row.id, CodePurpose.RESET_PASSWORD, code)
    if not user.is_active:
        raise AccountInactive()
    user.password_hash = new_hash
    await mark_verified(session, settings, user)
    await sessions.revoke_user_sessions(session, user.id, "password_reset")
    await apikeys.revoke_all(session, user.id)
    await messages.notify_password_reset(session, settings, user)
    await security.password_changed(session, settings, user.id, reset=True)
    log.info("auth.password_reset", user_id=str(user.id))


async def change_password(
    session: AsyncSession,
    settings: Settings,
    *,
    credentials: Credentials,
    session_id: uuid.UUID | None,
    current_password: str,
    new_password: str,
) -> None:
    """New password; every other session of the user ends (this one stays signed in). Both
    argon2 computations run before this unit of work starts."""
    await confirm_password(settings, credentials, current_password)
    check_password_policy(new_password)
    new_hash = await hash_password(new_password, settings)
    if credentials.user_id is None:
        raise AccountInactive()
    user = await get_user(session, credentials.user_id)
    user.password_hash = new_hash
    await session.flush()
    await sessions.revoke_user_sessions(session, user.id, "password_changed", keep=session_id)
    await security.password_changed(session, settings, user.id, reset=False)
    log.info("auth.password_changed", user_id=str(user.id))
