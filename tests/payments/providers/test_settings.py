"""Production refuses to start with a provider whose secrets are missing."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from pydantic import ValidationError

from coffer.settings import Settings
from tests.fixtures.sms import PRODUCTION_SMS

PRODUCTION: dict[str, Any] = {
    "_env_file": None,
    "env": "production",
    "secret_key": secrets.token_urlsafe(32),
    "smtp_url": "smtp://127.0.0.1:25",
    **PRODUCTION_SMS,
}


@pytest.mark.parametrize(
    ("provider", "given", "missing"),
    [
        ("paystack", {}, "COFFER_PAYSTACK_SECRET_KEY"),
        ("stripe", {"stripe_webhook_secret": "whsec_x"}, "COFFER_STRIPE_SECRET_KEY"),
        ("stripe", {"stripe_secret_key": "sk_live_x"}, "COFFER_STRIPE_WEBHOOK_SECRET"),
    ],
)
def test_production_refuses_a_provider_without_its_secrets(
    provider: str, given: dict[str, str], missing: str
) -> None:
    with pytest.raises(ValidationError, match=missing):
        Settings(**PRODUCTION, payment_provider=provider, **given)


def test_production_refuses_a_per_currency_provider_without_its_secrets() -> None:
    with pytest.raises(ValidationError, match="COFFER_STRIPE_SECRET_KEY"):
        Settings(
            **PRODUCTION,
            payment_provider="paystack",
            paystack_secret_key="sk_live_x",
            provider_by_currency={"USD": "stripe"},
        )


def test_production_starts_with_the_providers_secrets() -> None:
    paystack = Settings(**PRODUCTION, payment_provider="paystack", paystack_secret_key="sk_live_x")
    stripe = Settings(
        **PRODUCTION,
        payment_provider="stripe",
        stripe_secret_key="sk_live_x",
        stripe_webhook_secret="whsec_x",
    )

    assert paystack.paystack_secret_key.get_secret_value() == "sk_live_x"
    assert stripe.stripe_webhook_secret.get_secret_value() == "whsec_x"


def test_development_starts_without_provider_secrets() -> None:
    assert (
        Settings(_env_file=None, payment_provider="paystack").paystack_secret_key.get_secret_value()
        == ""
    )
