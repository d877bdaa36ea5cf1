"""Applying a provider's word on a deposit or a withdrawal: the only code that moves money
because a provider said so. The webhook inbox, reconciliation and saved-card charges all come
here, inside their own unit of work.

Every transition is a conditional update (`WHERE status IN ...`), so whichever of a webhook
and reconciliation comes second finds nothing to do; ledger references are a second guard
(one entry per reference, ever). Each function answers what happened, for the inbox to record.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.fees.service import collect_owed_fees
from coffer.kit.clock import utcnow
from coffer.kit.crypto import current_key_id, keyed_hash, seal
from coffer.kit.money import Money
from coffer.ledger import service as ledger
from coffer.ledger.postings import EntryKind
from coffer.models import (
    Deposit,
    DepositStatus,
    InboxOutcome,
    TransactionStatus,
    TransactionType,
    Wallet,
    Withdrawal,
    WithdrawalStatus,
)
from coffer.notifications import events
from coffer.payments import repository
from coffer.payments.providers.base import (
    CardAuthorization,
    Charge,
    ChargeStatus,
    Payout,
    PayoutStatus,
)
from coffer.settings import Settings
from coffer.wallets.limits import LimitClaim, LimitKind, release

INFLIGHT_PURPOSE = "payouts_inflight"
OTP_REASON = "payout_requires_otp"
_IN_FLIGHT = (WithdrawalStatus.PENDING, WithdrawalStatus.PROCESSING)


@dataclass(frozen=True, slots=True)
class Applied:
    outcome: InboxOutcome
    reason: str | None = None


def card_context(user_id: object, provider: str, signature: str) -> str:
    return f"card:{user_id}:{provider}:{signature}"


async def _save_card(
    session: AsyncSession, settings: Settings, deposit: Deposit, card: CardAuthorization
) -> None:
    signature = card.signature or keyed_hash(settings, "card-signature", card.authorization_code)
    await repository.upsert_card(
        session,
        {
            "user_id": deposit.user_id,
            "provider": deposit.provider,
            "authorization_sealed": seal(
                settings,
                card.authorization_code,
                context=card_context(deposit.user_id, deposit.provider, signature),
            ),
            "encryption_key_id": current_key_id(settings),
            "last4": card.last4[-4:],
            "brand": card.brand[:32],
            "exp_month": card.exp_month[:2],
            "exp_year": card.exp_year[:4],
            "signature": signature,
            "created_at": utcnow(),
        },
    )


async def _wallet(session: AsyncSession, wallet_id: int) -> Wallet:
    wallet = await session.get(Wallet, wallet_id)
    if wallet is None:
        raise LookupError(f"wallet {wallet_id} is gone")
    return wallet


async def apply_charge(
    session: AsyncSession, settings: Settings, deposit: Deposit, charge: Charge
) -> Applied:
    """Complete or fail a pending deposit from the provider's report of its charge."""
    if charge.status is ChargeStatus.PENDING:
        return Applied(InboxOutcome.IGNORED, "charge_pending")
    if charge.status is ChargeStatus.SUCCESS:
        if charge.amount_minor != deposit.amount_minor or charge.currency != deposit.currency:
            # Paid, but not what was asked: never credit; an operator settles it by hand.
            await _close_deposit(session, deposit, DepositStatus.FAILED, "amount_mismatch")
            return Applied(InboxOutcome.REVIEW, "amount_mismatch")
        return await _credit(session, settings, deposit, charge)
    status = (
        DepositStatus.ABANDONED if charge.status is ChargeStatus.ABANDONED else DepositStatus.FAILED
    )
    reason = charge.failure_reason or charge.status.value
    if not await _close_deposit(session, deposit, status, reason[:64]):
        await session.refresh(deposit)
        return Applied(InboxOutcome.IGNORED, f"deposit_{deposit.status}")
    return Applied(InboxOutcome.APPLIED, f"deposit_{status.value}")


async def _close_deposit(
    session: AsyncSession, deposit: Deposit, status: DepositStatus, reason: str
) -> bool:
    if not await repository.finish_deposit(session, deposit.id, status, failure_reason=reason):
        return False
    wallet = await _wallet(session, deposit.wallet_id)
    events.record_event(
        session,
        deposit.user_id,
        events.DepositFailed(
            amount=Money.of(deposit.amount_minor, deposit.currency).format(),
            currency=deposit.currency,
            reference=deposit.reference,
            wallet_number=wallet.number,
            provider=deposit.provider,
            status="abandoned" if status is DepositStatus.ABANDONED else "failed",
            failure_reason=reason,
        ),
    )
    await repository.update_history(
        session,
        wallet_id=deposit.wallet_id,
        type_=TransactionType.DEPOSIT,
        reference=deposit.reference,
        status=TransactionStatus.FAILED,
        failure_reason=reason,
    )
    return True


async def abandon_deposit(session: AsyncSession, deposit: Deposit) -> bool:
    return await _close_deposit(session, deposit, DepositStatus.ABANDONED, "abandoned")


async def _credit(
    session: AsyncSession, settings: Settings, deposit: Deposit, charge: Charge
) -> Applied:
    paid_at = charge.paid_at or utcnow()
    if not await repository.finish_deposit(
        session, deposit.id, DepositStatus.SUCCESS, paid_at=paid_at
    ):
        await session.refresh(deposit)
        reason = "already_credited" if deposit.status == DepositStatus.SUCCESS else "deposit_closed"
        # A success for a deposit already failed or abandoned: money may sit at the provider.
        outcome = InboxOutcome.IGNORED if reason == "already_credited" else InboxOutcome.REVIEW
        return Applied(outcome, reason)
    wallet = await _wallet(session, deposit.wallet_id)
    source = await ledger.system_account(session, deposit.provider, deposit.currency)
    entry = await ledger.post_entry(
        session,
        EntryKind.DEPOSIT,
        deposit.reference,
        ledger.movement(source, wallet.ledger_account_id, deposit.amount_minor),
        {"provider": deposit.provider, "provider_reference": charge.provider_reference},
    )
    await repository.update_history(
        session,
        wallet_id=deposit.wallet_id,
        type_=TransactionType.DEPOSIT,
        reference=deposit.reference,
        status=TransactionStatus.SUCCESS,
        ledger_entry_id=entry.entry_id,
    )
    events.record_event(
        session,
        deposit.user_id,
        events.DepositSucceeded(
            amount=Money.of(deposit.amount_minor, deposit.currency).format(),
            currency=deposit.currency,
            reference=deposit.reference,
            wallet_number=wallet.number,
            provider=deposit.provider,
        ),
    )
    # A blocked wallet pays its owed fees from this credit, and is unblocked once paid up.
    await collect_owed_fees(session, [deposit.wallet_id])
    if charge.card is not None:
        await _save_card(session, settings, deposit, charge.card)
    return Applied(InboxOutcome.APPLIED, "deposit_credited")


def _claim(withdrawal: Withdrawal) -> LimitClaim:
    return LimitClaim(
        withdrawal.user_id,
        LimitKind.WITHDRAWAL,
        withdrawal.currency,
        withdrawal.limit_day,
        withdrawal.amount_minor,
    )


async def _history(
    session: AsyncSession,
    withdrawal: Withdrawal,
    status: TransactionStatus,
    reason: str | None = None,
    *,
    was_paid: bool = False,
) -> None:
    """The user's history row and the event that announce the withdrawal's outcome."""
    await repository.update_history(
        session,
        wallet_id=withdrawal.wallet_id,
        type_=TransactionType.WITHDRAWAL,
        reference=withdrawal.reference,
        status=status,
        failure_reason=reason,
    )
    wallet = await _wallet(session, withdrawal.wallet_id)
    common = {
        "amount": Money.of(withdrawal.amount_minor, withdrawal.currency).format(),
        "currency": withdrawal.currency,
        "reference": withdrawal.reference,
        "wallet_number": wallet.number,
        "provider": withdrawal.provider,
    }
    data: events.EventData
    if status is TransactionStatus.SUCCESS:
        data = events.WithdrawalPaid(**common)
    elif status is TransactionStatus.REVERSED:
        data = events.WithdrawalReversed(
            **common, failure_reason=reason or "payout_reversed", was_paid=was_paid
        )
    else:
        data = events.WithdrawalFailed(**common, failure_reason=reason or "payout_failed")
    events.record_event(session, withdrawal.user_id, data)


async def _refund(
    session: AsyncSession, withdrawal: Withdrawal, source_account: int, suffix: str
) -> None:
    wallet = await _wallet(session, withdrawal.wallet_id)
    await ledger.post_entry(
        session,
        EntryKind.WITHDRAWAL_REVERSAL,
        f"{withdrawal.reference}.{suffix}",
        ledger.movement(source_account, wallet.ledger_account_id, withdrawal.amount_minor),
        {"withdrawal": withdrawal.reference},
    )
    await release(session, [_claim(withdrawal)])


async def fail_withdrawal(
    session: AsyncSession, withdrawal: Withdrawal, status: WithdrawalStatus, reason: str
) -> bool:
    """A payout that never reached the account: the in-flight money goes back to the wallet,
    and the day's limit with it. False when the withdrawal was no longer in flight."""
    now = utcnow()
    if not await repository.move_withdrawal(
        session,
        withdrawal.id,
        _IN_FLIGHT,
        status,
        failure_reason=reason[:64],
        updated_at=now,
        completed_at=now,
    ):
        return False
    inflight = await ledger.system_account(
        session, INFLIGHT_PURPOSE, withdrawal.currency, allow_negative=False
    )
    await _refund(session, withdrawal, inflight, "refund")
    history_status = (
        TransactionStatus.REVERSED
        if status is WithdrawalStatus.REVERSED
        else TransactionStatus.FAILED
    )
    await _history(session, withdrawal, history_status, reason[:64])
    return True


async def apply_payout(session: AsyncSession, withdrawal: Withdrawal, payout: Payout) -> Applied:
    """Settle a withdrawal from the provider's report, exactly once whatever the order."""
    if payout.amount_minor != withdrawal.amount_minor or payout.currency != withdrawal.currency:
        return Applied(InboxOutcome.REVIEW, "amount_mismatch")
    if payout.status is PayoutStatus.PENDING:
        return Applied(InboxOutcome.IGNORED, "payout_pending")
    if payout.status is PayoutStatus.SUCCESS:
        return await _settle(session, withdrawal)
    if payout.status is PayoutStatus.OTP_REQUIRED:
        reason, status = OTP_REASON, WithdrawalStatus.FAILED
    elif payout.status is PayoutStatus.FAILED:
        reason, status = payout.failure_reason or "payout_failed", WithdrawalStatus.FAILED
    else:
        reason, status = payout.failure_reason or "payout_reversed", WithdrawalStatus.REVERSED
    if await fail_withdrawal(session, withdrawal, status, reason):
        return Applied(InboxOutcome.APPLIED, f"withdrawal_{status.value}")
    if payout.status is PayoutStatus.REVERSED and await _reverse_settled(
        session, withdrawal, reason
    ):
        return Applied(InboxOutcome.APPLIED, "withdrawal_reversed_after_success")
    await session.refresh(withdrawal)
    return Applied(InboxOutcome.IGNORED, f"withdrawal_{withdrawal.status}")


async def _settle(session: AsyncSession, withdrawal: Withdrawal) -> Applied:
    now = utcnow()
    if not await repository.move_withdrawal(
        session,
        withdrawal.id,
        _IN_FLIGHT,
        WithdrawalStatus.SUCCESS,
        updated_at=now,
        completed_at=now,
    ):
        await session.refresh(withdrawal)
        if withdrawal.status == WithdrawalStatus.SUCCESS:
            return Applied(InboxOutcome.IGNORED, "already_settled")
        # Paid out after coffer refunded the wallet: the money left twice; an operator must act.
        return Applied(InboxOutcome.REVIEW, "success_after_refund")
    inflight = await ledger.system_account(
        session, INFLIGHT_PURPOSE, withdrawal.currency, allow_negative=False
    )
    provider_account = await ledger.system_account(
        session, withdrawal.provider, withdrawal.currency
    )
    await ledger.post_entry(
        session,
        EntryKind.WITHDRAWAL,
        f"{withdrawal.reference}.settled",
        ledger.movement(inflight, provider_account, withdrawal.amount_minor),
        {"withdrawal": withdrawal.reference},
    )
    await _history(session, withdrawal, TransactionStatus.SUCCESS)
    return Applied(InboxOutcome.APPLIED, "withdrawal_settled")


async def _reverse_settled(session: AsyncSession, withdrawal: Withdrawal, reason: str) -> bool:
    """The bank returned a payout that had succeeded: refund once, from the provider's account."""
    if not await repository.move_withdrawal(
        session,
        withdrawal.id,
        (WithdrawalStatus.SUCCESS,),
        WithdrawalStatus.REVERSED,
        failure_reason=reason[:64],
        updated_at=utcnow(),
    ):
        return False
    provider_account = await ledger.system_account(
        session, withdrawal.provider, withdrawal.currency
    )
    await _refund(session, withdrawal, provider_account, "reversal")
    await _history(session, withdrawal, TransactionStatus.REVERSED, reason[:64], was_paid=True)
    return True
