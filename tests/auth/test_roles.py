"""Roles on the principal: `coffer users create --admin` makes an admin the admin dependency
accepts; ordinary users are refused. Also `coffer users reactivate`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fastapi import APIRouter
from sqlalchemy import select

from coffer.auth.principal import AdminPrincipal
from coffer.models import User
from coffer.schemas import Envelope
from tests.fixtures.identity import PASSWORD, MakeApi, bearer, new_email

COFFER = str(Path(sys.executable).with_name("coffer"))


def coffer(
    database_url: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"COFFER_DATABASE_URL": database_url}
    return subprocess.run(
        [COFFER, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_users_create_admin_makes_a_verified_admin(
    make_api: MakeApi, database_url: str
) -> None:
    address = new_email()
    done = coffer(
        database_url,
        "users",
        "create",
        "--email",
        address,
        "--password-stdin",
        "--admin",
        stdin=f"{PASSWORD}\n",
    )
    assert done.returncode == 0, done.stderr
    assert "wallet_number=" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr

    async with make_api() as api:
        router = APIRouter()

        @router.get("/api/v1/test-admin")
        async def admin_only(principal: AdminPrincipal) -> Envelope[str]:
            return Envelope(data=principal.role)

        api.app.include_router(router)
        admin = await api.login(address)
        assert admin["user"]["role"] == "admin"
        allowed = await api.client.get("/test-admin", headers=bearer(admin["access_token"]))
        assert allowed.json()["data"] == "admin"

        user = await api.signed_in()
        refused = await api.client.get("/test-admin", headers=bearer(user["access_token"]))
        assert (refused.status_code, refused.json()["error"]["code"]) == (
            403,
            "permission_denied",
        )
        async with api.app.state.database.transaction() as session:
            row = (await session.execute(select(User).where(User.email == address))).scalar_one()
        assert row.is_verified


async def test_users_reactivate_lets_a_deactivated_user_back_in(
    make_api: MakeApi, database_url: str
) -> None:
    async with make_api() as api:
        data = await api.signed_in()
        address = data["user"]["email"]
        await api.client.post(
            "/me/deactivate", headers=bearer(data["access_token"]), json={"password": PASSWORD}
        )
        refused = await api.client.post(
            "/auth/login", json={"email": address, "password": PASSWORD}
        )
        assert refused.status_code == 403
        done = coffer(database_url, "users", "reactivate", "--email", address)
        assert done.returncode == 0, done.stderr
        await api.login(address)
