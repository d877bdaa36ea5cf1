"""Idempotency-Key through the HTTP API: replays, reused keys, keys in flight, races."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from coffer.db import Database
from coffer.idempotency import service as idempotency
from coffer.idempotency.repository import _lock_id
from coffer.kit.clock import utcnow
from coffer.models import ApiKey, IdempotencyRecord, Transfer, Wallet
from tests.fixtures.factories import assert_ledger_sound
from tests.fixtures.http import API, Caller, key_headers

SignIn = Callable[..., Awaitable[Caller]]
CreateKey = Callable[..., Awaitable[dict[str, Any]]]
Settle = Callable[[], Awaitable[None]]


async def count(database: Database, model: Any, *where: Any) -> int:
    async with database.transaction() as session:
        return int(
            (
                await session.execute(select(func.count()).select_from(model).where(*where))
            ).scalar_one()
        )


async def test_same_key_and_body_replays_the_first_response(
    client: httpx.AsyncClient, sign_in: SignIn, app_database: Database
) -> None:
    caller = await sign_in()
    headers = {**caller.headers, "Idempotency-Key": "open-usd-1"}
    first = await client.post(f"{API}/wallets", json={"currency": "USD"}, headers=headers)
    # Key order and spacing do not make a different request.
    again = await client.post(
        f"{API}/wallets",
        content=b'{ "currency" :  "USD" }',
        headers={**headers, "content-type": "application/json"},
    )
    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert await count(app_database, Wallet, Wallet.user_id == caller.user_id) == 2


async def test_same_key_with_another_body_or_route_is_422(
    client: httpx.AsyncClient, sign_in: SignIn, app_database: Database
) -> None:
    caller = await sign_in()
    headers = {**caller.headers, "Idempotency-Key": "k-1"}
    assert (
        await client.post(f"{API}/wallets", json={"currency": "USD"}, headers=headers)
    ).status_code == 201
    for response in (
        await client.post(f"{API}/wallets", json={"currency": "EUR"}, headers=headers),
        await client.patch(
            f"{API}/wallets/{caller.wallet_number}", json={"name": "x"}, headers=headers
        ),
    ):
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert await count(app_database, Wallet, Wallet.user_id == caller.user_id) == 2


async def test_keys_are_scoped_per_principal(
    client: httpx.AsyncClient, sign_in: SignIn, app_database: Database
) -> None:
    first, second = await sign_in(), await sign_in()
    for caller, currency in ((first, "USD"), (second, "EUR")):
        response = await client.post(
            f"{API}/wallets",
            json={"currency": currency},
            headers={**caller.headers, "Idempotency-Key": "shared-key"},
        )
        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response.headers


async def test_a_failed_request_stores_nothing_so_its_key_can_be_retried(
    client: httpx.AsyncClient, sign_in: SignIn
) -> None:
    caller = await sign_in()
    headers = {**caller.headers, "Idempotency-Key": "retry-me"}
    refused = await client.post(f"{API}/wallets", json={"currency": "JPY"}, headers=headers)
    assert refused.status_code == 422
    fixed = await client.post(f"{API}/wallets", json={"currency": "USD"}, headers=headers)
    assert fixed.status_code == 201
    assert "Idempotent-Replayed" not in fixed.headers


async def test_a_replayed_key_creation_never_shows_the_key_again(
    client: httpx.AsyncClient, sign_in: SignIn, app_database: Database
) -> None:
    caller = await sign_in()
    body = {"name": "ci", "permissions": ["read"], "expiry": "1D"}
    headers = {**caller.headers, "Idempotency-Key": "create-ci-key"}
    first = await client.post(f"{API}/keys/create", json=body, headers=headers)
    again = await client.post(f"{API}/keys/create", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    api_key = first.json()["data"]["api_key"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["data"]["api_key"] is None
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert await count(app_database, ApiKey, ApiKey.user_id == caller.user_id) == 1
    async with app_database.transaction() as session:
        stored = (await session.execute(select(IdempotencyRecord.response_body))).scalars().all()
    assert all(api_key not in body for body in stored)


async def test_an_expired_record_no_longer_binds_its_key(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    app_database: Database,
    shift_clock: Callable[[timedelta], None],
    sign_in_again: Callable[[Caller], Awaitable[Caller]],
) -> None:
    shift_clock(timedelta(hours=-25))
    caller = await sign_in()
    headers = {"Idempotency-Key": "yesterday"}
    old = await client.post(
        f"{API}/wallets", json={"currency": "USD"}, headers={**caller.headers, **headers}
    )
    assert old.status_code == 201
    shift_clock(timedelta(0))
    caller = await sign_in_again(caller)
    new = await client.post(
        f"{API}/wallets", json={"currency": "EUR"}, headers={**caller.headers, **headers}
    )
    assert new.status_code == 201


async def test_the_purge_deletes_only_expired_records(
    client: httpx.AsyncClient, sign_in: SignIn, app_database: Database
) -> None:
    caller = await sign_in()
    await client.post(
        f"{API}/wallets",
        json={"currency": "USD"},
        headers={**caller.headers, "Idempotency-Key": "purge-me"},
    )
    mine = IdempotencyRecord.scope == f"user:{caller.user_id}"
    async with app_database.transaction() as session:
        await idempotency.purge_expired(session, utcnow() + timedelta(hours=23))
    assert await count(app_database, IdempotencyRecord, mine) == 1
    async with app_database.transaction() as session:
        await idempotency.purge_expired(session, utcnow() + timedelta(hours=24, seconds=1))
    assert await count(app_database, IdempotencyRecord, mine) == 0


async def test_malformed_idempotency_keys_are_422(
    client: httpx.AsyncClient, sign_in: SignIn
) -> None:
    caller = await sign_in()
    for key in ("", "x" * 256):
        response = await client.post(
            f"{API}/wallets",
            json={"currency": "USD"},
            headers={**caller.headers, "Idempotency-Key": key},
        )
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_key_still_in_flight_is_409(
    backend: str, client: httpx.AsyncClient, sign_in: SignIn, app_database: Database
) -> None:
    caller = await sign_in()
    scope = f"user:{caller.user_id}"
    # Another transaction holds the key, as a first request still running does.
    async with app_database.transaction() as holder:
        await holder.execute(
            text("SELECT pg_advisory_xact_lock(:id)"), {"id": _lock_id(scope, "busy")}
        )
        response = await client.post(
            f"{API}/wallets",
            json={"currency": "USD"},
            headers={**caller.headers, "Idempotency-Key": "busy"},
        )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_in_use"
    after = await client.post(
        f"{API}/wallets",
        json={"currency": "USD"},
        headers={**caller.headers, "Idempotency-Key": "busy"},
    )
    assert after.status_code == 201


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_identical_requests_racing_open_one_wallet(
    backend: str, client: httpx.AsyncClient, sign_in: SignIn, app_database: Database
) -> None:
    caller = await sign_in()
    headers = {**caller.headers, "Idempotency-Key": "race"}
    answers = await asyncio.gather(
        *(
            client.post(f"{API}/wallets", json={"currency": "USD"}, headers=headers)
            for _ in range(3)
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses[0] == 201
    assert set(statuses) <= {201, 409}
    numbers = {a.json()["data"]["wallet_number"] for a in answers if a.status_code == 201}
    assert len(numbers) == 1
    assert await count(app_database, Wallet, Wallet.user_id == caller.user_id) == 2


# Transfers keep their key on the transfer row; the routes add the replay header.


async def test_a_replayed_transfer_answers_the_same_reference_and_body(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    create_key: CreateKey,
    settle: Settle,
    app_database: Database,
) -> None:
    sender, recipient = await sign_in(fund_minor=10_000), await sign_in()
    body = {"wallet_number": recipient.wallet_number, "amount": "10.00"}
    first = await client.post(
        f"{API}/wallet/transfer", json=body, headers={**sender.headers, "Idempotency-Key": "t-1"}
    )
    await settle()
    by_body = await client.post(
        f"{API}/wallet/transfer", json={**body, "idempotency_key": "t-1"}, headers=sender.headers
    )
    api_key = (await create_key(sender, ["transfer"]))["api_key"]
    by_key = await client.post(
        f"{API}/wallet/transfer",
        json={**body, "amount": 10},
        headers={**key_headers(api_key), "Idempotency-Key": "t-1"},
    )
    assert first.status_code == by_body.status_code == by_key.status_code == 202
    assert by_body.json() == first.json() == by_key.json()
    assert by_body.headers["Idempotent-Replayed"] == by_key.headers["Idempotent-Replayed"] == "true"
    assert await count(app_database, Transfer, Transfer.sender_user_id == sender.user_id) == 1
    balance = await client.get(f"{API}/wallet/balance", headers=recipient.headers)
    assert balance.json()["data"]["balance"] == "10.00"
    async with app_database.transaction() as session:
        await assert_ledger_sound(session)


async def test_a_transfer_key_reused_for_another_transfer_is_422(
    client: httpx.AsyncClient, sign_in: SignIn, app_database: Database
) -> None:
    sender, recipient = await sign_in(fund_minor=10_000), await sign_in()
    headers = {**sender.headers, "Idempotency-Key": "t-2"}
    url = f"{API}/wallet/transfer"
    first = await client.post(
        url, json={"wallet_number": recipient.wallet_number, "amount": "1"}, headers=headers
    )
    assert first.status_code == 202
    reused = await client.post(
        url, json={"wallet_number": recipient.wallet_number, "amount": "2"}, headers=headers
    )
    assert (reused.status_code, reused.json()["error"]["code"]) == (422, "idempotency_key_reused")
    differing = await client.post(
        url,
        json={"wallet_number": recipient.wallet_number, "amount": "1", "idempotency_key": "t-3"},
        headers=headers,
    )
    assert (differing.status_code, differing.json()["error"]["code"]) == (422, "validation_error")
    assert await count(app_database, Transfer, Transfer.sender_user_id == sender.user_id) == 1


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_identical_transfers_racing_on_postgres_make_one_transfer(
    backend: str,
    client: httpx.AsyncClient,
    sign_in: SignIn,
    settle: Settle,
    app_database: Database,
) -> None:
    sender, recipient = await sign_in(fund_minor=10_000), await sign_in()
    body = {"wallet_number": recipient.wallet_number, "amount": "7.00", "idempotency_key": "race"}
    answers = await asyncio.gather(
        *(
            client.post(f"{API}/wallet/transfer", json=body, headers=sender.headers)
            for _ in range(2)
        )
    )
    accepted = [a for a in answers if a.status_code == 202]
    assert accepted, [a.text for a in answers]
    assert all(
        a.status_code == 202 or a.json()["error"]["code"] == "idempotency_key_in_use"
        for a in answers
    )
    assert len({a.json()["data"]["reference"] for a in accepted}) == 1
    assert await count(app_database, Transfer, Transfer.sender_user_id == sender.user_id) == 1
    await settle()
    balance = await client.get(f"{API}/wallet/balance", headers=sender.headers)
    assert balance.json()["data"]["balance"] == "93.00"
    async with app_database.transaction() as session:
        await assert_ledger_sound(session)
