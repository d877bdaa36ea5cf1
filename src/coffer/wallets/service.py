"""Opening wallets, reading balances and operator adjustments.

A wallet is a user's holding in one currency, backed by one ledger account that can never go
below zero. Balances change only through `coffer.ledger`.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import violates
from coffer.errors import AppError
from coffer.fees.service import collect_owed_fees
from coffer.kit.clock import utcnow
from coffer.kit.money import Money, UnknownCurrency, get_currency
from coffer.kit.pagination import decode_cursor, encode_cursor
from coffer.ledger import service as ledger
from coffer.ledger.postings import EntryKind
from coffer.models import Transaction, TransactionStatus, TransactionType, Wallet, WalletStatus
from coffer.wallets import repository
from coffer.wallets.numbers import generate_wallet_number, is_valid_wallet_number

ADJUSTMENTS_PURPOSE = "adjustments"
_NUMBER_ATTEMPTS = 5


class WalletNotFound(AppError):
    code = "wallet_not_found"
    http_status = 404
    default_message = "Wallet not found"


class InvalidWalletNumber(AppError):
    code = "invalid_wallet_number"
    http_status = 422
    default_message = "That is not a valid wallet number"


class WalletAlreadyExists(AppError):
    code = "wallet_exists"
    http_status = 409
    default_message = "The user already has a wallet in this currency"


class WalletLimitReached(AppError):
    code = "wallet_limit_reached"
    http_status = 409
    default_message = "The user already has the most wallets allowed"


class WalletNotActive(AppError):
    code = "wallet_not_active"
    http_status = 403
    default_message = "The wallet cannot move money in its current state"


def wallet_account_code(number: str) -> str:
    return f"wallet:{number}"


async def open_wallet(
    session: AsyncSession, user_id: uuid.UUID, currency: str, *, name: str | None = None
) -> Wallet:
    """Open the user's wallet in `currency`; their first wallet becomes the primary one."""
    code = get_currency(currency).code
    is_primary = await repository.get_primary(session, user_id) is None
    for _ in range(_NUMBER_ATTEMPTS):
        number = generate_wallet_number()
        try:
            async with session.begin_nested():
                account_id = await ledger.open_account(session, wallet_account_code(number), code)
                wallet = Wallet(
                    number=number,
                    user_id=user_id,
                    currency=code,
                    status=WalletStatus.ACTIVE,
                    is_primary=is_primary,
                    name=name,
                    ledger_account_id=account_id,
                    created_at=utcnow(),
                )
                session.add(wallet)
                await session.flush()
            return wallet
        except IntegrityError as exc:
            # Only a clash of the random number is worth another draw.
            if not violates(exc, "wallets.number", "uq_wallets_number", "ledger_accounts.code"):
                raise WalletAlreadyExists() from exc
    raise WalletAlreadyExists("Could not allocate a wallet number; try again")


async def find_wallet(session: AsyncSession, number: str) -> Wallet:
    """The wallet with this number; a mistyped number is refused before any lookup."""
    if not is_valid_wallet_number(number):
        raise InvalidWalletNumber()
    wallet = await repository.get_by_number(session, number)
    if wallet is None:
        raise WalletNotFound()
    return wallet


async def balance(session: AsyncSession, wallet: Wallet) -> Money:
    return Money.of(await ledger.balance_of(session, wallet.ledger_account_id), wallet.currency)


async def adjust(
    session: AsyncSession,
    wallet: Wallet,
    amount: Money,
    *,
    reason: str,
    credit: bool,
    actor: str,
    reference: str | None = None,
) -> ledger.PostedEntry:
    """An operator's credit or debit through `system:adjustments:<ccy>`, a real ledger entry.

    A debit that the balance cannot cover raises `InsufficientFunds` with nothing written.
    """
    if amount.currency.code != wallet.currency:
        raise AppError("The amount's currency differs from the wallet's")
    if wallet.status == WalletStatus.CLOSED:
        raise WalletNotActive("The wallet is closed")
    reference = reference or f"adj_{secrets.token_hex(12)}"
    system = await ledger.system_account(session, ADJUSTMENTS_PURPOSE, wallet.currency)
    postings = (
        ledger.movement(system, wallet.ledger_account_id, amount.minor)
        if credit
        else ledger.movement(wallet.ledger_account_id, system, amount.minor)
    )
    metadata: dict[str, Any] = {
        "reason": reason,
        "actor": actor,
        "direction": "credit" if credit else "debit",
    }
    entry = await ledger.post_entry(session, EntryKind.ADJUSTMENT, reference, postings, metadata)
    if not entry.replayed:
        await repository.insert_history(
            session,
            [
                {
                    "wallet_id": wallet.id,
                    "type": TransactionType.ADJUSTMENT,
                    "amount_minor": amount.minor,
                    "currency": wallet.currency,
                    "status": TransactionStatus.SUCCESS,
                    "reference": reference,
                    "metadata": metadata,
                    "ledger_entry_id": entry.entry_id,
                    "created_at": utcnow(),
                }
            ],
        )
        if credit:
            await collect_owed_fees(session, [wallet.id])
    return entry


async def open_additional_wallet(
    session: AsyncSession,
    user_id: uuid.UUID,
    currency: str,
    *,
    supported_currencies: Sequence[str],
    max_wallets: int,
    name: str | None = None,
) -> Wallet:
    """A user's wallet in another currency: one per currency, only supported currencies, at
    most `max_wallets` in all (checked under a lock on the user's row)."""
    code = get_currency(currency).code
    if code not in supported_currencies:
        raise UnknownCurrency(f"Wallets can be opened in {', '.join(supported_currencies)}")
    await repository.lock_owner_for_update(session, user_id)
    existing = await repository.list_for_user(session, user_id)
    if any(wallet.currency == code for wallet in existing):
        raise WalletAlreadyExists()
    if len(existing) >= max_wallets:
        raise WalletLimitReached(f"A user can hold at most {max_wallets} wallets")
    return await open_wallet(session, user_id, code, name=name)


async def owned_wallet(session: AsyncSession, user_id: uuid.UUID, number: str) -> Wallet:
    """The user's wallet with this number; another user's is `WalletNotFound`, like none."""
    wallet = await find_wallet(session, number)
    if wallet.user_id != user_id:
        raise WalletNotFound()
    return wallet


async def list_wallets(session: AsyncSession, user_id: uuid.UUID) -> Sequence[Wallet]:
    return await repository.list_for_user(session, user_id)


async def primary_wallet(session: AsyncSession, user_id: uuid.UUID) -> Wallet:
    wallet = await repository.get_primary(session, user_id)
    if wallet is None:
        raise WalletNotFound("The user has no primary wallet")
    return wallet


async def rename(session: AsyncSession, wallet: Wallet, name: str | None) -> Wallet:
    wallet.name = name
    await session.flush()
    return wallet


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    type: TransactionType | None = None
    status: TransactionStatus | None = None
    since: datetime | None = None
    until: datetime | None = None


async def history(
    session: AsyncSession,
    wallet: Wallet,
    *,
    limit: int,
    cursor: str | None,
    filters: HistoryFilter,
) -> tuple[Sequence[Transaction], str | None]:
    """A page of the wallet's history, newest first, and the cursor of the next page.

    The cursor is the last id seen, so rows that arrive meanwhile (always newer) never shift
    or repeat later pages.
    """
    before_id = decode_cursor(cursor, int)[0] if cursor is not None else None
    rows = await repository.history_page(
        session,
        wallet.id,
        limit=limit + 1,
        before_id=before_id,
        type_=filters.type,
        status=filters.status,
        since=filters.since,
        until=filters.until,
    )
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor(rows[limit - 1].id)
