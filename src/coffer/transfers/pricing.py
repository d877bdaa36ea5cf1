"""Pricing at intake: what a transfer to another currency converts to (at the cached rate or
a quote's locked one), and the daily limit the sender's amount must fit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.errors import AppError
from coffer.fx import repository as fx_repository
from coffer.fx import service as fx
from coffer.fx.conversion import convert
from coffer.kit.money import get_currency
from coffer.settings import Settings
from coffer.transfers.replay import Outcomes
from coffer.transfers.requests import Candidate
from coffer.wallets import limits
from coffer.wallets.limits import LimitClaim, LimitKind


async def price(
    session: AsyncSession,
    candidates: list[Candidate],
    outcomes: Outcomes,
    settings: Settings,
    max_amount_minor: int,
    now: datetime,
) -> list[Candidate]:
    """Convert what goes to another currency and work out each sender's daily limit.

    One query for every rate the batch needs and one for its quotes. A missing or stale rate
    refuses the request: neither a conversion nor a limit is guessed.
    """
    if not candidates:
        return []
    rates = await fx.load_rates(
        session,
        settings,
        {c.sender.currency for c in candidates}
        | {c.recipient.currency for c in candidates}
        | {settings.limits_currency},
        now,
    )
    quotes = await fx_repository.quotes_with_use(
        session, [c.request.quote_id for c in candidates if c.request.quote_id is not None]
    )
    day = limits.limit_day(now, settings.limits_timezone)
    priced: list[Candidate] = []
    for candidate in candidates:
        request, source, target = candidate.request, candidate.sender, candidate.recipient
        try:
            if request.quote_id is not None:
                candidate.conversion = fx.use_quote(
                    quotes.get(request.quote_id),
                    request.sender_user_id,
                    candidate.amount,
                    target.currency,
                    now,
                )
            elif target.currency != source.currency:
                candidate.conversion = convert(
                    candidate.amount,
                    get_currency(target.currency),
                    rates.rate(source.currency, target.currency),
                    settings.fx_spread_bps,
                    max_minor=max_amount_minor,
                )
            claim = LimitClaim(
                request.sender_user_id,
                LimitKind.TRANSFER,
                source.currency,
                day,
                candidate.amount.minor,
            )
            candidate.allowance = (
                claim,
                limits.daily_limit_minor(settings, LimitKind.TRANSFER, source.currency, rates),
            )
        except AppError as error:
            outcomes[candidate.index] = error
            continue
        priced.append(candidate)
    return priced
