"""StripeProvider against the Stripe double: Checkout Sessions over real local HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from coffer.payments.providers.base import (
    ChargeStatus,
    DepositRequest,
    InvalidSignature,
    PayoutRequest,
    PayoutsNotSupported,
    ProviderError,
    ProviderName,
    ProviderUnavailable,
    SavedCardsNotSupported,
    UnknownProviderReference,
    WebhookKind,
)
from coffer.payments.providers.stripe import StripeProvider, signature_of, verify_signature
from coffer.settings import Settings
from tests.fixtures.provider_double import FAST_RETRIES, WebhookReceiver
from tests.fixtures.stripe import StripeDouble, stripe_signature

VECTOR_SECRET = SecretStr("whsec_test_secret")
VECTOR_BODY = b'{"id":"evt_test","object":"event","type":"checkout.session.completed"}'
VECTOR_V1 = "9b19c30bb5f6198a9128346b4849a56c6c32857a47889eed5b47c5f30823e7dc"
VECTOR_T = 1_700_000_000


def provider_for(double: StripeDouble, **overrides: Any) -> StripeProvider:
    settings = Settings(
        stripe_secret_key=double.secret_key,
        stripe_webhook_secret=double.webhook_secret,
        stripe_base_url=double.url,
        **{**FAST_RETRIES, **overrides},
    )
    return StripeProvider(settings)


@pytest.fixture
async def provider(stripe: StripeDouble) -> AsyncIterator[StripeProvider]:
    client = provider_for(stripe)
    yield client
    await client.aclose()


@pytest.fixture
def receiver(stripe: StripeDouble, provider: StripeProvider) -> WebhookReceiver:
    hooks = WebhookReceiver(provider)
    stripe.webhook_url, stripe.webhook_client = "/hook", hooks.client()
    return hooks


def deposit(reference: str = "dep-0001", amount_minor: int = 2_000) -> DepositRequest:
    return DepositRequest(
        reference=reference,
        amount_minor=amount_minor,
        currency="USD",
        email="ada@example.com",
        callback_url="https://wallet.example/deposits/done",
        metadata={"user": "u-1"},
    )


async def test_initialize_opens_a_checkout_session_with_our_reference(
    stripe: StripeDouble, provider: StripeProvider
) -> None:
    checkout = await provider.initialize_deposit(deposit())

    [sent] = stripe.requests_to("/v1/checkout/sessions")
    form = sent.form()
    assert sent.headers["idempotency-key"] == "dep-0001"
    assert sent.headers["authorization"] == f"Bearer {stripe.secret_key}"
    assert {name: form[name] for name in form if name.startswith("line_items")} == {
        "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][product_data][name]": "Wallet deposit",
        "line_items[0][price_data][unit_amount]": "2000",
        "line_items[0][quantity]": "1",
    }
    assert (form["mode"], form["client_reference_id"], form["metadata[reference]"]) == (
        "payment",
        "dep-0001",
        "dep-0001",
    )
    assert form["metadata[user]"] == "u-1"
    assert form["success_url"] == (
        "https://wallet.example/deposits/done?reference=dep-0001&session_id={CHECKOUT_SESSION_ID}"
    )
    assert form["cancel_url"].endswith("?reference=dep-0001&cancelled=true")
    session = stripe.session_for("dep-0001")
    assert checkout.provider_reference == session["id"]
    assert checkout.provider_reference.startswith("cs_test_")
    assert checkout.authorization_url == session["url"]


async def test_a_retried_initialize_gets_the_same_session(
    stripe: StripeDouble, provider: StripeProvider
) -> None:
    first = await provider.initialize_deposit(deposit())
    stripe.faults.server_errors = 1

    again = await provider.initialize_deposit(deposit())

    assert again == first
    assert len(stripe.sessions) == 1
    assert len(stripe.requests_to("/v1/checkout/sessions")) == 3


async def test_the_same_reference_with_another_amount_is_refused_once(
    stripe: StripeDouble, provider: StripeProvider
) -> None:
    await provider.initialize_deposit(deposit())

    with pytest.raises(ProviderError, match="same parameters"):
        await provider.initialize_deposit(deposit(amount_minor=9_999))

    assert len(stripe.requests_to("/v1/checkout/sessions")) == 2


async def test_server_errors_and_timeouts_are_retried_then_unavailable(
    stripe: StripeDouble, provider: StripeProvider
) -> None:
    stripe.faults.server_errors, stripe.faults.stalls = 1, 1
    checkout = await provider.initialize_deposit(deposit())
    assert checkout.provider_reference
    assert len(stripe.requests) == 3

    stripe.faults.server_errors = 3
    with pytest.raises(ProviderUnavailable, match="HTTP 503"):
        await provider.verify_deposit("dep-0001", checkout.provider_reference)
    assert len(stripe.requests) == 6


async def test_a_wrong_key_is_refused_without_retry(stripe: StripeDouble) -> None:
    client = provider_for(stripe)
    stripe.secret_key = "sk_test_rotated"
    try:
        with pytest.raises(ProviderError, match="Invalid API Key"):
            await client.initialize_deposit(deposit())
    finally:
        await client.aclose()
    assert len(stripe.requests) == 1


async def test_verify_follows_the_session(
    stripe: StripeDouble, provider: StripeProvider, receiver: WebhookReceiver
) -> None:
    paid = await provider.initialize_deposit(deposit("dep-paid"))
    expired = await provider.initialize_deposit(deposit("dep-expired"))
    open_one = await provider.initialize_deposit(deposit("dep-open"))
    await stripe.pay(paid.provider_reference)
    await stripe.expire(expired.provider_reference)

    charges = [
        await provider.verify_deposit(reference, checkout.provider_reference)
        for reference, checkout in [
            ("dep-paid", paid),
            ("dep-expired", expired),
            ("dep-open", open_one),
        ]
    ]

    assert [charge.status for charge in charges] == [
        ChargeStatus.SUCCESS,
        ChargeStatus.ABANDONED,
        ChargeStatus.PENDING,
    ]
    assert (charges[0].amount_minor, charges[0].currency) == (2_000, "USD")
    assert charges[0].provider_reference == paid.provider_reference


async def test_verify_refuses_another_references_session_and_unknown_sessions(
    provider: StripeProvider,
) -> None:
    checkout = await provider.initialize_deposit(deposit())

    with pytest.raises(ProviderError, match="another reference"):
        await provider.verify_deposit("dep-other", checkout.provider_reference)
    with pytest.raises(UnknownProviderReference, match=r"No such checkout\.session"):
        await provider.verify_deposit("dep-0001", "cs_test_missing")
    with pytest.raises(UnknownProviderReference):
        await provider.verify_deposit("dep-0001", None)


def test_the_providers_md_test_vector_verifies() -> None:
    assert signature_of("whsec_test_secret", VECTOR_T, VECTOR_BODY) == VECTOR_V1
    verify_signature(
        VECTOR_BODY,
        f"t={VECTOR_T},v1={VECTOR_V1}",
        VECTOR_SECRET,
        now_unix=VECTOR_T,
        tolerance_seconds=300,
    )


@pytest.mark.parametrize("skew_seconds", [-300, 0, 300])
def test_timestamps_within_the_tolerance_verify(skew_seconds: int) -> None:
    verify_signature(
        VECTOR_BODY,
        f"t={VECTOR_T},v1={VECTOR_V1}",
        VECTOR_SECRET,
        now_unix=VECTOR_T + skew_seconds,
        tolerance_seconds=300,
    )


def test_any_matching_v1_verifies() -> None:
    header = stripe_signature("whsec_test_secret", VECTOR_T, VECTOR_BODY, extra_v1="ab" * 32)
    assert header == f"t={VECTOR_T},v1={'ab' * 32},v1={VECTOR_V1}"
    verify_signature(VECTOR_BODY, header, VECTOR_SECRET, now_unix=VECTOR_T, tolerance_seconds=300)


@pytest.mark.parametrize(
    ("header", "body", "secret", "now_unix"),
    [
        pytest.param(
            f"t={VECTOR_T},v1={'0' * 64}", VECTOR_BODY, VECTOR_SECRET, VECTOR_T, id="forged"
        ),
        pytest.param(
            f"t={VECTOR_T},v1={VECTOR_V1}",
            VECTOR_BODY + b" ",
            VECTOR_SECRET,
            VECTOR_T,
            id="different-body",
        ),
        pytest.param(
            f"t={VECTOR_T},v1={VECTOR_V1}", VECTOR_BODY, VECTOR_SECRET, VECTOR_T + 301, id="too-old"
        ),
        pytest.param(
            f"t={VECTOR_T},v1={VECTOR_V1}",
            VECTOR_BODY,
            VECTOR_SECRET,
            VECTOR_T - 301,
            id="from-the-future",
        ),
        pytest.param(
            f"t={VECTOR_T + 1},v1={VECTOR_V1}",
            VECTOR_BODY,
            VECTOR_SECRET,
            VECTOR_T,
            id="timestamp-changed",
        ),
        pytest.param(f"v1={VECTOR_V1}", VECTOR_BODY, VECTOR_SECRET, VECTOR_T, id="no-t"),
        pytest.param(
            f"t={VECTOR_T},t={VECTOR_T},v1={VECTOR_V1}",
            VECTOR_BODY,
            VECTOR_SECRET,
            VECTOR_T,
            id="two-t",
        ),
        pytest.param(
            f"t={VECTOR_T},v0={VECTOR_V1}", VECTOR_BODY, VECTOR_SECRET, VECTOR_T, id="no-v1"
        ),
        pytest.param(f"t={VECTOR_T}", VECTOR_BODY, VECTOR_SECRET, VECTOR_T, id="t-only"),
        pytest.param("", VECTOR_BODY, VECTOR_SECRET, VECTOR_T, id="empty-header"),
        pytest.param(
            f"t={VECTOR_T},v1={signature_of('', VECTOR_T, VECTOR_BODY)}",
            VECTOR_BODY,
            SecretStr(""),
            VECTOR_T,
            id="empty-secret",
        ),
    ],
)
def test_bad_signatures_are_refused(
    header: str, body: bytes, secret: SecretStr, now_unix: int
) -> None:
    with pytest.raises(InvalidSignature):
        verify_signature(body, header, secret, now_unix=now_unix, tolerance_seconds=300)


async def test_a_paid_session_completing_is_a_successful_charge(
    stripe: StripeDouble, provider: StripeProvider, receiver: WebhookReceiver
) -> None:
    checkout = await provider.initialize_deposit(deposit())

    [delivered] = await stripe.pay(checkout.provider_reference)

    [event] = receiver.events
    sent_id = json.loads(delivered.body)["id"]
    assert delivered.status_code == 200
    assert (event.provider, event.event_key, event.event_type, event.kind) == (
        ProviderName.STRIPE,
        sent_id,
        "checkout.session.completed",
        WebhookKind.CHARGE,
    )
    assert event.charge is not None
    assert (event.charge.reference, event.charge.status, event.charge.amount_minor) == (
        "dep-0001",
        ChargeStatus.SUCCESS,
        2_000,
    )
    assert event.charge.provider_reference == checkout.provider_reference


@pytest.mark.parametrize(
    ("succeeds", "final_type", "final_status"),
    [
        (True, "checkout.session.async_payment_succeeded", ChargeStatus.SUCCESS),
        (False, "checkout.session.async_payment_failed", ChargeStatus.FAILED),
    ],
)
async def test_delayed_payments_report_their_outcome_later(
    stripe: StripeDouble,
    provider: StripeProvider,
    receiver: WebhookReceiver,
    succeeds: bool,
    final_type: str,
    final_status: ChargeStatus,
) -> None:
    checkout = await provider.initialize_deposit(deposit())

    await stripe.pay_later(checkout.provider_reference, succeeds=succeeds)

    completed, final = receiver.events
    assert (completed.event_type, completed.kind) == (
        "checkout.session.completed",
        WebhookKind.IGNORED,
    )
    assert (final.event_type, final.kind) == (final_type, WebhookKind.CHARGE)
    assert final.charge is not None
    assert final.charge.status is final_status
    assert completed.event_key != final.event_key


async def test_an_expired_session_is_abandoned(
    stripe: StripeDouble, provider: StripeProvider, receiver: WebhookReceiver
) -> None:
    checkout = await provider.initialize_deposit(deposit())

    await stripe.expire(checkout.provider_reference)

    [event] = receiver.events
    assert event.charge is not None
    assert event.charge.status is ChargeStatus.ABANDONED


async def test_tampered_and_stale_deliveries_are_refused(
    stripe: StripeDouble, provider: StripeProvider, receiver: WebhookReceiver
) -> None:
    checkout = await provider.initialize_deposit(deposit())
    stripe.webhook_faults.tamper_amount = True
    [tampered] = await stripe.pay(checkout.provider_reference)
    stripe.webhook_faults.tamper_amount = False
    stripe.signature_clock_offset_seconds = -301
    [stale] = await stripe.expire(checkout.provider_reference)

    assert (tampered.status_code, stale.status_code, receiver.refused) == (401, 401, 2)
    assert receiver.events == []


def _signed(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    header = stripe_signature("whsec_test_secret", int(time.time()), body)
    return body, {"Stripe-Signature": header}


@pytest.mark.parametrize(
    "event",
    [
        {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_1"}}},
        {
            "id": "evt_2",
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "id": "cs_1",
                    "payment_status": "paid",
                    "amount_total": 5,
                    "currency": "usd",
                    "metadata": "",
                }
            },
        },
    ],
    ids=["other-type", "session-not-ours"],
)
def test_events_coffer_does_not_act_on_are_ignored(event: dict[str, Any]) -> None:
    provider = StripeProvider(Settings(stripe_webhook_secret="whsec_test_secret"))

    parsed = provider.verify_and_parse_webhook(*_signed(event))

    assert (parsed.kind, parsed.event_key) == (WebhookKind.IGNORED, event["id"])


@pytest.mark.parametrize("metadata", ["", 0, None, {"reference": "dep-7"}])
def test_the_reference_comes_from_client_reference_id_or_metadata(metadata: Any) -> None:
    session = {
        "id": "cs_2",
        "payment_status": "paid",
        "amount_total": 700,
        "currency": "eur",
        "client_reference_id": None if isinstance(metadata, dict) else "dep-7",
        "metadata": metadata,
    }
    event = {"id": "evt_3", "type": "checkout.session.completed", "data": {"object": session}}
    provider = StripeProvider(Settings(stripe_webhook_secret="whsec_test_secret"))

    parsed = provider.verify_and_parse_webhook(*_signed(event))

    assert parsed.charge is not None
    assert (parsed.charge.reference, parsed.charge.amount_minor, parsed.charge.currency) == (
        "dep-7",
        700,
        "EUR",
    )


async def test_payouts_and_saved_cards_are_not_stripes(provider: StripeProvider) -> None:
    with pytest.raises(SavedCardsNotSupported):
        await provider.charge_saved_card(
            reference="r",
            amount_minor=1,
            currency="USD",
            email="a@example.com",
            authorization_code="x",
        )
    with pytest.raises(PayoutsNotSupported):
        await provider.list_banks("USD")
    with pytest.raises(PayoutsNotSupported):
        await provider.resolve_account("058", "0123456789")
    with pytest.raises(PayoutsNotSupported):
        await provider.create_recipient(name="A", account_number="1", bank_code="2", currency="USD")
    with pytest.raises(PayoutsNotSupported):
        await provider.initiate_payout(
            PayoutRequest(
                reference="wd_0000000000000001",
                amount_minor=1,
                currency="USD",
                recipient_code="RCP_1",
                reason="x",
            )
        )
    with pytest.raises(PayoutsNotSupported):
        await provider.verify_payout("wd_0000000000000001")
