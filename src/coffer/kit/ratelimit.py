"""The one rate-limit mechanism: `limits` moving windows in process memory, or in Redis
(shared by every process) when a Redis URL is given. Over a limit: 429 `rate_limited` with
`Retry-After`. A storage outage lets requests through rather than take the API down."""

from __future__ import annotations

import math
import time

import structlog
from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.exceptions import HTTPException

log = structlog.get_logger(__name__)


class RateLimiter:
    def __init__(self, redis_url: str | None, *, key_prefix: str = "coffer") -> None:
        storage: Storage = (
            RedisStorage(f"async+{redis_url}", implementation="redispy", key_prefix=key_prefix)
            if redis_url
            else MemoryStorage()
        )
        self.limiter = MovingWindowRateLimiter(storage)

    async def hit(self, item: RateLimitItem, *identifiers: str, message: str) -> None:
        """Count one request; 429 with Retry-After when the window is already full."""
        try:
            if await self.limiter.hit(item, *identifiers):
                return
        except Exception as error:  # a storage outage must not become a 500
            log.warning("ratelimit.storage_unavailable", error_type=type(error).__name__)
            return
        await self.refuse(item, *identifiers, message=message)

    async def count(self, item: RateLimitItem, *identifiers: str) -> None:
        """Count one event (a failed authentication) without refusing anything now."""
        try:
            await self.limiter.hit(item, *identifiers)
        except Exception as error:
            log.warning("ratelimit.storage_unavailable", error_type=type(error).__name__)

    async def exhausted(self, item: RateLimitItem, *identifiers: str) -> bool:
        try:
            return not await self.limiter.test(item, *identifiers)
        except Exception as error:
            log.warning("ratelimit.storage_unavailable", error_type=type(error).__name__)
            return False

    async def refuse(self, item: RateLimitItem, *identifiers: str, message: str) -> None:
        retry_after_seconds = 1
        try:
            stats = await self.limiter.get_window_stats(item, *identifiers)
            retry_after_seconds = max(1, math.ceil(stats.reset_time - time.time()))
        except Exception as error:
            log.warning("ratelimit.storage_unavailable", error_type=type(error).__name__)
        log.info("ratelimit.refused", scope=identifiers[0] if identifiers else None)
        raise HTTPException(
            status_code=429, detail=message, headers={"Retry-After": str(retry_after_seconds)}
        )
