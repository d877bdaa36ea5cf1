"""Money in and out against a running server (`coffer serve`, SQLite, embedded worker, the
sandbox provider): deposit through the checkout page, withdraw to sandbox bank accounts whose
payouts succeed and whose payouts are reversed, and the ledger verified at the end."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.e2e.test_seed_flow import (  # the seed flow's server harness, reused
    PASSWORD,
    _coffer,
    _login,
    _ok,
    _server,
    server_env,  # noqa: F401 - a fixture
)

POLL_SECONDS = 20


def _settled(
    client: httpx.Client, headers: dict[str, str], reference: str, expected: str
) -> dict[str, Any]:
    """The withdrawal's status once it is `expected` (or whatever it is at the deadline): a
    reversal arrives after the payout's success, so the first settled answer is not the last."""
    deadline = time.monotonic() + POLL_SECONDS
    while True:
        status: dict[str, Any] = _ok(
            client.get(f"/wallet/withdrawals/{reference}/status", headers=headers)
        )
        if status["status"] == expected or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_deposit_and_withdraw_through_the_sandbox(
    server_env: dict[str, str],  # noqa: F811 - the imported fixture
) -> None:
    _coffer(server_env, "migrate")
    out = _coffer(
        server_env,
        "users",
        "create",
        "--email",
        "ada@example.com",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert re.search(r"wallet_number=\d{13}", out), out

    with _server(server_env) as client:
        ada = _login(client, "ada@example.com")
        started = _ok(client.post("/wallet/deposit", json={"amount": "500.00"}, headers=ada), 201)
        root = str(client.base_url.copy_with(path="/")).rstrip("/")
        checkout = root + urlsplit(started["authorization_url"]).path
        assert "500.00 NGN" in client.get(checkout).text
        paid = client.post(f"{checkout}/pay", content=b"", follow_redirects=False)
        assert paid.status_code == 303
        assert _ok(client.get("/wallet/balance", headers=ada))["balance"] == "500.00"

        expected = {"0123456789": "success", "0123459999": "reversed"}
        outcomes = {}
        for account, final in expected.items():
            destination = _ok(
                client.post(
                    "/payout-destinations",
                    json={"bank_code": "001", "account_number": account},
                    headers=ada,
                ),
                201,
            )
            accepted = _ok(
                client.post(
                    "/wallet/withdraw",
                    json={"amount": "100.00", "destination_id": destination["id"]},
                    headers=ada,
                ),
                202,
            )
            outcomes[account] = _settled(client, ada, accepted["reference"], final)["status"]

        assert outcomes == expected
        assert _ok(client.get("/wallet/balance", headers=ada))["balance"] == "400.00"

    _coffer(server_env, "ledger", "verify")
