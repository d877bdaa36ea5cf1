"""Paystack: hosted checkout for deposits, saved cards, and transfers for withdrawals.

Wire formats: ../shared/PROVIDERS.md. The outcome of a charge or transfer is always `data.status`,
never the envelope's `status` (which only says the API call itself worked). Neither the secret
key nor a card's authorization code is ever logged or put into an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx
from pydantic import SecretStr

from coffer.payments.providers.base import (
    Bank,
    CardAuthorization,
    Charge,
    ChargeStatus,
    Checkout,
    DepositRequest,
    InvalidSignature,
    Payout,
    PayoutRequest,
    PayoutsNotSupported,
    PayoutStatus,
    ProviderError,
    ProviderName,
    ResolvedAccount,
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

SIGNATURE_HEADER = "x-paystack-signature"
PAYOUT_EVENTS = frozenset({"transfer.success", "transfer.failed", "transfer.reversed"})
RECIPIENT_TYPES = {"NGN": "nuban"}
"""Account types coffer pays out to; other currencies need other recipient types."""
MAX_MESSAGE_CHARS = 200

CHARGE_STATUSES = {
    "success": ChargeStatus.SUCCESS,
    "failed": ChargeStatus.FAILED,
    "abandoned": ChargeStatus.ABANDONED,
    "reversed": ChargeStatus.REVERSED,
}
"""Every other status (ongoing, pending, processing, queued, send_otp, ...) is not final."""
PAYOUT_STATUSES = {
    "success": PayoutStatus.SUCCESS,
    "failed": PayoutStatus.FAILED,
    "reversed": PayoutStatus.REVERSED,
    "otp": PayoutStatus.OTP_REQUIRED,
    "abandoned": PayoutStatus.FAILED,
    "blocked": PayoutStatus.FAILED,
    "rejected": PayoutStatus.FAILED,
}
"""Every other status (pending, queued, processing, received) is not final."""


class PaystackProvider:
    name = ProviderName.PAYSTACK

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._secret_key = settings.paystack_secret_key
        self._http = ProviderHttp(
            self.name,
            settings,
            base_url=settings.paystack_base_url,
            headers={"authorization": f"Bearer {self._secret_key.get_secret_value()}"},
            transport=transport,
        )

    async def initialize_deposit(self, request: DepositRequest) -> Checkout:
        data = await self._call(
            "POST",
            "/transaction/initialize",
            json_body={
                "email": request.email,
                "amount": request.amount_minor,
                "currency": request.currency,
                "reference": request.reference,
                "callback_url": request.callback_url,
                "metadata": dict(request.metadata),
            },
        )
        url, access_code = text_field(data, "authorization_url"), text_field(data, "access_code")
        if not url or not access_code or text_field(data, "reference") != request.reference:
            raise ProviderError("Paystack's initialize answer lacks the checkout or our reference")
        return Checkout(authorization_url=url, provider_reference=access_code)

    async def verify_deposit(self, reference: str, provider_reference: str | None) -> Charge:
        data = await self._call("GET", f"/transaction/verify/{path_part(reference)}")
        charge = parse_charge(data)
        if charge.reference != reference:
            raise ProviderError("Paystack verified another reference than the one asked for")
        return charge

    def verify_and_parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        verify_signature(raw_body, header_value(headers, SIGNATURE_HEADER), self._secret_key)
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
        data = await self._call(
            "POST",
            "/transaction/charge_authorization",
            json_body={
                "email": email,
                "amount": amount_minor,
                "currency": currency,
                "authorization_code": authorization_code,
                "reference": reference,
            },
        )
        return parse_charge(data)

    async def list_banks(self, currency: str) -> Sequence[Bank]:
        data = await self._call("GET", "/bank", params={"currency": currency})
        if not isinstance(data, list):
            raise ProviderError("Paystack's bank list is not a list")
        banks = []
        for item in data:
            if not isinstance(item, dict) or item.get("active") is False:
                continue
            name, code = text_field(item, "name"), text_field(item, "code")
            if name and code:
                banks.append(Bank(name=name, code=code, currency=currency))
        return banks

    async def resolve_account(self, bank_code: str, account_number: str) -> ResolvedAccount:
        data = await self._call(
            "GET",
            "/bank/resolve",
            params={"account_number": account_number, "bank_code": bank_code},
        )
        name = text_field(data, "account_name")
        if not name or text_field(data, "account_number") != account_number:
            raise ProviderError("Paystack resolved another account than the one asked for")
        return ResolvedAccount(
            account_number=account_number, account_name=name, bank_code=bank_code
        )

    async def create_recipient(
        self, *, name: str, account_number: str, bank_code: str, currency: str
    ) -> str:
        recipient_type = RECIPIENT_TYPES.get(currency)
        if recipient_type is None:
            raise PayoutsNotSupported(
                f"coffer pays out through Paystack in NGN only, not {currency}"
            )
        data = await self._call(
            "POST",
            "/transferrecipient",
            json_body={
                "type": recipient_type,
                "name": name,
                "account_number": account_number,
                "bank_code": bank_code,
                "currency": currency,
            },
        )
        code = text_field(data, "recipient_code")
        if not code:
            raise ProviderError("Paystack's recipient answer has no recipient_code")
        return code

    async def initiate_payout(self, request: PayoutRequest) -> Payout:
        data = await self._call(
            "POST",
            "/transfer",
            json_body={
                "source": "balance",
                "amount": request.amount_minor,
                "recipient": request.recipient_code,
                "reference": request.reference,
                "reason": request.reason,
                "currency": request.currency,
            },
        )
        payout = parse_payout(data)
        if payout.status is PayoutStatus.SUCCESS:
            # Initiate says "success" while its message says "queued": only the transfer.*
            # webhook or transfer/verify settles a payout.
            return replace(payout, status=PayoutStatus.PENDING)
        return payout

    async def verify_payout(self, reference: str) -> Payout:
        data = await self._call("GET", f"/transfer/verify/{path_part(reference)}")
        payout = parse_payout(data)
        if payout.reference != reference:
            raise ProviderError("Paystack verified another transfer than the one asked for")
        return payout

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> Any:
        """`data` of a successful answer; a refusal becomes a `ProviderError` with Paystack's
        own message and code (which never echo the secret key or an authorization code)."""
        response = await self._http.request(method, path, params=params, json_body=json_body)
        body = json_object(response, self.name)
        if response.is_success and body.get("status") is True:
            return body.get("data")
        message = str(body.get("message") or f"HTTP {response.status_code}")[:MAX_MESSAGE_CHARS]
        details = {
            "provider": self.name.value,
            "http_status": response.status_code,
            "provider_code": text_field(body, "code"),
        }
        if response.status_code in (400, 404) and "not found" in message.lower():
            raise UnknownProviderReference(f"Paystack: {message}", details=details)
        raise ProviderError(f"Paystack refused the request: {message}", details=details)


def verify_signature(raw_body: bytes, signature: str | None, secret_key: SecretStr) -> None:
    """`x-paystack-signature` is the lowercase hex HMAC-SHA512 of the raw body, keyed with the
    secret key. An empty key is refused: everyone knows the HMAC of an empty key."""
    secret = secret_key.get_secret_value()
    if not secret or not signature:
        raise InvalidSignature()
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha512).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise InvalidSignature()


def parse_webhook(raw_body: bytes) -> WebhookEvent:
    """A verified body as coffer's event; Paystack sends no event id, so the key is the event
    type with the charge's reference or the transfer's code."""
    try:
        document = json.loads(raw_body)
    except ValueError:
        raise ProviderError("Paystack sent a signed webhook that is not JSON") from None
    event_type = document.get("event") if isinstance(document, dict) else None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(event_type, str) or not isinstance(data, dict):
        raise ProviderError("Paystack sent a signed webhook without an event and its data")
    payload = _without_authorization_code(document)
    if event_type == "charge.success":
        charge = parse_charge(data)
        key, kind = f"{event_type}:{charge.reference}", WebhookKind.CHARGE
        return WebhookEvent(ProviderName.PAYSTACK, key, event_type, kind, charge, payload=payload)
    if event_type in PAYOUT_EVENTS:
        payout = parse_payout(data)
        key = f"{event_type}:{payout.transfer_code or payout.reference}"
        return WebhookEvent(
            ProviderName.PAYSTACK,
            key,
            event_type,
            WebhookKind.PAYOUT,
            payout=payout,
            payload=payload,
        )
    subject = (
        text_field(data, "reference")
        or text_field(data, "transfer_code")
        or text_field(data, "id")
        or hashlib.sha256(raw_body).hexdigest()
    )
    return WebhookEvent(
        ProviderName.PAYSTACK,
        f"{event_type}:{subject}",
        event_type,
        WebhookKind.IGNORED,
        payload=payload,
    )


def parse_charge(data: Any) -> Charge:
    """A transaction (verify, charge.success, charge_authorization) as coffer's Charge."""
    if not isinstance(data, dict):
        raise ProviderError("Paystack's transaction data is not an object")
    reference, currency = text_field(data, "reference"), text_field(data, "currency")
    if not reference or not currency:
        raise ProviderError("Paystack's transaction lacks a reference or currency")
    status = CHARGE_STATUSES.get(str(data.get("status")), ChargeStatus.PENDING)
    failed = status in (ChargeStatus.FAILED, ChargeStatus.ABANDONED)
    return Charge(
        reference=reference,
        status=status,
        amount_minor=minor_units(data.get("amount"), ProviderName.PAYSTACK),
        currency=currency.upper(),
        paid_at=_timestamp(data.get("paid_at") or data.get("paidAt")),
        failure_reason=_short(text_field(data, "gateway_response")) if failed else None,
        provider_reference=text_field(data, "id"),
        card=_reusable_card(mapping_field(data, "authorization")),
    )


def parse_payout(data: Any) -> Payout:
    """A transfer (initiate, verify, transfer.* webhooks) as coffer's Payout."""
    if not isinstance(data, dict):
        raise ProviderError("Paystack's transfer data is not an object")
    reference, currency = text_field(data, "reference"), text_field(data, "currency")
    if not reference or not currency:
        raise ProviderError("Paystack's transfer lacks a reference or currency")
    status = PAYOUT_STATUSES.get(str(data.get("status")), PayoutStatus.PENDING)
    failed = status in (PayoutStatus.FAILED, PayoutStatus.REVERSED)
    reason = text_field(data, "gateway_response") or text_field(data, "failures")
    return Payout(
        reference=reference,
        status=status,
        amount_minor=minor_units(data.get("amount"), ProviderName.PAYSTACK),
        currency=currency.upper(),
        transfer_code=text_field(data, "transfer_code"),
        failure_reason=_short(reason or f"Paystack reported the transfer {status}")
        if failed
        else None,
    )


def _reusable_card(authorization: Mapping[str, Any]) -> CardAuthorization | None:
    code = text_field(authorization, "authorization_code")
    if authorization.get("reusable") is not True or not code:
        return None
    return CardAuthorization(
        authorization_code=code,
        last4=text_field(authorization, "last4") or "",
        brand=(text_field(authorization, "brand") or text_field(authorization, "card_type") or "")
        .strip()
        .lower(),
        exp_month=text_field(authorization, "exp_month") or "",
        exp_year=text_field(authorization, "exp_year") or "",
        signature=text_field(authorization, "signature"),
    )


def _without_authorization_code(document: dict[str, Any]) -> dict[str, Any]:
    """The payload the inbox keeps: the card's authorization code is a secret."""
    data = document.get("data")
    authorization = data.get("authorization") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(authorization, dict):
        return document
    redacted = {key: value for key, value in authorization.items() if key != "authorization_code"}
    return {**document, "data": {**data, "authorization": redacted}}


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _short(text: str | None) -> str | None:
    return text[:MAX_MESSAGE_CHARS] if text else None
