"""The built-in provider (COFFER_PAYMENT_PROVIDER=sandbox): real flows, no real money, offline.

A checkout is coffer's own page (`GET /sandbox/checkout/{reference}`); its Pay and Decline
buttons send a signed webhook through the same inbox as Paystack's and Stripe's, then send the
browser back to the deposit's callback URL. Payouts are simulated by account number, and their
webhooks are delivered by a job, so they arrive later, as a real provider's do:

- an account number ending in `0000`: the payout fails (`transfer.failed`);
- ending in `1111`: the provider asks for an OTP (coffer fails the payout, `payout_requires_otp`);
- ending in `9999`: it succeeds, then is reversed (`transfer.success`, then `transfer.reversed`);
- anything else: it succeeds (`transfer.success`).

Any 10-digit account number resolves, to "Sandbox Holder <last four>". Webhooks are signed with
HMAC-SHA256 (hex, header `x-sandbox-signature`) under COFFER_SANDBOX_WEBHOOK_SECRET.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from coffer.db import Database
from coffer.jobs.outbox import enqueue
from coffer.kit.clock import utcnow
from coffer.kit.crypto import derive_key
from coffer.models import SandboxCharge
from coffer.payments import sandbox_repository
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
    PayoutStatus,
    ProviderError,
    ProviderName,
    ResolvedAccount,
    UnknownProviderReference,
    WebhookEvent,
    WebhookKind,
)
from coffer.settings import Environment, Settings

SIGNATURE_HEADER = "x-sandbox-signature"
DELIVER_PAYOUT_JOB = "payments.sandbox_deliver_payout"
BANKS = (("001", "Sandbox Bank"), ("002", "Test Savings Bank"))
ACCOUNT_NUMBER_DIGITS = 10
_PAYOUT_RULES: dict[str, tuple[PayoutStatus, ...]] = {
    "0000": (PayoutStatus.FAILED,),
    "9999": (PayoutStatus.SUCCESS, PayoutStatus.REVERSED),
}
OTP_SUFFIX = "1111"
_CHARGE_EVENTS = {"charge.success": ChargeStatus.SUCCESS, "charge.failed": ChargeStatus.FAILED}
_PAYOUT_EVENTS = {
    "transfer.success": PayoutStatus.SUCCESS,
    "transfer.failed": PayoutStatus.FAILED,
    "transfer.reversed": PayoutStatus.REVERSED,
}
_EVENT_OF_PAYOUT = {status: event for event, status in _PAYOUT_EVENTS.items()}


def webhook_secret(settings: Settings) -> bytes | None:
    """The signing secret; outside production an unset one is derived, so `make run` works.
    None (production, unset) refuses every webhook: an empty key would verify anything."""
    if settings.sandbox_webhook_secret is not None:
        secret = settings.sandbox_webhook_secret.get_secret_value().encode()
        return secret or None
    if settings.env is Environment.PRODUCTION:
        return None
    return derive_key(settings, "sandbox-webhook")


def sign(secret: bytes, raw_body: bytes) -> str:
    return hmac.new(secret, raw_body, hashlib.sha256).hexdigest()


def payout_outcomes(account_suffix: str) -> tuple[PayoutStatus, ...]:
    """The events the simulator sends for a payout to an account ending in `account_suffix`."""
    return _PAYOUT_RULES.get(account_suffix, (PayoutStatus.SUCCESS,))


def charge_event_body(charge: SandboxCharge) -> bytes:
    """The webhook body the checkout page sends once the payer chose."""
    data: dict[str, Any] = {
        "reference": charge.reference,
        "amount": charge.amount_minor,
        "currency": charge.currency,
        "status": charge.status,
        "paid_at": charge.paid_at.isoformat() if charge.paid_at else None,
    }
    if charge.authorization_code is not None:
        data["authorization"] = {
            "authorization_code": charge.authorization_code,
            "last4": "4242",
            "brand": "visa",
            "exp_month": "12",
            "exp_year": "2030",
            "reusable": True,
            "signature": "SIG_sbx_" + hashlib.sha256(charge.email.encode()).hexdigest()[:24],
        }
    event = "charge.success" if charge.status == ChargeStatus.SUCCESS else "charge.failed"
    return json.dumps({"event": event, "data": data}, separators=(",", ":")).encode()


def payout_event_body(payout: Payout) -> bytes:
    data = {
        "reference": payout.reference,
        "amount": payout.amount_minor,
        "currency": payout.currency,
        "transfer_code": payout.transfer_code,
        "status": payout.status.value,
        "reason": payout.failure_reason,
    }
    event = _EVENT_OF_PAYOUT[payout.status]
    return json.dumps({"event": event, "data": data}, separators=(",", ":")).encode()


def _card(data: Mapping[str, Any]) -> CardAuthorization | None:
    authorization = data.get("authorization")
    if not isinstance(authorization, dict) or authorization.get("reusable") is not True:
        return None
    return CardAuthorization(
        authorization_code=str(authorization["authorization_code"]),
        last4=str(authorization["last4"]),
        brand=str(authorization["brand"]),
        exp_month=str(authorization["exp_month"]),
        exp_year=str(authorization["exp_year"]),
        signature=authorization.get("signature"),
    )


def _without_secrets(document: dict[str, Any]) -> dict[str, Any]:
    data = dict(document.get("data") or {})
    if isinstance(data.get("authorization"), dict):
        data["authorization"] = {
            k: v for k, v in data["authorization"].items() if k != "authorization_code"
        }
    return {"event": document.get("event"), "data": data}


class SandboxProvider:
    name = ProviderName.SANDBOX

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database

    async def initialize_deposit(self, request: DepositRequest) -> Checkout:
        async with self.database.transaction() as session:
            await sandbox_repository.insert_sandbox_charge(
                session,
                SandboxCharge(
                    reference=request.reference,
                    amount_minor=request.amount_minor,
                    currency=request.currency,
                    email=request.email,
                    callback_url=request.callback_url,
                    status=ChargeStatus.PENDING,
                    created_at=utcnow(),
                ),
            )
        url = f"{self.settings.public_url.rstrip('/')}/sandbox/checkout/{request.reference}"
        return Checkout(authorization_url=url, provider_reference=request.reference)

    async def verify_deposit(self, reference: str, provider_reference: str | None) -> Charge:
        async with self.database.transaction() as session:
            charge = await sandbox_repository.sandbox_charge(session, reference)
        if charge is None:
            raise ProviderError("Transaction reference not found")
        return Charge(
            reference=charge.reference,
            status=ChargeStatus(charge.status),
            amount_minor=charge.amount_minor,
            currency=charge.currency,
            paid_at=charge.paid_at,
            failure_reason="declined" if charge.status == ChargeStatus.FAILED else None,
            provider_reference=charge.reference,
        )

    def verify_and_parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        secret = webhook_secret(self.settings)
        given = headers.get(SIGNATURE_HEADER, "")
        if secret is None or not hmac.compare_digest(sign(secret, raw_body), given):
            raise InvalidSignature()
        document = json.loads(raw_body)
        event_type = str(document.get("event", ""))
        data: dict[str, Any] = document.get("data") or {}
        reference = str(data.get("reference", ""))
        payload = _without_secrets(document)
        key = f"{event_type}:{reference}"
        if event_type in _CHARGE_EVENTS:
            charge = Charge(
                reference=reference,
                status=_CHARGE_EVENTS[event_type],
                amount_minor=int(data["amount"]),
                currency=str(data["currency"]),
                paid_at=datetime.fromisoformat(data["paid_at"]) if data.get("paid_at") else None,
                failure_reason="declined" if event_type == "charge.failed" else None,
                provider_reference=reference,
                card=_card(data),
            )
            return WebhookEvent(
                self.name, key, event_type, WebhookKind.CHARGE, charge=charge, payload=payload
            )
        if event_type in _PAYOUT_EVENTS:
            payout = Payout(
                reference=reference,
                status=_PAYOUT_EVENTS[event_type],
                amount_minor=int(data["amount"]),
                currency=str(data["currency"]),
                transfer_code=data.get("transfer_code"),
                failure_reason=data.get("reason"),
            )
            return WebhookEvent(
                self.name, key, event_type, WebhookKind.PAYOUT, payout=payout, payload=payload
            )
        return WebhookEvent(self.name, key, event_type, WebhookKind.IGNORED, payload=payload)

    async def charge_saved_card(
        self,
        *,
        reference: str,
        amount_minor: int,
        currency: str,
        email: str,
        authorization_code: str,
    ) -> Charge:
        now = utcnow()
        async with self.database.transaction() as session:
            known = await sandbox_repository.sandbox_authorization_exists(
                session, authorization_code
            )
            status = ChargeStatus.SUCCESS if known else ChargeStatus.FAILED
            await sandbox_repository.insert_sandbox_charge(
                session,
                SandboxCharge(
                    reference=reference,
                    amount_minor=amount_minor,
                    currency=currency,
                    email=email,
                    callback_url="",
                    status=status,
                    created_at=now,
                    paid_at=now if known else None,
                ),
            )
        return Charge(
            reference=reference,
            status=status,
            amount_minor=amount_minor,
            currency=currency,
            paid_at=now if known else None,
            failure_reason=None if known else "unknown_authorization",
            provider_reference=reference,
        )

    async def list_banks(self, currency: str) -> Sequence[Bank]:
        return [Bank(name=name, code=code, currency=currency) for code, name in BANKS]

    async def resolve_account(self, bank_code: str, account_number: str) -> ResolvedAccount:
        if bank_code not in dict(BANKS):
            raise ProviderError("Unknown bank code")
        if len(account_number) != ACCOUNT_NUMBER_DIGITS or not account_number.isdigit():
            raise ProviderError("Could not resolve account name")
        return ResolvedAccount(
            account_number=account_number,
            account_name=f"Sandbox Holder {account_number[-4:]}",
            bank_code=bank_code,
        )

    async def create_recipient(
        self, *, name: str, account_number: str, bank_code: str, currency: str
    ) -> str:
        digest = hashlib.sha256(f"{bank_code}:{account_number}:{currency}".encode()).hexdigest()
        code = f"RCP_sbx_{digest[:20]}"
        async with self.database.transaction() as session:
            await sandbox_repository.upsert_sandbox_recipient(session, code, account_number[-4:])
        return code

    async def initiate_payout(self, request: PayoutRequest) -> Payout:
        async with self.database.transaction() as session:
            suffix = await sandbox_repository.sandbox_recipient_suffix(
                session, request.recipient_code
            )
            if suffix is None:
                raise ProviderError("Recipient specified is invalid")
            if suffix == OTP_SUFFIX:
                return Payout(
                    request.reference,
                    PayoutStatus.OTP_REQUIRED,
                    request.amount_minor,
                    request.currency,
                )
            transfer_code = f"TRF_sbx_{secrets.token_hex(10)}"
            created = await sandbox_repository.insert_sandbox_payout(
                session,
                {
                    "reference": request.reference,
                    "transfer_code": transfer_code,
                    "recipient_code": request.recipient_code,
                    "amount_minor": request.amount_minor,
                    "currency": request.currency,
                    "status": PayoutStatus.PENDING.value,
                    "created_at": utcnow(),
                },
            )
            if created:
                await enqueue(session, DELIVER_PAYOUT_JOB, {"reference": request.reference})
            stored = await sandbox_repository.sandbox_payout(session, request.reference)
        if stored is None:
            raise ProviderError("The payout could not be recorded")
        return Payout(
            stored.reference,
            PayoutStatus(stored.status),
            stored.amount_minor,
            stored.currency,
            transfer_code=stored.transfer_code,
        )

    async def verify_payout(self, reference: str) -> Payout:
        async with self.database.transaction() as session:
            stored = await sandbox_repository.sandbox_payout(session, reference)
        if stored is None:
            raise UnknownProviderReference("Transfer not found")
        return Payout(
            stored.reference,
            PayoutStatus(stored.status),
            stored.amount_minor,
            stored.currency,
            transfer_code=stored.transfer_code,
            failure_reason=stored.failure_reason,
        )

    async def aclose(self) -> None:
        return None
