"""The load generator: wrk, driven by the lua scripts in bench/, measured from /proc.

Why wrk: a Python client on this machine spent more CPU per request than the API it drove, so
the benchmark measured itself. wrk is C with one event loop per thread; its own CPU share of the
machine is printed with every run, so a reader can see it was not the bottleneck.

Pacing ("half the peak rate"): wrk has no fixed-rate mode (wrk2 is not packaged here), so
bench/wrk_common.lua defines wrk's `delay()` hook when BENCH_THREAD_RATE is set: each thread
hands its connections send slots `1000 / rate` ms apart on a monotonic clock, and a connection
that finished its previous request waits for its slot. wrk starts a request's latency clock
when it writes the request, after the delay, so the percentiles are service times at that
offered rate (with idle connections to spare, no request waits for a free one).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ledger_throughput import BenchmarkError
from procstat import wait_keeping_zombie

BENCH_DIRECTORY = Path(__file__).resolve().parent
THREADS = 2
TIMEOUT = "60s"
"""Far above any latency seen: wrk leaves requests slower than its timeout out of the
percentiles, which would flatter them."""
INSTALL_HINT = "wrk is not installed: `apt-get install wrk` (Debian/Ubuntu) or see wg/wrk"

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_PERCENTILE = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s+(\d+) requests in ([0-9.]+)(us|ms|s|m),", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_FIRST_ERROR = re.compile(r"^BENCH_FIRST_ERROR (.*)$", re.MULTILINE)
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    """Responses received, whatever their status."""
    errors: int
    """Responses with a status >= 400, plus connect, read and write errors."""
    timeouts: int
    """wrk's timeout count: connections with no answer for --timeout. Paced, it also counts
    connections still waiting for their first send slot (wrk takes their start as 0)."""
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_seconds: float
    """wrk's own CPU time (user + system, all threads), from /proc."""
    first_error: str
    """The first refusal a script saw (bench/wrk_common.lua), if it reports them."""
    output: str

    @property
    def ok_rate(self) -> float:
        return (self.requests - self.errors) / self.seconds

    def machine_share(self) -> float:
        """wrk's CPU as a share of the whole machine's capacity over the run."""
        return self.cpu_seconds / (self.seconds * (os.cpu_count() or 1))


def wrk_executable() -> str:
    executable = shutil.which("wrk")
    if executable is None:
        raise BenchmarkError(INSTALL_HINT)
    return executable


def _milliseconds(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_output(output: str, cpu_seconds: float) -> WrkResult:
    """wrk's own summary (printed with --latency)."""
    total = _TOTAL.search(output)
    percentiles = {
        m.group(1): _milliseconds(m.group(2), m.group(3)) for m in _PERCENTILE.finditer(output)
    }
    if total is None or set(percentiles) != {"50", "99"}:
        raise BenchmarkError(f"unexpected wrk output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    sockets = _SOCKET_ERRORS.search(output)
    socket_errors = [int(n) for n in sockets.groups()] if sockets else [0, 0, 0, 0]
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + sum(socket_errors[:3])
    return WrkResult(
        requests=int(total.group(1)),
        errors=errors,
        timeouts=socket_errors[3],
        seconds=_milliseconds(total.group(2), total.group(3)) / 1000,
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        cpu_seconds=cpu_seconds,
        first_error=first_error.group(1) if (first_error := _FIRST_ERROR.search(output)) else "",
        output=output,
    )


def run_wrk(
    url: str,
    script: Path,
    *,
    seconds: float,
    connections: int,
    environment: Mapping[str, str],
    threads: int = THREADS,
) -> WrkResult:
    """One wrk run; `environment` reaches the lua script through os.getenv."""
    command = [
        wrk_executable(),
        f"--threads={threads}",
        f"--connections={max(connections, threads)}",
        f"--duration={max(1, round(seconds))}s",
        f"--timeout={TIMEOUT}",
        "--latency",
        f"--script={script}",
        url,
    ]
    process = subprocess.Popen(
        command,
        env={**os.environ, "BENCH_LUA_DIR": str(BENCH_DIRECTORY), **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # wrk's summary fits the pipe buffer, so it cannot block writing it before we read.
    cpu_seconds = wait_keeping_zombie(process)
    output = process.stdout.read() if process.stdout else ""
    if process.returncode != 0:
        raise BenchmarkError(f"{' '.join(command)} exited with {process.returncode}:\n{output}")
    return parse_output(output, cpu_seconds)
