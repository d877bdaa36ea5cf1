"""Idle websockets: what 1,000 authenticated, idle `GET /api/v1/ws` sockets cost one API process.

Why: issue 16 bounds it (under 100 MB per 1,000 idle connections per API process), and a live
dashboard per signed-in user makes idle sockets the common case.

One run:

1. A fresh SQLite database (migrated), `--users` users made through the service, one
   `coffer serve` process (one API process, embedded worker) on a free port.
2. Each user signs in once (`POST /api/v1/auth/login`); the server's RSS is read from /proc
   after a few warm-up sockets have come and gone (the baseline).
3. `--sockets` websockets are opened (from this process) and authenticated, spread over the
   users; after `--idle-seconds` of idling the server's RSS is read again. Reported: the RSS
   before and after, the difference, and per socket.
4. One credit to each user, committed from this process (so the server learns of it by polling
   the events table, every COFFER_EVENTS_POLL_INTERVAL_SECONDS): the time until every socket
   of that user has its `balance.updated`.

    .venv/bin/python bench/websocket_idle.py [--sockets 1000] [--users 10] [--idle-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

from coffer.db import Database
from coffer.identity.service import create_user
from coffer.kit.money import Money
from coffer.migrate import upgrade_to_head
from coffer.wallets import service as wallet_service

PASSWORD = "correct horse battery staple"  # noqa: S105 - a bench user's
ENVIRONMENT = {
    "COFFER_ENV": "development",
    "COFFER_LOG_LEVEL": "WARNING",
    "COFFER_PASSWORD_HASH_MEMORY_KIB": "1024",
    "COFFER_PASSWORD_HASH_ITERATIONS": "1",
    "COFFER_LOGIN_RATE_LIMIT_PER_IP": "1000000/minute",
    "COFFER_RATE_LIMIT_PER_IP": "100000000/minute",
    "COFFER_RATE_LIMIT_PER_USER": "100000000/minute",
    "COFFER_FAILED_AUTH_LIMIT_PER_IP": "1000000/minute",
    "COFFER_ACCESS_TOKEN_TTL_SECONDS": "86400",
}
COFFER = str(Path(sys.executable).with_name("coffer"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("coffer serve exited")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError("coffer serve did not become ready")


async def open_socket(ws_url: str, token: str) -> websockets.ClientConnection:
    connection = await websockets.connect(ws_url, compression=None, max_size=2**20)
    await connection.send(json.dumps({"action": "authenticate", "token": token}))
    answer = json.loads(await connection.recv())
    if answer.get("type") != "authenticated":
        raise RuntimeError(f"not authenticated: {answer}")
    return connection


async def first_balance_update(connection: websockets.ClientConnection) -> float:
    while True:
        message = json.loads(await connection.recv())
        if message["type"] == "balance.updated":
            return time.monotonic()


async def make_users(database_url: str, count: int) -> list[str]:
    """Users with a password, made through the real service; their wallet numbers."""
    database = Database(database_url)
    try:
        async with database.transaction() as session:
            return [
                (
                    await create_user(
                        session,
                        email=f"ws{index}@example.com",
                        password=PASSWORD,
                        currency="NGN",
                        first_name="Bench",
                        last_name="User",
                    )
                ).primary_wallet.number
                for index in range(count)
            ]
    finally:
        await database.dispose()


async def credit_each(database_url: str, wallets: list[str]) -> None:
    """One credit to each wallet, each in its own transaction (one event each)."""
    database = Database(database_url)
    try:
        for number in wallets:
            async with database.transaction() as session:
                wallet = await wallet_service.find_wallet(session, number)
                await wallet_service.adjust(
                    session,
                    wallet,
                    Money.of(100, wallet.currency),
                    reason="bench",
                    credit=True,
                    actor="bench",
                )
    finally:
        await database.dispose()


def start(arguments: argparse.Namespace) -> tuple[str, list[str], int, subprocess.Popen[bytes]]:
    """A migrated database with the users, and `coffer serve` answering on a free port."""
    directory = Path(tempfile.mkdtemp(prefix="coffer-bench-ws-"))
    database_url = f"sqlite:///{directory / 'coffer.db'}"
    upgrade_to_head(database_url)
    wallets = asyncio.run(make_users(database_url, arguments.users))
    port = free_port()
    log = (directory / "serve.log").open("wb")
    server = subprocess.Popen(
        [COFFER, "serve", "--port", str(port)],
        env={**os.environ, "COFFER_DATABASE_URL": database_url},
        stdout=log,
        stderr=log,
    )
    wait_ready(f"http://127.0.0.1:{port}", server)
    return database_url, wallets, port, server


async def measure(
    arguments: argparse.Namespace,
    database_url: str,
    wallets: list[str],
    port: int,
    server_pid: int,
) -> int:
    url = f"http://127.0.0.1:{port}"
    ws_url = f"ws://127.0.0.1:{port}/api/v1/ws"
    connections: list[websockets.ClientConnection] = []
    try:
        async with httpx.AsyncClient(base_url=f"{url}/api/v1", timeout=30) as client:
            tokens = []
            for index in range(arguments.users):
                response = await client.post(
                    "/auth/login", json={"email": f"ws{index}@example.com", "password": PASSWORD}
                )
                response.raise_for_status()
                tokens.append(response.json()["data"]["access_token"])
        warm = [await open_socket(ws_url, tokens[0]) for _ in range(5)]
        for connection in warm:
            await connection.close()
        await asyncio.sleep(2)
        before = rss_mib(server_pid)

        started = time.monotonic()
        for start in range(0, arguments.sockets, 100):
            connections += await asyncio.gather(
                *(
                    open_socket(ws_url, tokens[index % arguments.users])
                    for index in range(start, min(start + 100, arguments.sockets))
                )
            )
        opened_seconds = time.monotonic() - started
        await asyncio.sleep(arguments.idle_seconds)
        after = rss_mib(server_pid)

        by_user = [connections[index :: arguments.users] for index in range(arguments.users)]
        waits = [asyncio.gather(*(first_balance_update(c) for c in group)) for group in by_user]
        credited = time.monotonic()
        await credit_each(database_url, wallets)
        credits_seconds = time.monotonic() - credited
        arrivals = [max(await wait) for wait in waits]
        fan_out_seconds = max(arrivals) - credited

        delta = after - before
        print(f"sockets open and authenticated : {len(connections)} in {opened_seconds:.1f} s")
        print(f"server RSS before              : {before:8.1f} MiB")
        print(
            f"server RSS with sockets idle   : {after:8.1f} MiB (after {arguments.idle_seconds} s)"
        )
        print(f"cost of the idle sockets       : {delta:8.1f} MiB")
        print(f"per socket                     : {delta * 1024 / len(connections):8.1f} KiB")
        print(
            f"credits to {arguments.users} users seen on all {len(connections)} sockets within "
            f"{fan_out_seconds:.2f} s ({credits_seconds:.2f} s of it committing the credits, one "
            "transaction each; the server's hub learns of them by polling)"
        )
        budget_mib = 100 * len(connections) / 1000
        verdict = "within" if delta < budget_mib else "OVER"
        print(f"budget (100 MB per 1,000)      : {verdict} ({budget_mib:.0f} MiB)")
        return 0 if delta < budget_mib else 1
    finally:
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    arguments = parser.parse_args()
    # Read by this process's settings too (cheap password hashing for the bench users).
    os.environ.update(ENVIRONMENT)
    database_url, wallets, port, server = start(arguments)
    try:
        code = asyncio.run(measure(arguments, database_url, wallets, port, server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
