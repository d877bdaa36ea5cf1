"""Text messages: the Twilio backend against a local double of the Messages API, the log
backend, and the settings that refuse half a Twilio configuration or a log backend in
production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from coffer.notifications.sms import (
    ConsoleSmsSender,
    SmsDeliveryFailed,
    SmsMessage,
    TwilioSender,
    sms_sender_for,
)
from coffer.settings import Settings
from tests.fixtures.sms import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, SmsInbox, twilio_settings


def sender(
    inbox: SmsInbox,
    *,
    auth_token: str = AUTH_TOKEN,
    from_number: str | None = FROM_NUMBER,
    messaging_service_sid: str | None = None,
) -> TwilioSender:
    return TwilioSender(
        base_url=inbox.base_url,
        account_sid=ACCOUNT_SID,
        auth_token=auth_token,
        from_number=from_number,
        messaging_service_sid=messaging_service_sid,
        timeout_seconds=5,
    )


async def test_twilio_gets_a_form_with_to_from_and_body_under_basic_auth(
    sms_inbox: SmsInbox,
) -> None:
    await sender(sms_inbox).send(SmsMessage("+2348031112222", "Your coffer code is 123456."))

    assert sms_inbox.to("+2348031112222")[-1] == {
        "To": "+2348031112222",
        "Body": "Your coffer code is 123456.",
        "From": FROM_NUMBER,
    }


async def test_a_messaging_service_replaces_the_from_number(sms_inbox: SmsInbox) -> None:
    service_sid = "MG" + "1" * 32
    await sender(sms_inbox, from_number=None, messaging_service_sid=service_sid).send(
        SmsMessage("+2348031113333", "hello")
    )

    sent = sms_inbox.to("+2348031113333")[-1]
    assert sent["MessagingServiceSid"] == service_sid
    assert "From" not in sent


async def test_a_refused_message_raises_so_the_job_retries(sms_inbox: SmsInbox) -> None:
    with pytest.raises(SmsDeliveryFailed, match="401"):
        await sender(sms_inbox, auth_token="wrong").send(SmsMessage("+2348031114444", "x"))
    assert sms_inbox.to("+2348031114444") == []


async def test_the_log_backend_prints_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    await ConsoleSmsSender().send(SmsMessage("+2348031115555", "Your coffer code is 654321."))

    printed = capsys.readouterr().out
    assert "To: +2348031115555" in printed
    assert "Your coffer code is 654321." in printed


def test_settings_pick_the_backend_and_refuse_half_a_twilio_configuration(
    sms_inbox: SmsInbox,
) -> None:
    assert isinstance(sms_sender_for(Settings()), ConsoleSmsSender)
    assert isinstance(sms_sender_for(Settings(**twilio_settings(sms_inbox))), TwilioSender)
    with pytest.raises(ValidationError, match="COFFER_TWILIO_ACCOUNT_SID"):
        Settings(sms_backend="twilio", twilio_account_sid=ACCOUNT_SID)


def test_production_refuses_the_log_backend() -> None:
    with pytest.raises(ValidationError, match="COFFER_SMS_BACKEND=log"):
        Settings(env="production", secret_key="x" * 40, smtp_url="smtp://mail.example.com:587")
