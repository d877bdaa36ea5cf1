"""The seed flow end to end against a running server (`coffer serve` in a subprocess).

Log in, create a key, check the balance, transfer by wallet number and by email, poll the
status, read both sides' history, roll over an expired key and revoke it. The clock is
controlled through COFFER_CLOCK_OFFSET_SECONDS: the server first runs two hours in the past,
then restarts on the real clock, and the one-hour key it issued has expired.

Sign-in (`POST /api/v1/auth/login`) comes from the identity work.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

COFFER = str(Path(sys.executable).parent / "coffer")
PASSWORD = "correct horse battery staple"
START_TIMEOUT_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _coffer(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [COFFER, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@contextmanager
def _server(env: dict[str, str]) -> Iterator[httpx.Client]:
    port = _free_port()
    process = subprocess.Popen(
        [COFFER, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=20) as client:
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            while True:
                assert process.poll() is None, "coffer serve exited"
                try:
                    if client.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "coffer serve did not become ready"
                time.sleep(0.1)
            yield client
    finally:
        process.terminate()
        process.wait(timeout=20)


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


def _login(client: httpx.Client, email: str) -> dict[str, str]:
    data = _ok(client.post("/auth/login", json={"email": email, "password": PASSWORD}))
    return {"Authorization": f"Bearer {data['access_token']}"}


@pytest.fixture
def server_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "COFFER_ENV": "test",
        "COFFER_DATABASE_URL": f"sqlite:///{tmp_path / 'coffer.db'}",
        "COFFER_WORKER_MODE": "embedded",
        "COFFER_LOG_JSON": "true",
        "COFFER_SECRET_KEY": "e2e-secret-key-with-enough-characters-1234",
        "COFFER_CLOCK_OFFSET_SECONDS": "0",
    }


def test_seed_flow_against_a_running_server(server_env: dict[str, str]) -> None:
    _coffer(server_env, "migrate")
    wallets = {}
    for email, name in (("ada@example.com", "Ada Lovelace"), ("bob@example.com", "Bob Babbage")):
        out = _coffer(
            server_env,
            "users",
            "create",
            "--email",
            email,
            "--password-stdin",
            "--name",
            name,
            stdin=f"{PASSWORD}\n",
        )
        match = re.search(r"wallet_number=(\d{13})", out)
        assert match, out
        wallets[email] = match.group(1)
    _coffer(
        server_env,
        "wallets",
        "credit",
        "--wallet",
        wallets["ada@example.com"],
        "--amount",
        "100.00",
        "--reason",
        "e2e opening balance",
    )

    past = {**server_env, "COFFER_CLOCK_OFFSET_SECONDS": str(-2 * 3600)}
    with _server(past) as client:
        ada = _login(client, "ada@example.com")
        created = _ok(
            client.post(
                "/keys/create",
                json={"name": "e2e", "permissions": ["read", "transfer"], "expiry": "1H"},
                headers=ada,
            ),
            201,
        )
        key = {"x-api-key": created["api_key"]}
        balance = _ok(client.get("/wallet/balance", headers=key))
        assert balance == {
            "balance": "100.00",
            "currency": "NGN",
            "wallet_number": wallets["ada@example.com"],
        }

        references = []
        for recipient in (
            {"wallet_number": wallets["bob@example.com"]},
            {"email": "bob@example.com"},
        ):
            accepted = _ok(
                client.post("/wallet/transfer", json={**recipient, "amount": "12.50"}, headers=key),
                202,
            )
            references.append(accepted["reference"])
        for reference in references:
            status = _ok(
                client.get(
                    f"/wallet/transfer/{reference}/status",
                    headers={**key, "Prefer": "wait=10"},
                )
            )
            assert status["status"] == "completed", status
            assert status["recipient_wallet"] == wallets["bob@example.com"]

        sent = _ok(client.get("/wallet/transactions", headers=key))["transactions"]
        assert {(t["reference"], t["type"]) for t in sent} >= {
            (r, "transfer_out") for r in references
        }
        bob = _login(client, "bob@example.com")
        received = _ok(client.get("/wallet/transactions", headers=bob))["transactions"]
        assert {(t["reference"], t["type"]) for t in received} == {
            (r, "transfer_in") for r in references
        }
        assert _ok(client.get("/wallet/balance", headers=bob))["balance"] == "25.00"

    with _server(server_env) as client:
        ada = _login(client, "ada@example.com")
        expired = client.get("/wallet/balance", headers=key)
        assert expired.status_code == 401
        assert expired.json()["error"]["code"] == "api_key_expired"
        rolled = _ok(
            client.post(
                "/keys/rollover",
                json={"expired_key_id": created["id"], "expiry": "1D"},
                headers=ada,
            ),
            201,
        )
        assert (rolled["name"], rolled["permissions"]) == ("e2e", ["read", "transfer"])
        new_key = {"x-api-key": rolled["api_key"]}
        assert _ok(client.get("/wallet/balance", headers=new_key))["balance"] == "75.00"

        _ok(client.delete(f"/keys/{rolled['id']}", headers=ada))
        revoked = client.get("/wallet/balance", headers=new_key)
        assert revoked.status_code == 401
        assert revoked.json()["error"]["code"] == "api_key_revoked"
        statuses = {k["id"]: k["status"] for k in _ok(client.get("/keys", headers=ada))["keys"]}
        assert statuses == {created["id"]: "expired", rolled["id"]: "revoked"}

    _coffer(server_env, "ledger", "verify")
