"""The websocket in the embedded shape: one `coffer serve` on SQLite, no Redis. The transfer
settles in the API process's own job runner, whose commit wakes the process's hub in-process
(the table poll is set to a minute, so a prompt event came through the wake-up)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from coffer.db import Database
from coffer.identity.service import create_user
from coffer.migrate import upgrade_to_head
from tests.e2e.test_seed_flow import (  # the seed flow's server harness, reused
    PASSWORD,
    _login,
    _ok,
    _server,
    server_env,  # noqa: F401 - a fixture
)
from tests.fixtures.factories import fund

WAIT_SECONDS = 45


@pytest.fixture
def live_env(server_env: dict[str, str]) -> dict[str, str]:  # noqa: F811 - the imported fixture
    # Neither the table poll nor a heartbeat comes within the waits: an event that arrives was
    # handed to the socket when its commit woke the hub.
    return server_env | {
        "COFFER_EVENTS_POLL_INTERVAL_SECONDS": "60",
        "COFFER_WS_HEARTBEAT_INTERVAL_SECONDS": "600",
    }


def _event(socket: ClientConnection) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(socket.recv(timeout=WAIT_SECONDS))
        if message["type"] != "heartbeat":
            return message


async def _ada_and_bob(database_url: str) -> dict[str, str]:
    """Ada (100.00 NGN) and Bob, with passwords, made through the services (the CLI would
    do the same, one slow process start each)."""
    database = Database(database_url)
    try:
        async with database.transaction() as session:
            ada, bob = [
                await create_user(
                    session, email=email, password=PASSWORD, currency="NGN", first_name="E2E"
                )
                for email in ("ada@example.com", "bob@example.com")
            ]
            await fund(session, ada.primary_wallet, 10_000)
        return {"ada": ada.primary_wallet.number, "bob": bob.primary_wallet.number}
    finally:
        await database.dispose()


def test_an_embedded_server_streams_a_settled_transfer(live_env: dict[str, str]) -> None:
    upgrade_to_head(live_env["COFFER_DATABASE_URL"])
    wallets = asyncio.run(_ada_and_bob(live_env["COFFER_DATABASE_URL"]))
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
                    json={"wallet_number": wallets["bob"], "amount": "40.00"},
                    headers=ada,
                ),
                202,
            )
            live = [_event(socket), _event(socket)]
    assert [e["type"] for e in live] == ["balance.updated", "transfer.completed"]
    assert live[0]["data"]["balance"] == "60.00"
    assert live[1]["data"]["reference"] == accepted["reference"]
    assert credit["id"] < live[0]["id"] < live[1]["id"]
