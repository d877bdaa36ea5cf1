"""Two-factor on and off, the operator's reset, and step-up (a fresh proof for sensitive
actions, like GitHub's sudo mode: the password, or a TOTP or recovery code when 2FA is on)."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.audit import security
from coffer.db import Database
from coffer.errors import AppError
from coffer.identity import sessions, totp
from coffer.identity.service import messages
from coffer.identity.service.accounts import get_user
from coffer.identity.service.signin import confirm_password, read_user_credentials
from coffer.settings import Settings

log = structlog.get_logger(__name__)


class StepUpNeedsCode(AppError):
    code = "two_factor_required"
    http_status = 403
    default_message = "Two-factor authentication is on: step up with a TOTP or recovery code"


class StepUpNeedsPassword(AppError):
    code = "password_required"
    http_status = 422
    default_message = "Step up with your password"


async def setup_two_factor(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID
) -> totp.TotpSetup:
    user = await get_user(session, user_id)
    return await totp.begin_setup(session, settings, user.id, user.email)


async def disable_two_factor(
    database: Database,
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    password: str,
    code: str,
) -> None:
    """Needs the password (checked before this unit of work starts) and a current code."""
    await confirm_password(settings, await read_user_credentials(database, user_id), password)
    if not await totp.is_enabled(session, user_id):
        raise totp.TwoFactorNotEnabled()
    if not await totp.verify_code(session, settings, user_id, code, allow_recovery=True):
        raise totp.InvalidTwoFactorCode()
    await totp.disable(session, user_id)
    await security.two_factor_changed(session, settings, user_id, enabled=False)
    log.info("auth.two_factor_disabled", user_id=str(user_id))


async def reset_two_factor(
    session: AsyncSession, user_id: uuid.UUID, *, settings: Settings
) -> None:
    """An operator clears a user's 2FA (lost device, or an authenticator an attacker enrolled):
    the secret and recovery codes go, every session ends (one of them may be the attacker's),
    and the user is told by email. Called by `coffer users reset-2fa` and the admin API."""
    user = await get_user(session, user_id)
    await totp.disable(session, user.id)
    await sessions.revoke_user_sessions(session, user.id, "two_factor_reset")
    await messages.notify_email(
        session,
        settings,
        user.email,
        "Two-factor authentication was reset on your coffer account",
        "An operator turned off two-factor authentication on your account and signed out every "
        "session. Sign in with your password and turn it on again with your own authenticator.",
        kind="two_factor_reset",
    )
    log.info("auth.two_factor_reset", user_id=str(user.id))


async def step_up(
    database: Database,
    session: AsyncSession,
    settings: Settings,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    password: str | None,
    code: str | None,
) -> None:
    """Mark the session freshly proven. With 2FA on only a code counts (a password alone is
    what a phished user gives away); without it, the password (argon2 outside this unit of
    work)."""
    async with database.read() as read:
        two_factor_on = await totp.is_enabled(read, user_id)
    if two_factor_on:
        if code is None:
            raise StepUpNeedsCode()
        if not await totp.verify_code(session, settings, user_id, code, allow_recovery=True):
            raise totp.InvalidTwoFactorCode()
    else:
        if password is None:
            raise StepUpNeedsPassword()
        await confirm_password(settings, await read_user_credentials(database, user_id), password)
    await sessions.mark_stepped_up(session, session_id)
    log.info("auth.stepped_up", user_id=str(user_id))
