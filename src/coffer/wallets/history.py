"""The wallet history rows a settled transfer leaves: the wallets domain owns `transactions`.

Both sides of each completed transfer, the sender's side only of a failed one; each side in
its own wallet's currency, with a conversion's terms in both sides' metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import ResultRow
from coffer.fx.conversion import stored_conversion
from coffer.models import TransactionStatus, TransactionType
from coffer.wallets import repository


def full_name(first: str | None, last: str | None) -> str | None:
    return " ".join(part for part in (first, last) if part) or None


async def record_settled_transfers(
    session: AsyncSession,
    settled: Sequence[ResultRow],
    reasons: dict[int, str],
    entry_ids: dict[int, int],
    now: datetime,
) -> None:
    """Write the history of a settled batch in one statement.

    `settled` are the processor's claimed rows (the transfer with both wallets and owners),
    `reasons` the failure reason of each failed one and `entry_ids` the ledger entry of each
    completed one, both by transfer id.
    """
    await repository.insert_history(session, _transfer_rows(settled, reasons, entry_ids, now))


def _transfer_rows(
    settled: Sequence[ResultRow], reasons: dict[int, str], entry_ids: dict[int, int], now: datetime
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for row in settled:
        reason = reasons.get(row.id)
        metadata: dict[str, Any] = {"narration": row.narration} if row.narration else {}
        conversion = stored_conversion(row)
        if conversion is not None:
            metadata["fx"] = conversion.terms(row.quote_id)
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
