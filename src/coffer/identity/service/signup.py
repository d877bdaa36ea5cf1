"""Sign-up: an unverified, walletless user and an emailed code; confirming it activates the
account and opens its primary wallet."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.identity import codes, repository
from coffer.identity.service.accounts import (
    Account,
    AlreadyVerified,
    PendingVerification,
    VerificationNotFound,
    account_of,
    add_user,
    get_user,
)
from coffer.models import CodePurpose, Role, User
from coffer.notifications.email import EmailMessage, enqueue_email
from coffer.settings import Settings
from coffer.wallets import repository as wallet_repository
from coffer.wallets import service as wallets

log = structlog.get_logger(__name__)


async def send_code(
    session: AsyncSession, settings: Settings, user: User, purpose: CodePurpose
) -> codes.IssuedCode:
    issued = await codes.issue_code(session, settings, user.id, purpose)
    minutes = settings.verification_code_ttl_seconds // 60
    if purpose is CodePurpose.VERIFY_EMAIL:
        subject = f"Your coffer verification code: {issued.code}"
        body = (
            f"Your coffer verification code is {issued.code}.\n\n"
            f"It expires in {minutes} minutes. If you did not sign up, ignore this email."
        )
    else:
        subject = f"Your coffer password reset code: {issued.code}"
        body = (
            f"Your coffer password reset code is {issued.code}.\n\n"
            f"It expires in {minutes} minutes. If you did not ask to reset your password, "
            "ignore this email: your password is unchanged."
        )
    await enqueue_email(session, settings, EmailMessage(user.email, subject, body), kind=purpose)
    return issued


async def register(
    session: AsyncSession,
    settings: Settings,
    *,
    email: str,
    password: str,
    phone: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
) -> PendingVerification:
    """An unverified user and an emailed code; nothing works for them until `verify`."""
    user = await add_user(
        session,
        settings,
        email=email,
        password=password,
        phone=phone,
        first_name=first_name,
        last_name=last_name,
        role=Role.USER,
        is_verified=False,
    )
    issued = await send_code(session, settings, user, CodePurpose.VERIFY_EMAIL)
    log.info("auth.registered", user_id=str(user.id))
    return PendingVerification(issued.id, user.email, settings.verification_code_ttl_seconds)


async def resend_verification(
    session: AsyncSession, settings: Settings, verification_id: uuid.UUID
) -> PendingVerification:
    """A new code for a pending sign-up; the old one stops working."""
    row = await repository.get_code(session, verification_id)
    if row is None or row.purpose != CodePurpose.VERIFY_EMAIL:
        raise VerificationNotFound()
    user = await get_user(session, row.user_id)
    if user.is_verified:
        raise AlreadyVerified()
    issued = await send_code(session, settings, user, CodePurpose.VERIFY_EMAIL)
    return PendingVerification(issued.id, user.email, settings.verification_code_ttl_seconds)


async def mark_verified(session: AsyncSession, settings: Settings, user: User) -> None:
    """The email is proven: the account becomes usable and gets its primary wallet."""
    if user.is_verified:
        return
    user.is_verified = True
    await session.flush()
    if await wallet_repository.get_primary(session, user.id) is None:
        await wallets.open_wallet(session, user.id, settings.default_currency)
    log.info("auth.verified", user_id=str(user.id))


async def verify_registration(
    session: AsyncSession, settings: Settings, verification_id: uuid.UUID, code: str
) -> Account:
    user_id = await codes.consume_code(
        session, settings, verification_id, CodePurpose.VERIFY_EMAIL, code
    )
    user = await get_user(session, user_id)
    await mark_verified(session, settings, user)
    return await account_of(session, user)
