"""Faults of the parts around the API (issue 18's findings): the database going away under a
warm pool, an unreachable database, and an API worker killed under the supervisor.

An outage is a 503 with Retry-After (the client retries with its Idempotency-Key), never a 500,
and the pool recovers on its own once the database answers again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from coffer.app import create_app
from coffer.db import error_chain, unavailable_reason
from coffer.settings import Settings
from tests.fixtures.databases import POSTGRES_SERVER_URL, _asyncpg_dsn
from tests.fixtures.http import API, Caller
from tests.fixtures.identity import free_port

COFFER = str(Path(sys.executable).parent / "coffer")
START_TIMEOUT_SECONDS = 180
"""Generous: on a loaded 2-core machine one worker start (imports) has taken over a minute."""


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()
    body = response.json()
    assert body["error"]["code"] == "service_unavailable"
    assert "Traceback" not in response.text


async def test_an_unreachable_database_answers_503_with_retry_after() -> None:
    closed_port = free_port()
    settings = Settings(
        database_url=f"postgresql://postgres@127.0.0.1:{closed_port}/coffer",
        worker_mode="external",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://coffer.test") as http:
            response = await http.post(
                f"{API}/auth/login", json={"email": "ada@example.com", "password": "x" * 12}
            )
    _assert_unavailable(response)


async def _terminate_connections_to(database_url: str) -> int:
    """What a database restart does to every open connection of one database."""
    name = make_url(database_url).database
    admin = await asyncpg.connect(_asyncpg_dsn(POSTGRES_SERVER_URL))
    try:
        terminated = await admin.fetchval(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()) AS cut",
            name,
        )
    finally:
        await admin.close()
    return int(terminated)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_connections_cut_under_a_warm_pool_answer_503_never_500_then_recover(
    client: httpx.AsyncClient,
    sign_in: Callable[..., Awaitable[Caller]],
    database_url: str,
) -> None:
    caller = await sign_in(fund_minor=5_000)

    async def balance() -> httpx.Response:
        return await client.get(f"{API}/wallet/balance", headers=caller.headers)

    # Every pooled connection in use once, so the cut leaves them all dead in the pool.
    assert {r.status_code for r in await asyncio.gather(*(balance() for _ in range(6)))} == {200}
    assert await _terminate_connections_to(database_url) >= 1

    during = await asyncio.gather(*(balance() for _ in range(6)))
    assert {r.status_code for r in during} <= {200, 503}, [r.text for r in during]
    refused = [r for r in during if r.status_code == 503]
    assert refused, "the dead pooled connections were not noticed"
    for response in refused:
        _assert_unavailable(response)

    after = [await balance() for _ in range(6)]
    assert [r.status_code for r in after] == [200] * 6


def test_a_killed_api_worker_is_logged_and_replaced(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    env = {
        **os.environ,
        "COFFER_DATABASE_URL": f"sqlite:///{tmp_path / 'coffer.db'}",
        "COFFER_LOG_JSON": "true",
    }
    with log_path.open("w") as log_file:
        server = subprocess.Popen(
            [COFFER, "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        workers = _wait_for_workers(server.pid, count=2, log_path=log_path)
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            log = log_path.read_text()
            if (
                f"Child process [{workers[0]}] died" in log
                and log.count("Application startup complete") >= 3
            ):
                break
            time.sleep(0.5)
        log = log_path.read_text()
        assert f"Child process [{workers[0]}] died" in log, log[-2000:]
        assert log.count("Application startup complete") >= 3, log[-2000:]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def _wait_for_workers(parent: int, *, count: int, log_path: Path) -> list[int]:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if log_path.read_text().count("Application startup complete") >= count:
            children = subprocess.run(
                ["pgrep", "-P", str(parent)], capture_output=True, text=True, check=False
            ).stdout.split()
            workers = [int(pid) for pid in children if _is_api_worker(int(pid))]
            if len(workers) >= count:
                return workers
        time.sleep(0.5)
    raise AssertionError(f"coffer serve did not start {count} workers: {log_path.read_text()}")


def _is_api_worker(pid: int) -> bool:
    try:
        return "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


def _wrapped(cause: Exception) -> DBAPIError:
    """A driver error as SQLAlchemy raises it: a DBAPIError whose original carries the cause."""
    try:
        try:
            raise cause
        except Exception as raised:
            statement = "SELECT secret_hash FROM t WHERE code = $1"
            raise DBAPIError(statement, {"code": "123456"}, raised) from raised
    except DBAPIError as wrapped:
        return wrapped


def test_a_broken_protocol_state_after_a_restart_is_unavailable_not_a_bug() -> None:
    """Found by `coffer check bank` (10-minute run): a withdrawal seconds after an immediate
    restart was a 500 logged only as `DBAPIError`. asyncpg's client-side errors about the
    connection itself now count as an outage (503, pool reset)."""
    broken = _wrapped(asyncpg.exceptions.ProtocolError("unexpected message"))
    assert unavailable_reason(broken) == "connection lost (ProtocolError)"
    assert unavailable_reason(_wrapped(ValueError("a bug"))) is None


def test_an_unhandled_error_is_named_by_its_causes_without_their_messages() -> None:
    error = _wrapped(asyncpg.exceptions.UniqueViolationError("key (code)=(123456) exists"))
    chain = error_chain(error)
    assert chain[0] == "sqlalchemy.exc.DBAPIError"
    assert any("UniqueViolationError (SQLSTATE 23505)" in link for link in chain)
    assert "123456" not in " ".join(chain)
    assert "secret_hash" not in " ".join(chain)
