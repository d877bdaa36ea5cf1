"""Accepting transfer requests: the intake API (`create_transfers`).

Validates and stores requests as pending; a list of requests in one session is the primitive
and a single request is a list of one (DESIGN.md §11). Each request gets its own outcome: one
bad request never fails its neighbours. The ladder, each rung its own module: shape and
fingerprint (requests), the wallets involved (directory), account states (states), replays of
an idempotency key (replay), conversion and daily limit (pricing, allowance), then the insert.
Settling what was accepted is coffer.transfers.settlement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.errors import AppError
from coffer.fx import service as fx
from coffer.idempotency.service import IdempotencyKeyInUse
from coffer.jobs.outbox import enqueue
from coffer.kit.clock import utcnow
from coffer.kit.money import HARD_MAX_MINOR, parse_amount
from coffer.models import TransferStatus
from coffer.settings import Settings, get_settings
from coffer.transfers import allowance, repository
from coffer.transfers.directory import Directory
from coffer.transfers.pricing import price
from coffer.transfers.replay import (
    Outcomes,
    answer_from,
    answer_from_stored,
    as_replay,
    share_repeated_keys,
)
from coffer.transfers.requests import (
    AcceptedTransfer,
    Candidate,
    RecipientKind,
    TransferOutcome,
    TransferRequest,
    check_shape,
    fingerprint,
    new_reference,
    normalized_recipient,
)
from coffer.transfers.settlement import PROCESS_JOB
from coffer.transfers.states import check_recipient, check_sender

__all__ = [
    "AcceptedTransfer",
    "RecipientKind",
    "TransferOutcome",
    "TransferRequest",
    "create_transfers",
]


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
    outcomes: Outcomes = [None] * len(requests)
    recipients: dict[int, str] = {}
    for index, request in enumerate(requests):
        try:
            check_shape(request)
            recipients[index] = normalized_recipient(request)
        except AppError as error:
            outcomes[index] = error

    directory = await Directory.load(session, requests, recipients)
    # A retry of a stored transfer is answered as that transfer whatever the sender's balance
    # or wallet is now: its checks were passed when it was accepted. (Found by `coffer check
    # bank`: a duplicate of an accepted transfer that had drained the balance was refused
    # `insufficient_funds`, then replayed as accepted by the next duplicate.)
    keys = sorted(
        {
            (requests[i].sender_user_id, key)
            for i in recipients
            if (key := requests[i].idempotency_key) is not None
        }
    )
    stored = await repository.find_by_idempotency_keys(session, keys) if keys else {}
    # Sender-side checks come before anything about the recipient, so a refusal never tells
    # whether an email or phone has an account before the sender could pay it anyway.
    balances = await repository.running_balances(session, directory.sender_account_ids())
    candidates: list[Candidate] = []
    for index, recipient in recipients.items():
        request = requests[index]
        try:
            sender = directory.sender_wallet(request)
            amount = parse_amount(request.amount, sender.currency, max_minor=max_amount_minor)
            if (request.sender_user_id, request.idempotency_key) not in stored:
                check_sender(sender, amount, balances)
            target = directory.recipient_wallet(request.recipient_kind, recipient, sender.currency)
        except AppError as error:
            outcomes[index] = error
            continue
        candidates.append(
            Candidate(
                index,
                request,
                sender,
                target,
                amount,
                fingerprint(sender.id, target.id, amount, request.narration, request.quote_id),
                new_reference(),
            )
        )

    candidates = answer_from(stored, candidates, outcomes)
    candidates, duplicates = share_repeated_keys(candidates, outcomes)
    accepted: list[Candidate] = []
    for candidate in candidates:
        try:
            check_recipient(candidate.sender, candidate.recipient)
        except AppError as error:
            outcomes[candidate.index] = error
            continue
        accepted.append(candidate)

    accepted = await price(session, accepted, outcomes, settings, max_amount_minor, now)
    accepted = await allowance.consume(session, accepted, outcomes)
    if accepted:
        await _store(session, accepted, outcomes, now)
        await enqueue(session, PROCESS_JOB, dedupe_key=PROCESS_JOB)
    for duplicate, first in duplicates:
        outcomes[duplicate.index] = as_replay(outcomes[first.index])

    results = [outcome for outcome in outcomes if outcome is not None]
    if len(results) != len(requests):
        raise AppError("a transfer request was left without an outcome")
    return results


def _row(candidate: Candidate, now: datetime) -> dict[str, Any]:
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
    session: AsyncSession, accepted: list[Candidate], outcomes: Outcomes, now: datetime
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
        await allowance.give_back(session, lost)
        for candidate in await answer_from_stored(session, lost, outcomes):
            if candidate.request.quote_id is not None:
                outcomes[candidate.index] = fx.QuoteAlreadyUsed()
            else:
                outcomes[candidate.index] = IdempotencyKeyInUse()
