"""A dead API process is replaced at once, even when it died while the supervisor was waiting
for its health ping (found by `coffer check bank`: it used to take the whole 60 s timeout)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.fixtures.identity import free_port
from tests.test_faults import COFFER, _wait_for_workers

STOPPED_SECONDS = 2.0
"""Long enough for the supervisor's ping loop (every 0.5 s) to be waiting on the stopped one."""
REPLACED_WITHIN_SECONDS = 25.0
"""Well under the 60 s healthcheck timeout the supervisor used to wait out."""


def test_an_api_process_killed_mid_ping_is_replaced_before_the_ping_times_out(
    tmp_path: Path,
) -> None:
    log_path = tmp_path / "serve.log"
    env = {
        **os.environ,
        "COFFER_DATABASE_URL": f"sqlite:///{tmp_path / 'coffer.db'}",
        "COFFER_LOG_JSON": "true",
    }
    with log_path.open("w") as log_file:
        server = subprocess.Popen(
            [COFFER, "serve", "--port", str(free_port()), "--workers", "2"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        victim = _wait_for_workers(server.pid, count=2, log_path=log_path)[-1]
        # Stopped, it cannot answer the ping, so the supervisor is left waiting on it.
        os.kill(victim, signal.SIGSTOP)
        time.sleep(STOPPED_SECONDS)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        while time.monotonic() - killed < REPLACED_WITHIN_SECONDS:
            if f"Child process [{victim}] died" in log_path.read_text():
                break
            time.sleep(0.2)
        assert f"Child process [{victim}] died" in log_path.read_text(), (
            f"not replaced within {REPLACED_WITHIN_SECONDS:g} s: {log_path.read_text()[-2000:]}"
        )
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
