"""The users the HTTP benchmark drives: funded through the real services, signed in over HTTP.

Users are made with `create_user` and funded with `wallets.adjust` (bench/ledger_throughput.py's
`make_bench_user`), then each signs in once through `POST /api/v1/auth/login`; the access
tokens (valid a day, see servers.COFFER_ENVIRONMENT) outlive the servers' restarts. The lua
scripts read them from a file: one "access_token wallet_number" line per user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import URL

from coffer.db import Database
from ledger_throughput import BenchmarkError, make_bench_user, run_pool

PASSWORD = "bench-password-0123"  # noqa: S105 - throwaway users in a throwaway database
USERS_PER_TRANSACTION = 50
SETUP_SESSIONS = 4
SIGN_IN_CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class Holder:
    email: str
    wallet_number: str


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str
    wallet_number: str


async def populate(url: URL, count: int, *, funded: bool = True) -> list[Holder]:
    """`count` users with (if `funded`) far more money than any run spends."""
    database = Database(url.render_as_string(hide_password=False), pool_size=SETUP_SESSIONS)
    holders: list[Holder] = []

    async def make(batch: int) -> None:
        async with database.transaction() as session:
            for _ in range(batch):
                new = await make_bench_user(session, funded=funded, password=PASSWORD)
                holders.append(Holder(new.user.email, new.primary_wallet.number))

    try:
        full, rest = divmod(count, USERS_PER_TRANSACTION)
        chunks = [USERS_PER_TRANSACTION] * full + ([rest] if rest else [])
        await run_pool(chunks, SETUP_SESSIONS, make)
        async with database.transaction() as session:
            await session.execute(text("ANALYZE"))
    finally:
        await database.dispose()
    return holders


async def sign_in(base_url: str, holders: Sequence[Holder]) -> list[SignedIn]:
    signed_in: list[SignedIn] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def one(holder: Holder) -> None:
            response = await client.post(
                "/api/v1/auth/login", json={"email": holder.email, "password": PASSWORD}
            )
            if response.status_code != 200:
                raise BenchmarkError(f"sign-in refused: {response.status_code} {response.text}")
            signed_in.append(
                SignedIn(response.json()["data"]["access_token"], holder.wallet_number)
            )

        await run_pool(holders, SIGN_IN_CONCURRENCY, one)
    return signed_in


def write_users_file(path: Path, users: Sequence[SignedIn]) -> Path:
    path.write_text("".join(f"{user.token} {user.wallet_number}\n" for user in users))
    return path
