"""The real coffer app wired to the Paystack and Stripe doubles: NGN through Paystack, USD
and EUR through Stripe, each double delivering its webhooks to coffer's webhook route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from coffer.kit.clock import utcnow
from coffer.payments.providers.registry import providers_for
from coffer.payments.reconciliation import ReconcileReport, reconcile
from coffer.payments.withdrawals import initiate_payout
from coffer.settings import Settings
from tests.fixtures.http import API
from tests.fixtures.paystack import PaystackDouble
from tests.fixtures.provider_double import FAST_RETRIES
from tests.fixtures.stripe import StripeDouble


@pytest.fixture
def app_settings(
    backend: str,
    fresh_database_url: Callable[..., str],
    paystack: PaystackDouble,
    stripe: StripeDouble,
) -> Settings:
    # A database of its own: deposits left pending here belong to providers that other
    # tests' apps do not configure, and their reconciliation passes must not meet them.
    return Settings(
        database_url=fresh_database_url(),
        worker_mode="external",
        database_pool_size=3,
        payment_provider="paystack",
        provider_by_currency={"USD": "stripe", "EUR": "stripe"},
        paystack_secret_key=paystack.secret_key,
        paystack_base_url=paystack.url,
        stripe_secret_key=stripe.secret_key,
        stripe_webhook_secret=stripe.webhook_secret,
        stripe_base_url=stripe.url,
        new_destination_cooldown_seconds=0,
        **FAST_RETRIES,
    )


@pytest.fixture(autouse=True)
def webhooks_to_coffer(
    paystack: PaystackDouble, stripe: StripeDouble, client: httpx.AsyncClient
) -> None:
    paystack.webhook_url, paystack.webhook_client = f"{API}/wallet/paystack/webhook", client
    stripe.webhook_url, stripe.webhook_client = f"{API}/wallet/stripe/webhook", client


@pytest.fixture
def reconcile_later(app: FastAPI) -> Callable[[], Awaitable[ReconcileReport]]:
    """The `payments.reconcile` job, run an hour from now (everything pending is in doubt)."""

    async def run() -> ReconcileReport:
        settings: Settings = app.state.settings
        registry = providers_for(app.state.database, settings)
        return await reconcile(
            app.state.database, settings, registry, now=utcnow() + timedelta(hours=1)
        )

    return run


@pytest.fixture
def pay_out(app: FastAPI) -> Callable[[str], Awaitable[None]]:
    """The `payments.payout` job for one withdrawal (the worker, in-process)."""

    async def run(reference: str) -> None:
        settings: Settings = app.state.settings
        registry = providers_for(app.state.database, settings)
        await initiate_payout(app.state.database, settings, registry, reference)

    return run
