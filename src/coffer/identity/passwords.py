"""Password hashing with argon2id (pwdlib), run in a thread so the event loop never stalls.

Verification always does one argon2 computation, against a dummy hash when the account does
not exist or has no password, so a login costs the same whoever it names.
"""

from __future__ import annotations

import asyncio
import secrets
from functools import cache, lru_cache
from importlib import resources

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

from coffer.settings import Settings, get_settings

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256


@lru_cache(maxsize=4)
def _hasher(memory_kib: int, iterations: int) -> PasswordHash:
    return PasswordHash(
        (Argon2Hasher(memory_cost=memory_kib, time_cost=iterations, parallelism=1),)
    )


def hasher_for(settings: Settings | None = None) -> PasswordHash:
    settings = settings or get_settings()
    return _hasher(settings.password_hash_memory_kib, settings.password_hash_iterations)


@lru_cache(maxsize=4)
def _dummy_hash(memory_kib: int, iterations: int) -> str:
    return _hasher(memory_kib, iterations).hash(secrets.token_urlsafe(24))


async def hash_password(password: str, settings: Settings | None = None) -> str:
    return await asyncio.to_thread(hasher_for(settings).hash, password)


def _verify(hasher: PasswordHash, password: str, stored: str) -> tuple[bool, str | None]:
    try:
        return hasher.verify_and_update(password, stored)
    except UnknownHashError:
        return False, None


async def verify_password(
    password: str, stored: str | None, settings: Settings | None = None
) -> tuple[bool, str | None]:
    """Whether the password matches, and a new hash when the stored one uses old parameters."""
    settings = settings or get_settings()
    hasher = hasher_for(settings)
    if stored is None:
        dummy = _dummy_hash(settings.password_hash_memory_kib, settings.password_hash_iterations)
        await asyncio.to_thread(_verify, hasher, password, dummy)
        return False, None
    return await asyncio.to_thread(_verify, hasher, password, stored)


@cache
def _common_passwords() -> frozenset[str]:
    text = resources.files("coffer.identity").joinpath("common_passwords.txt").read_text()
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def is_common_password(password: str) -> bool:
    return password.lower() in _common_passwords()
