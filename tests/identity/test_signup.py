"""Sign-up through the HTTP API: register, the emailed code, verify, resend."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from coffer.db import Database
from coffer.kit.clock import utcnow
from coffer.models import OneTimeCode, OutboxJob, User, Wallet
from tests.fixtures.identity import PASSWORD, Api, MakeApi, bearer, new_email, new_phone


async def verify(api: Api, verification_id: str, code: str) -> tuple[int, dict]:
    response = await api.client.post(
        "/auth/verify", json={"verification_id": verification_id, "code": code}
    )
    return response.status_code, response.json()


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_sign_up_sends_a_code_and_verify_opens_the_primary_wallet(api: Api) -> None:
    address, phone = new_email(), new_phone()
    response = await api.client.post(
        "/auth/register",
        json={
            "email": address.upper(),
            "phone": f"{phone[:4]} {phone[4:7]} {phone[7:10]} {phone[10:]}",
            "password": PASSWORD,
            "first_name": "Ada",
            "last_name": "Obi",
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "success"
    assert body["data"]["email"] == address
    assert body["data"]["expires_in"] == 600
    verification_id = body["data"]["verification_id"]

    await api.deliver_email()
    [message] = api.mailbox.to(address)
    code = api.mailbox.last_code(address)
    assert code in str(message["Subject"])
    assert code in message.get_content()

    status, verified = await verify(api, verification_id, code)
    assert status == 200, verified
    profile = verified["data"]
    assert profile["is_verified"] is True
    # The number counts once its own SMS code is confirmed (POST /me/phone/verify).
    assert (profile["phone"], profile["pending_phone"]) == (None, phone)
    assert await api.sms_code_for(phone)
    assert profile["name"] == "Ada Obi"
    assert profile["primary_wallet_number"] is not None

    tokens = await api.login(address)
    me = await api.client.get("/me", headers=bearer(tokens["access_token"]))
    assert me.json()["data"]["primary_wallet_number"] == profile["primary_wallet_number"]
    async with api.app.state.database.transaction() as session:
        wallet = (
            await session.execute(
                select(Wallet).where(Wallet.number == profile["primary_wallet_number"])
            )
        ).scalar_one()
    assert wallet.currency == api.settings.default_currency
    assert wallet.is_primary


async def test_an_unverified_account_has_no_wallet_and_cannot_sign_in(api: Api) -> None:
    address, verification_id = await api.register()
    async with api.app.state.database.transaction() as session:
        user = (await session.execute(select(User).where(User.email == address))).scalar_one()
        wallets = (await session.execute(select(Wallet).where(Wallet.user_id == user.id))).all()
    assert not user.is_verified
    assert wallets == []

    response = await api.client.post("/auth/login", json={"email": address, "password": PASSWORD})
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "account_not_verified",
        "details": {"verification_id": verification_id},
    }


async def test_the_code_is_stored_hashed_and_sealed_in_the_outbox(api: Api) -> None:
    address, verification_id = await api.register()
    async with api.app.state.database.transaction() as session:
        row = (
            await session.execute(
                select(OneTimeCode).where(OneTimeCode.id == uuid.UUID(verification_id))
            )
        ).scalar_one()
        payloads = [
            job.payload
            for job in (
                await session.execute(
                    select(OutboxJob).where(OutboxJob.name == "notifications.send_email")
                )
            ).scalars()
        ]
    code = await api.code_for(address)
    assert code not in row.code_hash
    assert payloads
    assert all(code not in str(payload) and address not in str(payload) for payload in payloads)


async def test_five_wrong_codes_kill_the_code_even_for_the_right_one(api: Api) -> None:
    address, verification_id = await api.register()
    code = await api.code_for(address)
    for _ in range(5):
        status, body = await verify(api, verification_id, wrong(code))
        assert (status, body["error"]["code"]) == (400, "invalid_code")
    status, body = await verify(api, verification_id, code)
    assert (status, body["error"]["code"]) == (400, "code_attempts_exceeded")


async def test_a_wrong_code_still_counts_after_the_request_fails(api: Api) -> None:
    address, verification_id = await api.register()
    code = await api.code_for(address)
    await verify(api, verification_id, wrong(code))
    async with api.app.state.database.transaction() as session:
        attempts = (
            await session.execute(
                select(OneTimeCode.attempts).where(OneTimeCode.id == uuid.UUID(verification_id))
            )
        ).scalar_one()
    assert attempts == 1


async def test_a_code_expires_after_ten_minutes(api: Api) -> None:
    address, verification_id = await api.register()
    code = await api.code_for(address)
    async with api.app.state.database.transaction() as session:
        await session.execute(
            update(OneTimeCode)
            .where(OneTimeCode.id == uuid.UUID(verification_id))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    status, body = await verify(api, verification_id, code)
    assert (status, body["error"]["code"]) == (400, "code_expired")


async def test_a_code_works_once(api: Api) -> None:
    address, verification_id = await api.register()
    code = await api.code_for(address)
    assert (await verify(api, verification_id, code))[0] == 200
    status, body = await verify(api, verification_id, code)
    assert (status, body["error"]["code"]) == (400, "invalid_code")


async def test_resend_replaces_the_code(api: Api) -> None:
    address, verification_id = await api.register()
    first = await api.code_for(address)
    response = await api.client.post(
        "/auth/verify/resend", json={"verification_id": verification_id}
    )
    assert response.status_code == 202
    second = await api.code_for(address)
    assert len(api.mailbox.to(address)) == 2
    if first != second:
        status, body = await verify(api, verification_id, first)
        assert (status, body["error"]["code"]) == (400, "invalid_code")
    assert (await verify(api, verification_id, second))[0] == 200

    # Verified now: a resend answers the same and sends nothing.
    again = await api.client.post("/auth/verify/resend", json={"verification_id": verification_id})
    assert again.status_code == 202
    await api.deliver_email()
    assert len(api.mailbox.to(address)) == 2


async def test_resend_for_an_unknown_verification_answers_the_same_and_sends_nothing(
    api: Api,
) -> None:
    response = await api.client.post(
        "/auth/verify/resend", json={"verification_id": "00000000-0000-4000-8000-000000000000"}
    )
    assert response.status_code == 202
    assert response.json()["data"] is None


async def test_emails_are_unique_case_insensitively(api: Api) -> None:
    address, _ = await api.register()
    response = await api.client.post(
        "/auth/register", json={"email": address.upper(), "password": PASSWORD}
    )
    # Answered like a new sign-up (no enumeration), but no second account exists.
    assert response.status_code == 201
    async with api.app.state.database.transaction() as session:
        count = (
            await session.execute(
                select(func.count()).select_from(User).where(User.email == address)
            )
        ).scalar_one()
    assert count == 1


async def test_phones_are_normalised_and_a_claim_blocks_nobody(api: Api) -> None:
    phone = new_phone()
    spaced = f"{phone[:4]} {phone[4:7]} {phone[7:10]} {phone[10:]}"
    await api.register(phone=spaced)
    response = await api.client.post(
        "/auth/register", json={"email": new_email(), "phone": phone, "password": PASSWORD}
    )
    assert response.status_code == 201
    async with api.app.state.database.transaction() as session:
        claims = (
            await session.execute(
                select(func.count()).select_from(User).where(User.pending_phone == phone)
            )
        ).scalar_one()
    assert claims == 2


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"password": "short"}, "weak_password"),
        ({"password": "Password123"}, "weak_password"),
        ({"password": "qwertyuiop"}, "weak_password"),
        ({"email": "not-an-email"}, "invalid_email"),
        ({"phone": "08031234567"}, "invalid_phone"),
        ({"phone": "+1 555"}, "invalid_phone"),
        ({"role": "admin"}, "validation_error"),
        ({"password": None}, "validation_error"),
    ],
)
async def test_register_refuses_bad_input_with_a_code(api: Api, body: dict, code: str) -> None:
    payload = {"email": new_email(), "password": PASSWORD} | body
    response = await api.client.post("/auth/register", json=payload)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code
    if isinstance(body.get("password"), str):
        assert body["password"] not in response.text


async def test_register_refuses_a_body_that_is_not_json(api: Api) -> None:
    response = await api.client.post(
        "/auth/register", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_verify_refuses_a_malformed_code(api: Api) -> None:
    _, verification_id = await api.register()
    for bad in ("12345", "1234567", "abcdef", "١٢٣٤٥٦"):
        status, body = await verify(api, verification_id, bad)
        assert (status, body["error"]["code"]) == (422, "validation_error")


async def test_operator_created_users_are_verified_with_a_wallet(
    make_api: MakeApi, database: Database
) -> None:
    from coffer.identity.service import create_user

    address = new_email()
    async with database.transaction() as session:
        created = await create_user(session, email=address, password=PASSWORD, currency="NGN")
    assert created.user.is_verified
    async with make_api() as api:
        tokens = await api.login(address)
        assert tokens["user"]["wallet_number"] == created.primary_wallet.number
