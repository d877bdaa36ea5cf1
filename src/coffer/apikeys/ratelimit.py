"""The per-key rate limit, on the shared limiter (`coffer.kit.ratelimit`): counted in memory
per process, or in Redis, shared by every process, when COFFER_REDIS_URL is set."""

from __future__ import annotations

import uuid

from limits import RateLimitItemPerMinute

from coffer.kit.ratelimit import RateLimiter
from coffer.settings import Settings


class ApiKeyRateLimiter:
    def __init__(self, settings: Settings, limiter: RateLimiter) -> None:
        self.item = RateLimitItemPerMinute(settings.api_key_rate_limit_per_minute)
        self.limiter = limiter

    async def hit(self, key_id: uuid.UUID) -> None:
        """Count one request of this key; over the limit, 429 `rate_limited` + Retry-After."""
        await self.limiter.hit(
            self.item, "api_key", key_id.hex, message="Too many requests for this API key"
        )
