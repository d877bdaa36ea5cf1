"""Sign-up: an unverified, walletless user and an emailed code; confirming it activates the
account and opens its primary wallet, and texts a code for the phone number given (if any).

Sign-up never tells whether an address has an account: an address that has one is answered
exactly like a new one (201, a verification id that leads nowhere, after the same argon2 work)
and its owner is emailed instead. Resending for an id that leads nowhere answers the same too.
"""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.identity import codes, repository
from coffer.identity.passwords import hash_password
from coffer.identity.service import messages
from coffer.identity.service.accounts import (
    Account,
    PendingVerification,
    UserAlreadyExists,
    account_of,
    add_user,
    check_password_policy,
    get_user,
    normalize_email,
    normalize_phone,
)
from coffer.identity.service.contacts import send_phone_code
from coffer.models import CodePurpose, Role, User
from coffer.settings import Settings
from coffer.wallets import repository as wallet_repository
from coffer.wallets import service as wallets

log = structlog.get_logger(__name__)


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
    """An unverified user and an emailed code; nothing works for them until `verify`. The
    phone number waits, unverified, until then."""
    address = normalize_email(email)
    number = normalize_phone(phone) if phone else None
    check_password_policy(password)
    # Hashed first, for every sign-up: no transaction is open while argon2 runs, and a taken
    # address costs the same time as a new one.
    password_hash = await hash_password(password, settings)
    existing = await repository.get_by_email(session, address)
    if existing is None:
        try:
            user = await add_user(
                session,
                email=address,
                password_hash=password_hash,
                phone=None,
                pending_phone=number,
                first_name=first_name,
                last_name=last_name,
                role=Role.USER,
                is_verified=False,
            )
        except UserAlreadyExists:
            existing = await repository.get_by_email(session, address)
        else:
            issued = await messages.send_code(session, settings, user, CodePurpose.VERIFY_EMAIL)
            log.info("auth.registered", user_id=str(user.id))
            return PendingVerification(issued.id, address, settings.verification_code_ttl_seconds)
    if existing is not None:
        await messages.notify_sign_up_attempt(session, settings, existing)
        log.info("auth.register_existing", user_id=str(existing.id))
    return PendingVerification(uuid.uuid4(), address, settings.verification_code_ttl_seconds)


async def resend_verification(
    session: AsyncSession, settings: Settings, verification_id: uuid.UUID
) -> None:
    """A new code for a pending sign-up (the old one stops working). An id that leads nowhere,
    or to an account already verified, is answered the same and sends nothing."""
    row = await repository.get_code(session, verification_id)
    if row is None or row.purpose != CodePurpose.VERIFY_EMAIL:
        return
    user = await get_user(session, row.user_id)
    if user.is_verified:
        return
    await messages.send_code(session, settings, user, CodePurpose.VERIFY_EMAIL)


async def mark_verified(session: AsyncSession, settings: Settings, user: User) -> None:
    """The email is proven: the account becomes usable, gets its primary wallet, and the phone
    number given at sign-up is sent its code."""
    if user.is_verified:
        return
    user.is_verified = True
    await session.flush()
    if await wallet_repository.get_primary(session, user.id) is None:
        await wallets.open_wallet(session, user.id, settings.default_currency)
    await send_phone_code(session, settings, user)
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
