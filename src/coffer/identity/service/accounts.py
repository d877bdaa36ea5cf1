"""What every account flow shares: the identity errors, address normalisation, the password
policy, the result types, and creating a user (operators, Google sign-in, sign-up)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import violates
from coffer.errors import AppError
from coffer.identity import repository, sessions, totp
from coffer.identity.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    hash_password,
    is_common_password,
)
from coffer.kit.clock import utcnow
from coffer.models import Role, User, Wallet
from coffer.settings import Settings
from coffer.wallets import repository as wallet_repository
from coffer.wallets import service as wallets


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


async def add_user(
    session: AsyncSession,
    *,
    email: str,
    password_hash: str | None,
    phone: str | None,
    pending_phone: str | None,
    first_name: str | None,
    last_name: str | None,
    role: Role,
    is_verified: bool,
) -> User:
    """Insert the user; the password was hashed before (never inside the transaction)."""
    user = User(
        email=email,
        phone=phone,
        pending_phone=pending_phone,
        first_name=first_name,
        last_name=last_name,
        password_hash=password_hash,
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
    Google sign-in, tests): nobody has to confirm a code, and an operator's phone number is
    taken as verified (the operator vouches for it)."""
    if password is not None:
        check_password_policy(password)
    password_hash = await hash_password(password, settings) if password is not None else None
    user = await add_user(
        session,
        email=normalize_email(email),
        password_hash=password_hash,
        phone=normalize_phone(phone) if phone else None,
        pending_phone=None,
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


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await repository.get_by_id(session, user_id)
    if user is None:
        raise InvalidCredentials()
    return user
