"""Home: each wallet's balance and the latest movements."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from coffer.db import Database
from coffer.models import Transaction, Wallet
from coffer.wallets import service as wallets
from coffer.web.rendering import render
from coffer.web.session import CurrentUser

router = APIRouter()
RECENT_TRANSACTIONS = 10


@dataclass(frozen=True, slots=True)
class WalletView:
    wallet: Wallet
    balance_minor: int
    recent: list[Transaction]


@router.get("/")
async def home(request: Request, user: CurrentUser) -> Response:
    database: Database = request.app.state.database
    views = []
    async with database.read() as session:
        for wallet in await wallets.list_wallets(session, user.user_id):
            balance = await wallets.balance(session, wallet)
            recent, _ = await wallets.history(
                session,
                wallet,
                limit=RECENT_TRANSACTIONS,
                cursor=None,
                filters=wallets.HistoryFilter(),
            )
            views.append(WalletView(wallet, balance.minor, list(recent)))
    return render(request, "home.html", {"wallets": views})
