"""The system under test: coffer's processes on the private cluster, and its funded users.

`coffer migrate`, `coffer serve --workers N` and `coffer worker` run as separate processes with
COFFER_WORKER_MODE=external, as an operator runs them; with a broker (the checker's own Redis)
the workers are Celery workers and one `coffer beat` sweeps the outbox. The users are made in
this process through the identity and wallet services (one transaction per chunk, no
subprocess per user); their payout destinations through the API, as a signed-in user adds one.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from coffer.check.cluster import free_port
from coffer.db import Database
from coffer.identity.service import create_user
from coffer.kit.money import Money
from coffer.settings import Settings
from coffer.wallets import service as wallets

COFFER = str(Path(sys.executable).with_name("coffer"))
PASSWORD = "check-bank-password-0"  # noqa: S105 - throwaway users in a throwaway cluster
CURRENCIES = ("NGN", "USD", "EUR")
"""Primary wallet currencies, round robin; the migration seeds fixed rates between them."""
FUNDING_MINOR = {"NGN": 50_000_000, "USD": 50_000, "EUR": 50_000}
"""500,000.00 NGN, 500.00 USD or EUR each: enough for most transfers, not for all."""
USERS_PER_TRANSACTION = 25
START_TIMEOUT_SECONDS = 240
"""Until `coffer serve` answers /healthz: its processes import and connect on a loaded machine."""
STOP_TIMEOUT_SECONDS = 30
PAYOUT_ACCOUNTS = {
    "pays": "0123451234",
    "fails": "0123450000",
    "asks-otp": "0123451111",
    "reversed": "0123459999",
}
"""A payout destination per sandbox outcome (it decides by the account's last four digits)."""
SERVER_ENVIRONMENT = {
    "COFFER_WORKER_MODE": "external",
    "COFFER_LOG_LEVEL": "WARNING",
    "COFFER_LOG_JSON": "true",
    "COFFER_DAILY_TRANSFER_LIMIT": "1000000000.00",
    "COFFER_DAILY_WITHDRAWAL_LIMIT": "1000000000.00",
    # Reconciliation asks the sandbox about deposits and payouts in doubt while their
    # webhooks may still be arriving: both paths race, as in production.
    "COFFER_DEPOSIT_RECONCILE_AFTER_SECONDS": "30",
    "COFFER_PAYOUT_RECONCILE_AFTER_SECONDS": "30",
    # The sandbox makes no HTTP calls; short provider timeouts make a deposit start cut off by
    # a fault recoverable by its retry within the careful client's 90 s (deposits.start_timeout).
    "COFFER_PROVIDER_HTTP_CONNECT_TIMEOUT_SECONDS": "2",
    "COFFER_PROVIDER_HTTP_READ_TIMEOUT_SECONDS": "5",
    "COFFER_PROVIDER_HTTP_MAX_ATTEMPTS": "2",
    "COFFER_LOGIN_RATE_LIMIT_PER_IP": "1000000/minute",
    "COFFER_LOGIN_RATE_LIMIT_PER_ACCOUNT": "1000000/minute",
    "COFFER_ACCESS_TOKEN_TTL_SECONDS": "86400",
    "COFFER_DATABASE_POOL_SIZE": "6",
    "COFFER_JOB_POLL_INTERVAL_SECONDS": "0.2",
}
BROKER_ENVIRONMENT = {
    "COFFER_OUTBOX_SWEEP_INTERVAL_SECONDS": "1",
    "COFFER_OUTBOX_REDELIVER_AFTER_SECONDS": "30",
}
"""With a broker: a message lost with its killed worker is published again within 30 s."""


class StartError(RuntimeError):
    """coffer's processes could not be started."""


@dataclass(frozen=True, slots=True)
class Holder:
    """A funded user the workload signs in as and pays to."""

    email: str
    wallet_number: str
    currency: str
    funding_minor: int
    destinations: tuple[tuple[str, int], ...] = ()
    """(PAYOUT_ACCOUNTS outcome, payout destination id)."""


async def populate(database_url: str, count: int) -> list[Holder]:
    """`count` users, primary wallets in CURRENCIES round robin, each credited once from the
    adjustments account with a reference, so the checker knows every starting balance."""
    settings = Settings(
        database_url=database_url, password_hash_memory_kib=1024, password_hash_iterations=1
    )
    database = Database(database_url, pool_size=1)
    holders: list[Holder] = []
    try:
        for start in range(0, count, USERS_PER_TRANSACTION):
            async with database.transaction() as session:
                for index in range(start, min(count, start + USERS_PER_TRANSACTION)):
                    currency = CURRENCIES[index % len(CURRENCIES)]
                    email = f"holder{index}@check.example.com"
                    new = await create_user(
                        session,
                        email=email,
                        password=PASSWORD,
                        currency=currency,
                        first_name="Holder",
                        last_name=str(index),
                        settings=settings,
                    )
                    await wallets.adjust(
                        session,
                        new.primary_wallet,
                        Money.of(FUNDING_MINOR[currency], currency),
                        reason="coffer check bank funding",
                        credit=True,
                        actor="check",
                        reference=f"check-funding-{index}",
                    )
                    holders.append(
                        Holder(email, new.primary_wallet.number, currency, FUNDING_MINOR[currency])
                    )
    finally:
        await database.dispose()
    return holders


def run_migrations(database_url: str, logs: Path) -> None:
    with (logs / "migrate.log").open("ab") as log:
        result = subprocess.run(
            [COFFER, "migrate"],
            env={**os.environ, "COFFER_DATABASE_URL": database_url},
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=START_TIMEOUT_SECONDS,
            check=False,
        )
    if result.returncode != 0:
        raise StartError(f"coffer migrate exited with {result.returncode}")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def _listening_inode(port: int) -> str | None:
    """The inode of the socket listening on 127.0.0.1:`port` (/proc/net/tcp, state 0A)."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
            return fields[9]
    return None


def _accepting(pid: int, inode: str) -> bool:
    """Whether `pid` watches the listening socket in an epoll set: its event loop is serving
    (a respawned API process holds the socket from birth, but serves only once started)."""
    fds = Path("/proc") / str(pid) / "fd"
    try:
        socket_fds = {
            entry.name for entry in fds.iterdir() if os.readlink(entry) == f"socket:[{inode}]"
        }
        for info in (Path("/proc") / str(pid) / "fdinfo").iterdir():
            for line in info.read_text().splitlines():
                if line.startswith("tfd:") and line.split()[1] in socket_fds:
                    return True
    except OSError:
        return False
    return False


def _is_uvicorn_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False


async def add_destinations(base_url: str, holders: list[Holder], tokens: list[str]) -> list[Holder]:
    """Each holder's payout destinations, one per sandbox outcome, added right after signing
    in (a fresh sign-in is the step-up a new destination needs)."""

    async def add(client: httpx.AsyncClient, holder: Holder, token: str) -> Holder:
        found = []
        for outcome, account in PAYOUT_ACCOUNTS.items():
            response = await client.post(
                "/api/v1/payout-destinations",
                json={"bank_code": "001", "account_number": account},
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code != 201:
                raise StartError(
                    f"adding a payout destination answered {response.status_code}: "
                    f"{response.text[:300]}"
                )
            found.append((outcome, int(response.json()["data"]["id"])))
        return replace(holder, destinations=tuple(found))

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        return list(
            await asyncio.gather(*(add(client, h, t) for h, t in zip(holders, tokens, strict=True)))
        )


class Coffer:
    """One `coffer serve` (N API processes under uvicorn's supervisor), M `coffer worker`s and,
    with a broker, one `coffer beat`."""

    def __init__(
        self,
        database_url: str,
        api_processes: int,
        workers: int,
        logs: Path,
        broker_url: str | None = None,
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_processes = api_processes
        self.logs = logs
        self.webhook_secret = secrets.token_hex(16)
        self.broker_url = broker_url
        self.environment = {
            **os.environ,
            **SERVER_ENVIRONMENT,
            "COFFER_DATABASE_URL": database_url,
            "COFFER_SANDBOX_WEBHOOK_SECRET": self.webhook_secret,
            # beat keeps its schedule file in the temporary folder: this run's own.
            "TMPDIR": str(logs),
        }
        if broker_url is not None:
            self.environment.update(BROKER_ENVIRONMENT, COFFER_BROKER_URL=broker_url)
        self.api: subprocess.Popen[bytes] | None = None
        self.beat: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * workers

    def _spawn(
        self, arguments: list[str], log_name: str, **environment: str
    ) -> subprocess.Popen[bytes]:
        with (self.logs / log_name).open("ab") as log:
            # A session of its own: the supervisor's API processes are stopped with it.
            return subprocess.Popen(
                [COFFER, *arguments],
                env={**self.environment, **environment},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self) -> None:
        self.api = self._spawn(
            ["serve", "--port", str(self.port), "--workers", str(self.api_processes)],
            "serve.log",
            # The supervisor logs each API process's death and replacement at INFO.
            COFFER_LOG_LEVEL="INFO",
        )
        for slot in range(len(self.workers)):
            self.start_worker(slot)
        if self.broker_url is not None:
            self.beat = self._spawn(["beat"], "beat.log")
        self.wait_until_up()

    def start_worker(self, slot: int) -> None:
        # A Celery worker: one pool process each, as the database runner is one process.
        arguments = ["worker"] if self.broker_url is None else ["worker", "--concurrency", "1"]
        self.workers[slot] = self._spawn(arguments, f"worker-{slot}.log")

    def wait_until_up(self) -> None:
        """Until every API process is up and /healthz answers."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.api is None or self.api.poll() is not None:
                raise StartError("coffer serve exited during start")
            try:
                healthy = httpx.get(f"{self.base_url}/healthz", timeout=5).status_code == 200
            except httpx.TransportError:
                healthy = False
            if healthy and len(self.api_pids()) >= self.api_processes:
                return
            time.sleep(0.5)
        raise StartError(f"coffer serve did not come up in {START_TIMEOUT_SECONDS} s")

    def api_pids(self) -> list[int]:
        """The supervisor's live API processes, by pid (sorted, so a seeded choice repeats)."""
        if self.api is None:
            return []
        return [pid for pid in _children(self.api.pid) if _is_uvicorn_worker(pid)]

    def serving_api_pids(self) -> list[int]:
        """The API processes that accept connections (started, not merely spawned)."""
        inode = _listening_inode(self.port)
        if inode is None:
            return []
        return [pid for pid in self.api_pids() if _accepting(pid, inode)]

    def kill_worker(self, slot: int) -> None:
        """SIGKILL the worker and its pool processes (a Celery worker's group) at once."""
        process = self.workers[slot]
        if process is not None and process.poll() is None:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()

    def ensure_workers(self) -> None:
        """Respawn every worker that is not running (a killed one, or one that exited), and
        beat."""
        for slot, process in enumerate(self.workers):
            if process is None or process.poll() is not None:
                self.start_worker(slot)
        if self.beat is not None and self.beat.poll() is not None:
            self.beat = self._spawn(["beat"], "beat.log")

    def stop(self) -> None:
        processes = [p for p in (self.api, self.beat, *self.workers) if p is not None]
        for process in processes:
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
            # API processes the supervisor had no time to stop.
            _signal_group(process.pid, signal.SIGKILL)


def _signal_group(pid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pid, signum)
    except OSError:
        return
