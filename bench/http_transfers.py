"""HTTP transfers: coffer through its whole API under wrk, next to pgbench and a naive floor.

Why: DESIGN.md §11's target is measured at the HTTP edge -- complete more transfers per second
through the API than the same PostgreSQL server commits pgbench TPC-B transactions (issue 13).
bench/ledger_throughput.py measures the service layer; this one puts uvicorn, FastAPI,
authentication, the intake batcher and separate worker processes in front of it, and a load
generator (wrk, bench/loadgen.py) whose own CPU share of the machine it prints.

One run against one server (COFFER_BENCH_POSTGRES_URL), every ratio to that run's pgbench:

1. pgbench TPC-B: `-i -s 10`, then 8 clients, 2 threads, on a database of its own.
2. The naive reference (../shared/bench, bench/naive_reference.py), uniform and hot mixes.
3. A migrated coffer database with funded users made through the real services, each signed
   in once via `POST /api/v1/auth/login` (bench/http_population.py).
4. For 1 and 2 API processes (`coffer serve --workers N` plus `coffer worker`, which settles;
   bench/servers.py), the uniform mix and the hot one (half the transfers into one wallet),
   each at full load (wrk's connections as fast as answers come) and then paced at half that
   run's accepted rate (how: bench/loadgen.py). Accepted/s counts 2xx answers over wrk's time;
   completed/s counts the transfers the run stored, over the time from its first request until
   none is pending; p50/p99 are wrk's accept latencies. CPU seconds by who spent them: wrk, the
   API processes, the workers, and the rest of the machine (PostgreSQL, mostly), from /proc;
   peak RSS (VmHWM) per API process at the end of the server's runs. Then the batch
   endpoint: `POST /api/v1/transfers/batch` with 100 and 1,000 independent transfers per
   request (bench/batch.lua, 4 connections: each request is already a thousand transfers).
5. History: one user's wallet filled with 10^4, then 10^6 postings (bench/history_seed.py's
   SQL bulk path), the first page of `GET /api/v1/wallet/transactions` timed at each depth by
   wrk on one connection.
6. `verify_ledger` over everything written; a non-zero exit on any failed invariant, refused
   request or transfer that did not complete.

The machine may be shared: the report prints the load average before and after. Every
database is named `coffer_bench_<hex>`; exactly those are dropped, also on error.

    .venv/bin/python bench/http_transfers.py [--quick] [--seconds S] [--connections N]
        [--api-workers 1,2] [--naive-dir DIR] [--history-depths 10000,1000000]
        [--batch-sizes 100,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Sets cheap hashing and lifts the daily limit for this process before coffer reads settings.
from coffer.db import Database
from coffer.ledger.verify import InvariantCheck, verify_ledger
from coffer.logging import configure_logging
from coffer.migrate import upgrade_to_head
from history_seed import seed_credits
from http_population import Holder, SignedIn, populate, sign_in, write_users_file
from ledger_throughput import (
    SERVER_URL,
    BenchDatabases,
    BenchmarkError,
    check_server,
    progress,
    run_pgbench,
    terminate_on_signal,
)
from loadgen import BENCH_DIRECTORY, THREADS, WrkResult, run_wrk
from naive_reference import NaiveResult, locate, run_naive
from procstat import machine_cpu_seconds, tree_cpu_seconds
from servers import Coffer

MIXES = {"uniform": 0.0, "hot": 0.5}
"""Share of the transfers that go into one wallet."""
HALF = 0.5
WARM_UP_SECONDS = 3.0
SETTLE_TIMEOUT_SECONDS = 600
SETTLE_POLL_SECONDS = 0.25
"""How often the bench asks whether all transfers settled: the answer's time comes from the
last `settled_at`, not from the poll, so polling more often would only take CPU from the
workers being measured."""
HISTORY_PAGE_SIZE = 20
MAX_LOADGEN_SHARE = 0.20
"""The load generator must stay under this share of the machine's CPU to be no bottleneck."""


@dataclass(frozen=True, slots=True)
class Config:
    users: int
    seconds: float
    connections: int
    job_workers: int
    api_workers: tuple[int, ...]
    pgbench_seconds: int
    history_depths: tuple[int, ...]
    history_seconds: float
    batch_sizes: tuple[int, ...]
    batch_connections: int
    naive_directory: Path | None
    naive_skip_reason: str


@dataclass(frozen=True, slots=True)
class Workload:
    """What one wrk run sends: single transfers (transfers.lua) or batches (batch.lua)."""

    mix: str
    batch_size: int | None = None
    """Transfers per POST /transfers/batch; None for single transfers."""
    batch_mode: str = "independent"
    target_rate: float | None = None
    """Requests per second offered when paced; None at full load."""

    @property
    def label(self) -> str:
        if self.batch_size is not None:
            return f"{self.batch_mode} {self.batch_size:,}"
        return f"half ({self.target_rate:,.0f}/s)" if self.target_rate else "full"

    @property
    def items_per_request(self) -> int:
        return self.batch_size or 1

    def environment(self) -> dict[str, str]:
        environment = {"HOT_SHARE": str(MIXES[self.mix])}
        if self.batch_size is not None:
            environment |= {
                "BENCH_BATCH_SIZE": str(self.batch_size),
                "BENCH_BATCH_MODE": self.batch_mode,
            }
        if self.target_rate:
            environment["BENCH_THREAD_RATE"] = f"{self.target_rate / THREADS:.3f}"
        return environment


@dataclass(frozen=True, slots=True)
class TransferRun:
    api_workers: int
    workload: Workload
    load: WrkResult
    stored: int
    """Transfers this run stored (pending at first)."""
    settle_seconds: float
    """From the first request until the last of its transfers settled (its settled_at)."""
    cpu: dict[str, float]
    """CPU seconds during the load, by who spent them."""

    @property
    def accepted_rate(self) -> float:
        """Transfers answered as accepted, per second of wrk's time."""
        return self.load.ok_rate * self.workload.items_per_request

    @property
    def completed_rate(self) -> float:
        return self.stored / self.settle_seconds if self.stored and self.settle_seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class HistoryRun:
    postings: int
    load: WrkResult


@dataclass(slots=True)
class Results:
    pgbench_tps: float = 0.0
    naive: list[NaiveResult] = field(default_factory=list)
    transfers: list[TransferRun] = field(default_factory=list)
    peak_rss_mib: dict[int, list[float]] = field(default_factory=dict)
    """API process count -> each API process's peak RSS."""
    history: list[HistoryRun] = field(default_factory=list)
    checks: list[InvariantCheck] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)


# --- Database probes -----------------------------------------------------------------------


async def _scalar(url: URL, sql: str) -> int:
    database = Database(url.render_as_string(hide_password=False), pool_size=1)
    try:
        async with database.transaction() as session:
            return int(await session.scalar(text(sql)) or 0)
    finally:
        await database.dispose()


def transfer_count(url: URL) -> int:
    return asyncio.run(_scalar(url, "SELECT COUNT(*) FROM transfers"))


async def _wait_until_settled(url: URL) -> float:
    """Wait until no transfer is pending; returns when the last one settled (Unix time, the
    workers' clock: the same machine's)."""
    database = Database(url.render_as_string(hide_password=False), pool_size=1)
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    try:
        while True:
            async with database.transaction() as session:
                pending = await session.scalar(
                    text("SELECT COUNT(*) FROM transfers WHERE status = 'pending'")
                )
                if not pending:
                    last = await session.scalar(text("SELECT MAX(settled_at) FROM transfers"))
                    return last.timestamp() if last is not None else time.time()
            if time.monotonic() > deadline:
                raise BenchmarkError(f"{pending} transfers still pending after the timeout")
            await asyncio.sleep(SETTLE_POLL_SECONDS)
    finally:
        await database.dispose()


async def _analyze(url: URL) -> None:
    """Refresh the planner's statistics between runs (outside the measured time), as
    autovacuum does in a running service at every 10% of growth.

    Why: a run grows the transfer, entry and history tables from a few rows to hundreds of
    thousands in a minute, faster than autovacuum's one-minute nap. A table analyzed while it
    held a page of rows gets generic plans with sequential scans (`UPDATE transfers ... WHERE
    id = $1` read every row), which each connection keeps until the next ANALYZE; the next run
    would then measure the stale statistics, not coffer."""
    database = Database(url.render_as_string(hide_password=False), pool_size=1)
    try:
        async with database.transaction() as session:
            await session.execute(text("ANALYZE"))
    finally:
        await database.dispose()


async def _verify(url: URL) -> tuple[list[InvariantCheck], dict[str, int]]:
    database = Database(url.render_as_string(hide_password=False), pool_size=1)
    try:
        async with database.transaction() as session:
            checks = await verify_ledger(session)
            rows = await session.execute(text("SELECT status, COUNT(*) FROM transfers GROUP BY 1"))
            statuses = {str(status): int(count) for status, count in rows}
    finally:
        await database.dispose()
    return checks, statuses


# --- Runs ----------------------------------------------------------------------------------


def run_transfers(
    coffer: Coffer,
    url: URL,
    users_file: Path,
    config: Config,
    workload: Workload,
    *,
    warm_up: bool = False,
) -> TransferRun:
    """One wrk run, then the wait until the workers settled everything it stored.

    A warm-up run (shorter, not reported) lets each fresh process fill its caches and pools:
    the first requests to a new API process are many times slower than the rest.
    """
    label = f"{coffer.label}, {workload.mix}, {'warm-up' if warm_up else workload.label}"
    batched = workload.batch_size is not None
    seconds = min(WARM_UP_SECONDS, config.seconds) if warm_up else config.seconds
    progress(f"{label}: {seconds:g} s")
    stored_before = transfer_count(url)
    api, workers = [coffer.server.pid], coffer.worker_pids
    before = (tree_cpu_seconds(api), tree_cpu_seconds(workers), machine_cpu_seconds())
    started = time.time()
    load = run_wrk(
        f"{coffer.base_url}/",
        BENCH_DIRECTORY / ("batch.lua" if batched else "transfers.lua"),
        seconds=seconds,
        connections=config.batch_connections if batched else config.connections,
        environment={
            "BENCH_USERS_FILE": str(users_file),
            "BENCH_RUN": uuid.uuid4().hex[:12],
            "BENCH_SEED": str(len(label)),
            **workload.environment(),
        },
    )
    after = (tree_cpu_seconds(api), tree_cpu_seconds(workers), machine_cpu_seconds())
    # Requests wrk stopped waiting for may still be stored: let the API finish them first.
    coffer.wait_until_idle(coffer.api_workers)
    settled = asyncio.run(_wait_until_settled(url))
    api_cpu, worker_cpu = after[0] - before[0], after[1] - before[1]
    run = TransferRun(
        api_workers=coffer.api_workers,
        workload=workload,
        load=load,
        stored=transfer_count(url) - stored_before,
        settle_seconds=settled - started,
        cpu={
            "wrk": load.cpu_seconds,
            "api": api_cpu,
            "workers": worker_cpu,
            "rest": max(0.0, after[2] - before[2] - load.cpu_seconds - api_cpu - worker_cpu),
        },
    )
    progress(
        f"{label}: {run.accepted_rate:,.0f}/s accepted, {run.completed_rate:,.0f}/s completed, "
        f"p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms"
        + (f", {load.errors} refused, first: {load.first_error}" if load.errors else "")
    )
    asyncio.run(_analyze(url))
    return run


def run_history(coffer: Coffer, url: URL, holder: SignedIn, config: Config) -> list[HistoryRun]:
    """Deepen one wallet's history step by step and time its first page at each depth."""
    runs, postings = [], 0
    for depth in config.history_depths:
        progress(f"history: seeding {depth - postings:,} postings into one wallet")
        asyncio.run(seed_credits(url, holder.wallet_number, depth - postings))
        postings = depth
        load = run_wrk(
            f"{coffer.base_url}/",
            BENCH_DIRECTORY / "history.lua",
            seconds=config.history_seconds,
            connections=1,
            threads=1,
            environment={"BENCH_TOKEN": holder.token, "BENCH_PAGE_SIZE": str(HISTORY_PAGE_SIZE)},
        )
        progress(f"history at {depth:,} postings: p50 {load.p50_ms:.2f} ms")
        runs.append(HistoryRun(depth, load))
    return runs


def run_coffer(url: URL, config: Config, workdir: Path, results: Results) -> None:
    progress(f"coffer: migrating {url.database}, {config.users} funded users")
    upgrade_to_head(url.render_as_string(hide_password=False))
    holders = asyncio.run(populate(url, config.users))
    (history_holder,) = asyncio.run(populate(url, 1, funded=False))
    users_file: Path | None = None
    history_user: SignedIn | None = None
    for index, api_workers in enumerate(config.api_workers):
        with Coffer(
            url.render_as_string(hide_password=False), api_workers, config.job_workers
        ) as coffer:
            if users_file is None:
                users_file, history_user = _sign_in_all(coffer, holders, history_holder, workdir)
            run_transfers(coffer, url, users_file, config, Workload("uniform"), warm_up=True)
            for mix in MIXES:
                full = run_transfers(coffer, url, users_file, config, Workload(mix))
                results.transfers.append(full)
                if full.load.ok_rate > 0:
                    half = Workload(mix, target_rate=full.load.ok_rate * HALF)
                    results.transfers.append(run_transfers(coffer, url, users_file, config, half))
            for size in config.batch_sizes:
                batch = Workload("uniform", batch_size=size)
                results.transfers.append(run_transfers(coffer, url, users_file, config, batch))
            if index == len(config.api_workers) - 1 and history_user is not None:
                results.history = run_history(coffer, url, history_user, config)
            results.peak_rss_mib[api_workers] = coffer.peak_rss_mib()
    progress("verify_ledger")
    results.checks, results.statuses = asyncio.run(_verify(url))


def _sign_in_all(
    coffer: Coffer, holders: Sequence[Holder], history_holder: Holder, workdir: Path
) -> tuple[Path, SignedIn]:
    """Everyone signs in once; the tokens stay good across the servers' restarts."""
    signed_in = asyncio.run(sign_in(coffer.base_url, [*holders, history_holder]))
    history = next(u for u in signed_in if u.wallet_number == history_holder.wallet_number)
    senders = [u for u in signed_in if u is not history]
    progress(f"coffer: {len(signed_in)} users signed in through POST /api/v1/auth/login")
    return write_users_file(workdir / "users.txt", senders), history


# --- Report --------------------------------------------------------------------------------


def _ratio(rate: float, pgbench_tps: float) -> str:
    return f"{rate / pgbench_tps:.2f}x" if pgbench_tps else "-"


def _row(
    name: str,
    mix: str,
    load_label: str,
    load: WrkResult,
    accepted: float,
    completed: float,
    pgbench: float,
    cpu: str,
) -> str:
    return (
        f"{name:<14} {mix:<8} {load_label:<17} {accepted:>10,.0f} {completed:>11,.0f} "
        f"{_ratio(completed, pgbench):>9} {load.p50_ms:>7.1f} {load.p99_ms:>7.1f} "
        f"{load.machine_share():>7.1%} {load.errors:>6} {load.timeouts:>8}  {cpu}"
    )


def print_report(config: Config, results: Results, load_average: tuple[float, float]) -> bool:
    pgbench = results.pgbench_tps
    print(
        f"coffer over HTTP: wrk {THREADS} threads, {config.connections} connections, "
        f"{config.seconds:g} s per run; {config.users} users; {config.job_workers} worker "
        f"process(es); {os.cpu_count()} CPUs; load average {load_average[0]:.1f} before, "
        f"{load_average[1]:.1f} after"
    )
    print(
        f"pgbench TPC-B (scale 10, 8 clients, 2 threads, {config.pgbench_seconds} s): "
        f"{pgbench:,.0f} tps (1.00x)"
    )
    print()
    header = (
        f"{'server':<14} {'mix':<8} {'load':<17} {'accepted/s':>10} {'completed/s':>11} "
        f"{'x pgbench':>9} {'p50 ms':>7} {'p99 ms':>7} {'wrk CPU':>7} {'errors':>6} "
        f"{'timeouts':>8}  CPU s: wrk / server / workers / rest"
    )
    print(header)
    print("-" * len(header))
    if config.naive_directory is None:
        print(f"naive reference skipped: {config.naive_skip_reason}")
    for naive in results.naive:
        rest = max(
            0.0, naive.machine_cpu_seconds - naive.server_cpu_seconds - naive.load.cpu_seconds
        )
        cpu = f"{naive.load.cpu_seconds:.1f} / {naive.server_cpu_seconds:.1f} / - / {rest:.1f}"
        rate = naive.load.ok_rate
        print(_row("naive (2 proc)", naive.mix, "full", naive.load, rate, rate, pgbench, cpu))
    for run in results.transfers:
        cpu = " / ".join(f"{run.cpu[k]:.1f}" for k in ("wrk", "api", "workers", "rest"))
        print(
            _row(
                f"coffer, {run.api_workers} API",
                run.workload.mix,
                run.workload.label,
                run.load,
                run.accepted_rate,
                run.completed_rate,
                pgbench,
                cpu,
            )
        )
    print(
        "accepted/s: transfers answered 2xx over wrk's time; completed/s: transfers stored "
        "by the run, "
        "settled from its first request until none was pending (coffer) or committed (naive); "
        "wrk CPU: wrk's own share of all CPUs"
    )
    for api_workers, rss in results.peak_rss_mib.items():
        print(
            f"peak RSS per API process, {api_workers} API: "
            + ", ".join(f"{mib:.0f} MiB" for mib in rss)
        )
    _print_history(results.history)
    loadgen_ok = _print_loadgen_share(results)
    print()
    print("ledger verification:")
    for check in results.checks:
        verdict = "ok     " if check.ok else f"FAILED  {check.violations} violations:"
        print(f"  {check.name:<25} {verdict} {check.detail}")
    print("  transfers: " + ", ".join(f"{s} {n}" for s, n in sorted(results.statuses.items())))
    all_completed = set(results.statuses) <= {"completed"}
    if not all_completed:
        print("  not every transfer completed")
    refused = sum(run.load.errors for run in results.transfers)
    if refused:
        print(f"  {refused} requests refused")
    return all_completed and not refused and loadgen_ok and all(c.ok for c in results.checks)


def _print_history(history: Sequence[HistoryRun]) -> None:
    if not history:
        return
    print(
        f"history page (GET /api/v1/wallet/transactions, first {HISTORY_PAGE_SIZE} rows, "
        "one connection):"
    )
    for run in history:
        print(
            f"  {run.postings:>9,} postings in the wallet: p50 {run.load.p50_ms:.2f} ms, "
            f"p99 {run.load.p99_ms:.2f} ms, {run.load.ok_rate:,.0f} pages/s, "
            f"errors {run.load.errors}"
        )
    shallow, deep = history[0], history[-1]
    if len(history) > 1 and shallow.load.p50_ms:
        print(
            f"  p50 at {deep.postings:,} / p50 at {shallow.postings:,}: "
            f"{deep.load.p50_ms / shallow.load.p50_ms:.2f}x"
        )


def _print_loadgen_share(results: Results) -> bool:
    loads = [n.load for n in results.naive] + [r.load for r in results.transfers]
    if not loads:
        return True
    highest = max(load.machine_share() for load in loads)
    verdict = "under" if highest < MAX_LOADGEN_SHARE else "OVER"
    print(f"load generator: wrk at most {highest:.1%} of the machine's CPU ({verdict} 20%)")
    return highest < MAX_LOADGEN_SHARE


# --- Entry point ---------------------------------------------------------------------------


def _counts(value: str) -> tuple[int, ...]:
    return tuple(int(part) for part in value.split(",") if part.strip())


def parse_config(argv: Sequence[str] | None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of about 3 minutes")
    parser.add_argument("--seconds", type=float, help="wrk time per run (20; quick 4)")
    parser.add_argument("--users", type=int, help="funded, signed-in users (1000; quick 200)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--job-workers", type=int, default=1, help="`coffer worker` processes")
    parser.add_argument("--api-workers", default="1,2", help="API process counts, comma-separated")
    parser.add_argument("--pgbench-seconds", type=int, help="pgbench run length (20; quick 5)")
    parser.add_argument(
        "--history-depths",
        help="postings in the history wallet at each timing (10000,1000000; quick 10000,100000)",
    )
    parser.add_argument(
        "--batch-sizes", default="100,1000", help="transfers per batch request, comma-separated"
    )
    parser.add_argument(
        "--batch-connections", type=int, default=4, help="wrk connections for batch requests"
    )
    parser.add_argument(
        "--naive-dir", help="where naive_ref.py and naive.lua are (or COFFER_BENCH_NAIVE_DIR)"
    )
    args = parser.parse_args(argv)
    naive_directory, naive_skip_reason = locate(args.naive_dir)
    depths = args.history_depths or ("10000,100000" if args.quick else "10000,1000000")
    config = Config(
        users=args.users or (200 if args.quick else 1_000),
        seconds=args.seconds or (4.0 if args.quick else 20.0),
        connections=args.connections,
        job_workers=args.job_workers,
        api_workers=_counts(args.api_workers),
        pgbench_seconds=args.pgbench_seconds or (5 if args.quick else 20),
        history_depths=tuple(sorted(_counts(depths))),
        history_seconds=2.0 if args.quick else 5.0,
        batch_sizes=_counts(args.batch_sizes),
        batch_connections=args.batch_connections,
        naive_directory=naive_directory,
        naive_skip_reason=naive_skip_reason,
    )
    positive = (config.seconds, config.connections, config.batch_connections)
    if min(config.users - 2, *positive, *config.api_workers, *config.batch_sizes, 1) <= 0:
        parser.error("counts and durations must be positive (and at least 3 users)")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    configure_logging("WARNING")
    signal.signal(signal.SIGTERM, terminate_on_signal)
    server = make_url(SERVER_URL)
    databases = BenchDatabases(server)
    results = Results()
    load_before = os.getloadavg()[0]
    try:
        check_server(server)
        results.pgbench_tps = run_pgbench(databases.create(), config.pgbench_seconds)
        if config.naive_directory is not None:
            progress(f"naive reference from {config.naive_directory}")
            results.naive = run_naive(
                config.naive_directory,
                databases.create(),
                MIXES,
                config.seconds,
                config.connections,
            )
        with tempfile.TemporaryDirectory(prefix="coffer-bench-") as workdir:
            run_coffer(databases.create(), config, Path(workdir), results)
    except BenchmarkError as error:
        progress(f"benchmark failed: {error}")
        return 1
    finally:
        databases.drop_all()
    return 0 if print_report(config, results, (load_before, os.getloadavg()[0])) else 1


if __name__ == "__main__":
    sys.exit(main())
