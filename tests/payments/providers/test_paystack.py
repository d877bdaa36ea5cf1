"""PaystackProvider against the Paystack double: real HTTP on a local port."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from coffer.payments.providers.base import (
    ChargeStatus,
    DepositRequest,
    InvalidSignature,
    Payout,
    PayoutRequest,
    PayoutsNotSupported,
    PayoutStatus,
    ProviderError,
    ProviderName,
    ProviderUnavailable,
    UnknownProviderReference,
    WebhookKind,
)
from coffer.payments.providers.paystack import PaystackProvider, verify_signature
from coffer.settings import Settings
from tests.fixtures.paystack import PaystackDouble, sign
from tests.fixtures.provider_double import FAST_RETRIES, WebhookReceiver

VECTOR_BODY = (
    b'{"event":"charge.success","data":{"reference":"ref_123","amount":500000,'
    b'"currency":"NGN","status":"success"}}'
)
VECTOR_SIGNATURE = (
    "ff84720ff4781f96e7c57cdd61762d6564a8bc5c3c25be501c94d2ff3898bec8"
    "ce975acde586c66b046daacadb9662a8043bab4dac18aa204e823f24044f0517"
)


def provider_for(double: PaystackDouble, **overrides: Any) -> PaystackProvider:
    settings = Settings(
        paystack_secret_key=double.secret_key,
        paystack_base_url=double.url,
        **{**FAST_RETRIES, **overrides},
    )
    return PaystackProvider(settings)


@pytest.fixture
async def provider(paystack: PaystackDouble) -> AsyncIterator[PaystackProvider]:
    client = provider_for(paystack)
    yield client
    await client.aclose()


def deposit(reference: str = "dep-0001", amount_minor: int = 500_000) -> DepositRequest:
    return DepositRequest(
        reference=reference,
        amount_minor=amount_minor,
        currency="NGN",
        email="ada@example.com",
        callback_url="https://wallet.example/deposits/done",
        metadata={"user": "u-1"},
    )


async def test_initialize_sends_paystacks_fields_and_returns_the_checkout(
    paystack: PaystackDouble, provider: PaystackProvider
) -> None:
    checkout = await provider.initialize_deposit(deposit())

    [sent] = paystack.requests_to("/transaction/initialize")
    assert sent.headers["authorization"] == f"Bearer {paystack.secret_key}"
    assert sent.json() == {
        "email": "ada@example.com",
        "amount": 500_000,
        "currency": "NGN",
        "reference": "dep-0001",
        "callback_url": "https://wallet.example/deposits/done",
        "metadata": {"user": "u-1"},
    }
    access_code = paystack.transactions["dep-0001"]["access_code"]
    assert checkout.provider_reference == access_code
    assert checkout.authorization_url == f"https://checkout.paystack.com/{access_code}"


async def test_a_reused_reference_is_refused_once_without_retry(
    paystack: PaystackDouble, provider: PaystackProvider
) -> None:
    await provider.initialize_deposit(deposit())

    with pytest.raises(ProviderError) as refused:
        await provider.initialize_deposit(deposit())

    assert refused.value.details["provider_code"] == "duplicate_reference"
    assert len(paystack.requests_to("/transaction/initialize")) == 2


async def test_a_wrong_key_is_a_provider_error_not_retried(paystack: PaystackDouble) -> None:
    paystack.secret_key = "sk_test_other"
    client = provider_for(paystack)
    paystack.secret_key = "sk_test_coffer_double_0123456789"
    try:
        with pytest.raises(ProviderError, match="Invalid key"):
            await client.verify_deposit("dep-0001", None)
    finally:
        await client.aclose()
    assert len(paystack.requests) == 1


async def test_server_errors_are_retried_until_an_answer(
    paystack: PaystackDouble, provider: PaystackProvider
) -> None:
    paystack.faults.server_errors = 2

    checkout = await provider.initialize_deposit(deposit())

    assert checkout.provider_reference == paystack.transactions["dep-0001"]["access_code"]
    assert len(paystack.requests_to("/transaction/initialize")) == 3


async def test_server_errors_past_the_attempts_leave_the_outcome_unknown(
    paystack: PaystackDouble, provider: PaystackProvider
) -> None:
    paystack.faults.server_errors = 5

    with pytest.raises(ProviderUnavailable) as unavailable:
        await provider.initialize_deposit(deposit())

    assert len(paystack.requests) == 3
    assert paystack.secret_key not in str(unavailable.value.details)
    assert paystack.faults.server_errors == 2


async def test_a_timeout_is_retried(paystack: PaystackDouble, provider: PaystackProvider) -> None:
    paystack.faults.stalls = 1

    checkout = await provider.initialize_deposit(deposit())

    assert checkout.provider_reference
    assert len(paystack.requests_to("/transaction/initialize")) == 2


async def test_timeouts_on_every_attempt_raise_unavailable(paystack: PaystackDouble) -> None:
    paystack.faults.stalls = 2
    client = provider_for(paystack, provider_http_max_attempts=2)
    try:
        with pytest.raises(ProviderUnavailable, match="ReadTimeout"):
            await client.verify_deposit("dep-0001", None)
    finally:
        await client.aclose()
    assert len(paystack.requests) == 2


async def test_verify_reads_the_outcome_from_data_status(
    paystack: PaystackDouble, provider: PaystackProvider
) -> None:
    await provider.initialize_deposit(deposit("dep-a"))
    await provider.initialize_deposit(deposit("dep-b"))
    await provider.initialize_deposit(deposit("dep-c"))
    paystack.fail("dep-b")
    paystack.fail("dep-c", status="abandoned")

    pending = await provider.verify_deposit("dep-a", None)
    failed = await provider.verify_deposit("dep-b", None)
    abandoned = await provider.verify_deposit("dep-c", None)

    assert (pending.status, pending.paid_at, pending.failure_reason) == (
        ChargeStatus.PENDING,
        None,
        None,
    )
    assert (failed.status, failed.failure_reason) == (ChargeStatus.FAILED, "Declined")
    assert abandoned.status is ChargeStatus.ABANDONED


async def test_verify_after_payment_is_success_with_amount_currency_and_time(
    paystack: PaystackDouble, provider: PaystackProvider
) -> None:
    await provider.initialize_deposit(deposit())
    paystack.webhook_faults.lost = True
    await paystack.pay("dep-0001")

    charge = await provider.verify_deposit("dep-0001", None)

    assert (charge.status, charge.amount_minor, charge.currency) == (
        ChargeStatus.SUCCESS,
        500_000,
        "NGN",
    )
    assert charge.paid_at is not None
    assert charge.paid_at.utcoffset() is not None
    assert charge.card is None


async def test_an_unknown_reference_is_a_clear_provider_error(
    provider: PaystackProvider,
) -> None:
    with pytest.raises(UnknownProviderReference, match="reference not found") as unknown:
        await provider.verify_deposit("never-initialized", None)
    assert isinstance(unknown.value, ProviderError)


@pytest.mark.parametrize("metadata", ["", 0, {"custom_fields": []}, None])
async def test_digit_string_amounts_and_odd_metadata_parse(
    paystack: PaystackDouble, provider: PaystackProvider, metadata: Any
) -> None:
    await provider.initialize_deposit(deposit(amount_minor=123_456))
    paystack.amounts_as_strings = True
    paystack.metadata_value = metadata

    charge = await provider.verify_deposit("dep-0001", None)

    assert paystack.transaction_data("dep-0001")["amount"] == "123456"
    assert charge.amount_minor == 123_456


@pytest.mark.parametrize("amount", [12.5, "12.5", "-5", True, None, "\uff11\uff12"])
def test_amounts_that_are_not_whole_minor_units_are_refused(amount: Any) -> None:
    body = json.dumps(
        {
            "event": "charge.success",
            "data": {"reference": "r", "amount": amount, "currency": "NGN", "status": "success"},
        }
    ).encode()
    provider = PaystackProvider(Settings(paystack_secret_key="sk_test_x"))
    signature = {"x-paystack-signature": sign("sk_test_x", body)}
    with pytest.raises(ProviderError, match="minor units"):
        provider.verify_and_parse_webhook(body, signature)


def test_the_providers_md_test_vector_verifies() -> None:
    verify_signature(VECTOR_BODY, VECTOR_SIGNATURE, SecretStr("sk_test_dummy"))
    with pytest.raises(InvalidSignature):
        verify_signature(VECTOR_BODY, VECTOR_SIGNATURE, SecretStr("sk_test_other"))


@pytest.mark.parametrize(
    ("secret", "body", "signature"),
    [
        pytest.param("sk_test_dummy", VECTOR_BODY, "0" * 128, id="forged"),
        pytest.param(
            "sk_test_dummy",
            VECTOR_BODY.replace(b"500000", b"900000"),
            VECTOR_SIGNATURE,
            id="different-body",
        ),
        pytest.param("sk_test_dummy", VECTOR_BODY, None, id="missing"),
        pytest.param("sk_test_dummy", VECTOR_BODY, VECTOR_SIGNATURE.upper()[:64], id="truncated"),
        pytest.param("", VECTOR_BODY, sign("", VECTOR_BODY), id="empty-secret"),
        pytest.param("sk_test_dummy", VECTOR_BODY, "é" * 128, id="non-ascii"),
    ],
)
def test_bad_signatures_are_refused(secret: str, body: bytes, signature: str | None) -> None:
    provider = PaystackProvider(Settings(paystack_secret_key=secret))
    headers = {} if signature is None else {"X-Paystack-Signature": signature}
    with pytest.raises(InvalidSignature):
        provider.verify_and_parse_webhook(body, headers)


async def test_charge_success_webhook_is_a_charge_keyed_by_event_and_reference(
    paystack: PaystackDouble, provider: PaystackProvider
) -> None:
    receiver = WebhookReceiver(provider)
    paystack.webhook_url, paystack.webhook_client = "/hook", receiver.client()
    await provider.initialize_deposit(deposit())

    [delivered] = await paystack.pay("dep-0001", reusable_card=True)

    [event] = receiver.events
    assert delivered.status_code == 200
    assert (event.provider, event.kind, event.event_key) == (
        ProviderName.PAYSTACK,
        WebhookKind.CHARGE,
        "charge.success:dep-0001",
    )
    assert event.charge is not None
    assert event.charge.status is ChargeStatus.SUCCESS
    assert event.charge.amount_minor == 500_000
    card = event.charge.card
    assert card is not None
    assert card.authorization_code.startswith("AUTH_")
    assert (card.last4, card.brand, card.exp_month, card.exp_year) == ("4081", "visa", "12", "2030")
    assert card.authorization_code not in json.dumps(event.payload)
    assert event.payload["data"]["authorization"]["last4"] == "4081"


async def test_a_tampered_amount_fails_the_signature(
    paystack: PaystackDouble, provider: PaystackProvider
) -> None:
    receiver = WebhookReceiver(provider)
    paystack.webhook_url, paystack.webhook_client = "/hook", receiver.client()
    paystack.webhook_faults.tamper_amount = True
    await provider.initialize_deposit(deposit())

    [delivered] = await paystack.pay("dep-0001")

    assert (delivered.status_code, receiver.events, receiver.refused) == (401, [], 1)


@pytest.mark.parametrize("outcome", ["success", "failed", "reversed"])
async def test_transfer_webhooks_are_payouts_keyed_by_transfer_code(
    paystack: PaystackDouble, provider: PaystackProvider, outcome: str
) -> None:
    receiver = WebhookReceiver(provider)
    paystack.webhook_url, paystack.webhook_client = "/hook", receiver.client()
    payout = await _start_payout(provider)

    await paystack.settle_transfer(payout.reference, outcome)

    [event] = receiver.events
    assert event.kind is WebhookKind.PAYOUT
    assert event.payout is not None
    assert event.event_key == f"transfer.{outcome}:{payout.transfer_code}"
    assert event.payout.status is PayoutStatus(outcome)
    assert (event.payout.amount_minor, event.payout.reference) == (250_000, payout.reference)
    assert (event.payout.failure_reason is None) == (outcome == "success")


def test_other_events_are_ignored_but_keyed() -> None:
    body = json.dumps(
        {"event": "refund.processed", "data": {"reference": "dep-9", "amount": "5000"}}
    ).encode()
    provider = PaystackProvider(Settings(paystack_secret_key="sk_test_x"))

    event = provider.verify_and_parse_webhook(
        body, {"x-paystack-signature": sign("sk_test_x", body)}
    )

    assert (event.kind, event.event_key) == (WebhookKind.IGNORED, "refund.processed:dep-9")


async def test_a_saved_card_is_charged_with_its_authorization_code(
    paystack: PaystackDouble, provider: PaystackProvider
) -> None:
    paystack.webhook_faults.lost = True
    await provider.initialize_deposit(deposit())
    await paystack.pay("dep-0001", reusable_card=True)
    code = paystack.transactions["dep-0001"]["authorization"]["authorization_code"]

    charge = await provider.charge_saved_card(
        reference="dep-0002",
        amount_minor=70_000,
        currency="NGN",
        email="ada@example.com",
        authorization_code=code,
    )

    [sent] = paystack.requests_to("/transaction/charge_authorization")
    assert sent.json() == {
        "email": "ada@example.com",
        "amount": 70_000,
        "currency": "NGN",
        "authorization_code": code,
        "reference": "dep-0002",
    }
    assert (charge.reference, charge.status, charge.amount_minor) == (
        "dep-0002",
        ChargeStatus.SUCCESS,
        70_000,
    )


async def test_a_bad_authorization_code_is_refused_without_echoing_it(
    provider: PaystackProvider,
) -> None:
    with pytest.raises(ProviderError) as refused:
        await provider.charge_saved_card(
            reference="dep-0002",
            amount_minor=70_000,
            currency="NGN",
            email="ada@example.com",
            authorization_code="AUTH_secret_value",
        )
    assert "AUTH_secret_value" not in refused.value.message + str(refused.value.details)


async def test_banks_accounts_and_recipients(provider: PaystackProvider) -> None:
    banks = await provider.list_banks("NGN")
    resolved = await provider.resolve_account("058", "0123456789")
    first = await provider.create_recipient(
        name="Ada Lovelace", account_number="0123456789", bank_code="058", currency="NGN"
    )
    again = await provider.create_recipient(
        name="Ada Lovelace", account_number="0123456789", bank_code="058", currency="NGN"
    )

    assert [bank.code for bank in banks] == ["044", "058", "057"]
    assert resolved.account_name == "ADA LOVELACE"
    assert first == again
    assert first.startswith("RCP_")
    with pytest.raises(ProviderError, match="resolve account"):
        await provider.resolve_account("058", "9999999999")
    with pytest.raises(PayoutsNotSupported):
        await provider.create_recipient(
            name="Kofi", account_number="0123456789", bank_code="058", currency="GHS"
        )


async def _start_payout(provider: PaystackProvider, amount_minor: int = 250_000) -> Payout:
    recipient = await provider.create_recipient(
        name="Ada Lovelace", account_number="0123456789", bank_code="058", currency="NGN"
    )
    return await provider.initiate_payout(
        PayoutRequest(
            reference="wd_0000000000000001",
            amount_minor=amount_minor,
            currency="NGN",
            recipient_code=recipient,
            reason="coffer withdrawal",
        )
    )


async def test_an_initiated_transfer_is_pending_even_when_paystack_says_success(
    paystack: PaystackDouble, provider: PaystackProvider
) -> None:
    payout = await _start_payout(provider)

    [sent] = paystack.requests_to("/transfer")
    assert sent.json()["source"] == "balance"
    assert sent.json()["amount"] == 250_000
    assert payout.status is PayoutStatus.PENDING
    assert payout.transfer_code
    assert (await provider.verify_payout(payout.reference)).status is PayoutStatus.PENDING


@pytest.mark.parametrize("outcome", ["success", "failed", "reversed"])
async def test_verify_payout_reports_the_banks_verdict(
    paystack: PaystackDouble, provider: PaystackProvider, outcome: str
) -> None:
    paystack.webhook_faults.lost = True
    payout = await _start_payout(provider)
    await paystack.settle_transfer(payout.reference, outcome)

    verified = await provider.verify_payout(payout.reference)

    assert verified.status is PayoutStatus(outcome)
    assert verified.transfer_code == payout.transfer_code


async def test_otp_transfers_say_so(paystack: PaystackDouble, provider: PaystackProvider) -> None:
    paystack.otp_required = True

    payout = await _start_payout(provider)

    assert payout.status is PayoutStatus.OTP_REQUIRED


async def test_an_unaffordable_transfer_is_refused(
    paystack: PaystackDouble, provider: PaystackProvider
) -> None:
    paystack.balance_minor = 1_000
    with pytest.raises(ProviderError, match="balance is not enough"):
        await _start_payout(provider)
    with pytest.raises(UnknownProviderReference):
        await provider.verify_payout("wd_0000000000000001")


async def test_neither_the_key_nor_an_authorization_code_reaches_the_logs(
    paystack: PaystackDouble, provider: PaystackProvider, capfd: pytest.CaptureFixture[str]
) -> None:
    paystack.faults.server_errors = 5
    with pytest.raises(ProviderUnavailable):
        await provider.charge_saved_card(
            reference="dep-0002",
            amount_minor=70_000,
            currency="NGN",
            email="ada@example.com",
            authorization_code="AUTH_logged_nowhere",
        )

    out, err = capfd.readouterr()
    logged = out + err
    assert logged.count("payments.provider.attempt_failed") == 3
    assert "AUTH_logged_nowhere" not in logged
    assert paystack.secret_key not in logged
