"""Throttling of guessable endpoints (passwords, codes, code emails) with the `limits` library.

Each action has a limit per account (the user id when the identifier names one, else the
canonical identifier) and per client IP, in a moving window of the shared limiter
(`coffer.kit.ratelimit`), kept in memory or, when COFFER_REDIS_URL is set, in Redis so every
API process shares the count. Accounts are keyed by a keyed hash of the identifier (no emails
in Redis). A refused attempt answers 429 with
`Retry-After`. If Redis is down the throttle lets requests through rather than lock everyone out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from functools import partial

from fastapi import Request
from limits import RateLimitItem, parse
from starlette.exceptions import HTTPException

from coffer.audit.security import sign_in_burst
from coffer.errors import AppError
from coffer.identity.service import normalize_email, normalize_phone
from coffer.kit.crypto import keyed_hash
from coffer.kit.ratelimit import RateLimiter
from coffer.settings import Settings


class Action(StrEnum):
    LOGIN = "login"
    """Anything that checks a password."""
    CODE = "code"
    """Anything that checks a 6-digit, TOTP or recovery code."""
    EMAIL = "email"
    """Anything that sends a code (email or SMS)."""
    RECIPIENT_LOOKUP = "recipient_lookup"
    """Transfers naming an email or phone that finds nobody (per principal, not per IP)."""


async def _ignore_burst(account: str) -> None:
    return None


class Throttle:
    def __init__(
        self,
        settings: Settings,
        *,
        key_prefix: str = "coffer",
        on_sign_in_burst: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.on_sign_in_burst = on_sign_in_burst or _ignore_burst
        self.limiter = RateLimiter(settings.redis_url, key_prefix=key_prefix)
        self.limits: dict[Action, tuple[RateLimitItem, RateLimitItem]] = {
            Action.LOGIN: (
                parse(settings.login_rate_limit_per_account),
                parse(settings.login_rate_limit_per_ip),
            ),
            Action.CODE: (
                parse(settings.code_rate_limit_per_account),
                parse(settings.code_rate_limit_per_ip),
            ),
            Action.EMAIL: (
                parse(settings.email_rate_limit_per_account),
                parse(settings.email_rate_limit_per_ip),
            ),
            Action.RECIPIENT_LOOKUP: (
                parse(settings.recipient_lookup_misses_per_principal),
                parse(settings.recipient_lookup_misses_per_principal),
            ),
        }

    async def _hit(self, item: RateLimitItem, action: Action, scope: str, key: str) -> None:
        await self.limiter.hit(
            item, action, scope, key, message="Too many attempts; try again later"
        )

    async def check(self, action: Action, *, account: str | None, ip: str | None) -> None:
        """Count one attempt; raises 429 when the IP or the account has used up its window."""
        per_account, per_ip = self.limits[action]
        if ip:
            await self._hit(per_ip, action, "ip", ip)
        if account:
            hashed = keyed_hash(self.settings, "throttle", canonical_account(account))
            try:
                await self._hit(per_account, action, "account", hashed)
            except HTTPException:
                if action is Action.LOGIN and await self._first_refusal(per_account, hashed):
                    await self.on_sign_in_burst(canonical_account(account))
                raise

    async def _first_refusal(self, item: RateLimitItem, hashed: str) -> bool:
        """True once per window for an account being refused, so a burst of failed sign-ins
        is recorded once, not once per attempt."""
        once = type(item)(1, item.multiples)
        if await self.limiter.exhausted(once, "sign_in_burst", "account", hashed):
            return False
        await self.limiter.count(once, "sign_in_burst", "account", hashed)
        return True

    async def refuse_if_spent(self, action: Action, *, account: str) -> None:
        """429 when the account's window for `action` is used up, without counting a hit: for
        limits that count only failures (a recipient lookup that found nobody)."""
        per_account, _ = self.limits[action]
        hashed = keyed_hash(self.settings, "throttle", account)
        if await self.limiter.exhausted(per_account, action, "account", hashed):
            await self.limiter.refuse(
                per_account, action, "account", hashed, message="Too many attempts; try again later"
            )

    async def count(self, action: Action, *, account: str) -> None:
        """Count one failure against the account (no IP window); 429 once it is spent."""
        per_account, _ = self.limits[action]
        await self._hit(
            per_account, action, "account", keyed_hash(self.settings, "throttle", account)
        )


def canonical_account(account: str) -> str:
    """The form the account is stored in, so spelling variants of one email or phone number
    (full-width letters, spaces, dashes) share one throttle window. Callers that know the
    account pass `user:<id>`, so an account's email and phone share one allowance."""
    if account.startswith("user:"):
        return account
    try:
        if "@" in account:
            return normalize_email(account)
        return normalize_phone(account)
    except AppError:
        return account.strip().lower()


async def get_throttle(request: Request) -> Throttle:
    """The app's throttle, built on first use from the app's settings."""
    state = request.app.state
    throttle: Throttle | None = getattr(state, "throttle", None)
    if throttle is None:
        throttle = state.throttle = Throttle(
            state.settings, on_sign_in_burst=partial(sign_in_burst, state.database)
        )
    return throttle


async def throttle(request: Request, action: Action, *, account: str | None) -> None:
    ip = request.client.host if request.client else None
    await (await get_throttle(request)).check(action, account=account, ip=ip)
