"""OWASP API5:2023 Broken Function Level Authorization: every route the OpenAPI document marks
Bearer-only refuses an API key (even one with every permission), and a key can do only what
its permissions name."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.fixtures.http import API, Caller, key_headers

SignIn = Callable[..., Awaitable[Caller]]
CreateKey = Callable[..., Awaitable[dict[str, Any]]]


async def test_every_user_only_route_refuses_an_api_key(
    client: httpx.AsyncClient, sign_in: SignIn, create_key: CreateKey
) -> None:
    caller = await sign_in()
    key = await create_key(caller, ["read", "deposit", "transfer", "withdraw"])
    document = (await client.get("/openapi.json")).json()
    user_only = [
        (method, path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") == [{"bearerAuth": []}]
    ]
    assert len(user_only) >= 10
    for method, path in user_only:
        url = path.replace("{key_id}", str(uuid.uuid4())).replace(
            "{wallet_number}", caller.wallet_number
        )
        response = await client.request(
            method, url, json={} if method != "get" else None, headers=key_headers(key["api_key"])
        )
        assert (response.status_code, response.json()["error"]["code"]) == (
            403,
            "permission_denied",
        ), (method, path)


async def test_a_key_does_only_what_its_permissions_name(
    client: httpx.AsyncClient, sign_in: SignIn, create_key: CreateKey
) -> None:
    caller, other = await sign_in(fund_minor=1_000), await sign_in()
    reader = key_headers((await create_key(caller, ["read"]))["api_key"])
    transfer = {"wallet_number": other.wallet_number, "amount": "1.00"}
    refused = await client.post(f"{API}/wallet/transfer", json=transfer, headers=reader)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")
    quote = {"from_currency": "NGN", "to_currency": "USD", "amount": "1.00"}
    refused = await client.post(f"{API}/fx/quote", json=quote, headers=reader)
    assert refused.status_code == 403
    assert (await client.get(f"{API}/wallet/balance", headers=reader)).status_code == 200
