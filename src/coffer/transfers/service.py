"""Accepting transfer requests and settling them in batches.

Accepting (`create_transfers`) validates and stores requests as pending; a list of requests
in one session is the primitive and a single request is a list of one (DESIGN.md §11). Each
request gets its own outcome: one bad request never fails its neighbours. Accepting also
prices a transfer to a wallet in another currency (at the cached rate, or a quote's locked
rate) and consumes the sender's daily transfer limit.

Settling (`process_batch`) claims pending transfers oldest first, posts them through the
ledger as one batch, marks each completed or failed, writes both sides' history and an outbox
event, all in the caller's single transaction. A failed transfer gives its limit back.

A cross-currency transfer is one ledger entry: the sender's wallet pays `system:fx:<from>`,
`system:fx:<to>` pays the recipient's wallet, and the spread (if any) goes from the sender's
amount to `system:fees:<from>`; each currency balances on its own.
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
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import ResultRow
from coffer.errors import AppError, ValidationFailed
from coffer.fees.service import FEES_PURPOSE, collect_owed_fees
from coffer.fx import repository as fx_repository
from coffer.fx import service as fx
from coffer.fx.conversion import Conversion, convert
from coffer.idempotency.service import IdempotencyKeyInUse, IdempotencyKeyReused
from coffer.identity.service import InvalidEmail, InvalidPhone, normalize_email, normalize_phone
from coffer.jobs.outbox import enqueue
from coffer.kit.clock import utcnow
from coffer.kit.money import HARD_MAX_MINOR, Money, format_minor, get_currency, parse_amount
from coffer.ledger import service as ledger
from coffer.ledger.errors import InsufficientFunds
from coffer.ledger.postings import EntryKind, EntryRequest, Posting
from coffer.models import (
    TransactionStatus,
    TransactionType,
    TransferStatus,
    WalletStatus,
)
from coffer.settings import Settings, get_settings
from coffer.transfers import repository
from coffer.wallets import limits
from coffer.wallets import repository as wallet_repository
from coffer.wallets.limits import LimitClaim, LimitKind
from coffer.wallets.numbers import is_valid_wallet_number
from coffer.wallets.service import InvalidWalletNumber, WalletNotFound

PROCESS_JOB = "transfers.process"
SETTLED_JOB = "notifications.transfers_settled"
MAX_NARRATION_LENGTH = 255
MAX_IDEMPOTENCY_KEY_LENGTH = 255
FX_PURPOSE = "fx"


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


class RecipientFrozen(AppError):
    code = "recipient_wallet_frozen"
    http_status = 400
    default_message = "The recipient's wallet is frozen and cannot receive money"


class CurrencyMismatch(AppError):
    """The recipient's wallet is not in the currency the transfer was priced for."""

    code = "currency_mismatch"
    http_status = 422
    default_message = "The recipient's wallet is in another currency"


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

_OUTGOING_REFUSALS: dict[str, type[AppError]] = {
    WalletStatus.FROZEN: WalletFrozen,
    WalletStatus.BLOCKED: WalletBlocked,
    WalletStatus.CLOSED: WalletClosed,
}


def new_reference() -> str:
    return f"TRF_{secrets.token_hex(12).upper()}"


def _fingerprint(
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
    quote_id = request.quote_id
    if quote_id is not None and not 1 <= len(quote_id) <= fx.MAX_QUOTE_ID_LENGTH:
        raise fx.QuoteNotFound()


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
    conversion: Conversion | None = None
    allowance: tuple[LimitClaim, int] | None = None
    """The daily-limit claim this request makes, and the limit (minor units) it must fit."""


async def create_transfers(
    session: AsyncSession,
    requests: Sequence[TransferRequest],
    *,
    max_amount_minor: int = HARD_MAX_MINOR,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> list[TransferOutcome]:
    """Validate and store each request as a pending transfer; one outcome per request, in order.

    `settings` gives the FX and daily-limit rules (the process's settings when omitted);
    `now` is the clock the limit day, rates and quotes are judged by.
    """
    settings = settings or get_settings()
    now = now or utcnow()
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

    # A retry of a stored transfer is answered as that transfer whatever the sender's balance
    # or wallet is now: its checks were passed when it was accepted. (Found by `coffer check
    # bank`: a duplicate of an accepted transfer that had drained the balance was refused
    # `insufficient_funds`, then replayed as accepted by the next duplicate.)
    stored = await repository.find_by_idempotency_keys(
        session,
        sorted(
            {
                (requests[i].sender_user_id, key)
                for i in recipients
                if (key := requests[i].idempotency_key) is not None
            }
        ),
    )
    # Sender-side checks come before anything about the recipient, so a refusal never tells
    # whether an email or phone has an account before the sender could pay it anyway.
    balances = await repository.running_balances(
        session,
        sorted({row.ledger_account_id for rows in directory.by_user.values() for row in rows}),
    )
    candidates: list[_Candidate] = []
    for index, recipient in recipients.items():
        request = requests[index]
        try:
            sender = directory.sender_wallet(request)
            amount = parse_amount(request.amount, sender.currency, max_minor=max_amount_minor)
            if (request.sender_user_id, request.idempotency_key) not in stored:
                _check_sender(sender, amount, balances)
            target = directory.recipient_wallet(request.recipient_kind, recipient, sender.currency)
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
                _fingerprint(sender.id, target.id, amount, request.narration, request.quote_id),
                new_reference(),
            )
        )

    candidates, duplicates = _answer_replays(candidates, outcomes, stored)
    accepted: list[_Candidate] = []
    for candidate in candidates:
        try:
            _check_can_send(candidate)
        except AppError as error:
            outcomes[candidate.index] = error
            continue
        accepted.append(candidate)

    accepted = await _price(session, accepted, outcomes, settings, max_amount_minor, now)
    accepted = await _consume_limits(session, accepted, outcomes)
    if accepted:
        await _store(session, accepted, outcomes, now)
        await enqueue(session, PROCESS_JOB, dedupe_key=PROCESS_JOB)
    for duplicate, first in duplicates:
        outcomes[duplicate.index] = _as_replay(outcomes[first.index])

    results = [outcome for outcome in outcomes if outcome is not None]
    if len(results) != len(requests):
        raise AppError("a transfer request was left without an outcome")
    return results


def _check_sender(sender: ResultRow, amount: Money, balances: dict[int, int]) -> None:
    """The sender's own state and balance, checked before the recipient is looked at."""
    if not sender.owner_active:
        raise AccountInactive()
    refusal = _OUTGOING_REFUSALS.get(sender.status)
    if refusal is not None:
        raise refusal()
    # A fast pre-check on an unlocked read; the processor decides under the lock.
    if balances.get(sender.ledger_account_id, 0) < amount.minor:
        raise InsufficientFunds(sender.ledger_account_id)


def _check_can_send(candidate: _Candidate) -> None:
    """What is left once `_check_sender` passed: the recipient's side."""
    sender, recipient = candidate.sender, candidate.recipient
    if sender.id == recipient.id:
        raise CannotTransferToSelf()
    if not recipient.owner_active or recipient.status == WalletStatus.CLOSED:
        # Answered like a recipient nobody has: an inactive account is not revealed.
        raise RecipientNotFound()
    if recipient.status == WalletStatus.FROZEN:
        # Named (the sender may retry after an operator unfreezes it), but only to a sender
        # whose own checks already passed.
        raise RecipientFrozen()


async def _price(
    session: AsyncSession,
    candidates: list[_Candidate],
    outcomes: list[TransferOutcome | None],
    settings: Settings,
    max_amount_minor: int,
    now: datetime,
) -> list[_Candidate]:
    """Convert what goes to another currency and work out each sender's daily limit.

    One query for every rate the batch needs and one for its quotes. A missing or stale rate
    refuses the request: neither a conversion nor a limit is guessed.
    """
    if not candidates:
        return []
    rates = await fx.load_rates(
        session,
        settings,
        {c.sender.currency for c in candidates}
        | {c.recipient.currency for c in candidates}
        | {settings.limits_currency},
        now,
    )
    quotes = await fx_repository.quotes_with_use(
        session, [c.request.quote_id for c in candidates if c.request.quote_id is not None]
    )
    day = limits.limit_day(now, settings.limits_timezone)
    priced: list[_Candidate] = []
    for candidate in candidates:
        request, source, target = candidate.request, candidate.sender, candidate.recipient
        try:
            if request.quote_id is not None:
                candidate.conversion = fx.use_quote(
                    quotes.get(request.quote_id),
                    request.sender_user_id,
                    candidate.amount,
                    target.currency,
                    now,
                )
            elif target.currency != source.currency:
                candidate.conversion = convert(
                    candidate.amount,
                    get_currency(target.currency),
                    rates.rate(source.currency, target.currency),
                    settings.fx_spread_bps,
                    max_minor=max_amount_minor,
                )
            claim = LimitClaim(
                request.sender_user_id,
                LimitKind.TRANSFER,
                source.currency,
                day,
                candidate.amount.minor,
            )
            candidate.allowance = (
                claim,
                limits.daily_limit_minor(settings, LimitKind.TRANSFER, source.currency, rates),
            )
        except AppError as error:
            outcomes[candidate.index] = error
            continue
        priced.append(candidate)
    return priced


async def _consume_limits(
    session: AsyncSession, candidates: list[_Candidate], outcomes: list[TransferOutcome | None]
) -> list[_Candidate]:
    """Consume each sender's daily allowance; the requests that would exceed it are refused."""
    claimed = [(c, c.allowance) for c in candidates if c.allowance is not None]
    granted = await limits.consume(session, [allowance for _, allowance in claimed])
    within: list[_Candidate] = []
    refused: list[_Candidate] = []
    for (candidate, (claim, limit_minor)), fits in zip(claimed, granted, strict=True):
        if fits:
            within.append(candidate)
        else:
            outcomes[candidate.index] = limits.exceeded(claim, limit_minor)
            refused.append(candidate)
    await _replay_retries_of_committed(session, refused, outcomes)
    return within


async def _replay_retries_of_committed(
    session: AsyncSession, refused: list[_Candidate], outcomes: list[TransferOutcome | None]
) -> None:
    """A retry that arrived while its original was in flight waited on the usage row and
    found the allowance spent by that very original: answer it as the replay it is."""
    keyed = [c for c in refused if c.request.idempotency_key is not None]
    if not keyed:
        return
    stored = await repository.find_by_idempotency_keys(
        session, [(c.request.sender_user_id, c.request.idempotency_key or "") for c in keyed]
    )
    for candidate in keyed:
        original = stored.get(
            (candidate.request.sender_user_id, candidate.request.idempotency_key or "")
        )
        if original is not None:
            outcomes[candidate.index] = _replay(original, candidate.fingerprint)


def _answer_replays(
    candidates: list[_Candidate],
    outcomes: list[TransferOutcome | None],
    existing: dict[tuple[uuid.UUID, str], ResultRow],
) -> tuple[list[_Candidate], list[tuple[_Candidate, _Candidate]]]:
    """Answer requests whose idempotency key was used before (`existing`: the stored
    transfers by sender and key).

    Returns the requests still to store, and the repeats of a key within this batch paired
    with the first request that carries it (they share its outcome).
    """
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
    return AcceptedTransfer.priced(
        reference=stored.reference,
        status=stored.status,
        amount=Money.of(stored.amount_minor, stored.currency),
        recipient_wallet_number=stored.recipient_wallet_number,
        created_at=stored.created_at,
        replayed=True,
        conversion=_stored_conversion(stored),
    )


def _stored_conversion(row: ResultRow) -> Conversion | None:
    """The conversion a stored transfer (or claimed row) carries, if it converts."""
    if row.receive_currency is None:
        return None
    return Conversion(
        row.fx_rate,
        Money.of(row.amount_minor, row.currency),
        Money.of(row.fee_minor or 0, row.currency),
        Money.of(row.receive_amount_minor, row.receive_currency),
    )


def _as_replay(outcome: TransferOutcome | None) -> TransferOutcome:
    if isinstance(outcome, AcceptedTransfer):
        return dataclasses.replace(outcome, replayed=True)
    if outcome is None:
        raise AppError("a repeated request's first request has no outcome")
    return outcome


def _row(candidate: _Candidate, now: datetime) -> dict[str, Any]:
    conversion = candidate.conversion
    return {
        "reference": candidate.reference,
        "sender_user_id": candidate.request.sender_user_id,
        "sender_wallet_id": candidate.sender.id,
        "recipient_wallet_id": candidate.recipient.id,
        "amount_minor": candidate.amount.minor,
        "currency": candidate.amount.currency.code,
        "receive_amount_minor": conversion.receive.minor if conversion else None,
        "receive_currency": conversion.receive.currency.code if conversion else None,
        "fx_rate": conversion.rate if conversion else None,
        "fee_minor": conversion.fee.minor if conversion else None,
        "quote_id": candidate.request.quote_id,
        "limit_day": candidate.allowance[0].day if candidate.allowance else None,
        "narration": candidate.request.narration,
        "idempotency_key": candidate.request.idempotency_key,
        "request_fingerprint": candidate.fingerprint,
        "status": TransferStatus.PENDING,
        "created_at": now,
    }


async def _store(
    session: AsyncSession,
    accepted: list[_Candidate],
    outcomes: list[TransferOutcome | None],
    now: datetime,
) -> None:
    inserted = await repository.insert_new(session, [_row(c, now) for c in accepted])
    lost = []
    for candidate in accepted:
        if candidate.reference in inserted:
            outcomes[candidate.index] = AcceptedTransfer.priced(
                reference=candidate.reference,
                status=TransferStatus.PENDING,
                amount=candidate.amount,
                recipient_wallet_number=candidate.recipient.number,
                created_at=now,
                replayed=False,
                conversion=candidate.conversion,
            )
        else:
            lost.append(candidate)
    if lost:
        # A concurrent request committed first with the same idempotency key (answer from
        # its transfer) or the same quote (which it used up). Either way this one consumed
        # an allowance it will not use.
        await limits.release(session, [c.allowance[0] for c in lost if c.allowance is not None])
        winners = await repository.find_by_idempotency_keys(
            session, [(c.request.sender_user_id, c.request.idempotency_key or "") for c in lost]
        )
        for candidate in lost:
            stored = winners.get(
                (candidate.request.sender_user_id, candidate.request.idempotency_key or "")
            )
            if stored is not None:
                outcomes[candidate.index] = _replay(stored, candidate.fingerprint)
            elif candidate.request.quote_id is not None:
                outcomes[candidate.index] = fx.QuoteAlreadyUsed()
            else:
                outcomes[candidate.index] = IdempotencyKeyInUse()


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
    if row.recipient_status == WalletStatus.FROZEN:
        return RecipientFrozen.code
    if not row.recipient_active or row.recipient_status == WalletStatus.CLOSED:
        return RecipientInactive.code
    if row.recipient_currency != (row.receive_currency or row.currency):
        return CurrencyMismatch.code
    return None


def full_name(first: str | None, last: str | None) -> str | None:
    return " ".join(part for part in (first, last) if part) or None


async def process_batch(session: AsyncSession, batch_size: int) -> BatchReport:
    """Settle up to `batch_size` pending transfers in the caller's transaction (commit once)."""
    claimed = await repository.claim_pending(session, batch_size)
    if not claimed:
        return BatchReport(0, 0, 0)
    reasons: dict[int, str] = {}
    postable: list[ResultRow] = []
    for row in claimed:
        reason = _refusal_reason(row)
        if reason is not None:
            reasons[row.id] = reason
            continue
        postable.append(row)
    accounts = await _SystemAccounts.load(session, postable)
    entries = [_entry(row, accounts) for row in postable]
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
    await collect_owed_fees(
        session, [row.recipient_wallet_id for row in claimed if row.id in entry_ids]
    )
    await limits.release(
        session,
        [
            LimitClaim(
                row.sender_user_id,
                LimitKind.TRANSFER,
                row.currency,
                row.limit_day,
                row.amount_minor,
            )
            for row in claimed
            if row.id in reasons and row.limit_day is not None
        ],
    )
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


class _SystemAccounts:
    """The FX and fee accounts a batch posts to, opened on first use, looked up once."""

    def __init__(self, fx: dict[str, int], fees: dict[str, int]) -> None:
        self.fx = fx
        self.fees = fees

    @classmethod
    async def load(cls, session: AsyncSession, rows: Sequence[ResultRow]) -> _SystemAccounts:
        converting = [row for row in rows if row.receive_currency is not None]
        currencies = sorted(
            {row.currency for row in converting} | {row.receive_currency for row in converting}
        )
        charged = sorted({row.currency for row in converting if row.fee_minor})
        return cls(
            {c: await ledger.system_account(session, FX_PURPOSE, c) for c in currencies},
            {c: await ledger.system_account(session, FEES_PURPOSE, c) for c in charged},
        )


def _entry(row: ResultRow, accounts: _SystemAccounts) -> EntryRequest:
    """One entry per transfer; a conversion balances in each currency through the FX accounts."""
    if row.receive_currency is None:
        return EntryRequest(
            EntryKind.TRANSFER,
            row.reference,
            ledger.movement(row.sender_account_id, row.recipient_account_id, row.amount_minor),
            {"transfer": row.reference},
        )
    fee = row.fee_minor or 0
    postings = [
        Posting(row.sender_account_id, -row.amount_minor),
        Posting(accounts.fx[row.currency], row.amount_minor - fee),
        Posting(accounts.fx[row.receive_currency], -row.receive_amount_minor),
        Posting(row.recipient_account_id, row.receive_amount_minor),
    ]
    if fee:
        postings.append(Posting(accounts.fees[row.currency], fee))
    return EntryRequest(
        EntryKind.TRANSFER,
        row.reference,
        tuple(postings),
        {"transfer": row.reference, "fx": _fx_details(row)},
    )


def _fx_details(row: ResultRow) -> dict[str, Any]:
    send, receive = get_currency(row.currency), get_currency(row.receive_currency)
    details: dict[str, Any] = {
        "rate": format(row.fx_rate, "f"),
        "send_amount": format_minor(row.amount_minor, send),
        "send_currency": send.code,
        "receive_amount": format_minor(row.receive_amount_minor, receive),
        "receive_currency": receive.code,
        "fee": format_minor(row.fee_minor or 0, send),
    }
    if row.quote_id is not None:
        details["quote_id"] = row.quote_id
    return details


def _history_rows(
    claimed: Sequence[ResultRow], reasons: dict[int, str], entry_ids: dict[int, int], now: datetime
) -> list[dict[str, Any]]:
    """Both sides of each completed transfer; the sender's side only of a failed one.

    Each side in its own wallet's currency; a conversion's terms are in both sides' metadata.
    """
    rows: list[dict[str, Any]] = []
    for row in claimed:
        reason = reasons.get(row.id)
        metadata: dict[str, Any] = {"narration": row.narration} if row.narration else {}
        if row.receive_currency is not None:
            metadata["fx"] = _fx_details(row)
        common = {
            "reference": row.reference,
            "ledger_entry_id": entry_ids.get(row.id),
            "created_at": now,
            "metadata": metadata,
        }
        rows.append(
            {
                **common,
                "amount_minor": row.amount_minor,
                "currency": row.currency,
                "wallet_id": row.sender_wallet_id,
                "type": TransactionType.TRANSFER_OUT,
                "status": TransactionStatus.FAILED if reason else TransactionStatus.SUCCESS,
                "failure_reason": reason,
                "counterparty_wallet_number": row.recipient_number,
                "counterparty_name": full_name(row.recipient_first_name, row.recipient_last_name),
            }
        )
        if reason is None:
            rows.append(
                {
                    **common,
                    "amount_minor": row.receive_amount_minor or row.amount_minor,
                    "currency": row.receive_currency or row.currency,
                    "wallet_id": row.recipient_wallet_id,
                    "type": TransactionType.TRANSFER_IN,
                    "status": TransactionStatus.SUCCESS,
                    "failure_reason": None,
                    "counterparty_wallet_number": row.sender_number,
                    "counterparty_name": full_name(row.sender_first_name, row.sender_last_name),
                }
            )
    return rows
