"""Money in and out: deposits through the provider's checkout, withdrawals to a saved bank
account (with the second factor), and the bank accounts and cards themselves."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from coffer.auth.two_factor import check_second_factor
from coffer.db import Database
from coffer.errors import AppError
from coffer.idempotency import service as idempotency
from coffer.idempotency.service import IdempotencyKeyInUse, StoredResponse
from coffer.payments import deposits, destinations, withdrawals
from coffer.payments.providers.registry import providers_for
from coffer.payments.schemas import DepositCreate, DestinationCreate, WithdrawalCreate
from coffer.settings import Settings
from coffer.wallets import service as wallets
from coffer.web.edge import VerifiedForm, redirect
from coffer.web.forms import Form, FormInvalid, parse
from coffer.web.messages import error_message
from coffer.web.rendering import render
from coffer.web.session import CurrentUser, WebUser, require_fresh_proof

router = APIRouter()
Reference = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.=-]+$")]
RETURN_PATH = "/app/deposit/return"
IN_USE_RETRIES = 25
IN_USE_WAIT_SECONDS = 0.2
"""A second submission of a withdrawal form waits this long, that many times, for the first to
finish, then lands where it did."""


def _new_key() -> str:
    """Made when a money form is rendered: every submission of that form is one request."""
    return f"web-{secrets.token_urlsafe(18)}"


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def _deposit_form(
    request: Request, user: WebUser, form: Form | None, error: str | None, status_code: int
) -> Response:
    async with _database(request).read() as session:
        owned = list(await wallets.list_wallets(session, user.user_id))
        cards = list(await destinations.list_cards(session, user.user_id))
    return render(
        request,
        "payments/deposit.html",
        {
            "wallets": owned,
            "cards": cards,
            "values": {n: form.get(n) if form else "" for n in ("amount", "currency")},
            "idempotency_key": form.get("idempotency_key") if form else _new_key(),
            "error": error,
        },
        status_code=status_code,
    )


@router.get("/deposit")
async def deposit_page(request: Request, user: CurrentUser) -> Response:
    return await _deposit_form(request, user, None, None, 200)


@router.post("/deposit")
async def deposit(request: Request, user: CurrentUser, form: VerifiedForm) -> Response:
    settings = _settings(request)
    card = form.optional("saved_card_id")
    try:
        body = parse(
            DepositCreate,
            {
                "amount": form.get("amount").strip(),
                "currency": form.optional("currency"),
                "saved_card_id": card,
            },
        )
        view, _ = await deposits.start_deposit(
            _database(request),
            settings,
            providers_for(_database(request), settings),
            deposits.DepositStart(
                user_id=user.user_id,
                amount=body.amount,
                currency=body.currency,
                callback_url=settings.public_url.rstrip("/") + RETURN_PATH,
                saved_card_id=body.saved_card_id,
                idempotency_key=form.get("idempotency_key") or None,
            ),
        )
    except AppError as error:
        return await _deposit_form(request, user, form, error_message(error), error.http_status)
    if view.authorization_url and view.status == "pending":
        return redirect(view.authorization_url)
    return redirect(f"/app/deposit/{view.reference}")


@router.get("/deposit/return")
async def deposit_return(
    user: CurrentUser, reference: Annotated[str, Query(max_length=64)]
) -> Response:
    """Where the provider's checkout sends the browser back."""
    return redirect(f"/app/deposit/{reference}")


@router.get("/deposit/{reference}")
async def deposit_status(request: Request, user: CurrentUser, reference: Reference) -> Response:
    async with _database(request).read() as session:
        view = await deposits.deposit_status(session, user.user_id, reference)
    return render(request, "payments/deposit_status.html", {"deposit": view})


async def _withdraw_form(
    request: Request, user: WebUser, form: Form | None, error: str | None, status_code: int
) -> Response:
    async with _database(request).read() as session:
        saved = list(await destinations.list_destinations(session, user.user_id))
    return render(
        request,
        "payments/withdraw.html",
        {
            "destinations": saved,
            "values": {n: form.get(n) if form else "" for n in ("amount", "destination_id")},
            "idempotency_key": form.get("idempotency_key") if form else _new_key(),
            "error": error,
        },
        status_code=status_code,
    )


@router.get("/withdraw")
async def withdraw_page(request: Request, user: CurrentUser) -> Response:
    return await _withdraw_form(request, user, None, None, 200)


async def _withdraw_once(
    request: Request, user: WebUser, form: Form, body: WithdrawalCreate, key: str
) -> str:
    """The withdrawal's reference: made now, or the one this form's key already made."""
    fingerprint = idempotency.fingerprint(
        "POST", "/app/withdraw", json.dumps(body.model_dump(mode="json")).encode()
    )
    scope = user.principal.scope
    for _ in range(IN_USE_RETRIES):
        try:
            async with _database(request).transaction() as session:
                stored = await idempotency.claim(session, scope, key, fingerprint)
                if stored is not None:
                    return stored.body
                await check_second_factor(request, user.principal, session, form.get("code"))
                view = await withdrawals.request_withdrawal(
                    session,
                    _settings(request),
                    user.principal,
                    amount=body.amount,
                    destination_id=body.destination_id,
                    narration=body.narration,
                )
                await idempotency.remember(
                    session,
                    scope,
                    key,
                    fingerprint,
                    StoredResponse(303, view.reference),
                    ttl=_ttl(request),
                )
                return view.reference
        except IdempotencyKeyInUse:
            await asyncio.sleep(IN_USE_WAIT_SECONDS)
    raise IdempotencyKeyInUse()


def _ttl(request: Request) -> timedelta:
    return timedelta(hours=_settings(request).idempotency_ttl_hours)


@router.post("/withdraw")
async def withdraw(request: Request, user: CurrentUser, form: VerifiedForm) -> Response:
    key = form.get("idempotency_key")
    try:
        body = parse(
            WithdrawalCreate,
            {
                "amount": form.get("amount").strip(),
                "destination_id": form.get("destination_id"),
                "narration": form.optional("narration"),
            },
        )
        if not key or len(key) > idempotency.MAX_KEY_LENGTH:
            raise FormInvalid("This form is not valid; reload the page.")
        reference = await _withdraw_once(request, user, form, body, key)
    except AppError as error:
        return await _withdraw_form(request, user, form, error_message(error), error.http_status)
    return redirect(f"/app/withdraw/{reference}")


@router.get("/withdraw/{reference}")
async def withdrawal_status(request: Request, user: CurrentUser, reference: Reference) -> Response:
    async with _database(request).read() as session:
        view = await withdrawals.withdrawal_status(session, user.user_id, reference)
    return render(request, "payments/withdrawal_status.html", {"withdrawal": view})


async def _accounts_page(
    request: Request, user: WebUser, error: str | None = None, status_code: int = 200
) -> Response:
    settings = _settings(request)
    async with _database(request).read() as session:
        saved = list(await destinations.list_destinations(session, user.user_id))
        cards = list(await destinations.list_cards(session, user.user_id))
        primary = await wallets.primary_wallet(session, user.user_id)
    try:
        banks = list(
            await destinations.list_banks(
                providers_for(_database(request), settings), settings, primary.currency
            )
        )
    except AppError as failure:
        banks, error = [], error or error_message(failure)
    return render(
        request,
        "payments/accounts.html",
        {"destinations": saved, "cards": cards, "banks": banks, "error": error},
        status_code=status_code,
    )


@router.get("/bank-accounts")
async def accounts_page(request: Request, user: CurrentUser) -> Response:
    return await _accounts_page(request, user)


@router.post("/bank-accounts")
async def add_account(request: Request, user: CurrentUser, form: VerifiedForm) -> Response:
    settings = _settings(request)
    require_fresh_proof(user, settings, "/app/bank-accounts")
    try:
        body = parse(
            DestinationCreate,
            {
                "bank_code": form.get("bank_code"),
                "account_number": form.get("account_number").strip(),
            },
        )
        async with _database(request).transaction() as session:
            await check_second_factor(request, user.principal, session, form.get("code"))
        await destinations.add_destination(
            _database(request),
            settings,
            providers_for(_database(request), settings),
            user.user_id,
            bank_code=body.bank_code,
            account_number=body.account_number,
            currency=body.currency,
        )
    except AppError as error:
        return await _accounts_page(request, user, error_message(error), error.http_status)
    return redirect("/app/bank-accounts")


@router.post("/bank-accounts/{destination_id}/remove")
async def remove_account(
    request: Request, user: CurrentUser, form: VerifiedForm, destination_id: int
) -> Response:
    async with _database(request).transaction() as session:
        await destinations.delete_destination(session, user.user_id, destination_id)
    return redirect("/app/bank-accounts")


@router.post("/cards/{card_id}/remove")
async def remove_card(
    request: Request, user: CurrentUser, form: VerifiedForm, card_id: int
) -> Response:
    async with _database(request).transaction() as session:
        await destinations.delete_card(session, user.user_id, card_id)
    return redirect("/app/bank-accounts")
