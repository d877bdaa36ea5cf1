"""Payout destinations (bank accounts) and saved cards: what a user keeps to move money.

An account number is resolved with the provider (who holds it, by name), registered as a
transfer recipient, then stored encrypted; coffer shows only its last four digits. The
provider calls run before the unit of work that stores the result, holding no transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import Database
from coffer.errors import AppError, NotFound, ValidationFailed
from coffer.kit.clock import utcnow
from coffer.kit.crypto import current_key_id, keyed_hash, seal
from coffer.kit.money import get_currency
from coffer.models import PayoutDestination, SavedCard
from coffer.payments import repository
from coffer.payments.providers.base import Bank, ProviderError
from coffer.payments.providers.registry import ProviderRegistry
from coffer.settings import Settings
from coffer.wallets.service import primary_wallet

MAX_ACCOUNT_NUMBER_LENGTH = 34
"""An IBAN at most; Paystack's NUBAN is 10 digits."""


class DestinationNotFound(NotFound):
    code = "destination_not_found"
    default_message = "Payout destination not found"


class CardNotFound(NotFound):
    code = "card_not_found"
    default_message = "Saved card not found"


class AccountNotResolved(AppError):
    code = "account_not_resolved"
    http_status = 422
    default_message = "The bank could not confirm this account number"


class UnknownBank(ValidationFailed):
    code = "unknown_bank"
    default_message = "No bank with this code pays out in this currency"


def account_context(user_id: uuid.UUID, provider: str, bank_code: str) -> str:
    return f"payout-account:{user_id}:{provider}:{bank_code}"


async def list_banks(
    registry: ProviderRegistry, settings: Settings, currency: str | None
) -> Sequence[Bank]:
    code = get_currency(currency or settings.default_currency).code
    return await registry.for_currency(code).list_banks(code)


async def _currency_of(database: Database, user_id: uuid.UUID, currency: str | None) -> str:
    if currency is not None:
        return get_currency(currency).code
    async with database.transaction() as session:
        return (await primary_wallet(session, user_id)).currency


async def add_destination(
    database: Database,
    settings: Settings,
    registry: ProviderRegistry,
    user_id: uuid.UUID,
    *,
    bank_code: str,
    account_number: str,
    currency: str | None,
) -> PayoutDestination:
    """Resolve, register and store a bank account; the same live account again is returned
    as it was (one row per account)."""
    code = await _currency_of(database, user_id, currency)
    provider = registry.for_currency(code)
    bank = next((b for b in await provider.list_banks(code) if b.code == bank_code), None)
    if bank is None:
        raise UnknownBank(details={"bank_code": bank_code, "currency": code})
    try:
        resolved = await provider.resolve_account(bank_code, account_number)
    except ProviderError as error:
        raise AccountNotResolved() from error
    recipient_code = await provider.create_recipient(
        name=resolved.account_name,
        account_number=account_number,
        bank_code=bank_code,
        currency=code,
    )
    name = provider.name.value
    fingerprint = keyed_hash(settings, "payout-account", name, bank_code, account_number)
    try:
        async with database.transaction() as session:
            existing = await repository.live_destination_by_fingerprint(
                session, user_id, name, fingerprint
            )
            if existing is not None:
                return existing
            destination = PayoutDestination(
                user_id=user_id,
                provider=name,
                currency=code,
                bank_code=bank_code,
                bank_name=bank.name[:128],
                account_name=resolved.account_name[:201],
                account_number_sealed=seal(
                    settings, account_number, context=account_context(user_id, name, bank_code)
                ),
                encryption_key_id=current_key_id(settings),
                account_last4=account_number[-4:],
                account_fingerprint=fingerprint,
                recipient_code=recipient_code,
                created_at=utcnow(),
            )
            await repository.add(session, destination)
            return destination
    except IntegrityError:
        # A concurrent request stored the same account first: answer with its row.
        async with database.transaction() as session:
            stored = await repository.live_destination_by_fingerprint(
                session, user_id, name, fingerprint
            )
        if stored is None:
            raise
        return stored


async def list_destinations(
    session: AsyncSession, user_id: uuid.UUID
) -> Sequence[PayoutDestination]:
    return await repository.list_destinations(session, user_id)


async def owned_destination(
    session: AsyncSession, user_id: uuid.UUID, destination_id: int
) -> PayoutDestination:
    destination = await repository.live_destination(session, user_id, destination_id)
    if destination is None:
        raise DestinationNotFound()
    return destination


async def delete_destination(
    session: AsyncSession, user_id: uuid.UUID, destination_id: int
) -> None:
    """Soft delete: withdrawals already made to it keep pointing at it."""
    destination = await owned_destination(session, user_id, destination_id)
    destination.deleted_at = utcnow()
    await session.flush()


async def list_cards(session: AsyncSession, user_id: uuid.UUID) -> Sequence[SavedCard]:
    return await repository.list_cards(session, user_id)


async def delete_card(session: AsyncSession, user_id: uuid.UUID, card_id: int) -> None:
    card = await repository.live_card(session, user_id, card_id)
    if card is None:
        raise CardNotFound()
    card.deleted_at = utcnow()
    await session.flush()
