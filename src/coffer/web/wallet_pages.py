"""Home (each wallet's balance and latest movements) and the history, with its filters,
keyset pages and CSV export."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import Database
from coffer.errors import AppError
from coffer.models import Transaction, TransactionStatus, TransactionType, Wallet
from coffer.wallets import service as wallets
from coffer.web.forms import FormInvalid
from coffer.web.messages import error_message
from coffer.web.rendering import amount_input, render
from coffer.web.session import CurrentUser, WebUser

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


HISTORY_PAGE_SIZE = 25
CSV_PAGE_SIZE = 500
CSV_MAX_ROWS = 50_000
"""A CSV export holds at most this many rows (filter by dates for more)."""
CSV_COLUMNS = [
    "created_at",
    "type",
    "status",
    "amount",
    "currency",
    "reference",
    "counterparty_name",
    "counterparty_wallet_number",
    "failure_reason",
]


def _day(value: str | None, *, end: bool) -> datetime | None:
    """A date box's value as the start (or the end) of that day in UTC."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as error:
        raise FormInvalid("Dates look like 2026-12-31.") from error
    moment = datetime.combine(day, time.min, tzinfo=UTC)
    return moment + timedelta(days=1) if end else moment


def _filters(
    kind: str | None, state: str | None, since: str | None, until: str | None
) -> wallets.HistoryFilter:
    try:
        return wallets.HistoryFilter(
            type=TransactionType(kind) if kind else None,
            status=TransactionStatus(state) if state else None,
            since=_day(since, end=False),
            until=_day(until, end=True),
        )
    except ValueError as error:
        raise FormInvalid("Choose a type and status from the lists.") from error


async def _wallet(session: AsyncSession, user: WebUser, number: str | None) -> Wallet:
    if number:
        return await wallets.owned_wallet(session, user.user_id, number)
    return await wallets.primary_wallet(session, user.user_id)


Filter = Annotated[str | None, Query(max_length=32)]


@router.get("/history")
async def history(
    request: Request,
    user: CurrentUser,
    wallet: Filter = None,
    type: Filter = None,
    status: Filter = None,
    since: Filter = None,
    until: Filter = None,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    database: Database = request.app.state.database
    values = {"type": type, "status": status, "since": since, "until": until}
    async with database.read() as session:
        owned = list(await wallets.list_wallets(session, user.user_id))
        chosen = await _wallet(session, user, wallet)
        try:
            rows, next_cursor = await wallets.history(
                session,
                chosen,
                limit=HISTORY_PAGE_SIZE,
                cursor=cursor or None,
                filters=_filters(type, status, since, until),
            )
            error = None
        except AppError as failure:
            rows, next_cursor, error = [], None, error_message(failure)
    query = {k: v for k, v in {"wallet": chosen.number, **values}.items() if v}
    return render(
        request,
        "history.html",
        {
            "wallets": owned,
            "chosen": chosen,
            "rows": rows,
            "values": values,
            "types": list(TransactionType),
            "statuses": list(TransactionStatus),
            "query": urlencode(query),
            "next_page": urlencode(query | {"cursor": next_cursor}) if next_cursor else None,
            "error": error,
        },
        status_code=422 if error else 200,
    )


@router.get("/history.csv")
async def history_csv(
    request: Request,
    user: CurrentUser,
    wallet: Filter = None,
    type: Filter = None,
    status: Filter = None,
    since: Filter = None,
    until: Filter = None,
) -> Response:
    """Every matching row (up to CSV_MAX_ROWS), read page by page with the same keyset."""
    database: Database = request.app.state.database
    filters = _filters(type, status, since, until)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    async with database.read() as session:
        chosen = await _wallet(session, user, wallet)
        cursor: str | None = None
        written = 0
        while written < CSV_MAX_ROWS:
            rows, cursor = await wallets.history(
                session, chosen, limit=CSV_PAGE_SIZE, cursor=cursor, filters=filters
            )
            for row in rows:
                writer.writerow(
                    [
                        row.created_at.isoformat(),
                        row.type,
                        row.status,
                        amount_input(row.amount_minor, row.currency),
                        row.currency,
                        row.reference,
                        _cell(row.counterparty_name),
                        row.counterparty_wallet_number or "",
                        row.failure_reason or "",
                    ]
                )
            written += len(rows)
            if cursor is None:
                break
    filename = f"coffer-{chosen.number}-history.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _cell(text: str | None) -> str:
    """A name as a spreadsheet shows it, never runs it: a leading =, +, - or @ is a formula."""
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text or ""
