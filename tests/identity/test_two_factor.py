"""TOTP 2FA: setup, enable, the login challenge, recovery codes, disable, and the X-2FA-Code
dependency for sensitive actions."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pyotp
from fastapi import APIRouter
from sqlalchemy import select

from coffer.auth.two_factor import SecondFactor
from coffer.models import RecoveryCode, TotpCredential
from coffer.schemas import Envelope
from tests.fixtures.identity import PASSWORD, Api, bearer

STEP_SECONDS = 30


def code_at(secret: str, steps_ahead: int = 0) -> str:
    """A valid code; `steps_ahead=1` is the next step's, also accepted now (one step of drift)."""
    return pyotp.TOTP(secret).at(time.time() + steps_ahead * STEP_SECONDS)


async def enable_two_factor(api: Api, access_token: str) -> tuple[str, list[str]]:
    headers = bearer(access_token)
    setup = await api.client.post("/auth/2fa/setup", headers=headers)
    assert setup.status_code == 200, setup.text
    secret = setup.json()["data"]["secret"]
    enabled = await api.client.post(
        "/auth/2fa/enable", headers=headers, json={"code": code_at(secret)}
    )
    assert enabled.status_code == 200, enabled.text
    return secret, enabled.json()["data"]["recovery_codes"]


async def start_login(api: Api, address: str) -> dict[str, Any]:
    response = await api.client.post("/auth/login", json={"email": address, "password": PASSWORD})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def finish_login(api: Api, challenge: str, code: str) -> tuple[int, dict[str, Any]]:
    response = await api.client.post(
        "/auth/login/2fa", json={"challenge_token": challenge, "code": code}
    )
    return response.status_code, response.json()


async def test_setup_gives_a_secret_uri_and_qr_and_enable_turns_it_on(api: Api) -> None:
    data = await api.signed_in()
    headers = bearer(data["access_token"])
    setup = (await api.client.post("/auth/2fa/setup", headers=headers)).json()["data"]
    assert setup["otpauth_uri"].startswith("otpauth://totp/coffer:")
    assert f"secret={setup['secret']}" in setup["otpauth_uri"]
    assert setup["qr_svg"].lstrip().startswith("<svg")

    me = (await api.client.get("/me", headers=headers)).json()["data"]
    assert me["two_factor_enabled"] is False

    wrong = await api.client.post("/auth/2fa/enable", headers=headers, json={"code": "000000"})
    if code_at(setup["secret"]) != "000000":
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (
            403,
            "invalid_two_factor_code",
        )
    enabled = await api.client.post(
        "/auth/2fa/enable", headers=headers, json={"code": code_at(setup["secret"])}
    )
    codes = enabled.json()["data"]["recovery_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    me = (await api.client.get("/me", headers=headers)).json()["data"]
    assert me["two_factor_enabled"] is True

    again = await api.client.post("/auth/2fa/setup", headers=headers)
    assert (again.status_code, again.json()["error"]["code"]) == (
        409,
        "two_factor_already_enabled",
    )


async def test_secrets_and_recovery_codes_are_not_stored_in_the_clear(api: Api) -> None:
    data = await api.signed_in()
    secret, codes = await enable_two_factor(api, data["access_token"])
    user_id = uuid.UUID(data["user"]["id"])
    async with api.app.state.database.transaction() as session:
        sealed = (
            await session.execute(
                select(TotpCredential.secret_sealed).where(TotpCredential.user_id == user_id)
            )
        ).scalar_one()
        hashes = list(
            (
                await session.execute(
                    select(RecoveryCode.code_hash).where(RecoveryCode.user_id == user_id)
                )
            ).scalars()
        )
    assert secret not in sealed
    assert len(hashes) == 10
    assert not {code.replace("-", "") for code in codes} & set(hashes)


async def test_login_with_2fa_needs_the_code_step(api: Api) -> None:
    data = await api.signed_in()
    secret, _ = await enable_two_factor(api, data["access_token"])
    started = await start_login(api, data["user"]["email"])
    assert started == {
        "two_factor_required": True,
        "challenge_token": started["challenge_token"],
        "expires_in": 300,
    }
    assert "access_token" not in started

    # The code used to enable 2FA is spent (and said so); the next step's code is good once.
    # The step before now is at or before the enabling one, even across a 30-second boundary.
    status, body = await finish_login(api, started["challenge_token"], code_at(secret, -1))
    assert (status, body["error"]["code"]) == (403, "two_factor_code_already_used")
    # One code, computed once: computed again after a 30-second boundary it would be the next
    # step's, which nobody has spent.
    next_code = code_at(secret, 1)
    status, body = await finish_login(api, started["challenge_token"], next_code)
    assert status == 200, body
    tokens = body["data"]
    me = await api.client.get("/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200

    again = await start_login(api, data["user"]["email"])
    status, body = await finish_login(api, again["challenge_token"], next_code)
    assert (status, body["error"]["code"]) == (403, "two_factor_code_already_used")


async def test_a_challenge_token_is_not_an_access_token(api: Api) -> None:
    data = await api.signed_in()
    await enable_two_factor(api, data["access_token"])
    started = await start_login(api, data["user"]["email"])
    me = await api.client.get("/me", headers=bearer(started["challenge_token"]))
    assert (me.status_code, me.json()["error"]["code"]) == (401, "invalid_token")
    status, body = await finish_login(api, data["access_token"], "123456")
    assert (status, body["error"]["code"]) == (401, "invalid_challenge_token")


async def test_a_recovery_code_signs_in_once(api: Api) -> None:
    data = await api.signed_in()
    _, codes = await enable_two_factor(api, data["access_token"])
    started = await start_login(api, data["user"]["email"])
    status, _ = await finish_login(api, started["challenge_token"], codes[0].lower())
    assert status == 200
    # Each sign-in needs its own challenge (a challenge works once).
    again = await start_login(api, data["user"]["email"])
    status, body = await finish_login(api, again["challenge_token"], codes[0])
    assert (status, body["error"]["code"]) == (403, "invalid_two_factor_code")
    status, _ = await finish_login(api, again["challenge_token"], codes[1])
    assert status == 200


async def test_disable_needs_password_and_code(api: Api) -> None:
    data = await api.signed_in()
    headers = bearer(data["access_token"])
    secret, codes = await enable_two_factor(api, data["access_token"])
    wrong_password = await api.client.post(
        "/auth/2fa/disable",
        headers=headers,
        json={"password": "wrong-password-7", "code": code_at(secret, 1)},
    )
    assert wrong_password.json()["error"]["code"] == "invalid_password"
    wrong_code = await api.client.post(
        "/auth/2fa/disable", headers=headers, json={"password": PASSWORD, "code": "ZZZZZ-ZZZZZ"}
    )
    assert wrong_code.json()["error"]["code"] == "invalid_two_factor_code"
    disabled = await api.client.post(
        "/auth/2fa/disable", headers=headers, json={"password": PASSWORD, "code": codes[3]}
    )
    assert disabled.status_code == 200
    login = await start_login(api, data["user"]["email"])
    assert "access_token" in login
    again = await api.client.post(
        "/auth/2fa/disable", headers=headers, json={"password": PASSWORD, "code": codes[4]}
    )
    assert (again.status_code, again.json()["error"]["code"]) == (409, "two_factor_not_enabled")


async def test_enable_without_setup_is_refused(api: Api) -> None:
    data = await api.signed_in()
    response = await api.client.post(
        "/auth/2fa/enable", headers=bearer(data["access_token"]), json={"code": "123456"}
    )
    assert (response.status_code, response.json()["error"]["code"]) == (
        409,
        "two_factor_not_set_up",
    )


def mount_sensitive_route(api: Api) -> None:
    """A stand-in for a withdrawal: a route guarded by the real dependency."""
    router = APIRouter()

    @router.post("/api/v1/test-sensitive")
    async def sensitive(principal: SecondFactor) -> Envelope[str]:
        return Envelope(data=str(principal.user_id))

    api.app.include_router(router)


async def test_sensitive_actions_need_a_fresh_code_when_2fa_is_on(api: Api) -> None:
    mount_sensitive_route(api)
    data = await api.signed_in()
    headers = bearer(data["access_token"])

    without_2fa = await api.client.post("/test-sensitive", headers=headers)
    assert without_2fa.status_code == 200

    secret, codes = await enable_two_factor(api, data["access_token"])
    missing = await api.client.post("/test-sensitive", headers=headers)
    assert (missing.status_code, missing.json()["error"]["code"]) == (403, "two_factor_required")

    # The step before now is at or before the one that turned 2FA on, even when a 30-second
    # boundary passed since (the current step's code would then be a fresh one).
    spent = await api.client.post(
        "/test-sensitive", headers=headers | {"X-2FA-Code": code_at(secret, -1)}
    )
    assert (spent.status_code, spent.json()["error"]["code"]) == (
        403,
        "two_factor_code_already_used",
    )

    fresh = code_at(secret, 1)
    ok = await api.client.post("/test-sensitive", headers=headers | {"X-2FA-Code": fresh})
    assert ok.status_code == 200
    replayed = await api.client.post("/test-sensitive", headers=headers | {"X-2FA-Code": fresh})
    assert (replayed.status_code, replayed.json()["error"]["code"]) == (
        403,
        "two_factor_code_already_used",
    )
    recovery = await api.client.post("/test-sensitive", headers=headers | {"X-2FA-Code": codes[0]})
    assert recovery.status_code == 403
