"""The inbound webhook inbox: verify, store once, apply in the same transaction.

The signature is checked over the raw bytes before anything is parsed. A verified event is
inserted under its unique (provider, event_key); a replay, or a concurrent duplicate that
loses the race on the unique index, inserts nothing and changes nothing. The event that was
inserted is applied in the same unit of work, so "stored" and "applied" commit together.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.errors import AppError
from coffer.kit.clock import utcnow
from coffer.models import InboxOutcome
from coffer.payments import repository
from coffer.payments.providers.base import (
    PaymentProvider,
    ProviderError,
    WebhookEvent,
    WebhookKind,
)
from coffer.payments.settlement import Applied, apply_charge, apply_payout
from coffer.settings import Settings

log = structlog.get_logger(__name__)

MAX_WEBHOOK_BYTES = 1024 * 1024
"""Provider events are a few kilobytes; anything this large is refused unread."""


class MalformedWebhook(AppError):
    code = "malformed_webhook"
    http_status = 400
    default_message = "The webhook body is not an event coffer understands"


def verify(provider: PaymentProvider, raw_body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
    """`InvalidSignature` unless the provider's signature verifies over these exact bytes."""
    try:
        return provider.verify_and_parse_webhook(raw_body, headers)
    except (ValueError, KeyError, TypeError, ProviderError) as error:
        # Signed, so it came from the provider, but not in a shape we know: a 4xx, since a 5xx
        # would have the provider retry it for days.
        raise MalformedWebhook() from error


async def _apply(session: AsyncSession, settings: Settings, event: WebhookEvent) -> Applied:
    if event.kind is WebhookKind.CHARGE and event.charge is not None:
        deposit = await repository.deposit_by_reference(session, event.charge.reference)
        if deposit is None or deposit.provider != event.provider.value:
            return Applied(InboxOutcome.REVIEW, "unknown_deposit")
        return await apply_charge(session, settings, deposit, event.charge)
    if event.kind is WebhookKind.PAYOUT and event.payout is not None:
        withdrawal = await repository.withdrawal_by_reference(session, event.payout.reference)
        if withdrawal is None or withdrawal.provider != event.provider.value:
            return Applied(InboxOutcome.REVIEW, "unknown_withdrawal")
        return await apply_payout(session, withdrawal, event.payout)
    return Applied(InboxOutcome.IGNORED, "event_not_used")


async def receive(
    session: AsyncSession,
    settings: Settings,
    provider: PaymentProvider,
    raw_body: bytes,
    headers: Mapping[str, str],
) -> Applied | None:
    """Verify and apply one delivery; None when it was a duplicate (nothing changed)."""
    event = verify(provider, raw_body, headers)
    entry_id = await repository.insert_inbox(
        session,
        {
            "provider": event.provider.value,
            "event_key": event.event_key[:255],
            "event_type": event.event_type[:64],
            "payload": dict(event.payload),
            "outcome": InboxOutcome.IGNORED,
            "reason": None,
            "received_at": utcnow(),
        },
    )
    if entry_id is None:
        log.info(
            "payments.webhook.duplicate", provider=event.provider.value, event_type=event.event_type
        )
        return None
    applied = await _apply(session, settings, event)
    await repository.set_inbox_outcome(session, entry_id, applied.outcome, applied.reason)
    log.info(
        "payments.webhook.received",
        provider=event.provider.value,
        event_type=event.event_type,
        outcome=applied.outcome.value,
        reason=applied.reason,
    )
    return applied
