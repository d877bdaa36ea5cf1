"""Settling accepted transfers in batches (`process_batch`).

Claims pending transfers oldest first, posts them through the ledger as one batch, marks each
completed or failed, writes both sides' history (coffer.wallets.history) and an outbox event,
all in the caller's single transaction. A failed transfer gives its limit back.

A linked batch's transfers (`process_linked_batch`) settle as a group: all or none.

A cross-currency transfer is one ledger entry: the sender's wallet pays `system:fx:<from>`,
`system:fx:<to>` pays the recipient's wallet, and the spread (if any) goes from the sender's
amount to `system:fees:<from>`; each currency balances on its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import ResultRow
from coffer.fees.service import FEES_PURPOSE, collect_owed_fees
from coffer.fx.conversion import stored_conversion
from coffer.jobs.outbox import enqueue
from coffer.kit.clock import utcnow
from coffer.kit.money import format_minor, get_currency
from coffer.ledger import service as ledger
from coffer.ledger.postings import EntryKind, EntryRequest, Posting
from coffer.models import TransferStatus
from coffer.notifications import events
from coffer.transfers import repository
from coffer.transfers.errors import LinkedEventFailed
from coffer.transfers.states import refusal_reason
from coffer.wallets import limits
from coffer.wallets.history import full_name, record_settled_transfers
from coffer.wallets.limits import LimitClaim, LimitKind

PROCESS_JOB = "transfers.process"
SETTLED_JOB = "notifications.transfers_settled"
FX_PURPOSE = "fx"


@dataclass(frozen=True, slots=True)
class BatchReport:
    claimed: int
    completed: int
    failed: int


async def process_batch(session: AsyncSession, batch_size: int) -> BatchReport:
    """Settle up to `batch_size` pending transfers in the caller's transaction (commit once)."""
    claimed = await repository.claim_pending(session, batch_size)
    if not claimed:
        return BatchReport(0, 0, 0)
    reasons: dict[int, str] = {}
    postable: list[ResultRow] = []
    for row in claimed:
        reason = refusal_reason(row)
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

    return await _record(session, claimed, reasons, entry_ids)


async def process_linked_batch(session: AsyncSession) -> BatchReport:
    """Settle the oldest pending linked batch whole, in the caller's transaction: every one of
    its transfers completes, or every one fails (the failing ones with their own reason, the
    rest with `linked_event_failed`).

    One group per transaction: `post_entries` locks accounts in ascending order within one
    call, and two calls in one transaction could take locks out of that order.
    """
    batch_id = await repository.claim_linked_batch(session)
    if batch_id is None:
        return BatchReport(0, 0, 0)
    claimed = await repository.claim_linked_group(session, batch_id)
    reasons = {row.id: reason for row in claimed if (reason := refusal_reason(row)) is not None}
    entry_ids: dict[int, int] = {}
    if not reasons:
        entry_ids, reasons = await _post_all_or_nothing(session, claimed)
    if reasons:
        reasons = {row.id: reasons.get(row.id, LinkedEventFailed.code) for row in claimed}
    await repository.mark_group_settled(session, batch_id)
    if not claimed:
        return BatchReport(0, 0, 0)
    return await _record(session, claimed, reasons, entry_ids)


class _GroupRejected(Exception):
    """Control flow: an entry of a linked group was rejected, so the group's savepoint rolls
    back."""

    def __init__(self, reasons: dict[int, str]) -> None:
        super().__init__("linked group rejected")
        self.reasons = reasons


async def _post_all_or_nothing(
    session: AsyncSession, rows: Sequence[ResultRow]
) -> tuple[dict[int, int], dict[int, str]]:
    """Post one entry per transfer, in order, all in one savepoint: the entry ids, or (with
    nothing posted) the reasons of the rejected ones."""
    accounts = await _SystemAccounts.load(session, rows)
    entries = [_entry(row, accounts) for row in rows]
    try:
        async with session.begin_nested():
            results = await ledger.post_entries(session, entries)
            rejected = {
                row.id: result.error.code
                for row, result in zip(rows, results, strict=True)
                if isinstance(result, ledger.RejectedEntry)
            }
            if rejected:
                raise _GroupRejected(rejected)
    except _GroupRejected as rejection:
        return {}, rejection.reasons
    return {
        row.id: result.entry_id
        for row, result in zip(rows, results, strict=True)
        if isinstance(result, ledger.PostedEntry)
    }, {}


async def _record(
    session: AsyncSession,
    claimed: Sequence[ResultRow],
    reasons: dict[int, str],
    entry_ids: dict[int, int],
) -> BatchReport:
    """Write the settled transfers' outcomes: status, history, owed fees, limits given back,
    the settled events."""
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
    await record_settled_transfers(session, claimed, reasons, entry_ids, now)
    events.record_events(session, _settled_events(claimed, reasons))
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
    conversion = stored_conversion(row)
    if conversion is None:
        return EntryRequest(
            EntryKind.TRANSFER,
            row.reference,
            ledger.movement(row.sender_account_id, row.recipient_account_id, row.amount_minor),
            {"transfer": row.reference},
        )
    fee = conversion.fee.minor
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
        {"transfer": row.reference, "fx": conversion.terms(row.quote_id)},
    )


def _settled_events(
    claimed: Sequence[ResultRow], reasons: dict[int, str]
) -> list[tuple[uuid.UUID, events.EventData]]:
    """`transfer.completed` or `transfer.failed` to each sender, `transfer.received` to each
    paid recipient (balance changes are announced by the ledger's postings)."""
    found: list[tuple[uuid.UUID, events.EventData]] = []
    for row in claimed:
        send = get_currency(row.currency)
        amount = format_minor(row.amount_minor, send)
        reason = reasons.get(row.id)
        if reason is not None:
            found.append(
                (
                    row.sender_user_id,
                    events.TransferFailed(
                        amount=amount,
                        currency=send.code,
                        reference=row.reference,
                        wallet_number=row.sender_number,
                        recipient_wallet_number=row.recipient_number,
                        failure_reason=reason,
                    ),
                )
            )
            continue
        receive = get_currency(row.receive_currency or row.currency)
        received = format_minor(row.receive_amount_minor or row.amount_minor, receive)
        converts = row.receive_currency is not None
        found.append(
            (
                row.sender_user_id,
                events.TransferCompleted(
                    amount=amount,
                    currency=send.code,
                    reference=row.reference,
                    wallet_number=row.sender_number,
                    recipient_wallet_number=row.recipient_number,
                    receive_amount=received if converts else None,
                    receive_currency=receive.code if converts else None,
                ),
            )
        )
        found.append(
            (
                row.recipient_user_id,
                events.TransferReceived(
                    amount=received,
                    currency=receive.code,
                    reference=row.reference,
                    wallet_number=row.recipient_number,
                    sender_wallet_number=row.sender_number,
                    sender_name=full_name(row.sender_first_name, row.sender_last_name),
                ),
            )
        )
    return found
