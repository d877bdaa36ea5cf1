"""Throttling of logins and codes, per account and per IP, in memory and in Redis."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
import redis.asyncio as aioredis

from coffer.auth.throttle import Action, Throttle
from coffer.settings import Settings
from tests.fixtures.databases import IN_CI
from tests.fixtures.identity import PASSWORD, Api, MakeApi, new_email

REDIS_URL = os.environ.get("COFFER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


WRONG_PASSWORD = "wrong-password-1"


async def login(api: Api, address: str, password: str = WRONG_PASSWORD) -> tuple[int, dict]:
    response = await api.client.post("/auth/login", json={"email": address, "password": password})
    return response.status_code, {"body": response.json(), "headers": response.headers}


async def test_logins_are_throttled_per_account(make_api: MakeApi) -> None:
    async with make_api(login_rate_limit_per_account="3/minute") as api:
        address = await api.sign_up()
        for _ in range(3):
            assert (await login(api, address))[0] == 401
        status, answer = await login(api, address.upper(), PASSWORD)
        assert status == 429
        assert answer["body"]["error"]["code"] == "rate_limited"
        assert 1 <= int(answer["headers"]["retry-after"]) <= 60
        # Someone else is not held up by it.
        assert (await login(api, new_email()))[0] == 401


async def test_spelling_variants_of_one_address_share_a_window(make_api: MakeApi) -> None:
    async with make_api(login_rate_limit_per_account="3/minute") as api:
        address = await api.sign_up()
        local, domain = address.split("@")
        # Full-width letters normalise to the same address (NFKC), so they are one account.
        full_width_domain = domain.replace("e", "\uff45")
        variants = [address, f"{local}@{domain.upper()}", f"{local}@{full_width_domain}"]
        for variant in variants:
            assert (await login(api, variant))[0] == 401
        assert (await login(api, address, PASSWORD))[0] == 429


async def test_logins_are_throttled_per_ip_across_accounts(make_api: MakeApi) -> None:
    async with make_api(login_rate_limit_per_ip="4/minute", client_ip="203.0.113.7") as api:
        for _ in range(4):
            assert (await login(api, new_email()))[0] == 401
        status, answer = await login(api, new_email())
        assert status == 429
        assert int(answer["headers"]["retry-after"]) >= 1


async def test_code_checks_are_throttled(make_api: MakeApi) -> None:
    async with make_api(code_rate_limit_per_account="2/minute") as api:
        address, verification_id = await api.register()
        code = await api.code_for(address)
        for _ in range(2):
            response = await api.client.post(
                "/auth/verify", json={"verification_id": verification_id, "code": "000000"}
            )
            assert response.status_code == 400 or code == "000000"
        throttled = await api.client.post(
            "/auth/verify", json={"verification_id": verification_id, "code": code}
        )
        assert throttled.status_code == 429
        assert "retry-after" in throttled.headers


async def test_code_emails_are_throttled_per_address(make_api: MakeApi) -> None:
    async with make_api(email_rate_limit_per_account="3/hour") as api:
        address = await api.sign_up()  # the sign-up email is the first of the three
        for expected in (202, 202, 429):
            response = await api.client.post(
                "/auth/password/reset/request", json={"email": address}
            )
            assert response.status_code == expected


@pytest.fixture
async def redis_url() -> str:
    client = aioredis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, aioredis.ConnectionError) as error:
        if IN_CI:
            pytest.fail(f"Redis is not reachable at {REDIS_URL} (CI=true requires it): {error}")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    finally:
        await client.aclose()
    return REDIS_URL


async def test_redis_storage_shares_the_count_between_processes(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, login_rate_limit_per_account="2/minute")
    prefix = f"coffer-test-{uuid.uuid4().hex}"
    # Two throttles stand for two API processes sharing one Redis.
    first, second = Throttle(settings, key_prefix=prefix), Throttle(settings, key_prefix=prefix)
    account = new_email()
    await first.check(Action.LOGIN, account=account, ip=None)
    await second.check(Action.LOGIN, account=account, ip=None)
    with pytest.raises(Exception) as refused:  # noqa: PT011 - asserted just below
        await first.check(Action.LOGIN, account=account, ip=None)
    assert getattr(refused.value, "status_code", None) == 429
    assert int(getattr(refused.value, "headers", {})["Retry-After"]) >= 1


async def test_a_storage_outage_lets_requests_through() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0", login_rate_limit_per_account="1/minute")
    throttle = Throttle(settings)
    for _ in range(3):
        await asyncio.wait_for(throttle.check(Action.LOGIN, account="a@b.co", ip="1.2.3.4"), 10)
