"""The naive reference of ../shared/bench/ (naive_ref.py + naive.lua), run where it lies.

It is the floor coffer is held against: FastAPI + asyncpg, one transaction per request, no
auth, no idempotency, no history. It is not part of this repository, so it is run from its own
directory (`--naive-dir` or COFFER_BENCH_NAIVE_DIR, by default ../shared/bench next to the
repository) and skipped, with the reason printed, when that directory lacks it.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL

from loadgen import WrkResult, run_wrk
from procstat import machine_cpu_seconds, tree_cpu_seconds
from servers import NaiveReference

DEFAULT_DIRECTORY = Path(__file__).resolve().parents[1].parent / "shared" / "bench"
ACCOUNTS = 1_000
OPENING_BALANCE = 10**12
"""Far more than any run moves (naive.lua sends 1 per transfer), so no request is refused."""
FILES = ("naive_ref.py", "naive.lua")


@dataclass(frozen=True, slots=True)
class NaiveResult:
    mix: str
    load: WrkResult
    server_cpu_seconds: float
    machine_cpu_seconds: float


def locate(directory: str | None) -> tuple[Path | None, str]:
    """The reference's directory, or None and why it is skipped."""
    chosen = Path(directory or os.environ.get("COFFER_BENCH_NAIVE_DIR") or DEFAULT_DIRECTORY)
    missing = [name for name in FILES if not (chosen / name).is_file()]
    if missing:
        return None, f"{', '.join(missing)} not found in {chosen} (set --naive-dir)"
    return chosen, ""


async def _prepare(dsn: str) -> None:
    """The schema naive_ref.py's README asks for, with funded accounts 1..ACCOUNTS."""
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await connection.execute(
            "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint CHECK (balance >= 0));"
            "CREATE TABLE entries (id bigserial PRIMARY KEY, src int, dst int, amount bigint,"
            " at timestamptz DEFAULT now());"
        )
        await connection.execute(
            "INSERT INTO accounts SELECT g, $1 FROM generate_series(1, $2) AS g",
            OPENING_BALANCE,
            ACCOUNTS,
        )
    finally:
        await connection.close()


def run_naive(
    directory: Path, url: URL, mixes: dict[str, float], seconds: float, connections: int
) -> list[NaiveResult]:
    """Each mix (name -> share of transfers into account 1) against 2 uvicorn workers."""
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    asyncio.run(_prepare(dsn))
    results = []
    with NaiveReference(directory, dsn) as server:
        for mix, hot_share in mixes.items():
            before = (tree_cpu_seconds([server.server.pid]), machine_cpu_seconds())
            load = run_wrk(
                f"{server.base_url}/transfer",
                directory / "naive.lua",
                seconds=seconds,
                connections=connections,
                environment={"ACCOUNTS": str(ACCOUNTS), "HOT_SHARE": str(hot_share)},
            )
            results.append(
                NaiveResult(
                    mix,
                    load,
                    tree_cpu_seconds([server.server.pid]) - before[0],
                    machine_cpu_seconds() - before[1],
                )
            )
    return results
