"""The servers under load: coffer (`coffer serve` + `coffer worker`) and the naive reference.

Both are started as their users would start them, on a free port of 127.0.0.1, and stopped
(SIGTERM, then SIGKILL after 20 s) when their `with` block ends, also on error.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx

from ledger_throughput import BenchmarkError
from procstat import command_line, cpu_seconds_of, peak_rss_mib, process_tree

COFFER = str(Path(sys.executable).with_name("coffer"))
POOL_SIZE = "8"
"""Connections per coffer process: other people share the server's 100."""
JOB_POLL_INTERVAL_SECONDS = "0.05"
"""External workers learn of new work by polling the outbox; the default 1 s would add up to a
second of idle queue per run to the completed rate."""
COFFER_ENVIRONMENT = {
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
START_TIMEOUT_SECONDS = 600
"""Generous: on a shared 2-core machine at load 30, two API processes took over 3 minutes."""
IDLE_SAMPLE_SECONDS = 1.0
IDLE_CPU_SECONDS = 0.05
"""CPU a started, unloaded API process may spend in a sample (an importing one spends more)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _Server:
    """A process group serving HTTP on `base_url`, whatever answers counting as up."""

    def __init__(self, label: str, up_path: str) -> None:
        self.label = label
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.up_path = up_path
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def server(self) -> subprocess.Popen[bytes]:
        return self.processes[0]

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise BenchmarkError(
                        f"{self.label}: a process exited with {process.returncode}"
                    )
            try:
                httpx.get(f"{self.base_url}{self.up_path}", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.5)
        raise BenchmarkError(f"{self.label} did not come up within {START_TIMEOUT_SECONDS} s")

    def wait_until_idle(self, expected_processes: int) -> None:
        """Wait until `expected_processes` serving processes exist and all are idle.

        At start: one process answering /healthz says nothing of its siblings, which may still
        be importing on a busy machine, and a run started then would measure one process, not
        N. After a run: requests the load generator gave up on may still be in flight. A busy
        process burns CPU; an idle one next to none.
        """
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            pids = self.serving_pids()
            before = [cpu_seconds_of(pid) for pid in pids]
            time.sleep(IDLE_SAMPLE_SECONDS)
            busy = [cpu_seconds_of(pid) - spent for pid, spent in zip(pids, before, strict=True)]
            if len(pids) >= expected_processes and max(busy) < IDLE_CPU_SECONDS:
                return
        raise BenchmarkError(f"{self.label}: processes still starting after the timeout")

    def serving_pids(self) -> list[int]:
        """The processes that answer requests: the server itself, or with several workers the
        children of its supervisor (not multiprocessing's helper processes)."""
        tree = process_tree(self.server.pid)
        children = [
            pid for pid in tree[1:] if "multiprocessing.resource_tracker" not in command_line(pid)
        ]
        return children or [self.server.pid]

    def peak_rss_mib(self) -> list[float]:
        return [peak_rss_mib(pid) for pid in self.serving_pids()]

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        _stop(self.processes)


class Coffer(_Server):
    """`coffer serve --workers N` plus `job_workers` `coffer worker` processes on one database."""

    def __init__(self, database_url: str, api_workers: int, job_workers: int) -> None:
        super().__init__(f"coffer with {api_workers} API process(es)", "/healthz")
        self.api_workers = api_workers
        self.environment = {
            **os.environ,
            **COFFER_ENVIRONMENT,
            "COFFER_DATABASE_URL": database_url,
        }
        self.job_workers = job_workers

    def __enter__(self) -> Coffer:
        serve = [COFFER, "serve", "--port", str(self.port), "--workers", str(self.api_workers)]
        # Standard output carries the console email backend's messages (one per transfer side);
        # logs go to standard error, which stays.
        commands = [serve] + [[COFFER, "worker"]] * self.job_workers
        try:
            for command in commands:
                self.processes.append(
                    subprocess.Popen(command, env=self.environment, stdout=subprocess.DEVNULL)
                )
            self.wait_until_up()
            self.wait_until_idle(self.api_workers)
        except BaseException:
            _stop(self.processes)
            raise
        return self

    @property
    def worker_pids(self) -> list[int]:
        return [process.pid for process in self.processes[1:]]


class NaiveReference(_Server):
    """../shared/bench/naive_ref.py under uvicorn with 2 workers, as its README runs it."""

    def __init__(self, directory: Path, dsn: str, workers: int = 2) -> None:
        super().__init__("the naive reference", "/")
        self.directory = directory
        self.dsn = dsn
        self.workers = workers

    def __enter__(self) -> NaiveReference:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(self.directory),
            "naive_ref:app",
            "--workers",
            str(self.workers),
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        try:
            self.processes.append(
                subprocess.Popen(command, env={**os.environ, "NAIVE_DSN": self.dsn})
            )
            self.wait_until_up()
        except BaseException:
            _stop(self.processes)
            raise
        return self
