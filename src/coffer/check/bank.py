"""`coffer check bank`: set up, drive the workload under the fault schedule, settle, judge.

Everything is bounded: the driving time, requests per client, each request's retries, the
settling wait. Every process and the temporary cluster are removed on the way out, on an error
or Ctrl-C too.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx

from coffer.check import faults as fault_schedule
from coffer.check.client import sign_in
from coffer.check.cluster import Cluster, ClusterError
from coffer.check.faults import Injector, PlannedFault
from coffer.check.observe import replay, settle_and_read, status_of
from coffer.check.report import print_report
from coffer.check.system import PASSWORD, Coffer, Holder, StartError, populate, run_migrations
from coffer.check.verdict import confirm_replays, judge, unknown_but_applied, window_stats
from coffer.check.workload import drive

USERS_PER_CLIENT = 4
MIN_USERS = 9
"""Three per currency at least, so each has a same-currency recipient."""
MAX_OVERRUN_SECONDS = 300.0
"""The workload keeps going while late faults finish, but no longer than this."""


@dataclass(frozen=True, slots=True)
class BankConfig:
    seconds: float
    api_processes: int
    workers: int
    faults: tuple[str, ...]
    seed: int
    clients: int


def progress(message: str) -> None:
    print(f"[check] {message}", file=sys.stderr, flush=True)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


async def _sign_in_all(base_url: str, holders: list[Holder]) -> list[str]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        return list(await asyncio.gather(*(sign_in(client, h.email, PASSWORD) for h in holders)))


async def _exercise(
    config: BankConfig, cluster: Cluster, coffer: Coffer, holders: list[Holder]
) -> bool:
    tokens = await _sign_in_all(coffer.base_url, holders)
    schedule: list[PlannedFault] = fault_schedule.plan(config.seed, config.faults, config.seconds)
    progress(f"driving {config.clients} clients for {config.seconds:g} s, {len(schedule)} faults")
    epoch = time.monotonic()
    injector = Injector(cluster, coffer, epoch)
    stop = asyncio.Event()
    clients = asyncio.create_task(
        drive(
            config.seed,
            config.clients,
            coffer.base_url,
            holders,
            tokens,
            stop,
            epoch,
            config.seconds,
        )
    )
    faults = asyncio.create_task(injector.run(schedule))
    await asyncio.sleep(config.seconds)
    try:
        await asyncio.wait_for(asyncio.shield(faults), MAX_OVERRUN_SECONDS)
    except TimeoutError:
        faults.cancel()
    stop.set()
    recorder = await clients
    drove_seconds = time.monotonic() - epoch
    progress("settling: workers respawned, waiting for pending transfers")
    coffer.ensure_workers()
    coffer.wait_until_up()
    seen = await settle_and_read(cluster.url)
    applied_unknown = unknown_but_applied(recorder, holders, seen)
    replays = [
        (await replay(coffer.base_url, tokens[intent.sender], intent, epoch), row)
        for intent, row in applied_unknown
    ]
    statuses = await status_of(
        coffer.base_url,
        [(tokens[i.sender], r) for i in recorder.intents for r in sorted(i.references)]
        + [(tokens[i.sender], row.reference) for i, row in applied_unknown],
    )
    verdict = judge(recorder, holders, seen, statuses)
    confirm_replays(verdict, replays, statuses)
    outcomes = Counter(
        row.status if row.failure_reason is None else f"failed: {row.failure_reason}"
        for row in seen.transfers
    )
    print_report(
        config,
        len(schedule),
        injector.windows,
        recorder,
        verdict,
        window_stats(recorder, injector.windows),
        outcomes,
        seen,
        drove_seconds,
    )
    return verdict.ok


def run(config: BankConfig) -> int:
    """The whole check; 0 when no violation was found, 1 otherwise (2 if it could not run)."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    cluster: Cluster | None = None
    coffer: Coffer | None = None
    logs = Path(tempfile.mkdtemp(prefix="coffer-check-logs-"))
    try:
        cluster = Cluster()
        progress(f"PostgreSQL {cluster.bindir} on 127.0.0.1:{cluster.port} in {cluster.root}")
        cluster.create()
        run_migrations(cluster.url, logs)
        holders = asyncio.run(
            populate(cluster.url, max(MIN_USERS, config.clients * USERS_PER_CLIENT))
        )
        progress(
            f"{len(holders)} funded users; starting {config.api_processes} API processes, "
            f"{config.workers} workers"
        )
        coffer = Coffer(cluster.url, config.api_processes, config.workers, logs)
        coffer.start()
        ok = asyncio.run(_exercise(config, cluster, coffer, holders))
    except KeyboardInterrupt:
        progress(f"interrupted: cleaned up; process logs in {logs}")
        return 130
    except (ClusterError, StartError) as error:
        progress(f"could not run: {error}; process logs in {logs}")
        return 2
    finally:
        if coffer is not None:
            coffer.stop()
        if cluster is not None:
            cluster.destroy()
        signal.signal(signal.SIGTERM, previous)
    if ok:
        shutil.rmtree(logs, ignore_errors=True)
        return 0
    progress(f"violations found; process logs kept in {logs}")
    return 1
