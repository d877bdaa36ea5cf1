"""What a sender confirms before a transfer is made (the web app's confirmation step): who
receives it, by name, and across currencies a quote that holds the rate for the transfer.

It climbs the same ladder as `create_transfers` up to pricing, in the same order (the
sender's own checks before anything about the recipient, so a preview reveals no more about
who has an account than the transfer itself would), and stores nothing but the quote.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.fx import service as fx
from coffer.kit.money import Money, parse_amount
from coffer.models import FxQuote
from coffer.settings import Settings
from coffer.transfers import repository
from coffer.transfers.service import (
    RecipientKind,
    TransferRequest,
    _Candidate,
    _check_can_send,
    _check_request_shape,
    _check_sender,
    _Directory,
    _normalized_recipient,
    full_name,
)


@dataclass(frozen=True, slots=True)
class TransferPreview:
    sender_wallet_number: str
    recipient_wallet_number: str
    recipient_name: str | None
    amount: Money
    quote: FxQuote | None
    """Set when the recipient's wallet is in another currency: the rate the transfer uses."""


async def preview_transfer(
    session: AsyncSession, settings: Settings, request: TransferRequest
) -> TransferPreview:
    _check_request_shape(request)
    recipient = _normalized_recipient(request)
    kind = request.recipient_kind
    directory = _Directory(
        await repository.wallets_of_users(session, [request.sender_user_id]),
        await repository.wallets_matching(
            session,
            [recipient] if kind is RecipientKind.WALLET_NUMBER else [],
            [recipient] if kind is RecipientKind.EMAIL else [],
            [recipient] if kind is RecipientKind.PHONE else [],
        ),
    )
    sender = directory.sender_wallet(request)
    amount = parse_amount(request.amount, sender.currency, max_minor=settings.max_amount_minor)
    balances = await repository.running_balances(session, [sender.ledger_account_id])
    _check_sender(sender, amount, balances)
    target = directory.recipient_wallet(kind, recipient, sender.currency)
    _check_can_send(_Candidate(0, request, sender, target, amount, "", ""))
    quote = None
    if target.currency != sender.currency:
        quote = await fx.create_quote(
            session,
            settings,
            request.sender_user_id,
            from_currency=sender.currency,
            to_currency=target.currency,
            amount=amount.format(),
        )
    return TransferPreview(
        sender_wallet_number=sender.number,
        recipient_wallet_number=target.number,
        recipient_name=full_name(target.first_name, target.last_name),
        amount=amount,
        quote=quote,
    )
