"""Sessions: refresh rotation and reuse, logout, password change, idle timeout, deactivation."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from coffer.auth.cache import CACHE
from coffer.identity.service import set_active
from coffer.identity.tokens import decode_token, issue_access_token
from coffer.kit.clock import utcnow
from coffer.models import AuthSession, RefreshToken
from tests.fixtures.identity import PASSWORD, Api, MakeApi, bearer

NEW_PASSWORD = "quince-harbour-abacus-7"


async def refresh(api: Api, token: str) -> tuple[int, dict[str, Any]]:
    response = await api.client.post("/auth/token/refresh", json={"refresh_token": token})
    return response.status_code, response.json()


async def me_status(api: Api, access_token: str) -> tuple[int, str | None]:
    response = await api.client.get("/me", headers=bearer(access_token))
    body = response.json()
    return response.status_code, (body.get("error") or {}).get("code")


async def test_refresh_rotates_tokens(api: Api) -> None:
    first = await api.signed_in()
    status, body = await refresh(api, first["refresh_token"])
    assert status == 200
    second = body["data"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["expires_in"] == 900
    assert await me_status(api, second["access_token"]) == (200, None)
    status, body = await refresh(api, second["refresh_token"])
    assert status == 200


async def test_refresh_tokens_are_stored_hashed(api: Api) -> None:
    data = await api.signed_in()
    session_id = decode_token(api.settings, data["access_token"]).session_id
    async with api.app.state.database.transaction() as session:
        hashes = (
            await session.execute(
                select(RefreshToken.token_hash).where(RefreshToken.session_id == session_id)
            )
        ).scalars()
        stored = list(hashes)
    assert stored
    assert data["refresh_token"] not in stored


async def test_reusing_a_refresh_token_revokes_the_whole_family(api: Api) -> None:
    first = await api.signed_in()
    _, body = await refresh(api, first["refresh_token"])
    rotated = body["data"]

    status, body = await refresh(api, first["refresh_token"])
    assert (status, body["error"]["code"]) == (401, "refresh_token_reused")

    # The thief's and the owner's latest tokens are all dead now.
    status, body = await refresh(api, rotated["refresh_token"])
    assert (status, body["error"]["code"]) == (401, "invalid_refresh_token")
    assert await me_status(api, rotated["access_token"]) == (401, "session_expired")
    assert await me_status(api, first["access_token"]) == (401, "session_expired")

    # Other sessions of the same user are untouched.
    other = await api.login(first["user"]["email"])
    assert await me_status(api, other["access_token"]) == (200, None)


async def test_an_unknown_refresh_token_is_refused(api: Api) -> None:
    status, body = await refresh(api, "x" * 43)
    assert (status, body["error"]["code"]) == (401, "invalid_refresh_token")
    status, body = await refresh(api, "")
    assert (status, body["error"]["code"]) == (422, "validation_error")


async def test_access_is_refused_after_logout(api: Api) -> None:
    data = await api.signed_in()
    response = await api.client.post("/auth/logout", headers=bearer(data["access_token"]))
    assert response.status_code == 200
    assert await me_status(api, data["access_token"]) == (401, "session_expired")
    status, body = await refresh(api, data["refresh_token"])
    assert (status, body["error"]["code"]) == (401, "invalid_refresh_token")


async def test_password_change_ends_the_other_sessions(api: Api) -> None:
    address = await api.sign_up()
    here = await api.login(address)
    elsewhere = await api.login(address)
    response = await api.client.post(
        "/auth/password/change",
        headers=bearer(here["access_token"]),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 200, response.text
    assert await me_status(api, here["access_token"]) == (200, None)
    assert await me_status(api, elsewhere["access_token"]) == (401, "session_expired")
    assert (await refresh(api, elsewhere["refresh_token"]))[0] == 401

    old = await api.client.post("/auth/login", json={"email": address, "password": PASSWORD})
    assert old.status_code == 401
    await api.login(address, NEW_PASSWORD)


async def test_password_change_needs_the_current_password_and_a_strong_new_one(
    api: Api,
) -> None:
    data = await api.signed_in()
    headers = bearer(data["access_token"])
    wrong = await api.client.post(
        "/auth/password/change",
        headers=headers,
        json={"current_password": "not-my-password-9", "new_password": NEW_PASSWORD},
    )
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (403, "invalid_password")
    weak = await api.client.post(
        "/auth/password/change",
        headers=headers,
        json={"current_password": PASSWORD, "new_password": "password123"},
    )
    assert (weak.status_code, weak.json()["error"]["code"]) == (422, "weak_password")
    assert await me_status(api, data["access_token"]) == (200, None)


async def test_an_idle_session_is_logged_out(make_api: MakeApi) -> None:
    async with make_api(session_idle_timeout_seconds=30) as api:
        data = await api.signed_in()
        session_id = decode_token(api.settings, data["access_token"]).session_id
        assert await me_status(api, data["access_token"]) == (200, None)
        async with api.app.state.database.transaction() as session:
            await session.execute(
                update(AuthSession)
                .where(AuthSession.id == session_id)
                .values(last_seen_at=utcnow() - timedelta(seconds=31))
            )
        # Going idle takes the idle time itself, far past the auth cache's bound; backdating
        # the row by hand does not, so drop what the request above cached.
        CACHE.clear()
        assert await me_status(api, data["access_token"]) == (401, "session_expired")
        # That refusal revoked the session, so its refresh token is dead too.
        status, body = await refresh(api, data["refresh_token"])
        assert (status, body["error"]["code"]) == (401, "invalid_refresh_token")
        async with api.app.state.database.transaction() as session:
            reason = (
                await session.execute(
                    select(AuthSession.revoke_reason).where(AuthSession.id == session_id)
                )
            ).scalar_one()
        assert reason == "idle_timeout"


async def test_an_active_session_is_not_idle(make_api: MakeApi) -> None:
    async with make_api(session_idle_timeout_seconds=30) as api:
        data = await api.signed_in()
        session_id = decode_token(api.settings, data["access_token"]).session_id
        async with api.app.state.database.transaction() as session:
            await session.execute(
                update(AuthSession)
                .where(AuthSession.id == session_id)
                .values(last_seen_at=utcnow() - timedelta(seconds=25))
            )
        assert await me_status(api, data["access_token"]) == (200, None)


async def test_an_expired_or_forged_access_token_is_refused(api: Api) -> None:
    data = await api.signed_in()
    claims = decode_token(api.settings, data["access_token"])
    expired, _ = issue_access_token(
        api.settings,
        user_id=claims.user_id,
        session_id=claims.session_id,
        role="user",
        now=utcnow() - timedelta(hours=1),
    )
    assert await me_status(api, expired) == (401, "invalid_token")
    forged, _ = issue_access_token(
        api.settings.model_copy(update={"jwt_keys": {"default": SecretStr("guessed")}}),
        user_id=claims.user_id,
        session_id=claims.session_id,
        role="admin",
    )
    assert await me_status(api, forged) == (401, "invalid_token")
    assert await me_status(api, "not.a.jwt") == (401, "invalid_token")
    other_session, _ = issue_access_token(
        api.settings, user_id=claims.user_id, session_id=uuid.uuid4(), role="user"
    )
    assert await me_status(api, other_session) == (401, "invalid_token")
    response = await api.client.get("/me")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "not_authenticated")


PROTECTED = [
    ("GET", "/me", None),
    ("PATCH", "/me", {"first_name": "X"}),
    ("POST", "/me/deactivate", {"password": PASSWORD}),
    ("POST", "/auth/logout", None),
    ("POST", "/auth/password/change", {"current_password": PASSWORD, "new_password": "a" * 20}),
    ("POST", "/auth/2fa/setup", None),
    ("POST", "/auth/2fa/enable", {"code": "123456"}),
    ("POST", "/auth/2fa/disable", {"password": PASSWORD, "code": "123456"}),
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
async def test_every_protected_route_needs_a_token(
    api: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = await api.client.request(method, path, json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "not_authenticated")


async def test_a_deactivated_user_is_refused_everywhere_until_reactivated(api: Api) -> None:
    address = await api.sign_up()
    data = await api.login(address)
    other = await api.login(address)
    wrong = await api.client.post(
        "/me/deactivate", headers=bearer(data["access_token"]), json={"password": "nope-nope-12"}
    )
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (403, "invalid_password")

    response = await api.client.post(
        "/me/deactivate", headers=bearer(data["access_token"]), json={"password": PASSWORD}
    )
    assert response.status_code == 200

    for token in (data["access_token"], other["access_token"]):
        for method, path, body in PROTECTED:
            refused = await api.client.request(method, path, json=body, headers=bearer(token))
            assert refused.status_code in (401, 403), (path, refused.text)
            assert refused.json()["error"]["code"] in ("session_expired", "account_inactive")
    assert (await refresh(api, other["refresh_token"]))[0] == 401

    login = await api.client.post("/auth/login", json={"email": address, "password": PASSWORD})
    assert (login.status_code, login.json()["error"]["code"]) == (403, "account_inactive")
    bad = await api.client.post("/auth/login", json={"email": address, "password": "x" * 12})
    assert (bad.status_code, bad.json()["error"]["code"]) == (401, "invalid_credentials")

    async with api.app.state.database.transaction() as session:
        await set_active(session, address, active=True)
    again = await api.login(address)
    assert await me_status(api, again["access_token"]) == (200, None)
    assert await me_status(api, data["access_token"]) == (401, "session_expired")


async def test_deactivation_revokes_every_api_key_for_good(api: Api) -> None:
    address = await api.sign_up()
    data = await api.login(address)
    created = await api.client.post(
        "/keys/create",
        headers=bearer(data["access_token"]),
        json={"name": "bot", "permissions": ["read"], "expiry": "1D"},
    )
    assert created.status_code == 201
    key = {"x-api-key": created.json()["data"]["api_key"]}
    assert (await api.client.get("/wallet/balance", headers=key)).status_code == 200

    response = await api.client.post(
        "/me/deactivate", headers=bearer(data["access_token"]), json={"password": PASSWORD}
    )
    assert response.status_code == 200
    async with api.app.state.database.transaction() as session:
        await set_active(session, address, active=True)

    refused = await api.client.get("/wallet/balance", headers=key)
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "api_key_revoked")
