"""The monthly maintenance fee (seed 004, DESIGN.md §5 Fees).

A wallet in a currency with a fee (COFFER_MONTHLY_FEE) owes it every 30 days, first 30 days
after it opened. Each period is one `wallet_fees` row, unique per wallet and period, so no
runner, retry or race ever charges a period twice; a paid period is one ledger entry
`wallet -> system:fees:<ccy>` (kind `fee`) and a `fee` history row. A period the balance cannot
cover stays owed and blocks the wallet (money may come in, none may go out); the first credit
that makes the owed fees payable takes them, oldest first, in its own transaction
(`collect_owed_fees`), and unblocks the wallet. After downtime each missed period is charged
once, oldest first.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.fees import repository
from coffer.jobs.outbox import enqueue
from coffer.kit.clock import utcnow
from coffer.kit.money import Money, format_minor, get_currency, parse_amount
from coffer.ledger import service as ledger
from coffer.ledger.postings import EntryKind, EntryRequest
from coffer.models import FeeStatus, TransactionStatus, TransactionType, WalletStatus
from coffer.notifications import events
from coffer.wallets import repository as wallet_repository

FEES_PURPOSE = "fees"
PERIOD = timedelta(days=30)
CHARGE_JOB = "fees.charge"
NOTIFY_JOB = "fees.notify"
"""Emails about fees taken where no settings are at hand (a credit's transaction)."""


def fee_reference(wallet_id: int, period: int) -> str:
    return f"fee:{wallet_id}:{period}"


@dataclass(frozen=True, slots=True)
class _Charge:
    """One fee period of one wallet, about to be posted."""

    wallet_id: int
    user_id: uuid.UUID
    number: str
    currency: str
    ledger_account_id: int
    period: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class ChargeReport:
    wallets: int
    """Due wallets seen in this batch (a full batch means more may be waiting)."""
    last_wallet_id: int
    paid: int
    owed: int
    blocked: Sequence[int]


def fee_amounts(fees: Mapping[str, Decimal]) -> dict[str, int]:
    return {code: parse_amount(amount, code).minor for code, amount in fees.items()}


async def _post_in_rounds(
    session: AsyncSession, charges: Sequence[_Charge], now: datetime
) -> tuple[list[tuple[_Charge, int]], set[int]]:
    """Post the charges of each wallet oldest first; a wallet's first refused charge ends its
    run (later periods stay owed). Returns (charge, entry id) for the paid and the wallets left
    owing."""
    by_wallet: dict[int, list[_Charge]] = defaultdict(list)
    for charge in charges:
        by_wallet[charge.wallet_id].append(charge)
    system = {
        code: await ledger.system_account(session, FEES_PURPOSE, code)
        for code in sorted({charge.currency for charge in charges})
    }
    paid: list[tuple[_Charge, int]] = []
    short: set[int] = set()
    round_number = 0
    while True:
        batch = [
            queue[round_number]
            for wallet_id, queue in sorted(by_wallet.items())
            if wallet_id not in short and round_number < len(queue)
        ]
        if not batch:
            break
        requests = [
            EntryRequest(
                EntryKind.FEE,
                fee_reference(c.wallet_id, c.period),
                ledger.movement(c.ledger_account_id, system[c.currency], c.amount_minor),
                {"wallet": c.number, "period": c.period},
            )
            for c in batch
        ]
        for charge, result in zip(batch, await ledger.post_entries(session, requests), strict=True):
            if isinstance(result, ledger.RejectedEntry):
                short.add(charge.wallet_id)
            else:
                paid.append((charge, result.entry_id))
        round_number += 1
    await repository.mark_paid(
        session,
        [
            {"wallet_id": c.wallet_id, "period": c.period, "ledger_entry_id": e, "paid_at": now}
            for c, e in paid
        ],
    )
    await wallet_repository.insert_history(
        session,
        [
            {
                "wallet_id": c.wallet_id,
                "type": TransactionType.FEE,
                "amount_minor": c.amount_minor,
                "currency": c.currency,
                "status": TransactionStatus.SUCCESS,
                "reference": fee_reference(c.wallet_id, c.period),
                "metadata": {"period": c.period, "description": "Monthly maintenance fee"},
                "ledger_entry_id": e,
                "created_at": now,
            }
            for c, e in paid
        ],
    )
    return paid, short


def _amount(charge: _Charge, amount_minor: int) -> str:
    return format_minor(amount_minor, get_currency(charge.currency))


def _fee_charged(charge: _Charge) -> tuple[uuid.UUID, events.EventData]:
    return charge.user_id, events.FeeCharged(
        amount=_amount(charge, charge.amount_minor),
        currency=charge.currency,
        reference=fee_reference(charge.wallet_id, charge.period),
        wallet_number=charge.number,
        period=charge.period,
    )


def _notice(charge: _Charge, event: str) -> dict[str, Any]:
    return {
        "user_id": str(charge.user_id),
        "event": event,
        "wallet_number": charge.number,
        "amount_minor": charge.amount_minor,
        "currency": charge.currency,
        "reference": fee_reference(charge.wallet_id, charge.period),
    }


async def charge_due(
    session: AsyncSession,
    fees: Mapping[str, Decimal],
    *,
    after_wallet_id: int = 0,
    limit: int = 500,
    since: datetime | None = None,
) -> ChargeReport:
    """Charge every period now due of up to `limit` due wallets after `after_wallet_id`, in the
    caller's transaction. Periods due before `since` are recorded as waived, never charged."""
    amounts = fee_amounts(fees)
    now = utcnow()
    if not amounts:
        return ChargeReport(0, after_wallet_id, 0, 0, [])
    due = await repository.due_wallets(
        session, sorted(amounts), cutoff=now - PERIOD, after_wallet_id=after_wallet_id, limit=limit
    )
    if not due:
        return ChargeReport(0, after_wallet_id, 0, 0, [])
    wanted: list[_Charge] = []
    fee_rows: list[dict[str, Any]] = []
    for wallet in due:
        periods_elapsed = (now - wallet.created_at) // PERIOD
        for period in range(wallet.last_period + 1, periods_elapsed + 1):
            amount = amounts[wallet.currency]
            due_at = wallet.created_at + PERIOD * period
            waived = since is not None and due_at < since
            fee_rows.append(
                {
                    "wallet_id": wallet.id,
                    "period": period,
                    "due_at": due_at,
                    "amount_minor": amount,
                    "currency": wallet.currency,
                    "status": FeeStatus.WAIVED if waived else FeeStatus.OWED,
                    "created_at": now,
                }
            )
            if waived:
                continue
            wanted.append(
                _Charge(
                    wallet.id,
                    wallet.user_id,
                    wallet.number,
                    wallet.currency,
                    wallet.ledger_account_id,
                    period,
                    amount,
                )
            )
    claimed = await repository.claim_periods(session, fee_rows)
    charges = [c for c in wanted if (c.wallet_id, c.period) in claimed]
    paid, short = await _post_in_rounds(session, charges, now)
    blocked = await wallet_repository.set_status(
        session, sorted(short), from_status=WalletStatus.ACTIVE, to_status=WalletStatus.BLOCKED
    )
    notices = [_notice(c, "fee_charged") for c, _ in paid]
    paid_periods = {(c.wallet_id, c.period) for c, _ in paid}
    first_owed: dict[int, _Charge] = {}
    for charge in charges:
        if charge.wallet_id in blocked and (charge.wallet_id, charge.period) not in paid_periods:
            first_owed.setdefault(charge.wallet_id, charge)
    notices += [_notice(c, "wallet_blocked") for c in first_owed.values()]
    events.record_events(session, [_fee_charged(c) for c, _ in paid])
    events.record_events(
        session,
        [
            (
                c.user_id,
                events.WalletBlocked(
                    wallet_number=c.number,
                    currency=c.currency,
                    status=WalletStatus.BLOCKED,
                    owed_amount=_amount(c, c.amount_minor),
                    reference=fee_reference(c.wallet_id, c.period),
                ),
            )
            for c in first_owed.values()
        ],
    )
    if notices:
        await enqueue(session, NOTIFY_JOB, {"notices": notices})
    return ChargeReport(len(due), due[-1].id, len(paid), len(charges) - len(paid), blocked)


async def collect_owed_fees(session: AsyncSession, wallet_ids: Sequence[int]) -> list[int]:
    """Take the owed fees of these wallets that their balances now cover, oldest first, and
    unblock each wallet that owes nothing more; returns the unblocked wallets.

    Every path that credits a wallet calls this after posting, in the same transaction.
    """
    owed = await repository.owed_for_update(session, sorted(set(wallet_ids)))
    if not owed:
        return []
    wallets = await wallet_repository.get_by_ids(session, sorted({fee.wallet_id for fee in owed}))
    charges = [
        _Charge(
            fee.wallet_id,
            wallets[fee.wallet_id].user_id,
            wallets[fee.wallet_id].number,
            fee.currency,
            wallets[fee.wallet_id].ledger_account_id,
            fee.period,
            fee.amount_minor,
        )
        for fee in owed
    ]
    paid, short = await _post_in_rounds(session, charges, utcnow())
    settled = sorted({c.wallet_id for c in charges} - short)
    unblocked = await wallet_repository.set_status(
        session, settled, from_status=WalletStatus.BLOCKED, to_status=WalletStatus.ACTIVE
    )
    notices = [_notice(c, "fee_charged") for c, _ in paid]
    events.record_events(session, [_fee_charged(c) for c, _ in paid])
    for wallet_id in unblocked:
        taken = [c for c, _ in paid if c.wallet_id == wallet_id]
        notice = _notice(taken[-1], "wallet_unblocked")
        notice["amount_minor"] = sum(c.amount_minor for c in taken)
        notices.append(notice)
        events.record_event(
            session,
            taken[-1].user_id,
            events.WalletUnblocked(
                wallet_number=taken[-1].number,
                currency=taken[-1].currency,
                status=WalletStatus.ACTIVE,
                paid_amount=_amount(taken[-1], notice["amount_minor"]),
            ),
        )
    if notices:
        await enqueue(session, NOTIFY_JOB, {"notices": notices})
    return unblocked


async def status_after_unfreeze(session: AsyncSession, wallet_id: int) -> WalletStatus:
    """An unfrozen wallet that still owes fees goes back to blocked, not active."""
    owing = await repository.owed_wallet_ids(session, [wallet_id])
    return WalletStatus.BLOCKED if owing else WalletStatus.ACTIVE


def fee_money(notice: Mapping[str, Any]) -> Money:
    return Money.of(int(notice["amount_minor"]), str(notice["currency"]))
