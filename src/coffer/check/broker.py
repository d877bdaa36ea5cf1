"""The checker's own Redis broker, on a free port of 127.0.0.1, for the `drop-broker` fault.

It keeps nothing on disk (no RDB, no AOF) in a temporary folder, and is paused with SIGSTOP
and resumed with SIGCONT: connections stay open but nothing answers, the way a broker behind
a dead network path looks, which is harder on clients than a refused connection; or killed
and started again on the same port, empty: every message it held is lost.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from coffer.check.cluster import ClusterError, free_port

START_TIMEOUT_SECONDS = 60


class Broker:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ClusterError("drop-broker needs redis-server on the PATH")
        self.binary = binary
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="coffer-check-redis-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with (self.root / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--dir",
                    str(self.root),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ClusterError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise ClusterError(f"redis-server did not answer in {START_TIMEOUT_SECONDS} s")

    def pause(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.process is not None and self.paused:
            os.kill(self.process.pid, signal.SIGCONT)
            self.paused = False

    def kill(self) -> None:
        """SIGKILL: every queued message is gone (nothing is kept on disk)."""
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.kill()
            self.process.wait()

    def destroy(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
