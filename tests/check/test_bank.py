"""`coffer check bank` end to end: a private cluster, its own Redis, two API processes, two
Celery workers and beat, every fault at least twice in 60 s (transfers, deposits with their
webhooks delivered again, withdrawals that pay, fail and reverse), and a report of zeros.

The check judges correctness only: on a loaded machine requests are slow and retried, which
the report shows per fault window and never counts as a violation.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coffer.check import FAULTS
from coffer.check.cluster import ClusterError, find_bindir
from tests.fixtures.databases import IN_CI

COFFER = str(Path(sys.executable).with_name("coffer"))
RUN_TIMEOUT_SECONDS = 1200
"""60 s of driving, plus initdb, migrations, API start and settling on a busy machine."""


def _require_server_binaries() -> None:
    """PostgreSQL's server binaries for the private cluster, redis-server for the broker."""
    try:
        find_bindir()
        if shutil.which("redis-server") is None:
            raise ClusterError("drop-broker needs redis-server on the PATH")
    except ClusterError as error:
        if IN_CI:
            pytest.fail(f"{error} (CI=true requires it)")
        pytest.skip(str(error))


@pytest.mark.slow
def test_bank_workload_under_every_fault_reports_zero_violations() -> None:
    _require_server_binaries()
    result = subprocess.run(
        [
            COFFER,
            "check",
            "bank",
            "--seconds",
            "60",
            "--api-processes",
            "2",
            "--workers",
            "2",
            "--clients",
            "3",
            "--seed",
            "11",
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    report = result.stdout
    assert result.returncode == 0, report + result.stderr[-3000:]
    section = report.split("violations (each must be 0):\n", 1)[1].split("\n\n", 1)[0]
    violations = re.findall(r"^  (ok  |FAIL) (.+?)\s+(\d+)$", section, re.MULTILINE)
    assert len(violations) >= 16, report
    assert all(verdict == "ok  " and count == "0" for verdict, _, count in violations), report
    for currency in ("EUR", "NGN", "USD"):
        assert re.search(rf"money created or destroyed, {currency}\s+0$", report, re.MULTILINE)
    injected = re.findall(r"^\s+[\d.]+s (\S+) \(", report, re.MULTILINE)
    for fault in FAULTS:
        assert injected.count(fault) >= 2, report
    assert "pg_ctl restart -m fast" in report
    assert "pg_ctl restart -m immediate" in report
    assert "broker paused" in report
    assert "broker killed, empty again" in report
    assert "Celery on its own Redis" in report
    for outcome in ("deposit success", "withdrawal success", "withdrawal reversed"):
        assert outcome in report, report
    assert re.search(r"webhook_charge \d+", report), report
    assert re.search(r"webhook_payout \d+", report), report
    accepted = int(re.search(r"accepted (\d+),", report).group(1))  # type: ignore[union-attr]
    assert accepted > 0, report
    assert "verdict: PASS" in report
