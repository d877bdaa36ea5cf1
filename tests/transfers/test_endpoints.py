"""Transfer routes through the HTTP API: accept, refuse, settle, status and waiting."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from coffer.db import Database
from coffer.models import Transfer, User, Wallet, WalletStatus
from coffer.wallets import service as wallets
from coffer.wallets.numbers import generate_wallet_number
from tests.fixtures.factories import assert_ledger_sound, fund
from tests.fixtures.http import API, Caller, key_headers

SignIn = Callable[..., Awaitable[Caller]]
CreateKey = Callable[..., Awaitable[dict[str, Any]]]
Settle = Callable[[], Awaitable[None]]


async def balance(client: httpx.AsyncClient, caller: Caller) -> str:
    response = await client.get(f"{API}/wallet/balance", headers=caller.headers)
    return str(response.json()["data"]["balance"])


async def transfer(
    client: httpx.AsyncClient, caller: Caller, body: dict[str, Any], **headers: str
) -> httpx.Response:
    return await client.post(
        f"{API}/wallet/transfer", json=body, headers={**caller.headers, **headers}
    )


async def test_transfer_by_wallet_number_is_accepted_then_completes(
    client: httpx.AsyncClient, sign_in: SignIn, settle: Settle, app_database: Database
) -> None:
    sender = await sign_in(fund_minor=10_000, first_name="Sender")
    recipient = await sign_in(first_name="Recipient")

    response = await transfer(
        client,
        sender,
        {"wallet_number": recipient.wallet_number, "amount": "25.50", "narration": "rent"},
    )
    assert response.status_code == 202, response.text
    accepted = response.json()["data"]
    assert accepted["status"] == "pending"
    assert (accepted["amount"], accepted["currency"]) == ("25.50", "NGN")
    assert accepted["recipient_wallet"] == recipient.wallet_number
    assert "Idempotent-Replayed" not in response.headers
    status_url = f"{API}/wallet/transfer/{accepted['reference']}/status"
    pending = await client.get(status_url, headers=sender.headers)
    assert pending.json()["data"]["status"] == "pending"

    await settle()

    done = (await client.get(status_url, headers=sender.headers)).json()["data"]
    assert done["status"] == "completed"
    assert (done["amount"], done["recipient_wallet"]) == ("25.50", recipient.wallet_number)
    assert done["completed_at"] is not None
    assert done["error"] is None
    assert await balance(client, sender) == "74.50"
    assert await balance(client, recipient) == "25.50"

    sent = await client.get(f"{API}/wallet/transactions", headers=sender.headers)
    (outgoing,) = sent.json()["data"]["transactions"][:1]
    assert (outgoing["type"], outgoing["status"], outgoing["reference"]) == (
        "transfer_out",
        "success",
        accepted["reference"],
    )
    assert outgoing["counterparty"] == {
        "wallet_number": recipient.wallet_number,
        "name": "Recipient User",
    }
    received = await client.get(f"{API}/wallet/transactions", headers=recipient.headers)
    incoming = received.json()["data"]["transactions"][0]
    assert (incoming["type"], incoming["amount"]) == ("transfer_in", "25.50")
    assert incoming["counterparty"]["wallet_number"] == sender.wallet_number
    async with app_database.transaction() as session:
        await assert_ledger_sound(session)


async def test_transfer_by_email_or_phone_with_an_api_key(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    create_key: CreateKey,
    settle: Settle,
    app_database: Database,
) -> None:
    sender, recipient = await sign_in(fund_minor=10_000), await sign_in()
    # A number of its own: the database is shared with other tests, and phones are unique.
    local = f"{secrets.randbelow(10**7):07d}"
    async with app_database.transaction() as session:
        await session.execute(
            update(User).where(User.id == recipient.user_id).values(phone=f"+234803{local}")
        )
    api_key = (await create_key(sender, ["transfer"]))["api_key"]

    for body in (
        {"email": recipient.email.upper(), "amount": 10},
        {"phone": f"+234 803 {local[:3]} {local[3:]}", "amount": "2.5"},
    ):
        response = await client.post(
            f"{API}/wallet/transfer", json=body, headers=key_headers(api_key)
        )
        assert response.status_code == 202, response.text
        assert response.json()["data"]["recipient_wallet"] == recipient.wallet_number
    await settle()
    assert await balance(client, recipient) == "12.50"
    async with app_database.transaction() as session:
        await assert_ledger_sound(session)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"wallet_number": "UNKNOWN", "amount": "1"}, 404, "recipient_not_found"),
        ({"email": "nobody@example.com", "amount": "1"}, 404, "recipient_not_found"),
        ({"email": "not an email", "amount": "1"}, 404, "recipient_not_found"),
        ({"phone": "+2348099999999", "amount": "1"}, 404, "recipient_not_found"),
        ({"wallet_number": "SELF", "amount": "1"}, 400, "cannot_transfer_to_self"),
        ({"wallet_number": "OTHER", "amount": "1000.01"}, 400, "insufficient_funds"),
        ({"wallet_number": "OTHER", "amount": "0"}, 422, "invalid_amount"),
        ({"wallet_number": "OTHER", "amount": "-5"}, 422, "invalid_amount"),
        ({"wallet_number": "OTHER", "amount": "1.001"}, 422, "invalid_amount"),
        ({"wallet_number": "OTHER", "amount": "1e30"}, 422, "invalid_amount"),
        ({"wallet_number": "OTHER", "amount": "NaN"}, 422, "invalid_amount"),
        ({"wallet_number": "OTHER", "amount": True}, 422, "invalid_amount"),
        ({"wallet_number": "1234567890123", "amount": "1"}, 422, "invalid_wallet_number"),
        ({"amount": "1"}, 422, "validation_error"),
        (
            {"wallet_number": "OTHER", "email": "a@example.com", "amount": "1"},
            422,
            "validation_error",
        ),
        ({"wallet_number": "OTHER"}, 422, "validation_error"),
        (
            {"wallet_number": "OTHER", "amount": "1", "narration": "x" * 256},
            422,
            "validation_error",
        ),
        ({"wallet_number": "OTHER", "amount": "1", "memo": "x"}, 422, "validation_error"),
    ],
)
async def test_refused_transfers_name_their_reason(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    app_database: Database,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    sender, other = await sign_in(fund_minor=100_000), await sign_in()
    replacements = {
        "SELF": sender.wallet_number,
        "OTHER": other.wallet_number,
        "UNKNOWN": generate_wallet_number(),
    }
    if body.get("wallet_number") in replacements:
        body = {**body, "wallet_number": replacements[body["wallet_number"]]}
    response = await transfer(client, sender, body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    async with app_database.transaction() as session:
        stored = (
            await session.execute(
                select(func.count())
                .select_from(Transfer)
                .where(Transfer.sender_user_id == sender.user_id)
            )
        ).scalar_one()
    assert stored == 0


@pytest.mark.parametrize(
    ("wallet_status", "code"),
    [(WalletStatus.FROZEN, "wallet_frozen"), (WalletStatus.BLOCKED, "wallet_blocked")],
)
async def test_a_frozen_or_blocked_wallet_cannot_send(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    app_database: Database,
    wallet_status: WalletStatus,
    code: str,
) -> None:
    sender, other = await sign_in(fund_minor=1_000), await sign_in()
    async with app_database.transaction() as session:
        await session.execute(
            update(Wallet).where(Wallet.number == sender.wallet_number).values(status=wallet_status)
        )
    response = await transfer(client, sender, {"wallet_number": other.wallet_number, "amount": 1})
    assert (response.status_code, response.json()["error"]["code"]) == (403, code)


async def test_a_deactivated_user_cannot_send(
    client: httpx.AsyncClient, sign_in: SignIn, app_database: Database
) -> None:
    sender, other = await sign_in(fund_minor=1_000), await sign_in()
    async with app_database.transaction() as session:
        await session.execute(update(User).where(User.id == sender.user_id).values(is_active=False))
    response = await transfer(client, sender, {"wallet_number": other.wallet_number, "amount": 1})
    assert (response.status_code, response.json()["error"]["code"]) == (403, "account_inactive")


async def test_a_transfer_that_fails_in_processing_reports_why_and_when(
    client: httpx.AsyncClient, sign_in: SignIn, settle: Settle, app_database: Database
) -> None:
    sender, other = await sign_in(fund_minor=1_000), await sign_in()
    response = await transfer(client, sender, {"wallet_number": other.wallet_number, "amount": 5})
    reference = response.json()["data"]["reference"]
    async with app_database.transaction() as session:
        await session.execute(
            update(Wallet)
            .where(Wallet.number == sender.wallet_number)
            .values(status=WalletStatus.FROZEN)
        )
    await settle()
    status = await client.get(f"{API}/wallet/transfer/{reference}/status", headers=sender.headers)
    data = status.json()["data"]
    assert (data["status"], data["error"], data["completed_at"]) == (
        "failed",
        "wallet_frozen",
        None,
    )
    assert data["failed_at"] is not None
    history = await client.get(
        f"{API}/wallet/transactions", params={"status": "failed"}, headers=sender.headers
    )
    (failed,) = history.json()["data"]["transactions"]
    assert (failed["reference"], failed["failure_reason"]) == (reference, "wallet_frozen")
    assert await balance(client, other) == "0.00"
    async with app_database.transaction() as session:
        await assert_ledger_sound(session)


async def test_transfer_from_a_named_wallet_uses_that_wallet(
    client: httpx.AsyncClient, sign_in: SignIn, settle: Settle, app_database: Database
) -> None:
    sender, recipient = await sign_in(), await sign_in()
    opened = []
    for caller in (sender, recipient):
        response = await client.post(
            f"{API}/wallets", json={"currency": "USD"}, headers=caller.headers
        )
        opened.append(response.json()["data"]["wallet_number"])
    sender_usd, recipient_usd = opened
    async with app_database.transaction() as session:
        await fund(session, await wallets.find_wallet(session, sender_usd), 5_000)

    response = await client.post(
        f"{API}/wallets/{sender_usd}/transfer",
        json={"wallet_number": recipient_usd, "amount": "12.34"},
        headers=sender.headers,
    )
    assert response.status_code == 202, response.text
    assert response.json()["data"]["currency"] == "USD"
    await settle()
    theirs = await client.get(f"{API}/wallets/{recipient_usd}", headers=recipient.headers)
    assert theirs.json()["data"]["balance"] == "12.34"
    mine = await client.get(f"{API}/wallets/{sender_usd}", headers=sender.headers)
    assert mine.json()["data"]["balance"] == "37.66"
    assert await balance(client, sender) == "0.00"

    stolen = await client.post(
        f"{API}/wallets/{sender_usd}/transfer",
        json={"wallet_number": recipient_usd, "amount": "1"},
        headers=recipient.headers,
    )
    assert (stolen.status_code, stolen.json()["error"]["code"]) == (404, "wallet_not_found")
    async with app_database.transaction() as session:
        await assert_ledger_sound(session)


async def test_another_users_transfer_status_is_404(
    client: httpx.AsyncClient, sign_in: SignIn, create_key: CreateKey
) -> None:
    sender, other = await sign_in(fund_minor=1_000), await sign_in()
    response = await transfer(client, sender, {"wallet_number": other.wallet_number, "amount": 1})
    url = f"{API}/wallet/transfer/{response.json()['data']['reference']}/status"
    other_key = (await create_key(other, ["read"]))["api_key"]
    for headers in (other.headers, key_headers(other_key)):
        refused = await client.get(url, headers=headers)
        assert (refused.status_code, refused.json()["error"]["code"]) == (404, "transfer_not_found")
    unknown = await client.get(f"{API}/wallet/transfer/TRF_NOPE/status", headers=sender.headers)
    assert unknown.status_code == 404
    too_long = await client.get(f"{API}/wallet/transfer/{'x' * 65}/status", headers=sender.headers)
    assert too_long.status_code == 422


async def test_prefer_wait_answers_once_the_transfer_settles(
    client: httpx.AsyncClient, sign_in: SignIn, settle: Settle
) -> None:
    sender, other = await sign_in(fund_minor=1_000), await sign_in()
    response = await transfer(client, sender, {"wallet_number": other.wallet_number, "amount": 3})
    url = f"{API}/wallet/transfer/{response.json()['data']['reference']}/status"

    waited, _ = await asyncio.gather(
        client.get(url, headers={**sender.headers, "Prefer": "respond-async, wait=10"}),
        settle(),
    )
    assert waited.json()["data"]["status"] == "completed"
    assert waited.headers["Preference-Applied"] == "wait=10"


async def test_waiting_clients_hold_no_connection_or_transaction(
    client: httpx.AsyncClient, sign_in: SignIn
) -> None:
    """Six clients wait two seconds each on an app with three connections; were a waiting
    client holding one (or SQLite's write lock), they would queue and take twice as long."""
    sender, other = await sign_in(fund_minor=1_000), await sign_in()
    urls = []
    for _ in range(6):
        response = await transfer(
            client, sender, {"wallet_number": other.wallet_number, "amount": 1}
        )
        urls.append(f"{API}/wallet/transfer/{response.json()['data']['reference']}/status")

    started = time.monotonic()
    answers = await asyncio.gather(
        *(client.get(url, headers={**sender.headers, "Prefer": "wait=2"}) for url in urls)
    )
    elapsed = time.monotonic() - started
    assert [a.json()["data"]["status"] for a in answers] == ["pending"] * 6
    assert 2 <= elapsed < 3.5


async def test_prefer_wait_is_capped_at_ten_seconds_and_ignored_when_unreadable(
    client: httpx.AsyncClient, sign_in: SignIn, settle: Settle
) -> None:
    sender, other = await sign_in(fund_minor=1_000), await sign_in()
    response = await transfer(client, sender, {"wallet_number": other.wallet_number, "amount": 1})
    url = f"{API}/wallet/transfer/{response.json()['data']['reference']}/status"
    await settle()
    capped = await client.get(url, headers={**sender.headers, "Prefer": "wait=600"})
    assert capped.headers["Preference-Applied"] == "wait=10"
    assert capped.json()["data"]["status"] == "completed"
    ignored = await client.get(url, headers={**sender.headers, "Prefer": "wait=soon"})
    assert ignored.status_code == 200
    assert "Preference-Applied" not in ignored.headers
