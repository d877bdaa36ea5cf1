"""Accounts: sign-up with an emailed code, password and Google sign-in (with TOTP when on),
password reset and change, the profile, deactivation, and the operator's `create_user`.

Sign-up users exist unverified and walletless until they confirm their code; operator-made and
Google users are verified from the start. Login answers the same way, after the same argon2
work, whether the account is missing, has no password, or the password is wrong.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import phonenumbers
import structlog
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.apikeys import service as apikeys
from coffer.audit import security
from coffer.auth.principal import AccountInactive
from coffer.db import violates
from coffer.errors import AppError, NotFound
from coffer.identity import codes, google, repository, sessions, totp
from coffer.identity.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    hash_password,
    is_common_password,
    verify_password,
)
from coffer.identity.tokens import InvalidToken, decode_token, issue_access_token
from coffer.kit.clock import utcnow
from coffer.models import CodePurpose, Role, User, UserIdentity, Wallet
from coffer.notifications.email import EmailMessage, enqueue_email
from coffer.settings import Settings, get_settings
from coffer.wallets import repository as wallet_repository
from coffer.wallets import service as wallets

log = structlog.get_logger(__name__)

TWO_FACTOR_CHALLENGE = "2fa_challenge"


class InvalidEmail(AppError):
    code = "invalid_email"
    http_status = 422
    default_message = "The email address is not valid"


class InvalidPhone(AppError):
    code = "invalid_phone"
    http_status = 422
    default_message = "The phone number is not valid; include the country code (+234...)"


class WeakPassword(AppError):
    code = "weak_password"
    http_status = 422
    default_message = f"Passwords have {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"


class UserAlreadyExists(AppError):
    code = "user_exists"
    http_status = 409
    default_message = "A user with this email or phone already exists"


class InvalidCredentials(AppError):
    code = "invalid_credentials"
    http_status = 401
    default_message = "The sign-in details are not correct"


class AccountNotVerified(AppError):
    code = "account_not_verified"
    http_status = 403
    default_message = "Confirm the code sent to your email first"


class AlreadyVerified(AppError):
    code = "already_verified"
    http_status = 409
    default_message = "This account is already verified; sign in"


class VerificationNotFound(AppError):
    code = "verification_not_found"
    http_status = 404
    default_message = "No such sign-up verification"


class WrongPassword(AppError):
    code = "invalid_password"
    http_status = 403
    default_message = "The password is not correct"


class PasswordNotSet(AppError):
    code = "password_not_set"
    http_status = 409
    default_message = "This account has no password yet; set one with a password reset"


class InvalidChallenge(AppError):
    code = "invalid_challenge_token"
    http_status = 401
    default_message = "The two-factor sign-in has expired or is not valid; sign in again"


def normalize_email(email: str) -> str:
    """Validated and lower-cased, so comparisons are case-insensitive."""
    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidEmail() from exc


def normalize_phone(phone: str) -> str:
    """E.164; numbers without a country code are refused rather than guessed."""
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone() from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone()
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def check_password_policy(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise WeakPassword()
    if is_common_password(password):
        raise WeakPassword("This password is too common; choose another")


@dataclass(frozen=True, slots=True)
class NewUser:
    user: User
    primary_wallet: Wallet


@dataclass(frozen=True, slots=True)
class Account:
    """A user as they see themselves."""

    user: User
    wallet_number: str | None
    two_factor_enabled: bool


@dataclass(frozen=True, slots=True)
class SignedIn:
    tokens: sessions.TokenPair
    account: Account


@dataclass(frozen=True, slots=True)
class TwoFactorChallenge:
    """The password (or Google) step passed; a TOTP or recovery code completes the sign-in."""

    challenge_token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class PendingVerification:
    verification_id: uuid.UUID
    email: str
    expires_in: int


async def _add_user(
    session: AsyncSession,
    settings: Settings,
    *,
    email: str,
    password: str | None,
    phone: str | None,
    first_name: str | None,
    last_name: str | None,
    role: Role,
    is_verified: bool,
) -> User:
    if password is not None:
        check_password_policy(password)
    user = User(
        email=normalize_email(email),
        phone=normalize_phone(phone) if phone else None,
        first_name=first_name,
        last_name=last_name,
        password_hash=await hash_password(password, settings) if password is not None else None,
        role=role,
        is_active=True,
        is_verified=is_verified,
        created_at=utcnow(),
    )
    try:
        async with session.begin_nested():
            session.add(user)
            await session.flush()
    except IntegrityError as exc:
        if violates(exc, "users.email", "users.phone", "uq_users_email", "uq_users_phone"):
            raise UserAlreadyExists() from exc
        raise
    return user


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str | None,
    currency: str,
    phone: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    role: Role = Role.USER,
    settings: Settings | None = None,
) -> NewUser:
    """Create an active, verified user with their primary wallet in `currency` (operators,
    Google sign-in, tests): nobody has to confirm a code."""
    user = await _add_user(
        session,
        settings or get_settings(),
        email=email,
        password=password,
        phone=phone,
        first_name=first_name,
        last_name=last_name,
        role=role,
        is_verified=True,
    )
    wallet = await wallets.open_wallet(session, user.id, currency)
    return NewUser(user, wallet)


async def account_of(session: AsyncSession, user: User) -> Account:
    wallet = await wallet_repository.get_primary(session, user.id)
    return Account(
        user=user,
        wallet_number=wallet.number if wallet else None,
        two_factor_enabled=await totp.is_enabled(session, user.id),
    )


async def _user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await repository.get_by_id(session, user_id)
    if user is None:
        raise InvalidCredentials()
    return user


# Sign-up


async def _send_code(
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
    user = await _add_user(
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
    issued = await _send_code(session, settings, user, CodePurpose.VERIFY_EMAIL)
    log.info("auth.registered", user_id=str(user.id))
    return PendingVerification(issued.id, user.email, settings.verification_code_ttl_seconds)


async def resend_verification(
    session: AsyncSession, settings: Settings, verification_id: uuid.UUID
) -> PendingVerification:
    """A new code for a pending sign-up; the old one stops working."""
    row = await repository.get_code(session, verification_id)
    if row is None or row.purpose != CodePurpose.VERIFY_EMAIL:
        raise VerificationNotFound()
    user = await _user(session, row.user_id)
    if user.is_verified:
        raise AlreadyVerified()
    issued = await _send_code(session, settings, user, CodePurpose.VERIFY_EMAIL)
    return PendingVerification(issued.id, user.email, settings.verification_code_ttl_seconds)


async def _mark_verified(session: AsyncSession, settings: Settings, user: User) -> None:
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
    user = await _user(session, user_id)
    await _mark_verified(session, settings, user)
    return await account_of(session, user)


# Sign-in


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


async def _find_by_identifier(
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


async def _check_password(
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
    user = await _find_by_identifier(session, email=email, phone=phone)
    if not await _check_password(session, settings, user, password) or user is None:
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
    user = await _user(session, challenge_subject(settings, challenge_token))
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
        user = await _user(session, identity.user_id)
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
        await _mark_verified(session, settings, user)
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


# Passwords


async def request_password_reset(session: AsyncSession, settings: Settings, email: str) -> None:
    """Email a reset code if the account exists; the caller answers the same either way."""
    user = await _find_by_identifier(session, email=email, phone=None)
    if user is None or not user.is_active:
        return
    await _send_code(session, settings, user, CodePurpose.RESET_PASSWORD)


async def reset_password(
    session: AsyncSession, settings: Settings, *, email: str, code: str, new_password: str
) -> None:
    """Set a new password with an emailed code: every session ends, and the address is proven."""
    check_password_policy(new_password)
    user = await _find_by_identifier(session, email=email, phone=None)
    row = await codes.get_code_row(session, user.id, CodePurpose.RESET_PASSWORD) if user else None
    if user is None or row is None:
        raise codes.InvalidCode()
    await codes.consume_code(session, settings, row.id, CodePurpose.RESET_PASSWORD, code)
    if not user.is_active:
        raise AccountInactive()
    user.password_hash = await hash_password(new_password, settings)
    await _mark_verified(session, settings, user)
    await sessions.revoke_user_sessions(session, user.id, "password_reset")
    await security.password_changed(session, settings, user.id, reset=True)
    log.info("auth.password_reset", user_id=str(user.id))


async def _confirm_password(
    session: AsyncSession, settings: Settings, user: User, password: str
) -> None:
    if user.password_hash is None:
        raise PasswordNotSet()
    if not await _check_password(session, settings, user, password):
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
    user = await _user(session, user_id)
    await _confirm_password(session, settings, user, current_password)
    check_password_policy(new_password)
    user.password_hash = await hash_password(new_password, settings)
    await session.flush()
    await sessions.revoke_user_sessions(session, user.id, "password_changed", keep=session_id)
    await security.password_changed(session, settings, user.id, reset=False)
    log.info("auth.password_changed", user_id=str(user.id))


# The account


async def get_account(session: AsyncSession, user_id: uuid.UUID) -> Account:
    return await account_of(session, await _user(session, user_id))


async def update_profile(
    session: AsyncSession, user_id: uuid.UUID, changes: dict[str, Any]
) -> Account:
    """Apply the given fields (first_name, last_name, profile_image_url); None clears one."""
    user = await _user(session, user_id)
    for field in ("first_name", "last_name", "profile_image_url"):
        if field in changes:
            setattr(user, field, changes[field])
    await session.flush()
    return await account_of(session, user)


async def deactivate(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, password: str
) -> None:
    """The user closes their own access: every session and API key ends; only an admin can
    reopen the account (reactivation restores sign-in, not the revoked keys)."""
    user = await _user(session, user_id)
    await _confirm_password(session, settings, user, password)
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
    return user


async def setup_two_factor(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID
) -> totp.TotpSetup:
    user = await _user(session, user_id)
    return await totp.begin_setup(session, settings, user.id, user.email)


async def disable_two_factor(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, password: str, code: str
) -> None:
    user = await _user(session, user_id)
    if not await totp.is_enabled(session, user.id):
        raise totp.TwoFactorNotEnabled()
    await _confirm_password(session, settings, user, password)
    if not await totp.verify_code(session, settings, user.id, code, allow_recovery=True):
        raise totp.InvalidTwoFactorCode()
    await totp.disable(session, user.id)
    await security.two_factor_changed(session, settings, user.id, enabled=False)
    log.info("auth.two_factor_disabled", user_id=str(user.id))
