"""Password login: by email or phone, one answer for every wrong credential, the same argon2
work whether the account exists, and rehashing when the parameters change."""

from __future__ import annotations

import time

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select, update

from coffer.identity.tokens import decode_token
from coffer.models import Role, User
from tests.fixtures.identity import PASSWORD, Api, MakeApi, bearer, new_email, new_phone


async def test_login_by_email_any_case_or_by_phone(api: Api) -> None:
    phone = new_phone()
    address = await api.sign_up(phone=phone, first_name="Ada")
    by_email = await api.login(address.upper())
    assert by_email["token_type"] == "bearer"
    assert by_email["expires_in"] == 900
    user = by_email["user"]
    assert user["email"] == address
    assert user["role"] == "user"
    assert user["wallet_number"]
    # The phone signs in once its SMS code is confirmed.
    verified = await api.verify_phone(by_email["access_token"], phone)
    assert verified.status_code == 200, verified.text

    response = await api.client.post("/auth/login", json={"phone": phone, "password": PASSWORD})
    assert response.status_code == 200
    assert response.json()["data"]["user"]["id"] == user["id"]

    claims = decode_token(api.settings, by_email["access_token"])
    assert str(claims.user_id) == user["id"]
    me = await api.client.get("/me", headers=bearer(by_email["access_token"]))
    assert me.status_code == 200


async def test_wrong_password_and_unknown_account_answer_alike(api: Api) -> None:
    address = await api.sign_up()
    answers = []
    for body in (
        {"email": address, "password": "not-the-password-1"},
        {"email": new_email(), "password": PASSWORD},
        {"phone": new_phone(), "password": PASSWORD},
        {"email": "not-an-email", "password": PASSWORD},
    ):
        response = await api.client.post("/auth/login", json=body)
        answers.append((response.status_code, response.json()))
    assert all(answer == answers[0] for answer in answers)
    status, body = answers[0]
    assert status == 401
    assert body["error"]["code"] == "invalid_credentials"


async def test_login_needs_exactly_one_identifier(api: Api) -> None:
    for body in (
        {"password": PASSWORD},
        {"email": new_email(), "phone": new_phone(), "password": PASSWORD},
        {"email": new_email()},
    ):
        response = await api.client.post("/auth/login", json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (
            422,
            "validation_error",
        )


async def test_login_rehashes_a_password_hashed_with_old_parameters(api: Api) -> None:
    address = await api.sign_up()
    old = PasswordHash((Argon2Hasher(memory_cost=2048, time_cost=2, parallelism=1),))
    async with api.app.state.database.transaction() as session:
        await session.execute(
            update(User).where(User.email == address).values(password_hash=old.hash(PASSWORD))
        )
    await api.login(address)
    async with api.app.state.database.transaction() as session:
        stored = (
            await session.execute(select(User.password_hash).where(User.email == address))
        ).scalar_one()
    assert stored is not None
    assert "m=1024,t=1" in stored
    assert old.verify(PASSWORD, stored)


async def test_login_costs_the_same_whether_the_account_exists(make_api: MakeApi) -> None:
    # Heavy enough parameters that argon2 dominates; a skipped hash would show as a fraction.
    async with make_api(password_hash_memory_kib=32768, password_hash_iterations=3) as api:
        address = new_email()
        response = await api.client.post(
            "/auth/register", json={"email": address, "password": PASSWORD}
        )
        assert response.status_code == 201
        code = await api.code_for(address)
        verification_id = response.json()["data"]["verification_id"]
        await api.client.post(
            "/auth/verify", json={"verification_id": verification_id, "code": code}
        )

        async def timed(email: str) -> float:
            started = time.perf_counter()
            response = await api.client.post(
                "/auth/login", json={"email": email, "password": "wrong-password-123"}
            )
            assert response.status_code == 401
            return time.perf_counter() - started

        await timed(new_email())
        # Interleaved, so both kinds meet the same machine load; the fastest of each is the
        # work itself. A skipped argon2 would be an order of magnitude, not a factor of two.
        existing, missing = [], []
        for _ in range(7):
            existing.append(await timed(address))
            missing.append(await timed(new_email()))
    assert min(missing) > 0.5 * min(existing), (missing, existing)
    assert min(existing) > 0.5 * min(missing), (missing, existing)


async def test_admins_carry_their_role_into_the_token(make_api: MakeApi) -> None:
    from coffer.identity.service import create_user

    async with make_api() as api:
        address = new_email()
        async with api.app.state.database.transaction() as session:
            await create_user(
                session, email=address, password=PASSWORD, currency="NGN", role=Role.ADMIN
            )
        data = await api.login(address)
        assert data["user"]["role"] == "admin"
        assert decode_token(api.settings, data["access_token"]).role == "admin"
