"""Text messages: one `SmsSender` interface, a log backend and Twilio's Messages API.

Like email, nothing is sent inside a request: `enqueue_sms` writes an outbox job in the caller's
transaction (the message sealed, since it carries a code) and `notifications.send_sms` delivers
it. Twilio's wire format: `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, a form
body with `To`, `Body` and `From` (or `MessagingServiceSid`), HTTP Basic auth `SID:token`; a 201
with the message resource means accepted, any other status is an error to retry.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from typing import Protocol

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.jobs.outbox import enqueue
from coffer.kit.crypto import seal, unseal
from coffer.settings import Settings, SmsBackend

SEND_SMS_JOB = "notifications.send_sms"


@dataclass(frozen=True, slots=True)
class SmsMessage:
    to: str
    """E.164."""
    body: str


class SmsSender(Protocol):
    async def send(self, message: SmsMessage) -> None: ...


class SmsDeliveryFailed(Exception):
    """The provider refused the message; the job retries with backoff."""


class ConsoleSmsSender:
    """Prints each message to standard output, as the console email backend does, so a
    development server works offline. Never used in production (settings refuse it there)."""

    async def send(self, message: SmsMessage) -> None:
        sys.stdout.write(f"----- sms -----\nTo: {message.to}\n\n{message.body}\n---------------\n")
        sys.stdout.flush()


class TwilioSender:
    """Twilio Programmable Messaging, through an async httpx client."""

    def __init__(
        self,
        *,
        base_url: str,
        account_sid: str,
        auth_token: str,
        from_number: str | None,
        messaging_service_sid: str | None,
        timeout_seconds: float,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.auth = httpx.BasicAuth(account_sid, auth_token)
        self.sender = (
            {"MessagingServiceSid": messaging_service_sid}
            if messaging_service_sid
            else {"From": from_number or ""}
        )
        self.timeout_seconds = timeout_seconds

    async def send(self, message: SmsMessage) -> None:
        async with httpx.AsyncClient(timeout=self.timeout_seconds) as client:
            response = await client.post(
                self.url,
                data={"To": message.to, "Body": message.body, **self.sender},
                auth=self.auth,
            )
        if response.status_code != 201:
            # Twilio's error body is {"code": 21211, "message": ..., "status": 400}; the code is
            # kept for the log, the message (it may echo the number) is not.
            try:
                code = response.json().get("code")
            except ValueError:
                code = None
            raise SmsDeliveryFailed(f"twilio answered {response.status_code} (code {code})")


def sms_sender_for(settings: Settings) -> SmsSender:
    if settings.sms_backend is SmsBackend.LOG:
        return ConsoleSmsSender()
    token = settings.twilio_auth_token
    return TwilioSender(
        base_url=settings.twilio_base_url,
        account_sid=settings.twilio_account_sid or "",
        auth_token=token.get_secret_value() if token else "",
        from_number=settings.twilio_from_number,
        messaging_service_sid=settings.twilio_messaging_service_sid,
        timeout_seconds=settings.sms_timeout_seconds,
    )


async def enqueue_sms(
    session: AsyncSession, settings: Settings, message: SmsMessage, *, kind: str
) -> None:
    """Queue the message for delivery once the caller's transaction commits."""
    sealed = seal(settings, json.dumps(asdict(message)), context=SEND_SMS_JOB)
    await enqueue(session, SEND_SMS_JOB, {"kind": kind, "sealed": sealed})


def open_sms_payload(settings: Settings, payload: dict[str, str]) -> SmsMessage:
    fields = json.loads(unseal(settings, payload["sealed"], context=SEND_SMS_JOB))
    return SmsMessage(to=fields["to"], body=fields["body"])
