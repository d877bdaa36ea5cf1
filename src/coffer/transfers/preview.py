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
from coffer.transfers.directory import Directory
from coffer.transfers.requests import TransferRequest, check_shape, normalized_recipient
from coffer.transfers.states import check_recipient, check_sender
from coffer.wallets.history import full_name


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
    check_shape(request)
    directory = await Directory.load(session, [request], {0: normalized_recipient(request)})
    sender = directory.sender_wallet(request)
    amount = parse_amount(request.amount, sender.currency, max_minor=settings.max_amount_minor)
    balances = await repository.running_balances(session, directory.sender_account_ids())
    check_sender(sender, amount, balances)
    target = directory.recipient_wallet(
        request.recipient_kind, normalized_recipient(request), sender.currency
    )
    check_recipient(sender, target)
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
