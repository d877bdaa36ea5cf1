"""Admin actions on wallets: credit and debit through `system:adjustments:<ccy>`, freeze and
unfreeze, and daily limit overrides. Each writes an audit row and tells the owner by email,
in the caller's transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.admin.users import get_user
from coffer.audit.service import Action, record
from coffer.errors import AppError
from coffer.fees.service import status_after_unfreeze
from coffer.kit.clock import utcnow
from coffer.kit.money import Money, get_currency, parse_amount
from coffer.ledger.service import PostedEntry
from coffer.models import Wallet, WalletStatus
from coffer.notifications import events
from coffer.notifications.service import Event, amount_text, notify
from coffer.settings import Settings
from coffer.wallets import limit_overrides
from coffer.wallets import repository as wallet_repository
from coffer.wallets import service as wallets
from coffer.wallets.limits import LimitKind


class WalletNotFrozen(AppError):
    code = "wallet_not_frozen"
    http_status = 409
    default_message = "The wallet is not frozen"


class WalletAlreadyFrozen(AppError):
    code = "wallet_already_frozen"
    http_status = 409
    default_message = "The wallet is already frozen"


class OverrideExpiryInPast(AppError):
    code = "expiry_in_past"
    http_status = 422
    default_message = "The override's expiry must be in the future"


@dataclass(frozen=True, slots=True)
class Adjusted:
    wallet: Wallet
    entry: PostedEntry
    amount: Money
    balance: Money


async def adjust(
    session: AsyncSession,
    settings: Settings,
    wallet_number: str,
    raw_amount: object,
    *,
    credit: bool,
    reason: str,
    actor: str,
    reference: str | None = None,
) -> Adjusted:
    """Credit or debit a wallet with a mandatory reason: one ledger entry, an `adjustment`
    history row the user sees with the reason, an audit row and an email."""
    wallet = await wallets.find_wallet(session, wallet_number)
    amount = parse_amount(raw_amount, wallet.currency, max_minor=settings.max_amount_minor)
    entry = await wallets.adjust(
        session, wallet, amount, reason=reason, credit=credit, actor=actor, reference=reference
    )
    if not entry.replayed:
        action = Action.WALLET_CREDITED if credit else Action.WALLET_DEBITED
        await record(
            session,
            action,
            actor=actor,
            subject_user_id=wallet.user_id,
            reason=reason,
            details={
                "wallet": wallet.number,
                "amount": amount.format(),
                "currency": wallet.currency,
                "reference": entry.reference,
            },
        )
        await notify(
            session,
            settings,
            wallet.user_id,
            Event.WALLET_CREDITED if credit else Event.WALLET_DEBITED,
            {
                "amount": amount_text(amount),
                "wallet_number": wallet.number,
                "reason": reason,
                "reference": entry.reference,
            },
            key=entry.reference,
        )
    return Adjusted(wallet, entry, amount, await wallets.balance(session, wallet))


async def freeze(
    session: AsyncSession, settings: Settings, wallet_number: str, *, reason: str, actor: str
) -> Wallet:
    """Stop all money in and out of the wallet (fees owed stay owed)."""
    wallet = await wallets.find_wallet(session, wallet_number)
    if wallet.status == WalletStatus.FROZEN:
        raise WalletAlreadyFrozen()
    if wallet.status == WalletStatus.CLOSED:
        raise wallets.WalletNotActive("The wallet is closed")
    wallet.status = WalletStatus.FROZEN
    await session.flush()
    await _announce(session, settings, wallet, Action.WALLET_FROZEN, reason=reason, actor=actor)
    return wallet


async def unfreeze(
    session: AsyncSession, settings: Settings, wallet_number: str, *, reason: str, actor: str
) -> Wallet:
    """Back to active, or to blocked while fees are still owed."""
    wallet = await wallets.find_wallet(session, wallet_number)
    if wallet.status != WalletStatus.FROZEN:
        raise WalletNotFrozen()
    target = await status_after_unfreeze(session, wallet.id)
    await wallet_repository.set_status(
        session, [wallet.id], from_status=WalletStatus.FROZEN, to_status=target
    )
    await session.refresh(wallet)
    await _announce(session, settings, wallet, Action.WALLET_UNFROZEN, reason=reason, actor=actor)
    return wallet


async def _announce(
    session: AsyncSession,
    settings: Settings,
    wallet: Wallet,
    action: Action,
    *,
    reason: str,
    actor: str,
) -> None:
    event_id = await record(
        session,
        action,
        actor=actor,
        subject_user_id=wallet.user_id,
        reason=reason,
        details={"wallet": wallet.number, "status": wallet.status},
    )
    state = {"wallet_number": wallet.number, "currency": wallet.currency, "status": wallet.status}
    events.record_event(
        session,
        wallet.user_id,
        events.WalletFrozen(**state, reason=reason)
        if action is Action.WALLET_FROZEN
        else events.WalletUnfrozen(**state, reason=reason),
    )
    await notify(
        session,
        settings,
        wallet.user_id,
        Event.WALLET_FROZEN if action is Action.WALLET_FROZEN else Event.WALLET_UNFROZEN,
        {"wallet_number": wallet.number, "reason": reason},
        key=f"audit:{event_id}",
    )


async def override_limit(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    kind: LimitKind,
    currency: str,
    raw_limit: object,
    expires_at: datetime,
    reason: str,
    actor: str,
) -> Money:
    """The user's daily `kind` limit in `currency` until `expires_at` (replacing the default)."""
    user = await get_user(session, user_id)
    code = get_currency(currency).code
    limit = parse_amount(raw_limit, code)
    if expires_at <= utcnow():
        raise OverrideExpiryInPast()
    await limit_overrides.set_override(
        session,
        user.id,
        kind=kind.value,
        currency=code,
        limit_minor=limit.minor,
        expires_at=expires_at,
        created_by=actor,
    )
    await record(
        session,
        Action.LIMIT_OVERRIDDEN,
        actor=actor,
        subject_user_id=user.id,
        reason=reason,
        details={
            "kind": kind.value,
            "limit": limit.format(),
            "currency": code,
            "expires_at": expires_at.isoformat(),
        },
    )
    return limit
