"""The per-key rate limit: a moving window in process memory, or in Redis (shared by every API
process) when COFFER_REDIS_URL is set."""

from __future__ import annotations

import math
import time
import uuid

import structlog
from fastapi import HTTPException
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from coffer.settings import Settings

log = structlog.get_logger(__name__)


class ApiKeyRateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.item = RateLimitItemPerMinute(settings.api_key_rate_limit_per_minute)
        storage: Storage = (
            RedisStorage(
                f"async+{settings.redis_url}", implementation="redispy", wrap_exceptions=True
            )
            if settings.redis_url
            else MemoryStorage()
        )
        self.limiter = MovingWindowRateLimiter(storage)

    async def hit(self, key_id: uuid.UUID) -> None:
        """Count one request of this key; over the limit, 429 `rate_limited` + Retry-After."""
        try:
            if await self.limiter.hit(self.item, "api_key", key_id.hex):
                return
            stats = await self.limiter.get_window_stats(self.item, "api_key", key_id.hex)
        except StorageError as error:
            # A limiter outage must not take the API down with it: let the request through.
            log.warning(
                "apikeys.rate_limit_unavailable", error_type=type(error.storage_error).__name__
            )
            return
        retry_after_seconds = max(1, math.ceil(stats.reset_time - time.time()))
        raise HTTPException(
            status_code=429,
            detail="Too many requests for this API key; retry later",
            headers={"Retry-After": str(retry_after_seconds)},
        )
