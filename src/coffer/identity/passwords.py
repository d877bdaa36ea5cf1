"""Password hashing with argon2id (pwdlib), run in a thread so the event loop never stalls."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from coffer.settings import get_settings


@lru_cache(maxsize=1)
def _hasher() -> PasswordHash:
    settings = get_settings()
    return PasswordHash(
        (
            Argon2Hasher(
                memory_cost=settings.password_hash_memory_kib,
                time_cost=settings.password_hash_iterations,
                parallelism=1,
            ),
        )
    )


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher().hash, password)
