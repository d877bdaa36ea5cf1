"""Deposits and withdrawals through the real coffer app, Paystack's double and its webhooks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from coffer.db import Database
from coffer.payments.reconciliation import ReconcileReport
from tests.fixtures.http import API, Caller
from tests.fixtures.paystack import PaystackDouble
from tests.fixtures.provider_flows import (
    balance,
    deposit_status,
    history,
    ledger_is_sound,
    start_deposit,
)

SignIn = Callable[..., Awaitable[Caller]]


async def test_a_paystack_deposit_is_credited_by_its_webhook(
    client: httpx.AsyncClient, sign_in: SignIn, paystack: PaystackDouble, app_database: Database
) -> None:
    caller = await sign_in()

    started = await start_deposit(client, caller)
    reference = started["reference"]
    row = paystack.transactions[reference]
    assert started["provider"] == "paystack"
    assert started["authorization_url"] == f"https://checkout.paystack.com/{row['access_code']}"
    assert (row["amount"], row["currency"], row["email"]) == (500_000, "NGN", caller.email)
    assert await deposit_status(client, caller, reference) == "pending"

    [delivered] = await paystack.pay(reference)

    assert delivered.status_code == 200
    assert await deposit_status(client, caller, reference) == "success"
    assert await balance(client, caller) == "5000.00"
    assert await history(client, caller) == [("deposit", "5000.00", "success")]
    await ledger_is_sound(app_database)


async def test_duplicate_and_replayed_deliveries_credit_once(
    client: httpx.AsyncClient, sign_in: SignIn, paystack: PaystackDouble
) -> None:
    caller = await sign_in()
    reference = (await start_deposit(client, caller))["reference"]
    paystack.webhook_faults.duplicate = True

    first, second = await paystack.pay(reference)
    replay = await paystack.redeliver(first)

    assert [d.status_code for d in (first, second, replay)] == [200, 200, 200]
    assert await balance(client, caller) == "5000.00"
    assert await history(client, caller) == [("deposit", "5000.00", "success")]


async def test_concurrent_copies_of_one_delivery_credit_once(
    client: httpx.AsyncClient, sign_in: SignIn, paystack: PaystackDouble, app_database: Database
) -> None:
    caller = await sign_in()
    reference = (await start_deposit(client, caller))["reference"]
    paystack.webhook_faults.delayed = True
    await paystack.pay(reference)
    [held] = paystack.held

    copies = await asyncio.gather(*(paystack.redeliver(held) for _ in range(6)))

    assert [copy.status_code for copy in copies] == [200] * 6
    assert await balance(client, caller) == "5000.00"
    await ledger_is_sound(app_database)


async def test_out_of_order_deliveries_credit_each_deposit_once(
    client: httpx.AsyncClient, sign_in: SignIn, paystack: PaystackDouble, app_database: Database
) -> None:
    caller = await sign_in()
    early = (await start_deposit(client, caller, "100.00", key="dep-1"))["reference"]
    late = (await start_deposit(client, caller, "250.00", key="dep-2"))["reference"]
    paystack.webhook_faults.out_of_order = True

    assert await paystack.pay(early) == []
    swapped = await paystack.pay(late)

    assert [delivery.status_code for delivery in swapped] == [200, 200]
    assert late.encode() in swapped[0].body
    assert early.encode() in swapped[1].body
    assert await balance(client, caller) == "350.00"
    await ledger_is_sound(app_database)


async def test_a_delayed_webhook_credits_when_it_arrives(
    client: httpx.AsyncClient, sign_in: SignIn, paystack: PaystackDouble
) -> None:
    caller = await sign_in()
    reference = (await start_deposit(client, caller))["reference"]
    paystack.webhook_faults.delayed = True
    await paystack.pay(reference)
    assert await balance(client, caller) == "0.00"

    [delivered] = await paystack.release_held()

    assert delivered.status_code == 200
    assert await balance(client, caller) == "5000.00"


async def test_a_lost_webhook_is_caught_by_reconciliation_and_a_late_one_changes_nothing(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    paystack: PaystackDouble,
    reconcile_later: Callable[[], Awaitable[ReconcileReport]],
) -> None:
    caller = await sign_in()
    reference = (await start_deposit(client, caller))["reference"]
    paystack.webhook_faults.lost = True
    await paystack.pay(reference)
    assert await deposit_status(client, caller, reference) == "pending"

    report = await reconcile_later()

    assert report.deposits_settled == 1
    assert await deposit_status(client, caller, reference) == "success"
    assert await balance(client, caller) == "5000.00"
    late = await paystack.redeliver(paystack.lost[0])
    assert late.status_code == 200
    assert await balance(client, caller) == "5000.00"


async def test_a_tampered_amount_is_refused_and_credits_nothing(
    client: httpx.AsyncClient, sign_in: SignIn, paystack: PaystackDouble
) -> None:
    caller = await sign_in()
    reference = (await start_deposit(client, caller))["reference"]
    paystack.webhook_faults.tamper_amount = True

    [delivered] = await paystack.pay(reference)

    assert delivered.status_code == 401
    assert delivered.headers["x-paystack-signature"]
    assert await deposit_status(client, caller, reference) == "pending"
    assert await balance(client, caller) == "0.00"


async def test_a_signed_charge_for_another_amount_is_never_credited(
    client: httpx.AsyncClient, sign_in: SignIn, paystack: PaystackDouble, app_database: Database
) -> None:
    caller = await sign_in()
    reference = (await start_deposit(client, caller))["reference"]

    [delivered] = await paystack.pay(reference, amount_minor=5_000_000)

    assert delivered.status_code == 200
    assert await deposit_status(client, caller, reference) == "failed"
    assert await balance(client, caller) == "0.00"
    await ledger_is_sound(app_database)


async def test_a_failed_charge_found_by_reconciliation_fails_the_deposit(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    paystack: PaystackDouble,
    reconcile_later: Callable[[], Awaitable[ReconcileReport]],
) -> None:
    caller = await sign_in()
    reference = (await start_deposit(client, caller))["reference"]
    paystack.fail(reference)

    await reconcile_later()

    assert await deposit_status(client, caller, reference) == "failed"
    assert await history(client, caller) == [("deposit", "5000.00", "failed")]


async def test_paystack_down_at_initialize_is_a_503_and_credits_nothing(
    client: httpx.AsyncClient, sign_in: SignIn, paystack: PaystackDouble
) -> None:
    caller = await sign_in()
    paystack.faults.server_errors = 3

    response = await client.post(
        f"{API}/wallet/deposit",
        json={"amount": "10.00"},
        headers={**caller.headers, "Idempotency-Key": "dep-down"},
    )

    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "provider_unavailable"
    assert len(paystack.requests_to("/transaction/initialize")) == 3


# --- Withdrawals ---------------------------------------------------------------------------


async def add_destination(client: httpx.AsyncClient, caller: Caller) -> int:
    response = await client.post(
        f"{API}/payout-destinations",
        json={"bank_code": "058", "account_number": "0123456789"},
        headers=caller.headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["account_name"] == "ADA LOVELACE"
    destination_id: int = response.json()["data"]["id"]
    return destination_id


async def withdraw(client: httpx.AsyncClient, caller: Caller, amount: str = "40.00") -> str:
    destination_id = await add_destination(client, caller)
    response = await client.post(
        f"{API}/wallet/withdraw",
        json={"amount": amount, "destination_id": destination_id},
        headers={**caller.headers, "Idempotency-Key": "wd-1"},
    )
    assert response.status_code == 202, response.text
    reference: str = response.json()["data"]["reference"]
    return reference


async def withdrawal_status(client: httpx.AsyncClient, caller: Caller, reference: str) -> str:
    response = await client.get(
        f"{API}/wallet/withdrawals/{reference}/status", headers=caller.headers
    )
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["status"])


async def test_a_withdrawal_settles_on_transfer_success(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    paystack: PaystackDouble,
    pay_out: Callable[[str], Awaitable[None]],
    app_database: Database,
) -> None:
    caller = await sign_in(fund_minor=10_000)
    reference = await withdraw(client, caller)
    assert await balance(client, caller) == "60.00"

    await pay_out(reference)
    transfer = paystack.transfers[reference]
    assert (transfer["amount"], transfer["currency"]) == (4_000, "NGN")
    assert await withdrawal_status(client, caller, reference) == "processing"
    [delivered] = await paystack.settle_transfer(reference, "success")

    assert delivered.status_code == 200
    assert await withdrawal_status(client, caller, reference) == "success"
    assert await balance(client, caller) == "60.00"
    await ledger_is_sound(app_database)


@pytest.mark.parametrize("outcome", ["failed", "reversed"])
async def test_a_failed_or_reversed_transfer_refunds_the_wallet_once(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    paystack: PaystackDouble,
    pay_out: Callable[[str], Awaitable[None]],
    app_database: Database,
    outcome: str,
) -> None:
    caller = await sign_in(fund_minor=10_000)
    reference = await withdraw(client, caller)
    await pay_out(reference)
    paystack.webhook_faults.duplicate = True

    await paystack.settle_transfer(reference, outcome)

    assert await withdrawal_status(client, caller, reference) == outcome
    assert await balance(client, caller) == "100.00"
    await ledger_is_sound(app_database)


async def test_a_reversal_after_success_refunds_the_wallet(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    paystack: PaystackDouble,
    pay_out: Callable[[str], Awaitable[None]],
    app_database: Database,
) -> None:
    caller = await sign_in(fund_minor=10_000)
    reference = await withdraw(client, caller)
    await pay_out(reference)
    await paystack.settle_transfer(reference, "success")
    assert await balance(client, caller) == "60.00"

    await paystack.settle_transfer(reference, "reversed")

    assert await withdrawal_status(client, caller, reference) == "reversed"
    assert await balance(client, caller) == "100.00"
    await ledger_is_sound(app_database)


async def test_a_transfer_asking_for_an_otp_fails_and_refunds(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    paystack: PaystackDouble,
    pay_out: Callable[[str], Awaitable[None]],
    app_database: Database,
) -> None:
    caller = await sign_in(fund_minor=10_000)
    paystack.otp_required = True
    reference = await withdraw(client, caller)

    await pay_out(reference)

    assert paystack.transfers[reference]["status"] == "otp"
    assert await withdrawal_status(client, caller, reference) == "failed"
    assert await balance(client, caller) == "100.00"
    await ledger_is_sound(app_database)
