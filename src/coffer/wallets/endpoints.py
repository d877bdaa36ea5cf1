"""Wallet routes: `/wallet/...` always means the caller's primary wallet (the seed contract);
`/wallets/...` is the multi-currency resource. Transfers are in coffer.transfers.endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from coffer.auth.principal import Reader, UserPrincipal
from coffer.http import AppSettings, ExactJSONRoute, Session, error_responses
from coffer.idempotency.dependency import Idempotency, IdempotentRoute
from coffer.models import TransactionStatus, TransactionType, Wallet
from coffer.schemas import Envelope
from coffer.wallets import service
from coffer.wallets.schemas import (
    TransactionOut,
    TransactionPage,
    WalletBalance,
    WalletCreate,
    WalletList,
    WalletOut,
    WalletUpdate,
    as_utc,
)

wallet_router = APIRouter(prefix="/wallet", tags=["wallet"], route_class=ExactJSONRoute)
wallets_router = APIRouter(prefix="/wallets", tags=["wallets"], route_class=IdempotentRoute)

WalletNumber = Annotated[str, Path(max_length=32, description="13-digit wallet number")]
_READ_ERRORS = error_responses(401, 403, 404, 422, 429)


@dataclass(frozen=True, slots=True)
class _HistoryParams:
    limit: int
    cursor: str | None
    filters: service.HistoryFilter


async def _history_params(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    type_: Annotated[TransactionType | None, Query(alias="type")] = None,
    status: Annotated[TransactionStatus | None, Query()] = None,
    since: Annotated[datetime | None, Query(alias="from", description="Inclusive")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="Exclusive")] = None,
) -> _HistoryParams:
    filters = service.HistoryFilter(type_, status, as_utc(since), as_utc(until))
    return _HistoryParams(limit, cursor, filters)


HistoryQuery = Annotated[_HistoryParams, Depends(_history_params)]


async def history_page(session: Session, wallet: Wallet, query: HistoryQuery) -> TransactionPage:
    rows, next_cursor = await service.history(
        session, wallet, limit=query.limit, cursor=query.cursor, filters=query.filters
    )
    return TransactionPage(
        transactions=[TransactionOut.of(row) for row in rows], next_cursor=next_cursor
    )


@wallet_router.get("/balance", summary="Balance of the primary wallet", responses=_READ_ERRORS)
async def primary_balance(principal: Reader, session: Session) -> Envelope[WalletBalance]:
    wallet = await service.primary_wallet(session, principal.user_id)
    balance = await service.balance(session, wallet)
    return Envelope(
        data=WalletBalance(
            balance=balance.format(), currency=wallet.currency, wallet_number=wallet.number
        )
    )


@wallet_router.get("/transactions", summary="History of the primary wallet", responses=_READ_ERRORS)
async def primary_history(
    principal: Reader, session: Session, query: HistoryQuery
) -> Envelope[TransactionPage]:
    wallet = await service.primary_wallet(session, principal.user_id)
    return Envelope(data=await history_page(session, wallet, query))


@wallets_router.get("", summary="Your wallets", responses=error_responses(401, 403, 429))
async def list_wallets(principal: Reader, session: Session) -> Envelope[WalletList]:
    wallets = await service.list_wallets(session, principal.user_id)
    return Envelope(
        data=WalletList(
            wallets=[WalletOut.of(w, await service.balance(session, w)) for w in wallets]
        )
    )


@wallets_router.post(
    "",
    status_code=201,
    summary="Open a wallet in another currency",
    dependencies=[Depends(Idempotency())],
    responses=error_responses(401, 403, 409, 422, 429),
)
async def open_wallet(
    body: WalletCreate, principal: UserPrincipal, session: Session, settings: AppSettings
) -> Envelope[WalletOut]:
    wallet = await service.open_additional_wallet(
        session,
        principal.user_id,
        body.currency,
        supported_currencies=settings.supported_currencies,
        max_wallets=settings.max_wallets_per_user,
        name=body.name,
    )
    return Envelope(
        status_code=201,
        message="Wallet opened",
        data=WalletOut.of(wallet, await service.balance(session, wallet)),
    )


@wallets_router.get("/{wallet_number}", summary="One of your wallets", responses=_READ_ERRORS)
async def get_wallet(
    wallet_number: WalletNumber, principal: Reader, session: Session
) -> Envelope[WalletOut]:
    wallet = await service.owned_wallet(session, principal.user_id, wallet_number)
    return Envelope(data=WalletOut.of(wallet, await service.balance(session, wallet)))


@wallets_router.patch(
    "/{wallet_number}",
    summary="Rename one of your wallets",
    dependencies=[Depends(Idempotency())],
    responses=error_responses(401, 403, 404, 409, 422, 429),
)
async def rename_wallet(
    wallet_number: WalletNumber, body: WalletUpdate, principal: UserPrincipal, session: Session
) -> Envelope[WalletOut]:
    wallet = await service.owned_wallet(session, principal.user_id, wallet_number)
    wallet = await service.rename(session, wallet, body.name)
    return Envelope(
        message="Wallet renamed", data=WalletOut.of(wallet, await service.balance(session, wallet))
    )


@wallets_router.get(
    "/{wallet_number}/transactions", summary="History of one wallet", responses=_READ_ERRORS
)
async def wallet_history(
    wallet_number: WalletNumber, principal: Reader, session: Session, query: HistoryQuery
) -> Envelope[TransactionPage]:
    wallet = await service.owned_wallet(session, principal.user_id, wallet_number)
    return Envelope(data=await history_page(session, wallet, query))
