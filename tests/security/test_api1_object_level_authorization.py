"""OWASP API1:2023 Broken Object Level Authorization: another user's wallets, transfers and
keys are invisible (404, as if they did not exist), to a signed-in user and to an API key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.fixtures.http import API, Caller, key_headers

SignIn = Callable[..., Awaitable[Caller]]
CreateKey = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
async def victim_and_intruder(
    sign_in: SignIn, create_key: CreateKey
) -> tuple[Caller, list[dict[str, str]]]:
    victim, intruder = await sign_in(fund_minor=10_000), await sign_in()
    key = await create_key(intruder, ["read", "transfer", "deposit", "withdraw"])
    return victim, [intruder.headers, key_headers(key["api_key"])]


async def test_another_users_wallet_is_not_found(
    client: httpx.AsyncClient, victim_and_intruder: tuple[Caller, list[dict[str, str]]]
) -> None:
    victim, intruders = victim_and_intruder
    for headers in intruders:
        for path in (
            f"/wallets/{victim.wallet_number}",
            f"/wallets/{victim.wallet_number}/transactions",
        ):
            response = await client.get(f"{API}{path}", headers=headers)
            assert response.status_code == 404, (path, response.text)


async def test_another_users_wallet_cannot_be_renamed_or_spent_from(
    client: httpx.AsyncClient,
    victim_and_intruder: tuple[Caller, list[dict[str, str]]],
    sign_in: SignIn,
) -> None:
    victim, intruders = victim_and_intruder
    recipient = await sign_in()
    renamed = await client.patch(
        f"{API}/wallets/{victim.wallet_number}", json={"name": "mine"}, headers=intruders[0]
    )
    assert renamed.status_code == 404
    for headers in intruders:
        spent = await client.post(
            f"{API}/wallets/{victim.wallet_number}/transfer",
            json={"wallet_number": recipient.wallet_number, "amount": "1.00"},
            headers=headers,
        )
        assert spent.status_code == 404, spent.text
    balance = await client.get(f"{API}/wallet/balance", headers=victim.headers)
    assert balance.json()["data"]["balance"] == "100.00"


async def test_another_users_transfer_status_is_not_found(
    client: httpx.AsyncClient,
    victim_and_intruder: tuple[Caller, list[dict[str, str]]],
    sign_in: SignIn,
) -> None:
    victim, intruders = victim_and_intruder
    recipient = await sign_in()
    sent = await client.post(
        f"{API}/wallet/transfer",
        json={"wallet_number": recipient.wallet_number, "amount": "1.00"},
        headers=victim.headers,
    )
    reference = sent.json()["data"]["reference"]
    for headers in intruders:
        response = await client.get(f"{API}/wallet/transfer/{reference}/status", headers=headers)
        assert (response.status_code, response.json()["error"]["code"]) == (
            404,
            "transfer_not_found",
        )


async def test_another_users_api_key_cannot_be_revoked_or_listed(
    client: httpx.AsyncClient, sign_in: SignIn, create_key: CreateKey
) -> None:
    owner, intruder = await sign_in(), await sign_in()
    key = await create_key(owner, ["read"])
    revoked = await client.delete(f"{API}/keys/{key['id']}", headers=intruder.headers)
    assert revoked.status_code == 404
    listed = await client.get(f"{API}/keys", headers=intruder.headers)
    assert key["id"] not in listed.text
    still_works = await client.get(f"{API}/wallet/balance", headers=key_headers(key["api_key"]))
    assert still_works.status_code == 200
