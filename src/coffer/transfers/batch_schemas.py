"""Request and response bodies of the batch transfer routes."""

from __future__ import annotations

import uuid

from pydantic import Field

from coffer.errors import AppError
from coffer.models import BatchMode
from coffer.schemas import AmountInput, RequestSchema, Schema, UtcDateTime
from coffer.transfers.batches import MAX_BATCH_ITEMS, AcceptedBatch, BatchProgress
from coffer.transfers.requests import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_NARRATION_LENGTH,
    AcceptedTransfer,
    RecipientKind,
    TransferRequest,
)
from coffer.transfers.schemas import TransferAccepted


class BatchItemCreate(RequestSchema):
    """One transfer of a batch, to a wallet number. (Recipients by email or phone are for the
    single-transfer route, which limits lookups that find nobody; a batch of them would look
    up a thousand addresses at once.)"""

    wallet_number: str = Field(max_length=32, examples=["4921873365012"])
    amount: AmountInput
    idempotency_key: str = Field(
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        description="This transfer's own key: unique within the batch; a retry replays it.",
    )
    narration: str | None = Field(default=None, max_length=MAX_NARRATION_LENGTH)
    from_wallet: str | None = Field(
        default=None,
        max_length=32,
        description="Which of your wallets pays (its number); your primary wallet if omitted.",
    )

    def request(self, sender_user_id: uuid.UUID) -> TransferRequest:
        return TransferRequest(
            sender_user_id=sender_user_id,
            recipient_kind=RecipientKind.WALLET_NUMBER,
            recipient=self.wallet_number,
            amount=self.amount,
            sender_wallet_number=self.from_wallet,
            narration=self.narration,
            idempotency_key=self.idempotency_key,
        )


class TransferBatchCreate(RequestSchema):
    mode: BatchMode = Field(
        description="`independent`: each transfer its own outcome; `linked`: all or none."
    )
    transfers: list[BatchItemCreate] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class ItemError(Schema):
    code: str
    message: str


class BatchItemResult(Schema):
    index: int
    idempotency_key: str
    accepted: bool
    replayed: bool = Field(description="An earlier request with this key made the transfer")
    transfer: TransferAccepted | None = None
    error: ItemError | None = Field(
        default=None,
        description="Why it was refused; in a linked batch the others say linked_event_failed",
    )

    @classmethod
    def of(cls, index: int, key: str, outcome: AcceptedTransfer | AppError) -> BatchItemResult:
        if isinstance(outcome, AppError):
            return cls(
                index=index,
                idempotency_key=key,
                accepted=False,
                replayed=False,
                error=ItemError(code=outcome.code, message=outcome.message),
            )
        return cls(
            index=index,
            idempotency_key=key,
            accepted=True,
            replayed=outcome.replayed,
            transfer=TransferAccepted.of(outcome),
        )


class BatchAccepted(Schema):
    batch_id: str
    mode: BatchMode
    created_at: UtcDateTime
    accepted: int
    refused: int
    items: list[BatchItemResult]

    @classmethod
    def of(cls, batch: AcceptedBatch) -> BatchAccepted:
        items = [
            BatchItemResult.of(index, key, outcome)
            for index, (key, outcome) in enumerate(zip(batch.keys, batch.outcomes, strict=True))
        ]
        accepted = sum(item.accepted for item in items)
        return cls(
            batch_id=batch.reference,
            mode=batch.mode,
            created_at=batch.created_at,
            accepted=accepted,
            refused=len(items) - accepted,
            items=items,
        )


class BatchItemStatus(Schema):
    index: int
    idempotency_key: str
    reference: str | None = Field(description="The transfer, when the item was accepted")
    status: str = Field(description="pending, completed, failed, or refused (at acceptance)")
    error: str | None = Field(default=None, description="Why it failed or was refused")


class BatchProgressOut(Schema):
    batch_id: str
    mode: BatchMode
    created_at: UtcDateTime
    counts: dict[str, int] = Field(description="Items per status")
    items: list[BatchItemStatus]

    @classmethod
    def of(cls, progress: BatchProgress) -> BatchProgressOut:
        return cls(
            batch_id=progress.reference,
            mode=progress.mode,
            created_at=progress.created_at,
            counts=progress.counts,
            items=[
                BatchItemStatus(
                    index=index,
                    idempotency_key=item.idempotency_key,
                    reference=item.reference,
                    status=item.status,
                    error=item.error,
                )
                for index, item in enumerate(progress.items)
            ],
        )
