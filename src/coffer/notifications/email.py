"""Email: one `EmailSender` interface, an SMTP backend (aiosmtplib) and a console backend.

Nothing sends mail inside a request: `enqueue_email` writes an outbox job in the caller's
transaction and the `notifications.send_email` job delivers it. The message is sealed
(AES-GCM) in the job's payload, because emails carry codes and the outbox is a table anyone
with database access can read.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from email.message import EmailMessage as MimeMessage
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.jobs.outbox import enqueue_many
from coffer.kit.crypto import seal, unseal
from coffer.settings import Settings

SEND_EMAIL_JOB = "notifications.send_email"
_DEFAULT_PORTS = {"smtp": 25, "smtps": 465}


@dataclass(frozen=True, slots=True)
class EmailMessage:
    to: str
    subject: str
    body: str
    html: str | None = None
    """An HTML alternative to the plain-text `body`, when the message has one."""


class EmailSender(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpSender:
    """Delivers through an SMTP server: `smtp://` (optionally upgraded with STARTTLS) or
    `smtps://` (TLS from the first byte), with credentials from the URL when present."""

    def __init__(self, url: str, *, sender: str, starttls: bool, timeout_seconds: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError("COFFER_SMTP_URL must look like smtp://host:port or smtps://host:port")
        self.hostname = parts.hostname
        self.port = parts.port or _DEFAULT_PORTS[parts.scheme]
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.use_tls = parts.scheme == "smtps"
        self.starttls = starttls and not self.use_tls
        self.sender = sender
        self.timeout_seconds = timeout_seconds

    async def send(self, message: EmailMessage) -> None:
        mime = MimeMessage()
        mime["From"] = self.sender
        mime["To"] = message.to
        mime["Subject"] = message.subject
        mime.set_content(message.body)
        if message.html is not None:
            mime.add_alternative(message.html, subtype="html")
        await aiosmtplib.send(
            mime,
            hostname=self.hostname,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            start_tls=self.starttls,
            timeout=self.timeout_seconds,
        )


class ConsoleSender:
    """Prints each message to standard output, so a development server works offline: the
    terminal is the mailbox. Never used in production (settings refuse it there)."""

    def __init__(self, *, sender: str) -> None:
        self.sender = sender

    async def send(self, message: EmailMessage) -> None:
        sys.stdout.write(
            f"----- email -----\nFrom: {self.sender}\nTo: {message.to}\n"
            f"Subject: {message.subject}\n\n{message.body}\n-----------------\n"
        )
        sys.stdout.flush()


def sender_for(settings: Settings) -> EmailSender:
    if settings.smtp_url is None:
        return ConsoleSender(sender=settings.email_from)
    return SmtpSender(
        settings.smtp_url.get_secret_value(),
        sender=settings.email_from,
        starttls=settings.smtp_starttls,
        timeout_seconds=settings.smtp_timeout_seconds,
    )


async def enqueue_email(
    session: AsyncSession, settings: Settings, message: EmailMessage, *, kind: str
) -> None:
    """Queue the message for delivery once the caller's transaction commits."""
    await enqueue_emails(session, settings, [(message, kind)])


async def enqueue_emails(
    session: AsyncSession, settings: Settings, messages: Sequence[tuple[EmailMessage, str]]
) -> None:
    """Queue each (message, kind), one delivery job each, in one statement."""
    await enqueue_many(
        session,
        SEND_EMAIL_JOB,
        [
            {
                "kind": kind,
                "sealed": seal(settings, json.dumps(asdict(message)), context=SEND_EMAIL_JOB),
            }
            for message, kind in messages
        ],
    )


def open_payload(settings: Settings, payload: dict[str, str]) -> EmailMessage:
    fields = json.loads(unseal(settings, payload["sealed"], context=SEND_EMAIL_JOB))
    return EmailMessage(
        to=fields["to"], subject=fields["subject"], body=fields["body"], html=fields.get("html")
    )
