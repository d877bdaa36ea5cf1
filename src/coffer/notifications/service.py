"""Telling users what happened to their money and account, by email through the outbox.

Each event is rendered from a Jinja2 template (`templates/<event>.txt`, also shown as HTML in
`templates/layout.html`) and queued in the caller's transaction, so it is sent exactly when
the change it announces commits. A dedupe key per event and recipient makes a retried job or
request announce it once. Security events always go out; a user may turn off the others.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.kit.money import Money
from coffer.notifications import repository
from coffer.notifications.email import EmailMessage, enqueue_email
from coffer.settings import Settings


class Event(StrEnum):
    TRANSFER_RECEIVED = "transfer_received"
    TRANSFER_SENT = "transfer_sent"
    WALLET_CREDITED = "wallet_credited"
    WALLET_DEBITED = "wallet_debited"
    WALLET_FROZEN = "wallet_frozen"
    WALLET_UNFROZEN = "wallet_unfrozen"
    FEE_CHARGED = "fee_charged"
    WALLET_BLOCKED = "wallet_blocked"
    WALLET_UNBLOCKED = "wallet_unblocked"
    NEW_SIGN_IN = "new_sign_in"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - an event name
    TWO_FACTOR_CHANGED = "two_factor_changed"
    API_KEY_CREATED = "api_key_created"


SECURITY_EVENTS = frozenset(
    {Event.NEW_SIGN_IN, Event.PASSWORD_CHANGED, Event.TWO_FACTOR_CHANGED, Event.API_KEY_CREATED}
)
"""Sent whatever the user's preference: they are how a user learns of a takeover."""

SUBJECTS = {
    Event.TRANSFER_RECEIVED: "You received {amount}",
    Event.TRANSFER_SENT: "You sent {amount}",
    Event.WALLET_CREDITED: "Your wallet was credited {amount}",
    Event.WALLET_DEBITED: "Your wallet was debited {amount}",
    Event.WALLET_FROZEN: "Your wallet was frozen",
    Event.WALLET_UNFROZEN: "Your wallet was unfrozen",
    Event.FEE_CHARGED: "Monthly fee charged: {amount}",
    Event.WALLET_BLOCKED: "Your wallet is blocked: a fee is unpaid",
    Event.WALLET_UNBLOCKED: "Your wallet is unblocked",
    Event.NEW_SIGN_IN: "New sign-in to your account",
    Event.PASSWORD_CHANGED: "Your password was changed",
    Event.TWO_FACTOR_CHANGED: "Two-factor authentication changed",
    Event.API_KEY_CREATED: "A new API key was created",
}

_FOOTER = {
    True: "This is a security notice; it is sent whatever your email preferences.",
    False: "You can turn these emails off with PATCH /api/v1/me/notifications.",
}

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def amount_text(money: Money) -> str:
    """An amount as people read it in an email: `1,250.00 NGN`."""
    return f"{money.to_decimal():,.{money.currency.exponent}f} {money.currency.code}"


def render(event: Event, to: str, context: dict[str, Any]) -> EmailMessage:
    subject = SUBJECTS[event].format(**context)
    body = _templates.get_template(f"{event}.txt").render(**context)
    footer = _FOOTER[event in SECURITY_EVENTS]
    paragraphs = [part.strip() for part in body.split("\n\n") if part.strip()]
    html = _templates.get_template("layout.html").render(
        subject=subject, paragraphs=paragraphs, footer=footer
    )
    return EmailMessage(to=to, subject=subject, body=f"{body.strip()}\n\n{footer}\n", html=html)


async def notify(
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    event: Event,
    context: dict[str, Any],
    *,
    key: str,
) -> bool:
    """Queue `event`'s email to the user unless already queued under `key` or turned off;
    True when one was queued."""
    found = await repository.recipient(session, user_id)
    if found is None:
        return False
    address, wants_activity = found
    if event not in SECURITY_EVENTS and not wants_activity:
        return False
    if not await repository.claim_dedupe_key(session, f"{event}:{key}:{user_id}"):
        return False
    await enqueue_email(session, settings, render(event, address, context), kind=str(event))
    return True


async def wants_activity_emails(session: AsyncSession, user_id: uuid.UUID) -> bool:
    found = await repository.recipient(session, user_id)
    return found is not None and found[1]


async def set_preferences(
    session: AsyncSession, user_id: uuid.UUID, *, activity_emails: bool
) -> None:
    await repository.set_activity_emails(session, user_id, activity_emails)
