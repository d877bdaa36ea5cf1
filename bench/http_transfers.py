"""HTTP transfers: transfers per second through the whole API, next to pgbench on one server.

Why: DESIGN.md §11's target is measured at the HTTP edge -- complete more transfers per second
through `POST /api/v1/wallet/transfer` than the same PostgreSQL server commits pgbench TPC-B
transactions. bench/ledger_throughput.py measures the service layer; this one puts uvicorn,
FastAPI, authentication, the intake batcher and separate worker processes in front of it.

One run against one server (COFFER_BENCH_POSTGRES_URL):

1. pgbench: `-i -s 10`, then `-c 8 -j 2 -T 20` (5 s with --quick) on a database of its own.
2. A migrated coffer database with funded users made through the real services (cheap password
   hashing, daily limits out of the way), each signed in once via `POST /api/v1/auth/login`.
3. For API `--workers` 1 and 2, batching on (COFFER_TRANSFER_ACCEPT_WINDOW_MS=2) and off (0):
   `coffer serve` and `coffer worker` processes (COFFER_WORKER_MODE=external) on 127.0.0.1;
   client processes drive `POST /api/v1/wallet/transfer` over many HTTP/1.1 keep-alive
   connections (httpx) for a fixed time, each request with an Idempotency-Key, random sender
   and recipient. Accepted/s counts 202s over the driving time; completed/s counts settled
   transfers from the first request until the queue is empty.
4. Where the CPU went during the driving time: the client processes, the API processes, the
   worker processes, and the rest of the machine (PostgreSQL, mostly), from /proc.
5. `verify_ledger` over everything written; a non-zero exit on any failed invariant, refused
   request or transfer that did not complete.

The machine may have few cores: the client competes with the server for them, which the CPU
table shows; `--client-processes` spreads the client when one process cannot keep up.
Every database is named `coffer_bench_<hex>`; exactly those are dropped, also on error.

    .venv/bin/python bench/http_transfers.py [--quick] [--seconds S] [--connections N]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Sets cheap hashing and lifts the daily limit for this process before coffer reads settings.
from coffer.db import Database
from coffer.ledger.verify import InvariantCheck, verify_ledger
from coffer.logging import configure_logging
from coffer.migrate import upgrade_to_head
from ledger_throughput import (
    SERVER_URL,
    BenchDatabases,
    BenchmarkError,
    check_server,
    make_bench_user,
    progress,
    run_pgbench,
    run_pool,
    terminate_on_signal,
)

COFFER = str(Path(sys.executable).with_name("coffer"))
PASSWORD = "bench-password-0123"  # noqa: S105 - throwaway users in a throwaway database
BATCHING_WINDOW_MS = "2"
POOL_SIZE = "8"
"""Connections per coffer process: other people share the server's 100."""
JOB_POLL_INTERVAL_SECONDS = "0.05"
"""External workers learn of new work by polling the outbox; the default 1 s would add up to a
second of idle queue per run to the completed rate."""
SERVER_ENVIRONMENT = {
    "COFFER_WORKER_MODE": "external",
    "COFFER_LOG_LEVEL": "WARNING",
    "COFFER_PASSWORD_HASH_MEMORY_KIB": "1024",
    "COFFER_PASSWORD_HASH_ITERATIONS": "1",
    "COFFER_DAILY_TRANSFER_LIMIT": "1000000000.00",
    "COFFER_LOGIN_RATE_LIMIT_PER_IP": "1000000/minute",
    "COFFER_RATE_LIMIT_PER_IP": "100000000/minute",
    "COFFER_RATE_LIMIT_PER_USER": "100000000/minute",
    "COFFER_ACCESS_TOKEN_TTL_SECONDS": "86400",
    "COFFER_DATABASE_POOL_SIZE": POOL_SIZE,
    "COFFER_JOB_POLL_INTERVAL_SECONDS": JOB_POLL_INTERVAL_SECONDS,
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Config:
    users: int
    seconds: float
    connections: int
    client_processes: int
    job_workers: int
    api_workers: tuple[int, ...]
    batching: tuple[bool, ...]
    pgbench_seconds: int


@dataclass(frozen=True, slots=True)
class Sender:
    token: str
    wallet_number: str


@dataclass(frozen=True, slots=True)
class DriveResult:
    accepted: int
    refused: int
    first_refusal: str
    cpu_seconds: float
    wall_seconds: float
    latencies_ms: list[float]


@dataclass(frozen=True, slots=True)
class CaseResult:
    api_workers: int
    batching: bool
    accepted: int
    drive_seconds: float
    settle_seconds: float
    """From the first request until no transfer was pending."""
    p50_ms: float
    p99_ms: float
    cpu: dict[str, float]
    """CPU seconds during the driving time, by who spent them."""

    @property
    def accepted_rate(self) -> float:
        return self.accepted / self.drive_seconds

    @property
    def completed_rate(self) -> float:
        return self.accepted / self.settle_seconds


# --- Processes and CPU ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _process_tree(root: int) -> list[int]:
    """`root` and every descendant, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        tree.append(pid)
        frontier.extend(children.get(pid, []))
    return tree


def _cpu_seconds_of(pid: int) -> float:
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def tree_cpu_seconds(roots: Sequence[int]) -> float:
    return sum(_cpu_seconds_of(pid) for root in roots for pid in _process_tree(root))


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine (all cores), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


class Coffer:
    """`coffer serve` plus `coffer worker` processes on one database; stopped on exit."""

    def __init__(self, database_url: str, api_workers: int, job_workers: int, batching: bool):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        environment = {
            **os.environ,
            **SERVER_ENVIRONMENT,
            "COFFER_DATABASE_URL": database_url,
            "COFFER_TRANSFER_ACCEPT_WINDOW_MS": BATCHING_WINDOW_MS if batching else "0",
        }
        serve = [COFFER, "serve", "--port", str(self.port), "--workers", str(api_workers)]
        self.api = subprocess.Popen(serve, env=environment)
        self.workers = [
            subprocess.Popen([COFFER, "worker"], env=environment) for _ in range(job_workers)
        ]

    def wait_until_up(self, timeout_seconds: float = 120) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.api.poll() is not None:
                raise BenchmarkError(f"coffer serve exited with {self.api.returncode}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise BenchmarkError("coffer serve did not come up")

    def stop(self) -> None:
        for process in (self.api, *self.workers):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (self.api, *self.workers):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- Setup ---------------------------------------------------------------------------------


async def populate(url: URL, count: int) -> list[tuple[str, str]]:
    """Funded users made through the real services: (email, wallet number) each."""
    database = Database(url.render_as_string(hide_password=False), pool_size=4)
    users: list[tuple[str, str]] = []

    async def make(batch: int) -> None:
        async with database.transaction() as session:
            for _ in range(batch):
                new = await make_bench_user(session, funded=True, password=PASSWORD)
                users.append((new.user.email, new.primary_wallet.number))

    try:
        full, rest = divmod(count, 50)
        await run_pool([50] * full + ([rest] if rest else []), 4, make)
        async with database.transaction() as session:
            await session.execute(text("ANALYZE"))
    finally:
        await database.dispose()
    return users


async def sign_in_all(base_url: str, users: Sequence[tuple[str, str]]) -> list[Sender]:
    senders: list[Sender] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def sign_in(user: tuple[str, str]) -> None:
            email, wallet_number = user
            response = await client.post(
                "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
            if response.status_code != 200:
                raise BenchmarkError(f"sign-in refused: {response.status_code} {response.text}")
            senders.append(Sender(response.json()["data"]["access_token"], wallet_number))

        await run_pool(users, 16, sign_in)
    return senders


# --- The client ----------------------------------------------------------------------------


async def _drive(
    base_url: str, senders: Sequence[Sender], seconds: float, connections: int, seed: int
) -> DriveResult:
    rng = random.Random(seed)
    numbers = [sender.wallet_number for sender in senders]
    accepted = refused = 0
    first_refusal = ""
    latencies: list[float] = []
    # A client per connection: one shared httpx pool costs several times more CPU per request
    # at this concurrency. Made before the clock starts (each builds an SSL context).
    clients = [httpx.AsyncClient(base_url=base_url, timeout=60) for _ in range(connections)]
    deadline = time.monotonic() + seconds

    async def connection(client: httpx.AsyncClient) -> None:
        nonlocal accepted, refused, first_refusal
        while time.monotonic() < deadline:
            sender = rng.choice(senders)
            recipient = rng.choice(numbers)
            while recipient == sender.wallet_number:
                recipient = rng.choice(numbers)
            started = time.perf_counter()
            response = await client.post(
                "/api/v1/wallet/transfer",
                json={"wallet_number": recipient, "amount": f"{rng.randint(1, 100)}.00"},
                headers={
                    "Authorization": f"Bearer {sender.token}",
                    "Idempotency-Key": uuid.uuid4().hex,
                },
            )
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code == 202:
                accepted += 1
            else:
                refused += 1
                first_refusal = first_refusal or f"{response.status_code} {response.text}"

    cpu_started, started = time.process_time(), time.perf_counter()
    try:
        await asyncio.gather(*(connection(client) for client in clients))
    finally:
        for client in clients:
            await client.aclose()
    return DriveResult(
        accepted,
        refused,
        first_refusal,
        time.process_time() - cpu_started,
        time.perf_counter() - started,
        latencies,
    )


def drive(arguments: tuple[str, list[Sender], float, int, int]) -> DriveResult:
    """One client process (a multiprocessing target)."""
    return asyncio.run(_drive(*arguments))


# --- Cases ---------------------------------------------------------------------------------


async def pending_count(database: Database) -> int:
    async with database.transaction() as session:
        count = await session.scalar(
            text("SELECT COUNT(*) FROM transfers WHERE status = 'pending'")
        )
    return int(count or 0)


async def wait_until_settled(database_url: str, timeout_seconds: float = 300) -> None:
    database = Database(database_url, pool_size=1)
    deadline = time.monotonic() + timeout_seconds
    try:
        while await pending_count(database):
            if time.monotonic() > deadline:
                raise BenchmarkError("transfers still pending after the timeout")
            await asyncio.sleep(0.02)
    finally:
        await database.dispose()


def percentile(sorted_values: Sequence[float], share: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * share))]


def sign_in_once(url: URL, users: Sequence[tuple[str, str]]) -> list[Sender]:
    """Every user signs in once; the tokens stay good across the cases' server restarts."""
    coffer = Coffer(url.render_as_string(hide_password=False), 1, 0, batching=True)
    try:
        coffer.wait_until_up()
        return asyncio.run(sign_in_all(coffer.base_url, users))
    finally:
        coffer.stop()


def run_case(
    url: URL,
    config: Config,
    senders: list[Sender],
    api_workers: int,
    batching: bool,
    seed: int,
) -> CaseResult:
    rendered = url.render_as_string(hide_password=False)
    label = f"{api_workers} API worker(s), batching {'on' if batching else 'off'}"
    coffer = Coffer(rendered, api_workers, config.job_workers, batching)
    try:
        coffer.wait_until_up()
        progress(f"{label}: driving for {config.seconds:g} s")
        shares = [
            (
                coffer.base_url,
                senders,
                config.seconds,
                max(1, config.connections // config.client_processes),
                seed * 1000 + index,
            )
            for index in range(config.client_processes)
        ]
        servers = [coffer.api.pid]
        workers = [worker.pid for worker in coffer.workers]
        before = (tree_cpu_seconds(servers), tree_cpu_seconds(workers), machine_cpu_seconds())
        started = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(config.client_processes) as pool:
            results = pool.map(drive, shares)
        after = (tree_cpu_seconds(servers), tree_cpu_seconds(workers), machine_cpu_seconds())
        asyncio.run(wait_until_settled(rendered))
        settled = time.perf_counter()
    finally:
        coffer.stop()
    refused = sum(result.refused for result in results)
    if refused:
        first = next(r.first_refusal for r in results if r.first_refusal)
        raise BenchmarkError(f"{label}: {refused} requests refused, first: {first}")
    client_cpu = sum(result.cpu_seconds for result in results)
    api_cpu, worker_cpu = after[0] - before[0], after[1] - before[1]
    latencies = sorted(latency for result in results for latency in result.latencies_ms)
    result = CaseResult(
        api_workers=api_workers,
        batching=batching,
        accepted=sum(result.accepted for result in results),
        drive_seconds=max(result.wall_seconds for result in results),
        settle_seconds=settled - started,
        p50_ms=percentile(latencies, 0.5),
        p99_ms=percentile(latencies, 0.99),
        cpu={
            "client": client_cpu,
            "api": api_cpu,
            "workers": worker_cpu,
            "rest": max(0.0, after[2] - before[2] - client_cpu - api_cpu - worker_cpu),
        },
    )
    progress(
        f"{label}: {result.accepted} accepted, {result.accepted_rate:,.0f}/s accepted, "
        f"{result.completed_rate:,.0f}/s completed"
    )
    return result


async def verify(url: URL) -> tuple[list[InvariantCheck], dict[str, int]]:
    database = Database(url.render_as_string(hide_password=False), pool_size=1)
    try:
        async with database.transaction() as session:
            checks = await verify_ledger(session)
            rows = await session.execute(text("SELECT status, COUNT(*) FROM transfers GROUP BY 1"))
            statuses = {str(status): int(count) for status, count in rows}
    finally:
        await database.dispose()
    return checks, statuses


# --- Report --------------------------------------------------------------------------------


def print_report(
    config: Config,
    results: Sequence[CaseResult],
    pgbench_tps: float,
    checks: Sequence[InvariantCheck],
    statuses: dict[str, int],
) -> bool:
    print(
        f"coffer over HTTP: {config.users} users, {config.connections} keep-alive connections "
        f"from {config.client_processes} client process(es), {config.seconds:g} s per case, "
        f"{config.job_workers} worker process(es), {os.cpu_count()} CPUs"
    )
    header = (
        f"{'API':>3} {'batching':>8} {'accepted':>9} {'accepted/s':>11} {'completed/s':>12} "
        f"{'/ pgbench':>10} {'p50 ms':>7} {'p99 ms':>7}  CPU s: client / API / workers / rest"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        cpu = " / ".join(f"{r.cpu[k]:.1f}" for k in ("client", "api", "workers", "rest"))
        print(
            f"{r.api_workers:>3} {'on' if r.batching else 'off':>8} {r.accepted:>9} "
            f"{r.accepted_rate:>11,.0f} {r.completed_rate:>12,.0f} "
            f"{r.completed_rate / pgbench_tps:>9.2f}x {r.p50_ms:>7.1f} {r.p99_ms:>7.1f}  {cpu}"
        )
    print()
    print(f"pgbench TPC-B (scale 10, 8 clients, 2 threads, {config.pgbench_seconds} s): ", end="")
    print(f"{pgbench_tps:,.0f} tps")
    print(
        "completed/s: transfers settled from the first request until none was pending; "
        "CPU s: during the driving time (rest = PostgreSQL and everything else)"
    )
    print()
    print("ledger verification:")
    for check in checks:
        verdict = "ok     " if check.ok else f"FAILED  {check.violations} violations:"
        print(f"  {check.name:<25} {verdict} {check.detail}")
    print("  transfers: " + ", ".join(f"{s} {n}" for s, n in sorted(statuses.items())))
    all_completed = set(statuses) <= {"completed"}
    if not all_completed:
        print("  not every transfer completed")
    return all_completed and all(check.ok for check in checks)


# --- Entry point ---------------------------------------------------------------------------


def parse_config(argv: Sequence[str] | None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: short, few users")
    parser.add_argument("--seconds", type=float, help="driving time per case (20; quick 3)")
    parser.add_argument("--users", type=int, help="funded, signed-in users (1000; quick 100)")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections")
    parser.add_argument("--client-processes", type=int, default=1)
    parser.add_argument("--job-workers", type=int, default=1, help="`coffer worker` processes")
    parser.add_argument(
        "--api-workers", default="1,2", help="API process counts to run, comma-separated"
    )
    parser.add_argument("--batching", default="on,off", help="on, off or on,off")
    parser.add_argument("--pgbench-seconds", type=int, help="pgbench run length (20; quick 5)")
    args = parser.parse_args(argv)
    config = Config(
        users=args.users or (100 if args.quick else 1_000),
        seconds=args.seconds or (3.0 if args.quick else 20.0),
        connections=args.connections,
        client_processes=args.client_processes,
        job_workers=args.job_workers,
        api_workers=tuple(int(n) for n in args.api_workers.split(",")),
        batching=tuple(mode.strip() == "on" for mode in args.batching.split(",")),
        pgbench_seconds=args.pgbench_seconds or (5 if args.quick else 20),
    )
    if min(config.users - 1, config.seconds, config.connections, config.client_processes) <= 0:
        parser.error("counts and durations must be positive (and at least 2 users)")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    configure_logging("WARNING")
    signal.signal(signal.SIGTERM, terminate_on_signal)
    server = make_url(SERVER_URL)
    databases = BenchDatabases(server)
    try:
        check_server(server)
        pgbench_tps = run_pgbench(databases.create(), config.pgbench_seconds)
        url = databases.create()
        progress(f"coffer: migrating {url.database}, {config.users} funded users")
        upgrade_to_head(url.render_as_string(hide_password=False))
        users = asyncio.run(populate(url, config.users))
        senders = sign_in_once(url, users)
        progress(f"coffer: {len(senders)} users signed in through POST /api/v1/auth/login")
        results = [
            run_case(url, config, senders, api_workers, batching, seed)
            for seed, (api_workers, batching) in enumerate(
                (w, b) for w in config.api_workers for b in config.batching
            )
        ]
        checks, statuses = asyncio.run(verify(url))
    except BenchmarkError as error:
        progress(f"benchmark failed: {error}")
        return 1
    finally:
        databases.drop_all()
    return 0 if print_report(config, results, pgbench_tps, checks, statuses) else 1


if __name__ == "__main__":
    sys.exit(main())
