"""Keyed hashes and authenticated encryption for the secrets identity keeps.

Refresh tokens, one-time codes, recovery codes and OAuth states are stored as HMAC-SHA256
under keys derived from COFFER_SECRET_KEY, one key per purpose, so a stolen table gives no
token and a hash of one kind never matches another. What must be read back (TOTP secrets, PKCE
verifiers, queued emails) is sealed with AES-GCM under COFFER_DATA_ENCRYPTION_KEYS, bound to a
context (the owning row) so a sealed value copied to another row does not open.
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


def _data_keys(settings: Settings) -> dict[str, bytes]:
    if settings.data_encryption_keys:
        return {
            kid: hashlib.sha256(key.get_secret_value().encode()).digest()
            for kid, key in settings.data_encryption_keys.items()
        }
    return {DERIVED_KEY_ID: derive_key(settings, "data-encryption")}


def seal(settings: Settings, plaintext: str, *, context: str) -> str:
    """`<key id>.<base64url(nonce | ciphertext | tag)>`, encrypted with the newest key."""
    keys = _data_keys(settings)
    kid = max(keys)
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
