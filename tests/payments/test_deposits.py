"""Deposits through the sandbox: the checkout page, signed webhooks into the inbox, history,
idempotency, and every way a webhook can be wrong."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from coffer.fees.service import PERIOD, charge_due
from coffer.kit.clock import utcnow
from coffer.models import Deposit, Wallet, WalletStatus
from coffer.payments import sandbox_repository
from coffer.payments.deposits import DepositStart, _open, start_timeout
from tests.fixtures.http import API, Caller
from tests.payments.conftest import CALLBACK, Payments, charge_event

SignIn = Callable[..., Awaitable[Caller]]


async def test_sandbox_deposit_credits_the_wallet_after_paying_on_the_checkout_page(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in()
    started = await payments.deposit(caller, "5000.00")
    assert started.status_code == 201, started.text
    data = started.json()["data"]
    assert data["amount"] == "5000.00"
    assert data["currency"] == "NGN"
    assert data["provider"] == "sandbox"
    reference = data["reference"]
    assert data["authorization_url"].endswith(f"/sandbox/checkout/{reference}")
    assert (await payments.history(caller, reference))["status"] == "pending"

    page = await payments.client.get(f"/sandbox/checkout/{reference}")
    assert page.status_code == 200
    assert "5000.00 NGN" in page.text
    assert f"/sandbox/checkout/{reference}/pay" in page.text
    assert await payments.balance(caller) == "0.00"

    paid = await payments.choose(reference, "pay")

    assert paid.status_code == 303
    assert paid.headers["location"] == f"{CALLBACK}?reference={reference}"
    assert await payments.balance(caller) == "5000.00"
    row = await payments.history(caller, reference)
    assert (row["type"], row["status"], row["amount"]) == ("deposit", "success", "5000.00")
    status = await payments.deposit_status(caller, reference)
    assert status["status"] == "success"
    assert status["paid_at"] is not None
    (entry,) = await payments.inbox(f"charge.success:{reference}")
    assert (entry.outcome, entry.reason) == ("applied", "deposit_credited")
    await payments.assert_ledger_sound()


async def test_declined_checkout_fails_the_deposit_without_credit(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in()
    reference = await payments.started(caller)

    declined = await payments.choose(reference, "decline")

    assert declined.status_code == 303
    assert await payments.balance(caller) == "0.00"
    row = await payments.history(caller, reference)
    assert (row["status"], row["failure_reason"]) == ("failed", "declined")
    assert (await payments.deposit_status(caller, reference))["status"] == "failed"
    # A second press changes nothing.
    await payments.choose(reference, "pay")
    assert await payments.balance(caller) == "0.00"
    await payments.assert_ledger_sound()


async def test_forged_signature_is_refused_and_nothing_is_stored(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in()
    reference = await payments.started(caller)
    raw, headers = payments.signed(charge_event(reference, 500_000))
    before = await payments.inbox_size()

    for forged in ("0" * 64, "", headers["x-sandbox-signature"].upper()):
        response = await payments.post_webhook(raw, headers | {"x-sandbox-signature": forged})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_signature"

    assert await payments.inbox_size() == before
    assert await payments.balance(caller) == "0.00"


async def test_a_signature_over_a_different_body_is_refused(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in()
    reference = await payments.started(caller, "10.00")
    _, small_headers = payments.signed(charge_event(reference, 1_000))
    raw_large, _ = payments.signed(charge_event(reference, 99_999_900))

    response = await payments.post_webhook(raw_large, small_headers)

    assert response.status_code == 401
    assert await payments.inbox(f"charge.success:{reference}") == []
    assert await payments.balance(caller) == "0.00"


async def test_replayed_webhook_answers_200_and_credits_once(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in()
    reference = await payments.started(caller, "25.00")
    raw, headers = payments.signed(charge_event(reference, 2_500))

    first = await payments.post_webhook(raw, headers)
    again = await payments.post_webhook(raw, headers)

    assert (first.status_code, first.json()) == (200, {"status": True})
    assert (again.status_code, again.json()) == (200, {"status": True})
    assert await payments.balance(caller) == "25.00"
    assert len(await payments.inbox(f"charge.success:{reference}")) == 1
    await payments.assert_ledger_sound()


async def test_a_tampered_amount_never_credits_and_is_kept_for_review(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in()
    reference = await payments.started(caller, "10.00")
    raw, headers = payments.signed(charge_event(reference, 1_000_000))

    response = await payments.post_webhook(raw, headers)

    assert response.status_code == 200
    assert await payments.balance(caller) == "0.00"
    assert await payments.review_reasons(f"charge.success:{reference}") == ["amount_mismatch"]
    assert (await payments.deposit_status(caller, reference))["failure_reason"] == "amount_mismatch"
    await payments.assert_ledger_sound()


async def test_a_wrong_currency_never_credits(payments: Payments, sign_in: SignIn) -> None:
    caller = await sign_in()
    reference = await payments.started(caller, "10.00")
    raw, headers = payments.signed(charge_event(reference, 1_000, currency="USD"))

    await payments.post_webhook(raw, headers)

    assert await payments.balance(caller) == "0.00"
    assert await payments.review_reasons(f"charge.success:{reference}") == ["amount_mismatch"]


async def test_an_unknown_reference_is_kept_for_review(payments: Payments) -> None:
    raw, headers = payments.signed(charge_event("dep-nobody-knows-this", 1_000))

    response = await payments.post_webhook(raw, headers)

    assert response.status_code == 200
    assert await payments.review_reasons("charge.success:dep-nobody-knows-this") == [
        "unknown_deposit"
    ]


async def test_an_event_type_coffer_does_not_use_is_stored_and_ignored(
    payments: Payments,
) -> None:
    raw, headers = payments.signed({"event": "customer.created", "data": {"reference": "c1"}})

    assert (await payments.post_webhook(raw, headers)).status_code == 200

    (entry,) = await payments.inbox("customer.created:c1")
    assert entry.outcome == "ignored"


async def test_the_deposit_status_of_another_user_is_not_found(
    payments: Payments, sign_in: SignIn
) -> None:
    owner, other = await sign_in(), await sign_in()
    reference = await payments.started(owner)

    response = await payments.client.get(
        f"{API}/wallet/deposit/{reference}/status", headers=other.headers
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "deposit_not_found"


async def test_an_idempotent_retry_answers_the_same_deposit(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in()
    key = {"Idempotency-Key": "deposit-retry-1"}

    first = await payments.deposit(caller, "12.00", headers=key)
    again = await payments.deposit(caller, "12.00", headers=key)
    other_body = await payments.deposit(caller, "13.00", headers=key)

    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["data"]["reference"] == first.json()["data"]["reference"]
    assert again.json()["data"]["authorization_url"] == first.json()["data"]["authorization_url"]
    assert other_body.status_code == 422
    assert other_body.json()["error"]["code"] == "idempotency_key_reused"


async def test_a_frozen_wallet_cannot_deposit_but_a_blocked_one_can(
    payments: Payments, sign_in: SignIn
) -> None:
    frozen, blocked = await sign_in(), await sign_in()
    async with payments.database.transaction() as session:
        for caller, status in ((frozen, WalletStatus.FROZEN), (blocked, WalletStatus.BLOCKED)):
            await session.execute(
                update(Wallet).where(Wallet.number == caller.wallet_number).values(status=status)
            )

    refused = await payments.deposit(frozen)
    allowed = await payments.deposit(blocked)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "wallet_not_active"
    assert "frozen" in refused.json()["message"]
    assert allowed.status_code == 201


async def test_an_api_key_needs_the_deposit_permission(
    payments: Payments, sign_in: SignIn, create_key: Callable[..., Awaitable[dict[str, str]]]
) -> None:
    caller = await sign_in()
    reader = await create_key(caller, ["read"])
    depositor = await create_key(caller, ["deposit"])
    body = {"amount": "5.00"}

    denied = await payments.client.post(
        f"{API}/wallet/deposit", json=body, headers={"x-api-key": reader["api_key"]}
    )
    allowed = await payments.client.post(
        f"{API}/wallet/deposit", json=body, headers={"x-api-key": depositor["api_key"]}
    )

    assert denied.status_code == 403
    assert allowed.status_code == 201


async def test_saved_card_is_charged_without_a_redirect(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in()
    first = await payments.started(caller, "10.00")
    await payments.choose(first, "pay", remember=True)
    cards = (await payments.client.get(f"{API}/cards", headers=caller.headers)).json()["data"]
    assert [(c["last4"], c["brand"]) for c in cards] == [("4242", "visa")]

    charged = await payments.deposit(caller, "7.50", saved_card_id=cards[0]["id"])

    assert charged.status_code == 201, charged.text
    assert charged.json()["data"]["authorization_url"] is None
    assert charged.json()["data"]["status"] == "success"
    assert await payments.balance(caller) == "17.50"
    reference = charged.json()["data"]["reference"]
    assert (await payments.history(caller, reference))["status"] == "success"
    # Paying with the same card again keeps one saved card.
    again = await payments.started(caller, "1.00")
    await payments.choose(again, "pay", remember=True)
    cards = (await payments.client.get(f"{API}/cards", headers=caller.headers)).json()["data"]
    assert len(cards) == 1
    await payments.assert_ledger_sound()


async def test_a_deleted_or_foreign_card_cannot_be_charged(
    payments: Payments, sign_in: SignIn
) -> None:
    owner, other = await sign_in(), await sign_in()
    reference = await payments.started(owner, "1.00")
    await payments.choose(reference, "pay", remember=True)
    (card,) = (await payments.client.get(f"{API}/cards", headers=owner.headers)).json()["data"]

    foreign = await payments.deposit(other, "1.00", saved_card_id=card["id"])
    deleted = await payments.client.delete(f"{API}/cards/{card['id']}", headers=owner.headers)
    after_delete = await payments.deposit(owner, "1.00", saved_card_id=card["id"])

    assert foreign.status_code == 404
    assert deleted.status_code == 200
    assert after_delete.status_code == 404
    assert after_delete.json()["error"]["code"] == "card_not_found"


async def test_an_oversized_or_malformed_webhook_is_refused_unstored(payments: Payments) -> None:
    before = await payments.inbox_size()
    huge = b"{" + b" " * (1024 * 1024) + b"}"
    malformed = b'{"event": "charge.success", "data": {"reference": "r"}}'

    too_large = await payments.post_webhook(huge, payments.signed_headers(huge))
    not_an_event = await payments.post_webhook(malformed, payments.signed_headers(malformed))

    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "payload_too_large"
    assert not_an_event.status_code == 400
    assert not_an_event.json()["error"]["code"] == "malformed_webhook"
    assert await payments.inbox_size() == before


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_concurrent_retries_with_one_key_open_one_deposit(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in()
    key = {"Idempotency-Key": "deposit-race"}

    responses = await asyncio.gather(
        *(payments.deposit(caller, "9.00", headers=key) for _ in range(10))
    )

    assert {r.status_code for r in responses} <= {201, 409}
    references = {r.json()["data"]["reference"] for r in responses if r.status_code == 201}
    assert len(references) == 1
    async with payments.database.transaction() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Deposit).where(Deposit.user_id == caller.user_id)
        )
    assert stored == 1


async def test_with_user_deposits_off_only_admins_put_money_in(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in()
    payments.settings.user_deposits_enabled = False

    refused = await payments.deposit(caller)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "user_deposits_disabled"
    async with payments.database.transaction() as session:
        started = await session.scalar(
            select(func.count()).select_from(Deposit).where(Deposit.user_id == caller.user_id)
        )
    assert started == 0


async def test_a_deposit_into_a_blocked_wallet_pays_the_owed_fee_and_unblocks_it(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in()
    async with payments.database.transaction() as session:
        # Opened a period and a minute ago (the clock stays put: tokens are checked on it).
        await session.execute(
            update(Wallet)
            .where(Wallet.number == caller.wallet_number)
            .values(created_at=utcnow() - PERIOD - timedelta(minutes=1))
        )
    async with payments.database.transaction() as session:
        await charge_due(session, {"NGN": Decimal("200.00")}, after_wallet_id=0, limit=100_000)
    async with payments.database.transaction() as session:
        wallet = await session.scalar(select(Wallet).where(Wallet.number == caller.wallet_number))
    assert wallet is not None
    assert wallet.status == WalletStatus.BLOCKED

    reference = await payments.started(caller, "500.00")
    assert (await payments.choose(reference)).status_code == 303

    async with payments.database.transaction() as session:
        status = await session.scalar(select(Wallet.status).where(Wallet.id == wallet.id))
    assert status == WalletStatus.ACTIVE
    assert await payments.balance(caller) == "300.00"
    await payments.assert_ledger_sound()


async def test_a_retry_after_a_start_cut_off_before_its_checkout_opens_a_fresh_deposit(
    payments: Payments, sign_in: SignIn
) -> None:
    """What a start cut off between its units of work leaves (its process killed, or the
    database gone while the checkout was stored): a deposit opened with its key and no
    checkout. While a start could still be running a retry is told to wait; after that it
    fails the orphan, frees its key and starts a deposit with a checkout."""
    caller = await sign_in()
    key = "deposit-cut-off"
    start = DepositStart(
        user_id=caller.user_id,
        amount="12.00",
        currency=None,
        callback_url=CALLBACK,
        saved_card_id=None,
        idempotency_key=key,
    )
    async with payments.database.transaction() as session:
        orphan = (await _open(session, payments.settings, payments.providers, start)).deposit
    headers = {"Idempotency-Key": key}

    waiting = await payments.deposit(caller, "12.00", headers=headers)
    assert waiting.status_code == 409
    assert waiting.json()["error"]["code"] == "idempotency_key_in_use"

    async with payments.database.transaction() as session:
        aged = utcnow() - start_timeout(payments.settings) - timedelta(seconds=1)
        await session.execute(
            update(Deposit).where(Deposit.id == orphan.id).values(created_at=aged)
        )
    other_body = await payments.deposit(caller, "13.00", headers=headers)
    fresh = await payments.deposit(caller, "12.00", headers=headers)
    again = await payments.deposit(caller, "12.00", headers=headers)

    assert other_body.status_code == 422
    assert fresh.status_code == 201, fresh.text
    reference = fresh.json()["data"]["reference"]
    assert reference != orphan.reference
    assert fresh.json()["data"]["authorization_url"].endswith(f"/sandbox/checkout/{reference}")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["data"]["reference"] == reference
    failed = await payments.deposit_status(caller, orphan.reference)
    assert (failed["status"], failed["failure_reason"]) == ("failed", "start_interrupted")
    assert (await payments.history(caller, orphan.reference))["status"] == "failed"
    await payments.choose(reference, "pay")
    assert await payments.balance(caller) == "12.00"
    await payments.assert_ledger_sound()


async def test_pressing_pay_again_delivers_a_webhook_the_first_press_never_sent(
    payments: Payments, sign_in: SignIn
) -> None:
    """A first Pay whose choice was stored but whose delivery was cut off (the database went
    away in between) leaves the charge paid and the deposit pending: the payer's retry
    delivers, and a third press changes nothing."""
    caller = await sign_in()
    reference = await payments.started(caller, "21.00")
    async with payments.database.transaction() as session:
        assert await sandbox_repository.settle_sandbox_charge(
            session, reference, "success", paid_at=utcnow(), authorization_code=None
        )
    assert await payments.balance(caller) == "0.00"

    again = await payments.choose(reference, "pay")
    third = await payments.choose(reference, "pay")
    declined_late = await payments.choose(reference, "decline")

    assert again.status_code == third.status_code == declined_late.status_code == 303
    assert await payments.balance(caller) == "21.00"
    assert (await payments.deposit_status(caller, reference))["status"] == "success"
    (entry,) = await payments.inbox(f"charge.success:{reference}")
    assert (entry.outcome, entry.reason) == ("applied", "deposit_credited")
    assert await payments.inbox(f"charge.failed:{reference}") == []
    await payments.assert_ledger_sound()
