"""The seeded fault schedule and the injector that carries it out, one fault at a time.

Faults: `kill-api` SIGKILLs one API process (uvicorn's supervisor respawns it), `kill-worker`
SIGKILLs one `coffer worker` (respawned a second later, as a process supervisor would),
`restart-db` runs `pg_ctl restart -m fast` or `-m immediate` (a crash, recovered from the WAL),
`slow-db` holds a lock on a hot table for 2-7 s from a psql session (past the client's timeout),
`drop-broker` pauses the Redis broker (SIGSTOP, then SIGCONT) or kills it and starts it again
empty, for 3-10 s.
Each fault's window runs from its start until the system is whole again, plus a short tail, so
the report can show what clients saw while it lasted.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass

from coffer.check.broker import Broker
from coffer.check.cluster import Cluster
from coffer.check.system import Coffer

MIN_PER_FAULT = 2
SECONDS_PER_FAULT = 40
"""In a long run each fault comes back about this often."""
WINDOW_TAIL_SECONDS = 2.0
WORKER_DOWN_SECONDS = 1.0
RECOVERY_TIMEOUT_SECONDS = 180.0
SLOW_DB_VARIANTS = {
    # Blocks every read and write of a balance: the processor and intake's pre-check wait.
    "lock-ledger": "LOCK TABLE ledger_accounts IN ACCESS EXCLUSIVE MODE",
    # Blocks every new transfer row: intake stalls; settlement keeps going.
    "lock-transfers": "LOCK TABLE transfers IN EXCLUSIVE MODE",
}


@dataclass(frozen=True, slots=True)
class PlannedFault:
    at_seconds: float
    kind: str
    variant: str
    """restart-db: fast|immediate; slow-db: a SLOW_DB_VARIANTS name and seconds; drop-broker:
    pause|restart and seconds; kill-*: an index into the live processes."""


@dataclass(frozen=True, slots=True)
class FaultWindow:
    fault: PlannedFault
    started: float
    ended: float
    """Seconds since the workload began; `ended` includes the tail."""
    detail: str


def plan(seed: int, kinds: tuple[str, ...], seconds: float) -> list[PlannedFault]:
    """Every kind at least MIN_PER_FAULT times, spread over the run in a seeded order, leaving
    the first and last seconds quiet as a baseline."""
    rng = random.Random(f"{seed}/faults")
    per_kind = max(MIN_PER_FAULT, int(seconds // SECONDS_PER_FAULT))
    order = [kind for kind in kinds for _ in range(per_kind)]
    rng.shuffle(order)
    start, end = min(3.0, seconds * 0.1), seconds * 0.85
    step = (end - start) / max(1, len(order))
    faults = []
    counts: dict[str, int] = {}
    for index, kind in enumerate(order):
        counts[kind] = counts.get(kind, 0) + 1
        faults.append(
            PlannedFault(
                round(start + step * index + rng.uniform(0, step * 0.5), 2),
                kind,
                _variant(rng, kind, counts[kind]),
            )
        )
    return faults


def _variant(rng: random.Random, kind: str, occurrence: int) -> str:
    if kind == "restart-db":
        # Both modes in every run: the first two restarts take one each.
        return (
            ("fast", "immediate")[occurrence % 2]
            if occurrence <= 2
            else rng.choice(("fast", "immediate"))
        )
    if kind == "slow-db":
        name = (
            tuple(SLOW_DB_VARIANTS)[occurrence % 2]
            if occurrence <= 2
            else rng.choice(tuple(SLOW_DB_VARIANTS))
        )
        return f"{name}:{rng.uniform(2.0, 7.0):.1f}"
    if kind == "drop-broker":
        how = (
            ("pause", "restart")[occurrence % 2]
            if occurrence <= 2
            else rng.choice(("pause", "restart"))
        )
        return f"{how}:{rng.uniform(3.0, 10.0):.1f}"
    return str(rng.randrange(1_000_000))


class Injector:
    def __init__(
        self, cluster: Cluster, coffer: Coffer, epoch: float, broker: Broker | None = None
    ) -> None:
        self.cluster = cluster
        self.coffer = coffer
        self.broker = broker
        self.epoch = epoch
        self.windows: list[FaultWindow] = []

    def now(self) -> float:
        return time.monotonic() - self.epoch

    async def run(self, faults: list[PlannedFault]) -> None:
        """Each fault at its time, or as soon as the one before it is over."""
        for fault in faults:
            delay = fault.at_seconds - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            started = self.now()
            detail = await self._inject(fault)
            await asyncio.sleep(WINDOW_TAIL_SECONDS)
            self.windows.append(FaultWindow(fault, started, self.now(), detail))

    async def _inject(self, fault: PlannedFault) -> str:
        if fault.kind == "kill-api":
            return await self._kill_api(int(fault.variant))
        if fault.kind == "kill-worker":
            slot = int(fault.variant) % len(self.coffer.workers)
            self.coffer.kill_worker(slot)
            await asyncio.sleep(WORKER_DOWN_SECONDS)
            self.coffer.ensure_workers()
            return f"worker {slot} killed and respawned"
        if fault.kind == "restart-db":
            await asyncio.to_thread(self.cluster.restart, fault.variant)
            return f"pg_ctl restart -m {fault.variant}"
        if fault.kind == "drop-broker":
            return await self._drop_broker(fault.variant)
        name, seconds = fault.variant.split(":")
        sql = f"BEGIN; {SLOW_DB_VARIANTS[name]}; SELECT pg_sleep({seconds}); COMMIT;"
        process = await asyncio.create_subprocess_exec(
            *self.cluster.psql_command(sql),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await asyncio.wait_for(process.wait(), float(seconds) + RECOVERY_TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
        return f"{name} held {seconds} s"

    async def _drop_broker(self, variant: str) -> str:
        if self.broker is None:
            return "no broker to drop"
        how, seconds = variant.split(":")
        if how == "pause":
            self.broker.pause()
            await asyncio.sleep(float(seconds))
            self.broker.resume()
            return f"broker paused {seconds} s"
        self.broker.kill()
        await asyncio.sleep(float(seconds))
        await asyncio.to_thread(self.broker.start)
        return f"broker killed, empty again after {seconds} s"

    async def _kill_api(self, choice: int) -> str:
        """Kill one API process while every one is serving (so the kill is the only loss),
        then wait until its replacement serves too."""
        deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if len(self.coffer.serving_api_pids()) >= self.coffer.api_processes:
                break
            await asyncio.sleep(0.5)
        pids = self.coffer.api_pids()
        if not pids:
            return "no API process to kill"
        victim = pids[choice % len(pids)]
        os.kill(victim, signal.SIGKILL)
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            live = self.coffer.serving_api_pids()
            if victim not in live and len(live) >= self.coffer.api_processes:
                return f"API process {victim} killed, replacement serving"
        return f"API process {victim} killed, not replaced in {RECOVERY_TIMEOUT_SECONDS:g} s"
