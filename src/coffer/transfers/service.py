"""Accepting transfer requests and settling them in batches.

Accepting (`create_transfers`) validates and stores requests as pending; a list of requests
in one session is the primitive and a single request is a list of one (DESIGN.md §11). Each
request gets its own outcome: one bad request never fails its neighbours.

Settling (`process_batch`) claims pending transfers oldest first, posts them through the
ledger as one batch, marks each completed or failed, writes both sides' history and an outbox
event, all in the caller's single transaction.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import ResultRow
from coffer.errors import AppError, ValidationFailed
from coffer.identity.service import InvalidEmail, InvalidPhone, normalize_email, normalize_phone
from coffer.jobs.outbox import enqueue
from coffer.kit.clock import utcnow
from coffer.kit.money import HARD_MAX_MINOR, Money, parse_amount
from coffer.ledger import service as ledger
from coffer.ledger.errors import InsufficientFunds
from coffer.ledger.postings import EntryKind, EntryRequest
from coffer.models import (
    TransactionStatus,
    TransactionType,
    TransferStatus,
    WalletStatus,
)
from coffer.transfers import repository
from coffer.wallets import repository as wallet_repository
from coffer.wallets.numbers import is_valid_wallet_number
from coffer.wallets.service import InvalidWalletNumber, WalletNotFound

PROCESS_JOB = "transfers.process"
SETTLED_JOB = "notifications.transfers_settled"
MAX_NARRATION_LENGTH = 255
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class RecipientNotFound(AppError):
    code = "recipient_not_found"
    http_status = 404
    default_message = "Recipient not found"


class CannotTransferToSelf(AppError):
    code = "cannot_transfer_to_self"
    http_status = 400
    default_message = "You cannot transfer to your own wallet"


class WalletFrozen(AppError):
    code = "wallet_frozen"
    http_status = 403
    default_message = "The wallet is frozen"


class WalletBlocked(AppError):
    code = "wallet_blocked"
    http_status = 403
    default_message = "The wallet is blocked until its fees are paid"


class WalletClosed(AppError):
    code = "wallet_closed"
    http_status = 403
    default_message = "The wallet is closed"


class AccountInactive(AppError):
    code = "account_inactive"
    http_status = 403
    default_message = "The account is not active"


class RecipientInactive(AppError):
    code = "recipient_inactive"
    http_status = 400
    default_message = "The recipient cannot receive money right now"


class CurrencyMismatch(AppError):
    code = "currency_mismatch"
    http_status = 422
    default_message = "The recipient's wallet is in another currency"


class IdempotencyKeyReused(AppError):
    code = "idempotency_key_reused"
    http_status = 422
    default_message = "This idempotency key was already used for a different request"


class IdempotencyKeyInUse(AppError):
    code = "idempotency_key_in_use"
    http_status = 409
    default_message = "A request with this idempotency key is still being processed"


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


@dataclass(frozen=True, slots=True)
class AcceptedTransfer:
    reference: str
    status: str
    amount: Money
    recipient_wallet_number: str
    created_at: datetime
    replayed: bool
    """True when an earlier request with the same idempotency key made this transfer."""


TransferOutcome = AcceptedTransfer | AppError

_OUTGOING_REFUSALS: dict[str, type[AppError]] = {
    WalletStatus.FROZEN: WalletFrozen,
    WalletStatus.BLOCKED: WalletBlocked,
    WalletStatus.CLOSED: WalletClosed,
}


def new_reference() -> str:
    return f"TRF_{secrets.token_hex(12).upper()}"


def _fingerprint(
    sender_wallet_id: int, recipient_wallet_id: int, amount: Money, narration: str | None
) -> str:
    content = json.dumps(
        [sender_wallet_id, recipient_wallet_id, amount.minor, amount.currency.code, narration or ""]
    )
    return hashlib.sha256(content.encode()).hexdigest()


def _normalized_recipient(request: TransferRequest) -> str:
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


def _check_request_shape(request: TransferRequest) -> None:
    if request.narration is not None and len(request.narration) > MAX_NARRATION_LENGTH:
        raise ValidationFailed(f"The narration has at most {MAX_NARRATION_LENGTH} characters")
    key = request.idempotency_key
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValidationFailed(
            f"The idempotency key has 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters"
        )


class _Directory:
    """Wallets and owners needed by one batch of requests, loaded in two queries."""

    def __init__(
        self, sender_rows: Sequence[ResultRow], recipient_rows: Sequence[ResultRow]
    ) -> None:
        self.by_user: dict[uuid.UUID, list[ResultRow]] = {}
        for row in sender_rows:
            self.by_user.setdefault(row.user_id, []).append(row)
        self.by_number = {row.number: row for row in (*sender_rows, *recipient_rows)}
        self.by_email: dict[str, list[ResultRow]] = {}
        self.by_phone: dict[str, list[ResultRow]] = {}
        for row in recipient_rows:
            self.by_email.setdefault(row.email, []).append(row)
            if row.phone:
                self.by_phone.setdefault(row.phone, []).append(row)

    def sender_wallet(self, request: TransferRequest) -> ResultRow:
        wallets = self.by_user.get(request.sender_user_id, [])
        for row in wallets:
            if (
                row.number == request.sender_wallet_number
                if request.sender_wallet_number
                else row.is_primary
            ):
                return row
        raise WalletNotFound()

    def recipient_wallet(self, kind: RecipientKind, recipient: str, currency: str) -> ResultRow:
        if kind is RecipientKind.WALLET_NUMBER:
            row = self.by_number.get(recipient)
            if row is None:
                raise RecipientNotFound()
            return row
        index = self.by_email if kind is RecipientKind.EMAIL else self.by_phone
        wallets = index.get(recipient)
        if not wallets:
            raise RecipientNotFound()
        # The recipient's wallet in the sender's currency, else their primary one.
        return next((w for w in wallets if w.currency == currency), None) or next(
            w for w in wallets if w.is_primary
        )


@dataclass(slots=True)
class _Candidate:
    index: int
    request: TransferRequest
    sender: ResultRow
    recipient: ResultRow
    amount: Money
    fingerprint: str
    reference: str


async def create_transfers(
    session: AsyncSession,
    requests: Sequence[TransferRequest],
    *,
    max_amount_minor: int = HARD_MAX_MINOR,
) -> list[TransferOutcome]:
    """Validate and store each request as a pending transfer; one outcome per request, in order."""
    outcomes: list[TransferOutcome | None] = [None] * len(requests)
    recipients: dict[int, str] = {}
    for index, request in enumerate(requests):
        try:
            _check_request_shape(request)
            recipients[index] = _normalized_recipient(request)
        except AppError as error:
            outcomes[index] = error

    directory = _Directory(
        await repository.wallets_of_users(
            session, sorted({requests[i].sender_user_id for i in recipients})
        ),
        await repository.wallets_matching(
            session,
            *(
                sorted({v for i, v in recipients.items() if requests[i].recipient_kind is kind})
                for kind in RecipientKind
            ),
        ),
    )

    candidates: list[_Candidate] = []
    for index, recipient in recipients.items():
        request = requests[index]
        try:
            sender = directory.sender_wallet(request)
            target = directory.recipient_wallet(request.recipient_kind, recipient, sender.currency)
            amount = parse_amount(request.amount, sender.currency, max_minor=max_amount_minor)
        except AppError as error:
            outcomes[index] = error
            continue
        candidates.append(
            _Candidate(
                index,
                request,
                sender,
                target,
                amount,
                _fingerprint(sender.id, target.id, amount, request.narration),
                new_reference(),
            )
        )

    candidates, duplicates = await _answer_replays(session, candidates, outcomes)
    balances = await repository.running_balances(
        session, sorted({c.sender.ledger_account_id for c in candidates})
    )
    accepted: list[_Candidate] = []
    for candidate in candidates:
        try:
            _check_can_send(candidate, balances)
        except AppError as error:
            outcomes[candidate.index] = error
            continue
        accepted.append(candidate)

    if accepted:
        await _store(session, accepted, outcomes)
        await enqueue(session, PROCESS_JOB, dedupe_key=PROCESS_JOB)
    for duplicate, first in duplicates:
        outcomes[duplicate.index] = _as_replay(outcomes[first.index])

    results = [outcome for outcome in outcomes if outcome is not None]
    if len(results) != len(requests):
        raise AppError("a transfer request was left without an outcome")
    return results


def _check_can_send(candidate: _Candidate, balances: dict[int, int]) -> None:
    sender, recipient = candidate.sender, candidate.recipient
    if sender.id == recipient.id:
        raise CannotTransferToSelf()
    if not sender.owner_active:
        raise AccountInactive()
    refusal = _OUTGOING_REFUSALS.get(sender.status)
    if refusal is not None:
        raise refusal()
    if not recipient.owner_active or recipient.status in (WalletStatus.FROZEN, WalletStatus.CLOSED):
        raise RecipientInactive()
    if recipient.currency != sender.currency:
        raise CurrencyMismatch()
    # A fast pre-check on an unlocked read; the processor decides under the lock.
    if balances.get(sender.ledger_account_id, 0) < candidate.amount.minor:
        raise InsufficientFunds(sender.ledger_account_id)


async def _answer_replays(
    session: AsyncSession, candidates: list[_Candidate], outcomes: list[TransferOutcome | None]
) -> tuple[list[_Candidate], list[tuple[_Candidate, _Candidate]]]:
    """Answer requests whose idempotency key was used before.

    Returns the requests still to store, and the repeats of a key within this batch paired
    with the first request that carries it (they share its outcome).
    """
    keyed = [c for c in candidates if c.request.idempotency_key is not None]
    if not keyed:
        return candidates, []
    existing = await repository.find_by_idempotency_keys(
        session, [(c.request.sender_user_id, c.request.idempotency_key or "") for c in keyed]
    )
    remaining: list[_Candidate] = []
    duplicates: list[tuple[_Candidate, _Candidate]] = []
    first_with_key: dict[tuple[uuid.UUID, str], _Candidate] = {}
    for candidate in candidates:
        key = candidate.request.idempotency_key
        if key is None:
            remaining.append(candidate)
            continue
        scoped_key = (candidate.request.sender_user_id, key)
        stored = existing.get(scoped_key)
        first = first_with_key.get(scoped_key)
        if stored is not None:
            outcomes[candidate.index] = _replay(stored, candidate.fingerprint)
        elif first is None:
            first_with_key[scoped_key] = candidate
            remaining.append(candidate)
        elif first.fingerprint == candidate.fingerprint:
            duplicates.append((candidate, first))
        else:
            outcomes[candidate.index] = IdempotencyKeyReused()
    return remaining, duplicates


def _replay(stored: ResultRow, fingerprint: str) -> TransferOutcome:
    if stored.request_fingerprint != fingerprint:
        return IdempotencyKeyReused()
    return AcceptedTransfer(
        reference=stored.reference,
        status=stored.status,
        amount=Money.of(stored.amount_minor, stored.currency),
        recipient_wallet_number=stored.recipient_wallet_number,
        created_at=stored.created_at,
        replayed=True,
    )


def _as_replay(outcome: TransferOutcome | None) -> TransferOutcome:
    if isinstance(outcome, AcceptedTransfer):
        return dataclasses.replace(outcome, replayed=True)
    if outcome is None:
        raise AppError("a repeated request's first request has no outcome")
    return outcome


async def _store(
    session: AsyncSession, accepted: list[_Candidate], outcomes: list[TransferOutcome | None]
) -> None:
    now = utcnow()
    inserted = await repository.insert_new(
        session,
        [
            {
                "reference": c.reference,
                "sender_user_id": c.request.sender_user_id,
                "sender_wallet_id": c.sender.id,
                "recipient_wallet_id": c.recipient.id,
                "amount_minor": c.amount.minor,
                "currency": c.amount.currency.code,
                "narration": c.request.narration,
                "idempotency_key": c.request.idempotency_key,
                "request_fingerprint": c.fingerprint,
                "status": TransferStatus.PENDING,
                "created_at": now,
            }
            for c in accepted
        ],
    )
    lost = []
    for candidate in accepted:
        if candidate.reference in inserted:
            outcomes[candidate.index] = AcceptedTransfer(
                reference=candidate.reference,
                status=TransferStatus.PENDING,
                amount=candidate.amount,
                recipient_wallet_number=candidate.recipient.number,
                created_at=now,
                replayed=False,
            )
        else:
            lost.append(candidate)
    if lost:
        # A concurrent request with the same key committed first: answer from its transfer.
        winners = await repository.find_by_idempotency_keys(
            session, [(c.request.sender_user_id, c.request.idempotency_key or "") for c in lost]
        )
        for candidate in lost:
            stored = winners.get(
                (candidate.request.sender_user_id, candidate.request.idempotency_key or "")
            )
            outcomes[candidate.index] = (
                IdempotencyKeyInUse() if stored is None else _replay(stored, candidate.fingerprint)
            )


@dataclass(frozen=True, slots=True)
class BatchReport:
    claimed: int
    completed: int
    failed: int


def _refusal_reason(row: ResultRow) -> str | None:
    """Why a claimed transfer cannot go ahead given the wallets' state now, if it cannot."""
    if not row.sender_active:
        return AccountInactive.code
    refusal = _OUTGOING_REFUSALS.get(row.sender_status)
    if refusal is not None:
        return refusal.code
    if not row.recipient_active or row.recipient_status in (
        WalletStatus.FROZEN,
        WalletStatus.CLOSED,
    ):
        return RecipientInactive.code
    if row.recipient_currency != row.currency:
        return CurrencyMismatch.code
    return None


def _full_name(first: str | None, last: str | None) -> str | None:
    return " ".join(part for part in (first, last) if part) or None


async def process_batch(session: AsyncSession, batch_size: int) -> BatchReport:
    """Settle up to `batch_size` pending transfers in the caller's transaction (commit once)."""
    claimed = await repository.claim_pending(session, batch_size)
    if not claimed:
        return BatchReport(0, 0, 0)
    reasons: dict[int, str] = {}
    entries: list[EntryRequest] = []
    postable: list[ResultRow] = []
    for row in claimed:
        reason = _refusal_reason(row)
        if reason is not None:
            reasons[row.id] = reason
            continue
        postable.append(row)
        entries.append(
            EntryRequest(
                EntryKind.TRANSFER,
                row.reference,
                ledger.movement(row.sender_account_id, row.recipient_account_id, row.amount_minor),
                {"transfer": row.reference},
            )
        )
    entry_ids: dict[int, int] = {}
    for row, result in zip(postable, await ledger.post_entries(session, entries), strict=True):
        if isinstance(result, ledger.RejectedEntry):
            reasons[row.id] = result.error.code
        else:
            entry_ids[row.id] = result.entry_id

    now = utcnow()
    await repository.mark_settled(
        session,
        [
            {
                "transfer_id": row.id,
                "status": TransferStatus.FAILED if row.id in reasons else TransferStatus.COMPLETED,
                "failure_reason": reasons.get(row.id),
                "ledger_entry_id": entry_ids.get(row.id),
                "settled_at": now,
            }
            for row in claimed
        ],
    )
    await wallet_repository.insert_history(session, _history_rows(claimed, reasons, entry_ids, now))
    await enqueue(
        session,
        SETTLED_JOB,
        {
            "transfers": [
                {
                    "reference": row.reference,
                    "status": TransferStatus.FAILED
                    if row.id in reasons
                    else TransferStatus.COMPLETED,
                    "failure_reason": reasons.get(row.id),
                }
                for row in claimed
            ]
        },
    )
    return BatchReport(len(claimed), len(entry_ids), len(reasons))


def _history_rows(
    claimed: Sequence[ResultRow], reasons: dict[int, str], entry_ids: dict[int, int], now: datetime
) -> list[dict[str, Any]]:
    """Both sides of each completed transfer; the sender's side only of a failed one."""
    rows: list[dict[str, Any]] = []
    for row in claimed:
        reason = reasons.get(row.id)
        common = {
            "amount_minor": row.amount_minor,
            "currency": row.currency,
            "reference": row.reference,
            "ledger_entry_id": entry_ids.get(row.id),
            "created_at": now,
        }
        rows.append(
            {
                **common,
                "wallet_id": row.sender_wallet_id,
                "type": TransactionType.TRANSFER_OUT,
                "status": TransactionStatus.FAILED if reason else TransactionStatus.SUCCESS,
                "failure_reason": reason,
                "counterparty_wallet_number": row.recipient_number,
                "counterparty_name": _full_name(row.recipient_first_name, row.recipient_last_name),
                "metadata": {"narration": row.narration} if row.narration else {},
            }
        )
        if reason is None:
            rows.append(
                {
                    **common,
                    "wallet_id": row.recipient_wallet_id,
                    "type": TransactionType.TRANSFER_IN,
                    "status": TransactionStatus.SUCCESS,
                    "failure_reason": None,
                    "counterparty_wallet_number": row.sender_number,
                    "counterparty_name": _full_name(row.sender_first_name, row.sender_last_name),
                    "metadata": {"narration": row.narration} if row.narration else {},
                }
            )
    return rows
