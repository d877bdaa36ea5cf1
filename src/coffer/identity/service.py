"""Creating users. Sign-up, sign-in and sessions build on this (the identity issue)."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import violates
from coffer.errors import AppError
from coffer.identity.passwords import hash_password
from coffer.kit.clock import utcnow
from coffer.models import Role, User, Wallet
from coffer.wallets import service as wallets

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256


class InvalidEmail(AppError):
    code = "invalid_email"
    http_status = 422
    default_message = "The email address is not valid"


class InvalidPhone(AppError):
    code = "invalid_phone"
    http_status = 422
    default_message = "The phone number is not valid"


class WeakPassword(AppError):
    code = "weak_password"
    http_status = 422
    default_message = f"Passwords have {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"


class UserAlreadyExists(AppError):
    code = "user_exists"
    http_status = 409
    default_message = "A user with this email or phone already exists"


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


@dataclass(frozen=True, slots=True)
class NewUser:
    user: User
    primary_wallet: Wallet


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
) -> NewUser:
    """Create an active user with their primary wallet in `currency`."""
    if password is not None and not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise WeakPassword()
    user = User(
        email=normalize_email(email),
        phone=normalize_phone(phone) if phone else None,
        first_name=first_name,
        last_name=last_name,
        password_hash=await hash_password(password) if password is not None else None,
        role=role,
        is_active=True,
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
    wallet = await wallets.open_wallet(session, user.id, currency)
    return NewUser(user, wallet)
