"""The provider registry and the sandbox's signature rules, without a network or a database."""

from __future__ import annotations

from pathlib import Path

import pytest

from coffer.db import Database
from coffer.payments.providers.base import InvalidSignature, PayoutStatus, ProviderName
from coffer.payments.providers.registry import ProviderConfigError, ProviderRegistry
from coffer.payments.providers.sandbox import (
    SIGNATURE_HEADER,
    SandboxProvider,
    payout_outcomes,
    sign,
    webhook_secret,
)
from coffer.settings import Settings
from tests.fixtures.sms import PRODUCTION_SMS

SECRET = "x" * 40
BODY = b'{"event":"charge.success","data":{"reference":"r1","amount":100,"currency":"NGN"}}'


def _registry(tmp_path: Path, **settings: object) -> ProviderRegistry:
    return ProviderRegistry(
        Settings(_env_file=None, **settings), Database(f"sqlite:///{tmp_path / 'x.db'}")
    )


def test_currencies_without_their_own_provider_use_the_default(tmp_path: Path) -> None:
    registry = _registry(tmp_path, provider_by_currency={"usd": "sandbox"})

    assert registry.for_currency("NGN").name is ProviderName.SANDBOX
    assert registry.for_currency("USD").name is ProviderName.SANDBOX


def test_an_unknown_provider_name_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ProviderConfigError, match="unknown payment provider"):
        _registry(tmp_path, payment_provider="paypal")


def test_the_sandbox_is_refused_in_production_unless_allowed(tmp_path: Path) -> None:
    production = {
        "env": "production",
        "secret_key": SECRET,
        "smtp_url": "smtp://mail:25",
        **PRODUCTION_SMS,
    }
    with pytest.raises(ProviderConfigError, match="COFFER_SANDBOX_IN_PRODUCTION"):
        _registry(tmp_path, **production)

    allowed = _registry(tmp_path, **production, sandbox_in_production=True)

    assert allowed.for_currency("NGN").name is ProviderName.SANDBOX


def _sandbox(**settings: object) -> SandboxProvider:
    return SandboxProvider(Settings(_env_file=None, **settings), Database("sqlite://"))


def test_a_production_sandbox_without_a_secret_refuses_every_webhook() -> None:
    sandbox = _sandbox(
        env="production",
        secret_key=SECRET,
        smtp_url="smtp://mail:25",
        sandbox_in_production=True,
        **PRODUCTION_SMS,
    )
    assert webhook_secret(sandbox.settings) is None

    with pytest.raises(InvalidSignature):
        sandbox.verify_and_parse_webhook(BODY, {SIGNATURE_HEADER: ""})


def test_an_empty_configured_secret_refuses_every_webhook() -> None:
    sandbox = _sandbox(sandbox_webhook_secret="")

    with pytest.raises(InvalidSignature):
        sandbox.verify_and_parse_webhook(BODY, {SIGNATURE_HEADER: sign(b"", BODY)})


def test_the_configured_secret_signs_and_a_cut_body_does_not_verify() -> None:
    sandbox = _sandbox(sandbox_webhook_secret="whsec_sandbox")
    signature = sign(b"whsec_sandbox", BODY)

    event = sandbox.verify_and_parse_webhook(BODY, {SIGNATURE_HEADER: signature})

    assert event.event_key == "charge.success:r1"
    assert event.charge is not None
    assert event.charge.amount_minor == 100
    with pytest.raises(InvalidSignature):
        sandbox.verify_and_parse_webhook(BODY[:-1], {SIGNATURE_HEADER: signature})


def test_the_payout_simulator_decides_by_the_last_four_digits() -> None:
    assert payout_outcomes("0000") == (PayoutStatus.FAILED,)
    assert payout_outcomes("9999") == (PayoutStatus.SUCCESS, PayoutStatus.REVERSED)
    assert payout_outcomes("1234") == (PayoutStatus.SUCCESS,)
