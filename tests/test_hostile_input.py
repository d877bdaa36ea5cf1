"""Hostile input gets a clear 4xx, quickly, on both backends (found in review)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.fixtures.http import API, Caller

SignIn = Callable[..., Awaitable[Caller]]


def cursor_of(*position: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode().rstrip("=")


@pytest.mark.parametrize("amount", ["1E+4000000", "1e-4000000", "1e999999999999999999"])
async def test_an_amount_with_a_huge_exponent_is_refused_without_stalling_the_server(
    client: httpx.AsyncClient, sign_in: SignIn, amount: str
) -> None:
    caller = await sign_in(fund_minor=10_000)
    other = await sign_in()
    body = f'{{"wallet_number": "{other.wallet_number}", "amount": {amount}}}'
    response = await asyncio.wait_for(
        client.post(
            f"{API}/wallet/transfer",
            content=body,
            headers={**caller.headers, "content-type": "application/json"},
        ),
        timeout=5,
    )
    assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_amount")


@pytest.mark.parametrize("position", [2**63, 10**30, -(10**30), 0])
async def test_a_cursor_outside_the_id_range_is_invalid(
    client: httpx.AsyncClient, sign_in: SignIn, position: int
) -> None:
    caller = await sign_in()
    response = await client.get(
        f"{API}/wallet/transactions", params={"cursor": cursor_of(position)}, headers=caller.headers
    )
    assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_cursor")


@pytest.mark.parametrize(
    ("name", "moment"), [("from", "0001-01-01T00:00:00+01:00"), ("to", "9999-12-31T23:59:59-01:00")]
)
async def test_a_time_with_no_utc_equivalent_is_refused(
    client: httpx.AsyncClient, sign_in: SignIn, name: str, moment: str
) -> None:
    caller = await sign_in()
    response = await client.get(
        f"{API}/wallet/transactions", params={name: moment}, headers=caller.headers
    )
    assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")


async def test_nul_characters_in_bodies_and_paths_are_refused(
    client: httpx.AsyncClient, sign_in: SignIn
) -> None:
    caller = await sign_in(fund_minor=10_000)
    other = await sign_in()
    refusals = [
        await client.post(
            f"{API}/auth/register",
            json={
                "email": "nul@example.com",
                "password": "a long pass phrase",
                "first_name": "a\x00b",
            },
        ),
        await client.patch(
            f"{API}/wallets/{caller.wallet_number}", json={"name": "x\x00"}, headers=caller.headers
        ),
        await client.post(
            f"{API}/wallet/transfer",
            json={"wallet_number": other.wallet_number, "amount": "1.00", "narration": "\x00"},
            headers=caller.headers,
        ),
    ]
    assert [(r.status_code, r.json()["error"]["code"]) for r in refusals] == [
        (422, "validation_error")
    ] * 3
    in_path = await client.get(f"{API}/wallet/transfer/%00abc/status", headers=caller.headers)
    assert (in_path.status_code, in_path.json()["error"]["code"]) == (400, "bad_request")
