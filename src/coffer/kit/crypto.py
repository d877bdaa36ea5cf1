"""Keyed hashes and authenticated encryption for secrets at rest, for every domain.

Refresh tokens, one-time codes, recovery codes and OAuth states are stored as HMAC-SHA256
under keys derived from COFFER_SECRET_KEY, one key per purpose, so a stolen table gives no
token and a hash of one kind never matches another. What must be read back (TOTP secrets, PKCE
verifiers, queued emails, bank account numbers, card authorizations) is sealed with AES-GCM,
bound to a context (the owning row) so a sealed value copied to another row does not open.

Keys: COFFER_DATA_ENCRYPTION_KEYS (by id; the newest-sorting id encrypts), or the single
COFFER_ENCRYPTION_KEY (id `primary`), or, with neither, one key derived from COFFER_SECRET_KEY
(id `default`). The derived key always still decrypts, so values sealed before keys were
configured open until `coffer keys rotate-encryption` re-seals them with the current key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coffer.settings import Settings

_NONCE_BYTES = 12
DERIVED_KEY_ID = "default"


class UnsealError(Exception):
    """A sealed value that no configured key opens: tampered, or its key was removed."""


def derive_key(settings: Settings, purpose: str) -> bytes:
    secret = settings.secret_key.get_secret_value().encode()
    return hmac.new(secret, f"coffer-{purpose}-v1".encode(), hashlib.sha256).digest()


def keyed_hash(settings: Settings, purpose: str, *parts: str) -> str:
    """Hex HMAC-SHA256 of the parts under the purpose's key (64 characters)."""
    message = "\x1f".join(parts).encode()
    return hmac.new(derive_key(settings, purpose), message, hashlib.sha256).hexdigest()


SINGLE_KEY_ID = "primary"


def _configured_keys(settings: Settings) -> dict[str, bytes]:
    configured = dict(settings.data_encryption_keys)
    if settings.encryption_key is not None:
        configured[SINGLE_KEY_ID] = settings.encryption_key
    return {
        kid: hashlib.sha256(key.get_secret_value().encode()).digest()
        for kid, key in configured.items()
    }


def _data_keys(settings: Settings) -> dict[str, bytes]:
    return {DERIVED_KEY_ID: derive_key(settings, "data-encryption")} | _configured_keys(settings)


def current_key_id(settings: Settings) -> str:
    """The id of the key `seal` encrypts with now."""
    configured = _configured_keys(settings)
    return max(configured) if configured else DERIVED_KEY_ID


def key_id_of(sealed: str) -> str:
    """The id of the key a sealed value was encrypted with (stored beside it, for rotation)."""
    return sealed.rpartition(".")[0]


def seal(settings: Settings, plaintext: str, *, context: str) -> str:
    """`<key id>.<base64url(nonce | ciphertext | tag)>`, encrypted with the current key."""
    keys = _data_keys(settings)
    kid = current_key_id(settings)
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = AESGCM(keys[kid]).encrypt(nonce, plaintext.encode(), context.encode())
    return f"{kid}.{base64.urlsafe_b64encode(nonce + ciphertext).decode()}"


def unseal(settings: Settings, sealed: str, *, context: str) -> str:
    kid, _, encoded = sealed.rpartition(".")
    key = _data_keys(settings).get(kid)
    if key is None:
        raise UnsealError(f"no data encryption key {kid!r} is configured")
    try:
        raw = base64.urlsafe_b64decode(encoded)
        plaintext = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
    except (InvalidTag, ValueError) as error:
        raise UnsealError("the sealed value does not open with its key") from error
    return plaintext.decode()
