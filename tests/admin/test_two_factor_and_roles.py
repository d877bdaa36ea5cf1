"""2FA around admins (the code on every mutation; the reset of a user's stolen device) and the
last admin who keeps the role."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from coffer.admin import users
from coffer.admin.users import LastAdmin
from coffer.db import Database
from coffer.identity.service import create_user
from coffer.models import Role
from tests.admin.conftest import person
from tests.admin.test_admin_api import admin_routes
from tests.fixtures.identity import Api, new_email
from tests.identity.test_two_factor import code_at, enable_two_factor


async def test_an_admin_with_two_factor_needs_a_code_for_every_mutating_route(api: Api) -> None:
    user = await person(api, fund_minor=10_000)
    admin = await person(api, role=Role.ADMIN)
    secret, _ = await enable_two_factor(api, admin.access_token)

    for method, path, body in admin_routes(user.user_id, user.wallet_number):
        response = await api.client.request(method, path, json=body, headers=admin.headers)
        if method == "GET":
            assert response.status_code == 200, (path, response.text)
        else:
            assert response.json()["error"]["code"] == "two_factor_required", path

    frozen = await api.client.post(
        f"/admin/wallets/{user.wallet_number}/freeze",
        json={"reason": "checked with a code"},
        headers={**admin.headers, "X-2FA-Code": code_at(secret, steps_ahead=1)},
    )
    assert frozen.json()["data"]["status"] == "frozen", frozen.text


async def test_reset_2fa_clears_the_second_factor_and_ends_every_session_and_key(
    api: Api,
) -> None:
    user = await person(api)
    admin = await person(api, role=Role.ADMIN)
    await enable_two_factor(api, user.access_token)
    key = await api.client.post(
        "/keys/create",
        json={"name": "bot", "permissions": ["read"], "expiry": "1D"},
        headers=user.headers,
    )
    key_headers = {"x-api-key": key.json()["data"]["api_key"]}

    reset = await api.client.post(
        f"/admin/users/{user.user_id}/reset-2fa",
        json={"reason": "phone stolen, identity checked"},
        headers=admin.headers,
    )
    assert reset.status_code == 200, reset.text

    assert (await api.client.get("/wallet/balance", headers=user.headers)).status_code == 401
    assert (await api.client.get("/wallet/balance", headers=key_headers)).status_code == 401
    signed_in = await api.login(user.email)
    assert "access_token" in signed_in  # no 2FA challenge any more
    detail = await api.client.get(f"/admin/users/{user.user_id}", headers=admin.headers)
    assert detail.json()["data"]["two_factor_enabled"] is False

    await api.deliver_email()
    subjects = [str(m["Subject"]) for m in api.mailbox.to(user.email)]
    assert subjects.count("Two-factor authentication changed") == 2  # on, then reset
    events = await api.client.get(f"/admin/audit?user_id={user.user_id}", headers=admin.headers)
    actions = [e["action"] for e in events.json()["data"]["events"]]
    assert "admin.two_factor_reset" in actions
    assert "auth.two_factor_enabled" in actions


async def test_the_last_admin_keeps_the_role_and_stays_active(
    backend: str, fresh_database_url: Callable[..., str]
) -> None:
    database = Database(fresh_database_url(), pool_size=2)
    try:
        async with database.transaction() as session:
            first = (
                await create_user(
                    session, email=new_email(), password=None, currency="NGN", role=Role.ADMIN
                )
            ).user
            second = (
                await create_user(
                    session, email=new_email(), password=None, currency="NGN", role=Role.ADMIN
                )
            ).user
        async with database.transaction() as session:
            await users.set_role(session, second.id, Role.USER, actor="cli:test", reason="left")
        for demote in (
            lambda s: users.set_role(s, first.id, Role.USER, actor="cli:test", reason="oops"),
            lambda s: users.set_active(s, first.id, active=False, actor="cli:test", reason="x"),
        ):
            with pytest.raises(LastAdmin):
                async with database.transaction() as session:
                    await demote(session)
        async with database.transaction() as session:
            assert (await users.get_user(session, first.id)).role == Role.ADMIN
            with pytest.raises(users.UserNotFound):
                await users.get_user(session, uuid.uuid4())
    finally:
        await database.dispose()
