"""Rate limits on every authenticated route (DESIGN.md §6, issue 12): per client IP before
authentication, per signed-in user after it (API keys have their own per-key limit), and a
per-IP budget of failed authentications (bad tokens, bad keys) after which that IP is refused
until its window moves on, so credentials cannot be guessed at request speed."""

from __future__ import annotations

from limits import parse

from coffer.kit.ratelimit import RateLimiter
from coffer.settings import Settings


class RequestLimits:
    def __init__(self, settings: Settings, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self.per_ip = parse(settings.rate_limit_per_ip)
        self.per_user = parse(settings.rate_limit_per_user)
        self.failures_per_ip = parse(settings.failed_auth_limit_per_ip)

    async def before_authentication(self, ip: str | None) -> None:
        if ip is None:
            return
        if await self.limiter.exhausted(self.failures_per_ip, "auth_failure", ip):
            await self.limiter.refuse(
                self.failures_per_ip,
                "auth_failure",
                ip,
                message="Too many failed authentications from this address; retry later",
            )
        await self.limiter.hit(
            self.per_ip, "ip", ip, message="Too many requests from this address; retry later"
        )

    async def authentication_failed(self, ip: str | None) -> None:
        if ip is not None:
            await self.limiter.count(self.failures_per_ip, "auth_failure", ip)

    async def user_request(self, user_key: str) -> None:
        await self.limiter.hit(
            self.per_user, "user", user_key, message="Too many requests; retry later"
        )
