"""A dead API process is replaced at once, even when it died while the supervisor was waiting
for its health ping (found by `coffer check bank`: it used to take the whole 60 s timeout), and
one still booting is not killed as hung (found by it too, on a loaded machine)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import uvicorn

from coffer.supervisor import PromptlyReplacedProcess
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


BOOTING_SECONDS = 3.0
"""Stopped this long before it ever answered: far past the half-second pings given below."""
ANSWER_TIMEOUT_SECONDS = 120.0
"""For the resumed child to import and answer on a loaded machine."""


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The smallest app a uvicorn child can serve."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_an_api_process_still_booting_is_not_killed_as_hung() -> None:
    """uvicorn's own check calls a child that does not answer within the healthcheck timeout
    hung; one whose answering thread has not even started yet (importing for a minute on a
    loaded machine) is booting, and is judged only once it has answered or died."""
    config = uvicorn.Config("tests.test_supervisor:asgi_app", port=free_port(), log_config=None)
    sock = config.bind_socket()
    process = PromptlyReplacedProcess(config, [sock])
    process.start()
    pid = process.pid
    assert pid is not None
    # Stopped before its answering thread can start: it boots for as long as it is stopped.
    os.kill(pid, signal.SIGSTOP)
    try:
        stopped_until = time.monotonic() + BOOTING_SECONDS
        while time.monotonic() < stopped_until:
            assert process.is_alive(timeout=0.5)
        os.kill(pid, signal.SIGCONT)
        deadline = time.monotonic() + ANSWER_TIMEOUT_SECONDS
        while not process._booted and time.monotonic() < deadline:
            assert process.is_alive(timeout=0.5)
        assert process._booted, "the resumed child never answered its first ping"
        assert process.is_alive(timeout=30)

        os.kill(pid, signal.SIGKILL)
        process.join()
        assert not process.is_alive(timeout=30)
    finally:
        if process.process.is_alive():
            process.kill()
            process.join()
        sock.close()
