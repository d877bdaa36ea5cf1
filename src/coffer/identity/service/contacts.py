"""Proving a phone number or a new email address by code.

A claimed address is pending (`users.pending_phone` / `pending_email`) until its code comes
back; only then does it become the account's, so a false claim blocks nobody and receives
nothing. A number moves to whoever proves it: every other claim on it is dropped, and a
previous verified holder (numbers get reassigned) loses it and is told.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import violates
from coffer.errors import AppError
from coffer.identity import codes, repository
from coffer.identity.service import messages
from coffer.identity.service.accounts import (
    Account,
    account_of,
    get_user,
    normalize_email,
    normalize_phone,
)
from coffer.models import CodePurpose, User
from coffer.settings import Settings

log = structlog.get_logger(__name__)


class PhoneTaken(AppError):
    code = "phone_taken"
    http_status = 409
    default_message = "Another account verified this number at the same moment; try again"


class EmailTaken(AppError):
    code = "email_taken"
    http_status = 409
    default_message = "This address belongs to another account"


@dataclass(frozen=True, slots=True)
class PendingChange:
    address: str
    expires_in: int


async def _code_id(session: AsyncSession, user: User, purpose: CodePurpose) -> uuid.UUID:
    row = await codes.get_code_row(session, user.id, purpose)
    if row is None:
        raise codes.InvalidCode()
    return row.id


async def request_phone(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, phone: str
) -> PendingChange:
    """Claim a number and text it a code; the account's verified number (if any) stays until
    the new one is proven."""
    number = normalize_phone(phone)
    user = await get_user(session, user_id)
    user.pending_phone = number
    await session.flush()
    await messages.send_code(session, settings, user, CodePurpose.VERIFY_PHONE)
    return PendingChange(number, settings.verification_code_ttl_seconds)


async def send_phone_code(session: AsyncSession, settings: Settings, user: User) -> None:
    """Text the code for a number claimed at sign-up, once the account exists for real."""
    if user.pending_phone is not None:
        await messages.send_code(session, settings, user, CodePurpose.VERIFY_PHONE)


async def verify_phone(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, code: str
) -> Account:
    user = await get_user(session, user_id)
    code_id = await _code_id(session, user, CodePurpose.VERIFY_PHONE)
    await codes.consume_code(session, settings, code_id, CodePurpose.VERIFY_PHONE, code)
    number = user.pending_phone
    if number is None:
        raise codes.InvalidCode()
    previous_holders = await repository.release_phone(session, number, keep=user.id)
    user.phone, user.pending_phone = number, None
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as error:
        if violates(error, "users.phone", "uq_users_phone"):
            raise PhoneTaken() from error
        raise
    for holder in previous_holders:
        await messages.notify_phone_taken(session, settings, holder, number)
    log.info("auth.phone_verified", user_id=str(user.id), moved_from=len(previous_holders))
    return await account_of(session, user)


async def request_email(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, email: str
) -> PendingChange:
    """Send a code to a new address. An address another account holds is answered the same
    way (no enumeration through /me), but its owner gets a notice instead of a code."""
    address = normalize_email(email)
    user = await get_user(session, user_id)
    holder = await repository.get_by_email(session, address)
    if holder is not None and holder.id != user.id:
        await messages.notify_address_in_use(session, settings, address)
        return PendingChange(address, settings.verification_code_ttl_seconds)
    user.pending_email = address
    await session.flush()
    await messages.send_code(session, settings, user, CodePurpose.CHANGE_EMAIL)
    return PendingChange(address, settings.verification_code_ttl_seconds)


async def verify_email(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, code: str
) -> Account:
    user = await get_user(session, user_id)
    code_id = await _code_id(session, user, CodePurpose.CHANGE_EMAIL)
    await codes.consume_code(session, settings, code_id, CodePurpose.CHANGE_EMAIL, code)
    address = user.pending_email
    if address is None:
        raise codes.InvalidCode()
    old_address = user.email
    user.email, user.pending_email = address, None
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as error:
        if violates(error, "users.email", "uq_users_email"):
            raise EmailTaken() from error
        raise
    await messages.notify_email_changed(session, settings, old_address, address)
    log.info("auth.email_changed", user_id=str(user.id))
    return await account_of(session, user)
