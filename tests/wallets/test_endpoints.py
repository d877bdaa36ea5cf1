"""Wallet routes through the HTTP API: the primary wallet, multi-currency wallets, history."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import func, select

from coffer.db import Database
from coffer.kit.money import Money
from coffer.models import Transaction, Wallet
from coffer.wallets import service as wallets
from coffer.wallets.numbers import generate_wallet_number
from tests.fixtures.factories import assert_ledger_sound, fund
from tests.fixtures.http import API, Caller, key_headers

SignIn = Callable[..., Awaitable[Caller]]
CreateKey = Callable[..., Awaitable[dict[str, Any]]]


async def test_balance_is_the_primary_wallets_exact_amount(
    client: httpx.AsyncClient, sign_in: SignIn
) -> None:
    caller = await sign_in(fund_minor=123_456)
    response = await client.get(f"{API}/wallet/balance", headers=caller.headers)
    assert response.status_code == 200
    assert response.json()["data"] == {
        "balance": "1234.56",
        "currency": "NGN",
        "wallet_number": caller.wallet_number,
    }


async def test_opening_wallets_one_per_supported_currency_up_to_the_limit(
    client: httpx.AsyncClient, sign_in: SignIn, app_database: Database
) -> None:
    caller = await sign_in()

    usd = await client.post(
        f"{API}/wallets", json={"currency": "usd", "name": "Travel"}, headers=caller.headers
    )
    assert usd.status_code == 201, usd.text
    data = usd.json()["data"]
    assert (data["currency"], data["name"], data["balance"], data["is_primary"]) == (
        "USD",
        "Travel",
        "0.00",
        False,
    )

    twice = await client.post(f"{API}/wallets", json={"currency": "USD"}, headers=caller.headers)
    assert (twice.status_code, twice.json()["error"]["code"]) == (409, "wallet_exists")
    for currency in ("JPY", "XXX"):
        refused = await client.post(
            f"{API}/wallets", json={"currency": currency}, headers=caller.headers
        )
        assert (refused.status_code, refused.json()["error"]["code"]) == (
            422,
            "unsupported_currency",
        )
    third = await client.post(f"{API}/wallets", json={"currency": "EUR"}, headers=caller.headers)
    assert third.status_code == 201
    fourth = await client.post(f"{API}/wallets", json={"currency": "GBP"}, headers=caller.headers)
    assert (fourth.status_code, fourth.json()["error"]["code"]) == (409, "wallet_limit_reached")

    listed = await client.get(f"{API}/wallets", headers=caller.headers)
    assert [w["currency"] for w in listed.json()["data"]["wallets"]] == ["NGN", "USD", "EUR"]
    async with app_database.transaction() as session:
        count = (
            await session.execute(
                select(func.count()).select_from(Wallet).where(Wallet.user_id == caller.user_id)
            )
        ).scalar_one()
    assert count == 3


async def test_malformed_wallet_bodies_are_422(client: httpx.AsyncClient, sign_in: SignIn) -> None:
    caller = await sign_in()
    for body in ({}, {"currency": "US"}, {"currency": 840}, {"currency": "USD", "extra": 1}):
        response = await client.post(f"{API}/wallets", json=body, headers=caller.headers)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "validation_error"


async def test_get_and_rename_own_wallet_but_never_anothers(
    client: httpx.AsyncClient, sign_in: SignIn, create_key: CreateKey
) -> None:
    owner, other = await sign_in(fund_minor=500), await sign_in()
    number = owner.wallet_number

    mine = await client.get(f"{API}/wallets/{number}", headers=owner.headers)
    assert mine.status_code == 200
    assert mine.json()["data"]["balance"] == "5.00"
    renamed = await client.patch(
        f"{API}/wallets/{number}", json={"name": "Everyday"}, headers=owner.headers
    )
    assert (renamed.status_code, renamed.json()["data"]["name"]) == (200, "Everyday")
    cleared = await client.patch(
        f"{API}/wallets/{number}", json={"name": None}, headers=owner.headers
    )
    assert cleared.json()["data"]["name"] is None
    empty = await client.patch(f"{API}/wallets/{number}", json={"name": ""}, headers=owner.headers)
    assert empty.status_code == 422

    other_key = (await create_key(other, ["read", "transfer"]))["api_key"]
    for headers in (other.headers, key_headers(other_key)):
        for response in (
            await client.get(f"{API}/wallets/{number}", headers=headers),
            await client.get(f"{API}/wallets/{number}/transactions", headers=headers),
        ):
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "wallet_not_found"
    stolen = await client.patch(
        f"{API}/wallets/{number}", json={"name": "Mine now"}, headers=other.headers
    )
    assert stolen.status_code == 404
    unknown = await client.get(f"{API}/wallets/{generate_wallet_number()}", headers=owner.headers)
    assert unknown.status_code == 404
    malformed = await client.get(f"{API}/wallets/1234", headers=owner.headers)
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (
        422,
        "invalid_wallet_number",
    )


async def test_history_pages_newest_first_with_filters(
    client: httpx.AsyncClient, sign_in: SignIn, app_database: Database
) -> None:
    caller = await sign_in()
    async with app_database.transaction() as session:
        wallet = await wallets.find_wallet(session, caller.wallet_number)
        for minor in (100, 200, 300, 400, 500):
            await fund(session, wallet, minor)
        await wallets.adjust(
            session,
            wallet,
            Money.of(50, "NGN"),
            reason="correction",
            credit=False,
            actor="test",
        )

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = await client.get(f"{API}/wallet/transactions", params=params, headers=caller.headers)
        assert page.status_code == 200
        seen.extend(page.json()["data"]["transactions"])
        cursor = page.json()["data"]["next_cursor"]
        if cursor is None:
            break
    assert [t["amount"] for t in seen] == ["0.50", "5.00", "4.00", "3.00", "2.00", "1.00"]
    assert all(t["type"] == "adjustment" and t["status"] == "success" for t in seen)
    assert seen[0]["metadata"]["direction"] == "debit"

    after = seen[2]["created_at"]
    filtered = await client.get(
        f"{API}/wallets/{caller.wallet_number}/transactions",
        params={"type": "adjustment", "status": "success", "from": after},
        headers=caller.headers,
    )
    assert filtered.status_code == 200
    amounts = [t["amount"] for t in filtered.json()["data"]["transactions"]]
    assert amounts[:3] == ["0.50", "5.00", "4.00"]
    none = await client.get(
        f"{API}/wallet/transactions", params={"type": "deposit"}, headers=caller.headers
    )
    assert none.json()["data"] == {"transactions": [], "next_cursor": None}
    until = await client.get(
        f"{API}/wallet/transactions",
        params={"to": "2000-01-01T00:00:00"},
        headers=caller.headers,
    )
    assert until.json()["data"]["transactions"] == []
    async with app_database.transaction() as session:
        await assert_ledger_sound(session)


async def test_history_pages_stay_stable_while_rows_arrive(
    client: httpx.AsyncClient, sign_in: SignIn, app_database: Database
) -> None:
    caller = await sign_in()
    async with app_database.transaction() as session:
        wallet = await wallets.find_wallet(session, caller.wallet_number)
        for minor in range(1, 7):
            await fund(session, wallet, minor)
    first = await client.get(
        f"{API}/wallet/transactions", params={"limit": 3}, headers=caller.headers
    )
    page = first.json()["data"]
    async with app_database.transaction() as session:
        for minor in (1000, 2000):
            await fund(session, wallet, minor)
    second = await client.get(
        f"{API}/wallet/transactions",
        params={"limit": 3, "cursor": page["next_cursor"]},
        headers=caller.headers,
    )
    rest = second.json()["data"]
    amounts = [t["amount"] for t in (*page["transactions"], *rest["transactions"])]
    assert amounts == ["0.06", "0.05", "0.04", "0.03", "0.02", "0.01"]
    assert rest["next_cursor"] is None
    fresh = await client.get(
        f"{API}/wallet/transactions", params={"limit": 2}, headers=caller.headers
    )
    assert [t["amount"] for t in fresh.json()["data"]["transactions"]] == ["20.00", "10.00"]
    async with app_database.transaction() as session:
        total = (
            await session.execute(
                select(func.count())
                .select_from(Transaction)
                .where(Transaction.wallet_id == wallet.id)
            )
        ).scalar_one()
    assert total == 8


async def test_bad_history_queries_are_422(client: httpx.AsyncClient, sign_in: SignIn) -> None:
    caller = await sign_in()
    for params, code in (
        ({"limit": 101}, "validation_error"),
        ({"limit": 0}, "validation_error"),
        ({"type": "gift"}, "validation_error"),
        ({"status": "done"}, "validation_error"),
        ({"from": "yesterday"}, "validation_error"),
        ({"cursor": "%%%"}, "invalid_cursor"),
        ({"cursor": "WyJhIl0"}, "invalid_cursor"),
    ):
        response = await client.get(
            f"{API}/wallet/transactions", params=params, headers=caller.headers
        )
        assert response.status_code == 422, params
        assert response.json()["error"]["code"] == code, params
