"""Request and response bodies of the wallet routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from coffer.errors import ValidationFailed
from coffer.kit.money import Money, format_minor, get_currency
from coffer.models import Transaction, TransactionStatus, TransactionType, Wallet, WalletStatus
from coffer.schemas import AmountOutput, RequestSchema, Schema, UtcDateTime


class WalletBalance(Schema):
    balance: AmountOutput
    currency: str
    wallet_number: str


class WalletOut(Schema):
    wallet_number: str
    currency: str
    name: str | None
    status: WalletStatus
    is_primary: bool
    balance: AmountOutput
    created_at: UtcDateTime

    @classmethod
    def of(cls, wallet: Wallet, balance: Money) -> WalletOut:
        return cls(
            wallet_number=wallet.number,
            currency=wallet.currency,
            name=wallet.name,
            status=WalletStatus(wallet.status),
            is_primary=wallet.is_primary,
            balance=balance.format(),
            created_at=wallet.created_at,
        )


class WalletList(Schema):
    wallets: list[WalletOut]


class WalletCreate(RequestSchema):
    currency: str = Field(min_length=3, max_length=3, examples=["USD"])
    name: str | None = Field(default=None, min_length=1, max_length=64)


class WalletUpdate(RequestSchema):
    name: str | None = Field(min_length=1, max_length=64, description="Null clears the name.")


class Counterparty(Schema):
    wallet_number: str | None
    name: str | None


class TransactionOut(Schema):
    id: int
    type: TransactionType
    amount: AmountOutput
    currency: str
    status: TransactionStatus
    reference: str
    counterparty: Counterparty | None
    failure_reason: str | None
    metadata: dict[str, Any]
    created_at: UtcDateTime

    @classmethod
    def of(cls, row: Transaction) -> TransactionOut:
        has_counterparty = row.counterparty_wallet_number or row.counterparty_name
        return cls(
            id=row.id,
            type=TransactionType(row.type),
            amount=format_minor(row.amount_minor, get_currency(row.currency)),
            currency=row.currency,
            status=TransactionStatus(row.status),
            reference=row.reference,
            counterparty=Counterparty(
                wallet_number=row.counterparty_wallet_number, name=row.counterparty_name
            )
            if has_counterparty
            else None,
            failure_reason=row.failure_reason,
            metadata=row.metadata_,
            created_at=row.created_at,
        )


class TransactionPage(Schema):
    transactions: list[TransactionOut]
    next_cursor: str | None


def as_utc(moment: datetime | None) -> datetime | None:
    """A query's time in UTC (without a zone it is read as UTC); a time that has no UTC
    equivalent (year 1 at +01:00) is refused rather than overflowing later."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValidationFailed("The time is out of range") from exc
