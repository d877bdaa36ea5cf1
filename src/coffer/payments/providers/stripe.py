"""Stripe: deposits through Checkout Sessions. Payouts and saved cards stay with Paystack.

Wire formats: ../shared/PROVIDERS.md. Requests are form-encoded with bracket notation, carry
our reference as `Idempotency-Key` (so a retried POST returns the first session instead of
opening a second), and currencies go lower-case on the wire.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from pydantic import SecretStr

from coffer.kit.clock import utcnow
from coffer.payments.providers.base import (
    Bank,
    Charge,
    ChargeStatus,
    Checkout,
    DepositRequest,
    InvalidSignature,
    Payout,
    PayoutRequest,
    PayoutsNotSupported,
    ProviderError,
    ProviderName,
    ResolvedAccount,
    SavedCardsNotSupported,
    UnknownProviderReference,
    WebhookEvent,
    WebhookKind,
)
from coffer.payments.providers.http import (
    ProviderHttp,
    header_value,
    json_object,
    mapping_field,
    minor_units,
    path_part,
    text_field,
)
from coffer.settings import Settings

SIGNATURE_HEADER = "stripe-signature"
PRODUCT_NAME = "Wallet deposit"
MAX_MESSAGE_CHARS = 200

SESSION_EVENTS = {
    "checkout.session.async_payment_succeeded": ChargeStatus.SUCCESS,
    "checkout.session.async_payment_failed": ChargeStatus.FAILED,
    "checkout.session.expired": ChargeStatus.ABANDONED,
}
"""`checkout.session.completed` is handled apart: it credits only when the session is paid
(a delayed payment method completes unpaid and reports later with async_payment_*)."""


class StripeProvider:
    name = ProviderName.STRIPE

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._webhook_secret = settings.stripe_webhook_secret
        self._tolerance_seconds = settings.stripe_webhook_tolerance_seconds
        self._http = ProviderHttp(
            self.name,
            settings,
            base_url=settings.stripe_base_url,
            headers={"authorization": f"Bearer {settings.stripe_secret_key.get_secret_value()}"},
            transport=transport,
        )

    async def initialize_deposit(self, request: DepositRequest) -> Checkout:
        form = {
            "mode": "payment",
            "line_items[0][price_data][currency]": request.currency.lower(),
            "line_items[0][price_data][product_data][name]": PRODUCT_NAME,
            "line_items[0][price_data][unit_amount]": str(request.amount_minor),
            "line_items[0][quantity]": "1",
            "customer_email": request.email,
            "client_reference_id": request.reference,
            # Stripe fills {CHECKOUT_SESSION_ID} in; the braces must reach it unencoded.
            "success_url": _with_query(
                request.callback_url,
                f"reference={request.reference}&session_id={{CHECKOUT_SESSION_ID}}",
            ),
            "cancel_url": _with_query(
                request.callback_url, f"reference={request.reference}&cancelled=true"
            ),
            **{f"metadata[{key}]": value for key, value in request.metadata.items()},
            "metadata[reference]": request.reference,
        }
        session = await self._call(
            "POST", "/v1/checkout/sessions", form=form, idempotency_key=request.reference
        )
        session_id, url = text_field(session, "id"), text_field(session, "url")
        if not session_id or not url or _our_reference(session) != request.reference:
            raise ProviderError("Stripe's session answer lacks its id, url or our reference")
        return Checkout(authorization_url=url, provider_reference=session_id)

    async def verify_deposit(self, reference: str, provider_reference: str | None) -> Charge:
        if not provider_reference:
            raise UnknownProviderReference(
                "A Stripe deposit is verified through its checkout session id, and none is stored"
            )
        session = await self._call("GET", f"/v1/checkout/sessions/{path_part(provider_reference)}")
        charge = parse_session(session, session_status(session))
        if charge.reference != reference:
            raise ProviderError("Stripe's session belongs to another reference")
        return charge

    def verify_and_parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        verify_signature(
            raw_body,
            header_value(headers, SIGNATURE_HEADER),
            self._webhook_secret,
            now_unix=int(utcnow().timestamp()),
            tolerance_seconds=self._tolerance_seconds,
        )
        return parse_webhook(raw_body)

    async def charge_saved_card(
        self,
        *,
        reference: str,
        amount_minor: int,
        currency: str,
        email: str,
        authorization_code: str,
    ) -> Charge:
        raise SavedCardsNotSupported("Saved cards are charged through Paystack only")

    async def list_banks(self, currency: str) -> Sequence[Bank]:
        raise PayoutsNotSupported("Withdrawals go through Paystack; Stripe has no bank list here")

    async def resolve_account(self, bank_code: str, account_number: str) -> ResolvedAccount:
        raise PayoutsNotSupported("Withdrawals go through Paystack; Stripe resolves no accounts")

    async def create_recipient(
        self, *, name: str, account_number: str, bank_code: str, currency: str
    ) -> str:
        raise PayoutsNotSupported("Withdrawals go through Paystack; Stripe keeps no recipients")

    async def initiate_payout(self, request: PayoutRequest) -> Payout:
        raise PayoutsNotSupported("Withdrawals go through Paystack, not Stripe")

    async def verify_payout(self, reference: str) -> Payout:
        raise PayoutsNotSupported("Withdrawals go through Paystack, not Stripe")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        form: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {"idempotency-key": idempotency_key} if idempotency_key else None
        response = await self._http.request(method, path, form=form, headers=headers)
        body = json_object(response, self.name)
        if response.is_success:
            return body
        error = mapping_field(body, "error")
        message = str(error.get("message") or f"HTTP {response.status_code}")[:MAX_MESSAGE_CHARS]
        details = {
            "provider": self.name.value,
            "http_status": response.status_code,
            "provider_code": text_field(error, "code"),
        }
        if response.status_code == httpx.codes.NOT_FOUND:
            raise UnknownProviderReference(f"Stripe: {message}", details=details)
        raise ProviderError(f"Stripe refused the request: {message}", details=details)


def signature_of(secret: str, timestamp: int, raw_body: bytes) -> str:
    """v1: hex HMAC-SHA256 over "<timestamp>.<raw body>" keyed with the whsec_ secret."""
    signed = str(timestamp).encode() + b"." + raw_body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_signature(
    raw_body: bytes,
    header: str | None,
    secret: SecretStr,
    *,
    now_unix: int,
    tolerance_seconds: int,
) -> None:
    """`Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`: any v1 may match (several appear
    while a secret is rolled); a timestamp outside the tolerance, either way, is a replay."""
    key = secret.get_secret_value()
    if not key or not header:
        raise InvalidSignature()
    timestamps, candidates = [], []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            timestamps.append(value)
        elif name == "v1":
            candidates.append(value.encode())
    if len(timestamps) != 1 or not timestamps[0].isascii() or not timestamps[0].isdigit():
        raise InvalidSignature()
    timestamp = int(timestamps[0])
    if abs(now_unix - timestamp) > tolerance_seconds:
        raise InvalidSignature("The webhook signature's timestamp is outside the tolerance")
    expected = signature_of(key, timestamp, raw_body).encode()
    # Compare with every candidate, so the time taken does not say which one matched.
    matches = [hmac.compare_digest(expected, candidate) for candidate in candidates]
    if not any(matches):
        raise InvalidSignature()


def parse_webhook(raw_body: bytes) -> WebhookEvent:
    """A verified event; its id is the dedupe key. Sessions without our reference (another
    product on the same Stripe account) are acknowledged and ignored."""
    try:
        event = json.loads(raw_body)
    except ValueError:
        raise ProviderError("Stripe sent a signed webhook that is not JSON") from None
    if not isinstance(event, dict):
        raise ProviderError("Stripe sent a signed webhook that is not an object")
    event_id, event_type = text_field(event, "id"), text_field(event, "type")
    if not event_id or not event_type:
        raise ProviderError("Stripe sent a signed webhook without an id or type")
    session = mapping_field(mapping_field(event, "data"), "object")
    status = _event_status(event_type, session)
    if status is None or not _our_reference(session):
        return WebhookEvent(
            ProviderName.STRIPE, event_id, event_type, WebhookKind.IGNORED, payload=event
        )
    return WebhookEvent(
        ProviderName.STRIPE,
        event_id,
        event_type,
        WebhookKind.CHARGE,
        charge=parse_session(session, status),
        payload=event,
    )


def session_status(session: Mapping[str, Any]) -> ChargeStatus:
    """A retrieved session's state: paid is final; expired was never paid; anything else
    (open, or complete while a delayed payment is processing) is not final yet."""
    if session.get("payment_status") == "paid":
        return ChargeStatus.SUCCESS
    if session.get("status") == "expired":
        return ChargeStatus.ABANDONED
    return ChargeStatus.PENDING


def parse_session(session: Mapping[str, Any], status: ChargeStatus) -> Charge:
    reference, currency = _our_reference(session), text_field(session, "currency")
    if not reference or not currency:
        raise ProviderError("Stripe's session lacks our reference or a currency")
    return Charge(
        reference=reference,
        status=status,
        amount_minor=minor_units(session.get("amount_total"), ProviderName.STRIPE),
        currency=currency.upper(),
        failure_reason="Stripe reported the payment failed"
        if status is ChargeStatus.FAILED
        else None,
        provider_reference=text_field(session, "id"),
    )


def _event_status(event_type: str, session: Mapping[str, Any]) -> ChargeStatus | None:
    if event_type == "checkout.session.completed":
        return ChargeStatus.SUCCESS if session.get("payment_status") == "paid" else None
    return SESSION_EVENTS.get(event_type)


def _our_reference(session: Mapping[str, Any]) -> str | None:
    return text_field(session, "client_reference_id") or text_field(
        mapping_field(session, "metadata"), "reference"
    )


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"
