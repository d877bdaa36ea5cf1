"""USD deposits through the real coffer app, Stripe's double and its signed webhooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from coffer.db import Database
from coffer.payments.reconciliation import ReconcileReport
from tests.fixtures.http import Caller
from tests.fixtures.provider_flows import (
    balance,
    deposit_status,
    history,
    ledger_is_sound,
    start_deposit,
)
from tests.fixtures.stripe import StripeDouble

SignIn = Callable[..., Awaitable[Caller]]


async def test_a_stripe_deposit_is_credited_by_checkout_session_completed(
    client: httpx.AsyncClient, sign_in: SignIn, stripe: StripeDouble, app_database: Database
) -> None:
    caller = await sign_in(currency="USD")

    started = await start_deposit(client, caller, "20.00")
    session = stripe.session_for(started["reference"])
    assert (started["provider"], started["authorization_url"]) == ("stripe", session["url"])
    assert (session["amount_total"], session["currency"]) == (2_000, "usd")
    [created] = stripe.requests_to("/v1/checkout/sessions")
    assert created.headers["idempotency-key"] == started["reference"]

    [delivered] = await stripe.pay(session["id"])

    assert delivered.status_code == 200
    assert await deposit_status(client, caller, started["reference"]) == "success"
    assert await balance(client, caller) == "20.00"
    assert await history(client, caller) == [("deposit", "20.00", "success")]
    await ledger_is_sound(app_database)


async def test_a_duplicated_stripe_event_credits_once(
    client: httpx.AsyncClient, sign_in: SignIn, stripe: StripeDouble
) -> None:
    caller = await sign_in(currency="USD")
    reference = (await start_deposit(client, caller, "20.00"))["reference"]
    stripe.webhook_faults.duplicate = True

    deliveries = await stripe.pay(stripe.session_for(reference)["id"])

    assert [delivery.status_code for delivery in deliveries] == [200, 200]
    assert await balance(client, caller) == "20.00"


async def test_a_lost_stripe_event_is_caught_by_retrieving_the_session(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    stripe: StripeDouble,
    reconcile_later: Callable[[], Awaitable[ReconcileReport]],
) -> None:
    caller = await sign_in(currency="USD")
    reference = (await start_deposit(client, caller, "20.00"))["reference"]
    stripe.webhook_faults.lost = True
    await stripe.pay(stripe.session_for(reference)["id"])

    report = await reconcile_later()

    assert report.deposits_settled == 1
    assert await balance(client, caller) == "20.00"


async def test_a_delayed_payment_that_fails_fails_the_deposit(
    client: httpx.AsyncClient, sign_in: SignIn, stripe: StripeDouble
) -> None:
    caller = await sign_in(currency="USD")
    reference = (await start_deposit(client, caller, "20.00"))["reference"]

    deliveries = await stripe.pay_later(stripe.session_for(reference)["id"], succeeds=False)

    assert [delivery.status_code for delivery in deliveries] == [200, 200]
    assert await deposit_status(client, caller, reference) == "failed"
    assert await balance(client, caller) == "0.00"


async def test_an_expired_session_abandons_the_deposit(
    client: httpx.AsyncClient, sign_in: SignIn, stripe: StripeDouble
) -> None:
    caller = await sign_in(currency="USD")
    reference = (await start_deposit(client, caller, "20.00"))["reference"]

    await stripe.expire(stripe.session_for(reference)["id"])

    assert await deposit_status(client, caller, reference) == "abandoned"


async def test_tampered_and_stale_stripe_events_are_refused(
    client: httpx.AsyncClient, sign_in: SignIn, stripe: StripeDouble
) -> None:
    caller = await sign_in(currency="USD")
    reference = (await start_deposit(client, caller, "20.00"))["reference"]
    session_id = stripe.session_for(reference)["id"]
    stripe.webhook_faults.tamper_amount = True
    [tampered] = await stripe.pay(session_id)
    stripe.webhook_faults.tamper_amount = False
    stripe.signature_clock_offset_seconds = -400
    [stale] = await stripe.pay(session_id)

    assert (tampered.status_code, stale.status_code) == (401, 401)
    assert await deposit_status(client, caller, reference) == "pending"
    assert await balance(client, caller) == "0.00"
