"""OWASP API3:2023 Broken Object Property Level Authorization: no request can set a property
it does not own (unknown fields are refused, not ignored), and no response shows a secret."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.fixtures.http import API, Caller

SignIn = Callable[..., Awaitable[Caller]]
CreateKey = Callable[..., Awaitable[dict[str, Any]]]
SECRET_NAMES = ("password", "hash", "secret", "totp", "recovery")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/me", {"first_name": "Eve", "role": "admin"}),
        ("PATCH", "/me", {"is_verified": True}),
        ("POST", "/wallets", {"currency": "USD", "balance_minor": 10**9}),
        (
            "POST",
            "/keys/create",
            {"name": "k", "permissions": ["read"], "expiry": "1D", "role": "admin"},
        ),
        (
            "POST",
            "/wallet/transfer",
            {"wallet_number": "4921873365012", "amount": "1", "fee_minor": 0},
        ),
    ],
)
async def test_a_property_the_client_may_not_set_is_refused(
    client: httpx.AsyncClient, sign_in: SignIn, method: str, path: str, body: dict[str, Any]
) -> None:
    caller = await sign_in(fund_minor=1_000)
    response = await client.request(method, f"{API}{path}", json=body, headers=caller.headers)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")
    me = await client.get(f"{API}/me", headers=caller.headers)
    assert me.json()["data"]["role"] == "user"


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {key for value in node.values() for key in _keys(value)}
    if isinstance(node, list):
        return {key for item in node for key in _keys(item)}
    return set()


async def test_no_read_shows_a_secret_or_a_hash(
    client: httpx.AsyncClient, sign_in: SignIn, create_key: CreateKey
) -> None:
    caller = await sign_in()
    key = await create_key(caller, ["read"])
    for path in ("/me", "/keys", "/wallets", "/wallet/balance", "/wallet/transactions"):
        response = await client.get(f"{API}{path}", headers=caller.headers)
        assert response.status_code == 200, path
        names = _keys(response.json())
        assert not [n for n in names if any(secret in n for secret in SECRET_NAMES)], (path, names)
        assert key["api_key"] not in response.text, path
