"""The keys themselves: `sk_test_`/`sk_live_` + 43 random URL-safe characters (256 bits).

A key is stored as an HMAC-SHA256 with a key derived from COFFER_SECRET_KEY (a label of its
own, so the JWT signing key and this one never coincide), plus its first characters as a
display prefix that is also the O(1) lookup for a presented key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from coffer.settings import Settings

TEST_PREFIX = "sk_test_"
LIVE_PREFIX = "sk_live_"
RANDOM_BYTES = 32
RANDOM_LENGTH = 43
"""Characters of `secrets.token_urlsafe(RANDOM_BYTES)`."""
LOOKUP_LENGTH = 8
"""Random characters kept in the display prefix."""
_KEY_SHAPE = re.compile(rf"sk_(test|live)_[A-Za-z0-9_-]{{{RANDOM_LENGTH}}}")


def mode_prefix(settings: Settings) -> str:
    return LIVE_PREFIX if settings.is_live_mode else TEST_PREFIX


def _hashing_key(settings: Settings) -> bytes:
    secret = settings.secret_key.get_secret_value().encode()
    return hmac.new(secret, b"coffer-api-keys-v1", hashlib.sha256).digest()


def hash_key(settings: Settings, key: str) -> str:
    return hmac.new(_hashing_key(settings), key.encode(), hashlib.sha256).hexdigest()


def new_key(settings: Settings) -> tuple[str, str]:
    """A fresh key and its display prefix."""
    key = mode_prefix(settings) + secrets.token_urlsafe(RANDOM_BYTES)
    return key, display_prefix(key)


def display_prefix(key: str) -> str:
    return key[: len(TEST_PREFIX) + LOOKUP_LENGTH]


def is_well_formed(settings: Settings, presented: str) -> bool:
    """The shape of a key of this server's mode: a test key never works in live mode, nor the
    other way round."""
    return presented.startswith(mode_prefix(settings)) and bool(_KEY_SHAPE.fullmatch(presented))
