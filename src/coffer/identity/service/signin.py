"""Sign-in: password (email or phone), the TOTP step when 2FA is on, and Google.

Login answers the same way, after the same argon2 work, whether the account is missing, has no
password, or the password is wrong.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.auth.principal import AccountInactive
from coffer.identity import codes, google, repository, sessions, totp
from coffer.identity.passwords import verify_password
from coffer.identity.service.accounts import (
    AccountNotVerified,
    InvalidChallenge,
    InvalidCredentials,
    InvalidEmail,
    InvalidPhone,
    SignedIn,
    TwoFactorChallenge,
    account_of,
    create_user,
    get_user,
    normalize_email,
    normalize_phone,
)
from coffer.identity.service.signup import mark_verified
from coffer.identity.tokens import InvalidToken, decode_token, issue_access_token
from coffer.kit.clock import utcnow
from coffer.models import CodePurpose, User, UserIdentity
from coffer.settings import Settings

log = structlog.get_logger(__name__)

TWO_FACTOR_CHALLENGE = "2fa_challenge"


async def _start_session(
    session: AsyncSession, settings: Settings, user: User
) -> SignedIn | TwoFactorChallenge:
    if await totp.is_enabled(session, user.id):
        token, _ = issue_access_token(
            settings,
            user_id=user.id,
            session_id=uuid.uuid4(),
            role=user.role,
            token_type=TWO_FACTOR_CHALLENGE,
            ttl=timedelta(seconds=settings.two_factor_challenge_ttl_seconds),
        )
        return TwoFactorChallenge(token, settings.two_factor_challenge_ttl_seconds)
    tokens = await sessions.open_session(session, settings, user)
    return SignedIn(tokens, await account_of(session, user))


async def find_by_identifier(
    session: AsyncSession, *, email: str | None, phone: str | None
) -> User | None:
    try:
        if email is not None:
            return await repository.get_by_email(session, normalize_email(email))
        if phone is not None:
            return await repository.get_by_phone(session, normalize_phone(phone))
    except (InvalidEmail, InvalidPhone):
        return None
    return None


async def check_password(
    session: AsyncSession, settings: Settings, user: User | None, password: str
) -> bool:
    """One argon2 verification whatever the account; upgrades an outdated hash."""
    stored = user.password_hash if user is not None else None
    matches, new_hash = await verify_password(password, stored, settings)
    if matches and new_hash is not None and user is not None:
        user.password_hash = new_hash
        await session.flush()
        log.info("auth.password_rehashed", user_id=str(user.id))
    return matches


async def login(
    session: AsyncSession,
    settings: Settings,
    *,
    email: str | None,
    phone: str | None,
    password: str,
) -> SignedIn | TwoFactorChallenge:
    user = await find_by_identifier(session, email=email, phone=phone)
    if not await check_password(session, settings, user, password) or user is None:
        log.info("auth.login_failed")
        raise InvalidCredentials()
    if not user.is_active:
        raise AccountInactive()
    if not user.is_verified:
        pending = await codes.get_code_row(session, user.id, CodePurpose.VERIFY_EMAIL)
        raise AccountNotVerified(
            details={"verification_id": str(pending.id)} if pending is not None else None
        )
    log.info("auth.login_succeeded", user_id=str(user.id))
    return await _start_session(session, settings, user)


def challenge_subject(settings: Settings, challenge_token: str) -> uuid.UUID:
    """The user a valid, unexpired 2FA challenge is for."""
    try:
        return decode_token(settings, challenge_token, token_type=TWO_FACTOR_CHALLENGE).user_id
    except InvalidToken as error:
        raise InvalidChallenge() from error


async def complete_two_factor_login(
    session: AsyncSession, settings: Settings, challenge_token: str, code: str
) -> SignedIn:
    user = await get_user(session, challenge_subject(settings, challenge_token))
    if not user.is_active:
        raise AccountInactive()
    if not await totp.verify_code(session, settings, user.id, code, allow_recovery=True):
        raise totp.InvalidTwoFactorCode()
    tokens = await sessions.open_session(session, settings, user)
    return SignedIn(tokens, await account_of(session, user))


async def sign_in_with_google(
    session: AsyncSession, settings: Settings, profile: google.GoogleProfile
) -> SignedIn | TwoFactorChallenge:
    """The user this Google account is, creating or linking one on first sight."""
    identity = await repository.get_identity(session, google.PROVIDER, profile.subject)
    if identity is not None:
        user = await get_user(session, identity.user_id)
    else:
        user = await _link_google_account(session, settings, profile)
    if not user.is_active:
        raise AccountInactive()
    return await _start_session(session, settings, user)


async def _link_google_account(
    session: AsyncSession, settings: Settings, profile: google.GoogleProfile
) -> User:
    email = normalize_email(profile.email)
    user = await repository.get_by_email(session, email)
    if user is None:
        created = await create_user(
            session,
            email=email,
            password=None,
            currency=settings.default_currency,
            first_name=profile.first_name,
            last_name=profile.last_name,
            settings=settings,
        )
        user = created.user
    elif not user.is_verified:
        # Whoever signed up with this address never proved it; Google just did. Their password
        # may be an attacker's pre-registration, so it goes.
        user.password_hash = None
        await mark_verified(session, settings, user)
    session.add(
        UserIdentity(
            provider=google.PROVIDER,
            subject=profile.subject,
            user_id=user.id,
            email=email,
            created_at=utcnow(),
        )
    )
    await session.flush()
    log.info("auth.google_linked", user_id=str(user.id))
    return user
