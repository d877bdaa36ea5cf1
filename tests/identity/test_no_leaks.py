"""End to end through a running `coffer serve`: every identity flow, then the proof that no
password, hash, code or token shows up in any response but the one that issues it, nor in the
server's output."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyotp
import pytest

from tests.fixtures.identity import PASSWORD, Mailbox, bearer, free_port, new_email
from tests.fixtures.oidc import CLIENT_ID, CLIENT_SECRET, FakeProvider

NEW_PASSWORD = "saffron-tundra-violin-5"
RESET_PASSWORD = "cobalt-meadow-turnip-8"


class Server:
    def __init__(self, base_url: str, process: subprocess.Popen[bytes], output: Path) -> None:
        self.base_url = base_url
        self.process = process
        self.output = output

    def text(self) -> str:
        return self.output.read_text(errors="replace")


@pytest.fixture
def server(
    tmp_path: Path, mailbox: Mailbox, fake_provider_server: FakeProvider
) -> Iterator[Server]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = os.environ | {
        "COFFER_DATABASE_URL": f"sqlite:///{tmp_path / 'e2e.db'}",
        "COFFER_WORKER_MODE": "embedded",
        "COFFER_SMTP_URL": mailbox.url,
        "COFFER_LOG_LEVEL": "DEBUG",
        "COFFER_GOOGLE_CLIENT_ID": CLIENT_ID,
        "COFFER_GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
        "COFFER_GOOGLE_REDIRECT_URI": f"{base_url}/api/v1/auth/google/callback",
        "COFFER_GOOGLE_ISSUER": fake_provider_server.issuer,
    }
    output = tmp_path / "server.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "coffer", "serve", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Server(base_url, process, output)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{server.base_url}/api/v1", timeout=30) as client:
        deadline = time.monotonic() + 90
        while True:
            try:
                if (await client.get(f"{server.base_url}/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.process.poll() is None, server.text()
            assert time.monotonic() < deadline, "the server did not become ready"
            await asyncio.sleep(0.2)  # waiting for a process to boot; nothing else to await
        yield client


class Transcript:
    """Every response body, by step name, and the secrets each step issued."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.responses: dict[str, str] = {}
        self.issued: dict[str, set[str]] = {}

    async def call(self, step: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.client.request(method, path, **kwargs)
        assert response.status_code < 500, (step, response.text)
        self.responses[step] = response.text
        return response

    def issues(self, step: str, *secrets: str) -> None:
        self.issued.setdefault(step, set()).update(secrets)


async def code_from(mailbox: Mailbox, address: str, count: int) -> str:
    return await asyncio.to_thread(mailbox.wait_for_code, address, count)


async def test_no_secret_leaks_into_responses_or_logs(
    server: Server,
    client: httpx.AsyncClient,
    mailbox: Mailbox,
    fake_provider_server: FakeProvider,
    tmp_path: Path,
) -> None:
    t = Transcript(client)
    address = new_email()
    codes: list[str] = []

    response = await t.call(
        "register", "POST", "/auth/register", json={"email": address, "password": PASSWORD}
    )
    verification_id = response.json()["data"]["verification_id"]
    codes.append(await code_from(mailbox, address, 1))
    await t.call(
        "verify",
        "POST",
        "/auth/verify",
        json={"verification_id": verification_id, "code": codes[-1]},
    )

    login = (
        await t.call("login", "POST", "/auth/login", json={"email": address, "password": PASSWORD})
    ).json()["data"]
    t.issues("login", login["access_token"], login["refresh_token"])
    headers = bearer(login["access_token"])
    await t.call("me", "GET", "/me", headers=headers)

    refreshed = (
        await t.call(
            "refresh", "POST", "/auth/token/refresh", json={"refresh_token": login["refresh_token"]}
        )
    ).json()["data"]
    t.issues("refresh", refreshed["access_token"], refreshed["refresh_token"])
    headers = bearer(refreshed["access_token"])

    setup = (await t.call("2fa_setup", "POST", "/auth/2fa/setup", headers=headers)).json()["data"]
    secret = setup["secret"]
    t.issues("2fa_setup", secret)
    totp = pyotp.TOTP(secret)
    enabled = (
        await t.call(
            "2fa_enable", "POST", "/auth/2fa/enable", headers=headers, json={"code": totp.now()}
        )
    ).json()["data"]
    t.issues("2fa_enable", *enabled["recovery_codes"])

    challenge = (
        await t.call(
            "login_challenge", "POST", "/auth/login", json={"email": address, "password": PASSWORD}
        )
    ).json()["data"]
    t.issues("login_challenge", challenge["challenge_token"])
    second = (
        await t.call(
            "login_2fa",
            "POST",
            "/auth/login/2fa",
            json={
                "challenge_token": challenge["challenge_token"],
                "code": totp.at(time.time() + 30),
            },
        )
    ).json()["data"]
    t.issues("login_2fa", second["access_token"], second["refresh_token"])

    await t.call(
        "password_change",
        "POST",
        "/auth/password/change",
        headers=bearer(second["access_token"]),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    await t.call("reset_request", "POST", "/auth/password/reset/request", json={"email": address})
    codes.append(await code_from(mailbox, address, 2))
    await t.call(
        "reset_confirm",
        "POST",
        "/auth/password/reset/confirm",
        json={"email": address, "code": codes[-1], "new_password": RESET_PASSWORD},
    )
    await t.call(
        "wrong_login", "POST", "/auth/login", json={"email": address, "password": PASSWORD}
    )
    await t.call("logout", "POST", "/auth/logout", headers=bearer(second["access_token"]))

    fake_provider_server.claims = {
        "sub": "google-subject-e2e",
        "email": new_email(),
        "email_verified": True,
    }
    start = await t.call("google", "GET", "/auth/google")
    assert start.status_code == 302
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(start.headers["location"])
    callback = urlsplit(consent.headers["location"])
    google = (
        await t.call("google_callback", "GET", f"/auth/google/callback?{callback.query}")
    ).json()["data"]
    t.issues("google_callback", google["access_token"], google["refresh_token"])

    server.process.terminate()
    server.process.wait(timeout=30)
    with sqlite3.connect(tmp_path / "e2e.db") as db:
        stored = [
            value
            for query in (
                "SELECT password_hash FROM users WHERE password_hash IS NOT NULL",
                "SELECT code_hash FROM one_time_codes",
                "SELECT token_hash FROM refresh_tokens",
                "SELECT secret_sealed FROM totp_credentials",
                "SELECT code_hash FROM recovery_codes",
            )
            for (value,) in db.execute(query)
        ]
    assert stored

    log = server.text()
    assert "auth.login_succeeded" in log  # the output really was captured
    never_shown = {PASSWORD, NEW_PASSWORD, RESET_PASSWORD, *codes, *stored}
    for step, body in t.responses.items():
        for value in never_shown:
            assert value not in body, (step, "leaks a secret")
        for issuer, values in t.issued.items():
            if issuer != step:
                assert not any(value in body for value in values), (step, f"shows {issuer}'s")
    every_secret = never_shown | {value for values in t.issued.values() for value in values}
    leaked = [value for value in every_secret if value in log]
    assert not leaked, "a secret reached the server output"
