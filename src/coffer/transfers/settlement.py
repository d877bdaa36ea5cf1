"""Settling accepted transfers in batches (`process_batch`).

Claims pending transfers oldest first, posts them through the ledger as one batch, marks each
completed or failed, writes both sides' history (coffer.wallets.history) and an outbox event,
all in the caller's single transaction. A failed transfer gives its limit back.

A cross-currency transfer is one ledger entry: the sender's wallet pays `system:fx:<from>`,
`system:fx:<to>` pays the recipient's wallet, and the spread (if any) goes from the sender's
amount to `system:fees:<from>`; each currency balances on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import ResultRow
from coffer.fees.service import FEES_PURPOSE, collect_owed_fees
from coffer.fx.conversion import stored_conversion
from coffer.jobs.outbox import enqueue
from coffer.kit.clock import utcnow
from coffer.ledger import service as ledger
from coffer.ledger.postings import EntryKind, EntryRequest, Posting
from coffer.models import TransferStatus
from coffer.transfers import repository
from coffer.transfers.states import refusal_reason
from coffer.wallets import limits
from coffer.wallets.history import record_settled_transfers
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
