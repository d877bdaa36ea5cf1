"""Withdrawals: debit now, pay out through the provider, settle on its word (DESIGN.md §5).

Accepting a withdrawal is one unit of work: the wallet's state, the day's withdrawal limit,
the ledger debit into `system:payouts_inflight:<ccy>`, the withdrawal row, its pending history
row and the outbox job that asks the provider to pay. The provider is called by that job,
outside any transaction; the outcome arrives by webhook or reconciliation
(coffer.payments.settlement), exactly once.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.auth.principal import Principal
from coffer.db import Database
from coffer.errors import AppError, NotFound
from coffer.fx.service import load_rates
from coffer.jobs.outbox import enqueue
from coffer.kit.clock import utcnow
from coffer.kit.money import Money, parse_amount
from coffer.ledger import service as ledger
from coffer.ledger.postings import EntryKind
from coffer.models import (
    PayoutDestination,
    TransactionStatus,
    TransactionType,
    Wallet,
    WalletStatus,
    Withdrawal,
    WithdrawalStatus,
)
from coffer.payments import repository
from coffer.payments.destinations import owned_destination
from coffer.payments.providers.base import (
    PaymentProvider,
    Payout,
    PayoutRequest,
    PayoutStatus,
    ProviderError,
    UnknownProviderReference,
)
from coffer.payments.providers.registry import ProviderRegistry
from coffer.payments.settlement import INFLIGHT_PURPOSE, apply_payout, fail_withdrawal
from coffer.settings import Settings
from coffer.wallets import limits
from coffer.wallets import repository as wallet_repository
from coffer.wallets.limits import LimitClaim, LimitKind
from coffer.wallets.service import WalletNotActive, WalletNotFound

log = structlog.get_logger(__name__)

PAYOUT_JOB = "payments.payout"
MAX_NARRATION_LENGTH = 100


class WithdrawalNotFound(NotFound):
    code = "withdrawal_not_found"
    default_message = "Withdrawal not found"


class DestinationTooNew(AppError):
    code = "destination_too_new"
    http_status = 403
    default_message = "API keys may not withdraw to a payout destination added this recently"


@dataclass(frozen=True, slots=True)
class WithdrawalView:
    reference: str
    status: str
    amount: Money
    destination_id: int
    bank_name: str
    account_last4: str
    failure_reason: str | None
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, withdrawal: Withdrawal, destination: PayoutDestination) -> WithdrawalView:
        return cls(
            withdrawal.reference,
            withdrawal.status,
            Money.of(withdrawal.amount_minor, withdrawal.currency),
            destination.id,
            destination.bank_name,
            destination.account_last4,
            withdrawal.failure_reason,
            withdrawal.created_at,
            withdrawal.completed_at,
        )


async def _wallet_in(session: AsyncSession, user_id: uuid.UUID, currency: str) -> Wallet:
    wallets = await wallet_repository.list_for_user(session, user_id)
    wallet = next((w for w in wallets if w.currency == currency), None)
    if wallet is None:
        raise WalletNotFound(f"You have no {currency} wallet to withdraw from")
    if wallet.status != WalletStatus.ACTIVE:
        raise WalletNotActive(
            f"The wallet is {wallet.status}: no money may leave it",
            details={"wallet_status": wallet.status},
        )
    return wallet


async def _consume_limit(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, amount: Money, now: datetime
) -> LimitClaim:
    currency = amount.currency.code
    rates = await load_rates(session, settings, {currency, settings.limits_currency}, now)
    claim = LimitClaim(
        user_id,
        LimitKind.WITHDRAWAL,
        currency,
        limits.limit_day(now, settings.limits_timezone),
        amount.minor,
    )
    limit_minor = limits.daily_limit_minor(settings, LimitKind.WITHDRAWAL, currency, rates)
    (granted,) = await limits.consume(session, [(claim, limit_minor)])
    if not granted:
        raise limits.exceeded(claim, limit_minor)
    return claim


async def request_withdrawal(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    *,
    amount: object,
    destination_id: int,
    narration: str | None,
) -> WithdrawalView:
    """Accept a withdrawal in the caller's unit of work (see the module doc)."""
    destination = await owned_destination(session, principal.user_id, destination_id)
    now = utcnow()
    cooldown = timedelta(seconds=settings.new_destination_cooldown_seconds)
    if principal.is_api_key and now - destination.created_at < cooldown:
        raise DestinationTooNew(
            details={"available_at": (destination.created_at + cooldown).isoformat()}
        )
    wallet = await _wallet_in(session, principal.user_id, destination.currency)
    money = parse_amount(amount, wallet.currency, max_minor=settings.max_amount_minor)
    claim = await _consume_limit(session, settings, principal.user_id, money, now)
    reference = f"wd_{secrets.token_hex(12)}"
    inflight = await ledger.system_account(
        session, INFLIGHT_PURPOSE, wallet.currency, allow_negative=False
    )
    entry = await ledger.post_entry(
        session,
        EntryKind.WITHDRAWAL,
        reference,
        ledger.movement(wallet.ledger_account_id, inflight, money.minor),
        {"destination_id": destination.id, "provider": destination.provider},
    )
    withdrawal = Withdrawal(
        reference=reference,
        user_id=principal.user_id,
        wallet_id=wallet.id,
        destination_id=destination.id,
        provider=destination.provider,
        amount_minor=money.minor,
        currency=wallet.currency,
        status=WithdrawalStatus.PENDING,
        narration=narration,
        limit_day=claim.day,
        created_at=now,
        updated_at=now,
    )
    await repository.add(session, withdrawal)
    await wallet_repository.insert_history(
        session,
        [
            {
                "wallet_id": wallet.id,
                "type": TransactionType.WITHDRAWAL,
                "amount_minor": money.minor,
                "currency": wallet.currency,
                "status": TransactionStatus.PENDING,
                "reference": reference,
                "counterparty_name": destination.account_name,
                "metadata": {
                    "bank_name": destination.bank_name,
                    "account_last4": destination.account_last4,
                    "narration": narration,
                },
                "ledger_entry_id": entry.entry_id,
                "created_at": now,
            }
        ],
    )
    await enqueue(session, PAYOUT_JOB, {"reference": reference})
    return WithdrawalView.of(withdrawal, destination)


async def withdrawal_status(
    session: AsyncSession, user_id: uuid.UUID, reference: str
) -> WithdrawalView:
    withdrawal = await repository.withdrawal_by_reference(session, reference)
    if withdrawal is None or withdrawal.user_id != user_id:
        raise WithdrawalNotFound()
    destination = await repository.destination_by_id(session, withdrawal.destination_id)
    return WithdrawalView.of(withdrawal, destination)


async def _known_payout(provider: PaymentProvider, reference: str) -> Payout | None:
    """The provider's record of this payout, None when it has none. Any other refusal (a
    rotated key, say) and ProviderUnavailable propagate, so the job is retried: refunding a
    payout that may still be in flight would pay the user twice."""
    try:
        return await provider.verify_payout(reference)
    except UnknownProviderReference:
        return None


async def initiate_payout(
    database: Database, settings: Settings, registry: ProviderRegistry, reference: str
) -> None:
    """The `payments.payout` job: ask the provider to pay a pending withdrawal, once.

    Idempotent: a withdrawal no longer pending is left alone, and the provider dedupes on our
    reference. A provider that is unreachable raises, so the job is retried with backoff; one
    that refuses fails the withdrawal and refunds it."""
    async with database.transaction() as session:
        withdrawal = await repository.withdrawal_by_reference(session, reference)
        if withdrawal is None or withdrawal.status != WithdrawalStatus.PENDING:
            return
        destination = await repository.destination_by_id(session, withdrawal.destination_id)
    provider = registry.get(withdrawal.provider)
    request = PayoutRequest(
        reference=withdrawal.reference,
        amount_minor=withdrawal.amount_minor,
        currency=withdrawal.currency,
        recipient_code=destination.recipient_code,
        reason=(withdrawal.narration or "coffer withdrawal")[:MAX_NARRATION_LENGTH],
    )
    try:
        payout = await provider.initiate_payout(request)
    except ProviderError as error:
        # A retry after a lost answer is refused as a duplicate reference while the first
        # attempt may be paying out: refund only when the provider has no such payout.
        known = await _known_payout(provider, reference)
        if known is None:
            log.warning("payments.payout_refused", reference=reference, reason=error.message)
            async with database.transaction() as session:
                await fail_withdrawal(
                    session, withdrawal, WithdrawalStatus.FAILED, "provider_refused"
                )
            return
        payout = known
    async with database.transaction() as session:
        if payout.status in (PayoutStatus.FAILED, PayoutStatus.OTP_REQUIRED):
            await apply_payout(session, withdrawal, payout)
            return
        # Accepted (even an initiate answer saying "success" is only queued): the outcome
        # comes by webhook or by reconciliation's verify.
        await repository.move_withdrawal(
            session,
            withdrawal.id,
            (WithdrawalStatus.PENDING,),
            WithdrawalStatus.PROCESSING,
            transfer_code=payout.transfer_code,
            updated_at=utcnow(),
        )
