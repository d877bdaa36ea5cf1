"""The sandbox's pages and webhook deliveries (the provider itself is
coffer.payments.providers.sandbox).

The checkout page's buttons record the payer's choice in the sandbox's own table, then deliver
a signed webhook into the inbox exactly as a provider would (the signed raw bytes through
`verify_and_parse_webhook`), then send the browser to the deposit's callback URL. Pressing the
same button again delivers again (seen building `coffer check bank`'s deposits: a database
restart between storing the choice and delivering it left the deposit to reconciliation, since
a retried press delivered nothing). Payout
webhooks are delivered by a job, later, like a real provider's.
"""

from __future__ import annotations

import html
import secrets
from typing import Annotated
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from coffer.db import Database
from coffer.http import AppSettings, DatabaseDependency
from coffer.kit.clock import utcnow
from coffer.kit.money import format_minor, get_currency
from coffer.payments import inbox, sandbox_repository
from coffer.payments.providers.base import ChargeStatus, Payout, PayoutStatus, ProviderName
from coffer.payments.providers.registry import ProviderRegistry, providers_for
from coffer.payments.providers.sandbox import (
    SIGNATURE_HEADER,
    charge_event_body,
    payout_event_body,
    payout_outcomes,
    sign,
    webhook_secret,
)
from coffer.settings import Settings

router = APIRouter(tags=["sandbox"], include_in_schema=False)
Reference = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9.=-]+$")]
MAX_FORM_BYTES = 1024
_FAILURE_REASONS = {
    PayoutStatus.FAILED: "sandbox_account_rejected",
    PayoutStatus.REVERSED: "sandbox_bank_returned",
}


async def deliver(
    database: Database, settings: Settings, registry: ProviderRegistry, raw_body: bytes
) -> None:
    """Sign a sandbox event and hand it to the inbox, as the provider's POST would."""
    secret = webhook_secret(settings)
    headers = {SIGNATURE_HEADER: sign(secret, raw_body)} if secret else {}
    async with database.transaction() as session:
        await inbox.receive(
            session, settings, registry.get(ProviderName.SANDBOX), raw_body, headers
        )


async def deliver_payout_events(
    database: Database, settings: Settings, registry: ProviderRegistry, reference: str
) -> None:
    """The payout simulator: the events the account number's rule calls for, in order.
    Idempotent: a re-run redelivers, and the inbox drops what it already has."""
    async with database.transaction() as session:
        payout = await sandbox_repository.sandbox_payout(session, reference)
        suffix = (
            await sandbox_repository.sandbox_recipient_suffix(session, payout.recipient_code)
            if payout
            else None
        )
    if payout is None or suffix is None:
        return
    for status in payout_outcomes(suffix):
        reason = _FAILURE_REASONS.get(status)
        async with database.transaction() as session:
            await sandbox_repository.set_sandbox_payout_status(
                session, reference, status.value, reason
            )
        body = payout_event_body(
            Payout(
                payout.reference,
                status,
                payout.amount_minor,
                payout.currency,
                transfer_code=payout.transfer_code,
                failure_reason=reason,
            )
        )
        await deliver(database, settings, registry, body)


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    document = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}"
        ".amount{font-size:2rem;font-weight:600}button{font-size:1rem;padding:.6rem 1.2rem;"
        "margin:.3rem .3rem 0 0}.note{color:#666;font-size:.9rem}</style></head><body>"
        f"{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status_code)


def _with_reference(url: str, reference: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"reference": reference})) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


@router.get("/sandbox/checkout/{reference}")
async def checkout_page(reference: Reference, database: DatabaseDependency) -> HTMLResponse:
    async with database.transaction() as session:
        charge = await sandbox_repository.sandbox_charge(session, reference)
    if charge is None:
        return _page("Not found", "<h1>No such sandbox checkout</h1>", 404)
    currency = get_currency(charge.currency)
    amount = html.escape(f"{format_minor(charge.amount_minor, currency)} {currency.code}")
    ref = html.escape(reference)
    if charge.status != ChargeStatus.PENDING:
        return _page(
            "Sandbox checkout",
            f"<h1>Sandbox checkout</h1><p>This checkout is already {html.escape(charge.status)}."
            f'</p><p><a href="{html.escape(_with_reference(charge.callback_url, reference))}">'
            "Back</a></p>",
        )
    return _page(
        "Sandbox checkout",
        "<h1>Sandbox checkout</h1>"
        f"<p class=amount>{amount}</p><p>Paying as {html.escape(charge.email)}</p>"
        f'<form method=post action="/sandbox/checkout/{ref}/pay">'
        "<label><input type=checkbox name=remember value=1> Remember this card "
        "(sandbox Visa ending 4242)</label><br>"
        "<button type=submit>Pay</button>"
        f'<button type=submit formaction="/sandbox/checkout/{ref}/decline">Decline</button>'
        "</form><p class=note>Sandbox: no real money moves. Each button sends coffer a "
        "signed webhook, as a real provider would.</p>",
    )


async def _choose(
    request: Request,
    reference: str,
    database: Database,
    settings: Settings,
    status: ChargeStatus,
) -> Response:
    form = parse_qs((await request.body())[:MAX_FORM_BYTES].decode("latin-1"))
    remember = status is ChargeStatus.SUCCESS and form.get("remember") == ["1"]
    async with database.transaction() as session:
        settled = await sandbox_repository.settle_sandbox_charge(
            session,
            reference,
            status.value,
            paid_at=utcnow() if status is ChargeStatus.SUCCESS else None,
            authorization_code=f"AUTH_sbx_{secrets.token_hex(12)}" if remember else None,
        )
        charge = await sandbox_repository.sandbox_charge(session, reference)
    if charge is None:
        return _page("Not found", "<h1>No such sandbox checkout</h1>", 404)
    # The same choice again is the payer retrying after an error, perhaps one that cut the
    # first delivery off after the choice was stored: deliver again, as a provider retries
    # until coffer answers; the inbox drops what it already has.
    if settled or charge.status == status.value:
        await deliver(
            database, settings, providers_for(database, settings), charge_event_body(charge)
        )
    return RedirectResponse(_with_reference(charge.callback_url, reference), status_code=303)


@router.post("/sandbox/checkout/{reference}/pay")
async def pay(
    request: Request, reference: Reference, database: DatabaseDependency, settings: AppSettings
) -> Response:
    return await _choose(request, reference, database, settings, ChargeStatus.SUCCESS)


@router.post("/sandbox/checkout/{reference}/decline")
async def decline(
    request: Request, reference: Reference, database: DatabaseDependency, settings: AppSettings
) -> Response:
    return await _choose(request, reference, database, settings, ChargeStatus.FAILED)


@router.get("/payments/return")
async def payment_return(
    reference: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    """Where the browser lands after a checkout when the deposit named no callback URL. It
    shows nothing about the payment: the wallet updates once the provider's webhook verifies."""
    ref = f"<p>Reference <code>{html.escape(reference)}</code></p>" if reference else ""
    return _page(
        "Payment submitted",
        "<h1>Thank you</h1><p>Your payment was submitted. Your wallet balance updates as soon "
        f"as the payment provider confirms it.</p>{ref}",
    )
