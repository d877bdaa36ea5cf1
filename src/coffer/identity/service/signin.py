"""Sign-in: password (email or phone), the TOTP step when 2FA is on, and Google.

Login answers the same way, after the same argon2 work, whether the account is missing, has no
password, or the password is wrong.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.auth.principal import AccountInactive
from coffer.db import Database
from coffer.identity import codes, google, repository, sessions, totp
from coffer.identity.passwords import verify_password
from coffer.identity.service.accounts import (
    AccountNotVerified,
    InvalidChallenge,
    InvalidCredentials,
    InvalidEmail,
    InvalidPhone,
    PasswordNotSet,
    SignedIn,
    TwoFactorChallenge,
    WrongPassword,
    account_of,
    create_user,
    get_user,
    normalize_email,
    normalize_phone,
)
from coffer.identity.service.signup import mark_verified
from coffer.identity.tokens import AccessClaims, InvalidToken, decode_token, issue_access_token
from coffer.kit.clock import utcnow
from coffer.models import CodePurpose, User, UserIdentity
from coffer.settings import Settings

log = structlog.get_logger(__name__)

TWO_FACTOR_CHALLENGE = "2fa_challenge"


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a password check needs, read in its own short read-only unit of work, so argon2
    never runs inside a transaction (on SQLite, never under the write lock)."""

    user_id: uuid.UUID | None
    password_hash: str | None
    throttle_account: str | None
    """Whose password allowance an attempt spends: `user:<id>` when the identifier names an
    account (so its email and phone share one allowance), else the identifier as given."""


async def find_by_identifier(
    session: AsyncSession, *, email: str | None, phone: str | None
) -> User | None:
    """The account an email or a verified phone number names (pending numbers name nobody)."""
    try:
        if email is not None:
            return await repository.get_by_email(session, normalize_email(email))
        if phone is not None:
            return await repository.get_by_phone(session, normalize_phone(phone))
    except (InvalidEmail, InvalidPhone):
        return None
    return None


async def read_credentials(
    database: Database, *, email: str | None = None, phone: str | None = None
) -> Credentials:
    async with database.read() as session:
        user = await find_by_identifier(session, email=email, phone=phone)
    if user is None:
        # The throttle canonicalises the identifier (`coffer.auth.throttle.canonical_account`).
        return Credentials(None, None, email if email is not None else phone)
    return Credentials(user.id, user.password_hash, throttle_key(user.id))


async def read_user_credentials(database: Database, user_id: uuid.UUID) -> Credentials:
    async with database.read() as session:
        user = await get_user(session, user_id)
    return Credentials(user.id, user.password_hash, throttle_key(user.id))


def throttle_key(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"


async def check_password(
    settings: Settings, credentials: Credentials, password: str
) -> tuple[bool, str | None]:
    """One argon2 verification (in a thread) whatever the account: whether it matches, and a
    new hash when the stored one uses outdated parameters. Touches no database."""
    return await verify_password(password, credentials.password_hash, settings)


async def confirm_password(settings: Settings, credentials: Credentials, password: str) -> None:
    """The signed-in user's password, typed again (outside any transaction)."""
    if credentials.password_hash is None:
        raise PasswordNotSet()
    matches, _ = await check_password(settings, credentials, password)
    if not matches:
        raise WrongPassword()


async def start_session(
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


async def login(
    session: AsyncSession, settings: Settings, credentials: Credentials, password: str
) -> SignedIn | TwoFactorChallenge:
    """Check the password read by `read_credentials` (argon2 before this session is touched,
    so no transaction is open while it runs), then sign in in this unit of work."""
    matches, new_hash = await check_password(settings, credentials, password)
    if not matches or credentials.user_id is None:
        log.info("auth.login_failed")
        raise InvalidCredentials()
    user = await get_user(session, credentials.user_id)
    if user.password_hash != credentials.password_hash:
        # The password changed while argon2 ran: the one just checked is no longer it.
        raise InvalidCredentials()
    if new_hash is not None:
        user.password_hash = new_hash
        log.info("auth.password_rehashed", user_id=str(user.id))
    if not user.is_active:
        raise AccountInactive()
    if not user.is_verified:
        pending = await codes.get_code_row(session, user.id, CodePurpose.VERIFY_EMAIL)
        raise AccountNotVerified(
            details={"verification_id": str(pending.id)} if pending is not None else None
        )
    log.info("auth.login_succeeded", user_id=str(user.id))
    return await start_session(session, settings, user)


def challenge_claims(settings: Settings, challenge_token: str) -> AccessClaims:
    """The claims of a valid, unexpired 2FA challenge (its user, and its one-use id)."""
    try:
        return decode_token(settings, challenge_token, token_type=TWO_FACTOR_CHALLENGE)
    except InvalidToken as error:
        raise InvalidChallenge() from error


def challenge_subject(settings: Settings, challenge_token: str) -> uuid.UUID:
    """The user a valid, unexpired 2FA challenge is for."""
    return challenge_claims(settings, challenge_token).user_id


async def complete_two_factor_login(
    session: AsyncSession, settings: Settings, challenge_token: str, code: str
) -> SignedIn:
    """A challenge works once: the session it opens takes the challenge's id, so a second
    completion (even a concurrent one) finds it taken."""
    claims = challenge_claims(settings, challenge_token)
    if await sessions.session_exists(session, claims.session_id):
        raise InvalidChallenge()
    user = await get_user(session, claims.user_id)
    if not user.is_active:
        raise AccountInactive()
    if not await totp.verify_code(session, settings, user.id, code, allow_recovery=True):
        raise totp.InvalidTwoFactorCode()
    try:
        tokens = await sessions.open_session(session, settings, user, session_id=claims.session_id)
    except sessions.SessionIdTaken as error:
        raise InvalidChallenge() from error
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
    return await start_session(session, settings, user)


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
