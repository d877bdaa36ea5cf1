"""A short soak of the scaled shape: 2 API processes and 2 Celery workers (one with beat) on
Redis and PostgreSQL, concurrent transfers over HTTP for a few seconds, then the bank checker:
total conserved, nothing negative, every accepted transfer settled exactly once, none pending."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from coffer.db import Database
from tests.fixtures.http import API, Caller
from tests.fixtures.scaled import (
    Process,
    RedisServer,
    all_settled,
    assert_settled_exactly_once,
    describe_process,
    free_port,
    wait_until,
)
from tests.scaled.conftest import Workers

pytestmark = [pytest.mark.scaled, pytest.mark.postgres, pytest.mark.slow]

LOAD_SECONDS = 15
CLIENTS = 12
USERS = 10
OPENING_MINOR = 50_000


@pytest.fixture(scope="module")
def broker_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="module")
def api_server(
    worker_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`coffer serve --workers 2`: two API processes behind one port."""
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


async def _load(url: str, callers: list[Caller], stop_at: float) -> tuple[list[str], int]:
    """Clients sending random transfers between the users until `stop_at`; the accepted
    references (refusals, such as a balance already promised away, are fine) and how many
    requests were sent."""
    accepted: list[str] = []
    sent = 0
    chooser = random.Random(14)

    async def client_loop(http: httpx.AsyncClient) -> None:
        nonlocal sent
        while time.monotonic() < stop_at:
            sender, recipient = chooser.sample(callers, 2)
            cents = chooser.randint(1, 2_000)
            response = await http.post(
                f"{API}/wallet/transfer",
                json={
                    "wallet_number": recipient.wallet_number,
                    "amount": f"{cents // 100}.{cents % 100:02d}",
                },
                headers=sender.headers,
            )
            sent += 1
            refused = response.status_code == 400 and (
                response.json()["error"]["code"] == "insufficient_funds"
            )
            assert response.status_code == 202 or refused, response.text
            if response.status_code == 202:
                accepted.append(response.json()["data"]["reference"])

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await asyncio.gather(*(client_loop(http) for _ in range(CLIENTS)))
    return accepted, sent


def transfers_counted(metrics: str) -> int:
    """The transfer requests /metrics reports, summed over statuses."""
    prefix = 'coffer_http_requests_total{method="POST",route="/wallet/transfer",'
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in metrics.splitlines()
        if line.startswith(prefix)
    )


async def test_soak_two_api_processes_and_two_workers_settle_everything_exactly_once(
    api_server: str,
    sign_in: Callable[..., Awaitable[Caller]],
    app_database: Database,
    workers: Workers,
) -> None:
    first = workers.shared()
    workers.start(beat=False)
    callers = [await sign_in(fund_minor=OPENING_MINOR, currency="USD") for _ in range(USERS)]
    opening = {caller.wallet_number: OPENING_MINOR for caller in callers}

    references, sent = await _load(api_server, callers, time.monotonic() + LOAD_SECONDS)

    assert len(references) > 100
    # Whichever of the two API processes answers the scrape reports both processes' requests.
    async with httpx.AsyncClient(base_url=api_server) as http:
        scrapes = [(await http.get("/metrics")).text for _ in range(4)]
    assert [transfers_counted(scrape) for scrape in scrapes] == [sent] * 4
    await wait_until(
        lambda: all_settled(app_database, references), describe=describe_process(first)
    )
    await assert_settled_exactly_once(app_database, references, opening, all_completed=False)
