"""Admin pages for users and their wallets: search, detail, credit and debit with a reason,
freeze and unfreeze, activate and deactivate, 2FA reset. Every action goes through the admin
services the API uses (`coffer.admin.users`, `coffer.admin.wallets`), so it writes the same
audit row and sends the same email."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.admin import users, wallets
from coffer.admin.schemas import AdjustmentCreate, ReasonBody
from coffer.db import Database
from coffer.errors import AppError
from coffer.identity import totp
from coffer.models import Transaction, Wallet
from coffer.settings import Settings
from coffer.wallets import service as wallet_service
from coffer.web.admin_access import (
    ADMIN_PREFIX,
    AdminWork,
    CurrentAdmin,
    actor,
    carry_out,
    form_context,
)
from coffer.web.edge import VerifiedForm, redirect
from coffer.web.forms import Form, FormInvalid, parse
from coffer.web.messages import error_message
from coffer.web.rendering import render
from coffer.web.session import WebUser

router = APIRouter(prefix="/admin")

SEARCH_PAGE_SIZE = 20
RECENT_TRANSACTIONS = 10
OUTCOMES = {
    "credited": "Wallet credited. The user was emailed.",
    "debited": "Wallet debited. The user was emailed.",
    "frozen": "Wallet frozen: no money can move in or out of it. The user was emailed.",
    "unfrozen": "Wallet unfrozen. The user was emailed.",
    "activated": "User activated: they can sign in again.",
    "deactivated": "User deactivated: every session and API key has ended.",
    "two_factor_reset": "Two-factor authentication reset; every session and API key has ended.",
}
UserId = Annotated[uuid.UUID, Path()]
WalletNumber = Annotated[str, Path(max_length=32)]


@dataclass(frozen=True, slots=True)
class WalletCard:
    wallet: Wallet
    balance_minor: int
    recent: list[Transaction]


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


@router.get("")
async def admin_home(admin: CurrentAdmin) -> Response:
    return redirect(f"{ADMIN_PREFIX}/users")


@router.get("/users")
async def search_users(
    request: Request,
    admin: CurrentAdmin,
    q: Annotated[str | None, Query(max_length=320)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    async with _database(request).read() as session:
        found, next_cursor = await users.search(session, q, limit=SEARCH_PAGE_SIZE, cursor=cursor)
    return render(
        request,
        "admin/users.html",
        {"query": q or "", "users": found, "next_cursor": next_cursor, "cursor": cursor},
    )


async def _user_page(
    request: Request,
    admin: WebUser,
    user_id: uuid.UUID,
    *,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    async with _database(request).read() as session:
        found = await users.detail(session, user_id)
        cards = []
        for wallet, balance in found.wallets:
            recent, _ = await wallet_service.history(
                session,
                wallet,
                limit=RECENT_TRANSACTIONS,
                cursor=None,
                filters=wallet_service.HistoryFilter(),
            )
            cards.append(WalletCard(wallet, balance.minor, list(recent)))
        admin_has_two_factor = await totp.is_enabled(session, admin.user_id)
    return render(
        request,
        "admin/user.html",
        {
            "detail": found,
            "subject": found.user,
            "cards": cards,
            "admin_has_two_factor": admin_has_two_factor,
            "notice": notice,
            "error": error,
            **form_context(),
        },
        status_code=status_code,
    )


@router.get("/users/{user_id}")
async def user_detail(
    request: Request,
    user_id: UserId,
    admin: CurrentAdmin,
    done: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    return await _user_page(request, admin, user_id, notice=OUTCOMES.get(done or ""))


async def _act_on_user(
    request: Request, admin: WebUser, form: Form, user_id: uuid.UUID, work: AdminWork
) -> Response:
    """Carry out the form's action; back to the user's page with what happened, or the page
    again with why nothing was done."""
    try:
        outcome = await carry_out(request, admin, form, work)
    except AppError as error:
        return await _user_page(
            request, admin, user_id, error=error_message(error), status_code=error.http_status
        )
    return redirect(f"{ADMIN_PREFIX}/users/{user_id}?done={outcome}")


def _reason(form: Form) -> str:
    return parse(ReasonBody, {"reason": form.get("reason").strip()}).reason


async def _owner_of(request: Request, wallet_number: str) -> uuid.UUID:
    async with _database(request).read() as session:
        wallet = await wallet_service.find_wallet(session, wallet_number)
    return wallet.user_id


@router.post("/wallets/{wallet_number}/adjust")
async def adjust_wallet(
    request: Request, wallet_number: WalletNumber, form: VerifiedForm, admin: CurrentAdmin
) -> Response:
    owner = await _owner_of(request, wallet_number)
    direction = form.get("direction")

    async def work(session: AsyncSession, settings: Settings) -> str:
        if direction not in ("credit", "debit"):
            raise FormInvalid("Choose Credit or Debit.")
        body = parse(
            AdjustmentCreate,
            {"amount": form.get("amount").strip(), "reason": form.get("reason").strip()},
        )
        credit = direction == "credit"
        await wallets.adjust(
            session,
            settings,
            wallet_number,
            body.amount,
            credit=credit,
            reason=body.reason,
            actor=actor(admin),
        )
        return "credited" if credit else "debited"

    return await _act_on_user(request, admin, form, owner, work)


@router.post("/wallets/{wallet_number}/freeze")
async def freeze_wallet(
    request: Request, wallet_number: WalletNumber, form: VerifiedForm, admin: CurrentAdmin
) -> Response:
    owner = await _owner_of(request, wallet_number)

    async def work(session: AsyncSession, settings: Settings) -> str:
        await wallets.freeze(
            session, settings, wallet_number, reason=_reason(form), actor=actor(admin)
        )
        return "frozen"

    return await _act_on_user(request, admin, form, owner, work)


@router.post("/wallets/{wallet_number}/unfreeze")
async def unfreeze_wallet(
    request: Request, wallet_number: WalletNumber, form: VerifiedForm, admin: CurrentAdmin
) -> Response:
    owner = await _owner_of(request, wallet_number)

    async def work(session: AsyncSession, settings: Settings) -> str:
        await wallets.unfreeze(
            session, settings, wallet_number, reason=_reason(form), actor=actor(admin)
        )
        return "unfrozen"

    return await _act_on_user(request, admin, form, owner, work)


@router.post("/users/{user_id}/activate")
async def activate_user(
    request: Request, user_id: UserId, form: VerifiedForm, admin: CurrentAdmin
) -> Response:
    async def work(session: AsyncSession, settings: Settings) -> str:
        reason = _reason(form) if form.optional("reason") else None
        await users.set_active(session, user_id, active=True, actor=actor(admin), reason=reason)
        return "activated"

    return await _act_on_user(request, admin, form, user_id, work)


@router.post("/users/{user_id}/deactivate")
async def deactivate_user(
    request: Request, user_id: UserId, form: VerifiedForm, admin: CurrentAdmin
) -> Response:
    async def work(session: AsyncSession, settings: Settings) -> str:
        await users.set_active(
            session, user_id, active=False, actor=actor(admin), reason=_reason(form)
        )
        return "deactivated"

    return await _act_on_user(request, admin, form, user_id, work)


@router.post("/users/{user_id}/reset-2fa")
async def reset_two_factor(
    request: Request, user_id: UserId, form: VerifiedForm, admin: CurrentAdmin
) -> Response:
    async def work(session: AsyncSession, settings: Settings) -> str:
        await users.reset_two_factor_by_admin(
            session, settings, user_id, actor=actor(admin), reason=_reason(form)
        )
        return "two_factor_reset"

    return await _act_on_user(request, admin, form, user_id, work)
