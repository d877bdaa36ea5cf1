"""POST /transfers/batch through the HTTP API, on both backends: independent and linked
batches, replays, refusals, settlement progress, and the linked batch failing whole at
settlement."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from coffer.db import Database
from coffer.models import Transfer
from coffer.wallets.numbers import generate_wallet_number
from tests.fixtures.factories import assert_ledger_sound
from tests.fixtures.http import API, Caller, key_headers

SignIn = Callable[..., Awaitable[Caller]]
CreateKey = Callable[..., Awaitable[dict[str, Any]]]
Settle = Callable[[], Awaitable[None]]
BATCH = f"{API}/transfers/batch"


def item(to: Caller | str, amount: str, key: str | None = None) -> dict[str, Any]:
    number = to if isinstance(to, str) else to.wallet_number
    return {"wallet_number": number, "amount": amount, "idempotency_key": key or uuid.uuid4().hex}


def unknown_wallet_number() -> str:
    return generate_wallet_number()


async def post_batch(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    mode: str,
    items: list[dict[str, Any]],
    **extra: str,
) -> httpx.Response:
    return await client.post(
        BATCH, json={"mode": mode, "transfers": items}, headers={**headers, **extra}
    )


async def balance(client: httpx.AsyncClient, caller: Caller) -> str:
    response = await client.get(f"{API}/wallet/balance", headers=caller.headers)
    return str(response.json()["data"]["balance"])


async def progress(client: httpx.AsyncClient, caller: Caller, batch_id: str) -> dict[str, Any]:
    response = await client.get(f"{BATCH}/{batch_id}", headers=caller.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def transfer_count(database: Database, sender: Caller) -> int:
    async with database.transaction() as session:
        count = await session.scalar(
            select(func.count()).where(Transfer.sender_user_id == sender.user_id)
        )
    return int(count or 0)


def codes(data: dict[str, Any]) -> list[str | None]:
    return [entry["error"]["code"] if entry["error"] else None for entry in data["items"]]


async def test_linked_batch_with_one_bad_item_applies_nothing(
    client: httpx.AsyncClient, sign_in: SignIn, settle: Settle, app_database: Database
) -> None:
    sender = await sign_in(fund_minor=10_000)
    first, second = await sign_in(), await sign_in()

    response = await post_batch(
        client,
        sender.headers,
        "linked",
        [item(first, "10.00"), item(unknown_wallet_number(), "5.00"), item(second, "20.00")],
    )

    assert response.status_code == 202, response.text
    data = response.json()["data"]
    assert (data["mode"], data["accepted"], data["refused"]) == ("linked", 0, 3)
    assert codes(data) == ["linked_event_failed", "recipient_not_found", "linked_event_failed"]
    assert [entry["index"] for entry in data["items"]] == [0, 1, 2]
    assert all(entry["transfer"] is None for entry in data["items"])
    assert await transfer_count(app_database, sender) == 0
    await settle()
    assert [await balance(client, c) for c in (sender, first, second)] == ["100.00", "0.00", "0.00"]
    shown = await progress(client, sender, data["batch_id"])
    assert shown["counts"] == {"pending": 0, "completed": 0, "failed": 0, "refused": 3}
    assert [entry["error"] for entry in shown["items"]] == codes(data)


async def test_independent_batch_applies_the_rest(
    client: httpx.AsyncClient, sign_in: SignIn, settle: Settle, app_database: Database
) -> None:
    sender = await sign_in(fund_minor=10_000)
    first, second = await sign_in(), await sign_in()

    response = await post_batch(
        client,
        sender.headers,
        "independent",
        [item(first, "10.00"), item(unknown_wallet_number(), "5.00"), item(second, "20.00")],
    )

    assert response.status_code == 202, response.text
    data = response.json()["data"]
    assert (data["accepted"], data["refused"]) == (2, 1)
    assert codes(data) == [None, "recipient_not_found", None]
    made = [entry["transfer"] for entry in data["items"]]
    assert made[0]["recipient_wallet"] == first.wallet_number
    assert (made[2]["amount"], made[2]["status"]) == ("20.00", "pending")
    shown = await progress(client, sender, data["batch_id"])
    assert shown["counts"] == {"pending": 2, "completed": 0, "failed": 0, "refused": 1}

    await settle()

    assert [await balance(client, c) for c in (sender, first, second)] == [
        "70.00",
        "10.00",
        "20.00",
    ]
    shown = await progress(client, sender, data["batch_id"])
    assert shown["counts"] == {"pending": 0, "completed": 2, "failed": 0, "refused": 1}
    assert [entry["status"] for entry in shown["items"]] == ["completed", "refused", "completed"]
    assert shown["items"][0]["reference"] == made[0]["reference"]
    assert await transfer_count(app_database, sender) == 2


async def test_linked_batch_that_cannot_be_paid_at_settlement_fails_whole(
    client: httpx.AsyncClient, sign_in: SignIn, settle: Settle, app_database: Database
) -> None:
    sender = await sign_in(fund_minor=10_000)
    recipients = [await sign_in() for _ in range(3)]
    # Each fits the balance on its own (the pre-check at acceptance), all three do not.
    response = await post_batch(
        client, sender.headers, "linked", [item(r, "40.00") for r in recipients]
    )
    data = response.json()["data"]
    assert (response.status_code, data["accepted"]) == (202, 3), response.text
    assert (await progress(client, sender, data["batch_id"]))["counts"]["pending"] == 3

    await settle()

    shown = await progress(client, sender, data["batch_id"])
    assert shown["counts"] == {"pending": 0, "completed": 0, "failed": 3, "refused": 0}
    assert [entry["error"] for entry in shown["items"]] == [
        "linked_event_failed",
        "linked_event_failed",
        "insufficient_funds",
    ]
    assert await balance(client, sender) == "100.00"
    assert {await balance(client, r) for r in recipients} == {"0.00"}
    async with app_database.transaction() as session:
        await assert_ledger_sound(session)


async def test_linked_batch_settles_every_transfer_together(
    client: httpx.AsyncClient, sign_in: SignIn, settle: Settle
) -> None:
    sender = await sign_in(fund_minor=10_000)
    recipients = [await sign_in() for _ in range(3)]
    response = await post_batch(
        client, sender.headers, "linked", [item(r, "30.00") for r in recipients]
    )
    batch_id = response.json()["data"]["batch_id"]

    await settle()

    shown = await progress(client, sender, batch_id)
    assert shown["counts"] == {"pending": 0, "completed": 3, "failed": 0, "refused": 0}
    assert await balance(client, sender) == "10.00"
    assert [await balance(client, r) for r in recipients] == ["30.00"] * 3


async def test_replayed_batch_replays_every_item(
    client: httpx.AsyncClient, sign_in: SignIn, settle: Settle, app_database: Database
) -> None:
    sender = await sign_in(fund_minor=10_000)
    first, second = await sign_in(), await sign_in()
    items = [item(first, "10.00"), item(unknown_wallet_number(), "5.00"), item(second, "20.00")]
    original = (await post_batch(client, sender.headers, "independent", items)).json()["data"]

    resent = await post_batch(client, sender.headers, "independent", items)

    assert resent.status_code == 202, resent.text
    again = resent.json()["data"]
    assert [e["replayed"] for e in again["items"]] == [True, False, True]
    assert [e["transfer"] and e["transfer"]["reference"] for e in again["items"]] == [
        e["transfer"] and e["transfer"]["reference"] for e in original["items"]
    ]
    assert codes(again) == codes(original)
    assert await transfer_count(app_database, sender) == 2
    await settle()
    assert await balance(client, sender) == "70.00"

    # With an Idempotency-Key for the batch as a whole: the first answer, byte for byte.
    keyed = [item(first, "1.00"), item(second, "2.00")]
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    answered = await post_batch(client, sender.headers, "linked", keyed, **headers)
    replayed = await post_batch(client, sender.headers, "linked", keyed, **headers)
    assert replayed.status_code == 202
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.content == answered.content
    reused = await post_batch(client, sender.headers, "linked", keyed[:1], **headers)
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    await settle()
    assert await balance(client, sender) == "67.00"
    async with app_database.transaction() as session:
        await assert_ledger_sound(session)


async def test_an_item_key_reused_with_another_transfer_is_refused(
    client: httpx.AsyncClient, sign_in: SignIn
) -> None:
    sender = await sign_in(fund_minor=10_000)
    recipient = await sign_in()
    first = item(recipient, "10.00")
    await post_batch(client, sender.headers, "independent", [first])

    response = await post_batch(
        client, sender.headers, "independent", [{**first, "amount": "11.00"}]
    )

    assert codes(response.json()["data"]) == ["idempotency_key_reused"]


@pytest.mark.parametrize(
    ("body", "shape", "code"),
    [
        ({"mode": "independent"}, "empty", "validation_error"),
        ({"mode": "sometimes"}, "one", "validation_error"),
        ({}, "one", "validation_error"),
        ({"mode": "linked", "extra": 1}, "one", "validation_error"),
        ({"mode": "linked"}, "too many", "validation_error"),
        ({"mode": "linked"}, "same key", "duplicate_idempotency_key"),
        ({"mode": "linked"}, "no key", "validation_error"),
    ],
)
async def test_malformed_batches_are_refused_with_a_code(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    app_database: Database,
    body: dict[str, Any],
    shape: str,
    code: str,
) -> None:
    sender = await sign_in(fund_minor=10_000)
    recipient = await sign_in()
    one = item(recipient, "1.00")
    transfers = {
        "empty": [],
        "one": [one],
        "too many": [item(recipient, "1.00") for _ in range(1_001)],
        "same key": [one, item(recipient, "2.00"), {**one, "amount": "3.00"}],
        "no key": [{"wallet_number": recipient.wallet_number, "amount": "1.00"}],
    }[shape]

    response = await client.post(
        BATCH, json={**body, "transfers": transfers}, headers=sender.headers
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    if code == "duplicate_idempotency_key":
        assert response.json()["error"]["details"] == {"indexes": [0, 2]}
    assert await transfer_count(app_database, sender) == 0


async def test_a_batch_of_a_thousand_is_one_request(
    client: httpx.AsyncClient, sign_in: SignIn, settle: Settle
) -> None:
    sender = await sign_in(fund_minor=1_000_000)
    recipients = [await sign_in() for _ in range(5)]

    response = await post_batch(
        client,
        sender.headers,
        "linked",
        [item(recipients[i % 5], "1.00") for i in range(1_000)],
    )

    assert response.status_code == 202, response.text
    assert response.json()["data"]["accepted"] == 1_000
    await settle()
    assert await balance(client, sender) == "9000.00"
    assert [await balance(client, r) for r in recipients] == ["200.00"] * 5


async def test_api_keys_need_the_transfer_permission_and_see_only_their_batches(
    client: httpx.AsyncClient, sign_in: SignIn, create_key: CreateKey
) -> None:
    sender = await sign_in(fund_minor=10_000)
    stranger = await sign_in()
    writer = key_headers((await create_key(sender, ["transfer", "read"]))["api_key"])
    reader = key_headers((await create_key(sender, ["read"]))["api_key"])

    refused = await post_batch(client, reader, "independent", [item(stranger, "1.00")])
    accepted = await post_batch(client, writer, "independent", [item(stranger, "1.00")])

    assert refused.status_code == 403
    assert accepted.status_code == 202, accepted.text
    batch_id = accepted.json()["data"]["batch_id"]
    assert (await client.get(f"{BATCH}/{batch_id}", headers=reader)).status_code == 200
    hidden = await client.get(f"{BATCH}/{batch_id}", headers=stranger.headers)
    assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "batch_not_found")
