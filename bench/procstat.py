"""What processes cost, read from /proc: CPU seconds, the machine's busy time, peak RSS.

Why /proc and not the processes' own reports: the load generator, the API, the workers and
PostgreSQL are measured the same way, so their shares of the machine add up.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (which may hold spaces and parentheses)."""
    try:
        return (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds_of(pid: int) -> float:
    """User plus system time of a process and all its threads (also while it is a zombie)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_tree(root: int) -> list[int]:
    """`root` and every descendant."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        tree.append(pid)
        frontier.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(roots: Sequence[int]) -> float:
    return sum(cpu_seconds_of(pid) for root in roots for pid in process_tree(root))


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine (all cores), from /proc/stat."""
    fields = [int(v) for v in (_PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float:
    """The process's high-water resident set (VmHWM), in MiB; 0 when it is gone."""
    try:
        status = (_PROC / str(pid) / "status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def command_line(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_keeping_zombie(process: subprocess.Popen[str]) -> float:
    """Wait for `process` to exit, read its CPU seconds from /proc while it is a zombie (the
    kernel has summed all its threads by then), then reap it."""
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
    seconds = cpu_seconds_of(process.pid)
    process.wait()
    return seconds
