"""JWT access tokens: HS256, short-lived, with a `kid` so signing keys can rotate.

The newest key (by `kid` order) signs; every configured key verifies, so a key can be added,
become the signer, and be removed once tokens signed by the old one have expired.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from coffer.errors import AppError
from coffer.kit.clock import utcnow
from coffer.settings import Settings

ALGORITHM = "HS256"
ACCESS = "access"
DERIVED_KID = "default"


class InvalidToken(AppError):
    code = "invalid_token"
    http_status = 401
    default_message = "The access token is invalid or expired"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    role: str
    expires_at: datetime


def signing_keys(settings: Settings) -> dict[str, bytes]:
    if settings.jwt_keys:
        return {kid: key.get_secret_value().encode() for kid, key in settings.jwt_keys.items()}
    secret = settings.secret_key.get_secret_value().encode()
    # A key of its own, so a leaked JWT key is not the secret that hashes API keys.
    return {DERIVED_KID: hmac.new(secret, b"coffer-jwt-v1", hashlib.sha256).digest()}


def issue_access_token(
    settings: Settings,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    role: str,
    now: datetime | None = None,
    token_type: str = ACCESS,
    ttl: timedelta | None = None,
) -> tuple[str, datetime]:
    """A signed token and its expiry."""
    keys = signing_keys(settings)
    kid = max(keys)
    issued = now or utcnow()
    expires = issued + (ttl or timedelta(seconds=settings.access_token_ttl_seconds))
    claims = {
        "sub": str(user_id),
        "sid": str(session_id),
        "role": role,
        "typ": token_type,
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, keys[kid], algorithm=ALGORITHM, headers={"kid": kid}), expires


def decode_token(
    settings: Settings, token: str, *, token_type: str = ACCESS, now: datetime | None = None
) -> AccessClaims:
    """Verify signature, expiry and type; anything wrong is one `InvalidToken`."""
    keys = signing_keys(settings)
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken()
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub", "sid", "typ"], "verify_exp": False},
        )
        expires = datetime.fromtimestamp(int(claims["exp"]), tz=(now or utcnow()).tzinfo)
        if claims["typ"] != token_type or expires <= (now or utcnow()):
            raise InvalidToken()
        return AccessClaims(
            user_id=uuid.UUID(claims["sub"]),
            session_id=uuid.UUID(claims["sid"]),
            role=str(claims.get("role", "")),
            expires_at=expires,
        )
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as error:
        raise InvalidToken() from error
