"""The account as its owner manages it: profile and deactivation, and the operator's switch."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.apikeys import service as apikeys
from coffer.auth.cache import forget_on_commit
from coffer.errors import NotFound
from coffer.identity import repository, sessions
from coffer.identity.service.accounts import (
    Account,
    InvalidCredentials,
    account_of,
    get_user,
    normalize_email,
)
from coffer.identity.service.signin import Credentials, confirm_password
from coffer.models import User
from coffer.settings import Settings

log = structlog.get_logger(__name__)


async def get_account(session: AsyncSession, user_id: uuid.UUID) -> Account:
    return await account_of(session, await get_user(session, user_id))


async def update_profile(
    session: AsyncSession, user_id: uuid.UUID, changes: dict[str, Any]
) -> Account:
    """Apply the given fields (first_name, last_name, profile_image_url); None clears one."""
    user = await get_user(session, user_id)
    for field in ("first_name", "last_name", "profile_image_url"):
        if field in changes:
            setattr(user, field, changes[field])
    await session.flush()
    return await account_of(session, user)


async def deactivate(
    session: AsyncSession, settings: Settings, credentials: Credentials, password: str
) -> None:
    """The user closes their own access: every session and API key ends; only an admin can
    reopen the account (reactivation restores sign-in, not the revoked keys). The password is
    checked before this unit of work starts."""
    await confirm_password(settings, credentials, password)
    if credentials.user_id is None:
        raise InvalidCredentials()
    user = await get_user(session, credentials.user_id)
    user.is_active = False
    await session.flush()
    await sessions.revoke_user_sessions(session, user.id, "deactivated")
    await apikeys.revoke_all(session, user.id)
    log.info("auth.deactivated", user_id=str(user.id))


async def set_active(session: AsyncSession, email: str, *, active: bool) -> User:
    """An operator's switch (`coffer users reactivate`)."""
    user = await repository.get_by_email(session, normalize_email(email))
    if user is None:
        raise NotFound("No user has this email")
    await session.execute(
        update(User)
        .where(User.id == user.id)
        .values(is_active=active)
        .execution_options(synchronize_session=False)
    )
    user.is_active = active
    forget_on_commit(session, user_id=user.id)
    return user
