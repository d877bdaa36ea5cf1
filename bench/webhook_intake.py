"""Webhook intake: signed Paystack deliveries per second through the whole API, on PostgreSQL.

Why: a busy day ends with a burst of `charge.success` deliveries (and Paystack's retries of
them). Each one is verified over its raw bytes, stored once in the inbox under its event key,
and credited in the same transaction; a duplicate must change nothing. This measures how fast
two API processes take them and proves every deposit was credited exactly once.

One run against one server (COFFER_BENCH_POSTGRES_URL):

1. A migrated coffer database, funded users made through the real services, and the Paystack
   double (tests/fixtures/paystack.py, a real HTTP server) as COFFER_PAYSTACK_BASE_URL.
2. `coffer serve --workers 2` (COFFER_PAYMENT_PROVIDER=paystack); the users start `--deposits`
   deposits through `POST /api/v1/wallet/deposit`, which initializes each at the double.
3. The double marks every transaction paid and the bench signs each `charge.success` exactly as
   Paystack does (hex HMAC-SHA512 of the raw body with the secret key); `--duplicate-share` of
   them are sent a second time, all shuffled together.
4. A generator process sends them as fast as the server takes them, over `--connections`
   keep-alive HTTP/1.1 connections with pre-encoded requests (no HTTP library in the loop);
   its own CPU time is measured and printed, so a generator-bound run shows as one.
5. Every deposit credited exactly once (one ledger entry per reference, status success,
   inbox rows = distinct deliveries), each wallet's balance = its funding + its deposits, and
   `verify_ledger` over everything; a non-zero exit on any failure.

    .venv/bin/python bench/webhook_intake.py [--deposits N] [--duplicate-share S]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import multiprocessing
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The Paystack double lives with the tests: the bench drives the same server the tests do.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
from tests.fixtures.paystack import PaystackDouble
from tests.fixtures.provider_double import serving

from coffer.db import Database
from coffer.ledger.verify import InvariantCheck, verify_ledger
from coffer.logging import configure_logging
from coffer.migrate import upgrade_to_head
from http_transfers import (
    Coffer,
    Sender,
    machine_cpu_seconds,
    percentile,
    populate,
    sign_in_all,
    tree_cpu_seconds,
)
from ledger_throughput import (
    FUNDING_MINOR,
    SERVER_URL,
    BenchDatabases,
    BenchmarkError,
    check_server,
    progress,
    run_pool,
    terminate_on_signal,
)

WEBHOOK_PATH = "/api/v1/wallet/paystack/webhook"
DEPOSIT_AMOUNT = "50.00"
DEPOSIT_MINOR = 5_000


@dataclass(frozen=True, slots=True)
class Config:
    deposits: int
    duplicate_share: float
    users: int
    connections: int
    api_workers: int


@dataclass(frozen=True, slots=True)
class GeneratorResult:
    statuses: dict[int, int]
    latencies_ms: list[float]
    wall_seconds: float
    cpu_seconds: float


# --- The generator -------------------------------------------------------------------------


def encode_delivery(host: str, body: bytes, signature: str) -> bytes:
    head = (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"x-paystack-signature: {signature}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the server keeps the connection) of one HTTP/1.1 answer."""
    status = int((await reader.readline()).split(b" ", 2)[1])
    length, keep = 0, True
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
            keep = False
    await reader.readexactly(length)
    return status, keep


async def _generate(
    host: str, port: int, requests: list[bytes], connections: int
) -> GeneratorResult:
    pending = list(reversed(requests))
    statuses: Counter[int] = Counter()
    latencies: list[float] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while pending:
                request = pending.pop()
                started = time.perf_counter()
                writer.write(request)
                status, keep = await _read_answer(reader)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[status] += 1
                if not keep:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    cpu_started, started = time.process_time(), time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(connections):
            group.create_task(connection())
    return GeneratorResult(
        dict(statuses), latencies, time.perf_counter() - started, time.process_time() - cpu_started
    )


def generate(arguments: tuple[str, int, list[bytes], int]) -> GeneratorResult:
    return asyncio.run(_generate(*arguments))


# --- Setup ---------------------------------------------------------------------------------


async def start_deposits(base_url: str, senders: Sequence[Sender], count: int) -> list[str]:
    """`count` deposits through the API, spread over the users: their references."""
    references: list[str] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def start(index: int) -> None:
            sender = senders[index % len(senders)]
            response = await client.post(
                "/api/v1/wallet/deposit",
                json={"amount": DEPOSIT_AMOUNT, "currency": "NGN"},
                headers={
                    "authorization": f"Bearer {sender.token}",
                    "idempotency-key": f"bench-deposit-{index}",
                },
            )
            if response.status_code != 201:
                raise BenchmarkError(f"deposit refused: {response.status_code} {response.text}")
            references.append(response.json()["data"]["reference"])

        await run_pool(range(count), 16, start)
    return references


def signed_deliveries(
    double: PaystackDouble, references: Sequence[str], duplicate_share: float, host: str
) -> list[bytes]:
    """Every transaction paid at the double, one signed charge.success each, plus duplicates."""
    requests = []
    for reference in references:
        with double.lock:
            double.transactions[reference].update(
                status="success", paid_at="2026-12-01T10:05:00.000Z", gateway_response="Successful"
            )
            data = double.transaction_data(reference)
        body = json.dumps({"event": "charge.success", "data": data}, separators=(",", ":"))
        encoded = body.encode()
        signature = hmac.new(double.secret_key.encode(), encoded, hashlib.sha512).hexdigest()
        requests.append(encode_delivery(host, encoded, signature))
    duplicates = random.sample(requests, round(len(requests) * duplicate_share))
    deliveries = requests + duplicates
    random.shuffle(deliveries)
    return deliveries


# --- Verification --------------------------------------------------------------------------

_CREDITS_PER_DEPOSIT = """
SELECT count(*) FROM deposits d
WHERE d.status <> 'success'
   OR (SELECT count(*) FROM ledger_entries e WHERE e.reference = d.reference) <> 1
"""
_WALLETS_OFF = """
SELECT count(*) FROM (
  SELECT w.id, a.balance,
         :funding + coalesce((SELECT sum(d.amount_minor) FROM deposits d
                              WHERE d.wallet_id = w.id AND d.status = 'success'), 0) AS expected
  FROM wallets w JOIN ledger_accounts a ON a.id = w.ledger_account_id
) checked WHERE balance <> expected
"""


async def verify(url: URL, deposits: int) -> tuple[list[InvariantCheck], dict[str, int]]:
    database = Database(url.render_as_string(hide_password=False), pool_size=1)
    try:
        async with database.transaction() as session:
            checks = await verify_ledger(session)
            counts = {
                "deposits": (
                    await session.execute(text("SELECT count(*) FROM deposits"))
                ).scalar_one(),
                "deposits not credited exactly once": (
                    await session.execute(text(_CREDITS_PER_DEPOSIT))
                ).scalar_one(),
                "wallets whose balance is not funding + deposits": (
                    await session.execute(text(_WALLETS_OFF), {"funding": FUNDING_MINOR})
                ).scalar_one(),
                "inbox rows": (
                    await session.execute(text("SELECT count(*) FROM webhook_inbox"))
                ).scalar_one(),
            }
    finally:
        await database.dispose()
    if counts["deposits"] != deposits:
        raise BenchmarkError(f"{counts['deposits']} deposits stored, {deposits} started")
    return checks, counts


# --- The run -------------------------------------------------------------------------------


def run(url: URL, config: Config) -> tuple[GeneratorResult, dict[str, float], int]:
    rendered = url.render_as_string(hide_password=False)
    with serving(PaystackDouble()) as double:
        os.environ.update(
            COFFER_PAYMENT_PROVIDER="paystack",
            COFFER_PAYSTACK_SECRET_KEY=double.secret_key,
            COFFER_PAYSTACK_BASE_URL=double.url,
        )
        users = asyncio.run(populate(url, config.users))
        coffer = Coffer(rendered, config.api_workers, 0, batching=False)
        try:
            coffer.wait_until_up()
            senders = asyncio.run(sign_in_all(coffer.base_url, users))
            progress(f"{len(senders)} users signed in; starting {config.deposits} deposits")
            references = asyncio.run(start_deposits(coffer.base_url, senders, config.deposits))
            deliveries = signed_deliveries(
                double, references, config.duplicate_share, f"127.0.0.1:{coffer.port}"
            )
            progress(
                f"sending {len(deliveries)} signed deliveries over {config.connections} connections"
            )
            before = (tree_cpu_seconds([coffer.api.pid]), machine_cpu_seconds())
            arguments = ("127.0.0.1", coffer.port, deliveries, config.connections)
            with multiprocessing.get_context("fork").Pool(1) as pool:
                [result] = pool.map(generate, [arguments])
            after = (tree_cpu_seconds([coffer.api.pid]), machine_cpu_seconds())
        finally:
            coffer.stop()
    api_cpu = after[0] - before[0]
    cpu = {
        "generator": result.cpu_seconds,
        "api": api_cpu,
        "rest": max(0.0, after[1] - before[1] - result.cpu_seconds - api_cpu),
    }
    return result, cpu, len(references)


def print_report(
    config: Config,
    result: GeneratorResult,
    cpu: dict[str, float],
    checks: list[InvariantCheck],
    counts: dict[str, int],
) -> bool:
    sent = sum(result.statuses.values())
    latencies = sorted(result.latencies_ms)
    print(f"\nWebhook intake: {config.api_workers} API processes on PostgreSQL")
    duplicates = sent - config.deposits
    print(f"  deliveries      {sent} ({config.deposits} distinct + {duplicates} duplicates)")
    print(f"  answers         {dict(sorted(result.statuses.items()))}")
    print(f"  wall time       {result.wall_seconds:.2f} s over {config.connections} connections")
    print(f"  deliveries/s    {sent / result.wall_seconds:,.0f}")
    print(
        f"  answer time     p50 {percentile(latencies, 0.5):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms, max {latencies[-1]:.1f} ms"
    )
    print("  CPU seconds     " + ", ".join(f"{who} {seconds:.1f}" for who, seconds in cpu.items()))
    print(
        f"                  (generator {cpu['generator'] / result.wall_seconds:.0%} of one core; "
        f"API {cpu['api'] * 1000 / sent:.1f} ms CPU per delivery; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    for name, value in counts.items():
        print(f"  {name:<48} {value}")
    for check in checks:
        print(f"  ledger {check.name:<41} {'ok' if check.ok else f'FAILED ({check.violations})'}")
    ok = (
        result.statuses.get(200, 0) == sent
        and counts["deposits not credited exactly once"] == 0
        and counts["wallets whose balance is not funding + deposits"] == 0
        and counts["inbox rows"] == config.deposits
        and all(check.ok for check in checks)
    )
    print(f"  verdict         {'every deposit credited exactly once' if ok else 'FAILED'}")
    return ok


def parse_config(argv: Sequence[str] | None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deposits", type=int, default=2000)
    parser.add_argument("--duplicate-share", type=float, default=0.2)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--api-workers", type=int, default=2)
    arguments = parser.parse_args(argv)
    return Config(
        deposits=arguments.deposits,
        duplicate_share=arguments.duplicate_share,
        users=arguments.users,
        connections=arguments.connections,
        api_workers=arguments.api_workers,
    )


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    configure_logging("WARNING")
    signal.signal(signal.SIGTERM, terminate_on_signal)
    server = make_url(SERVER_URL)
    databases = BenchDatabases(server)
    try:
        check_server(server)
        url = databases.create()
        progress(f"coffer: migrating {url.database}, {config.users} funded users")
        upgrade_to_head(url.render_as_string(hide_password=False))
        result, cpu, started = run(url, config)
        checks, counts = asyncio.run(verify(url, started))
    except BenchmarkError as error:
        progress(f"benchmark failed: {error}")
        return 1
    finally:
        databases.drop_all()
    return 0 if print_report(config, result, cpu, checks, counts) else 1


if __name__ == "__main__":
    sys.exit(main())
