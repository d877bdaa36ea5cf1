"""Ledger throughput: transfers per second through coffer's service layer, next to pgbench.

Why: DESIGN.md §11 sets the target -- complete more transfers per second than the same
PostgreSQL server commits pgbench TPC-B transactions -- and names the lever: neither side of a
transfer may pay one commit per transfer. `create_transfers` stores a list of requests in one
transaction and `process_batch` settles a batch in one. This script measures that lever, the
batch size, on the real service code without HTTP in front of it, so its numbers are an upper
bound for the API.

What it measures, in one run against one server (COFFER_BENCH_POSTGRES_URL):

1. The yardstick: `pgbench -i -s 10` into a database of its own, then `pgbench -c 8 -j 2 -T 20`;
   its tps is what this server's disk allows in small committed transactions per second.
2. A freshly migrated coffer database with ~1,000 users whose primary wallets are funded through
   the real services (`create_user`, `wallets.adjust`), plus one "hot" wallet.
3. For two mixes -- "uniform" (random sender -> random other funded wallet) and "hot" (random
   senders, every transfer credits the hot wallet) -- and batch sizes 1, 10, 100 and 1,000:
   - accept: `create_transfers` with lists of the batch size, one transaction per list, from 8
     concurrent sessions on one `Database` (pool of 10), as one API process would;
   - settle: the queue accept left behind, drained by 2 processors running `process_pending`
     (one `process_batch` transaction per batch), each on its own `Database`, as 2 workers would;
   - end to end: fresh transfers accepted and settled at the same time, the processors woken by
     each accept commit (as the embedded job runner is), timed from the first request to the
     last settlement. This is the number to hold against pgbench's tps.
   Every request carries an idempotency key and a decimal-string amount, as API clients send.
4. The table, pgbench's tps, the peak RSS of this process, and `verify_ledger` over everything
   written. The exit status is non-zero if an invariant fails or a transfer did not complete.

Caveat: accept and settle share this one Python process (one core); in production the API and
the workers are separate processes, so end to end here is a lower bound on that setup.

Every database this script creates is named `coffer_bench_<hex>`; it drops exactly those, on
success and on error.

    .venv/bin/python bench/ledger_throughput.py [--quick] [--transfers N] [--pgbench-seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import FrameType
from typing import TypeVar

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncSession

# coffer reads its settings once, on first use: make password hashing cheap and daily limits
# out of the way (the benchmark measures throughput, not policy) before it loads.
os.environ.update(
    {
        "COFFER_PASSWORD_HASH_MEMORY_KIB": "1024",
        "COFFER_PASSWORD_HASH_ITERATIONS": "1",
        "COFFER_DAILY_TRANSFER_LIMIT": "1000000000.00",
    }
)

from coffer.db import Database
from coffer.identity.service import NewUser, create_user
from coffer.kit.money import Money
from coffer.ledger.verify import InvariantCheck, verify_ledger
from coffer.logging import configure_logging
from coffer.migrate import upgrade_to_head
from coffer.transfers.service import (
    AcceptedTransfer,
    RecipientKind,
    TransferRequest,
    create_transfers,
)
from coffer.transfers.settlement import BatchReport
from coffer.transfers.tasks import process_pending
from coffer.wallets import service as wallets

SERVER_URL = os.environ.get(
    "COFFER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DATABASE_PREFIX = "coffer_bench_"
BATCH_SIZES = (1, 10, 100, 1_000)
CURRENCY = "NGN"
FUNDING_MINOR = 10**10
"""Each funded wallet's opening balance: far more than any run can spend, so no transfer fails."""
AMOUNT_RANGE_MINOR = (100, 10_000)
"""Each transfer moves 1.00 to 100.00."""
CASE_SIZE = {1: 0.1, 10: 0.5, 100: 1.0, 1_000: 2.0}
"""Transfers per case as a share of --transfers: fewer for the slow small batches keep the run
within a few minutes; more for batches of 1,000 keep both processors busy for several batches."""
SETUP_USERS_PER_TRANSACTION = 50

PGBENCH_SCALE = 10
PGBENCH_CLIENTS = 8
PGBENCH_THREADS = 2
_PGBENCH_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)

T = TypeVar("T")


class BenchmarkError(Exception):
    """The benchmark itself went wrong (a refused request, a lost transfer, a failed tool)."""


class Mix(StrEnum):
    UNIFORM = "uniform"
    HOT = "hot"


@dataclass(frozen=True, slots=True)
class Config:
    transfers: int
    """Transfers per phase of a batch-100 case; other batch sizes scale it by `CASE_SIZE`."""
    wallets: int
    accept_sessions: int
    accept_pool_size: int
    processors: int
    pgbench_seconds: int
    seed: int

    def transfers_for(self, batch_size: int) -> int:
        share = CASE_SIZE.get(batch_size, 1.0)
        return max(1, round(self.transfers * share))


@dataclass(frozen=True, slots=True)
class Holder:
    """A user and their primary wallet, as a request names them."""

    user_id: uuid.UUID
    wallet_number: str


@dataclass(frozen=True, slots=True)
class Population:
    funded: Sequence[Holder]
    hot: Holder


@dataclass(frozen=True, slots=True)
class CaseResult:
    mix: Mix
    batch_size: int
    transfers: int
    accept_seconds: float
    settle_seconds: float
    end_to_end_seconds: float

    @property
    def accept_rate(self) -> float:
        return self.transfers / self.accept_seconds

    @property
    def settle_rate(self) -> float:
        return self.transfers / self.settle_seconds

    @property
    def end_to_end_rate(self) -> float:
        return self.transfers / self.end_to_end_seconds


@dataclass(frozen=True, slots=True)
class CofferRun:
    results: Sequence[CaseResult]
    checks: Sequence[InvariantCheck]
    transfer_statuses: dict[str, int]
    wall_seconds: float
    """Wall time of the measured cases."""
    cpu_seconds: float
    """CPU time this process spent in them: near `wall_seconds` means Python was the limit."""


_STARTED = time.perf_counter()


def progress(message: str) -> None:
    """Progress goes to stderr, stamped with the time since start; stdout carries the report."""
    print(f"[{time.perf_counter() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


# --- Databases on the server ---------------------------------------------------------------


def _asyncpg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(server: URL, sql: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(server), timeout=10)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def check_server(server: URL) -> None:
    try:
        asyncio.run(_admin(server, "SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        raise BenchmarkError(
            f"PostgreSQL is not reachable at {server.render_as_string()}: {error}"
        ) from error


class BenchDatabases:
    """Creates uniquely named databases on the server and drops exactly those."""

    def __init__(self, server: URL) -> None:
        self.server = server
        self.created: list[str] = []

    def create(self) -> URL:
        name = f"{DATABASE_PREFIX}{uuid.uuid4().hex[:12]}"
        asyncio.run(_admin(self.server, f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.server.set(database=name)

    def drop_all(self) -> None:
        for name in list(self.created):
            try:
                asyncio.run(_admin(self.server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                progress(f"could not drop database {name}: {error}")
                continue
            self.created.remove(name)


# --- pgbench -------------------------------------------------------------------------------


def _pgbench(url: URL, *arguments: str) -> str:
    executable = shutil.which("pgbench") or "/usr/bin/pgbench"
    connection = [f"--username={url.username or 'postgres'}"]
    if url.host:
        connection.append(f"--host={url.host}")
    if url.port:
        connection.append(f"--port={url.port}")
    environment = dict(os.environ)
    if url.password:
        environment["PGPASSWORD"] = url.password
    command = [executable, *arguments, *connection, str(url.database)]
    try:
        completed = subprocess.run(
            command, check=True, capture_output=True, text=True, env=environment
        )
    except subprocess.CalledProcessError as error:
        raise BenchmarkError(f"{' '.join(command)} failed:\n{error.stderr}") from error
    return completed.stdout


def parse_tps(output: str) -> float:
    match = _PGBENCH_TPS.search(output)
    if match is None:
        raise BenchmarkError(f"no tps line in pgbench's output:\n{output}")
    return float(match.group(1))


def run_pgbench(url: URL, seconds: int) -> float:
    """TPC-B on its own database: initialise at scale 10, run, return tps."""
    progress(f"pgbench: initialising {url.database} at scale {PGBENCH_SCALE}")
    _pgbench(url, "--initialize", f"--scale={PGBENCH_SCALE}", "--quiet")
    progress(f"pgbench: {PGBENCH_CLIENTS} clients, {PGBENCH_THREADS} threads, {seconds} s")
    output = _pgbench(
        url,
        f"--client={PGBENCH_CLIENTS}",
        f"--jobs={PGBENCH_THREADS}",
        f"--time={seconds}",
    )
    return parse_tps(output)


# --- Workload ------------------------------------------------------------------------------


async def run_pool(items: Sequence[T], workers: int, work: Callable[[T], Awaitable[None]]) -> None:
    """Run `work` over `items` with at most `workers` at a time, each taking the next item."""
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            await work(item)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(workers, len(items))):
            group.create_task(worker())


async def make_bench_user(
    session: AsyncSession, *, funded: bool, password: str | None = None
) -> NewUser:
    """A user made through the real services, funded from the adjustments account if asked."""
    new = await create_user(
        session,
        email=f"bench-{uuid.uuid4().hex[:16]}@example.com",
        password=password,
        currency=CURRENCY,
        first_name="Bench",
        last_name="User",
    )
    if funded:
        await wallets.adjust(
            session,
            new.primary_wallet,
            Money.of(FUNDING_MINOR, CURRENCY),
            reason="benchmark funding",
            credit=True,
            actor="bench",
        )
    return new


async def populate(database: Database, config: Config) -> Population:
    """Users with funded primary wallets, made through the real services, and one hot wallet."""
    holders: list[Holder] = []

    async def make_users(count: int, *, funded: bool) -> None:
        async with database.transaction() as session:
            for _ in range(count):
                new = await make_bench_user(session, funded=funded)
                holders.append(Holder(new.user.id, new.primary_wallet.number))

    full, rest = divmod(config.wallets, SETUP_USERS_PER_TRANSACTION)
    chunks = [SETUP_USERS_PER_TRANSACTION] * full + ([rest] if rest else [])
    await run_pool(chunks, config.accept_sessions, lambda count: make_users(count, funded=True))
    funded = list(holders)
    holders.clear()
    await make_users(1, funded=False)
    return Population(funded=funded, hot=holders[0])


def make_requests(
    population: Population, mix: Mix, count: int, rng: random.Random, key_prefix: str
) -> list[TransferRequest]:
    """`count` requests of this mix; built before the clock starts."""
    requests = []
    for index in range(count):
        sender = rng.choice(population.funded)
        recipient = population.hot
        while mix is Mix.UNIFORM and recipient in (population.hot, sender):
            recipient = rng.choice(population.funded)
        minor = rng.randint(*AMOUNT_RANGE_MINOR)
        requests.append(
            TransferRequest(
                sender_user_id=sender.user_id,
                recipient_kind=RecipientKind.WALLET_NUMBER,
                recipient=recipient.wallet_number,
                amount=f"{minor // 100}.{minor % 100:02d}",
                idempotency_key=f"{key_prefix}-{index}",
            )
        )
    return requests


class Bench:
    """The coffer side: one accepting `Database` and one `Database` per processor."""

    def __init__(self, url: URL, config: Config, population: Population) -> None:
        rendered = url.render_as_string(hide_password=False)
        self.config = config
        self.population = population
        self.rng = random.Random(config.seed)
        self.accept_database = Database(rendered, pool_size=config.accept_pool_size)
        self.processor_databases = [
            Database(rendered, pool_size=1) for _ in range(config.processors)
        ]
        self._runs = 0

    async def dispose(self) -> None:
        for database in (self.accept_database, *self.processor_databases):
            await database.dispose()

    def requests(self, mix: Mix, count: int) -> list[TransferRequest]:
        self._runs += 1
        return make_requests(self.population, mix, count, self.rng, f"bench-{self._runs}")

    async def accept(self, requests: Sequence[TransferRequest], batch_size: int) -> None:
        """Store the requests in lists of `batch_size`, one transaction each, concurrently."""
        chunks = [requests[i : i + batch_size] for i in range(0, len(requests), batch_size)]

        async def store(chunk: Sequence[TransferRequest]) -> None:
            async with self.accept_database.transaction() as session:
                outcomes = await create_transfers(session, chunk)
            refused = [o for o in outcomes if not isinstance(o, AcceptedTransfer)]
            if refused:
                raise BenchmarkError(f"{len(refused)} requests refused, first: {refused[0]!r}")

        await run_pool(chunks, self.config.accept_sessions, store)

    async def settle(self, batch_size: int, accepted_all: asyncio.Event | None = None) -> int:
        """Drain the queue with every processor; with `accepted_all`, until it is set and then
        the queue is empty.

        Returns the number of transfers completed.
        """
        wakes = [asyncio.Event() for _ in self.processor_databases]

        def wake_all() -> None:
            for wake in wakes:
                wake.set()

        async def processor(database: Database, wake: asyncio.Event) -> BatchReport:
            claimed = completed = failed = 0
            while True:
                wake.clear()
                # Read before claiming: an empty claim after accepting ended means done.
                finished = accepted_all is None or accepted_all.is_set()
                report = await process_pending(database, batch_size)
                claimed += report.claimed
                completed += report.completed
                failed += report.failed
                if report.claimed:
                    continue
                if finished:
                    return BatchReport(claimed, completed, failed)
                await wake.wait()

        self.accept_database.jobs_committed_listeners.append(wake_all)
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(processor(database, wake))
                    for database, wake in zip(self.processor_databases, wakes, strict=True)
                ]
                if accepted_all is not None:
                    await accepted_all.wait()
                    wake_all()
        finally:
            self.accept_database.jobs_committed_listeners.remove(wake_all)
        reports = [task.result() for task in tasks]
        failed = sum(report.failed for report in reports)
        if failed:
            raise BenchmarkError(f"{failed} transfers failed to settle")
        return sum(report.completed for report in reports)

    async def end_to_end(self, requests: Sequence[TransferRequest], batch_size: int) -> int:
        """Accept and settle at once; returns the number of transfers completed."""
        accepted_all = asyncio.Event()

        async def accept_then_signal() -> None:
            await self.accept(requests, batch_size)
            accepted_all.set()

        async with asyncio.TaskGroup() as group:
            settling = group.create_task(self.settle(batch_size, accepted_all))
            group.create_task(accept_then_signal())
        return settling.result()

    async def run_case(self, mix: Mix, batch_size: int) -> CaseResult:
        count = self.config.transfers_for(batch_size)

        requests = self.requests(mix, count)
        started = time.perf_counter()
        await self.accept(requests, batch_size)
        accepted = time.perf_counter()
        settled = await self.settle(batch_size)
        finished = time.perf_counter()
        _expect_settled(settled, count)

        requests = self.requests(mix, count)
        e2e_started = time.perf_counter()
        settled = await self.end_to_end(requests, batch_size)
        e2e_finished = time.perf_counter()
        _expect_settled(settled, count)

        return CaseResult(
            mix=mix,
            batch_size=batch_size,
            transfers=count,
            accept_seconds=accepted - started,
            settle_seconds=finished - accepted,
            end_to_end_seconds=e2e_finished - e2e_started,
        )


def _expect_settled(settled: int, expected: int) -> None:
    if settled != expected:
        raise BenchmarkError(f"settled {settled} transfers, expected {expected}")


async def run_coffer(url: URL, config: Config) -> CofferRun:
    # Inside the loop SIGTERM cancels this task (an exception raised from a signal handler in
    # the middle of SQLAlchemy's greenlets can crash the interpreter).
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    rendered = url.render_as_string(hide_password=False)
    setup = Database(rendered, pool_size=config.accept_pool_size)
    try:
        progress(f"coffer: {config.wallets} funded wallets in {url.database}")
        population = await populate(setup, config)
        async with setup.transaction() as session:
            await session.execute(text("ANALYZE"))
    finally:
        await setup.dispose()

    bench = Bench(url, config, population)
    try:
        progress("coffer: warm-up")
        await bench.accept(bench.requests(Mix.UNIFORM, 200), 10)
        await bench.settle(10)
        await bench.end_to_end(bench.requests(Mix.UNIFORM, 200), 10)
        results = []
        wall_started, cpu_started = time.perf_counter(), time.process_time()
        for mix in Mix:
            for batch_size in BATCH_SIZES:
                result = await bench.run_case(mix, batch_size)
                progress(
                    f"coffer: {mix:<7} batch {batch_size:>5}: {result.transfers} transfers, "
                    f"accept {result.accept_seconds:.2f} s, settle {result.settle_seconds:.2f} s,"
                    f" end to end {result.end_to_end_seconds:.2f} s"
                )
                results.append(result)
        wall_seconds = time.perf_counter() - wall_started
        cpu_seconds = time.process_time() - cpu_started
        async with bench.accept_database.transaction() as session:
            checks = await verify_ledger(session)
            rows = await session.execute(text("SELECT status, COUNT(*) FROM transfers GROUP BY 1"))
            statuses = {str(status): int(count) for status, count in rows}
    finally:
        await bench.dispose()
    return CofferRun(results, checks, statuses, wall_seconds, cpu_seconds)


# --- Report --------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_report(
    run: CofferRun, pgbench_tps: float, config: Config, load: tuple[float, float]
) -> bool:
    """Print the table, pgbench's tps, peak RSS and the ledger checks; True when all is sound."""
    print(
        f"coffer service layer, {config.wallets} wallets, accept: {config.accept_sessions} "
        f"sessions (pool {config.accept_pool_size}), settle: {config.processors} processors"
    )
    header = (
        f"{'mix':<8} {'batch':>6} {'transfers':>9} {'accept tx/s':>12} {'settle tx/s':>12} "
        f"{'end-to-end tx/s':>16} {'e2e / pgbench':>14}"
    )
    print(header)
    print("-" * len(header))
    for result in run.results:
        print(
            f"{result.mix:<8} {result.batch_size:>6} {result.transfers:>9} "
            f"{result.accept_rate:>12,.0f} {result.settle_rate:>12,.0f} "
            f"{result.end_to_end_rate:>16,.0f} {result.end_to_end_rate / pgbench_tps:>13.2f}x"
        )
    print()
    print(
        f"pgbench TPC-B (scale {PGBENCH_SCALE}, {PGBENCH_CLIENTS} clients, "
        f"{PGBENCH_THREADS} threads, {config.pgbench_seconds} s): {pgbench_tps:,.0f} tps"
    )
    print(f"peak RSS of the benchmark process: {peak_rss_mib():.1f} MiB")
    print(
        f"CPU of the benchmark process in the cases: {run.cpu_seconds:.1f} s over "
        f"{run.wall_seconds:.1f} s wall ({run.cpu_seconds / run.wall_seconds:.0%} of one core)"
    )
    print(
        f"1-minute load average before / after: {load[0]:.2f} / {load[1]:.2f} "
        f"on {os.cpu_count()} CPUs"
    )
    print()
    print("ledger verification:")
    for check in run.checks:
        verdict = "ok     " if check.ok else f"FAILED  {check.violations} violations:"
        print(f"  {check.name:<25} {verdict} {check.detail}")
    statuses = ", ".join(
        f"{status} {count}" for status, count in sorted(run.transfer_statuses.items())
    )
    print(f"  transfers: {statuses}")
    all_completed = set(run.transfer_statuses) <= {"completed"}
    if not all_completed:
        print("  not every transfer completed")
    return all_completed and all(check.ok for check in run.checks)


# --- Entry point ---------------------------------------------------------------------------


def parse_config(argv: Sequence[str] | None) -> Config:
    parser = argparse.ArgumentParser(
        description="Transfers per second through coffer's service layer, next to pgbench."
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke test: few transfers and wallets, pgbench 5 s"
    )
    parser.add_argument(
        "--transfers",
        type=int,
        help="transfers per phase at batch size 100 (default 3000, quick 300); batch size 1 "
        "runs a tenth of it, 10 a half, 1000 twice as many",
    )
    parser.add_argument(
        "--pgbench-seconds", type=int, help="pgbench run length (default 20, quick 5)"
    )
    parser.add_argument("--wallets", type=int, help="funded wallets (default 1000, quick 200)")
    parser.add_argument("--accept-sessions", type=int, default=8)
    parser.add_argument("--processors", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    transfers = args.transfers or (300 if args.quick else 3_000)
    wallets = args.wallets or (200 if args.quick else 1_000)
    pgbench_seconds = args.pgbench_seconds or (5 if args.quick else 20)
    if min(transfers, wallets, pgbench_seconds, args.accept_sessions, args.processors) < 1:
        parser.error("counts and durations must be positive")
    if wallets < 2:
        parser.error("the uniform mix needs at least 2 wallets")
    return Config(
        transfers=transfers,
        wallets=wallets,
        accept_sessions=args.accept_sessions,
        accept_pool_size=args.accept_sessions + 2,
        processors=args.processors,
        pgbench_seconds=pgbench_seconds,
        seed=args.seed,
    )


def terminate_on_signal(signum: int, _frame: FrameType | None) -> None:
    # Outside the event loop: unwind normally, so the databases this run created are dropped.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    configure_logging("WARNING")
    signal.signal(signal.SIGTERM, terminate_on_signal)
    server = make_url(SERVER_URL)
    databases = BenchDatabases(server)
    load_before = os.getloadavg()[0]
    try:
        check_server(server)
        pgbench_tps = run_pgbench(databases.create(), config.pgbench_seconds)
        coffer_url = databases.create()
        progress(f"coffer: migrating {coffer_url.database}")
        upgrade_to_head(coffer_url.render_as_string(hide_password=False))
        try:
            run = asyncio.run(run_coffer(coffer_url, config))
        finally:
            # Closing the loop reset SIGTERM to the default; keep unwinding on it.
            signal.signal(signal.SIGTERM, terminate_on_signal)
    except BenchmarkError as error:
        progress(f"benchmark failed: {error}")
        return 1
    except asyncio.CancelledError:
        progress("terminated")
        return 128 + signal.SIGTERM
    finally:
        databases.drop_all()
    load = (load_before, os.getloadavg()[0])
    return 0 if print_report(run, pgbench_tps, config, load) else 1


if __name__ == "__main__":
    sys.exit(main())
