"""`coffer check bank`: set up, drive the workload under the fault schedule, settle, judge.

Everything is bounded: the driving time, requests per client, each request's retries, the
settling wait. Every process and the temporary cluster are removed on the way out, on an error
or Ctrl-C too.
"""

from __future__ import annotations

import asyncio
import random
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
from coffer.check import webhooks
from coffer.check.broker import Broker
from coffer.check.client import Intent, sign_in
from coffer.check.cluster import Cluster, ClusterError
from coffer.check.faults import Injector, PlannedFault
from coffer.check.logs import unhandled_errors
from coffer.check.observe import (
    Observation,
    Row,
    WithdrawalRow,
    replay,
    settle_and_read,
    status_of,
    unchosen_deposits,
)
from coffer.check.report import print_report
from coffer.check.system import (
    PASSWORD,
    Coffer,
    Holder,
    StartError,
    add_destinations,
    populate,
    run_migrations,
)
from coffer.check.verdict import confirm_replays, judge, unknown_but_applied, window_stats
from coffer.check.workload import Client, Recorder, choose, drive
from coffer.kit.money import Money

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
    broker: bool = False
    """Celery mode on the checker's own Redis; implied by the drop-broker fault."""

    @property
    def uses_broker(self) -> bool:
        return self.broker or "drop-broker" in self.faults


def progress(message: str) -> None:
    print(f"[check] {message}", file=sys.stderr, flush=True)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


async def _sign_in_all(base_url: str, holders: list[Holder]) -> list[str]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        return list(await asyncio.gather(*(sign_in(client, h.email, PASSWORD) for h in holders)))


async def _exercise(
    config: BankConfig,
    cluster: Cluster,
    coffer: Coffer,
    holders: list[Holder],
    broker: Broker | None,
) -> bool:
    tokens = await _sign_in_all(coffer.base_url, holders)
    holders = await add_destinations(coffer.base_url, holders, tokens)
    schedule: list[PlannedFault] = fault_schedule.plan(config.seed, config.faults, config.seconds)
    progress(f"driving {config.clients} clients for {config.seconds:g} s, {len(schedule)} faults")
    epoch = time.monotonic()
    injector = Injector(cluster, coffer, epoch, broker)
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
            coffer.webhook_secret,
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
    progress("settling: broker and workers back, waiting for pending work")
    if broker is not None:
        broker.resume()
        if broker.process is None or broker.process.poll() is not None:
            broker.start()
    coffer.ensure_workers()
    coffer.wait_until_up()
    first = await settle_and_read(cluster.url)
    applied_unknown = unknown_but_applied(recorder, holders, first)
    replays = [
        (await replay(coffer.base_url, tokens[intent.sender], intent, epoch), row)
        for intent, row in applied_unknown
    ]
    await _finish_payments(coffer, holders, tokens, recorder, first, epoch)
    progress("settling again after the late checkout choices and redelivered webhooks")
    seen = await settle_and_read(cluster.url)
    statuses = await status_of(
        coffer.base_url,
        [(tokens[i.sender], i.kind, r) for i in recorder.intents for r in sorted(i.references)]
        + [(tokens[i.sender], i.kind, row.reference) for i, row in applied_unknown],
    )
    verdict = judge(recorder, holders, seen, statuses)
    confirm_replays(verdict, replays, statuses)
    verdict.unhandled_errors = unhandled_errors(coffer.logs)
    print_report(
        config,
        len(schedule),
        injector.windows,
        recorder,
        verdict,
        window_stats(recorder, injector.windows),
        _outcomes(seen),
        seen,
        drove_seconds,
    )
    return verdict.ok


async def _finish_payments(
    coffer: Coffer,
    holders: list[Holder],
    tokens: list[str],
    recorder: Recorder,
    seen: Observation,
    epoch: float,
) -> None:
    """As payers and the provider would, later: every checkout nobody answered (its client
    gave up, or its deposit was found only by a replay) is answered now, and every webhook of
    every settled deposit and withdrawal is delivered once more (each must change nothing)."""
    by_email = {h.email: i for i, h in enumerate(holders)}
    async with (
        httpx.AsyncClient(base_url=coffer.base_url) as first,
        httpx.AsyncClient(base_url=coffer.base_url) as second,
    ):
        client = Client(
            random.Random(0), holders, tokens, recorder, epoch, first, second, coffer.webhook_secret
        )
        for reference, email, amount_minor, currency in await unchosen_deposits(
            coffer.environment["COFFER_DATABASE_URL"]
        ):
            pay = recorder.choices.get(reference, True)
            await choose(client, by_email[email], reference, Money.of(amount_minor, currency), pay)
        for delivery in _redeliveries(coffer.webhook_secret, seen, by_email):
            await client.follow(delivery)


def _redeliveries(secret: str, seen: Observation, by_email: dict[str, int]) -> list[Intent]:
    found = [
        webhooks.charge_delivery(
            secret,
            by_email[d.sender_email],
            d.reference,
            d.amount_minor,
            d.currency,
            d.status == "success",
        )
        for d in seen.deposits
        if d.status in ("success", "failed")
    ]
    for w in seen.withdrawals:
        if _sandbox_sent_events(w):
            found.extend(
                webhooks.payout_deliveries(
                    secret,
                    by_email[w.sender_email],
                    w.reference,
                    w.amount_minor,
                    w.currency,
                    w.status,
                )
            )
    return found


def _sandbox_sent_events(withdrawal: WithdrawalRow) -> bool:
    """An OTP refusal or a refused payout had no webhook to send again."""
    return withdrawal.failure_reason not in ("payout_requires_otp", "provider_refused")


def _outcomes(seen: Observation) -> Counter[str]:
    rows: list[Row] = [*seen.transfers, *seen.deposits, *seen.withdrawals]
    return Counter(
        f"{type(row).__name__.removesuffix('Row').lower()} {row.status}"
        + (f" ({reason})" if (reason := getattr(row, "failure_reason", None)) else "")
        for row in rows
    )


def run(config: BankConfig) -> int:
    """The whole check; 0 when no violation was found, 1 otherwise (2 if it could not run)."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    cluster: Cluster | None = None
    coffer: Coffer | None = None
    broker: Broker | None = None
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
        if config.uses_broker:
            broker = Broker()
            broker.start()
            progress(f"Redis broker on 127.0.0.1:{broker.port}: Celery workers and beat")
        coffer = Coffer(
            cluster.url,
            config.api_processes,
            config.workers,
            logs,
            broker.url if broker is not None else None,
        )
        coffer.start()
        ok = asyncio.run(_exercise(config, cluster, coffer, holders, broker))
    except KeyboardInterrupt:
        progress(f"interrupted: cleaned up; process logs in {logs}")
        return 130
    except (ClusterError, StartError) as error:
        progress(f"could not run: {error}; process logs in {logs}")
        return 2
    finally:
        if coffer is not None:
            coffer.stop()
        if broker is not None:
            broker.destroy()
        if cluster is not None:
            cluster.destroy()
        signal.signal(signal.SIGTERM, previous)
    if ok:
        shutil.rmtree(logs, ignore_errors=True)
        return 0
    progress(f"violations found; process logs kept in {logs}")
    return 1
