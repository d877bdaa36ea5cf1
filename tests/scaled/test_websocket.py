"""`GET /api/v1/ws` over a running `coffer serve --workers 2` with Redis and a Celery worker:
a client sees its transfer complete and its balance change and never another user's event,
resumes after a disconnect with exactly what it missed, is closed when its session or key is
revoked, and is refused (4401) without good credentials.

The API processes poll the events table only every minute here, so events reaching a socket
within the waits below came through the Redis wake-ups (the worker's commit, the other API
process's commit)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from coffer.db import Database
from coffer.notifications.events import events_after
from tests.fixtures.http import API, Caller
from tests.fixtures.scaled import Process, RedisServer, free_port, scaled_environment
from tests.scaled.conftest import Workers

pytestmark = [pytest.mark.scaled, pytest.mark.postgres, pytest.mark.slow]

WAIT_SECONDS = 45
"""Far below the one-minute poll, far above a wake-up's milliseconds on a loaded machine."""
WEBSOCKET_TIMINGS = {
    "COFFER_EVENTS_POLL_INTERVAL_SECONDS": "60",
    "COFFER_WS_HEARTBEAT_INTERVAL_SECONDS": "1",
    "COFFER_WS_RECHECK_INTERVAL_SECONDS": "1",
    "COFFER_WS_AUTH_TIMEOUT_SECONDS": "2",
}
SignIn = Callable[..., Awaitable[Caller]]


@pytest.fixture(scope="module")
def broker_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="module")
def worker_environment(
    scaled_url: str, broker_url: str, queue: str, redis_server: RedisServer
) -> dict[str, str]:
    return scaled_environment(
        scaled_url, broker_url, queue, COFFER_REDIS_URL=redis_server.url, **WEBSOCKET_TIMINGS
    )


@pytest.fixture(scope="module")
def api_server(
    worker_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    directory: Path = tmp_path_factory.mktemp("api")
    process = Process(
        [sys.executable, "-m", "coffer", "serve", "--port", str(port), "--workers", "2"],
        worker_environment,
        directory / "api.log",
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.popen.poll() is not None:
            process.stop()
            pytest.fail(f"the API did not start:\n{process.output()}")
        time.sleep(0.2)
    yield url
    process.stop()


@pytest.fixture
async def http(api_server: str) -> Any:
    async with httpx.AsyncClient(base_url=f"{api_server}{API}", timeout=60) as client:
        yield client


def _ws_url(api_server: str) -> str:
    return api_server.replace("http://", "ws://") + f"{API}/ws"


async def _open(url: str) -> ClientConnection:
    # Sockets the test is not reading keep receiving heartbeats: an unbounded queue, so the
    # client never stops reading (and misses its own keepalive pongs) while they wait.
    return await websockets.connect(url, open_timeout=WAIT_SECONDS, max_queue=None)


async def _connect(api_server: str, **credentials: Any) -> tuple[ClientConnection, int]:
    """An authenticated socket and the id its stream starts after."""
    socket = await _open(_ws_url(api_server))
    await socket.send(json.dumps({"action": "authenticate", **credentials}))
    answer = json.loads(await socket.recv(decode=True))
    assert answer["type"] == "authenticated", answer
    return socket, int(answer["last_event_id"])


async def _next_event(socket: ClientConnection) -> dict[str, Any]:
    """The next event (heartbeats skipped)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "no event arrived"
        message: dict[str, Any] = json.loads(await _recv(socket, remaining))
        if message["type"] != "heartbeat":
            return message


async def _recv(socket: ClientConnection, within_seconds: float) -> str:
    return str(await asyncio.wait_for(socket.recv(decode=True), timeout=within_seconds))


async def _events_until(
    socket: ClientConnection, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while not done(seen):
        seen.append(await _next_event(socket))
    return seen


async def _only_heartbeats(socket: ClientConnection, count: int = 2) -> None:
    """The next `count` messages are heartbeats: nothing else was queued before them."""
    for _ in range(count):
        message = json.loads(await _recv(socket, WAIT_SECONDS))
        assert message == {"type": "heartbeat"}, message


async def _transfer(http: httpx.AsyncClient, sender: Caller, recipient: Caller, amount: str) -> str:
    response = await http.post(
        "/wallet/transfer",
        json={"wallet_number": recipient.wallet_number, "amount": amount},
        headers=sender.headers,
    )
    assert response.status_code == 202, response.text
    reference: str = response.json()["data"]["reference"]
    return reference


async def _settled(http: httpx.AsyncClient, caller: Caller, reference: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS * 4
    while time.monotonic() < deadline:
        response = await http.get(
            f"/wallet/transfer/{reference}/status",
            headers=caller.headers | {"Prefer": "wait=10"},
        )
        if response.json()["data"]["status"] != "pending":
            return
    raise AssertionError(f"transfer {reference} never settled")


async def _stored_ids(database: Database, caller: Caller, after_id: int) -> list[int]:
    async with database.transaction() as session:
        stored = await events_after(session, after_id, limit=1000, user_ids=[caller.user_id])
    return [event.id for event in stored]


def _closed_with(error: websockets.ConnectionClosed) -> tuple[int, str]:
    assert error.rcvd is not None
    return error.rcvd.code, error.rcvd.reason


async def test_a_client_sees_its_transfer_and_balance_and_nothing_of_others(
    api_server: str,
    http: httpx.AsyncClient,
    sign_in: SignIn,
    app_database: Database,
    workers: Workers,
) -> None:
    workers.shared()
    alice = await sign_in(fund_minor=10_000, first_name="Alice")
    bob = await sign_in(first_name="Bob")
    carol = await sign_in(first_name="Carol")
    # Several sockets each, so both API processes very likely serve some of them.
    alice_sockets = [(await _connect(api_server, token=alice.token))[0] for _ in range(4)]
    bob_socket, bob_start = await _connect(api_server, token=bob.token)
    carol_socket, _ = await _connect(api_server, token=carol.token)

    reference = await _transfer(http, alice, bob, "25.00")

    for socket in alice_sockets:
        seen = await _events_until(
            socket,
            lambda seen: (
                {"transfer.completed", "balance.updated"}
                <= {e["type"] for e in seen if e["data"].get("reference") == reference}
            ),
        )
        completed = next(e for e in seen if e["type"] == "transfer.completed")
        assert completed["data"]["amount"] == "25.00"
        assert completed["data"]["recipient_wallet_number"] == bob.wallet_number
        balance = next(e for e in seen if e["type"] == "balance.updated")
        assert (balance["data"]["wallet_number"], balance["data"]["balance"]) == (
            alice.wallet_number,
            "75.00",
        )
        assert {e["id"] for e in seen} <= set(await _stored_ids(app_database, alice, 0))
    received = await _events_until(bob_socket, lambda seen: len(seen) == 2)
    assert {e["type"] for e in received} == {"transfer.received", "balance.updated"}
    assert [e["id"] for e in received] == await _stored_ids(app_database, bob, bob_start)
    assert all(e["data"]["wallet_number"] == bob.wallet_number for e in received)
    await _only_heartbeats(carol_socket)
    for socket in [*alice_sockets, bob_socket, carol_socket]:
        await socket.close()


async def test_a_resumed_socket_gets_exactly_the_events_it_missed(
    api_server: str,
    http: httpx.AsyncClient,
    sign_in: SignIn,
    app_database: Database,
    workers: Workers,
) -> None:
    workers.shared()
    alice = await sign_in(fund_minor=10_000)
    bob = await sign_in()
    socket, _ = await _connect(api_server, token=alice.token)
    first = await _transfer(http, alice, bob, "10.00")
    seen = await _events_until(
        socket, lambda seen: any(e["type"] == "transfer.completed" for e in seen)
    )
    assert seen[-1]["data"]["reference"] == first
    last_seen = max(e["id"] for e in seen)
    await socket.close()

    missed = [await _transfer(http, alice, bob, amount) for amount in ("1.00", "2.00")]
    for reference in missed:
        await _settled(http, alice, reference)
    expected = await _stored_ids(app_database, alice, last_seen)
    assert len(expected) == 4  # a balance.updated and a transfer.completed for each

    resumed, start = await _connect(api_server, token=alice.token, last_event_id=last_seen)
    assert start == last_seen
    replayed = [await _next_event(resumed) for _ in expected]
    assert [e["id"] for e in replayed] == expected
    assert {e["data"]["reference"] for e in replayed} == set(missed)
    await _only_heartbeats(resumed)
    await resumed.close()


async def test_signing_out_or_revoking_the_key_closes_the_socket(
    api_server: str, http: httpx.AsyncClient, sign_in: SignIn
) -> None:
    alice = await sign_in()
    by_token, _ = await _connect(api_server, token=alice.token)
    created = await http.post(
        "/keys/create",
        json={"name": "dashboard", "permissions": ["read"], "expiry": "1D"},
        headers=alice.headers,
    )
    assert created.status_code == 201, created.text
    key = created.json()["data"]
    by_key, _ = await _connect(api_server, api_key=key["api_key"])

    revoked = await http.delete(f"/keys/{key['id']}", headers=alice.headers)
    assert revoked.status_code == 200, revoked.text
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await _next_event(by_key)
    assert _closed_with(closed.value) == (4401, "api_key_revoked")

    signed_out = await http.post("/auth/logout", headers=alice.headers)
    assert signed_out.status_code == 200, signed_out.text
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await _next_event(by_token)
    assert _closed_with(closed.value) == (4401, "session_revoked")


async def _refusal(
    api_server: str, first_message: str | None, *, query: str = ""
) -> tuple[int, str]:
    socket = await _open(_ws_url(api_server) + query)
    if first_message is not None:
        await socket.send(first_message)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await _recv(socket, WAIT_SECONDS)
    return _closed_with(closed.value)


async def test_bad_or_missing_credentials_are_refused_with_4401(
    api_server: str, http: httpx.AsyncClient, sign_in: SignIn
) -> None:
    alice = await sign_in()
    write_only = await http.post(
        "/keys/create",
        json={"name": "payouts", "permissions": ["transfer"], "expiry": "1D"},
        headers=alice.headers,
    )
    assert write_only.status_code == 201, write_only.text

    def authenticate(**fields: Any) -> str:
        return json.dumps({"action": "authenticate", **fields})

    assert await _refusal(api_server, authenticate(token="not-a-token")) == (
        4401,
        "invalid_token",
    )
    assert await _refusal(api_server, authenticate(api_key="sk_test_" + "x" * 40)) == (
        4401,
        "invalid_api_key",
    )
    assert await _refusal(
        api_server, authenticate(api_key=write_only.json()["data"]["api_key"])
    ) == (4401, "read_permission_required")
    assert await _refusal(api_server, "hello") == (4401, "authentication_required")
    assert await _refusal(api_server, authenticate(token=alice.token, api_key="both")) == (
        4401,
        "authentication_required",
    )
    # Silence is refused after the auth timeout; a token in the query string counts for nothing.
    assert await _refusal(api_server, None) == (4401, "authentication_timeout")
    assert await _refusal(api_server, None, query=f"?token={alice.token}") == (
        4401,
        "authentication_timeout",
    )
