"""Request and response bodies of the payments routes."""

from __future__ import annotations

from pydantic import Field

from coffer.models import PayoutDestination, SavedCard
from coffer.payments.deposits import DepositView
from coffer.payments.destinations import MAX_ACCOUNT_NUMBER_LENGTH
from coffer.payments.providers.base import Bank
from coffer.payments.withdrawals import MAX_NARRATION_LENGTH, WithdrawalView
from coffer.schemas import AmountInput, AmountOutput, RequestSchema, Schema, UtcDateTime


class DepositCreate(RequestSchema):
    amount: AmountInput
    currency: str | None = Field(
        default=None, min_length=3, max_length=3, description="Default: the primary wallet's"
    )
    callback_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://",
        description="Where the payer's browser returns after the checkout",
    )
    saved_card_id: int | None = Field(
        default=None, ge=1, description="Charge this saved card: no checkout page, no redirect"
    )


class DepositStarted(Schema):
    reference: str
    authorization_url: str | None
    """Null for a saved-card charge."""
    amount: AmountOutput
    currency: str
    provider: str
    status: str

    @classmethod
    def of(cls, view: DepositView) -> DepositStarted:
        return cls(
            reference=view.reference,
            authorization_url=view.authorization_url,
            amount=view.amount.format(),
            currency=view.amount.currency.code,
            provider=view.provider,
            status=view.status,
        )


class DepositStatusOut(Schema):
    reference: str
    status: str
    amount: AmountOutput
    currency: str
    failure_reason: str | None
    created_at: UtcDateTime
    paid_at: UtcDateTime | None

    @classmethod
    def of(cls, view: DepositView) -> DepositStatusOut:
        return cls(
            reference=view.reference,
            status=view.status,
            amount=view.amount.format(),
            currency=view.amount.currency.code,
            failure_reason=view.failure_reason,
            created_at=view.created_at,
            paid_at=view.paid_at,
        )


class BankOut(Schema):
    name: str
    code: str
    currency: str

    @classmethod
    def of(cls, bank: Bank) -> BankOut:
        return cls(name=bank.name, code=bank.code, currency=bank.currency)


class DestinationCreate(RequestSchema):
    bank_code: str = Field(min_length=1, max_length=32)
    account_number: str = Field(
        min_length=4, max_length=MAX_ACCOUNT_NUMBER_LENGTH, pattern=r"^[0-9A-Za-z]+$"
    )
    currency: str | None = Field(
        default=None, min_length=3, max_length=3, description="Default: the primary wallet's"
    )


class DestinationOut(Schema):
    """An account is shown by its last four digits only."""

    id: int
    provider: str
    currency: str
    bank_code: str
    bank_name: str
    account_name: str
    account_last4: str
    created_at: UtcDateTime

    @classmethod
    def of(cls, destination: PayoutDestination) -> DestinationOut:
        return cls(
            id=destination.id,
            provider=destination.provider,
            currency=destination.currency,
            bank_code=destination.bank_code,
            bank_name=destination.bank_name,
            account_name=destination.account_name,
            account_last4=destination.account_last4,
            created_at=destination.created_at,
        )


class CardOut(Schema):
    id: int
    provider: str
    brand: str
    last4: str
    exp_month: str
    exp_year: str
    created_at: UtcDateTime

    @classmethod
    def of(cls, card: SavedCard) -> CardOut:
        return cls(
            id=card.id,
            provider=card.provider,
            brand=card.brand,
            last4=card.last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
            created_at=card.created_at,
        )


class WithdrawalCreate(RequestSchema):
    amount: AmountInput
    destination_id: int = Field(ge=1)
    narration: str | None = Field(default=None, max_length=MAX_NARRATION_LENGTH)


class WithdrawalOut(Schema):
    reference: str
    status: str
    amount: AmountOutput
    currency: str
    destination_id: int
    bank_name: str
    account_last4: str
    failure_reason: str | None
    created_at: UtcDateTime
    completed_at: UtcDateTime | None

    @classmethod
    def of(cls, view: WithdrawalView) -> WithdrawalOut:
        return cls(
            reference=view.reference,
            status=view.status,
            amount=view.amount.format(),
            currency=view.amount.currency.code,
            destination_id=view.destination_id,
            bank_name=view.bank_name,
            account_last4=view.account_last4,
            failure_reason=view.failure_reason,
            created_at=view.created_at,
            completed_at=view.completed_at,
        )
