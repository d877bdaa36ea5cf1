"""OWASP API6:2023 — unrestricted access to sensitive business flows: who gets paid by phone,
who learns which accounts exist, who takes over an address.

Each test is named after the behaviour it proves and fails against the code before issue 12.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from coffer.kit.money import Money
from coffer.models import User
from coffer.wallets import repository as wallet_repository
from coffer.wallets import service as wallets
from tests.fixtures.identity import PASSWORD, Api, MakeApi, bearer, new_email, new_phone


async def fund(api: Api, user_id: str, minor: int) -> None:
    """Credit the user's primary wallet from the adjustments account (a real ledger entry)."""
    async with api.app.state.database.transaction() as session:
        wallet = await wallet_repository.get_primary(session, uuid.UUID(user_id))
        assert wallet is not None
        await wallets.adjust(
            session,
            wallet,
            Money.of(minor, wallet.currency),
            reason="test funding",
            credit=True,
            actor="test",
        )


async def transfer(api: Api, token: str, body: dict[str, Any]) -> tuple[int, str | None]:
    response = await api.client.post("/wallet/transfer", json=body, headers=bearer(token))
    error = response.json().get("error") or {}
    return response.status_code, error.get("code")


async def stored_phones(api: Api, user_id: str) -> tuple[str | None, str | None]:
    async with api.app.state.database.transaction() as session:
        row = (
            await session.execute(
                select(User.phone, User.pending_phone).where(User.id == uuid.UUID(user_id))
            )
        ).one()
    return row.phone, row.pending_phone


async def test_transfer_by_phone_does_not_pay_an_unverified_claim(api: Api) -> None:
    victims_number = new_phone()
    claimant = await api.signed_in(phone=victims_number)  # never proves the number
    sender = await api.signed_in()
    await fund(api, sender["user"]["id"], 10_000)

    refused = await transfer(
        api, sender["access_token"], {"phone": victims_number, "amount": "10.00"}
    )

    assert refused == (404, "recipient_not_found")
    assert await stored_phones(api, claimant["user"]["id"]) == (None, victims_number)


async def test_a_phone_counts_for_sign_in_and_payment_once_its_sms_code_is_confirmed(
    api: Api,
) -> None:
    number = new_phone()
    owner = await api.signed_in(phone=number)
    sender = await api.signed_in()
    await fund(api, sender["user"]["id"], 10_000)

    verified = await api.verify_phone(owner["access_token"], number)

    assert verified.status_code == 200, verified.text
    assert verified.json()["data"]["phone"] == number
    assert await transfer(api, sender["access_token"], {"phone": number, "amount": "1"}) == (
        202,
        None,
    )
    login = await api.client.post("/auth/login", json={"phone": number, "password": PASSWORD})
    assert login.status_code == 200, login.text


async def test_an_unverified_claim_never_blocks_the_real_owner_of_a_number(api: Api) -> None:
    number = new_phone()
    squatter = await api.signed_in(phone=number)

    # The owner signs up with the same number: no 409, and proving it takes it.
    owner = await api.signed_in(phone=number)
    verified = await api.verify_phone(owner["access_token"], number)

    assert verified.status_code == 200, verified.text
    assert await stored_phones(api, owner["user"]["id"]) == (number, None)
    assert await stored_phones(api, squatter["user"]["id"]) == (None, None)


async def test_a_verified_number_moves_to_whoever_proves_it_next(api: Api) -> None:
    number = new_phone()
    previous = await api.signed_in(phone=number)
    assert (await api.verify_phone(previous["access_token"], number)).status_code == 200
    emails_before = len(api.mailbox.to(previous["user"]["email"]))

    # The number was reassigned to someone else, who proves it by SMS.
    current = await api.signed_in()
    claimed = await api.client.post(
        "/me/phone", json={"phone": number}, headers=bearer(current["access_token"])
    )
    assert claimed.status_code == 202, claimed.text
    assert (await api.verify_phone(current["access_token"], number)).status_code == 200

    assert await stored_phones(api, current["user"]["id"]) == (number, None)
    assert await stored_phones(api, previous["user"]["id"]) == (None, None)
    await api.deliver_email()
    notices = api.mailbox.to(previous["user"]["email"])[emails_before:]
    assert [str(m["Subject"]) for m in notices] == [
        "Your phone number was removed from your coffer account"
    ]


async def test_a_new_email_waits_for_its_code_before_it_signs_in(api: Api) -> None:
    data = await api.signed_in()
    old_address, new_address = data["user"]["email"], new_email()

    asked = await api.client.post(
        "/me/email", json={"email": new_address}, headers=bearer(data["access_token"])
    )
    assert asked.status_code == 202, asked.text
    me = await api.client.get("/me", headers=bearer(data["access_token"]))
    assert (me.json()["data"]["email"], me.json()["data"]["pending_email"]) == (
        old_address,
        new_address,
    )
    early = await api.client.post("/auth/login", json={"email": new_address, "password": PASSWORD})
    assert early.status_code == 401

    code = await api.code_for(new_address)
    confirmed = await api.client.post(
        "/me/email/verify", json={"code": code}, headers=bearer(data["access_token"])
    )

    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["data"]["email"] == new_address
    assert (await api.login(new_address))["user"]["id"] == data["user"]["id"]
    await api.deliver_email()
    assert "Your coffer email address changed" in [
        str(m["Subject"]) for m in api.mailbox.to(old_address)
    ]


async def test_asking_for_a_taken_email_answers_like_a_free_one_and_tells_its_owner(
    api: Api,
) -> None:
    owner_address = await api.sign_up()
    data = await api.signed_in()

    asked = await api.client.post(
        "/me/email", json={"email": owner_address}, headers=bearer(data["access_token"])
    )

    assert asked.status_code == 202
    assert asked.json()["data"]["address"] == owner_address
    await api.deliver_email()
    assert str(api.mailbox.to(owner_address)[-1]["Subject"]) == "Someone tried to use your address"
    me = await api.client.get("/me", headers=bearer(data["access_token"]))
    assert me.json()["data"]["pending_email"] is None


async def test_sign_up_with_a_taken_address_answers_like_a_new_one_and_tells_the_owner(
    api: Api,
) -> None:
    address = await api.sign_up()
    fresh = await api.client.post(
        "/auth/register", json={"email": new_email(), "password": PASSWORD}
    )

    again = await api.client.post(
        "/auth/register", json={"email": address.upper(), "password": "another-password-77"}
    )

    assert again.status_code == fresh.status_code == 201
    assert again.json()["message"] == fresh.json()["message"]
    assert set(again.json()["data"]) == set(fresh.json()["data"])
    await api.deliver_email()
    assert str(api.mailbox.to(address)[-1]["Subject"]) == (
        "Someone tried to sign up with your address"
    )
    # The verification id leads nowhere: resending answers the same and sends nothing.
    sent = len(api.mailbox.to(address))
    resend = await api.client.post(
        "/auth/verify/resend", json={"verification_id": again.json()["data"]["verification_id"]}
    )
    assert resend.status_code == 202
    await api.deliver_email()
    assert len(api.mailbox.to(address)) == sent
    assert (await api.login(address))["user"]["email"] == address  # the password is unchanged


@pytest.mark.parametrize("recipient_state", ["nobody", "inactive", "active"])
async def test_a_sender_who_cannot_pay_learns_nothing_about_the_recipient(
    api: Api, recipient_state: str
) -> None:
    sender = await api.signed_in()  # an empty wallet
    address = new_email() if recipient_state == "nobody" else await api.sign_up()
    if recipient_state == "inactive":
        token = (await api.login(address))["access_token"]
        closed = await api.client.post(
            "/me/deactivate", json={"password": PASSWORD}, headers=bearer(token)
        )
        assert closed.status_code == 200

    refused = await transfer(api, sender["access_token"], {"email": address, "amount": "5.00"})

    assert refused == (400, "insufficient_funds")


async def test_an_inactive_recipient_is_answered_like_nobody(api: Api) -> None:
    sender = await api.signed_in()
    await fund(api, sender["user"]["id"], 10_000)
    address = await api.sign_up()
    token = (await api.login(address))["access_token"]
    closed = await api.client.post(
        "/me/deactivate", json={"password": PASSWORD}, headers=bearer(token)
    )
    assert closed.status_code == 200

    inactive = await transfer(api, sender["access_token"], {"email": address, "amount": "1"})
    nobody = await transfer(api, sender["access_token"], {"email": new_email(), "amount": "1"})

    assert inactive == nobody == (404, "recipient_not_found")


async def test_lookups_of_unknown_recipients_are_rate_limited_per_user(
    make_api: MakeApi,
) -> None:
    async with make_api(recipient_lookup_misses_per_principal="3/hour") as api:
        sender = await api.signed_in()
        await fund(api, sender["user"]["id"], 10_000)
        known = await api.sign_up()
        misses = [
            await transfer(api, sender["access_token"], {"email": new_email(), "amount": "1"})
            for _ in range(3)
        ]

        probe = await transfer(api, sender["access_token"], {"email": new_email(), "amount": "1"})
        hit = await transfer(api, sender["access_token"], {"email": known, "amount": "1"})

    assert misses == [(404, "recipient_not_found")] * 3
    assert probe == (429, "rate_limited")
    # Once spent, a lookup that would find someone is refused too: no oracle left.
    assert hit == (429, "rate_limited")
