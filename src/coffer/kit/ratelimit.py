"""The one rate-limit mechanism: `limits` windows in process memory, or in Redis (shared by
every process) when a Redis URL is given. Over a limit: 429 `rate_limited` with `Retry-After`.
A storage outage lets requests through rather than take the API down.

Two strategies, chosen per limiter:
- the moving window (the default) keeps one entry per hit and refuses exactly the hit that
  would make N in any window: for the cold, security-relevant counts (failed sign-ins, codes);
- the sliding window counter keeps two counters per key (this window's and the last one's,
  weighted by how much of the last one still overlaps) in constant time and memory: for the
  limits every request pays. The moving window's cost grows with the hits it keeps (an entry
  inserted at the front of a list per hit, and in memory an expiry pass that hands every key to
  a thread), which made it the largest share of an API process's CPU at a permissive limit.
"""

from __future__ import annotations

import math
import time

import structlog
from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from starlette.exceptions import HTTPException

log = structlog.get_logger(__name__)


Strategy = type[MovingWindowRateLimiter] | type[SlidingWindowCounterRateLimiter]


class RateLimiter:
    def __init__(
        self,
        redis_url: str | None,
        *,
        key_prefix: str = "coffer",
        strategy: Strategy = MovingWindowRateLimiter,
    ) -> None:
        storage: Storage = (
            RedisStorage(f"async+{redis_url}", implementation="redispy", key_prefix=key_prefix)
            if redis_url
            else MemoryStorage()
        )
        self.limiter = strategy(storage)

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
