"""OWASP API2:2023 — broken authentication: what a stolen token, a guessed code or a slow hash
could do before issue 12, and what they can do now.

Each test is named after the behaviour it proves and fails against the code before issue 12.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pwdlib import PasswordHash
from sqlalchemy import select, update

from coffer.apikeys import service as apikeys
from coffer.identity.service import reset_two_factor
from coffer.identity.tokens import decode_token
from coffer.kit.clock import utcnow
from coffer.models import AuthSession
from tests.fixtures.identity import PASSWORD, Api, MakeApi, bearer, new_email, new_phone
from tests.identity.test_two_factor import code_at, enable_two_factor, finish_login, start_login

NEW_PASSWORD = "quince-harbour-abacus-7"
KEY = {"name": "payouts", "permissions": ["read", "transfer"], "expiry": "1Y"}
Shift = Callable[[timedelta], None]


def error_of(response: Any) -> tuple[int, str | None]:
    return response.status_code, (response.json().get("error") or {}).get("code")


async def create_key(api: Api, token: str) -> Any:
    return await api.client.post("/keys/create", json=KEY, headers=bearer(token))


def after_step_up_window(api: Api, shift_clock: Shift) -> None:
    shift_clock(timedelta(seconds=api.settings.step_up_ttl_seconds + 1))


# Step-up (sudo mode)


async def test_a_stolen_access_token_cannot_mint_an_api_key_without_a_fresh_proof(
    api: Api, shift_clock: Shift
) -> None:
    data = await api.signed_in()
    after_step_up_window(api, shift_clock)

    refused = await create_key(api, data["access_token"])
    stepped = await api.client.post(
        "/auth/step-up", json={"password": PASSWORD}, headers=bearer(data["access_token"])
    )
    created = await create_key(api, data["access_token"])

    assert error_of(refused) == (403, "step_up_required")
    assert stepped.status_code == 200, stepped.text
    assert created.status_code == 201, created.text


async def test_step_up_refuses_a_wrong_password(api: Api, shift_clock: Shift) -> None:
    data = await api.signed_in()
    after_step_up_window(api, shift_clock)

    wrong = await api.client.post(
        "/auth/step-up",
        json={"password": "not-the-password-1"},
        headers=bearer(data["access_token"]),
    )

    assert error_of(wrong) == (403, "invalid_password")
    assert error_of(await create_key(api, data["access_token"])) == (403, "step_up_required")


async def test_an_api_key_can_never_step_up(api: Api) -> None:
    data = await api.signed_in()
    key = (await create_key(api, data["access_token"])).json()["data"]["api_key"]

    response = await api.client.post(
        "/auth/step-up", json={"password": PASSWORD}, headers={"x-api-key": key}
    )

    assert error_of(response) == (403, "permission_denied")


async def test_a_stolen_access_token_cannot_turn_on_two_factor_without_a_fresh_proof(
    api: Api, shift_clock: Shift
) -> None:
    data = await api.signed_in()
    after_step_up_window(api, shift_clock)

    setup = await api.client.post("/auth/2fa/setup", headers=bearer(data["access_token"]))

    assert error_of(setup) == (403, "step_up_required")


async def test_with_two_factor_on_only_a_code_steps_up(api: Api, shift_clock: Shift) -> None:
    data = await api.signed_in()
    secret, _ = await enable_two_factor(api, data["access_token"])
    after_step_up_window(api, shift_clock)
    headers = bearer(data["access_token"])

    by_password = await api.client.post(
        "/auth/step-up", json={"password": PASSWORD}, headers=headers
    )
    by_code = await api.client.post(
        "/auth/step-up", json={"code": code_at(secret, steps_ahead=1)}, headers=headers
    )

    assert error_of(by_password) == (403, "two_factor_required")
    assert by_code.status_code == 200, by_code.text
    assert (await create_key(api, data["access_token"])).status_code == 201


async def test_changing_the_phone_needs_a_fresh_proof(api: Api, shift_clock: Shift) -> None:
    data = await api.signed_in()
    after_step_up_window(api, shift_clock)

    response = await api.client.post(
        "/me/phone", json={"phone": new_phone()}, headers=bearer(data["access_token"])
    )

    assert error_of(response) == (403, "step_up_required")


# Password reset


async def test_a_password_reset_revokes_every_session_and_api_key_and_tells_the_owner(
    api: Api,
) -> None:
    data = await api.signed_in()
    key = (await create_key(api, data["access_token"])).json()["data"]["api_key"]
    address = data["user"]["email"]
    asked = await api.client.post("/auth/password/reset/request", json={"email": address})
    assert asked.status_code == 202

    reset = await api.client.post(
        "/auth/password/reset/confirm",
        json={"email": address, "code": await api.code_for(address), "new_password": NEW_PASSWORD},
    )

    assert reset.status_code == 200, reset.text
    by_key = await api.client.get("/wallet/balance", headers={"x-api-key": key})
    assert by_key.status_code == 401
    assert (await api.client.get("/me", headers=bearer(data["access_token"]))).status_code == 401
    await api.deliver_email()
    assert str(api.mailbox.to(address)[-1]["Subject"]) == "Your coffer password was reset"


# Two-factor


async def test_an_operator_can_reset_a_users_two_factor(api: Api) -> None:
    data = await api.signed_in()
    await enable_two_factor(api, data["access_token"])

    async with api.app.state.database.transaction() as session:
        await reset_two_factor(session, uuid.UUID(data["user"]["id"]), settings=api.settings)

    assert (await api.client.get("/me", headers=bearer(data["access_token"]))).status_code == 401
    signed_in = await start_login(api, data["user"]["email"])
    assert "access_token" in signed_in
    await api.deliver_email()
    subject = str(api.mailbox.to(data["user"]["email"])[-1]["Subject"])
    assert subject == "Two-factor authentication was reset on your coffer account"


async def test_a_two_factor_login_asks_for_the_code_without_saying_signed_in(api: Api) -> None:
    data = await api.signed_in()
    await enable_two_factor(api, data["access_token"])

    response = await api.client.post(
        "/auth/login", json={"email": data["user"]["email"], "password": PASSWORD}
    )

    assert response.status_code == 200
    assert response.json()["data"]["two_factor_required"] is True
    assert "Signed in" not in response.json()["message"]


async def test_a_two_factor_challenge_token_works_once(api: Api) -> None:
    data = await api.signed_in()
    secret, recovery_codes = await enable_two_factor(api, data["access_token"])
    challenge = (await start_login(api, data["user"]["email"]))["challenge_token"]

    first, _ = await finish_login(api, challenge, code_at(secret, steps_ahead=1))
    again, body = await finish_login(api, challenge, recovery_codes[0])

    assert first == 200
    assert (again, body["error"]["code"]) == (401, "invalid_challenge_token")


async def test_the_code_that_just_enabled_two_factor_is_refused_with_its_reason(
    api: Api,
) -> None:
    data = await api.signed_in()
    headers = bearer(data["access_token"])
    secret = (await api.client.post("/auth/2fa/setup", headers=headers)).json()["data"]["secret"]
    code = code_at(secret)
    enabled = await api.client.post("/auth/2fa/enable", headers=headers, json={"code": code})
    assert enabled.status_code == 200
    challenge = (await start_login(api, data["user"]["email"]))["challenge_token"]

    status, body = await finish_login(api, challenge, code)

    assert (status, body["error"]["code"]) == (403, "two_factor_code_already_used")


# API keys


async def test_an_expired_key_rolls_over_once(api: Api) -> None:
    data = await api.signed_in()
    headers = bearer(data["access_token"])
    key = (await create_key(api, data["access_token"])).json()["data"]
    async with api.app.state.database.transaction() as session:
        await apikeys.expire(session, uuid.UUID(key["id"]))  # what `coffer keys expire` does
    body = {"expired_key_id": key["id"], "expiry": "1D"}

    expired = await api.client.get("/wallet/balance", headers={"x-api-key": key["api_key"]})
    first = await api.client.post("/keys/rollover", json=body, headers=headers)
    second = await api.client.post("/keys/rollover", json=body, headers=headers)

    assert expired.status_code == 401
    assert first.status_code == 201, first.text
    assert error_of(second) == (409, "key_already_rolled_over")


async def test_a_revoked_key_is_refused_for_being_revoked(api: Api) -> None:
    data = await api.signed_in()
    headers = bearer(data["access_token"])
    key_id = (await create_key(api, data["access_token"])).json()["data"]["id"]
    assert (await api.client.delete(f"/keys/{key_id}", headers=headers)).status_code == 200

    response = await api.client.post(
        "/keys/rollover", json={"expired_key_id": key_id, "expiry": "1D"}, headers=headers
    )

    assert error_of(response) == (400, "key_revoked")


# Sign-in


async def test_an_unverified_phone_signs_nobody_in(api: Api) -> None:
    phone = new_phone()
    await api.sign_up(phone=phone)

    response = await api.client.post("/auth/login", json={"phone": phone, "password": PASSWORD})

    assert error_of(response) == (401, "invalid_credentials")


async def test_an_accounts_email_and_phone_share_one_password_allowance(
    make_api: MakeApi,
) -> None:
    async with make_api(login_rate_limit_per_account="3/minute") as api:
        phone = new_phone()
        data = await api.signed_in(phone=phone)  # one attempt: the sign-in
        assert (await api.verify_phone(data["access_token"], phone)).status_code == 200
        wrong = {"password": "not-the-password-1"}
        by_email = await api.client.post(
            "/auth/login", json={"email": data["user"]["email"]} | wrong
        )
        by_phone = await api.client.post("/auth/login", json={"phone": phone} | wrong)
        last = await api.client.post("/auth/login", json={"phone": phone} | wrong)

    assert [r.status_code for r in (by_email, by_phone, last)] == [401, 401, 429]


async def test_resending_a_code_cannot_hand_out_unlimited_guesses(make_api: MakeApi) -> None:
    async with make_api(
        verification_code_max_sends_per_hour=2, email_rate_limit_per_account="100/hour"
    ) as api:
        _, verification_id = await api.register()
        resend = {"verification_id": verification_id}
        first = await api.client.post("/auth/verify/resend", json=resend)
        capped = await api.client.post("/auth/verify/resend", json=resend)

    assert first.status_code == 202
    assert error_of(capped) == (429, "too_many_codes")


# Refusals that persist


async def test_an_idle_timeout_is_recorded_although_the_request_is_refused(
    make_api: MakeApi,
) -> None:
    async with make_api(session_idle_timeout_seconds=30) as api:
        data = await api.signed_in()
        session_id = decode_token(api.settings, data["access_token"]).session_id
        async with api.app.state.database.transaction() as session:
            await session.execute(
                update(AuthSession)
                .where(AuthSession.id == session_id)
                .values(last_seen_at=utcnow() - timedelta(seconds=31))
            )

        refused = await api.client.get("/me", headers=bearer(data["access_token"]))

        async with api.app.state.database.transaction() as session:
            reason = (
                await session.execute(
                    select(AuthSession.revoke_reason).where(AuthSession.id == session_id)
                )
            ).scalar_one()
    assert error_of(refused) == (401, "session_expired")
    assert reason == "idle_timeout"


# Password hashing outside transactions


async def test_a_login_hashing_its_password_holds_no_write_lock_on_sqlite(
    make_api: MakeApi, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite's database-wide write lock is what a hash could hold")
    async with make_api() as api:
        reader = await api.signed_in()
        entered, release = threading.Event(), threading.Event()
        verify = PasswordHash.verify_and_update

        def held_verify(self: PasswordHash, password: str, hash_: str) -> Any:
            # The real argon2 runs, after the test saw it start and read a balance meanwhile.
            entered.set()
            release.wait(timeout=60)
            return verify(self, password, hash_)

        monkeypatch.setattr(PasswordHash, "verify_and_update", held_verify)
        logins = [
            asyncio.create_task(
                api.client.post(
                    "/auth/login", json={"email": new_email(), "password": "wrong-password-1"}
                )
            )
            for _ in range(3)
        ]
        try:
            assert await asyncio.to_thread(entered.wait, 30)
            # Before: each login held SQLite's write lock (BEGIN IMMEDIATE) while argon2 ran,
            # so this read waited out the 30 s busy timeout behind them.
            balance = await asyncio.wait_for(
                api.client.get("/wallet/balance", headers=bearer(reader["access_token"])),
                timeout=20,
            )
        finally:
            release.set()
        answered = await asyncio.gather(*logins)

    assert balance.status_code == 200
    assert [r.status_code for r in answered] == [401, 401, 401]


async def test_a_balance_read_does_not_queue_behind_a_writer_on_sqlite(
    make_api: MakeApi, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite's database-wide write lock is what a read could wait for")
    async with make_api() as api:
        reader = await api.signed_in()
        async with api.app.state.database.transaction() as writer:
            # A writer holds SQLite's write lock (BEGIN IMMEDIATE) for as long as this block.
            await writer.execute(
                update(AuthSession)
                .where(AuthSession.id == uuid.uuid4())
                .values(revoke_reason="none")
            )
            # Before: every request began with BEGIN IMMEDIATE, so this read waited out the
            # 30 s busy timeout behind the writer.
            balance = await asyncio.wait_for(
                api.client.get("/wallet/balance", headers=bearer(reader["access_token"])),
                timeout=20,
            )

    assert balance.status_code == 200
