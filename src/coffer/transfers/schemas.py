"""Request and response bodies of the transfer routes."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from coffer.models import TransferStatus
from coffer.schemas import AmountInput, AmountOutput, RequestSchema, Schema, UtcDateTime
from coffer.transfers.requests import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_NARRATION_LENGTH,
    AcceptedTransfer,
    RecipientKind,
)
from coffer.transfers.status import TransferView


class TransferCreate(RequestSchema):
    """Exactly one of wallet_number, email or phone names the recipient."""

    wallet_number: str | None = Field(default=None, max_length=32, examples=["4921873365012"])
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32, description="With country code")
    amount: AmountInput
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        description="Same as the Idempotency-Key header; send either or both (equal).",
    )
    narration: str | None = Field(default=None, max_length=MAX_NARRATION_LENGTH)
    quote_id: str | None = Field(
        default=None,
        max_length=64,
        description="A POST /fx/quote id: a transfer into another currency at that locked rate.",
    )

    @model_validator(mode="after")
    def _one_recipient(self) -> Self:
        given = [v for v in (self.wallet_number, self.email, self.phone) if v is not None]
        if len(given) != 1:
            raise ValueError("Give exactly one of wallet_number, email or phone")
        return self

    @property
    def recipient(self) -> tuple[RecipientKind, str]:
        if self.wallet_number is not None:
            return RecipientKind.WALLET_NUMBER, self.wallet_number
        if self.email is not None:
            return RecipientKind.EMAIL, self.email
        return RecipientKind.PHONE, self.phone or ""


class TransferAccepted(Schema):
    reference: str
    status: TransferStatus = Field(
        description="The state at acceptance (pending); poll the status route for progress."
    )
    amount: AmountOutput
    currency: str
    recipient_wallet: str
    created_at: UtcDateTime
    receive_amount: AmountOutput | None = Field(
        default=None,
        description="What the recipient gets, when their wallet is in another currency",
    )
    receive_currency: str | None = None
    fx_rate: str | None = Field(default=None, description="Units of receive_currency per unit sent")
    fee: AmountOutput | None = Field(default=None, description="FX spread, included in amount")

    @classmethod
    def of(cls, accepted: AcceptedTransfer) -> TransferAccepted:
        receive = accepted.receive_amount
        return cls(
            reference=accepted.reference,
            # The answer of the request that made it, replayed as it was first given.
            status=TransferStatus.PENDING,
            amount=accepted.amount.format(),
            currency=accepted.amount.currency.code,
            recipient_wallet=accepted.recipient_wallet_number,
            created_at=accepted.created_at,
            receive_amount=receive.format() if receive else None,
            receive_currency=receive.currency.code if receive else None,
            fx_rate=str(accepted.fx_rate) if accepted.fx_rate is not None else None,
            fee=accepted.fee.format() if accepted.fee else None,
        )


class TransferStatusOut(Schema):
    reference: str
    status: TransferStatus
    amount: AmountOutput
    currency: str
    recipient_wallet: str
    created_at: UtcDateTime
    completed_at: UtcDateTime | None = None
    error: str | None = Field(default=None, description="Why it failed (a stable error code)")
    failed_at: UtcDateTime | None = None

    @classmethod
    def of(cls, view: TransferView) -> TransferStatusOut:
        completed = view.status is TransferStatus.COMPLETED
        failed = view.status is TransferStatus.FAILED
        return cls(
            reference=view.reference,
            status=view.status,
            amount=view.amount.format(),
            currency=view.amount.currency.code,
            recipient_wallet=view.recipient_wallet_number,
            created_at=view.created_at,
            completed_at=view.settled_at if completed else None,
            error=view.failure_reason if failed else None,
            failed_at=view.settled_at if failed else None,
        )
