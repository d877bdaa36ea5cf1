"""Deposits and withdrawals announce their outcome once, in the transaction that settles them,
however often the provider repeats itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.fixtures.events import events_of
from tests.fixtures.http import API, Caller
from tests.payments.conftest import Payments

SignIn = Callable[..., Awaitable[Caller]]
SUCCEEDS, FAILS, REVERSES = "0123456789", "0123450000", "0123459999"
PAYMENT_TYPES = (
    "deposit.succeeded",
    "deposit.failed",
    "withdrawal.paid",
    "withdrawal.failed",
    "withdrawal.reversed",
)


async def _announced(payments: Payments, caller: Caller) -> list[dict[str, Any]]:
    return await events_of(payments.database, caller.user_id, *PAYMENT_TYPES)


async def test_a_paid_deposit_is_announced_once_with_its_balance(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in()
    reference = await payments.started(caller, "5000.00")
    await payments.choose(reference, "pay")
    await payments.choose(reference, "pay")

    (succeeded,) = await _announced(payments, caller)
    assert succeeded["type"] == "deposit.succeeded"
    assert succeeded["data"] == {
        "amount": "5000.00",
        "currency": "NGN",
        "reference": reference,
        "wallet_number": caller.wallet_number,
        "provider": "sandbox",
    }
    (balance,) = await events_of(payments.database, caller.user_id, "balance.updated")
    assert (balance["data"]["balance"], balance["data"]["cause"]) == ("5000.00", "deposit")


async def test_a_declined_deposit_is_announced_as_failed(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in()
    reference = await payments.started(caller)
    await payments.choose(reference, "decline")

    (failed,) = await _announced(payments, caller)
    assert failed["type"] == "deposit.failed"
    assert (failed["data"]["status"], failed["data"]["failure_reason"]) == ("failed", "declined")
    assert await events_of(payments.database, caller.user_id, "balance.updated") == []


async def _withdraw(payments: Payments, caller: Caller, account: str) -> str:
    destination = await payments.client.post(
        f"{API}/payout-destinations",
        json={"bank_code": "001", "account_number": account},
        headers=caller.headers,
    )
    assert destination.status_code == 201, destination.text
    response = await payments.client.post(
        f"{API}/wallet/withdraw",
        json={"amount": "30.00", "destination_id": destination.json()["data"]["id"]},
        headers=caller.headers,
    )
    assert response.status_code == 202, response.text
    await payments.run_jobs()
    reference: str = response.json()["data"]["reference"]
    return reference


async def test_withdrawal_outcomes_are_announced(payments: Payments, sign_in: SignIn) -> None:
    paid, failed, reversed_ = [await sign_in(fund_minor=10_000) for _ in range(3)]
    paid_reference = await _withdraw(payments, paid, SUCCEEDS)
    await _withdraw(payments, failed, FAILS)
    await _withdraw(payments, reversed_, REVERSES)

    (announced,) = await _announced(payments, paid)
    assert (announced["type"], announced["data"]["reference"]) == (
        "withdrawal.paid",
        paid_reference,
    )
    assert announced["data"]["amount"] == "30.00"
    (announced,) = await _announced(payments, failed)
    assert announced["type"] == "withdrawal.failed"
    assert announced["data"]["failure_reason"] == "sandbox_account_rejected"
    # The sandbox pays this account, then the bank returns the payout.
    paid_then_returned = await _announced(payments, reversed_)
    assert [e["type"] for e in paid_then_returned] == ["withdrawal.paid", "withdrawal.reversed"]
    assert paid_then_returned[1]["data"]["was_paid"] is True
    balances = [
        e["data"]["balance"]
        for e in await events_of(payments.database, failed.user_id, "balance.updated")
    ]
    assert balances == ["100.00", "70.00", "100.00"]
