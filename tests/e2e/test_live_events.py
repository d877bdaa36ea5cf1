"""The websocket in the embedded shape: one `coffer serve` on SQLite, no Redis. The transfer
settles in the API process's own job runner, whose commit wakes the process's hub in-process
(the table poll is set to a minute, so a prompt event came through the wake-up)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.e2e.test_seed_flow import (  # the seed flow's server harness, reused
    PASSWORD,
    _coffer,
    _login,
    _ok,
    _server,
    server_env,  # noqa: F401 - a fixture
)

WAIT_SECONDS = 45


@pytest.fixture
def live_env(server_env: dict[str, str]) -> dict[str, str]:  # noqa: F811 - the imported fixture
    return server_env | {"COFFER_EVENTS_POLL_INTERVAL_SECONDS": "60"}


def _event(socket: ClientConnection) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(socket.recv(timeout=WAIT_SECONDS))
        if message["type"] != "heartbeat":
            return message


def test_an_embedded_server_streams_a_settled_transfer(live_env: dict[str, str]) -> None:
    _coffer(live_env, "migrate")
    wallets = {}
    for email in ("ada@example.com", "bob@example.com"):
        out = _coffer(
            live_env, "users", "create", "--email", email, "--password-stdin", stdin=PASSWORD + "\n"
        )
        wallets[email] = out.split("wallet_number=")[1].split()[0]
    _coffer(
        live_env,
        "wallets",
        "credit",
        "--wallet",
        wallets["ada@example.com"],
        "--amount",
        "100.00",
        "--reason",
        "opening float",
    )
    with _server(live_env) as client:
        ada = _login(client, "ada@example.com")
        ws_url = str(client.base_url.copy_with(scheme="ws")).rstrip("/") + "/ws"
        with connect(ws_url, open_timeout=WAIT_SECONDS) as socket:
            token = ada["Authorization"].removeprefix("Bearer ")
            socket.send(json.dumps({"action": "authenticate", "token": token, "last_event_id": 0}))
            assert json.loads(socket.recv(timeout=WAIT_SECONDS)) == {
                "type": "authenticated",
                "last_event_id": 0,
            }
            credit = _event(socket)  # replayed from the table: it came before the socket
            assert (credit["type"], credit["data"]["balance"]) == ("balance.updated", "100.00")

            accepted = _ok(
                client.post(
                    "/wallet/transfer",
                    json={"wallet_number": wallets["bob@example.com"], "amount": "40.00"},
                    headers=ada,
                ),
                202,
            )
            live = [_event(socket), _event(socket)]
    assert [e["type"] for e in live] == ["balance.updated", "transfer.completed"]
    assert live[0]["data"]["balance"] == "60.00"
    assert live[1]["data"]["reference"] == accepted["reference"]
    assert credit["id"] < live[0]["id"] < live[1]["id"]
