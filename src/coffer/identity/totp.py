"""TOTP two-factor authentication (RFC 6238 via pyotp) and single-use recovery codes.

The secret is sealed at rest (AES-GCM, bound to the user id). A code is accepted in the
current 30-second step or the one either side, and only once: the accepted step is stored with
a conditional UPDATE, so a code seen by a shoulder-surfer or a replayed request is refused.
"""

from __future__ import annotations

import io
import secrets
import uuid
from dataclasses import dataclass

import pyotp
import segno
from pyotp.exceptions import OTPVerificationError
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.audit import security
from coffer.errors import AppError
from coffer.kit.clock import utcnow
from coffer.kit.crypto import current_key_id, key_id_of, keyed_hash, seal, unseal
from coffer.models import Base, RecoveryCode, TotpCredential
from coffer.settings import Settings

ISSUER = "coffer"
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_RECOVERY_HALF = 5
_recovery_codes = Base.metadata.tables[RecoveryCode.__tablename__]


class TwoFactorAlreadyEnabled(AppError):
    code = "two_factor_already_enabled"
    http_status = 409
    default_message = "Two-factor authentication is already on; disable it first"


class TwoFactorNotSetUp(AppError):
    code = "two_factor_not_set_up"
    http_status = 409
    default_message = "Start with POST /auth/2fa/setup"


class TwoFactorNotEnabled(AppError):
    code = "two_factor_not_enabled"
    http_status = 409
    default_message = "Two-factor authentication is not on"


class InvalidTwoFactorCode(AppError):
    code = "invalid_two_factor_code"
    http_status = 403
    default_message = "The two-factor code is wrong or was already used"


class TwoFactorCodeAlreadyUsed(AppError):
    code = "two_factor_code_already_used"
    http_status = 403
    default_message = "This code was already used (each code works once); wait for the next one"


@dataclass(frozen=True, slots=True)
class TotpSetup:
    secret: str
    uri: str
    qr_svg: str


def _context(user_id: uuid.UUID) -> str:
    return f"totp:{user_id}"


def _recovery_hash(settings: Settings, code: str) -> str:
    normalized = code.replace("-", "").replace(" ", "").upper()
    return keyed_hash(settings, "recovery-code", normalized)


def _new_recovery_code() -> str:
    half = _RECOVERY_HALF
    chars = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(2 * half))
    return f"{chars[:half]}-{chars[half:]}"


def _qr_svg(uri: str) -> str:
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=4, xmldecl=False)
    return buffer.getvalue().decode()


async def _credential(session: AsyncSession, user_id: uuid.UUID) -> TotpCredential | None:
    return (
        await session.execute(select(TotpCredential).where(TotpCredential.user_id == user_id))
    ).scalar_one_or_none()


async def is_enabled(session: AsyncSession, user_id: uuid.UUID) -> bool:
    enabled = (
        await session.execute(
            select(TotpCredential.user_id).where(
                TotpCredential.user_id == user_id, TotpCredential.enabled_at.is_not(None)
            )
        )
    ).first()
    return enabled is not None


async def begin_setup(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, account_name: str
) -> TotpSetup:
    """A new pending secret (replacing an unconfirmed one); 2FA is on only after `enable`."""
    credential = await _credential(session, user_id)
    if credential is not None and credential.enabled_at is not None:
        raise TwoFactorAlreadyEnabled()
    secret = pyotp.random_base32()
    sealed = seal(settings, secret, context=_context(user_id))
    if credential is None:
        session.add(TotpCredential(user_id=user_id, secret_sealed=sealed, created_at=utcnow()))
    else:
        credential.secret_sealed = sealed
        credential.last_used_step = None
    await session.flush()
    uri = pyotp.TOTP(secret).provisioning_uri(name=account_name, issuer_name=ISSUER)
    return TotpSetup(secret=secret, uri=uri, qr_svg=_qr_svg(uri))


def _matching_step(settings: Settings, credential: TotpCredential, code: str) -> int | None:
    secret = unseal(settings, credential.secret_sealed, context=_context(credential.user_id))
    try:
        return pyotp.TOTP(secret).verify_and_get_timecode(code, valid_window=1)
    except OTPVerificationError:
        return None


async def _claim_step(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, code: str, *, enabled: bool
) -> bool:
    """Accept a TOTP code once: its step must be newer than the last accepted one. A right
    code whose step was already used (the code that just turned 2FA on, typed again at the next
    sign-in) is refused as `two_factor_code_already_used`, so the user knows to wait."""
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return False
    credential = await _credential(session, user_id)
    if credential is None or (credential.enabled_at is not None) is not enabled:
        return False
    step = _matching_step(settings, credential, code)
    if step is None:
        return False
    if enabled and credential.last_used_step is not None and step <= credential.last_used_step:
        raise TwoFactorCodeAlreadyUsed()
    values: dict[str, object] = {"last_used_step": step}
    if not enabled:
        values["enabled_at"] = utcnow()
    claimed = await session.execute(
        update(TotpCredential)
        .where(
            TotpCredential.user_id == user_id,
            TotpCredential.enabled_at.is_not(None)
            if enabled
            else TotpCredential.enabled_at.is_(None),
            or_(TotpCredential.last_used_step.is_(None), TotpCredential.last_used_step < step),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]


async def enable(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, code: str
) -> list[str]:
    """Turn 2FA on with a first code from the pending secret; returns the recovery codes."""
    credential = await _credential(session, user_id)
    if credential is None:
        raise TwoFactorNotSetUp()
    if credential.enabled_at is not None:
        raise TwoFactorAlreadyEnabled()
    if not await _claim_step(session, settings, user_id, code, enabled=False):
        raise InvalidTwoFactorCode()
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    now = utcnow()
    await session.execute(
        insert(_recovery_codes),
        [
            {"user_id": user_id, "code_hash": _recovery_hash(settings, code), "created_at": now}
            for code in codes
        ],
    )
    await security.two_factor_changed(session, settings, user_id, enabled=True)
    return codes


async def verify_code(
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    code: str,
    *,
    allow_recovery: bool,
) -> bool:
    """A fresh TOTP code, or (when allowed) an unused recovery code, which it uses up."""
    code = code.strip()
    if await _claim_step(session, settings, user_id, code, enabled=True):
        return True
    if not allow_recovery or len(code) > 2 * _RECOVERY_HALF + 1:
        return False
    used = await session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == _recovery_hash(settings, code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(used.rowcount == 1)  # type: ignore[attr-defined]


async def disable(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Remove the secret and the recovery codes (the caller checked password and code)."""
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    await session.execute(delete(TotpCredential).where(TotpCredential.user_id == user_id))


async def reseal_secrets(session: AsyncSession, settings: Settings) -> int:
    """Re-encrypt every TOTP secret not sealed with the current key (key rotation); returns
    how many changed."""
    current = current_key_id(settings)
    credentials = (await session.execute(select(TotpCredential))).scalars().all()
    changed = 0
    for credential in credentials:
        if key_id_of(credential.secret_sealed) == current:
            continue
        context = _context(credential.user_id)
        secret = unseal(settings, credential.secret_sealed, context=context)
        credential.secret_sealed = seal(settings, secret, context=context)
        changed += 1
    await session.flush()
    return changed
