"""Emails through the outbox to a real SMTP server: transfers settled (both sides, once),
admin actions, security events; an opt-out silences activity emails but never security ones."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from email.message import EmailMessage

from coffer.fees.service import PERIOD, charge_due
from coffer.jobs.runner import JobRunner
from coffer.models import Role
from coffer.notifications.tasks import publish_transfers_settled
from coffer.wallets import service as wallets
from tests.admin.conftest import Person, person
from tests.fixtures.factories import fund
from tests.fixtures.identity import Api


async def _subjects(api: Api, who: Person) -> list[str]:
    await api.deliver_email()
    return [str(message["Subject"]) for message in api.mailbox.to(who.email)]


def _html(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


async def test_a_settled_transfer_emails_both_sides_once(api: Api) -> None:
    sender = await person(api, fund_minor=500_000)
    recipient = await person(api)
    response = await api.client.post(
        "/wallet/transfer",
        json={"wallet_number": recipient.wallet_number, "amount": "1234.50"},
        headers=sender.headers,
    )
    assert response.status_code == 202, response.text
    reference = response.json()["data"]["reference"]

    await api.deliver_email()
    # The settled job run again (a retry after a lost acknowledgement) sends nothing more.
    payload = {"transfers": [{"reference": reference, "status": "completed"}]}
    await publish_transfers_settled(api.app.state.database, api.settings, payload)

    assert (await _subjects(api, sender)).count("You sent 1,234.50 NGN") == 1
    assert (await _subjects(api, recipient)).count("You received 1,234.50 NGN") == 1
    [received] = [m for m in api.mailbox.to(recipient.email) if "received" in str(m["Subject"])]
    assert "Ada Obi" in str(received.get_body(preferencelist=("plain",)).get_content())  # type: ignore[union-attr]
    assert "1,234.50 NGN" in _html(received)
    assert reference in _html(received)


async def test_an_opt_out_silences_activity_emails_but_not_security_ones(api: Api) -> None:
    user = await person(api)
    admin = await person(api, role=Role.ADMIN)
    off = await api.client.patch(
        "/me/notifications", json={"activity_emails": False}, headers=user.headers
    )
    assert off.json()["data"] == {"activity_emails": False, "security_emails": True}

    credited = await api.client.post(
        f"/admin/wallets/{user.wallet_number}/credit",
        json={"amount": "50.00", "reason": "goodwill"},
        headers=admin.headers,
    )
    assert credited.status_code == 200, credited.text
    key = await api.client.post(
        "/keys/create",
        json={"name": "shop", "permissions": ["read"], "expiry": "1D"},
        headers=user.headers,
    )
    assert key.status_code == 201, key.text
    subjects = await _subjects(api, user)
    assert "A new API key was created" in subjects
    assert not [s for s in subjects if "credited" in s]

    await api.client.patch(
        "/me/notifications", json={"activity_emails": True}, headers=user.headers
    )
    await api.client.post(
        f"/admin/wallets/{user.wallet_number}/credit",
        json={"amount": "5.00", "reason": "goodwill"},
        headers=admin.headers,
    )
    assert "Your wallet was credited 5.00 NGN" in await _subjects(api, user)


async def test_a_sign_in_from_a_new_network_is_announced_and_listed_in_security_events(
    api: Api,
) -> None:
    user = await person(api)
    transport = api.client._transport  # the ASGI transport: same app, another client address
    transport.client = ("203.0.113.9", 40000)  # type: ignore[attr-defined]
    try:
        await api.login(user.email)
    finally:
        transport.client = ("127.0.0.1", 50000)  # type: ignore[attr-defined]
    await api.login(user.email)

    subjects = await _subjects(api, user)
    assert subjects.count("New sign-in to your account") == 1
    [notice] = [m for m in api.mailbox.to(user.email) if "sign-in" in str(m["Subject"])]
    assert "203.0.113.9" in _html(notice)

    events = await api.client.get("/me/security-events", headers=user.headers)
    actions = [e["action"] for e in events.json()["data"]["events"]]
    assert actions == ["auth.sign_in", "auth.sign_in", "auth.sign_in"]
    ips = [e["details"]["ip"] for e in events.json()["data"]["events"]]
    assert ips == ["127.0.0.1", "203.0.113.9", "127.0.0.1"]


async def test_the_worker_delivers_what_the_admin_did(api: Api) -> None:
    user = await person(api)
    admin = await person(api, role=Role.ADMIN)
    await api.client.post(
        f"/admin/wallets/{user.wallet_number}/freeze",
        json={"reason": "court order 12"},
        headers=admin.headers,
    )
    runner = JobRunner(api.app.state.database, api.settings)
    while await runner.run_once():
        pass
    [frozen] = [m for m in api.mailbox.to(user.email) if m["Subject"] == "Your wallet was frozen"]
    assert "court order 12" in _html(frozen)


async def test_a_burst_of_failed_sign_ins_is_recorded_once(api: Api) -> None:
    user = await person(api)
    statuses = []
    for _ in range(14):
        response = await api.client.post(
            "/auth/login", json={"email": user.email, "password": "wrong-password-123"}
        )
        statuses.append(response.status_code)
    assert statuses[-4:] == [429] * 4

    events = await api.client.get("/me/security-events", headers=user.headers)
    actions = [e["action"] for e in events.json()["data"]["events"]]
    assert actions.count("auth.sign_in_failures") == 1


async def test_fee_emails_tell_of_the_charge_the_block_and_the_unblock(
    api: Api, shift_clock: Callable[[timedelta], None]
) -> None:
    user = await person(api)
    async with api.app.state.database.transaction() as session:
        tenge = await wallets.open_wallet(session, uuid.UUID(user.user_id), "KZT")
    fees = {"KZT": Decimal("200.00")}
    shift_clock(PERIOD + timedelta(minutes=5))
    async with api.app.state.database.transaction() as session:
        await charge_due(session, fees)
    async with api.app.state.database.transaction() as session:
        await fund(session, tenge, 50_000)
    subjects = await _subjects(api, user)
    assert "Your wallet is blocked: a fee is unpaid" in subjects
    assert "Monthly fee charged: 200.00 KZT" in subjects
    assert "Your wallet is unblocked" in subjects
