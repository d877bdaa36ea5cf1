"""Payout destinations and withdrawals through the sandbox payout simulator: success, failure,
reversal, reversal after success, success after refund, OTP, limits, keys and 2FA."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pyotp
from sqlalchemy import text, update

from coffer.identity import totp
from coffer.kit.clock import utcnow
from coffer.kit.money import Money
from coffer.models import PayoutDestination, Wallet, WalletStatus
from coffer.payments.withdrawals import initiate_payout
from coffer.wallets import service as wallets
from tests.fixtures.http import API, Caller
from tests.payments.conftest import Payments

SignIn = Callable[..., Awaitable[Caller]]
CreateKey = Callable[..., Awaitable[dict[str, Any]]]
NGN_PER_USD = 1500
SUCCEEDS, FAILS, REVERSES, NEEDS_OTP = "0123456789", "0123450000", "0123459999", "0123451111"


async def _destination(
    payments: Payments, caller: Caller, account: str = SUCCEEDS, **headers: str
) -> dict[str, Any]:
    response = await payments.client.post(
        f"{API}/payout-destinations",
        json={"bank_code": "001", "account_number": account},
        headers=caller.headers | headers,
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def _withdraw(
    payments: Payments,
    caller_headers: dict[str, str],
    destination_id: int,
    amount: str = "30.00",
    **headers: str,
) -> httpx.Response:
    return await payments.client.post(
        f"{API}/wallet/withdraw",
        json={"amount": amount, "destination_id": destination_id},
        headers=caller_headers | headers,
    )


async def _status(payments: Payments, caller: Caller, reference: str) -> dict[str, Any]:
    response = await payments.client.get(
        f"{API}/wallet/withdrawals/{reference}/status", headers=caller.headers
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def _whole_limit(payments: Payments) -> str:
    """The day's withdrawal limit in NGN: it is written in USD, converted at the seeded rate."""
    return f"{payments.settings.daily_withdrawal_limit * NGN_PER_USD:.2f}"


async def _withdrawn(payments: Payments, caller: Caller, account: str) -> str:
    destination = await _destination(payments, caller, account)
    response = await _withdraw(payments, caller.headers, destination["id"])
    assert response.status_code == 202, response.text
    reference: str = response.json()["data"]["reference"]
    assert (await payments.history(caller, reference))["status"] == "pending"
    await payments.run_jobs()
    return reference


async def test_a_withdrawal_is_debited_at_once_and_settled_by_the_payout_webhook(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in(fund_minor=10_000)
    destination = await _destination(payments, caller)
    response = await _withdraw(payments, caller.headers, destination["id"])
    assert response.status_code == 202, response.text
    reference = response.json()["data"]["reference"]
    assert await payments.balance(caller) == "70.00"
    assert (await _status(payments, caller, reference))["status"] == "pending"

    await payments.run_jobs()

    status = await _status(payments, caller, reference)
    assert (status["status"], status["account_last4"]) == ("success", "6789")
    assert await payments.balance(caller) == "70.00"
    row = await payments.history(caller, reference)
    assert (row["type"], row["status"], row["amount"]) == ("withdrawal", "success", "30.00")
    await payments.assert_ledger_sound()


async def test_a_failed_payout_refunds_the_wallet_and_the_daily_limit(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in(fund_minor=100_000_000)
    reference = await _withdrawn(payments, caller, FAILS)

    status = await _status(payments, caller, reference)
    assert (status["status"], status["failure_reason"]) == ("failed", "sandbox_account_rejected")
    assert await payments.balance(caller) == "1000000.00"
    assert (await payments.history(caller, reference))["status"] == "failed"
    # The refund gave the limit back: the whole day's allowance is still there.
    destination = await _destination(payments, caller)
    response = await _withdraw(payments, caller.headers, destination["id"], _whole_limit(payments))
    assert response.status_code == 202, response.text
    await payments.assert_ledger_sound()


async def test_a_reversal_after_success_refunds_once(payments: Payments, sign_in: SignIn) -> None:
    caller = await sign_in(fund_minor=10_000)
    reference = await _withdrawn(payments, caller, REVERSES)

    assert (await _status(payments, caller, reference))["status"] == "reversed"
    assert await payments.balance(caller) == "100.00"
    assert (await payments.history(caller, reference))["status"] == "reversed"
    # Every event redelivered, in any order, changes nothing more.
    for event in ("transfer.success", "transfer.reversed", "transfer.failed"):
        raw, headers = payments.signed(_payout_event(event, reference, 3_000))
        assert (await payments.post_webhook(raw, headers)).status_code == 200
    assert await payments.balance(caller) == "100.00"
    await payments.assert_ledger_sound()


def _payout_event(event: str, reference: str, amount_minor: int) -> dict[str, Any]:
    return {
        "event": event,
        "data": {
            "reference": reference,
            "amount": amount_minor,
            "currency": "NGN",
            "transfer_code": "TRF_manual",
            "status": event.split(".")[1],
            "reason": "bank said so",
            "id": event,
        },
    }


async def test_a_success_after_a_refund_changes_nothing_and_is_kept_for_review(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in(fund_minor=10_000)
    reference = await _withdrawn(payments, caller, FAILS)
    assert await payments.balance(caller) == "100.00"

    raw, headers = payments.signed(_payout_event("transfer.success", reference, 3_000))
    assert (await payments.post_webhook(raw, headers)).status_code == 200

    assert await payments.balance(caller) == "100.00"
    assert (await _status(payments, caller, reference))["status"] == "failed"
    assert await payments.review_reasons(f"transfer.success:{reference}") == [
        "success_after_refund"
    ]
    await payments.assert_ledger_sound()


async def test_a_payout_needing_an_otp_fails_and_refunds(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in(fund_minor=10_000)
    reference = await _withdrawn(payments, caller, NEEDS_OTP)

    status = await _status(payments, caller, reference)
    assert (status["status"], status["failure_reason"]) == ("failed", "payout_requires_otp")
    assert await payments.balance(caller) == "100.00"
    await payments.assert_ledger_sound()


async def test_a_lost_payout_webhook_is_caught_by_reconciliation(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in(fund_minor=10_000)
    destination = await _destination(payments, caller)
    reference = (await _withdraw(payments, caller.headers, destination["id"])).json()["data"][
        "reference"
    ]
    # Only the payout job runs: the provider pays, but its webhook never arrives.
    await initiate_payout(payments.database, payments.settings, payments.providers, reference)
    assert (await _status(payments, caller, reference))["status"] == "processing"
    async with payments.database.transaction() as session:
        await session.execute(
            text("UPDATE sandbox_payouts SET status = 'success' WHERE reference = :r"),
            {"r": reference},
        )

    report = await payments.reconcile(timedelta(seconds=601))

    assert report.withdrawals_settled >= 1
    assert (await _status(payments, caller, reference))["status"] == "success"
    await payments.assert_ledger_sound()


async def test_the_daily_withdrawal_limit_is_enforced(payments: Payments, sign_in: SignIn) -> None:
    caller = await sign_in(fund_minor=100_000_000)
    destination = await _destination(payments, caller)
    first = await _withdraw(payments, caller.headers, destination["id"], _whole_limit(payments))
    second = await _withdraw(payments, caller.headers, destination["id"], "1.00")

    assert first.status_code == 202, first.text
    assert second.status_code == 403
    assert second.json()["error"]["code"] == "daily_limit_exceeded"
    await payments.assert_ledger_sound()


async def test_insufficient_funds_refuse_and_leave_the_limit(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in(fund_minor=1_000)
    destination = await _destination(payments, caller)

    refused = await _withdraw(payments, caller.headers, destination["id"], "10.01")
    allowed = await _withdraw(payments, caller.headers, destination["id"], "10.00")

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "insufficient_funds"
    assert allowed.status_code == 202
    await payments.assert_ledger_sound()


async def test_frozen_blocked_and_closed_wallets_cannot_withdraw(
    payments: Payments, sign_in: SignIn
) -> None:
    for state in (WalletStatus.FROZEN, WalletStatus.BLOCKED, WalletStatus.CLOSED):
        caller = await sign_in(fund_minor=10_000)
        destination = await _destination(payments, caller)
        async with payments.database.transaction() as session:
            await session.execute(
                update(Wallet).where(Wallet.number == caller.wallet_number).values(status=state)
            )

        refused = await _withdraw(payments, caller.headers, destination["id"])

        assert refused.status_code == 403
        assert refused.json()["error"]["details"] == {"wallet_status": state.value}
        assert state.value in refused.json()["message"]
        async with payments.database.transaction() as session:
            wallet = await wallets.find_wallet(session, caller.wallet_number)
            assert await wallets.balance(session, wallet) == Money.of(10_000, "NGN")


async def test_an_idempotent_retry_withdraws_once(payments: Payments, sign_in: SignIn) -> None:
    caller = await sign_in(fund_minor=10_000)
    destination = await _destination(payments, caller)
    key = {"Idempotency-Key": "withdraw-once"}

    first = await _withdraw(payments, caller.headers, destination["id"], **key)
    again = await _withdraw(payments, caller.headers, destination["id"], **key)

    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["data"]["reference"] == first.json()["data"]["reference"]
    assert await payments.balance(caller) == "70.00"


async def test_api_keys_need_withdraw_and_a_destination_past_its_cooldown(
    payments: Payments, sign_in: SignIn, create_key: CreateKey
) -> None:
    caller = await sign_in(fund_minor=10_000)
    destination = await _destination(payments, caller)
    reader = {"x-api-key": (await create_key(caller, ["read"], expiry="1M"))["api_key"]}
    withdrawer = {"x-api-key": (await create_key(caller, ["withdraw"], expiry="1M"))["api_key"]}

    denied = await _withdraw(payments, reader, destination["id"])
    too_new = await _withdraw(payments, withdrawer, destination["id"])
    by_the_user = await _withdraw(payments, caller.headers, destination["id"], "1.00")
    cooldown = timedelta(seconds=payments.settings.new_destination_cooldown_seconds)
    async with payments.database.transaction() as session:
        await session.execute(
            update(PayoutDestination)
            .where(PayoutDestination.id == destination["id"])
            .values(created_at=utcnow() - cooldown - timedelta(seconds=1))
        )
    later = await _withdraw(payments, withdrawer, destination["id"])

    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "permission_denied"
    assert too_new.status_code == 403
    assert too_new.json()["error"]["code"] == "destination_too_new"
    assert by_the_user.status_code == 202
    assert later.status_code == 202, later.text


async def test_destinations_need_a_fresh_code_when_two_factor_is_on(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in(fund_minor=10_000)
    async with payments.database.transaction() as session:
        setup = await totp.begin_setup(session, payments.settings, caller.user_id, caller.email)
        await totp.enable(
            session, payments.settings, caller.user_id, pyotp.TOTP(setup.secret).now()
        )
    fresh = pyotp.TOTP(setup.secret).at(time.time() + 30)

    without = await payments.client.post(
        f"{API}/payout-destinations",
        json={"bank_code": "001", "account_number": SUCCEEDS},
        headers=caller.headers,
    )
    destination = await _destination(payments, caller, **{"X-2FA-Code": fresh})
    withdraw_without = await _withdraw(payments, caller.headers, destination["id"])

    assert without.status_code == 403
    assert without.json()["error"]["code"] == "two_factor_required"
    assert withdraw_without.status_code == 403
    assert withdraw_without.json()["error"]["code"] == "two_factor_required"


async def test_account_numbers_and_card_authorizations_are_encrypted_at_rest(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in()
    destination = await _destination(payments, caller, "0987654321")
    listed = (
        await payments.client.get(f"{API}/payout-destinations", headers=caller.headers)
    ).json()
    assert "0987654321" not in str(listed)
    assert listed["data"][0]["account_last4"] == "4321"
    deposit = await payments.started(caller, "1.00")
    await payments.choose(deposit, "pay", remember=True)
    (card,) = (await payments.client.get(f"{API}/cards", headers=caller.headers)).json()["data"]
    async with payments.database.transaction() as session:
        code = await session.scalar(
            text("SELECT authorization_code FROM sandbox_charges WHERE reference = :r"),
            {"r": deposit},
        )
        destination_row = (
            await session.execute(
                text("SELECT * FROM payout_destinations WHERE id = :i"), {"i": destination["id"]}
            )
        ).one()
        card_row = (
            await session.execute(
                text("SELECT * FROM saved_cards WHERE id = :i"), {"i": card["id"]}
            )
        ).one()

    assert code is not None
    assert code.startswith("AUTH_sbx_")
    assert "0987654321" not in str(tuple(destination_row))
    assert code not in str(tuple(card_row))
    assert destination_row.encryption_key_id == "default"


async def test_adding_a_destination_needs_a_fresh_step_up(
    payments: Payments, sign_in: SignIn, shift_clock: Callable[[timedelta], None]
) -> None:
    caller = await sign_in(fund_minor=10_000)
    shift_clock(timedelta(seconds=payments.settings.step_up_ttl_seconds + 60))

    stale = await payments.client.post(
        f"{API}/payout-destinations",
        json={"bank_code": "001", "account_number": SUCCEEDS},
        headers=caller.headers,
    )

    assert stale.status_code == 403, stale.text
    assert stale.json()["error"]["code"] == "step_up_required"
    assert (await payments.client.get(f"{API}/payout-destinations", headers=caller.headers)).json()[
        "data"
    ] == []
