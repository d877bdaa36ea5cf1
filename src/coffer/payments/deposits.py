"""Deposits: initialize with the provider, then wait for its verified word (DESIGN.md §5).

The pending deposit (and its pending history row) is committed before the provider is called,
so the HTTP call holds no transaction, no row lock and not SQLite's write lock; the provider's
reference is stored after. Nothing here credits a wallet on a redirect or a client's say-so:
only the webhook inbox and reconciliation do (coffer.payments.settlement), and a saved-card
charge, whose answer comes from the provider itself.

The Idempotency-Key is kept on the deposit row, as transfers keep theirs, because the request
spans two transactions: the same key and body answer the first deposit again. A deposit left
without a checkout long after any start could still run (seen writing `coffer check bank`'s
deposits: a database restart while the sandbox stored its checkout left one, and every retry
was told `idempotency_key_in_use` for the 24 hours until it was abandoned) is failed by the
retry that finds it, which then starts afresh under the same key.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.admin.policy import ensure_user_deposits_enabled
from coffer.db import Database
from coffer.errors import AppError, NotFound
from coffer.idempotency.service import IdempotencyKeyInUse, IdempotencyKeyReused
from coffer.kit.clock import utcnow
from coffer.kit.crypto import unseal
from coffer.kit.money import Money, get_currency, parse_amount
from coffer.models import (
    Deposit,
    DepositStatus,
    SavedCard,
    TransactionStatus,
    TransactionType,
    Wallet,
    WalletStatus,
)
from coffer.payments import repository
from coffer.payments.destinations import CardNotFound
from coffer.payments.providers.base import (
    Charge,
    DepositRequest,
    ProviderError,
    ProviderUnavailable,
    SavedCardsNotSupported,
)
from coffer.payments.providers.registry import ProviderRegistry
from coffer.payments.settlement import apply_charge, card_context
from coffer.settings import Settings
from coffer.wallets import repository as wallet_repository
from coffer.wallets.service import WalletNotActive, WalletNotFound, primary_wallet

RETURN_PATH = "/payments/return"
CUT_OFF_REASON = "start_interrupted"


class DepositNotFound(NotFound):
    code = "deposit_not_found"
    default_message = "Deposit not found"


@dataclass(frozen=True, slots=True)
class DepositStart:
    user_id: uuid.UUID
    amount: object
    currency: str | None
    callback_url: str | None
    saved_card_id: int | None
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class DepositView:
    reference: str
    status: str
    amount: Money
    provider: str
    authorization_url: str | None
    created_at: datetime
    paid_at: datetime | None
    failure_reason: str | None

    @classmethod
    def of(cls, deposit: Deposit) -> DepositView:
        return cls(
            deposit.reference,
            deposit.status,
            Money.of(deposit.amount_minor, deposit.currency),
            deposit.provider,
            deposit.authorization_url,
            deposit.created_at,
            deposit.paid_at,
            deposit.failure_reason,
        )


def _fingerprint(start: DepositStart, amount_minor: int, currency: str) -> str:
    content = [amount_minor, currency, start.callback_url, start.saved_card_id]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


async def _wallet_for(session: AsyncSession, user_id: uuid.UUID, currency: str | None) -> Wallet:
    if currency is None:
        wallet = await primary_wallet(session, user_id)
    else:
        code = get_currency(currency).code
        wallets = await wallet_repository.list_for_user(session, user_id)
        found = next((w for w in wallets if w.currency == code), None)
        if found is None:
            raise WalletNotFound(f"You have no {code} wallet")
        wallet = found
    if wallet.status in (WalletStatus.FROZEN, WalletStatus.CLOSED):
        raise WalletNotActive(f"The wallet is {wallet.status}: it cannot receive deposits")
    return wallet


def start_timeout(settings: Settings) -> timedelta:
    """The longest a start can be with the provider: every attempt's connect and read timeout
    and the backoff between them. A deposit with no checkout after this was cut off."""
    attempts = settings.provider_http_max_attempts
    per_attempt = (
        settings.provider_http_connect_timeout_seconds + settings.provider_http_read_timeout_seconds
    )
    backoff = settings.provider_http_backoff_base_seconds * 2**attempts
    return timedelta(seconds=attempts * per_attempt + backoff)


def _cut_off(deposit: Deposit, settings: Settings) -> bool:
    """Opened but never given a checkout, long after any start could still be running: its
    request died between its units of work (the process was killed, or the database went away
    before the provider's answer was stored). Nobody ever saw a checkout for it to pay."""
    return (
        deposit.status == DepositStatus.PENDING
        and deposit.authorization_url is None
        and deposit.saved_card_id is None
        and deposit.created_at < utcnow() - start_timeout(settings)
    )


async def _close_cut_off(session: AsyncSession, deposit: Deposit, fingerprint: str) -> None:
    """Fail a cut-off deposit and free its key, so the retry that found it starts afresh."""
    if deposit.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    if not await repository.finish_deposit(
        session,
        deposit.id,
        DepositStatus.FAILED,
        failure_reason=CUT_OFF_REASON,
        release_idempotency_key=True,
    ):
        raise IdempotencyKeyInUse()
    await repository.update_history(
        session,
        wallet_id=deposit.wallet_id,
        type_=TransactionType.DEPOSIT,
        reference=deposit.reference,
        status=TransactionStatus.FAILED,
        failure_reason=CUT_OFF_REASON,
    )


def _replay(deposit: Deposit, fingerprint: str) -> DepositView:
    if deposit.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    if (
        deposit.status == DepositStatus.PENDING
        and deposit.authorization_url is None
        and deposit.saved_card_id is None
    ):
        raise IdempotencyKeyInUse()
    return DepositView.of(deposit)


@dataclass(frozen=True, slots=True)
class _Opened:
    deposit: Deposit
    email: str
    authorization_code: str | None
    replay: DepositView | None = None


async def _open(
    session: AsyncSession, settings: Settings, registry: ProviderRegistry, start: DepositStart
) -> _Opened:
    wallet = await _wallet_for(session, start.user_id, start.currency)
    amount = parse_amount(start.amount, wallet.currency, max_minor=settings.max_amount_minor)
    fingerprint = _fingerprint(start, amount.minor, wallet.currency)
    if start.idempotency_key is not None:
        existing = await repository.deposit_by_key(session, start.user_id, start.idempotency_key)
        if existing is not None and _cut_off(existing, settings):
            await _close_cut_off(session, existing, fingerprint)
        elif existing is not None:
            return _Opened(existing, "", None, replay=_replay(existing, fingerprint))
    provider = registry.for_currency(wallet.currency)
    card: SavedCard | None = None
    if start.saved_card_id is not None:
        card = await repository.live_card(session, start.user_id, start.saved_card_id)
        if card is None or card.provider != provider.name.value:
            raise CardNotFound()
    reference = f"dep-{secrets.token_hex(12)}"
    now = utcnow()
    deposit = Deposit(
        reference=reference,
        user_id=start.user_id,
        wallet_id=wallet.id,
        provider=provider.name.value,
        amount_minor=amount.minor,
        currency=wallet.currency,
        status=DepositStatus.PENDING,
        callback_url=start.callback_url or settings.public_url.rstrip("/") + RETURN_PATH,
        saved_card_id=card.id if card else None,
        idempotency_key=start.idempotency_key,
        request_fingerprint=fingerprint,
        created_at=now,
    )
    await repository.add(session, deposit)
    await wallet_repository.insert_history(
        session,
        [
            {
                "wallet_id": wallet.id,
                "type": TransactionType.DEPOSIT,
                "amount_minor": amount.minor,
                "currency": wallet.currency,
                "status": TransactionStatus.PENDING,
                "reference": reference,
                "metadata": {"provider": provider.name.value},
                "created_at": now,
            }
        ],
    )
    authorization_code = (
        unseal(
            settings,
            card.authorization_sealed,
            context=card_context(card.user_id, card.provider, card.signature),
        )
        if card is not None
        else None
    )
    email = await repository.email_of(session, start.user_id)
    return _Opened(deposit, email, authorization_code)


async def _fail_to_start(database: Database, deposit: Deposit, error: AppError) -> None:
    async with database.transaction() as session:
        if await repository.finish_deposit(
            session,
            deposit.id,
            DepositStatus.FAILED,
            failure_reason=error.code,
            release_idempotency_key=True,
        ):
            await repository.update_history(
                session,
                wallet_id=deposit.wallet_id,
                type_=TransactionType.DEPOSIT,
                reference=deposit.reference,
                status=TransactionStatus.FAILED,
                failure_reason=error.code,
            )


async def start_deposit(
    database: Database, settings: Settings, registry: ProviderRegistry, start: DepositStart
) -> tuple[DepositView, bool]:
    """Open a deposit and ask the provider for a checkout (or charge the saved card); returns
    the deposit and whether this was an idempotent replay. Runs its own units of work."""
    ensure_user_deposits_enabled(settings)
    try:
        async with database.transaction() as session:
            opened = await _open(session, settings, registry, start)
    except IntegrityError as error:
        # The same Idempotency-Key is being used by a concurrent request right now.
        raise IdempotencyKeyInUse() from error
    if opened.replay is not None:
        return opened.replay, True
    deposit = opened.deposit
    provider = registry.get(deposit.provider)
    charge: Charge | None = None
    try:
        if opened.authorization_code is not None:
            charge = await provider.charge_saved_card(
                reference=deposit.reference,
                amount_minor=deposit.amount_minor,
                currency=deposit.currency,
                email=opened.email,
                authorization_code=opened.authorization_code,
            )
        else:
            checkout = await provider.initialize_deposit(
                DepositRequest(
                    reference=deposit.reference,
                    amount_minor=deposit.amount_minor,
                    currency=deposit.currency,
                    email=opened.email,
                    callback_url=deposit.callback_url,
                    metadata={"deposit": deposit.reference},
                )
            )
    except ProviderUnavailable:
        if opened.authorization_code is None:
            await _fail_to_start(database, deposit, ProviderUnavailable())
        # A card charge whose answer was lost may have gone through: reconciliation asks.
        raise
    except (ProviderError, SavedCardsNotSupported) as error:
        await _fail_to_start(database, deposit, error)
        raise
    async with database.transaction() as session:
        stored = await repository.deposit_by_reference(session, deposit.reference)
        if stored is None:
            raise DepositNotFound()
        if charge is None:
            await repository.set_checkout(
                session, stored.id, checkout.provider_reference, checkout.authorization_url
            )
        else:
            await repository.set_checkout(
                session, stored.id, charge.provider_reference or deposit.reference, None
            )
            await apply_charge(session, settings, stored, charge)
        await session.refresh(stored)
        return DepositView.of(stored), False


async def deposit_status(session: AsyncSession, user_id: uuid.UUID, reference: str) -> DepositView:
    """The caller's own deposit; another user's reference is `DepositNotFound`, like none."""
    deposit = await repository.deposit_by_reference(session, reference)
    if deposit is None or deposit.user_id != user_id:
        raise DepositNotFound()
    return DepositView.of(deposit)
