"""OWASP API4:2023 Unrestricted Resource Consumption: bodies, nesting, rates, waits, quotes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from coffer.app import create_app
from coffer.db import Database
from coffer.kit.exact_json import MAX_DEPTH, nesting_depth_exceeds
from coffer.settings import Settings
from tests.fixtures.factories import make_user
from tests.fixtures.fx import set_fixed_rates
from tests.fixtures.http import API, Caller, key_headers, new_session_token

REDIS_URL = "redis://127.0.0.1:6379/0"

SignIn = Callable[..., Awaitable[Caller]]
JSON = {"content-type": "application/json"}
CAP = Settings().max_body_bytes


@pytest.fixture
def app_settings(database_url: str) -> Settings:
    """Tight limits, so a test reaches each one in a few requests."""
    return Settings(
        database_url=database_url,
        worker_mode="external",
        database_pool_size=3,
        rate_limit_per_user="5/minute",
        rate_limit_per_ip="8/minute",
        failed_auth_limit_per_ip="3/minute",
        max_transfer_waits_per_principal=2,
        max_open_fx_quotes_per_user=3,
    )


def client_from(app: FastAPI, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://coffer.test")


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response.headers["retry-after"]) >= 1


def deep_list(depth: int) -> str:
    return "[" * depth + "]" * depth


async def test_a_declared_oversized_body_is_refused_before_authentication(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(f"{API}/auth/login", content=b"x" * (CAP + 1), headers=JSON)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_a_streamed_oversized_body_is_refused_without_reading_the_rest(
    client: httpx.AsyncClient,
) -> None:
    chunk = b"x" * 1024
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(150 * 1024):  # 150 MB, as in the finding, if it were all read
            sent += 1
            yield chunk

    response = await client.post(f"{API}/auth/login", content=endless(), headers=JSON)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert sent <= CAP // len(chunk) + 2


@pytest.mark.parametrize("provider", ["paystack", "stripe", "sandbox"])
async def test_webhook_routes_are_capped_too(client: httpx.AsyncClient, provider: str) -> None:
    response = await client.post(
        f"{API}/wallet/{provider}/webhook", content=b"{" + b" " * CAP + b"}", headers=JSON
    )
    assert response.status_code == 413


async def test_a_body_within_the_cap_still_reaches_the_route(client: httpx.AsyncClient) -> None:
    padding = " " * (CAP - 200)
    body = f'{{"email": "nobody@example.com", "password": "wrong password"{padding}}}'
    response = await client.post(f"{API}/auth/login", content=body, headers=JSON)
    assert response.status_code == 401


async def test_a_deeply_nested_body_is_refused_before_authentication(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(f"{API}/auth/login", content=deep_list(450), headers=JSON)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "json_too_deep")


async def test_a_deeply_nested_body_is_refused_where_idempotency_fingerprints_it(
    client: httpx.AsyncClient, sign_in: SignIn
) -> None:
    caller = await sign_in()
    response = await client.request(
        "DELETE",
        f"{API}/keys/{uuid.uuid4()}",
        content=deep_list(450),
        headers={**caller.headers, **JSON, "Idempotency-Key": "deep-body"},
    )
    assert (response.status_code, response.json()["error"]["code"]) == (422, "json_too_deep")


async def test_a_body_at_the_depth_cap_is_parsed_and_validated(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(f"{API}/auth/login", content=deep_list(MAX_DEPTH), headers=JSON)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")


@pytest.mark.parametrize(
    ("body", "too_deep"),
    [
        (b'"' + b"[" * 100 + b'"', False),
        (b'["\\"' + b"[" * 100 + b'"]', False),
        (b'{"a": ' * 33 + b"1" + b"}" * 33, True),
        (b"[" * 32 + b"]" * 32 + b"[" * 32, False),
        (b'["\\\\"' + b"[" * 40, True),
    ],
)
def test_nesting_is_counted_outside_strings_only(body: bytes, too_deep: bool) -> None:
    assert nesting_depth_exceeds(body, MAX_DEPTH) is too_deep


async def test_a_signed_in_user_is_rate_limited(client: httpx.AsyncClient, sign_in: SignIn) -> None:
    caller = await sign_in()
    answers = [await client.get(f"{API}/wallet/balance", headers=caller.headers) for _ in range(6)]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    assert_rate_limited(answers[5])


async def test_authenticated_routes_are_rate_limited_per_ip(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    answers = [await client.get(f"{API}/wallet/balance") for _ in range(9)]
    assert [a.status_code for a in answers[:8]] == [401] * 8
    assert_rate_limited(answers[8])
    async with client_from(app, "10.0.0.2") as elsewhere:
        assert (await elsewhere.get(f"{API}/wallet/balance")).status_code == 401


@pytest.mark.parametrize(
    "bad_credentials",
    [{"Authorization": "Bearer not-a-token"}, key_headers("sk_test_" + "0" * 40)],
)
async def test_failed_authentications_lock_the_address_out(
    client: httpx.AsyncClient, app: FastAPI, sign_in: SignIn, bad_credentials: dict[str, str]
) -> None:
    caller = await sign_in()
    for _ in range(3):
        assert (
            await client.get(f"{API}/wallet/balance", headers=bad_credentials)
        ).status_code == 401
    assert_rate_limited(await client.get(f"{API}/wallet/balance", headers=caller.headers))
    async with client_from(app, "10.0.0.3") as elsewhere:
        answer = await elsewhere.get(f"{API}/wallet/balance", headers=caller.headers)
    assert answer.status_code == 200


async def test_concurrent_waits_are_capped_per_principal(
    client: httpx.AsyncClient, sign_in: SignIn
) -> None:
    sender, other = await sign_in(fund_minor=1_000), await sign_in()
    sent = await client.post(
        f"{API}/wallet/transfer",
        json={"wallet_number": other.wallet_number, "amount": 1},
        headers=sender.headers,
    )
    url = f"{API}/wallet/transfer/{sent.json()['data']['reference']}/status"
    headers = {**sender.headers, "Prefer": "wait=2"}
    answers = await asyncio.gather(*(client.get(url, headers=headers) for _ in range(3)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200, 200, 429]


async def test_open_fx_quotes_are_capped_per_user(
    client: httpx.AsyncClient, app: FastAPI, sign_in: SignIn
) -> None:
    await set_fixed_rates(app.state.database, app.state.settings, {"NGN": "1500"})
    caller = await sign_in(currency="USD")
    body = {"from_currency": "USD", "to_currency": "NGN", "amount": "1.00"}
    answers = [
        await client.post(f"{API}/fx/quote", json=body, headers=caller.headers) for _ in range(4)
    ]
    assert [a.status_code for a in answers[:3]] == [201] * 3
    assert (answers[3].status_code, answers[3].json()["error"]["code"]) == (
        429,
        "too_many_fx_quotes",
    )


async def test_limits_are_shared_by_every_process_through_redis(database_url: str) -> None:
    settings = Settings(
        database_url=database_url,
        worker_mode="external",
        database_pool_size=2,
        redis_url=REDIS_URL,
        rate_limit_per_user="4/minute",
    )
    database = Database(database_url, pool_size=1)
    try:
        async with database.transaction() as session:
            user = (await make_user(session)).user
        token = await new_session_token(database, settings, user.id)
    finally:
        await database.dispose()
    headers = {"Authorization": f"Bearer {token}"}
    ip = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"  # a window of its own
    first, second = create_app(settings), create_app(settings)
    async with first.router.lifespan_context(first), second.router.lifespan_context(second):
        async with client_from(first, ip) as one, client_from(second, ip) as two:
            answers = [
                await (one if turn % 2 else two).get(f"{API}/wallet/balance", headers=headers)
                for turn in range(5)
            ]
    assert [a.status_code for a in answers[:4]] == [200] * 4
    assert_rate_limited(answers[4])


async def test_a_body_on_a_route_that_takes_none_is_ignored(
    client: httpx.AsyncClient, sign_in: SignIn
) -> None:
    caller = await sign_in()
    for body in (deep_list(450), "not json at all"):
        response = await client.request(
            "GET", f"{API}/wallet/balance", content=body, headers={**caller.headers, **JSON}
        )
        assert response.status_code == 200
