"""What each credential may do: the permission matrix, dead keys, and the per-key rate limit."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from coffer.app import create_app
from coffer.settings import Settings
from tests.fixtures.databases import IN_CI
from tests.fixtures.http import API, Caller, key_headers

SignIn = Callable[..., Awaitable[Caller]]
CreateKey = Callable[..., Awaitable[dict[str, Any]]]
REDIS_URL = os.environ.get("COFFER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    needs: str | None
    """The permission it needs; None: signed-in users only, never an API key."""
    body: dict[str, Any] | None = None


def routes(caller: Caller, other: Caller, key_id: str, reference: str) -> list[Route]:
    transfer = {"wallet_number": other.wallet_number, "amount": "1"}
    number = caller.wallet_number
    return [
        Route("GET", "/wallet/balance", "read"),
        Route("GET", "/wallet/transactions", "read"),
        Route("GET", f"/wallet/transfer/{reference}/status", "read"),
        Route("GET", "/wallets", "read"),
        Route("GET", f"/wallets/{number}", "read"),
        Route("GET", f"/wallets/{number}/transactions", "read"),
        Route("POST", "/wallet/transfer", "transfer", transfer),
        Route("POST", f"/wallets/{number}/transfer", "transfer", transfer),
        Route("POST", "/wallets", None, {"currency": "USD"}),
        Route("PATCH", f"/wallets/{number}", None, {"name": "x"}),
        Route("POST", "/keys/create", None, {"name": "x", "permissions": ["read"], "expiry": "1D"}),
        Route("GET", "/keys", None),
        Route("POST", "/keys/rollover", None, {"expired_key_id": key_id, "expiry": "1D"}),
        Route("DELETE", f"/keys/{uuid.uuid4()}", None),
    ]


async def call(client: httpx.AsyncClient, route: Route, headers: dict[str, str]) -> httpx.Response:
    return await client.request(route.method, API + route.path, json=route.body, headers=headers)


@pytest.fixture
async def world(
    client: httpx.AsyncClient, sign_in: SignIn, create_key: CreateKey
) -> tuple[Caller, Caller, str, str]:
    caller, other = await sign_in(fund_minor=1_000_000), await sign_in()
    key_id = (await create_key(caller, ["read"]))["id"]
    response = await client.post(
        f"{API}/wallet/transfer",
        json={"wallet_number": other.wallet_number, "amount": "1"},
        headers=caller.headers,
    )
    return caller, other, key_id, response.json()["data"]["reference"]


@pytest.mark.parametrize(
    "permissions",
    [["read"], ["transfer"], ["deposit"], ["withdraw"], ["read", "transfer"]],
)
async def test_each_permission_opens_exactly_its_routes(
    client: httpx.AsyncClient,
    create_key: CreateKey,
    world: tuple[Caller, Caller, str, str],
    permissions: list[str],
) -> None:
    caller, other, key_id, reference = world
    headers = key_headers((await create_key(caller, permissions))["api_key"])
    for route in routes(caller, other, key_id, reference):
        response = await call(client, route, headers)
        allowed = route.needs in permissions
        if allowed:
            assert response.status_code < 400, (route, response.text)
        else:
            assert response.status_code == 403, (route, response.text)
            assert response.json()["error"]["code"] == "permission_denied"


async def test_signed_in_users_may_use_every_route(
    client: httpx.AsyncClient, world: tuple[Caller, Caller, str, str]
) -> None:
    caller, other, key_id, reference = world
    for route in routes(caller, other, key_id, reference):
        response = await call(client, route, caller.headers)
        # The key in /keys/rollover is not expired (400) and /keys/{random id} does not exist.
        expected = {"/keys/rollover": 400}.get(
            route.path, 404 if route.method == "DELETE" else None
        )
        if expected is None:
            assert response.status_code < 400, (route, response.text)
        else:
            assert response.status_code == expected, (route, response.text)


async def test_revoked_and_expired_keys_are_401_everywhere(
    client: httpx.AsyncClient,
    create_key: CreateKey,
    world: tuple[Caller, Caller, str, str],
    shift_clock: Callable[[timedelta], None],
) -> None:
    caller, other, key_id, reference = world
    everything = ["read", "deposit", "transfer", "withdraw"]
    revoked = await create_key(caller, everything)
    await client.delete(f"{API}/keys/{revoked['id']}", headers=caller.headers)
    shift_clock(timedelta(hours=-1, seconds=-1))
    expiring = await create_key(caller, everything, expiry="1H")
    shift_clock(timedelta(0))

    for api_key, code in (
        (revoked["api_key"], "api_key_revoked"),
        (expiring["api_key"], "api_key_expired"),
    ):
        for route in routes(caller, other, key_id, reference):
            response = await call(client, route, key_headers(api_key))
            assert response.status_code == 401, (route, response.text)
            assert response.json()["error"]["code"] == code
    for route in routes(caller, other, key_id, reference):
        assert (await call(client, route, {})).status_code == 401


@asynccontextmanager
async def _rate_limited_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://coffer.test") as http:
            yield http


async def _exhaust(client: httpx.AsyncClient, api_key: str, allowed: int) -> httpx.Response:
    for _ in range(allowed):
        response = await client.get(f"{API}/wallet/balance", headers=key_headers(api_key))
        assert response.status_code == 200
    return await client.get(f"{API}/wallet/balance", headers=key_headers(api_key))


async def test_a_key_over_its_rate_limit_gets_429_with_retry_after(
    app_settings: Settings, create_key: CreateKey, sign_in: SignIn
) -> None:
    caller = await sign_in()
    first, second = (
        (await create_key(caller, ["read"]))["api_key"],
        (await create_key(caller, ["read"]))["api_key"],
    )
    limited = app_settings.model_copy(update={"api_key_rate_limit_per_minute": 3})
    async with _rate_limited_app(limited) as client:
        refused = await _exhaust(client, first, 3)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # The limit is per key: another key of the same user is untouched.
        assert (
            await client.get(f"{API}/wallet/balance", headers=key_headers(second))
        ).status_code == 200
        # Signed-in users are not API keys.
        assert (
            await client.get(f"{API}/wallet/balance", headers=caller.headers)
        ).status_code == 200


async def test_with_redis_the_limit_is_shared_by_every_process(
    app_settings: Settings, create_key: CreateKey, sign_in: SignIn
) -> None:
    probe = aioredis.from_url(REDIS_URL)
    try:
        await probe.ping()
    except (OSError, aioredis.RedisError):
        if IN_CI:
            pytest.fail("Redis is not reachable (CI=true requires it)")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    finally:
        await probe.aclose()
    caller = await sign_in()
    api_key = (await create_key(caller, ["read"]))["api_key"]
    shared = app_settings.model_copy(
        update={"api_key_rate_limit_per_minute": 4, "redis_url": REDIS_URL}
    )
    # Two apps stand for two API processes: each one alone would allow four requests.
    async with _rate_limited_app(shared) as one, _rate_limited_app(shared) as two:
        for client in (one, two):
            for _ in range(2):
                assert (
                    await client.get(f"{API}/wallet/balance", headers=key_headers(api_key))
                ).status_code == 200
        refused = await one.get(f"{API}/wallet/balance", headers=key_headers(api_key))
        assert refused.status_code == 429
        assert refused.headers["Retry-After"]
