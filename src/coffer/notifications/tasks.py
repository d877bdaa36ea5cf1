"""Notification jobs: delivering queued email and text messages, and publishing settled events
(to the structured log today; websocket and outbound-webhook delivery subscribe here as they
arrive)."""

from __future__ import annotations

from typing import Any

import structlog

from coffer.db import Database
from coffer.jobs.registry import job
from coffer.notifications.email import SEND_EMAIL_JOB, open_payload, sender_for
from coffer.notifications.sms import SEND_SMS_JOB, open_sms_payload, sms_sender_for
from coffer.settings import Settings

log = structlog.get_logger(__name__)


@job("notifications.transfers_settled")
async def publish_transfers_settled(
    database: Database, settings: Settings, payload: dict[str, Any]
) -> None:
    for transfer in payload.get("transfers", []):
        log.info(
            "transfer.settled",
            reference=transfer.get("reference"),
            status=transfer.get("status"),
            failure_reason=transfer.get("failure_reason"),
        )


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
