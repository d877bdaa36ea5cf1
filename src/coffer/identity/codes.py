"""Six-digit one-time codes: sign-up, password reset, phone and new-email verification.

A code is drawn with `secrets`, mailed, and kept only as a keyed hash. It is good for
COFFER_VERIFICATION_CODE_TTL_SECONDS and for COFFER_VERIFICATION_CODE_MAX_ATTEMPTS guesses:
each check claims an attempt with one conditional UPDATE before comparing, so concurrent
guesses cannot exceed the limit, and a wrong guess stays counted (a `RecordedRefusal`). A new
code restarts the attempts, so at most COFFER_VERIFICATION_CODE_MAX_SENDS_PER_HOUR codes of
one purpose are sent to a user per hour.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import violates
from coffer.errors import AppError, RecordedRefusal
from coffer.kit.clock import utcnow
from coffer.kit.crypto import keyed_hash
from coffer.models import CodePurpose, OneTimeCode
from coffer.settings import Settings

CODE_DIGITS = 6


class InvalidCode(RecordedRefusal):
    code = "invalid_code"
    http_status = 400
    default_message = "The code is not valid"


class CodeExpired(AppError):
    code = "code_expired"
    http_status = 400
    default_message = "The code has expired; ask for a new one"


class TooManyCodes(AppError):
    code = "too_many_codes"
    http_status = 429
    default_message = "Too many codes were sent; try again in an hour"


SEND_WINDOW = timedelta(hours=1)


class CodeAttemptsExceeded(AppError):
    code = "code_attempts_exceeded"
    http_status = 400
    default_message = "Too many wrong codes; ask for a new one"


@dataclass(frozen=True, slots=True)
class IssuedCode:
    id: uuid.UUID
    code: str
    """The plain code, for the email and nothing else."""
    expires_at: datetime


def _hash(settings: Settings, code_id: uuid.UUID, code: str) -> str:
    return keyed_hash(settings, "one-time-code", str(code_id), code)


def _new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


async def issue_code(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, purpose: CodePurpose
) -> IssuedCode:
    """A fresh code for this user and purpose, replacing any earlier one (same row id)."""
    now = utcnow()
    expires_at = now + timedelta(seconds=settings.verification_code_ttl_seconds)
    code = _new_code()
    existing = await get_code_row(session, user_id, purpose)
    if existing is None:
        row = OneTimeCode(
            id=uuid.uuid4(),
            user_id=user_id,
            purpose=purpose,
            attempts=0,
            created_at=now,
            expires_at=expires_at,
            send_count=1,
            window_started_at=now,
        )
        row.code_hash = _hash(settings, row.id, code)
        try:
            async with session.begin_nested():
                session.add(row)
                await session.flush()
            return IssuedCode(row.id, code, expires_at)
        except IntegrityError as error:
            # Two requests raced to create the row; the loser replaces the winner's code.
            if not violates(error, "uq_one_time_codes_user_id_purpose", "one_time_codes.user_id"):
                raise
            existing = await get_code_row(session, user_id, purpose)
            if existing is None:
                raise
    window_started_at = existing.window_started_at or existing.created_at
    in_window = now - window_started_at < SEND_WINDOW
    if in_window and existing.send_count >= settings.verification_code_max_sends_per_hour:
        raise TooManyCodes()
    await session.execute(
        update(OneTimeCode)
        .where(OneTimeCode.id == existing.id)
        .values(
            code_hash=_hash(settings, existing.id, code),
            attempts=0,
            created_at=now,
            expires_at=expires_at,
            consumed_at=None,
            send_count=OneTimeCode.send_count + 1 if in_window else 1,
            window_started_at=window_started_at if in_window else now,
        )
        .execution_options(synchronize_session=False)
    )
    return IssuedCode(existing.id, code, expires_at)


async def get_code_row(
    session: AsyncSession, user_id: uuid.UUID, purpose: CodePurpose
) -> OneTimeCode | None:
    return (
        await session.execute(
            select(OneTimeCode).where(
                OneTimeCode.user_id == user_id, OneTimeCode.purpose == purpose
            )
        )
    ).scalar_one_or_none()


async def consume_code(
    session: AsyncSession, settings: Settings, code_id: uuid.UUID, purpose: CodePurpose, code: str
) -> uuid.UUID:
    """Use the code: returns the user it belongs to, or raises why it is refused."""
    claimed = (
        await session.execute(
            update(OneTimeCode)
            .where(
                OneTimeCode.id == code_id,
                OneTimeCode.purpose == purpose,
                OneTimeCode.consumed_at.is_(None),
                OneTimeCode.attempts < settings.verification_code_max_attempts,
            )
            .values(attempts=OneTimeCode.attempts + 1)
            .returning(OneTimeCode.user_id, OneTimeCode.code_hash, OneTimeCode.expires_at)
            .execution_options(synchronize_session=False)
        )
    ).one_or_none()
    if claimed is None:
        row = (
            await session.execute(
                select(OneTimeCode.consumed_at).where(
                    OneTimeCode.id == code_id, OneTimeCode.purpose == purpose
                )
            )
        ).one_or_none()
        if row is not None and row.consumed_at is None:
            raise CodeAttemptsExceeded()
        raise InvalidCode()
    user_id, code_hash, expires_at = claimed
    if expires_at <= utcnow():
        raise CodeExpired()
    if not (
        len(code) == CODE_DIGITS
        and code.isascii()
        and code.isdigit()
        and hmac.compare_digest(code_hash, _hash(settings, code_id, code))
    ):
        raise InvalidCode()
    await session.execute(
        update(OneTimeCode)
        .where(OneTimeCode.id == code_id)
        .values(consumed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return user_id
