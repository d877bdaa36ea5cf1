"""Sending money: a form, a confirmation that names the recipient (and across currencies
holds a quote), then the transfer, then its status.

The confirmation form carries an idempotency key made when it is rendered, so however often
it is submitted (a double click, a reload, a retry after a timeout) one transfer is made and
every submission lands on its status page.
"""

from __future__ import annotations

import re
import secrets
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from coffer.auth.throttle import get_throttle
from coffer.db import Database
from coffer.errors import AppError
from coffer.kit.concurrency import ConcurrencyCap
from coffer.settings import Settings
from coffer.transfers import status
from coffer.transfers.endpoints import accept_transfer, lookup_limited
from coffer.transfers.preview import preview_transfer
from coffer.transfers.schemas import TransferCreate
from coffer.transfers.service import TransferRequest
from coffer.wallets import service as wallets
from coffer.web.edge import VerifiedForm, redirect
from coffer.web.forms import Form, parse
from coffer.web.messages import error_message
from coffer.web.rendering import amount_input, render
from coffer.web.session import CurrentUser, WebUser

router = APIRouter()
STATUS_WAIT_SECONDS = 3
"""How long the status page waits for a pending transfer to settle before showing it."""
_WALLET_NUMBER = re.compile(r"[0-9 ]{13,20}")
Reference = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


def _recipient_field(recipient: str) -> dict[str, str]:
    """One box takes a wallet number, an email or a phone number; which it is shows."""
    text = recipient.strip()
    if "@" in text:
        return {"email": text}
    if _WALLET_NUMBER.fullmatch(text):
        return {"wallet_number": text.replace(" ", "")}
    return {"phone": text}


def _request(user: WebUser, form: Form, *, with_terms: bool) -> TransferRequest:
    fields: dict[str, object] = _recipient_field(form.get("recipient")) | {
        "amount": form.get("amount").strip(),
        "narration": form.optional("narration"),
    }
    if with_terms:
        fields |= {
            "idempotency_key": form.get("idempotency_key"),
            "quote_id": form.optional("quote_id"),
        }
    body = parse(TransferCreate, fields)
    kind, recipient = body.recipient
    return TransferRequest(
        sender_user_id=user.user_id,
        recipient_kind=kind,
        recipient=recipient,
        amount=body.amount,
        sender_wallet_number=form.optional("from_wallet"),
        narration=body.narration,
        idempotency_key=body.idempotency_key,
        quote_id=body.quote_id,
    )


async def _form_page(
    request: Request, user: WebUser, form: Form | None, error: str | None, status_code: int
) -> Response:
    database: Database = request.app.state.database
    async with database.read() as session:
        owned = list(await wallets.list_wallets(session, user.user_id))
    values = {
        name: form.get(name) if form else ""
        for name in ("from_wallet", "recipient", "amount", "narration")
    }
    return render(
        request,
        "transfer/form.html",
        {"wallets": owned, "values": values, "error": error},
        status_code=status_code,
    )


@router.get("/transfer")
async def transfer_page(request: Request, user: CurrentUser) -> Response:
    return await _form_page(request, user, None, None, 200)


@router.post("/transfer/review")
async def review(request: Request, user: CurrentUser, form: VerifiedForm) -> Response:
    database: Database = request.app.state.database
    settings: Settings = request.app.state.settings
    try:
        transfer = _request(user, form, with_terms=False)
        async with lookup_limited(await get_throttle(request), transfer):
            async with database.transaction() as session:
                preview = await preview_transfer(session, settings, transfer)
    except AppError as error:
        return await _form_page(request, user, form, error_message(error), error.http_status)
    return render(
        request,
        "transfer/confirm.html",
        {
            "preview": preview,
            "recipient": form.get("recipient").strip(),
            "amount": amount_input(preview.amount.minor, preview.amount.currency.code),
            "narration": form.get("narration"),
            # Made now, with the form: every submission of it is the same transfer.
            "idempotency_key": f"web-{secrets.token_urlsafe(18)}",
        },
    )


@router.post("/transfer/confirm")
async def confirm(request: Request, user: CurrentUser, form: VerifiedForm) -> Response:
    database: Database = request.app.state.database
    settings: Settings = request.app.state.settings
    try:
        transfer = _request(user, form, with_terms=True)
        async with lookup_limited(await get_throttle(request), transfer):
            async with database.transaction() as session:
                accepted = await accept_transfer(
                    session, settings, request.app.state.transfer_batcher, transfer
                )
    except AppError as error:
        return await _form_page(request, user, form, error_message(error), error.http_status)
    return redirect(f"/app/transfer/{accepted.reference}")


@router.get("/transfer/{reference}")
async def transfer_status(request: Request, user: CurrentUser, reference: Reference) -> Response:
    database: Database = request.app.state.database
    async with database.read() as session:
        view = await status.get_status(session, user.user_id, reference)
    if not view.is_final:
        waits: ConcurrencyCap = request.app.state.transfer_waits
        with waits.slot(user.principal.scope):
            view = await status.wait_for_settlement(
                database, user.user_id, reference, STATUS_WAIT_SECONDS
            )
    return render(request, "transfer/status.html", {"transfer": view})
