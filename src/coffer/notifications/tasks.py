"""Notification jobs: delivering queued email and text messages, and publishing settled events
(to the structured log today; websocket and outbound-webhook delivery subscribe here as they
arrive)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog

from coffer.db import Database
from coffer.jobs.registry import job
from coffer.kit.money import Money
from coffer.notifications import events
from coffer.notifications.email import SEND_EMAIL_JOB, open_payload, sender_for
from coffer.notifications.service import Event, Notice, amount_text, notify_all
from coffer.notifications.sms import SEND_SMS_JOB, open_sms_payload, sms_sender_for
from coffer.settings import Settings
from coffer.transfers.repository import completed_with_parties
from coffer.wallets.history import full_name

log = structlog.get_logger(__name__)


@job("notifications.transfers_settled")
async def publish_transfers_settled(
    database: Database, settings: Settings, payload: dict[str, Any]
) -> None:
    """One job per settled batch: logs each outcome and emails both sides of each completed
    transfer (deduplicated per transfer and side, so a rerun sends nothing twice), queued in
    one batch of statements however large the batch."""
    transfers = payload.get("transfers", [])
    for transfer in transfers:
        log.info(
            "transfer.settled",
            reference=transfer.get("reference"),
            status=transfer.get("status"),
            failure_reason=transfer.get("failure_reason"),
        )
    references = [t["reference"] for t in transfers if t.get("status") == "completed"]
    async with database.transaction() as session:
        notices: list[Notice] = []
        for row in await completed_with_parties(session, references):
            sent = Money.of(row.amount_minor, row.currency)
            received = Money.of(
                row.receive_amount_minor or row.amount_minor, row.receive_currency or row.currency
            )
            notices.append(
                Notice(
                    row.sender_user_id,
                    Event.TRANSFER_SENT,
                    {
                        "amount": amount_text(sent),
                        "counterparty": full_name(
                            row.recipient_first_name, row.recipient_last_name
                        ),
                        "wallet_number": row.sender_number,
                        "reference": row.reference,
                    },
                    row.reference,
                )
            )
            notices.append(
                Notice(
                    row.recipient_user_id,
                    Event.TRANSFER_RECEIVED,
                    {
                        "amount": amount_text(received),
                        "counterparty": full_name(row.sender_first_name, row.sender_last_name),
                        "wallet_number": row.recipient_number,
                        "reference": row.reference,
                    },
                    row.reference,
                )
            )
        await notify_all(session, settings, notices)


@job(SEND_EMAIL_JOB)
async def send_email(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    """Deliver one queued email. A failure leaves the job to be retried with backoff; a retry
    after a lost acknowledgement may deliver twice, which beats never."""
    message = open_payload(settings, payload)
    await sender_for(settings).send(message)
    log.info("email.sent", kind=payload.get("kind"))


@job(SEND_SMS_JOB)
async def send_sms(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    """Deliver one queued text message; a failure is retried with backoff like email."""
    message = open_sms_payload(settings, payload)
    await sms_sender_for(settings).send(message)
    log.info("sms.sent", kind=payload.get("kind"))


MAX_PURGE_BATCHES_PER_RUN = 20


@job(
    events.PURGE_JOB,
    every=lambda settings: timedelta(seconds=min(3600, settings.events_retention_seconds)),
)
async def purge_events(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    """Delete events past their retention, a bounded batch per transaction."""
    deleted = 0
    for _ in range(MAX_PURGE_BATCHES_PER_RUN):
        async with database.transaction() as session:
            batch = await events.purge_expired(session, settings.events_retention_seconds)
        deleted += batch
        if batch < events.PURGE_BATCH:
            break
    if deleted:
        log.info("events.purged", deleted=deleted)
