"""Scaled settlement: how fast 1 and 2 Celery workers settle a backlog of accepted transfers.

For each worker count, in a fresh database (`coffer_bench_<hex>`, dropped afterwards): funded
users through the real services, `--transfers` transfers accepted through `create_transfers`
with no worker running (the relay publishes their processor job to the broker), then that many
`celery -A coffer.jobs.celery_app worker` processes (one prefork child each; the first with
embedded beat, whose ticks let the second join in). Throughput is the settled count over the
span between the first and the last `settled_at`, so process start-up is not in it. Then
`verify_ledger` over everything, and every transfer must have settled.

    .venv/bin/python bench/scaled_transfers.py [--transfers N] [--workers 1,2]
        [--broker-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.engine import URL, make_url

from coffer.db import Database
from coffer.jobs.celery_app import make_celery
from coffer.jobs.relay import Relay
from coffer.ledger.verify import verify_ledger
from coffer.migrate import upgrade_to_head
from coffer.models import Transfer, TransferStatus
from coffer.settings import Settings
from coffer.transfers.service import RecipientKind, TransferRequest, create_transfers
from ledger_throughput import (
    SERVER_URL,
    BenchDatabases,
    BenchmarkError,
    check_server,
    make_bench_user,
    progress,
)

USERS = 200
ACCEPT_CHUNK = 500
SETTLE_TIMEOUT_SECONDS = 600


async def accept_backlog(url: URL, transfers: int, environment: dict[str, str]) -> None:
    # Explicit settings: importing coffer.jobs.celery_app already read the process's own.
    settings = Settings(
        broker_url=environment["COFFER_BROKER_URL"],
        celery_queue=environment["COFFER_CELERY_QUEUE"],
        daily_transfer_limit=Decimal("1000000000"),
        limits_currency="NGN",
    )
    database = Database(url.render_as_string(hide_password=False), pool_size=2)
    relay = Relay(database, settings, make_celery(settings))
    database.jobs_committed_listeners.append(relay.wake)
    try:
        async with database.transaction() as session:
            users = [await make_bench_user(session, funded=True) for _ in range(USERS)]
        chooser = random.Random(14)
        for start in range(0, transfers, ACCEPT_CHUNK):
            requests = []
            for _ in range(min(ACCEPT_CHUNK, transfers - start)):
                sender, recipient = chooser.sample(users, 2)
                requests.append(
                    TransferRequest(
                        sender_user_id=sender.user.id,
                        recipient_kind=RecipientKind.WALLET_NUMBER,
                        recipient=recipient.primary_wallet.number,
                        amount=f"{chooser.randint(1, 500)}.00",
                    )
                )
            async with database.transaction() as session:
                await create_transfers(session, requests, settings=settings)
        await relay.idle()
    finally:
        await database.dispose()


async def settlement(url: URL) -> tuple[dict[str, int], float]:
    database = Database(url.render_as_string(hide_password=False), pool_size=1)
    try:
        async with database.transaction() as session:
            counts = dict(
                (
                    await session.execute(
                        select(Transfer.status, func.count()).group_by(Transfer.status)
                    )
                ).all()
            )
            first, last = (
                await session.execute(
                    select(func.min(Transfer.settled_at), func.max(Transfer.settled_at))
                )
            ).one()
        span = (last - first).total_seconds() if first and last else 0.0
        return {str(k): int(v) for k, v in counts.items()}, span
    finally:
        await database.dispose()


async def ledger_sound(url: URL) -> bool:
    database = Database(url.render_as_string(hide_password=False), pool_size=1)
    try:
        async with database.transaction() as session:
            return all(check.ok for check in await verify_ledger(session))
    finally:
        await database.dispose()


def run_case(url: URL, transfers: int, workers: int, broker_url: str) -> float:
    environment = {
        **os.environ,
        "COFFER_DATABASE_URL": url.render_as_string(hide_password=False),
        "COFFER_BROKER_URL": broker_url,
        "COFFER_CELERY_QUEUE": f"coffer-bench-{uuid.uuid4().hex[:10]}",
        "COFFER_DATABASE_POOL_SIZE": "4",
    }
    upgrade_to_head(environment["COFFER_DATABASE_URL"])
    progress(f"{workers} worker(s): accepting {transfers} transfers")
    asyncio.run(accept_backlog(url, transfers, environment))
    directory = tempfile.mkdtemp(prefix="coffer-bench-")
    processes = []
    for n in range(workers):
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "coffer.jobs.celery_app",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "1",
            "--loglevel",
            "WARNING",
            "--hostname",
            f"bench{n}-{uuid.uuid4().hex[:6]}@%h",
        ]
        if n == 0:
            argv += ["-B", "--schedule", f"{directory}/beat"]
        processes.append(
            subprocess.Popen(
                argv,
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    try:
        deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
        while True:
            counts, span = asyncio.run(settlement(url))
            if counts.get(TransferStatus.PENDING, 0) == 0:
                break
            if time.monotonic() > deadline:
                raise BenchmarkError(f"not settled in time: {counts}")
            time.sleep(0.5)
    finally:
        for process in processes:
            os.killpg(process.pid, 15)
        for process in processes:
            process.wait(timeout=60)
    if not asyncio.run(ledger_sound(url)):
        raise BenchmarkError("a ledger invariant failed")
    settled = sum(counts.values())
    rate = settled / span if span else float("inf")
    progress(f"{workers} worker(s): {settled} settled in {span:.2f} s = {rate:.0f}/s {counts}")
    return rate


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transfers", type=int, default=5000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/0")
    options = parser.parse_args(argv)
    server = make_url(SERVER_URL)
    check_server(server)
    databases = BenchDatabases(server)
    try:
        rates = {
            int(count): run_case(
                databases.create(), options.transfers, int(count), options.broker_url
            )
            for count in options.workers.split(",")
        }
    finally:
        databases.drop_all()
    print("workers  transfers/s")
    for count, rate in rates.items():
        print(f"{count:>7}  {rate:>11.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
