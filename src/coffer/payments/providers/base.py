"""The payment provider protocol: what coffer asks of Paystack, Stripe or the sandbox.

Providers speak their own wire formats (../shared/PROVIDERS.md) and hand back these plain
values, so the payments domain never sees a provider's JSON. Every call runs outside the
caller's database transaction: an HTTP call must never hold a row lock or SQLite's write lock.
Amounts are integer minor units; currencies are upper-case ISO codes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from coffer.errors import AppError


class ProviderName(StrEnum):
    SANDBOX = "sandbox"
    PAYSTACK = "paystack"
    STRIPE = "stripe"


class ProviderError(AppError):
    """The provider refused the request (a 4xx of theirs, or an answer we cannot use)."""

    code = "provider_error"
    http_status = 502
    default_message = "The payment provider refused the request"


class UnknownProviderReference(ProviderError):
    """The provider has no record of the reference: the initialize call never reached it."""

    code = "provider_reference_unknown"
    default_message = "The payment provider has no record of this reference"


class ProviderUnavailable(AppError):
    """Network error, timeout or 5xx after the retries: the outcome is unknown, retry later."""

    code = "provider_unavailable"
    http_status = 503
    default_message = "The payment provider is not answering; try again shortly"


class InvalidSignature(AppError):
    code = "invalid_signature"
    http_status = 401
    default_message = "The webhook signature does not verify"


class PayoutsNotSupported(AppError):
    code = "payouts_not_supported"
    http_status = 422
    default_message = "This payment provider does not pay out in coffer"


class SavedCardsNotSupported(AppError):
    code = "saved_cards_not_supported"
    http_status = 422
    default_message = "This payment provider cannot charge a saved card"


class ChargeStatus(StrEnum):
    PENDING = "pending"
    """Not final: ongoing, processing, queued, open or unpaid."""
    SUCCESS = "success"
    FAILED = "failed"
    ABANDONED = "abandoned"
    """The customer never paid (Paystack `abandoned`, Stripe session `expired`)."""
    REVERSED = "reversed"


class PayoutStatus(StrEnum):
    PENDING = "pending"
    """Accepted or queued by the provider: never final."""
    SUCCESS = "success"
    FAILED = "failed"
    REVERSED = "reversed"
    OTP_REQUIRED = "otp_required"
    """Paystack asks for an OTP: the operator must turn OTP off for API payouts."""


class WebhookKind(StrEnum):
    CHARGE = "charge"
    """`charge` holds the outcome of a deposit."""
    PAYOUT = "payout"
    """`payout` holds the outcome of a withdrawal."""
    IGNORED = "ignored"
    """A verified event coffer does not act on (stored, acknowledged, nothing applied)."""


@dataclass(frozen=True, slots=True)
class DepositRequest:
    reference: str
    """Ours, generated and stored before the call: `-`, `.`, `=` and alphanumerics only."""
    amount_minor: int
    currency: str
    email: str
    callback_url: str
    """Where the customer's browser returns after paying (Stripe: success and cancel URL)."""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Checkout:
    authorization_url: str
    """The page the customer pays on."""
    provider_reference: str
    """Paystack's access_code, Stripe's checkout session id (`cs_…`), the sandbox's reference."""


@dataclass(frozen=True, slots=True)
class CardAuthorization:
    """A reusable card a provider reported after a charge. `authorization_code` is a secret."""

    authorization_code: str
    last4: str
    brand: str
    exp_month: str
    exp_year: str
    signature: str | None
    """The provider's fingerprint of the card: the same card paid twice has one signature."""


@dataclass(frozen=True, slots=True)
class Charge:
    """What a provider says about one deposit, from verify or from a webhook."""

    reference: str
    status: ChargeStatus
    amount_minor: int
    currency: str
    paid_at: datetime | None = None
    failure_reason: str | None = None
    provider_reference: str | None = None
    card: CardAuthorization | None = None
    """Set only when the provider marks the authorization reusable."""


@dataclass(frozen=True, slots=True)
class Bank:
    name: str
    code: str
    currency: str


@dataclass(frozen=True, slots=True)
class ResolvedAccount:
    account_number: str
    account_name: str
    bank_code: str


@dataclass(frozen=True, slots=True)
class PayoutRequest:
    reference: str
    """Ours: lowercase alphanumerics, `-` and `_`, 16 to 50 characters (Paystack's rule)."""
    amount_minor: int
    currency: str
    recipient_code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Payout:
    """What a provider says about one withdrawal, from initiate, verify or a webhook."""

    reference: str
    status: PayoutStatus
    amount_minor: int
    currency: str
    transfer_code: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified delivery. `event_key` is unique per provider and is what the inbox dedupes on:
    Stripe's event id; for Paystack, which sends none, the event type plus the reference or
    transfer code."""

    provider: ProviderName
    event_key: str
    event_type: str
    kind: WebhookKind
    charge: Charge | None = None
    payout: Payout | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    """The parsed body, kept in the inbox for review. Never holds a card authorization code."""


class PaymentProvider(Protocol):
    name: ProviderName

    async def initialize_deposit(self, request: DepositRequest) -> Checkout: ...

    async def verify_deposit(self, reference: str, provider_reference: str | None) -> Charge:
        """The provider's current word on a deposit (Stripe needs the session id)."""
        ...

    def verify_and_parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Check the signature over the raw bytes first (constant time), then parse.

        Raises `InvalidSignature` for a missing, wrong or stale signature and when no secret
        is configured (an empty secret would verify an empty signature)."""
        ...

    async def charge_saved_card(
        self,
        *,
        reference: str,
        amount_minor: int,
        currency: str,
        email: str,
        authorization_code: str,
    ) -> Charge: ...

    async def list_banks(self, currency: str) -> Sequence[Bank]: ...

    async def resolve_account(self, bank_code: str, account_number: str) -> ResolvedAccount: ...

    async def create_recipient(
        self, *, name: str, account_number: str, bank_code: str, currency: str
    ) -> str:
        """Returns the provider's recipient code (`RCP_…`); the same account gives the same."""
        ...

    async def initiate_payout(self, request: PayoutRequest) -> Payout: ...

    async def verify_payout(self, reference: str) -> Payout: ...

    async def aclose(self) -> None: ...
