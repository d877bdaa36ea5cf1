"""What a transfer request is, the shape it must have, and the fingerprint that tells a
replay from a reused idempotency key."""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from coffer.db import ResultRow
from coffer.errors import AppError, ValidationFailed
from coffer.fx import service as fx
from coffer.fx.conversion import Conversion
from coffer.identity.service import InvalidEmail, InvalidPhone, normalize_email, normalize_phone
from coffer.kit.money import Money
from coffer.transfers.errors import RecipientNotFound
from coffer.wallets.limits import LimitClaim
from coffer.wallets.numbers import is_valid_wallet_number
from coffer.wallets.service import InvalidWalletNumber

MAX_NARRATION_LENGTH = 255
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class RecipientKind(StrEnum):
    WALLET_NUMBER = "wallet_number"
    EMAIL = "email"
    PHONE = "phone"


@dataclass(frozen=True, slots=True)
class TransferRequest:
    sender_user_id: uuid.UUID
    recipient_kind: RecipientKind
    recipient: str
    amount: object
    """The client's amount as sent: a string, an int or an exact Decimal (never a float)."""
    sender_wallet_number: str | None = None
    """None means the sender's primary wallet."""
    narration: str | None = None
    idempotency_key: str | None = None
    quote_id: str | None = None
    """Use this quote's rate and fee (its amount and currencies must match the transfer)."""


@dataclass(frozen=True, slots=True)
class AcceptedTransfer:
    reference: str
    status: str
    amount: Money
    recipient_wallet_number: str
    created_at: datetime
    replayed: bool
    """True when an earlier request with the same idempotency key made this transfer."""
    receive_amount: Money | None = None
    """What the recipient gets, when it is in another currency."""
    fx_rate: Decimal | None = None
    fee: Money | None = None
    """The FX spread, included in `amount`."""

    @classmethod
    def priced(
        cls,
        *,
        reference: str,
        status: str,
        recipient_wallet_number: str,
        created_at: datetime,
        replayed: bool,
        amount: Money,
        conversion: Conversion | None,
    ) -> AcceptedTransfer:
        return cls(
            reference=reference,
            status=status,
            amount=amount,
            recipient_wallet_number=recipient_wallet_number,
            created_at=created_at,
            replayed=replayed,
            receive_amount=conversion.receive if conversion else None,
            fx_rate=conversion.rate if conversion else None,
            fee=conversion.fee if conversion else None,
        )


TransferOutcome = AcceptedTransfer | AppError


@dataclass(slots=True)
class Candidate:
    """A request that passed its shape and sender checks, with what intake learned about it."""

    index: int
    """Its position in the intake batch (and in the list of outcomes)."""
    request: TransferRequest
    sender: ResultRow
    recipient: ResultRow
    amount: Money
    fingerprint: str
    reference: str
    conversion: Conversion | None = None
    allowance: tuple[LimitClaim, int] | None = None
    """The daily-limit claim this request makes, and the limit (minor units) it must fit."""

    @property
    def scoped_key(self) -> tuple[uuid.UUID, str] | None:
        """The idempotency key with its scope (the sender), when the request has one."""
        key = self.request.idempotency_key
        return None if key is None else (self.request.sender_user_id, key)


def new_reference() -> str:
    return f"TRF_{secrets.token_hex(12).upper()}"


def fingerprint(
    sender_wallet_id: int,
    recipient_wallet_id: int,
    amount: Money,
    narration: str | None,
    quote_id: str | None,
) -> str:
    content: list[object] = [
        sender_wallet_id,
        recipient_wallet_id,
        amount.minor,
        amount.currency.code,
        narration or "",
    ]
    # Only when present, so fingerprints stored before quotes existed still match.
    if quote_id is not None:
        content.append(quote_id)
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


def normalized_recipient(request: TransferRequest) -> str:
    if request.recipient_kind is RecipientKind.WALLET_NUMBER:
        if not is_valid_wallet_number(request.recipient):
            raise InvalidWalletNumber()
        return request.recipient
    try:
        if request.recipient_kind is RecipientKind.EMAIL:
            return normalize_email(request.recipient)
        return normalize_phone(request.recipient)
    except (InvalidEmail, InvalidPhone) as exc:
        raise RecipientNotFound() from exc


def check_shape(request: TransferRequest) -> None:
    if request.narration is not None and len(request.narration) > MAX_NARRATION_LENGTH:
        raise ValidationFailed(f"The narration has at most {MAX_NARRATION_LENGTH} characters")
    key = request.idempotency_key
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValidationFailed(
            f"The idempotency key has 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters"
        )
    quote_id = request.quote_id
    if quote_id is not None and not 1 <= len(quote_id) <= fx.MAX_QUOTE_ID_LENGTH:
        raise fx.QuoteNotFound()
