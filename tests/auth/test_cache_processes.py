"""The auth cache across real API processes (two `coffer serve` on one PostgreSQL database):
a revocation made through one process holds in the other within COFFER_AUTH_CACHE_SECONDS,
and in the one that made it at once; a duplicate Idempotency-Key raced across the two
processes makes one transfer."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from coffer.db import Database
from coffer.models import Transfer
from coffer.settings import Settings
from coffer.transfers.tasks import process_pending
from tests.fixtures.databases import PostgresDatabases
from tests.fixtures.factories import fund, make_user
from tests.fixtures.http import new_session_token

COFFER = str(Path(sys.executable).with_name("coffer"))
SECRET_KEY = "auth-cache-secret-key-with-enough-characters"
BOUND_SECONDS = 2.0
"""COFFER_AUTH_CACHE_SECONDS of both servers: the bound the tests hold them to."""
START_TIMEOUT_SECONDS = 180
"""Generous: two servers start at once on a machine that may be busy."""
RACED_KEYS = 12


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """One `coffer serve` process; jobs run nowhere (the test settles transfers itself)."""

    def __init__(self, environment: dict[str, str]) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [COFFER, "serve", "--port", str(self.port)],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            assert self.process.poll() is None, "coffer serve exited"
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "coffer serve did not become ready"
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def database_url(postgres_databases: PostgresDatabases) -> str:
    return postgres_databases.create()


@pytest.fixture(scope="module")
def servers(database_url: str) -> Iterator[tuple[Server, Server]]:
    environment = {
        **os.environ,
        "COFFER_ENV": "test",
        "COFFER_DATABASE_URL": database_url,
        "COFFER_SECRET_KEY": SECRET_KEY,
        "COFFER_WORKER_MODE": "external",
        "COFFER_AUTH_CACHE_SECONDS": str(BOUND_SECONDS),
        "COFFER_DATABASE_POOL_SIZE": "3",
        "COFFER_LOG_LEVEL": "WARNING",
    }
    pair = (Server(environment), Server(environment))
    try:
        for server in pair:
            server.wait_until_ready()
        yield pair
    finally:
        for server in pair:
            server.stop()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, secret_key=SECRET_KEY)


async def _user_token(settings: Settings, *, fund_minor: int = 0) -> tuple[str, str]:
    """A new user signed in (stepped up just now): (access token, primary wallet number)."""
    database = Database(settings.database_url, pool_size=1)
    try:
        async with database.transaction() as session:
            created = await make_user(session)
            if fund_minor:
                await fund(session, created.primary_wallet, fund_minor)
        token = await new_session_token(database, settings, created.user.id)
    finally:
        await database.dispose()
    return token, created.primary_wallet.number


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _balance(server: Server, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{server.base_url}/api/v1/wallet/balance", headers=headers, timeout=30)


def test_logout_holds_at_once_here_and_within_the_bound_in_the_other_process(
    servers: tuple[Server, Server], settings: Settings
) -> None:
    here, there = servers
    token, _ = asyncio.run(_user_token(settings))
    # Both processes read (and cache) the open session.
    assert _balance(here, _bearer(token)).status_code == 200
    assert _balance(there, _bearer(token)).status_code == 200

    logout = httpx.post(f"{here.base_url}/api/v1/auth/logout", headers=_bearer(token), timeout=30)
    assert logout.status_code == 200, logout.text
    refused_here = _balance(here, _bearer(token))
    assert refused_here.status_code == 401
    assert refused_here.json()["error"]["code"] == "session_expired"

    # Whatever the other process cached was read before the logout: past the bound it reads
    # the session again and finds it revoked.
    time.sleep(BOUND_SECONDS + 0.5)
    refused_there = _balance(there, _bearer(token))
    assert refused_there.status_code == 401
    assert refused_there.json()["error"]["code"] == "session_expired"


def test_revoked_api_key_holds_at_once_here_and_within_the_bound_in_the_other_process(
    servers: tuple[Server, Server], settings: Settings
) -> None:
    here, there = servers
    token, _ = asyncio.run(_user_token(settings))
    created = httpx.post(
        f"{here.base_url}/api/v1/keys/create",
        json={"name": "cache", "permissions": ["read"], "expiry": "1D"},
        headers={**_bearer(token), "Idempotency-Key": uuid.uuid4().hex},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    key = created.json()["data"]
    key_headers = {"x-api-key": key["api_key"]}
    assert _balance(here, key_headers).status_code == 200
    assert _balance(there, key_headers).status_code == 200

    revoked = httpx.delete(
        f"{here.base_url}/api/v1/keys/{key['id']}",
        headers={**_bearer(token), "Idempotency-Key": uuid.uuid4().hex},
        timeout=30,
    )
    assert revoked.status_code == 200, revoked.text
    refused_here = _balance(here, key_headers)
    assert refused_here.status_code == 401
    assert refused_here.json()["error"]["code"] == "api_key_revoked"

    time.sleep(BOUND_SECONDS + 0.5)
    refused_there = _balance(there, key_headers)
    assert refused_there.status_code == 401
    assert refused_there.json()["error"]["code"] == "api_key_revoked"


async def _race(
    servers: tuple[Server, Server], token: str, recipient: str, key: str
) -> list[httpx.Response]:
    """The same request with the same key, sent to both processes at once."""
    async with httpx.AsyncClient(timeout=60) as client:
        return list(
            await asyncio.gather(
                *(
                    client.post(
                        f"{server.base_url}/api/v1/wallet/transfer",
                        json={"wallet_number": recipient, "amount": "1.00"},
                        headers={**_bearer(token), "Idempotency-Key": key},
                    )
                    for server in servers
                )
            )
        )


async def _transfers_with_keys(settings: Settings, keys: list[str]) -> int:
    database = Database(settings.database_url, pool_size=1)
    try:
        await process_pending(database, 100)
        async with database.transaction() as session:
            found = await session.scalar(
                select(func.count()).select_from(Transfer).where(Transfer.idempotency_key.in_(keys))
            )
    finally:
        await database.dispose()
    return int(found or 0)


def test_a_key_raced_across_two_processes_makes_one_transfer(
    servers: tuple[Server, Server], settings: Settings
) -> None:
    token, sender_wallet = asyncio.run(_user_token(settings, fund_minor=1_000_000))
    _, recipient = asyncio.run(_user_token(settings))
    keys = [uuid.uuid4().hex for _ in range(RACED_KEYS)]
    for key in keys:
        responses = asyncio.run(_race(servers, token, recipient, key))
        accepted = [r for r in responses if r.status_code == 202]
        # The loser waits on the key's unique index and answers from the winner's transfer;
        # at worst it is told the key is still in use. Never a second transfer.
        assert accepted, [r.text for r in responses]
        assert all(r.status_code in (202, 409) for r in responses), [r.text for r in responses]
        assert len({r.json()["data"]["reference"] for r in accepted}) == 1
        if len(accepted) == 2:
            assert sorted(r.headers.get("idempotent-replayed", "") for r in accepted) == [
                "",
                "true",
            ]
    assert asyncio.run(_transfers_with_keys(settings, keys)) == RACED_KEYS
    # One debit per key, once settled.
    balance = _balance(servers[0], _bearer(token)).json()["data"]
    assert balance["wallet_number"] == sender_wallet
    assert balance["balance"] == f"{10_000 - RACED_KEYS}.00"
