"""OWASP API4:2023 Unrestricted Resource Consumption: bodies, nesting, rates, waits, quotes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from coffer.kit.exact_json import MAX_DEPTH, nesting_depth_exceeds
from coffer.settings import Settings
from tests.fixtures.http import API, Caller

SignIn = Callable[..., Awaitable[Caller]]
JSON = {"content-type": "application/json"}
CAP = Settings().max_body_bytes


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
