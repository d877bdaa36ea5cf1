"""Email delivery: SMTP against a real aiosmtpd server, the console backend, and the outbox job."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import ValidationError
from sqlalchemy import select

from coffer.db import Database
from coffer.jobs.runner import JobRunner
from coffer.models import OutboxJob
from coffer.notifications.email import (
    SEND_EMAIL_JOB,
    ConsoleSender,
    EmailMessage,
    SmtpSender,
    enqueue_email,
    sender_for,
)
from coffer.settings import Settings
from tests.fixtures.identity import Mailbox, free_port, new_email


def smtp_sender(url: str) -> SmtpSender:
    return SmtpSender(
        url, sender="coffer <no-reply@example.com>", starttls=False, timeout_seconds=5
    )


async def test_smtp_delivers_subject_body_and_sender(mailbox: Mailbox) -> None:
    address = new_email()
    await smtp_sender(mailbox.url).send(EmailMessage(address, "Your code: 123456", "Code 123456"))
    [message] = mailbox.to(address)
    assert message["From"] == "coffer <no-reply@example.com>"
    assert message["Subject"] == "Your code: 123456"
    assert message.get_content().strip() == "Code 123456"


class _Authenticating(Mailbox):
    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append((login, password))
        return AuthResult(success=(login, password) == ("mailer", "p@ss word"))


@pytest.fixture
def authenticating_server() -> Iterator[_Authenticating]:
    port = free_port()
    box = _Authenticating(url=f"smtp://127.0.0.1:{port}")
    controller = Controller(
        box, hostname="127.0.0.1", port=port, authenticator=box, auth_require_tls=False
    )
    controller.start()
    yield box
    controller.stop()


async def test_smtp_logs_in_with_the_credentials_in_the_url(
    authenticating_server: _Authenticating,
) -> None:
    address = new_email()
    url = authenticating_server.url.replace("smtp://", "smtp://mailer:p%40ss%20word@")
    await smtp_sender(url).send(EmailMessage(address, "Hello", "Body"))
    assert authenticating_server.logins == [("mailer", "p@ss word")]
    assert len(authenticating_server.to(address)) == 1


def test_smtp_urls_are_checked() -> None:
    for bad in ("http://mail.example.com", "smtp://", "mail.example.com:25"):
        with pytest.raises(ValueError, match="COFFER_SMTP_URL"):
            smtp_sender(bad)
    assert smtp_sender("smtps://mail.example.com").port == 465
    assert smtp_sender("smtp://mail.example.com").port == 25


async def test_without_smtp_emails_are_printed(capsys: pytest.CaptureFixture[str]) -> None:
    sender = sender_for(Settings())
    assert isinstance(sender, ConsoleSender)
    await sender.send(EmailMessage("ada@example.com", "Your code: 654321", "Code 654321"))
    printed = capsys.readouterr().out
    assert "To: ada@example.com" in printed
    assert "Subject: Your code: 654321" in printed


def test_production_refuses_to_start_without_smtp() -> None:
    secret = "x" * 40
    with pytest.raises(ValidationError, match="COFFER_SMTP_URL"):
        Settings(env="production", secret_key=secret)
    Settings(
        env="production",
        secret_key=secret,
        smtp_url="smtp://mail.example.com:587",
        sms_backend="twilio",
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token="token",
        twilio_from_number="+15005550006",
    )


async def test_the_email_job_delivers_a_sealed_message(
    database: Database, database_url: str, mailbox: Mailbox
) -> None:
    settings = Settings(database_url=database_url, smtp_url=mailbox.url)
    address = new_email()
    async with database.transaction() as session:
        await enqueue_email(
            session, settings, EmailMessage(address, "Code 246810", "Code 246810"), kind="test"
        )
    async with database.transaction() as session:
        payloads = [
            job.payload
            for job in (
                await session.execute(select(OutboxJob).where(OutboxJob.name == SEND_EMAIL_JOB))
            ).scalars()
        ]
    assert any(payload.get("kind") == "test" for payload in payloads)
    assert all("246810" not in str(p) and address not in str(p) for p in payloads)

    runner = JobRunner(database, settings)
    while await runner.run_once():
        pass
    [message] = mailbox.to(address)
    assert message["Subject"] == "Code 246810"
